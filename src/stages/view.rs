//! What a stage sees of one order: the order as recorded and the parts of its history the stage
//! asked for, as loaded under the order's lock at the start of a batch. After each delivery the
//! worker applies the plan to the view ([`OrderView::apply`]), so that the next delivery about
//! the same order in the batch sees the effects of the one before.

use std::collections::HashMap;

use serde::Deserialize;

use crate::domain::documents::{DocumentContent, DocumentKind};
use crate::domain::events::{ConfirmationOutcome, ServiceSlot};
use crate::domain::ledger::{Account, PostingKind};
use crate::domain::timer::TimerKind;
use crate::domain::{Order, OrderId, OrderState};

use super::plan::Effect;
use super::reference::Reference;

/// An order as recorded: its state and its current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// Where it is in the pipeline.
    pub state: OrderState,
    /// The order as placed or last amended.
    pub order: Order,
}

/// One order as a stage sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderView {
    /// The order, if it exists.
    pub current: Option<Current>,
    /// When the order entered the pipeline (its row was written), if it exists.
    pub entered_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Live allocations: units of each product held for the order.
    pub allocations: Vec<(String, u32)>,
    /// Documents issued and not voided.
    pub live_documents: u64,
    /// The order's live invoice, if it has one (loaded with the documents).
    pub live_invoice: Option<Box<DocumentContent>>,
    /// Timers set and neither fired nor cancelled: kind and payload.
    pub timers: Vec<(TimerKind, serde_json::Value)>,
    /// What the customer said, oldest first.
    pub answers: Vec<KeptAnswer>,
    /// Live recognitions: (line, instalment) → (amount, tax).
    pub recognised: HashMap<(u32, u32), (i64, i64)>,
    /// The ledger: balance (debits minus credits) of each account, by posting kind.
    pub ledger: HashMap<(Account, PostingKind), i64>,
    /// Whether `order.delivered` was already emitted for the order.
    pub delivered: bool,
    /// The service slots the prepare stage booked.
    pub service_slots: Vec<ServiceSlot>,
    /// The latest order version the prepare stage prepared, if any.
    pub prepared_version: Option<u32>,
}

/// A customer's answer as kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeptAnswer {
    /// The message that carried it.
    pub message_id: String,
    /// What the customer said.
    pub outcome: ConfirmationOutcome,
}

impl OrderView {
    /// The order's state, if it exists.
    pub fn state(&self) -> Option<OrderState> {
        self.current.as_ref().map(|c| c.state)
    }

    /// An account's balance (debits minus credits) over every posting kind.
    pub fn balance(&self, account: Account) -> i64 {
        self.ledger
            .iter()
            .filter(|((a, _), _)| *a == account)
            .map(|(_, v)| *v)
            .sum()
    }

    /// Whether a timer of `kind` is pending.
    pub fn has_timer(&self, kind: TimerKind) -> bool {
        self.timers.iter().any(|(k, _)| *k == kind)
    }

    /// Applies one effect, as the database will once the batch commits: to the view, and to
    /// the batch's shared counters in `refs`. `message_id` is the delivery's.
    pub fn apply(&mut self, effect: &Effect, message_id: &str, refs: &mut Reference) {
        match effect {
            Effect::Place(order) => {
                self.current = Some(Current {
                    state: OrderState::Placed,
                    order: order.clone(),
                });
            }
            Effect::Amend(order) => {
                if let Some(current) = &mut self.current {
                    current.order = order.clone();
                    current.state = OrderState::Placed;
                }
            }
            Effect::Move(to) => {
                if let Some(current) = &mut self.current {
                    current.state = *to;
                }
            }
            Effect::Allocate { sku, quantity } => {
                self.allocations.push((sku.clone(), *quantity));
                refs.take_stock(sku, *quantity);
            }
            Effect::ReleaseStock => {
                for (sku, quantity) in self.allocations.drain(..) {
                    refs.return_stock(&sku, quantity);
                }
            }
            Effect::Issue(document) => {
                self.live_documents += 1;
                if document.content.kind == DocumentKind::Invoice {
                    self.live_invoice = Some(Box::new(document.content.clone()));
                }
                refs.use_number(document.content.kind, document.sequence_value);
            }
            Effect::VoidDocuments => {
                self.live_documents = 0;
                self.live_invoice = None;
            }
            Effect::Schedule(timer) => {
                let key = (timer.kind, timer.payload.clone());
                if !self.timers.contains(&key) {
                    self.timers.push(key);
                }
            }
            Effect::CancelTimers(kind) => self.timers.retain(|(k, _)| k != kind),
            Effect::KeepAnswer(answer) => self.answers.push(KeptAnswer {
                message_id: message_id.to_owned(),
                outcome: answer.outcome,
            }),
            Effect::Recognise(r) => {
                let amounts = (r.amount_minor, r.tax_minor);
                self.recognised.insert((r.line_no, r.instalment), amounts);
            }
            Effect::ReverseRecognitions => self.recognised.clear(),
            Effect::Post(posting) => {
                for entry in &posting.entries {
                    let (account, signed) = entry.signed();
                    *self.ledger.entry((account, posting.kind)).or_default() += signed;
                }
            }
            Effect::Record { detail, .. } => {
                if detail.get("receipt").is_some() {
                    self.delivered = true;
                }
            }
            Effect::RecordPayment(payment) => {
                let order_id = self.current.as_ref().map(|c| c.order.order_id.as_str());
                let order_id = order_id.unwrap_or_default().to_owned();
                refs.note_payment(&payment.reference, &order_id, payment.amount_minor);
            }
            Effect::KeepVersion(_) | Effect::SupersedeCases { .. } => {}
        }
    }
}

/// The id of the order a view is about, for messages.
pub fn describe(id: &OrderId, view: &OrderView) -> String {
    match view.state() {
        Some(state) => format!("order {id} is {state}"),
        None => format!("order {id} does not exist"),
    }
}
