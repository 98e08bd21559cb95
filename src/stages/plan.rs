//! What a stage decides: a plan of effects on the order, the events to emit, and how the
//! delivery ended. Plans are data; the worker writes them (see `crate::db::batch`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::documents::DocumentContent;
use crate::domain::events::{ConfirmationOutcome, Payload};
use crate::domain::ledger::Posting;
use crate::domain::timer::TimerKind;
use crate::domain::{Currency, Escalation, Order, OrderState};

/// What a stage decided for one delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// How the delivery ended.
    pub outcome: Outcome,
    /// What to change, in order.
    pub effects: Vec<Effect>,
    /// Events to publish once the effects are committed.
    pub emit: Vec<Payload>,
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The order advanced.
    Advanced,
    /// Recorded; the order waits for something else (such as the customer's answer).
    Waiting,
    /// Nothing to do: the order is past this point, or the event is about an older version.
    AlreadyDone,
    /// A person must look at it: a review case is opened. The plan's effects (such as a record
    /// of the refusal in the order's timeline) are kept.
    Escalated(Escalation),
    /// The event came before what it needs (a payment before its order): nothing is written,
    /// and the delivery is tried again later.
    TooEarly(TooEarly),
}

/// An event that came before what it needs. Tried again later through the stage's delay queue;
/// should it still be too early at the last attempt, it escalates with `if_never`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct TooEarly {
    /// What is missing, for the log.
    pub detail: String,
    /// The escalation once the attempts are used up.
    pub if_never: Escalation,
}

/// One change a plan makes to the order or to what the pipeline keeps about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A new order, in state `placed`.
    Place(Order),
    /// A version of the order kept in its history.
    KeepVersion(Order),
    /// The order replaced by its amended version; it starts again from `placed`.
    Amend(Order),
    /// The order moves to this state (one allowed step, or back to `placed` on amendment).
    Move(OrderState),
    /// A record in the order's timeline.
    Record {
        /// The order's state after it.
        state_after: OrderState,
        /// What the stage did.
        detail: serde_json::Value,
    },
    /// Units of stock allocated to the order.
    Allocate {
        /// The product.
        sku: String,
        /// How many units.
        quantity: u32,
    },
    /// Every live allocation of the order returned to stock.
    ReleaseStock,
    /// A document issued: numbered, rendered and fingerprinted.
    Issue(Box<IssuedDocument>),
    /// Every live document of the order voided (their numbers stay used).
    VoidDocuments,
    /// A timer set.
    Schedule(Timer),
    /// The order's pending timers of a kind cancelled.
    CancelTimers(TimerKind),
    /// A customer's answer kept until it can be applied.
    KeepAnswer(Answer),
    /// A line (or an instalment of one) recognised as revenue.
    Recognise(Recognition),
    /// Every live recognition of the order marked reversed (the ledger's side is a posting).
    ReverseRecognitions,
    /// A balanced ledger posting.
    Post(Posting),
    /// A payment recorded.
    RecordPayment(Payment),
    /// The order's open review cases about an earlier version (refusals by verify or prepare)
    /// settled, because the order was amended to `version`.
    SupersedeCases {
        /// The amended version.
        version: u32,
    },
}

/// A document as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedDocument {
    /// What it says.
    pub content: DocumentContent,
    /// Its number's value in its kind's sequence.
    pub sequence_value: i64,
    /// The PDF.
    pub pdf: Vec<u8>,
    /// SHA-256 of the PDF, hex.
    pub sha256: String,
}

impl IssuedDocument {
    /// The document numbered `sequence_value` in its kind's sequence, rendered as PDF and
    /// fingerprinted.
    pub fn render(content: DocumentContent, sequence_value: i64) -> Self {
        let pdf = crate::render::pdf(&content);
        Self {
            sha256: crate::digest::sha256_hex(&pdf),
            content,
            sequence_value,
            pdf,
        }
    }
}

