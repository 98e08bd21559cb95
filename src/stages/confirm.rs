//! confirm: waits for the customer's answer once the order is handed over, and emits
//! `order.customer_confirmed` when the customer accepts.
//!
//! The answer and the handover may arrive in either order: an answer that comes first is kept and
//! applied when the handover arrives. Complaints and queries go to customer service.

use async_trait::async_trait;
use chrono::Utc;
use serde::Serialize;

use crate::db;
use crate::domain::events::{
    ConfirmationBasis, ConfirmationOutcome, CustomerConfirmation, OrderCustomerConfirmed,
    OrderHandedOver,
};
use crate::domain::{EventType, OrderId, OrderState};

use super::{Escalation, Handled, IncomingEvent, Role, Stage, StageContext, StageError, StageName};

/// The confirm stage.
pub struct Confirm;

/// What confirm records for an order.
#[derive(Debug, Serialize)]
pub struct ConfirmationRecord {
    /// Explicit or deemed.
    pub basis: ConfirmationBasis,
    /// The id of the customer's message.
    pub customer_message_id: String,
}

#[async_trait]
impl Stage for Confirm {
    fn name(&self) -> StageName {
        StageName::Confirm
    }

    async fn handle(
        &self,
        ctx: &mut StageContext<'_>,
        event: &IncomingEvent,
    ) -> Result<Handled, StageError> {
        match event.event_type {
            EventType::OrderHandedOver => {
                let handed_over: OrderHandedOver = event.payload()?;
                confirm_if_accepted(ctx, &handed_over.order_id).await
            }
            EventType::CustomerConfirmation => {
                let answer: CustomerConfirmation = event.payload()?;
                customer_answered(ctx, event.id(), answer).await
            }
            other => Err(Escalation::new(
                "unsupported_event",
                format!("confirm does not handle {other}"),
                Role::Operations,
            )
            .into()),
        }
    }
}

async fn customer_answered(
    ctx: &mut StageContext<'_>,
    message_id: &str,
    answer: CustomerConfirmation,
) -> Result<Handled, StageError> {
    let id = answer.order_id.as_str();
    db::confirmations::insert(
        ctx.conn(),
        id,
        message_id,
        answer.outcome,
        answer.reason.as_deref(),
    )
    .await?;
    match answer.outcome {
        ConfirmationOutcome::Accepted | ConfirmationOutcome::Delivered => {
            confirm_if_accepted(ctx, &answer.order_id).await
        }
        ConfirmationOutcome::Complaint | ConfirmationOutcome::Query => Err(Escalation::new(
            if answer.outcome == ConfirmationOutcome::Complaint {
                "customer_complaint"
            } else {
                "customer_query"
            },
            format!(
                "customer raised a {} on order {id}",
                answer.outcome.as_str()
            ),
            Role::CustomerService,
        )
        .into()),
    }
}

/// Confirms the order if it is handed over and the customer has accepted it.
async fn confirm_if_accepted(
    ctx: &mut StageContext<'_>,
    order_id: &OrderId,
) -> Result<Handled, StageError> {
    let Some(stored) = db::orders::find(ctx.conn(), order_id.as_str()).await? else {
        return Ok(Handled::Waiting);
    };
    if stored.state < OrderState::HandedOver {
        return Ok(Handled::Waiting);
    }
    let Some(customer_message_id) =
        db::confirmations::first_acceptance(ctx.conn(), order_id.as_str()).await?
    else {
        return Ok(Handled::Waiting);
    };
    let record = ConfirmationRecord {
        basis: ConfirmationBasis::Explicit,
        customer_message_id,
    };
    let confirmed = OrderCustomerConfirmed {
        order_id: order_id.clone(),
        basis: ConfirmationBasis::Explicit,
        confirmed_at: Utc::now(),
    };
    ctx.step(&stored, OrderState::Confirmed, &record, &confirmed)
        .await
}
