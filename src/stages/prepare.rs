//! prepare: gets the order ready for handover under the terms of sale. Goods: stock allocated
//! (never oversold: the batch holds the stock rows' locks, and a line that cannot be allocated
//! allocates nothing) and the product's preparation checks recorded. Services: a delivery slot
//! booked. Emits `goods.prepared` with the pick list for the warehouse.

use std::collections::HashMap;

use chrono::{DateTime, Days, NaiveTime, Utc};
use serde::Serialize;

use crate::domain::catalogue::{Product, ProductKind};
use crate::domain::events::{
    GoodsPrepared, GoodsReleased, Payload, PickLine, PreparationCheck, ServiceSlot, Undone,
};
use crate::domain::{Order, OrderState};

use super::plan::{Effect, Plan};
use super::reference::Reference;
use super::view::{Current, OrderView};
use super::{Escalation, Input, Needs, Role, Stage, StageName, StockUse};

/// The prepare stage.
pub struct Prepare;

/// What prepare records for an order.
#[derive(Debug, Serialize)]
pub struct Preparation {
    /// The order version prepared.
    pub version: u32,
    /// Goods to pick (allocated).
    pub pick_list: Vec<PickLine>,
    /// Services booked.
    pub service_slots: Vec<ServiceSlot>,
    /// Checks done.
    pub checks: Vec<PreparationCheck>,
    /// When (UTC).
    pub prepared_at: DateTime<Utc>,
}

