//! The six stages, each a pure decision: given the event, the order as recorded (a
//! [`OrderView`]), the batch's [`Reference`] data and the time, a stage returns a [`Plan`] —
//! records, stock moves, documents, ledger postings, timers, events, or a review case. No SQL,
//! no AMQP, no clock or randomness but what [`Input`] carries. The worker loads what a batch
//! needs, asks the stage for each delivery's plan, and writes the plans by set
//! (see `crate::worker` and `crate::db::batch`).
//!
//! Each stage's rules and their table-driven tests sit in its own module. The events a stage
//! consumes are declared once, in [`StageName::input_events`].

pub mod confirm;
pub mod credit;
pub mod documents;
pub mod handover;
pub mod plan;
pub mod prepare;
pub mod reference;
pub mod revenue;
pub mod verify;
pub mod view;

#[cfg(test)]
pub(crate) mod fixtures;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use crate::domain::{Escalation, Role, StageName};
pub use plan::{Effect, Outcome, Plan, TooEarly};
pub use reference::Reference;
pub use view::OrderView;

use crate::domain::OrderState;
use crate::domain::events::Payload;
use crate::settings::StageSettings;

/// What a stage decides on: one delivery's event and what the worker passes in for it.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The event's id (the envelope's `id`).
    pub message_id: &'a str,
    /// The event.
    pub payload: &'a Payload,
    /// When the event happened, as its envelope says.
    pub event_time: DateTime<Utc>,
    /// Now, as the worker read the clock for the batch.
    pub now: DateTime<Utc>,
}

/// How a stage uses stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockUse {
    /// Not at all.
    None,
    /// Reads what is available (to check an order).
    Read,
    /// Allocates: the rows are locked for the batch, in SKU order.
    Lock,
}

/// What a stage needs loaded for its batch: parts of each order's history and reference data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Live allocations.
    pub allocations: bool,
    /// How many documents are live.
    pub documents: bool,
    /// Pending timers.
    pub timers: bool,
    /// The customer's answers.
    pub answers: bool,
    /// Live recognitions.
    pub recognitions: bool,
    /// Ledger balances.
    pub ledger: bool,
    /// Whether `order.delivered` was emitted, and the booked service slots.
    pub stage_records: bool,
    /// Products (and, with `related`, the products they relate to).
    pub products: bool,
    /// Products related to the ordered ones, and what the customer bought before.
    pub related: bool,
    /// Customers, agents and delivery terms.
    pub parties: bool,
    /// With `parties`: the customers' names and addresses (personal data, for documents).
    pub customer_details: bool,
    /// Stock.
    pub stock: StockUse,
    /// Document number sequences, locked for the batch.
    pub sequences: bool,
    /// Payments already recorded, by the references the batch names.
    pub payments: bool,
}

impl Needs {
    /// Nothing at all.
    pub const NOTHING: Needs = Needs {
        allocations: false,
        documents: false,
        timers: false,
        answers: false,
        recognitions: false,
        ledger: false,
        stage_records: false,
        products: false,
        related: false,
        parties: false,
        customer_details: false,
        stock: StockUse::None,
        sequences: false,
        payments: false,
    };
}

/// A stage of the pipeline: a pure decision per delivery.
pub trait Stage: Send + Sync {
    /// Which stage this is.
    fn name(&self) -> StageName;

    /// What the worker must load for a batch.
    fn needs(&self) -> Needs;

    /// The plan for one delivery. `view` is the order as recorded (with the effects of earlier
    /// deliveries of the batch applied); `refs` the batch's reference data.
    fn decide(&self, input: &Input<'_>, view: &OrderView, refs: &Reference) -> Plan;
}

/// The stage's implementation, configured.
pub fn build(stage: StageName, settings: &StageSettings) -> Arc<dyn Stage> {
    match stage {
        StageName::Verify => Arc::new(verify::Verify::new(settings)),
        StageName::Prepare => Arc::new(prepare::Prepare),
        StageName::Documents => Arc::new(documents::Documents::new(settings)),
        StageName::Handover => Arc::new(handover::Handover::new(settings)),
        StageName::Confirm => Arc::new(confirm::Confirm::new(settings)),
        StageName::Revenue => Arc::new(revenue::Revenue::new(settings)),
    }
}

/// The case for an event a stage does not consume (its queue is bound only to the types it
/// does, so a message was routed or published wrongly).
pub fn unexpected_type(stage: StageName, payload: &Payload) -> Plan {
    Plan::escalate(Escalation::new(
        "unexpected_event_type",
        format!("{stage} does not consume {}", payload.event_type()),
        Role::Operations,
    ))
}

/// The case for an event that does not fit the order's recorded state or history: forged, or
/// out of place. Nothing is booked.
pub fn unexpected_event(payload: &Payload, why: impl std::fmt::Display) -> Plan {
    Plan::escalate(Escalation::new(
        "unexpected_event",
        format!(
            "{} for order {}: {why}",
            payload.event_type(),
            payload.order_id()
        ),
        Role::Operations,
    ))
}

/// The case for an event about an order that does not exist.
pub fn unknown_order(payload: &Payload) -> Plan {
    Plan::escalate(Escalation::new(
        "unknown_order",
        format!("order {} does not exist", payload.order_id()),
        Role::Operations,
    ))
}

/// Whether an order in `from` is ready to move to `to`: `Err(plan)` with the plan to return if
/// not (already done when it is at or past `to`, a case when it is not there yet).
pub fn ready(stage: StageName, from: OrderState, to: OrderState) -> Result<(), Plan> {
    if from >= to {
        return Err(Plan::already_done());
    }
    if !from.can_move_to(to) {
        return Err(Plan::escalate(Escalation::new(
            "invalid_transition",
            format!("order is {from}; {stage} moves orders only to {to}"),
            Role::Operations,
        )));
    }
    Ok(())
}
