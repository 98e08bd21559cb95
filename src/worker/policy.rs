//! What to do with a delivery that could not be handled now: a pure choice, so that the rules
//! (how often to try, how long to wait, when a person must look) can be read and tested alone.

use crate::domain::{Escalation, Role, text};
use crate::settings::RetrySettings;
use crate::stages::TooEarly;

/// Why a delivery was not handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The database cannot be reached (connection refused, server shutting down): nobody's
    /// fault, and no attempt is used up.
    DatabaseDown,
    /// The database refused the delivery's data (a data exception or a constraint): trying
    /// again will not help.
    Refused(String),
    /// Anything else that may pass: a failed statement, a deadlock, the broker.
    Transient(String),
    /// The event came before what it needs.
    TooEarly(TooEarly),
}

/// What to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Wait for the database, then return the delivery to its queue as it is.
    PauseAndRequeue,
    /// Send a copy to the stage's delay queue as attempt `attempt`, to come back after `delay_ms`.
    Retry {
        /// The next attempt's number.
        attempt: u32,
        /// How long it waits.
        delay_ms: u64,
    },
    /// Open a review case.
    Escalate(Escalation),
}

/// The action for `failure` of attempt `attempt` (from 1). `jitter` is in `[0, 1)`.
pub fn on_failure(failure: Failure, attempt: u32, retry: &RetrySettings, jitter: f64) -> Action {
    let (max_attempts, if_never) = match failure {
        Failure::DatabaseDown => return Action::PauseAndRequeue,
        Failure::Refused(error) => {
            return Action::Escalate(Escalation::new(
                "database_refused",
                format!(
                    "the database refused the delivery: {}",
                    text::excerpt(&error, 500)
                ),
                Role::Operations,
            ));
        }
        Failure::Transient(error) => (
            retry.max_attempts,
            Escalation::new(
                "retries_exhausted",
                format!(
                    "failed {attempt} times; last error: {}",
                    text::excerpt(&error, 500)
                ),
                Role::Operations,
            ),
        ),
        Failure::TooEarly(early) => (retry.too_early_max_attempts, early.if_never),
    };
    if attempt >= max_attempts {
        return Action::Escalate(if_never);
    }
    Action::Retry {
        attempt: attempt + 1,
        delay_ms: retry.delay_ms(attempt, jitter),
    }
}

/// How a database error counts: the database is down, it refused the data, or it may pass.
pub fn classify(error: &anyhow::Error) -> Failure {
    let text = format!("{error:#}");
    for cause in error.chain() {
        match cause.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
            | Some(sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed) => {
                return Failure::DatabaseDown;
            }
            Some(sqlx::Error::Database(db)) => {
                let code = db.code().unwrap_or_default();
                return match &code[..code.len().min(2)] {
                    "08" | "57" => Failure::DatabaseDown,
                    "22" | "23" => Failure::Refused(text),
                    _ => Failure::Transient(text),
                };
            }
            _ => {}
        }
    }
    Failure::Transient(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry() -> RetrySettings {
        RetrySettings {
            max_attempts: 3,
            too_early_max_attempts: 5,
            base_delay_ms: 100,
            max_delay_ms: 1000,
        }
    }

    fn early() -> TooEarly {
        TooEarly {
            detail: "payment before order".into(),
            if_never: Escalation::new("unknown_order", "never came", Role::Finance),
        }
    }

    fn reason(action: &Action) -> &'static str {
        match action {
            Action::Escalate(e) => e.reason,
            Action::Retry { .. } => "retry",
            Action::PauseAndRequeue => "pause",
        }
    }

    #[test]
    fn the_policy_table() {
        let cases = [
            (Failure::DatabaseDown, 1, "pause"),
            (Failure::DatabaseDown, 99, "pause"),
            (Failure::Transient("deadlock".into()), 1, "retry"),
            (Failure::Transient("deadlock".into()), 2, "retry"),
            (
                Failure::Transient("deadlock".into()),
                3,
                "retries_exhausted",
            ),
            (
                Failure::Refused("value too long".into()),
                1,
                "database_refused",
            ),
            (Failure::TooEarly(early()), 3, "retry"),
            (Failure::TooEarly(early()), 5, "unknown_order"),
        ];
        for (failure, attempt, expected) in cases {
            let action = on_failure(failure.clone(), attempt, &retry(), 0.0);
            assert_eq!(
                reason(&action),
                expected,
                "{failure:?} at attempt {attempt}"
            );
        }
    }

    #[test]
    fn retries_back_off_and_count_attempts() {
        let action = on_failure(Failure::Transient("x".into()), 2, &retry(), 0.0);
        assert_eq!(
            action,
            Action::Retry {
                attempt: 3,
                delay_ms: 200
            }
        );
        let exhausted = on_failure(Failure::Transient("boom".into()), 3, &retry(), 0.0);
        let Action::Escalate(e) = exhausted else {
            panic!()
        };
        assert!(e.detail.contains("failed 3 times") && e.detail.contains("boom"));
    }
}