/// What to allocate, which slots to book and which checks to record for an order.
pub fn preparation(
    order: &Order,
    products: &HashMap<String, Product>,
    now: DateTime<Utc>,
) -> Preparation {
    let mut preparation = Preparation {
        version: order.version,
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
                let checks = product
                    .preparation_checks
                    .iter()
                    .map(|check| PreparationCheck {
                        sku: line.sku.clone(),
                        check: check.clone(),
                    });
                preparation.checks.extend(checks);
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
    let day = from.date_naive();
    let day = day
        .checked_add_days(Days::new(u64::from(lead_days.max(1))))
        .unwrap_or(day);
    day.and_time(NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default())
        .and_utc()
}

/// The effects that return the order's allocated stock, and the `goods.released` that tells
/// the warehouse the pick list of `current`'s version is void. Nothing when nothing is
/// allocated. For amendments and cancellations.
pub fn release_goods(
    current: &Current,
    view: &OrderView,
    reason: Undone,
    now: DateTime<Utc>,
) -> (Vec<Effect>, Option<GoodsReleased>) {
    if view.allocations.is_empty() {
        return (Vec::new(), None);
    }
    let released = GoodsReleased {
        order_id: current.order.order_id.clone(),
        version: current.order.version,
        reason,
        released: view
            .allocations
            .iter()
            .map(|(sku, quantity)| PickLine {
                sku: sku.clone(),
                quantity: *quantity,
            })
            .collect(),
        released_at: now,
    };
    (vec![Effect::ReleaseStock], Some(released))
}

/// The first pick line that cannot be allocated from what is available, if any. Lines of the
/// same product add up.
fn shortfall(pick_list: &[PickLine], refs: &Reference) -> Option<Escalation> {
    let mut wanted: HashMap<&str, i64> = HashMap::new();
    for line in pick_list {
        let total = wanted.entry(line.sku.as_str()).or_default();
        *total += i64::from(line.quantity);
        if *total > refs.available(&line.sku) {
            return Some(Escalation::new(
                "out_of_stock",
                format!(
                    "{}: {} units could not be allocated",
                    line.sku, line.quantity
                ),
                Role::CustomerService,
            ));
        }
    }
    None
}

impl Stage for Prepare {
    fn name(&self) -> StageName {
        StageName::Prepare
    }

    fn needs(&self) -> Needs {
        Needs {
            products: true,
            stage_records: true,
            stock: StockUse::Lock,
            ..Needs::NOTHING
        }
    }

    fn decide(&self, input: &Input<'_>, view: &OrderView, refs: &Reference) -> Plan {
        let Payload::OrderVerified(verified) = input.payload else {
            return super::unexpected_type(StageName::Prepare, input.payload);
        };
        let Some(current) = &view.current else {
            return super::unknown_order(input.payload);
        };
        if verified.version < current.order.version {
            return Plan::already_done();
        }
        if verified.version > current.order.version {
            let why = format!("version {} was never recorded", verified.version);
            return super::unexpected_event(input.payload, why);
        }
        if let Err(plan) = super::ready(StageName::Prepare, current.state, OrderState::Prepared) {
            return plan;
        }
        let preparation = preparation(&current.order, &refs.products, input.now);
        if let Some(refusal) = shortfall(&preparation.pick_list, refs) {
            return Plan::refuse(current.state, refusal);
        }
        let prepared = GoodsPrepared {
            order_id: verified.order_id.clone(),
            version: current.order.version,
            pick_list: preparation.pick_list.clone(),
            service_slots: preparation.service_slots.clone(),
            checks: preparation.checks.clone(),
            replaces_version: view.prepared_version.filter(|v| *v < current.order.version),
        };
        let allocations = preparation.pick_list.iter().map(|line| Effect::Allocate {
            sku: line.sku.clone(),
            quantity: line.quantity,
        });
        let mut plan = Plan::step(OrderState::Prepared, &preparation, prepared);
        plan.effects.splice(0..0, allocations);
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::stages::Outcome;

    fn verified(version: u32) -> Payload {
        Payload::OrderVerified(crate::domain::events::OrderVerified {
            order_id: order_id(),
            version,
            total_minor: 2500,
            currency: gbp(),
        })
    }

    #[test]
    fn decisions() {
        struct Case {
            name: &'static str,
            state: Option<OrderState>,
            event_version: u32,
            available: i64,
            expect: &'static str,
        }
        let cases = [
            Case {
                name: "allocates and advances",
                state: Some(OrderState::Verified),
                event_version: 1,
                available: 5,
                expect: "advanced",
            },
            Case {
                name: "exactly enough",
                state: Some(OrderState::Verified),
                event_version: 1,
                available: 2,
                expect: "advanced",
            },
            Case {
                name: "short of stock",
                state: Some(OrderState::Verified),
                event_version: 1,
                available: 1,
                expect: "out_of_stock",
            },
            Case {
                name: "already prepared",
                state: Some(OrderState::Prepared),
                event_version: 1,
                available: 5,
                expect: "already_done",
            },
            Case {
                name: "stale version",
                state: Some(OrderState::Verified),
                event_version: 0,
                available: 5,
                expect: "already_done",
            },
            Case {
                name: "version never recorded",
                state: Some(OrderState::Verified),
                event_version: 2,
                available: 5,
                expect: "unexpected_event",
            },
            Case {
                name: "not verified yet",
                state: Some(OrderState::Placed),
                event_version: 1,
                available: 5,
                expect: "invalid_transition",
            },
            Case {
                name: "no such order",
                state: None,
                event_version: 1,
                available: 5,
                expect: "unknown_order",
            },
        ];
        for case in cases {
            let view = view_in(case.state, mug_order(2));
            let mut refs = catalogue();
            refs.stock.insert("MUG".into(), case.available);
            let payload = verified(case.event_version);
            let plan = Prepare.decide(&input(&payload), &view, &refs);
            assert_eq!(outcome_name(&plan), case.expect, "{}", case.name);
            let allocated = plan
                .effects
                .iter()
                .any(|e| matches!(e, Effect::Allocate { .. }));
            assert_eq!(
                allocated,
                plan.outcome == Outcome::Advanced,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn services_are_booked_not_allocated() {
        let order = order_of(&[("INSTALL", 1, 4500)]);
        let view = view_in(Some(OrderState::Verified), order);
        let payload = verified(1);
        let plan = Prepare.decide(&input(&payload), &view, &catalogue());
        assert_eq!(plan.outcome, Outcome::Advanced);
        assert!(
            !plan
                .effects
                .iter()
                .any(|e| matches!(e, Effect::Allocate { .. }))
        );
        let Payload::GoodsPrepared(prepared) = &plan.emit[0] else {
            panic!("{plan:?}")
        };
        assert_eq!(prepared.service_slots.len(), 1);
        assert_eq!(
            prepared.service_slots[0].scheduled_for.to_rfc3339(),
            "2026-11-23T09:00:00+00:00"
        );
    }

    #[test]
    fn a_new_version_names_the_pick_list_it_replaces() {
        let mut order = mug_order(2);
        order.version = 2;
        let mut view = view_in(Some(OrderState::Verified), order);
        view.prepared_version = Some(1);
        let plan = Prepare.decide(&input(&verified(2)), &view, &catalogue());
        let Payload::GoodsPrepared(prepared) = &plan.emit[0] else {
            panic!()
        };
        assert_eq!(prepared.replaces_version, Some(1));
        view.prepared_version = None;
        let plan = Prepare.decide(&input(&verified(2)), &view, &catalogue());
        let Payload::GoodsPrepared(prepared) = &plan.emit[0] else {
            panic!()
        };
        assert_eq!(prepared.replaces_version, None);
    }
}
