//! A batch's plans as rows, grouped by table, so that each table is written by one statement.
//!
//! Plans are added in delivery order, each effect together with the order's view as it was
//! just before the effect. Effects on rows the batch itself creates are netted here (an
//! allocation made and released in the same batch is written released; a timer scheduled and
//! cancelled is written cancelled), so that the statement's inserts and updates never touch
//! the same row.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::domain::documents::DocumentKind;
use crate::domain::ledger::Entry;
use crate::domain::{Escalation, Order, OrderState};
use crate::envelope::WireEvent;
use crate::stages::OrderView;
use crate::stages::plan::{Answer, Effect, IssuedDocument, Payment, Recognition, Timer};

/// An order row as the batch leaves it.
#[derive(Debug, Clone)]
pub struct OrderRow {
    /// The state it had when the batch loaded it (`None`: the batch creates it).
    pub from: Option<OrderState>,
    /// Its state at the end of the batch.
    pub state: OrderState,
    /// Its body at the end of the batch.
    pub order: Order,
    /// The trace context it arrived with (new orders).
    pub traceparent: Option<String>,
    /// Whether the batch replaced the body (placed or amended it).
    pub new_body: bool,
}

/// A review case to open.
#[derive(Debug, Clone)]
pub struct NewCase {
    /// Its id, reserved beforehand.
    pub id: i64,
    /// The order, when the message named one.
    pub order_id: Option<String>,
    /// Why, and who may resolve it.
    pub escalation: Escalation,
    /// The message, byte for byte.
    pub body: Vec<u8>,
    /// Its AMQP properties, as JSON bytes.
    pub properties: Vec<u8>,
    /// The inbox key under which the message is remembered, for a retry to forget.
    pub message_key: Option<String>,
}

/// A row created by the batch that a later effect may still change.
#[derive(Debug, Clone)]
struct Netted<T> {
    order_id: String,
    row: T,
    undone: bool,
}

/// Everything a batch writes.
#[derive(Debug, Default)]
pub struct Writes {
    /// Inbox rows: message key and body digest.
    pub inbox: Vec<(String, Vec<u8>)>,
    /// Orders created or changed, by id.
    pub orders: BTreeMap<String, OrderRow>,
    /// Versions kept.
    pub versions: Vec<Order>,
    /// Timeline records: order, message, state after, detail.
    pub records: Vec<(String, String, OrderState, serde_json::Value)>,
    /// Events to publish.
    pub outbox: Vec<WireEvent>,
    /// Orders whose existing allocations are released.
    pub release_allocations: Vec<String>,
    allocations: Vec<Netted<(u32, String, u32)>>,
    /// Stock change by SKU.
    pub stock: BTreeMap<String, i64>,
    /// Orders whose existing documents are voided.
    pub void_documents: Vec<String>,
    documents: Vec<Netted<IssuedDocument>>,
    /// The next value of each sequence the batch used.
    pub sequences: BTreeMap<&'static str, i64>,
    /// Existing pending timers cancelled: order and kind.
    pub cancel_timers: Vec<(String, &'static str)>,
    timers: Vec<Netted<(Timer, Option<String>)>>,
    /// Customers' answers: order and answer.
    pub answers: Vec<(String, Answer)>,
    /// Orders whose existing recognitions are reversed.
    pub reverse_recognitions: Vec<String>,
    recognitions: Vec<Netted<Recognition>>,
    /// Ledger rows: posting, order, entry, currency, memo, kind.
    pub ledger: Vec<LedgerRow>,
    /// Payments: order and payment.
    pub payments: Vec<(String, Payment)>,
    /// Review cases.
    pub cases: Vec<NewCase>,
    /// Orders whose open cases about earlier versions are superseded: order and new version.
    pub supersede_cases: Vec<(String, u32)>,
}

/// One ledger row.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    /// The posting it belongs to.
    pub posting_id: Uuid,
    /// The order.
    pub order_id: String,
    /// The entry (never zero).
    pub entry: Entry,
    /// The order's currency.
    pub currency: String,
    /// Why.
    pub memo: String,
    /// The posting's kind.
    pub kind: &'static str,
}

