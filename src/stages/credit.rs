//! Credit notes: cancelling an order after its invoice was issued credits the invoice in full
//! with a credit note numbered in its own gap-free series (`CN-000001`). A pure decision over the
//! order as recorded; the review desk's cancellation issues it (see `crate::review::cancel`) and
//! names it in the memo of the ledger posting that reverses the order's revenue.

use chrono::{DateTime, Utc};

use crate::domain::documents::{self, Buyer, DocumentKind};

use super::plan::{Effect, IssuedDocument};
use super::reference::Reference;
use super::view::OrderView;

/// The credit note for the order's live invoice, if it has one: numbered from the batch's
/// sequence, naming the buyer as the invoice did unless the customer's personal data was erased
/// since.
pub fn for_cancellation(
    view: &OrderView,
    refs: &Reference,
    now: DateTime<Utc>,
) -> Option<IssuedDocument> {
    let invoice = view.live_invoice.as_deref()?;
    let value = refs.next_number(DocumentKind::CreditNote);
    let erased = refs
        .customers
        .get(&invoice.customer_id)
        .is_some_and(|c| c.erased_at.is_some());
    let buyer = if erased {
        Some(Buyer::Erased)
    } else {
        invoice.buyer.clone()
    };
    let number = DocumentKind::CreditNote.number(value);
    let content = documents::credit_note(invoice, number, buyer, now);
    Some(IssuedDocument::render(content, value))
}

/// The effects with the credit note named in the memo of every ledger posting among them.
pub fn name_in_postings(effects: &mut [Effect], credit: &IssuedDocument) {
    for effect in effects {
        if let Effect::Post(posting) = effect {
            posting.memo = format!(
                "{}; credit note {} for invoice {}",
                posting.memo,
                credit.content.number,
                credit.content.replaces.as_deref().unwrap_or("")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::domain::OrderState;
    use crate::domain::ledger::{Entry, Posting, PostingKind};

    fn invoiced() -> OrderView {
        let order = mug_order(2);
        let mut view = view_in(Some(OrderState::DocumentsGenerated), order.clone());
        let refs = catalogue();
        let lines = documents::priced_lines(&order, &refs.products);
        let invoice = documents::DocumentContent {
            kind: DocumentKind::Invoice,
            number: "INV-000009".into(),
            order_id: order.order_id.to_string(),
            version: 1,
            customer_id: order.customer_id.clone(),
            buyer: Some(Buyer::Known {
                name: "Ada Lovelace".into(),
                billing_address: None,
                delivery_address: None,
            }),
            currency: order.currency,
            issued_at: now(),
            totals: documents::totals(&lines),
            lines,
            delivery_terms: "FOB_SHIPPING_POINT".into(),
            terms: None,
            consignment: None,
            payment: None,
            supply_date: None,
            replaces: None,
            seller: None,
        };
        view.live_invoice = Some(Box::new(invoice));
        view
    }

    #[test]
    fn a_live_invoice_is_credited_in_full_in_its_own_series() {
        let mut refs = catalogue();
        refs.next_numbers.insert(DocumentKind::CreditNote, 4);
        let credit = for_cancellation(&invoiced(), &refs, now()).expect("a credit note");
        let c = &credit.content;
        assert_eq!(
            (c.kind, c.number.as_str(), c.replaces.as_deref()),
            (DocumentKind::CreditNote, "CN-000004", Some("INV-000009"))
        );
        assert_eq!(c.totals.gross_minor, 3000);
        assert_eq!(credit.sequence_value, 4);
        let mut effects = vec![Effect::Post(
            Posting::new(
                PostingKind::Reversal,
                "reversal: order cancelled",
                vec![
                    Entry::Debit(crate::domain::ledger::Account::Revenue, 1),
                    Entry::Credit(crate::domain::ledger::Account::Receivable, 1),
                ],
            )
            .unwrap(),
        )];
        name_in_postings(&mut effects, &credit);
        let Effect::Post(p) = &effects[0] else {
            panic!()
        };
        assert_eq!(
            p.memo,
            "reversal: order cancelled; credit note CN-000004 for invoice INV-000009"
        );
    }

    #[test]
    fn no_invoice_no_credit_note_and_an_erased_customer_stays_erased() {
        let mut refs = catalogue();
        assert!(for_cancellation(&OrderView::default(), &refs, now()).is_none());
        refs.customers.get_mut("C-1").unwrap().erased_at = Some(now());
        let credit = for_cancellation(&invoiced(), &refs, now()).unwrap();
        assert_eq!(credit.content.buyer, Some(Buyer::Erased));
    }
}
