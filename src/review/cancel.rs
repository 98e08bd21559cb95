//! Cancelling an order from the review desk. The decision is a pure plan over the order as
//! recorded — stock returned, documents voided, a credit note for an invoice already issued,
//! revenue reversed, timers stopped, a record in the timeline, `order.cancelled` — written by set exactly as a stage's plan is, under the
//! same locks (the order's, then the stock rows' in SKU order).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::db::batch::{self, Writes};
use crate::db::review::CaseRow;
use crate::domain::events::{OrderCancelled, Payload, Undone};
use crate::domain::timer::TimerKind;
use crate::domain::{OrderId, OrderState};
use crate::envelope::WireEvent;
use crate::stages::plan::{Effect, Outcome, Plan};
use crate::stages::{Needs, OrderView, StockUse};

use super::ReviewError;

/// What the desk loads of an order to cancel it.
const NEEDS: Needs = Needs {
    allocations: true,
    documents: true,
    timers: true,
    recognitions: true,
    ledger: true,
    stock: StockUse::None,
    ..Needs::NOTHING
};

/// The plan that cancels `order_id` from case `case_id`, or why it cannot be cancelled. `refs`
/// holds the credit-note sequence and the customer's record.
pub fn plan(
    order_id: &OrderId,
    view: &OrderView,
    refs: &crate::stages::Reference,
    case_id: i64,
    note: &str,
    now: DateTime<Utc>,
) -> Result<Plan, String> {
    let Some(current) = &view.current else {
        return Err(format!("order {order_id} does not exist"));
    };
    if !current.state.can_move_to(OrderState::Cancelled) {
        return Err(format!("order {order_id} is already {}", current.state));
    }
    let cancelled = OrderCancelled {
        order_id: order_id.clone(),
        case_id,
        reason: note.to_owned(),
        stock_released: view.allocations.iter().map(|(_, q)| i64::from(*q)).sum(),
        documents_voided: view.live_documents,
        revenue_reversed_minor: view.recognised.values().map(|(net, _)| net).sum(),
        cancelled_at: now,
    };
    let reason = Undone::Cancelled;
    let (release, released) = crate::stages::prepare::release_goods(current, view, reason, now);
    let (mut reverse, reversed) =
        crate::stages::revenue::reverse_recognised(current, view, reason, now);
    let credit = crate::stages::credit::for_cancellation(view, refs, now);
    let mut plan = Plan::new(Outcome::Advanced);
    plan.effects.extend(release);
    plan.effects.push(Effect::VoidDocuments);
    if let Some(credit) = credit {
        crate::stages::credit::name_in_postings(&mut reverse, &credit);
        plan.effects.push(Effect::Issue(Box::new(credit)));
    }
    plan.effects.extend(reverse);
    plan.emit.extend(released.map(Payload::from));
    plan.emit.extend(reversed.map(Payload::from));
    Ok(plan
        .with(Effect::CancelTimers(TimerKind::AcceptanceDue))
        .with(Effect::CancelTimers(TimerKind::InstalmentDue))
        .with(Effect::Move(OrderState::Cancelled))
        .recording(OrderState::Cancelled, &cancelled)
        .emitting(cancelled))
}

/// Cancels the case's order inside the desk's transaction (which holds the order's lock).
/// Returns what the action records and the events to publish.
pub async fn cancel(
    conn: &mut PgConnection,
    case: &CaseRow,
    order_id: &OrderId,
    note: &str,
) -> Result<(serde_json::Value, Vec<(i64, WireEvent)>), ReviewError> {
    let id = order_id.to_string();
    let mut views = batch::load_views(conn, &NEEDS, std::slice::from_ref(&id)).await?;
    let mut view = views.remove(&id).unwrap_or_default();
    let mut refs = credit_reference(conn, &view).await?;
    let plan =
        plan(order_id, &view, &refs, case.id, note, Utc::now()).map_err(ReviewError::Invalid)?;
    let message_id = format!("review-case-{}", case.id);
    let mut writes = Writes::default();
    for effect in &plan.effects {
        writes.add(&id, &message_id, None, effect, &view);
        view.apply(effect, &message_id, &mut refs);
    }
    let trace = super::desk::order_trace(conn, &id, case.id).await?;
    writes.outbox = plan
        .emit
        .iter()
        .map(|payload| WireEvent::of(super::desk::SOURCE, payload, Some(&trace)))
        .collect();
    batch::lock_stock(conn, &writes.stock_skus()).await?;
    let written = batch::write(conn, "review", &writes).await?;
    let detail = plan
        .emit
        .iter()
        .find(|p| matches!(p, Payload::OrderCancelled(_)))
        .map(Payload::to_data)
        .unwrap_or_default();
    let emitted = written.outbox_ids.into_iter().zip(writes.outbox).collect();
    Ok((detail, emitted))
}