impl Writes {
    /// Adds one effect of `message_id`'s plan on `order_id`, with the order's view as it was
    /// just before the effect. `trace` is the delivery's trace context, kept with a new order
    /// and with timers so that what they cause later continues the order's trace.
    pub fn add(
        &mut self,
        order_id: &str,
        message_id: &str,
        trace: Option<&str>,
        effect: &Effect,
        before: &OrderView,
    ) {
        let id = order_id.to_owned();
        match effect {
            Effect::Place(order) => {
                let row = OrderRow {
                    from: None,
                    state: OrderState::Placed,
                    order: order.clone(),
                    new_body: true,
                    traceparent: trace.map(str::to_owned),
                };
                self.orders.insert(id, row);
            }
            Effect::Amend(order) => {
                let row = self.order_row(&id, before);
                row.order = order.clone();
                row.state = OrderState::Placed;
                row.new_body = true;
            }
            Effect::Move(to) => self.order_row(&id, before).state = *to,
            Effect::KeepVersion(order) => self.versions.push(order.clone()),
            Effect::SupersedeCases { version } => self.supersede_cases.push((id, *version)),
            Effect::Record {
                state_after,
                detail,
            } => self
                .records
                .push((id, message_id.to_owned(), *state_after, detail.clone())),
            Effect::Allocate { sku, quantity } => {
                let version = before.current.as_ref().map_or(1, |c| c.order.version);
                *self.stock.entry(sku.clone()).or_default() -= i64::from(*quantity);
                self.allocations
                    .push(netted(id, (version, sku.clone(), *quantity)));
            }
            Effect::ReleaseStock => {
                for (sku, quantity) in &before.allocations {
                    *self.stock.entry(sku.clone()).or_default() += i64::from(*quantity);
                }
                undo(&mut self.allocations, &id, |_| true);
                self.release_allocations.push(id);
            }
            Effect::Issue(document) => {
                let kind = document.content.kind;
                self.sequences
                    .insert(sequence(kind), document.sequence_value + 1);
                self.documents.push(netted(id, (**document).clone()));
            }
            Effect::VoidDocuments => {
                undo(&mut self.documents, &id, |_| true);
                self.void_documents.push(id);
            }
            Effect::Schedule(timer) => {
                let exists = self.timers.iter().any(|t| {
                    t.order_id == id
                        && t.row.0.kind == timer.kind
                        && t.row.0.payload == timer.payload
                });
                if !exists {
                    let traced = (timer.clone(), trace.map(str::to_owned));
                    self.timers.push(netted(id, traced));
                }
            }
            Effect::CancelTimers(kind) => {
                undo(&mut self.timers, &id, |t| t.0.kind == *kind);
                self.cancel_timers.push((id, kind.as_str()));
            }
            Effect::KeepAnswer(answer) => self.answers.push((id, answer.clone())),
            Effect::Recognise(recognition) => {
                self.recognitions.push(netted(id, recognition.clone()));
            }
            Effect::ReverseRecognitions => {
                undo(&mut self.recognitions, &id, |_| true);
                self.reverse_recognitions.push(id);
            }
            Effect::Post(posting) => {
                let posting_id = Uuid::now_v7();
                let currency = before
                    .current
                    .as_ref()
                    .map_or_else(String::new, |c| c.order.currency.to_string());
                for entry in &posting.entries {
                    if matches!(entry, Entry::Debit(_, 0) | Entry::Credit(_, 0)) {
                        continue;
                    }
                    self.ledger.push(LedgerRow {
                        posting_id,
                        order_id: id.clone(),
                        entry: *entry,
                        currency: currency.clone(),
                        memo: posting.memo.clone(),
                        kind: posting.kind.as_str(),
                    });
                }
            }
            Effect::RecordPayment(payment) => self.payments.push((id, payment.clone())),
        }
    }

    fn order_row(&mut self, id: &str, before: &OrderView) -> &mut OrderRow {
        self.orders.entry(id.to_owned()).or_insert_with(|| {
            let current = before
                .current
                .clone()
                .expect("a stage changes only orders that exist");
            OrderRow {
                from: Some(current.state),
                state: current.state,
                order: current.order,
                new_body: false,
                traceparent: None,
            }
        })
    }

    /// New allocations: order, version, SKU, quantity, released in this batch.
    pub fn allocations(&self) -> impl Iterator<Item = (&str, u32, &str, u32, bool)> {
        self.allocations.iter().map(|a| {
            let (version, sku, quantity) = &a.row;
            (
                a.order_id.as_str(),
                *version,
                sku.as_str(),
                *quantity,
                a.undone,
            )
        })
    }

    /// New documents: order, document, voided in this batch.
    pub fn documents(&self) -> impl Iterator<Item = (&str, &IssuedDocument, bool)> {
        self.documents
            .iter()
            .map(|d| (d.order_id.as_str(), &d.row, d.undone))
    }

