//! prepare: gets the order ready for handover under the terms of sale. Goods: stock allocated
//! atomically (never negative, never oversold, even with several processes) and the product's
//! preparation checks recorded. Services: a delivery slot booked. Emits `goods.prepared` with the
//! pick list for the warehouse.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Days, NaiveTime, Utc};
use serde::Serialize;
use sqlx::Acquire;

use crate::db;
use crate::domain::catalogue::{Product, ProductKind};
use crate::domain::events::{
    GoodsPrepared, OrderVerified, PickLine, PreparationCheck, ServiceSlot,
};
use crate::domain::{Order, OrderState};

use super::{Escalation, Handled, IncomingEvent, Role, Stage, StageContext, StageError, StageName};

/// The prepare stage.
pub struct Prepare;

/// What prepare records for an order.
#[derive(Debug, Serialize)]
pub struct Preparation {
    /// Goods to pick (allocated).
    pub pick_list: Vec<PickLine>,
    /// Services booked.
    pub service_slots: Vec<ServiceSlot>,
    /// Checks done.
    pub checks: Vec<PreparationCheck>,
    /// When (UTC).
    pub prepared_at: DateTime<Utc>,
}

/// The plan for an order: what to allocate, which slots to book, which checks to record.
pub fn plan(order: &Order, products: &HashMap<String, Product>, now: DateTime<Utc>) -> Preparation {
    let mut preparation = Preparation {
        pick_list: Vec::new(),
        service_slots: Vec::new(),
        checks: Vec::new(),
        prepared_at: now,
    };
    for line in &order.lines {
        let Some(product) = products.get(&line.sku) else {
            continue;
        };
        match product.kind {
            ProductKind::Goods => {
                preparation.pick_list.push(PickLine {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                });
                preparation
                    .checks
                    .extend(
                        product
                            .preparation_checks
                            .iter()
                            .map(|check| PreparationCheck {
                                sku: line.sku.clone(),
                                check: check.clone(),
                            }),
                    );
            }
            ProductKind::Service => preparation.service_slots.push(ServiceSlot {
                sku: line.sku.clone(),
                quantity: line.quantity,
                scheduled_for: slot(now.max(order.placed_at), product.lead_time_days),
            }),
        }
    }
    preparation
}

/// 09:00 UTC, `lead_days` days after `from`.
fn slot(from: DateTime<Utc>, lead_days: u32) -> DateTime<Utc> {
    let day = from.date_naive() + Days::new(u64::from(lead_days.max(1)));
    day.and_time(NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default())
        .and_utc()
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
        if verified.version < order.order.version {
            return Ok(Handled::AlreadyDone);
        }
        if let Some(done) = ctx.readiness(&order, OrderState::Prepared)? {
            return Ok(done);
        }
        let skus: Vec<String> = order.order.lines.iter().map(|l| l.sku.clone()).collect();
        let products = ctx.products(&skus).await?;
        let preparation = plan(&order.order, &products, Utc::now());
        if let Err(refusal) = allocate(ctx, &order.order, &preparation.pick_list).await? {
            return ctx.refuse(&verified.order_id, order.state, refusal).await;
        }
        let prepared = GoodsPrepared {
            order_id: verified.order_id,
            version: order.order.version,
            pick_list: preparation.pick_list.clone(),
            service_slots: preparation.service_slots.clone(),
            checks: preparation.checks.clone(),
        };
        ctx.step(&order, OrderState::Prepared, &preparation, &prepared)
            .await
    }
}

/// Allocates every pick line, or none: a line that cannot be allocated rolls back the others.
async fn allocate(
    ctx: &mut StageContext<'_>,
    order: &Order,
    pick_list: &[PickLine],
) -> Result<Result<(), Escalation>, StageError> {
    let mut all = ctx.conn().begin().await?;
    for line in pick_list {
        let id = order.order_id.as_str();
        if !db::stock::allocate(&mut all, id, order.version, &line.sku, line.quantity).await? {
            all.rollback().await?;
            return Ok(Err(Escalation::new(
                "out_of_stock",
                format!(
                    "{}: {} units could not be allocated",
                    line.sku, line.quantity
                ),
                Role::CustomerService,
            )));
        }
    }
    all.commit().await?;
    Ok(Ok(()))
}
