//! revenue: recognises the order's revenue and emits `revenue.recognised`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::OrderState;
use crate::domain::events::{OrderCustomerConfirmed, RevenueRecognised};

use super::{Handled, IncomingEvent, Stage, StageContext, StageError, StageName};

/// The revenue stage.
pub struct Revenue;

/// What revenue records for an order.
#[derive(Debug, Serialize)]
pub struct Recognition {
    /// Amount recognised in minor units.
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
    /// When control passed (UTC).
    pub control_passed_at: DateTime<Utc>,
}

#[async_trait]
impl Stage for Revenue {
    fn name(&self) -> StageName {
        StageName::Revenue
    }

    async fn handle(
        &self,
        ctx: &mut StageContext<'_>,
        event: &IncomingEvent,
    ) -> Result<Handled, StageError> {
        let confirmed: OrderCustomerConfirmed = event.payload()?;
        let order = ctx.order(&confirmed.order_id).await?;
        let amount_minor = order.order.total_minor().unwrap_or_default();
        let recognition = Recognition {
            amount_minor,
            currency: order.order.currency.to_string(),
            control_passed_at: confirmed.confirmed_at,
        };
        let recognised = RevenueRecognised {
            order_id: confirmed.order_id,
            amount_minor,
            currency: order.order.currency,
            control_passed_at: confirmed.confirmed_at,
            evidence_event_ids: vec![event.id().to_owned()],
        };
        ctx.step(&order, OrderState::Completed, &recognition, &recognised)
            .await
    }
}