    /// New timers: order, timer, the trace that set it, cancelled in this batch.
    pub fn timers(&self) -> impl Iterator<Item = (&str, &Timer, Option<&str>, bool)> {
        self.timers
            .iter()
            .map(|t| (t.order_id.as_str(), &t.row.0, t.row.1.as_deref(), t.undone))
    }

    /// New recognitions: order, recognition, reversed in this batch.
    pub fn recognitions(&self) -> impl Iterator<Item = (&str, &Recognition, bool)> {
        self.recognitions
            .iter()
            .map(|r| (r.order_id.as_str(), &r.row, r.undone))
    }

    /// The SKUs whose stock the batch changes, sorted (the order their rows are locked in).
    pub fn stock_skus(&self) -> Vec<String> {
        self.stock
            .iter()
            .filter(|(_, delta)| **delta != 0)
            .map(|(sku, _)| sku.clone())
            .collect()
    }

    /// Whether the batch writes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.inbox.is_empty()
            && self.outbox.is_empty()
            && self.orders.is_empty()
            && self.records.is_empty()
            && self.answers.is_empty()
            && self.timers.is_empty()
            && self.cancel_timers.is_empty()
            && self.ledger.is_empty()
            && self.cases.is_empty()
            && self.allocations.is_empty()
            && self.release_allocations.is_empty()
            && self.documents.is_empty()
            && self.void_documents.is_empty()
            && self.recognitions.is_empty()
            && self.reverse_recognitions.is_empty()
            && self.payments.is_empty()
            && self.versions.is_empty()
            && self.supersede_cases.is_empty()
    }
}

fn netted<T>(order_id: String, row: T) -> Netted<T> {
    Netted {
        order_id,
        row,
        undone: false,
    }
}

/// Marks the batch's own rows of `order_id` that match as undone (released, voided, cancelled,
/// reversed).
fn undo<T>(rows: &mut [Netted<T>], order_id: &str, matches: impl Fn(&T) -> bool) {
    for row in rows.iter_mut() {
        if row.order_id == order_id && matches(&row.row) {
            row.undone = true;
        }
    }
}

fn sequence(kind: DocumentKind) -> &'static str {
    kind.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::timer::TimerKind;
    use crate::stages::view::Current;
    use chrono::Utc;

    fn view(state: OrderState) -> OrderView {
        let order: Order = serde_json::from_value(serde_json::json!({
            "order_id": "O-1", "customer_id": "C-1", "channel": "web", "currency": "GBP",
            "placed_at": "2026-11-20T09:00:00Z",
            "lines": [{"sku": "MUG", "quantity": 2, "unit_price_minor": 1250}],
        }))
        .unwrap();
        OrderView {
            current: Some(Current { state, order }),
            allocations: vec![("MUG".into(), 3)],
            ..OrderView::default()
        }
    }

    #[test]
    fn a_timer_scheduled_and_cancelled_in_one_batch_is_written_cancelled() {
        let mut writes = Writes::default();
        let v = view(OrderState::HandedOver);
        let timer = Timer {
            kind: TimerKind::AcceptanceDue,
            due_at: Utc::now(),
            payload: serde_json::json!({}),
        };
        writes.add("O-1", "m1", None, &Effect::Schedule(timer), &v);
        writes.add(
            "O-1",
            "m2",
            None,
            &Effect::CancelTimers(TimerKind::AcceptanceDue),
            &v,
        );
        let timers: Vec<_> = writes.timers().collect();
        assert_eq!(timers.len(), 1);
        assert!(timers[0].3, "cancelled");
        assert_eq!(
            writes.cancel_timers,
            vec![("O-1".to_owned(), "acceptance_due")]
        );
    }

    #[test]
    fn stock_nets_allocations_and_releases() {
        let mut writes = Writes::default();
        let v = view(OrderState::Verified);
        let allocate = Effect::Allocate {
            sku: "MUG".into(),
            quantity: 2,
        };
        writes.add("O-1", "m1", None, &allocate, &v);
        writes.add("O-1", "m2", None, &Effect::ReleaseStock, &v);
        assert_eq!(writes.stock["MUG"], 1, "-2 allocated, +3 released");
        assert!(
            writes.allocations().all(|a| a.4),
            "the new allocation is written released"
        );
    }

    #[test]
    fn an_order_row_keeps_the_state_it_was_loaded_in() {
        let mut writes = Writes::default();
        let v = view(OrderState::Verified);
        writes.add("O-1", "m1", None, &Effect::Move(OrderState::Prepared), &v);
        let row = &writes.orders["O-1"];
        assert_eq!(
            (row.from, row.state),
            (Some(OrderState::Verified), OrderState::Prepared)
        );
        assert!(!row.new_body);
    }
}
