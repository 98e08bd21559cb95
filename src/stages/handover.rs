//! handover: records the handover (carrier, tracking reference, time; for services the delivery
//! record) and the transfer of ownership. The order's delivery terms decide when ownership and
//! risk pass: on dispatch (like FOB shipping point) they pass now; on delivery (like FOB
//! destination) they pass when the customer receives the goods. Emits `order.handed_over`, the
//! dispatch event warehouse systems follow.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::OrderState;
use crate::domain::catalogue::OwnershipPasses;
use crate::domain::documents;
use crate::domain::events::{OrderHandedOver, Payload, ServiceSlot};
use crate::settings::StageSettings;

use super::plan::Plan;
use super::reference::Reference;
use super::view::OrderView;
use super::{Escalation, Input, Needs, Role, Stage, StageName};

/// The handover stage.
pub struct Handover {
    default_terms: String,
}

impl Handover {
    /// The stage; orders without delivery terms get `settings.default_delivery_terms`.
    pub fn new(settings: &StageSettings) -> Self {
        Self {
            default_terms: settings.default_delivery_terms.clone(),
        }
    }
}

/// What handover records for an order.
#[derive(Debug, Serialize)]
pub struct HandoverRecord {
    /// Who carries the goods.
    pub carrier: String,
    /// The carrier's reference.
    pub tracking_reference: String,
    /// When (UTC).
    pub handed_over_at: DateTime<Utc>,
    /// The delivery terms that apply.
    pub delivery_terms: String,
    /// When ownership and risk pass under them.
    pub ownership_passes: OwnershipPasses,
    /// When they passed, if they have.
    pub ownership_passed_at: Option<DateTime<Utc>>,
    /// Services delivered.
    pub services_delivered: Vec<ServiceSlot>,
}

impl Stage for Handover {
    fn name(&self) -> StageName {
        StageName::Handover
    }

    fn needs(&self) -> Needs {
        Needs {
            stage_records: true,
            parties: true,
            ..Needs::NOTHING
        }
    }

    fn decide(&self, input: &Input<'_>, view: &OrderView, refs: &Reference) -> Plan {
        let Payload::DocumentsGenerated(generated) = input.payload else {
            return super::unexpected_type(StageName::Handover, input.payload);
        };
        let Some(current) = &view.current else {
            return super::unknown_order(input.payload);
        };
        if generated.version < current.order.version {
            return Plan::already_done();
        }
        if generated.version > current.order.version {
            let why = format!("version {} was never recorded", generated.version);
            return super::unexpected_event(input.payload, why);
        }
        let to = OrderState::HandedOver;
        if let Err(plan) = super::ready(StageName::Handover, current.state, to) {
            return plan;
        }
        let code = current.order.delivery_terms_or(&self.default_terms);
        let Some(terms) = refs.terms.get(code) else {
            let refusal = Escalation::new(
                "unknown_delivery_terms",
                format!("no delivery terms {code}"),
                Role::CustomerService,
            );
            return Plan::refuse(current.state, refusal);
        };
        let now = input.now;
        let passes_now = terms.ownership_passes == OwnershipPasses::OnDispatch;
        let record = HandoverRecord {
            tracking_reference: documents::tracking_reference(
                &terms.carrier,
                generated.order_id.as_str(),
                current.order.version,
            ),
            carrier: terms.carrier.clone(),
            handed_over_at: now,
            delivery_terms: terms.code.clone(),
            ownership_passes: terms.ownership_passes,
            ownership_passed_at: passes_now.then_some(now),
            services_delivered: view.service_slots.clone(),
        };
        let handed_over = OrderHandedOver {
            order_id: generated.order_id.clone(),
            version: current.order.version,
            carrier: record.carrier.clone(),
            tracking_reference: record.tracking_reference.clone(),
            handed_over_at: now,
            delivery_terms: record.delivery_terms.clone(),
            ownership_passes: record.ownership_passes,
            ownership_passed_at: record.ownership_passed_at,
            services_delivered: record.services_delivered.clone(),
        };
        Plan::step(to, &record, handed_over)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::domain::events::DocumentsGenerated;
    use crate::stages::Outcome;

    fn generated() -> Payload {
        Payload::DocumentsGenerated(DocumentsGenerated {
            order_id: order_id(),
            version: 1,
            documents: Vec::new(),
        })
    }

    #[test]
    fn ownership_passes_as_the_terms_say() {
        let stage = Handover::new(&stage_settings());
        for (code, passes_now) in [("FOB_SHIPPING_POINT", true), ("FOB_DESTINATION", false)] {
            let mut order = mug_order(1);
            order.delivery_terms = Some(code.into());
            let view = view_in(Some(OrderState::DocumentsGenerated), order);
            let payload = generated();
            let plan = stage.decide(&input(&payload), &view, &catalogue());
            assert_eq!(plan.outcome, Outcome::Advanced);
            let Payload::OrderHandedOver(event) = &plan.emit[0] else {
                panic!()
            };
            assert_eq!(event.ownership_passed_at.is_some(), passes_now, "{code}");
            let expected = documents::tracking_reference("Royal Mail", "ORD-1", 1);
            assert_eq!(
                event.tracking_reference, expected,
                "as the documents print it"
            );
            assert!(expected.starts_with("RM") && expected.len() == 12);
        }
    }

    #[test]
    fn unknown_terms_are_refused_and_recorded() {
        let mut order = mug_order(1);
        order.delivery_terms = Some("NOPE".into());
        let view = view_in(Some(OrderState::DocumentsGenerated), order);
        let payload = generated();
        let plan = Handover::new(&stage_settings()).decide(&input(&payload), &view, &catalogue());
        assert_eq!(outcome_name(&plan), "unknown_delivery_terms");
        assert_eq!(plan.effects.len(), 1, "the refusal is recorded");
        assert!(plan.emit.is_empty());
    }
}