/// A timer to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// What it is for.
    pub kind: TimerKind,
    /// When it fires (UTC).
    pub due_at: DateTime<Utc>,
    /// Kind-specific data; with the order and kind it identifies the timer.
    pub payload: serde_json::Value,
}

/// A customer's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// The message that carried it.
    pub message_id: String,
    /// What the customer said.
    pub outcome: ConfirmationOutcome,
    /// Why, for a complaint or query.
    pub reason: Option<String>,
}

/// One line's (or instalment's) recognition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognition {
    /// The order line, from 0.
    pub line_no: u32,
    /// 0 for a whole line, else the instalment.
    pub instalment: u32,
    /// Net amount, minor units.
    pub amount_minor: i64,
    /// Tax, minor units.
    pub tax_minor: i64,
    /// The recognition point's name.
    pub basis: &'static str,
    /// When control passed.
    pub control_passed_at: DateTime<Utc>,
    /// The event that evidences it.
    pub evidence: String,
}

/// A payment as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// The provider's reference, unique.
    pub reference: String,
    /// Amount, minor units.
    pub amount_minor: i64,
    /// Its currency (the order's).
    pub currency: Currency,
    /// When it was captured.
    pub captured_at: DateTime<Utc>,
}

impl Plan {
    /// A plan with this outcome and nothing to do.
    pub fn nothing(outcome: Outcome) -> Self {
        Self {
            outcome,
            effects: Vec::new(),
            emit: Vec::new(),
        }
    }

    /// Nothing to do: already done, or stale.
    pub fn already_done() -> Self {
        Self::nothing(Outcome::AlreadyDone)
    }

    /// A case for a person, and nothing else.
    pub fn escalate(escalation: Escalation) -> Self {
        Self::nothing(Outcome::Escalated(escalation))
    }

    /// A plan that starts with `outcome`; effects and events are added with the builders below.
    pub fn new(outcome: Outcome) -> Self {
        Self::nothing(outcome)
    }

    /// This plan followed by `next`: effects and events of both, in order, and `next`'s
    /// outcome unless it did nothing (then this plan's).
    pub fn then(mut self, next: Plan) -> Self {
        self.effects.extend(next.effects);
        self.emit.extend(next.emit);
        if next.outcome != Outcome::AlreadyDone || self.outcome == Outcome::AlreadyDone {
            self.outcome = next.outcome;
        }
        self
    }

    /// Adds an effect.
    pub fn with(mut self, effect: Effect) -> Self {
        self.effects.push(effect);
        self
    }

    /// Adds an event to emit.
    pub fn emitting(mut self, payload: impl Into<Payload>) -> Self {
        self.emit.push(payload.into());
        self
    }

    /// Adds a timeline record; `detail` is any serialisable value.
    pub fn recording(self, state_after: OrderState, detail: &impl Serialize) -> Self {
        let detail = serde_json::to_value(detail).expect("records always serialise");
        self.with(Effect::Record {
            state_after,
            detail,
        })
    }

    /// The common step: move to `to`, record `detail`, emit `next`.
    pub fn step(to: OrderState, detail: &impl Serialize, next: impl Into<Payload>) -> Self {
        Self::new(Outcome::Advanced)
            .with(Effect::Move(to))
            .recording(to, detail)
            .emitting(next)
    }

    /// Refuses the order for a business reason: the refusal is recorded in its timeline (the
    /// state does not change) and a case opened for a person with the escalation's role.
    pub fn refuse(state: OrderState, escalation: Escalation) -> Self {
        Self::new(Outcome::Advanced).refused(state, escalation)
    }

    /// This plan's effects so far, then a refusal as [`Plan::refuse`] makes it.
    pub fn refused(mut self, state: OrderState, escalation: Escalation) -> Self {
        let detail = serde_json::json!({
            "refused": escalation.reason,
            "detail": escalation.detail,
            "role": escalation.role.as_str(),
        });
        self.outcome = Outcome::Escalated(escalation);
        self.recording(state, &detail)
    }
}
