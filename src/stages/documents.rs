//! documents: produces the handover documents. Goods get a delivery note and a packing list,
//! services a service-delivery record, and every order an invoice. Numbers come from a gap-free
//! sequence per kind (locked for the batch and numbered in delivery order); each document is
//! stored as data, rendered as PDF and fingerprinted with SHA-256. Documents name the customer
//! and their addresses as the customer's records say at issue time, the carrier and tracking
//! reference handover will record, the delivery terms spelt out, and on the invoice the VAT
//! summary and the due date from the customer's payment terms. Emits `documents.generated`.

use serde::Serialize;

use chrono::Days;

use crate::domain::catalogue::DEFAULT_PAYMENT_TERMS_DAYS;
use crate::domain::documents::{
    self, Buyer, Consignment, DocumentContent, DocumentKind, PaymentDue, Seller, TermsOfDelivery,
};
use crate::domain::events::{DocumentRef, DocumentsGenerated, Payload};
use crate::domain::{Order, OrderState};
use crate::settings::StageSettings;

use super::plan::{Effect, IssuedDocument, Plan};
use super::reference::Reference;
use super::view::OrderView;
use super::{Input, Needs, Stage, StageName};

/// The documents stage.
pub struct Documents {
    default_terms: String,
    /// Printed at the top of every document, when configured.
    seller: Option<Seller>,
}

impl Documents {
    /// The stage; orders without delivery terms get `settings.default_delivery_terms`, and
    /// documents name `settings.seller`.
    pub fn new(settings: &StageSettings) -> Self {
        Self {
            default_terms: settings.default_delivery_terms.clone(),
            seller: settings.seller.seller(),
        }
    }
}

/// What documents records for an order.
#[derive(Debug, Serialize)]
pub struct DocumentSet {
    /// The documents produced.
    pub documents: Vec<DocumentRef>,
    /// The invoice's totals.
    pub invoice_totals: documents::Totals,
}

impl Stage for Documents {
    fn name(&self) -> StageName {
        StageName::Documents
    }

    fn needs(&self) -> Needs {
        Needs {
            products: true,
            sequences: true,
            parties: true,
            customer_details: true,
            ..Needs::NOTHING
        }
    }

    fn decide(&self, input: &Input<'_>, view: &OrderView, refs: &Reference) -> Plan {
        let Payload::GoodsPrepared(prepared) = input.payload else {
            return super::unexpected_type(StageName::Documents, input.payload);
        };
        let Some(current) = &view.current else {
            return super::unknown_order(input.payload);
        };
        if prepared.version < current.order.version {
            return Plan::already_done();
        }
        if prepared.version > current.order.version {
            let why = format!("version {} was never recorded", prepared.version);
            return super::unexpected_event(input.payload, why);
        }
        let to = OrderState::DocumentsGenerated;
        if let Err(plan) = super::ready(StageName::Documents, current.state, to) {
            return plan;
        }
        let issued = self.issue(&current.order, refs, input);
        let refs_out: Vec<DocumentRef> = issued
            .iter()
            .map(|d| DocumentRef {
                kind: d.content.kind.as_str().into(),
                number: d.content.number.clone(),
                sha256: d.sha256.clone(),
            })
            .collect();
        let set = DocumentSet {
            documents: refs_out.clone(),
            invoice_totals: documents::totals(&documents::priced_lines(
                &current.order,
                &refs.products,
            )),
        };
        let generated = DocumentsGenerated {
            order_id: prepared.order_id.clone(),
            version: current.order.version,
            documents: refs_out,
        };
        let mut plan = Plan::step(to, &set, generated);
        plan.effects
            .splice(0..0, issued.into_iter().map(|d| Effect::Issue(Box::new(d))));
        plan
    }
}

