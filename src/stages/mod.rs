//! The six stages. Each module holds one stage: what it consumes, the rules it applies and what
//! it emits. Stages never see AMQP: they get a decoded [`IncomingEvent`] and a [`StageContext`]
//! that gives them the order, state transitions, the timeline and the outbox, all inside the one
//! transaction the worker runs for the delivery.

pub mod confirm;
mod context;
pub mod documents;
pub mod handover;
pub mod prepare;
pub mod revenue;
pub mod verify;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;

pub use context::{IncomingEvent, ProductCache, StageContext};

use crate::domain::EventType;
use crate::settings::StageSettings;

/// The stages, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StageName {
    /// Checks the order against the internal records.
    Verify,
    /// Allocates stock and runs the preparation checks.
    Prepare,
    /// Produces the handover documents.
    Documents,
    /// Records the handover and the transfer of ownership.
    Handover,
    /// Waits for the customer's acceptance.
    Confirm,
    /// Recognises revenue.
    Revenue,
}

impl StageName {
    /// Every stage, in pipeline order.
    pub const ALL: [StageName; 6] = [
        StageName::Verify,
        StageName::Prepare,
        StageName::Documents,
        StageName::Handover,
        StageName::Confirm,
        StageName::Revenue,
    ];

    /// The stage's name as used in queue names, records and the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Verify => "verify",
            StageName::Prepare => "prepare",
            StageName::Documents => "documents",
            StageName::Handover => "handover",
            StageName::Confirm => "confirm",
            StageName::Revenue => "revenue",
        }
    }

    /// The events the stage's queue is bound to.
    pub fn input_events(self) -> &'static [EventType] {
        match self {
            StageName::Verify => &[EventType::OrderPlaced, EventType::OrderAmended],
            StageName::Prepare => &[EventType::OrderVerified],
            StageName::Documents => &[EventType::GoodsPrepared],
            StageName::Handover => &[EventType::DocumentsGenerated],
            StageName::Confirm => &[
                EventType::OrderHandedOver,
                EventType::CustomerConfirmation,
                EventType::AcceptanceDue,
            ],
            StageName::Revenue => &[
                EventType::OrderVerified,
                EventType::OrderHandedOver,
                EventType::OrderDelivered,
                EventType::OrderCustomerConfirmed,
                EventType::InstalmentDue,
                EventType::PaymentCaptured,
            ],
        }
    }

    /// The stage's implementation.
    pub fn build(self, settings: &StageSettings) -> Arc<dyn Stage> {
        match self {
            StageName::Verify => Arc::new(verify::Verify::new(settings)),
            StageName::Prepare => Arc::new(prepare::Prepare),
            StageName::Documents => Arc::new(documents::Documents::new(settings)),
            StageName::Handover => Arc::new(handover::Handover::new(settings)),
            StageName::Confirm => Arc::new(confirm::Confirm::new(settings)),
            StageName::Revenue => Arc::new(revenue::Revenue),
        }
    }
}

impl fmt::Display for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stage name that does not exist.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown stage {0:?}; expected one of verify, prepare, documents, handover, confirm, revenue"
)]
pub struct UnknownStage(pub String);

impl FromStr for StageName {
    type Err = UnknownStage;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StageName::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| UnknownStage(s.to_owned()))
    }
}

/// The role a person needs to resolve an escalated case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A contact-centre agent.
    Agent,
    /// A supervisor, with authority beyond an agent's.
    Supervisor,
    /// Customer service, for complaints and queries.
    CustomerService,
    /// Finance, for money and revenue questions.
    Finance,
    /// Operations, for messages the pipeline cannot read.
    Operations,
}

impl Role {
    /// The role's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::CustomerService => "customer_service",
            Role::Finance => "finance",
            Role::Operations => "operations",
        }
    }
}

/// Why a stage cannot finish an order and who may resolve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// Machine-readable reason, such as `invalid_transition`.
    pub reason: &'static str,
    /// What went wrong, for a person. No personal data.
    pub detail: String,
    /// Who may resolve it.
    pub role: Role,
}

impl Escalation {
    /// An escalation with a reason, a detail and a role.
    pub fn new(reason: &'static str, detail: impl Into<String>, role: Role) -> Self {
        Self {
            reason,
            detail: detail.into(),
            role,
        }
    }
}

/// The escalation for an event type a stage does not consume (its queue is bound only to the
/// types it does, so this means a message was routed or published wrongly).
pub fn unexpected(stage: StageName, event_type: EventType) -> StageError {
    Escalation::new(
        "unexpected_event_type",
        format!("{stage} does not handle {event_type}"),
        Role::Operations,
    )
    .into()
}

/// Why a stage did not handle an event.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Permanent: the event can never succeed as it is; a person must look at it.
    #[error("escalated: {}: {}", .0.reason, .0.detail)]
    Escalate(Escalation),
    /// Transient: the database or broker failed; trying again may succeed.
    #[error("transient failure: {0:#}")]
    Transient(#[from] anyhow::Error),
    /// The event came before what it needs, such as a payment before its order.
    #[error("too early: {0}")]
    TooEarly(TooEarly),
}

/// An event that came before what it needs (a payment before its order). The worker tries it
/// again later through the stage's delay queue, as it does a transient failure; should it still
/// be too early at the last attempt, it escalates with `if_never`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct TooEarly {
    /// What is missing, for the log.
    pub detail: String,
    /// The escalation once the attempts are used up.
    pub if_never: Escalation,
}

impl From<sqlx::Error> for StageError {
    fn from(e: sqlx::Error) -> Self {
        StageError::Transient(e.into())
    }
}

impl From<Escalation> for StageError {
    fn from(e: Escalation) -> Self {
        StageError::Escalate(e)
    }
}

/// What a stage did with an event it handled without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The order advanced.
    Advanced,
    /// Recorded; the order waits for something else (such as the customer's answer).
    Waiting,
    /// Nothing to do: the order is already past this point, or the event is about an older
    /// version of the order.
    AlreadyDone,
    /// The stage refused the order for a business reason. What the stage recorded is kept (the
    /// refusal is in the order's timeline) and a review case is opened for a person with the
    /// escalation's role.
    Escalated(Escalation),
}

/// A stage of the pipeline.
#[async_trait]
pub trait Stage: Send + Sync {
    /// Which stage this is.
    fn name(&self) -> StageName;

    /// Handles one event inside the delivery's transaction. Everything done through `ctx` commits
    /// together or not at all.
    async fn handle(
        &self,
        ctx: &mut StageContext<'_>,
        event: &IncomingEvent,
    ) -> Result<Handled, StageError>;
}
