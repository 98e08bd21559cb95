//! handover: records the handover to the carrier and emits `order.handed_over`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::events::{DocumentsGenerated, OrderHandedOver};
use crate::domain::{Order, OrderState};

use super::{Handled, IncomingEvent, Stage, StageContext, StageError, StageName};

/// The handover stage.
pub struct Handover;

/// What handover records for an order.
#[derive(Debug, Serialize)]
pub struct HandoverRecord {
    /// Who carries the goods.
    pub carrier: String,
    /// The carrier's reference.
    pub tracking_reference: String,
    /// When (UTC).
    pub handed_over_at: DateTime<Utc>,
}

/// The handover of an order. Carrier choice and the delivery terms that decide when ownership
/// and risk pass plug in here.
pub fn hand_over(order: &Order, now: DateTime<Utc>) -> HandoverRecord {
    HandoverRecord {
        carrier: "own-fleet".into(),
        tracking_reference: format!("TRK-{}", order.order_id),
        handed_over_at: now,
    }
}

#[async_trait]
impl Stage for Handover {
    fn name(&self) -> StageName {
        StageName::Handover
    }

    async fn handle(
        &self,
        ctx: &mut StageContext<'_>,
        event: &IncomingEvent,
    ) -> Result<Handled, StageError> {
        let generated: DocumentsGenerated = event.payload()?;
        let order = ctx.order(&generated.order_id).await?;
        let record = hand_over(&order.order, Utc::now());
        let handed_over = OrderHandedOver {
            order_id: generated.order_id,
            carrier: record.carrier.clone(),
            tracking_reference: record.tracking_reference.clone(),
            handed_over_at: record.handed_over_at,
        };
        ctx.step(&order, OrderState::HandedOver, &record, &handed_over)
            .await
    }
}