impl Documents {
    /// Every document the order needs, numbered from the batch's sequences and rendered.
    fn issue(&self, order: &Order, refs: &Reference, input: &Input<'_>) -> Vec<IssuedDocument> {
        let priced = documents::priced_lines(order, &refs.products);
        let code = order.delivery_terms_or(&self.default_terms).to_owned();
        let terms = refs.terms.get(&code);
        let order_id = order.order_id.to_string();
        let consignment = terms.map(|t| Consignment {
            carrier: t.carrier.clone(),
            service: t.carrier_service.clone(),
            tracking_reference: documents::tracking_reference(&t.carrier, &order_id, order.version),
        });
        let customer = refs.customers.get(&order.customer_id);
        let buyer = customer.and_then(|c| match (&c.erased_at, &c.details) {
            (Some(_), _) => Some(Buyer::Erased),
            (None, Some(details)) => Some(Buyer::Known {
                name: details.name.clone()?,
                billing_address: details.billing_address.clone(),
                delivery_address: details.delivery_address.clone(),
            }),
            (None, None) => None,
        });
        let terms_days = customer.map_or(DEFAULT_PAYMENT_TERMS_DAYS, |c| c.payment_terms_days);
        let date = input.now.date_naive();
        let payment = PaymentDue {
            terms_days,
            due_date: date
                .checked_add_days(Days::new(u64::from(terms_days)))
                .unwrap_or(date),
        };
        documents::kinds_needed(order, &refs.products)
            .into_iter()
            .map(|kind| {
                let value = refs.next_number(kind);
                let lines = documents::lines_for(kind, &priced);
                let content = DocumentContent {
                    kind,
                    number: kind.number(value),
                    order_id: order_id.clone(),
                    version: order.version,
                    customer_id: order.customer_id.clone(),
                    buyer: buyer.clone(),
                    currency: order.currency,
                    issued_at: input.now,
                    totals: documents::totals(&lines),
                    lines,
                    delivery_terms: code.clone(),
                    terms: terms.map(TermsOfDelivery::from),
                    consignment: consignment.clone().filter(|_| kind.shipping()),
                    payment: (kind == DocumentKind::Invoice).then_some(payment),
                    supply_date: kind.priced().then_some(date),
                    replaces: None,
                    seller: self.seller.clone(),
                };
                IssuedDocument::render(content, value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::domain::events::{GoodsPrepared, PickLine};
    use crate::stages::Outcome;

    fn prepared(version: u32) -> Payload {
        Payload::GoodsPrepared(GoodsPrepared {
            order_id: order_id(),
            version,
            pick_list: vec![PickLine {
                sku: "MUG".into(),
                quantity: 2,
            }],
            service_slots: Vec::new(),
            checks: Vec::new(),
            replaces_version: None,
        })
    }

    fn stage() -> Documents {
        Documents::new(&stage_settings())
    }

    #[test]
    fn goods_get_three_documents_numbered_from_the_sequences() {
        let view = view_in(Some(OrderState::Prepared), mug_order(2));
        let mut refs = catalogue();
        refs.next_numbers.insert(DocumentKind::Invoice, 41);
        let payload = prepared(1);
        let plan = stage().decide(&input(&payload), &view, &refs);
        assert_eq!(plan.outcome, Outcome::Advanced);
        let numbers: Vec<String> = plan
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::Issue(d) => Some(d.content.number.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(numbers, ["DN-000001", "PL-000001", "INV-000041"]);
        let Effect::Issue(invoice) = &plan.effects[2] else {
            panic!()
        };
        assert_eq!(invoice.content.totals.gross_minor, 3000);
        assert!(invoice.pdf.starts_with(b"%PDF"));
        let due = invoice.content.payment.expect("an invoice has a due date");
        assert_eq!(
            due.due_date.to_string(),
            "2026-12-20",
            "30 days after 2026-11-20"
        );
        assert_eq!(
            invoice.content.buyer,
            Some(Buyer::Known {
                name: "Ada Lovelace".into(),
                billing_address: Some("12 St James's Square, London SW1Y 4JH".into()),
                delivery_address: None,
            })
        );
        assert!(invoice.content.consignment.is_none());
        let Effect::Issue(note) = &plan.effects[0] else {
            panic!()
        };
        let consignment = note.content.consignment.as_ref().expect("a carrier");
        assert_eq!(
            consignment.tracking_reference,
            documents::tracking_reference("Royal Mail", "ORD-1", 1)
        );
        assert!(note.content.payment.is_none());
    }

    #[test]
    fn a_customer_erased_before_issue_is_printed_as_erased() {
        let view = view_in(Some(OrderState::Prepared), mug_order(2));
        let mut refs = catalogue();
        let customer = refs.customers.get_mut("C-1").unwrap();
        customer.erased_at = Some(now());
        customer.details = Some(crate::stages::reference::CustomerDetails {
            name: None,
            billing_address: None,
            delivery_address: None,
        });
        let payload = prepared(1);
        let plan = stage().decide(&input(&payload), &view, &refs);
        for effect in &plan.effects {
            if let Effect::Issue(d) = effect {
                assert_eq!(d.content.buyer, Some(Buyer::Erased), "{}", d.content.number);
            }
        }
    }

    #[test]
    fn stale_early_and_repeated_events_issue_nothing() {
        for (state, version, expect) in [
            (OrderState::DocumentsGenerated, 1, "already_done"),
            (OrderState::Prepared, 0, "already_done"),
            (OrderState::Prepared, 3, "unexpected_event"),
            (OrderState::Verified, 1, "invalid_transition"),
        ] {
            let view = view_in(Some(state), mug_order(2));
            let payload = prepared(version);
            let plan = stage().decide(&input(&payload), &view, &catalogue());
            assert_eq!(outcome_name(&plan), expect, "{state} v{version}");
            assert!(plan.effects.is_empty() && plan.emit.is_empty());
        }
    }
}