/// The credit-note sequence (locked, when the order has a live invoice) and the customer's record.
async fn credit_reference(
    conn: &mut PgConnection,
    view: &OrderView,
) -> Result<crate::stages::Reference, ReviewError> {
    let Some(invoice) = &view.live_invoice else {
        return Ok(crate::stages::Reference::default());
    };
    let needs = Needs {
        sequences: true,
        parties: true,
        ..Needs::NOTHING
    };
    let mut keys = batch::ReferenceKeys::default();
    keys.customers.insert(invoice.customer_id.clone());
    Ok(batch::load_reference(conn, &needs, &keys).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ledger::{Account, PostingKind};
    use crate::stages::view::Current;

    fn view(state: OrderState) -> OrderView {
        let order = serde_json::from_value(serde_json::json!({
            "order_id": "O-1", "customer_id": "C-1", "channel": "web", "currency": "GBP",
            "placed_at": "2026-11-20T09:00:00Z",
            "lines": [{"sku": "MUG", "quantity": 2, "unit_price_minor": 1250}],
        }))
        .unwrap();
        let mut view = OrderView {
            current: Some(Current { state, order }),
            allocations: vec![("MUG".into(), 2)],
            live_documents: 3,
            ..OrderView::default()
        };
        view.recognised.insert((0, 0), (2500, 500));
        view.ledger
            .insert((Account::Revenue, PostingKind::Recognition), -2500);
        view.ledger
            .insert((Account::TaxPayable, PostingKind::Recognition), -500);
        view.ledger
            .insert((Account::Receivable, PostingKind::Recognition), 3000);
        view
    }

    #[test]
    fn a_cancellation_undoes_everything_and_says_so() {
        let id = OrderId::parse("O-1").unwrap();
        let plan = plan(
            &id,
            &view(OrderState::Confirmed),
            &crate::stages::Reference::default(),
            7,
            "customer asked",
            Utc::now(),
        )
        .unwrap();
        let event = plan
            .emit
            .iter()
            .find_map(|p| match p {
                crate::domain::events::Payload::OrderCancelled(event) => Some(event),
                _ => None,
            })
            .expect("order.cancelled is emitted");
        let kinds: Vec<_> = plan
            .emit
            .iter()
            .map(|p| p.event_type().routing_key())
            .collect();
        assert_eq!(
            kinds,
            ["goods.released", "revenue.reversed", "order.cancelled"]
        );
        assert_eq!(
            (
                event.stock_released,
                event.documents_voided,
                event.revenue_reversed_minor
            ),
            (2, 3, 2500)
        );
        let mut v = view(OrderState::Confirmed);
        let mut refs = crate::stages::Reference::default();
        for effect in &plan.effects {
            v.apply(effect, "m", &mut refs);
        }
        assert_eq!(v.state(), Some(OrderState::Cancelled));
        for account in Account::ALL {
            assert_eq!(v.balance(account), 0, "{account}");
        }
        assert_eq!(refs.available("MUG"), 2, "stock returned");
    }

    #[test]
    fn a_cancelled_order_cannot_be_cancelled_again() {
        let id = OrderId::parse("O-1").unwrap();
        let refs = crate::stages::Reference::default();
        assert!(
            plan(
                &id,
                &view(OrderState::Cancelled),
                &refs,
                7,
                "again",
                Utc::now()
            )
            .is_err()
        );
        assert!(plan(&id, &OrderView::default(), &refs, 7, "none", Utc::now()).is_err());
    }
}
