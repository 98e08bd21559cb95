//! prepare: gets the goods ready for handover and emits `goods.prepared` with the pick list.

use async_trait::async_trait;
use serde::Serialize;

use crate::domain::events::{GoodsPrepared, OrderVerified, PickLine};
use crate::domain::{Order, OrderState};

use super::{Handled, IncomingEvent, Stage, StageContext, StageError, StageName};

/// The prepare stage.
pub struct Prepare;

/// What prepare records for an order.
#[derive(Debug, Serialize)]
pub struct Preparation {
    /// What to pick.
    pub pick_list: Vec<PickLine>,
}

/// The pick list for an order: one line per product. Stock allocation and the preparation
/// checks each product requires plug in here.
pub fn prepare(order: &Order) -> Preparation {
    let pick_list = order
        .lines
        .iter()
        .map(|line| PickLine {
            sku: line.sku.clone(),
            quantity: line.quantity,
        })
        .collect();
    Preparation { pick_list }
}

#[async_trait]
impl Stage for Prepare {
    fn name(&self) -> StageName {
        StageName::Prepare
    }

    async fn handle(
        &self,
        ctx: &mut StageContext<'_>,
        event: &IncomingEvent,
    ) -> Result<Handled, StageError> {
        let verified: OrderVerified = event.payload()?;
        let order = ctx.order(&verified.order_id).await?;
        let preparation = prepare(&order.order);
        let prepared = GoodsPrepared {
            order_id: verified.order_id,
            pick_list: preparation.pick_list.clone(),
        };
        ctx.step(&order, OrderState::Prepared, &preparation, &prepared)
            .await
    }
}
