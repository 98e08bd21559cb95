//! confirm: makes sure the customer is satisfied.
//!
//! - `accepted`: `order.customer_confirmed` with basis `explicit`.
//! - `delivered` (receipt): `order.delivered`, a milestone for revenue and for ownership under
//!   on-delivery terms; the order still waits for acceptance.
//! - `complaint` or `query`: a review case for customer service; the order waits, and the deemed
//!   acceptance timer stops.
//! - No answer within the acceptance window after handover: deemed accepted under the terms of
//!   sale (basis `deemed`). The deadline is a timer in the database, so it survives restarts.
//!
//! A satisfied customer opens further sales: `sales.opportunity` lists related products
//! (cross-sell and up-sell) the customer has not bought.
//!
//! The customer's answer and the handover may arrive in either order: an answer that comes
//! first is kept and applied when the handover arrives (a complaint or query that came first
//! means no acceptance deadline starts).

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db;
use crate::db::orders::StoredOrder;
use crate::db::timers::TimerKind;
use crate::domain::events::{
    AcceptanceDue, ConfirmationBasis, ConfirmationOutcome, CustomerConfirmation,
    OrderCustomerConfirmed, OrderDelivered, OrderHandedOver, SalesOpportunity, Suggestion,
};
use crate::domain::{EventType, OrderId, OrderState};
use crate::settings::StageSettings;

use super::{Escalation, Handled, IncomingEvent, Role, Stage, StageContext, StageError, StageName};

/// The confirm stage.
pub struct Confirm {
    window: chrono::Duration,
}

impl Confirm {
    /// The stage, with the acceptance window from `settings`.
    pub fn new(settings: &StageSettings) -> Self {
        let secs = i64::try_from(settings.acceptance_window_secs).unwrap_or(i64::MAX / 1000);
        Self {
            window: chrono::Duration::seconds(secs),
        }
    }
}

/// What confirm records when the customer accepts.
#[derive(Debug, Serialize)]
pub struct ConfirmationRecord {
    /// Explicit or deemed.
    pub basis: ConfirmationBasis,
    /// The id of the customer's message, or of the timer event.
    pub evidence_message_id: String,
    /// When the acceptance took effect.
    pub confirmed_at: DateTime<Utc>,
    /// Products offered next.
    pub suggestions: Vec<Suggestion>,
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
                self.handed_over(ctx, handed_over).await
            }
            EventType::CustomerConfirmation => {
                let answer: CustomerConfirmation = event.payload()?;
                customer_answered(ctx, event.id(), answer).await
            }
            EventType::AcceptanceDue => {
                let due: AcceptanceDue = event.payload()?;
                let Some(order) = ctx.find_order(&due.order_id).await? else {
                    return Ok(Handled::AlreadyDone);
                };
                if order.state != OrderState::HandedOver {
                    return Ok(Handled::AlreadyDone);
                }
                confirm(
                    ctx,
                    &order,
                    ConfirmationBasis::Deemed,
                    event.id(),
                    due.due_at,
                )
                .await
            }
            other => Err(super::unexpected(StageName::Confirm, other)),
        }
    }
}

