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
//! (cross-sell and up-sell) the customer has not bought; when there is nothing to suggest, no
//! such event is sent.
//!
//! The customer's answer and the handover may arrive in either order: an answer that comes
//! first is kept and applied when the handover arrives (a complaint or query that came first
//! means no acceptance deadline starts, and an order already accepted gets none either).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::events::{
    ConfirmationBasis, ConfirmationOutcome, OrderCustomerConfirmed, OrderDelivered,
    OrderHandedOver, Payload, SalesOpportunity, Suggestion,
};
use crate::domain::timer::TimerKind;
use crate::domain::{Order, OrderState};
use crate::settings::StageSettings;

use super::plan::{Answer, Effect, Outcome, Plan, Timer};
use super::reference::Reference;
use super::view::{Current, OrderView};
use super::{Escalation, Input, Needs, Role, Stage, StageName};

/// The confirm stage.
pub struct Confirm {
    window: chrono::Duration,
}

impl Confirm {
    /// The stage, with the acceptance window from `settings`.
    pub fn new(settings: &StageSettings) -> Self {
        let secs = i64::try_from(settings.acceptance_window_secs).unwrap_or(i64::MAX / 1000);
        Self {
            window: chrono::Duration::try_seconds(secs).unwrap_or(chrono::Duration::MAX),
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

impl Stage for Confirm {
    fn name(&self) -> StageName {
        StageName::Confirm
    }

    fn needs(&self) -> Needs {
        Needs {
            timers: true,
            answers: true,
            stage_records: true,
            products: true,
            related: true,
            ..Needs::NOTHING
        }
    }

    fn decide(&self, input: &Input<'_>, view: &OrderView, refs: &Reference) -> Plan {
        match input.payload {
            Payload::OrderHandedOver(handed_over) => {
                self.handed_over(input, handed_over, view, refs)
            }
            Payload::CustomerConfirmation(answer) => {
                let answer = Answer {
                    message_id: input.message_id.to_owned(),
                    outcome: answer.outcome,
                    reason: answer.reason.clone(),
                };
                customer_answered(input, answer, view, refs)
            }
            Payload::AcceptanceDue(due) => match &view.current {
                Some(current) if current.state == OrderState::HandedOver => {
                    let basis = ConfirmationBasis::Deemed;
                    confirm(current, basis, input.message_id, due.due_at, refs)
                }
                _ => Plan::already_done(),
            },
            other => super::unexpected_type(StageName::Confirm, other),
        }
    }
}

impl Confirm {
    fn handed_over(
        &self,
        input: &Input<'_>,
        handed_over: &OrderHandedOver,
        view: &OrderView,
        refs: &Reference,
    ) -> Plan {
        let Some(current) = &view.current else {
            return super::unknown_order(input.payload);
        };
        if current.state < OrderState::HandedOver {
            return super::unexpected_event(
                input.payload,
                format!("the order is {}", current.state),
            );
        }
        if handed_over.version != current.order.version {
            let why = format!("version {} was never handed over", handed_over.version);
            return super::unexpected_event(input.payload, why);
        }
        if current.state != OrderState::HandedOver {
            // Accepted (or cancelled) already: no deadline to start.
            return Plan::already_done();
        }
        let mut plan = Plan::new(Outcome::Waiting);
        // A complaint or query that came before the handover is already with customer service:
        // silence cannot be deemed acceptance, so no deadline starts.
        if !view.answers.iter().any(|a| a.outcome.is_concern()) {
            plan = plan.with(Effect::Schedule(Timer {
                kind: TimerKind::AcceptanceDue,
                due_at: handed_over.handed_over_at + self.window,
                payload: serde_json::json!({}),
            }));
        }
        let receipt = view
            .answers
            .iter()
            .find(|a| a.outcome == ConfirmationOutcome::Delivered);
        if let Some(receipt) = receipt {
            plan = delivered(plan, current, view, &receipt.message_id, input.now);
        }
        match first_acceptance(view, None) {
            Some(evidence) => {
                let basis = ConfirmationBasis::Explicit;
                plan.then(confirm(current, basis, &evidence, input.now, refs))
            }
            None => plan,
        }
    }
}

fn customer_answered(
    input: &Input<'_>,
    answer: Answer,
    view: &OrderView,
    refs: &Reference,
) -> Plan {
    let outcome = answer.outcome;
    let plan = Plan::new(Outcome::Waiting).with(Effect::KeepAnswer(answer));
    let current = view.current.as_ref();
    let handed_over = current.filter(|c| c.state >= OrderState::HandedOver);
    match outcome {
        ConfirmationOutcome::Accepted => match handed_over {
            Some(current) => {
                let evidence = first_acceptance(view, Some(input.message_id)).unwrap_or_default();
                let basis = ConfirmationBasis::Explicit;
                plan.then(confirm(current, basis, &evidence, input.now, refs))
            }
            None => plan,
        },
        ConfirmationOutcome::Delivered => match current {
            Some(current) if current.state == OrderState::HandedOver => {
                delivered(plan, current, view, input.message_id, input.now)
            }
            _ => plan,
        },
        ConfirmationOutcome::Complaint | ConfirmationOutcome::Query => {
            let (reason, what) = if outcome == ConfirmationOutcome::Complaint {
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
            let plan = plan.with(Effect::CancelTimers(TimerKind::AcceptanceDue));
            match current {
                Some(current) => plan.refused(current.state, escalation),
                None => Plan {
                    outcome: Outcome::Escalated(escalation),
                    ..plan
                },
            }
        }
    }
}

/// The first message in which the customer accepted the order: among those kept, else `this`.
fn first_acceptance(view: &OrderView, this: Option<&str>) -> Option<String> {
    view.answers
        .iter()
        .find(|a| a.outcome == ConfirmationOutcome::Accepted)
        .map(|a| a.message_id.clone())
        .or(this.map(str::to_owned))
}

/// Adds the receipt: `order.delivered`, once per order.
fn delivered(
    plan: Plan,
    current: &Current,
    view: &OrderView,
    message_id: &str,
    now: DateTime<Utc>,
) -> Plan {
    if view.delivered {
        return plan;
    }
    let detail = serde_json::json!({ "receipt": message_id });
    plan.recording(OrderState::HandedOver, &detail)
        .emitting(OrderDelivered {
            order_id: current.order.order_id.clone(),
            delivered_at: now,
        })
}

fn confirm(
    current: &Current,
    basis: ConfirmationBasis,
    evidence: &str,
    confirmed_at: DateTime<Utc>,
    refs: &Reference,
) -> Plan {
    let to = OrderState::Confirmed;
    if let Err(plan) = super::ready(StageName::Confirm, current.state, to) {
        return plan;
    }
    let suggestions = suggestions(&current.order, refs);
    let record = ConfirmationRecord {
        basis,
        evidence_message_id: evidence.to_owned(),
        confirmed_at,
        suggestions: suggestions.clone(),
    };
    let confirmed = OrderCustomerConfirmed {
        order_id: current.order.order_id.clone(),
        basis,
        confirmed_at,
    };
    let mut plan = Plan::new(Outcome::Advanced)
        .with(Effect::CancelTimers(TimerKind::AcceptanceDue))
        .then(Plan::step(to, &record, confirmed));
    if !suggestions.is_empty() {
        plan = plan.emitting(SalesOpportunity {
            order_id: current.order.order_id.clone(),
            customer_id: current.order.customer_id.clone(),
            suggestions,
        });
    }
    plan
}

/// Related products of what was ordered, sellable, that the customer has never bought.
pub fn suggestions(order: &Order, refs: &Reference) -> Vec<Suggestion> {
    let empty = HashSet::new();
    let bought = refs.bought.get(&order.customer_id).unwrap_or(&empty);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in &order.lines {
        let related = refs.products.get(&line.sku).map(|p| p.related.as_slice());
        for related in related.unwrap_or_default() {
            let sellable = refs.products.get(&related.sku).is_some_and(|p| p.sellable);
            if sellable && !bought.contains(&related.sku) && seen.insert(related.sku.clone()) {
                out.push(Suggestion {
                    sku: related.sku.clone(),
                    relation: related.relation,
                    because_of: line.sku.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::domain::events::{AcceptanceDue, CustomerConfirmation};
    use crate::stages::view::KeptAnswer;

    fn stage() -> Confirm {
        Confirm::new(&stage_settings())
    }

    fn handed_over() -> Payload {
        Payload::OrderHandedOver(OrderHandedOver {
            order_id: order_id(),
            version: 1,
            carrier: "Royal Mail".into(),
            tracking_reference: "RM1".into(),
            handed_over_at: now(),
            delivery_terms: "FOB_SHIPPING_POINT".into(),
            ownership_passes: crate::domain::catalogue::OwnershipPasses::OnDispatch,
            ownership_passed_at: Some(now()),
            services_delivered: Vec::new(),
        })
    }

    fn answer(outcome: ConfirmationOutcome) -> Payload {
        Payload::CustomerConfirmation(CustomerConfirmation {
            order_id: order_id(),
            outcome,
            reason: None,
        })
    }

    fn kept(outcome: ConfirmationOutcome) -> KeptAnswer {
        KeptAnswer {
            message_id: format!("earlier-{}", outcome.as_str()),
            outcome,
        }
    }

    fn scheduled(plan: &Plan) -> bool {
        plan.effects
            .iter()
            .any(|e| matches!(e, Effect::Schedule(_)))
    }

    fn emitted(plan: &Plan) -> Vec<&'static str> {
        plan.emit
            .iter()
            .map(|p| p.event_type().routing_key())
            .collect()
    }

    #[test]
    fn handover_starts_the_deadline_unless_the_customer_spoke_first() {
        use ConfirmationOutcome::*;
        let cases: [(&[ConfirmationOutcome], bool, &[&str], &str); 5] = [
            (&[], true, &[], "waiting"),
            (
                &[Accepted],
                true,
                &["order.customer_confirmed", "sales.opportunity"],
                "advanced",
            ),
            (&[Delivered], true, &["order.delivered"], "waiting"),
            (&[Complaint], false, &[], "waiting"),
            (
                &[Query, Accepted],
                false,
                &["order.customer_confirmed", "sales.opportunity"],
                "advanced",
            ),
        ];
        for (answers, deadline, events, outcome) in cases {
            let mut view = view_in(Some(OrderState::HandedOver), mug_order(1));
            view.answers = answers.iter().map(|o| kept(*o)).collect();
            let payload = handed_over();
            let plan = stage().decide(&input(&payload), &view, &catalogue());
            assert_eq!(scheduled(&plan), deadline, "{answers:?}");
            assert_eq!(emitted(&plan), events, "{answers:?}");
            assert_eq!(outcome_name(&plan), outcome, "{answers:?}");
        }
    }

    #[test]
    fn a_handover_after_acceptance_starts_no_deadline() {
        let view = view_in(Some(OrderState::Confirmed), mug_order(1));
        let payload = handed_over();
        let plan = stage().decide(&input(&payload), &view, &catalogue());
        assert_eq!(plan, Plan::already_done());
    }

    #[test]
    fn a_handover_the_order_never_had_is_refused() {
        for state in [None, Some(OrderState::Prepared)] {
            let view = view_in(state, mug_order(1));
            let payload = handed_over();
            let plan = stage().decide(&input(&payload), &view, &catalogue());
            assert!(matches!(
                outcome_name(&plan),
                "unknown_order" | "unexpected_event"
            ));
            assert!(plan.effects.is_empty() && plan.emit.is_empty());
        }
    }

    #[test]
    fn answers() {
        use ConfirmationOutcome::*;
        let cases = [
            (
                Accepted,
                Some(OrderState::HandedOver),
                "advanced",
                vec!["order.customer_confirmed", "sales.opportunity"],
            ),
            (Accepted, Some(OrderState::Prepared), "waiting", vec![]),
            (Accepted, None, "waiting", vec![]),
            (
                Delivered,
                Some(OrderState::HandedOver),
                "waiting",
                vec!["order.delivered"],
            ),
            (Delivered, Some(OrderState::Confirmed), "waiting", vec![]),
            (
                Complaint,
                Some(OrderState::HandedOver),
                "customer_complaint",
                vec![],
            ),
            (Query, None, "customer_query", vec![]),
        ];
        for (outcome, state, expect, events) in cases {
            let view = view_in(state, mug_order(1));
            let payload = answer(outcome);
            let plan = stage().decide(&input(&payload), &view, &catalogue());
            assert_eq!(outcome_name(&plan), expect, "{outcome:?} {state:?}");
            assert_eq!(emitted(&plan), events, "{outcome:?} {state:?}");
            assert!(
                matches!(plan.effects[0], Effect::KeepAnswer(_)),
                "answers are kept"
            );
        }
    }

    #[test]
    fn silence_is_deemed_acceptance_only_while_handed_over() {
        let due = Payload::AcceptanceDue(AcceptanceDue {
            order_id: order_id(),
            due_at: now(),
        });
        let view = view_in(Some(OrderState::HandedOver), mug_order(1));
        let plan = stage().decide(&input(&due), &view, &catalogue());
        assert_eq!(outcome_name(&plan), "advanced");
        let view = view_in(Some(OrderState::Confirmed), mug_order(1));
        assert_eq!(
            stage().decide(&input(&due), &view, &catalogue()),
            Plan::already_done()
        );
    }

    #[test]
    fn suggestions_skip_what_the_customer_bought_and_what_is_not_for_sale() {
        let mut refs = catalogue();
        assert_eq!(suggestions(&mug_order(1), &refs).len(), 1);
        refs.bought
            .insert("C-1".into(), ["SAUCER".to_owned()].into());
        assert!(suggestions(&mug_order(1), &refs).is_empty());
        refs.bought.clear();
        refs.products.get_mut("SAUCER").unwrap().sellable = false;
        assert!(suggestions(&mug_order(1), &refs).is_empty());
    }
}
