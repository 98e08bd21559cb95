//! Faults injected on purpose, to prove recovery in tests. They exist only when the crate is
//! built with the `faults` feature (its own tests turn it on); a release build has none, and
//! the checks below are constants the compiler removes.

use crate::domain::StageName;

#[cfg(feature = "faults")]
pub use enabled::*;

#[cfg(feature = "faults")]
mod enabled {
    use std::sync::Arc;

    use crate::domain::StageName;

    /// Decides whether to simulate a crash right after a stage's commit, before it publishes.
    pub type CrashHook = Arc<dyn Fn(StageName, &str) -> bool + Send + Sync>;

    /// Decides whether to fail a delivery transiently: called with the stage, order id and attempt.
    pub type TransientHook = Arc<dyn Fn(StageName, &str, u32) -> bool + Send + Sync>;

    /// Faults to inject.
    #[derive(Clone, Default)]
    pub struct Faults {
        /// Called for each delivery before its batch is written; `true` fails the delivery as
        /// if the database had refused it for a passing reason (it is retried through the
        /// delay queue).
        pub fail_transiently: Option<TransientHook>,
        /// Called with the stage and order id of each delivery after a commit; `true` makes the
        /// worker stop there as if the process died: nothing published, nothing acknowledged.
        pub crash_after_commit: Option<CrashHook>,
        /// Called with the stage and order id of each delivery before its batch is written;
        /// `true` makes the database refuse any batch that holds the delivery (a division by
        /// zero), as a poisoned delivery would.
        pub poison: Option<CrashHook>,
    }
}

/// No faults: what a build without the `faults` feature has.
#[cfg(not(feature = "faults"))]
#[derive(Clone, Default)]
pub struct Faults;

impl Faults {
    /// Whether to fail this delivery transiently.
    #[cfg_attr(not(feature = "faults"), allow(unused_variables))]
    pub fn fails(&self, stage: StageName, order: &str, attempt: u32) -> bool {
        #[cfg(feature = "faults")]
        if let Some(hook) = &self.fail_transiently {
            return hook(stage, order, attempt);
        }
        false
    }

    /// Whether a batch holding this delivery is to be refused by the database.
    #[cfg_attr(not(feature = "faults"), allow(unused_variables))]
    pub fn poisons(&self, stage: StageName, order: &str) -> bool {
        #[cfg(feature = "faults")]
        if let Some(hook) = &self.poison {
            return hook(stage, order);
        }
        false
    }

    /// Whether to crash after committing work on this order.
    #[cfg_attr(not(feature = "faults"), allow(unused_variables))]
    pub fn crashes(&self, stage: StageName, order: &str) -> bool {
        #[cfg(feature = "faults")]
        if let Some(hook) = &self.crash_after_commit {
            return hook(stage, order);
        }
        false
    }
}