impl Confirm {
    async fn handed_over(
        &self,
        ctx: &mut StageContext<'_>,
        handed_over: OrderHandedOver,
    ) -> Result<Handled, StageError> {
        let id = handed_over.order_id.as_str();
        let answers = db::confirmations::for_order(ctx.conn(), id).await?;
        // A complaint or query that came before the handover is already with customer service:
        // silence cannot be deemed acceptance, so no deadline starts.
        let raised_concern = answers.iter().any(|(_, o)| o.is_concern());
        if !raised_concern {
            let due = handed_over.handed_over_at + self.window;
            db::timers::schedule(
                ctx.conn(),
                id,
                TimerKind::AcceptanceDue,
                due,
                serde_json::json!({}),
            )
            .await?;
        }
        if let Some((message_id, _)) = answers
            .iter()
            .find(|(_, o)| *o == ConfirmationOutcome::Delivered)
        {
            delivered(ctx, &handed_over.order_id, message_id).await?;
        }
        confirm_if_accepted(ctx, &handed_over.order_id).await
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
    let order = ctx.find_order(&answer.order_id).await?;
    let handed_over = order
        .as_ref()
        .is_some_and(|o| o.state == OrderState::HandedOver);
    match answer.outcome {
        ConfirmationOutcome::Accepted => confirm_if_accepted(ctx, &answer.order_id).await,
        ConfirmationOutcome::Delivered if handed_over => {
            delivered(ctx, &answer.order_id, message_id).await?;
            Ok(Handled::Waiting)
        }
        ConfirmationOutcome::Delivered => Ok(Handled::Waiting),
        ConfirmationOutcome::Complaint | ConfirmationOutcome::Query => {
            db::timers::cancel(ctx.conn(), id, TimerKind::AcceptanceDue).await?;
            let (reason, what) = if answer.outcome == ConfirmationOutcome::Complaint {
                ("customer_complaint", "complaint")
            } else {
                ("customer_query", "query")
            };
            // The customer's own words are personal data: they stay in the case's original
            // message, out of the detail that `review.case_opened` broadcasts.
            let escalation = Escalation::new(
                reason,
                format!("the customer raised a {what}; their words are in the original message"),
                Role::CustomerService,
            );
            match order {
                Some(order) => ctx.refuse(&answer.order_id, order.state, escalation).await,
                None => Ok(Handled::Escalated(escalation)),
            }
        }
    }
}

/// Emits `order.delivered` once per order and records the receipt.
async fn delivered(
    ctx: &mut StageContext<'_>,
    order_id: &OrderId,
    message_id: &str,
) -> Result<(), StageError> {
    let detail = serde_json::json!({ "receipt": message_id });
    if db::records::has_record(ctx.conn(), order_id.as_str(), "confirm", &detail).await? {
        return Ok(());
    }
    ctx.record(order_id, OrderState::HandedOver, &detail)
        .await?;
    ctx.emit(&OrderDelivered {
        order_id: order_id.clone(),
        delivered_at: Utc::now(),
    })
    .await
}

/// Confirms the order if it is handed over and the customer has accepted it.
async fn confirm_if_accepted(
    ctx: &mut StageContext<'_>,
    order_id: &OrderId,
) -> Result<Handled, StageError> {
    let Some(stored) = ctx.find_order(order_id).await? else {
        return Ok(Handled::Waiting);
    };
    if stored.state < OrderState::HandedOver {
        return Ok(Handled::Waiting);
    }
    let Some(message_id) =
        db::confirmations::first_acceptance(ctx.conn(), order_id.as_str()).await?
    else {
        return Ok(Handled::Waiting);
    };
    confirm(
        ctx,
        &stored,
        ConfirmationBasis::Explicit,
        &message_id,
        Utc::now(),
    )
    .await
}

async fn confirm(
    ctx: &mut StageContext<'_>,
    stored: &StoredOrder,
    basis: ConfirmationBasis,
    evidence: &str,
    confirmed_at: DateTime<Utc>,
) -> Result<Handled, StageError> {
    if let Some(done) = ctx.readiness(stored, OrderState::Confirmed)? {
        return Ok(done);
    }
    let id = stored.order.order_id.clone();
    db::timers::cancel(ctx.conn(), id.as_str(), TimerKind::AcceptanceDue).await?;
    let suggestions = suggestions(ctx, stored).await?;
    let record = ConfirmationRecord {
        basis,
        evidence_message_id: evidence.to_owned(),
        confirmed_at,
        suggestions: suggestions.clone(),
    };
    let confirmed = OrderCustomerConfirmed {
        order_id: id.clone(),
        basis,
        confirmed_at,
    };
    let handled = ctx
        .step(stored, OrderState::Confirmed, &record, &confirmed)
        .await?;
    if !suggestions.is_empty() {
        ctx.emit(&SalesOpportunity {
            order_id: id,
            customer_id: stored.order.customer_id.clone(),
            suggestions,
        })
        .await?;
    }
    Ok(handled)
}

/// Related products of what was ordered, sellable, that the customer has never bought.
async fn suggestions(
    ctx: &mut StageContext<'_>,
    stored: &StoredOrder,
) -> Result<Vec<Suggestion>, StageError> {
    let skus: Vec<String> = stored.order.lines.iter().map(|l| l.sku.clone()).collect();
    let products = ctx.products(&skus).await?;
    let related: Vec<String> = products
        .values()
        .flat_map(|p| p.related.iter().map(|r| r.sku.clone()))
        .collect();
    let bought: HashSet<String> =
        db::reference::skus_bought_by(ctx.conn(), &stored.order.customer_id, &related)
            .await?
            .into_iter()
            .collect();
    let mut seen = HashSet::new();
    let mut candidates = Vec::new();
    for sku in &skus {
        for related in products
            .get(sku)
            .map(|p| p.related.as_slice())
            .unwrap_or_default()
        {
            if !bought.contains(&related.sku) && seen.insert(related.sku.clone()) {
                candidates.push(Suggestion {
                    sku: related.sku.clone(),
                    relation: related.relation,
                    because_of: sku.clone(),
                });
            }
        }
    }
    let wanted: Vec<String> = candidates.iter().map(|s| s.sku.clone()).collect();
    let sellable = ctx.products(&wanted).await?;
    candidates.retain(|s| sellable.get(&s.sku).is_some_and(|p| p.sellable));
    Ok(candidates)
}
