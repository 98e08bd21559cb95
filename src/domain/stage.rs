//! The six stages and the roles of the people who resolve what they escalate. Plain names with
//! no behaviour, so that settings, stages, the database layer and the review desk can all use
//! them without depending on one another.

use std::fmt;
use std::str::FromStr;

use super::EventType;

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

    /// The events the stage consumes: its queue is bound to exactly these, and it refuses any
    /// other. The one place a stage's inputs are declared.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// Why a stage cannot finish and who may resolve it: what becomes a review case.
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
