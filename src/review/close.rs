//! Closing a case: resolved outside the pipeline. When the case holds its order — a stage
//! refused the order for the case's reason and nothing has happened to it since — the order
//! is closed too, so it no longer looks like work waiting: its state becomes `closed`, its
//! timers stop, and the timeline says which case closed it. Nothing is compensated (stock
//! stays allocated, revenue stays recognised); cancelling does that, and a closed order can
//! still be cancelled. A case that does not hold its order (a forged event, a payment problem,
//! a duplicate) leaves the order as it is.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::db::batch::{self, Writes};
use crate::db::review::CaseRow;
use crate::domain::timer::TimerKind;
use crate::domain::{OrderId, OrderState};
use crate::stages::plan::{Effect, Outcome, Plan};
use crate::stages::{Needs, OrderView};

use super::ReviewError;

/// What the timeline records when a case closes its order.
#[derive(Debug, Serialize)]
pub struct Closed {
    /// The case that closed it.
    pub case_id: i64,
    /// The reason the order was held for.
    pub held_for: String,
    /// When (UTC).
    pub closed_at: DateTime<Utc>,
}

/// The plan that closes the order held by case `case`, or `None` when the case does not hold
/// it: no order, an order the pipeline has finished with, or an order whose latest stage
/// record is not the refusal for the case's reason (`latest_refusal`).
pub fn plan(
    view: &OrderView,
    case: &CaseRow,
    latest_refusal: Option<&str>,
    now: DateTime<Utc>,
) -> Option<Plan> {
    let current = view.current.as_ref()?;
    let holds = latest_refusal == Some(case.reason.as_str());
    if !holds || !current.state.can_move_to(OrderState::Closed) {
        return None;
    }
    let closed = Closed {
        case_id: case.id,
        held_for: case.reason.clone(),
        closed_at: now,
    };
    Some(
        Plan::new(Outcome::Advanced)
            .with(Effect::CancelTimers(TimerKind::AcceptanceDue))
            .with(Effect::CancelTimers(TimerKind::InstalmentDue))
            .with(Effect::Move(OrderState::Closed))
            .recording(OrderState::Closed, &closed),
    )
}

/// Closes the case's order, if the case holds it, inside the desk's transaction (which holds
/// the order's lock). Returns what the action records.
pub async fn close(
    conn: &mut PgConnection,
    case: &CaseRow,
) -> Result<serde_json::Value, ReviewError> {
    let Some(order) = &case.order_id else {
        return Ok(serde_json::json!({}));
    };
    let Ok(order_id) = OrderId::parse(order) else {
        return Ok(serde_json::json!({}));
    };
    let id = order_id.to_string();
    let needs = Needs {
        timers: true,
        ..Needs::NOTHING
    };
    let mut views = batch::load_views(conn, &needs, std::slice::from_ref(&id)).await?;
    let view = views.remove(&id).unwrap_or_default();
    let latest = crate::db::records::latest_refusal(conn, &id).await?;
    let Some(plan) = plan(&view, case, latest.as_deref(), Utc::now()) else {
        return Ok(serde_json::json!({}));
    };
    let message_id = format!("review-case-{}", case.id);
    let mut writes = Writes::default();
    for effect in &plan.effects {
        writes.add(&id, &message_id, None, effect, &view);
    }
    batch::write(conn, "review", &writes).await?;
    Ok(serde_json::json!({"order_state": OrderState::Closed.as_str()}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::fixtures::{mug_order, view_in};

    fn view(state: OrderState) -> OrderView {
        view_in(Some(state), mug_order(2))
    }

    fn case(reason: &str) -> CaseRow {
        CaseRow {
            id: 7,
            order_id: Some("ORD-1".into()),
            stage: "verify".into(),
            reason: reason.into(),
            detail: String::new(),
            required_role: "customer_service".into(),
            status: "open".into(),
            created_at: Utc::now(),
            resolved_at: None,
        }
    }

    #[test]
    fn only_a_case_that_holds_its_order_closes_it() {
        let now = Utc::now();
        let held = view(OrderState::Placed);
        let refused = Some("out_of_stock");
        let cases = [
            (OrderState::Placed, "out_of_stock", refused, true),
            (
                OrderState::HandedOver,
                "customer_complaint",
                Some("customer_complaint"),
                true,
            ),
            // Something else happened to the order since the refusal.
            (OrderState::Placed, "out_of_stock", None, false),
            (
                OrderState::Verified,
                "out_of_stock",
                Some("price_mismatch"),
                false,
            ),
            // A case that never held the order (a forged event, say).
            (OrderState::Verified, "unexpected_event", refused, false),
            // The pipeline has finished with the order.
            (
                OrderState::Completed,
                "overpayment",
                Some("overpayment"),
                false,
            ),
            (OrderState::Cancelled, "out_of_stock", refused, false),
        ];
        for (state, reason, latest, closes) in cases {
            let view = view(state);
            let plan = plan(&view, &case(reason), latest, now);
            assert_eq!(plan.is_some(), closes, "{state} {reason} {latest:?}");
            if let Some(plan) = plan {
                assert!(plan.effects.contains(&Effect::Move(OrderState::Closed)));
                assert!(
                    plan.effects
                        .contains(&Effect::CancelTimers(TimerKind::AcceptanceDue))
                );
            }
        }
        assert!(plan(&OrderView::default(), &case("out_of_stock"), refused, now).is_none());
        assert!(plan(&held, &case("out_of_stock"), refused, now).is_some());
    }
}
