//! Work due later, kept in the database so that a deadline survives any restart.

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// The customer's acceptance window closes.
    AcceptanceDue,
    /// An instalment of a service's revenue falls due.
    InstalmentDue,
}

impl TimerKind {
    /// The name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::AcceptanceDue => "acceptance_due",
            TimerKind::InstalmentDue => "instalment_due",
        }
    }

    /// The kind with this stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [TimerKind::AcceptanceDue, TimerKind::InstalmentDue]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}
