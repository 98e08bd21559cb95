//! verify: checks a placed order against the internal records and emits `order.verified`.

use async_trait::async_trait;
use chrono::Utc;
use serde::Serialize;

use crate::db;
use crate::db::orders::StoredOrder;
use crate::domain::events::{OrderPlaced, OrderVerified};
use crate::domain::{EventType, Order, OrderState};

use super::{Escalation, Handled, IncomingEvent, Role, Stage, StageContext, StageError, StageName};

/// The verify stage.
pub struct Verify;

/// What verify records for an order.
#[derive(Debug, Serialize)]
pub struct Verification {
    /// The version verified.
    pub version: u32,
    /// Number of lines.
    pub lines: usize,
    /// The total in minor units.
    pub total_minor: i64,
    /// The currency.
    pub currency: String,
}

/// The checks an order must pass. Totals must be computable; the checks against the catalogue,
/// prices, stock, identity and agent authority plug in here.
pub fn check(order: &Order) -> Result<Verification, Escalation> {
    let total_minor = order.total_minor().ok_or_else(|| {
        Escalation::new("total_overflow", "order total overflows", Role::Operations)
    })?;
    Ok(Verification {
        version: order.version,
        lines: order.lines.len(),
        total_minor,
        currency: order.currency.to_string(),
    })
}

#[async_trait]
impl Stage for Verify {
    fn name(&self) -> StageName {
        StageName::Verify
    }

    async fn handle(
        &self,
        ctx: &mut StageContext<'_>,
        event: &IncomingEvent,
    ) -> Result<Handled, StageError> {
        match event.event_type {
            EventType::OrderPlaced => placed(ctx, event.payload::<OrderPlaced>()?.order).await,
            other => Err(Escalation::new(
                "unsupported_event",
                format!("verify does not handle {other}"),
                Role::Operations,
            )
            .into()),
        }
    }
}

async fn placed(ctx: &mut StageContext<'_>, order: Order) -> Result<Handled, StageError> {
    if !db::orders::insert_placed(ctx.conn(), &order).await? {
        let existing = ctx.order(&order.order_id).await?;
        if existing.order == order {
            return Ok(Handled::AlreadyDone);
        }
        return Err(Escalation::new(
            "duplicate_order_id",
            format!(
                "order {} already exists with different content",
                order.order_id
            ),
            Role::Supervisor,
        )
        .into());
    }
    let verification = check(&order)?;
    let verified = OrderVerified {
        order_id: order.order_id.clone(),
        version: order.version,
        total_minor: verification.total_minor,
        currency: order.currency,
    };
    let stored = StoredOrder {
        state: OrderState::Placed,
        order,
        updated_at: Utc::now(),
    };
    ctx.step(&stored, OrderState::Verified, &verification, &verified)
        .await
}
