//! Sorting a batch's deliveries before any stage sees them: new ones, duplicates, and those
//! that go straight to review (unreadable, not for this stage, the same id with other content,
//! or claiming to come from the pipeline when its outbox never held them). Pure: it reads
//! what [`crate::db::batch::check`] found.

use std::collections::HashMap;

use crate::db::batch::Checks;
use crate::digest::hex;
use crate::domain::{Escalation, EventType, Role, StageName, text};

/// What triage needs to know of a delivery.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// Its inbox key.
    pub key: &'a str,
    /// SHA-256 of its body.
    pub digest: &'a [u8],
    /// Its event (type, envelope id, order id), or why it cannot be handled.
    pub event: Result<(EventType, &'a str, &'a str), &'a Escalation>,
}

impl Facts<'_> {
    /// The key a message is remembered under when its id belongs to another message.
    pub fn conflict_key(&self) -> String {
        conflict_key(self.digest)
    }
}

/// The key a message with this body digest is remembered under when its id belongs to another
/// message.
pub fn conflict_key(digest: &[u8]) -> String {
    format!("sha256:{}", hex(digest))
}

/// What to do with one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Triage {
    /// Seen before: no second effect.
    Duplicate,
    /// New: the stage decides.
    Fresh,
    /// Straight to review, remembered in the inbox under `inbox_key`; `message_key` is what a
    /// retry from review forgets (none when the key belongs to another message).
    Escalate {
        /// Why.
        escalation: Escalation,
        /// The inbox row that makes a redelivery a duplicate.
        inbox_key: String,
        /// The key kept with the case.
        message_key: Option<String>,
    },
}

/// Sorts `deliveries` (in order) for `stage`.
pub fn triage(deliveries: &[Facts<'_>], stage: StageName, checks: &Checks) -> Vec<Triage> {
    let mut seen: HashMap<String, Vec<u8>> = checks.inbox.clone();
    let mut out = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let triage = one(d, stage, checks, &seen);
        match &triage {
            Triage::Duplicate => {}
            Triage::Fresh => {
                seen.insert(d.key.to_owned(), d.digest.to_vec());
            }
            Triage::Escalate { inbox_key, .. } => {
                seen.insert(inbox_key.clone(), d.digest.to_vec());
            }
        }
        out.push(triage);
    }
    out
}

fn one(
    d: &Facts<'_>,
    stage: StageName,
    checks: &Checks,
    seen: &HashMap<String, Vec<u8>>,
) -> Triage {
    let escalate = |escalation| Triage::Escalate {
        escalation,
        inbox_key: d.key.to_owned(),
        message_key: Some(d.key.to_owned()),
    };
    if let Some(digest) = seen.get(d.key) {
        if digest.is_empty()
            || digest.as_slice() == d.digest
            || seen.contains_key(&d.conflict_key())
        {
            return Triage::Duplicate;
        }
        let escalation = Escalation::new(
            "duplicate_event_id",
            format!(
                "id {:?} was already used by a message with other content",
                text::excerpt(d.key, 100)
            ),
            Role::Operations,
        );
        return Triage::Escalate {
            escalation,
            inbox_key: d.conflict_key(),
            message_key: None,
        };
    }
    let (event_type, event_id, order_id) = match d.event {
        Err(escalation) => return escalate(escalation.clone()),
        Ok(event) => event,
    };
    if !stage.input_events().contains(&event_type) {
        return escalate(Escalation::new(
            "unexpected_event_type",
            format!("{stage} does not consume {event_type}"),
            Role::Operations,
        ));
    }
    if !event_type.from_outside() {
        let emitted = checks.outbox.get(event_id);
        if emitted.map(Vec::as_slice) != Some(d.digest) {
            let what = match emitted {
                None => "the pipeline never emitted an event with this id",
                Some(_) => "the pipeline emitted an event with this id but other content",
            };
            return escalate(Escalation::new(
                "unexpected_event",
                format!("{event_type} for order {order_id}: {what}"),
                Role::Operations,
            ));
        }
    }
    Triage::Fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(key: &'a str, digest: &'a [u8], event_type: EventType) -> Facts<'a> {
        Facts {
            key,
            digest,
            event: Ok((event_type, key, "O-1")),
        }
    }

    fn reason(t: &Triage) -> &'static str {
        match t {
            Triage::Duplicate => "duplicate",
            Triage::Fresh => "fresh",
            Triage::Escalate { escalation, .. } => escalation.reason,
        }
    }

    #[test]
    fn the_triage_table() {
        let mut checks = Checks::default();
        checks.inbox.insert("seen".into(), vec![1]);
        checks.inbox.insert("old".into(), Vec::new());
        checks.outbox.insert("genuine".into(), vec![7]);
        checks.outbox.insert("tampered".into(), vec![8]);
        let unreadable = Escalation::new("invalid_utf8", "x", Role::Operations);
        let cases = [
            (
                facts("new", &[1], EventType::OrderVerified),
                "unexpected_event",
            ),
            (facts("genuine", &[7], EventType::OrderVerified), "fresh"),
            (
                facts("tampered", &[9], EventType::OrderVerified),
                "unexpected_event",
            ),
            (facts("new", &[1], EventType::PaymentCaptured), "fresh"),
            (
                facts("new", &[1], EventType::OrderPlaced),
                "unexpected_event_type",
            ),
            (facts("seen", &[1], EventType::PaymentCaptured), "duplicate"),
            (facts("old", &[5], EventType::PaymentCaptured), "duplicate"),
            (
                facts("seen", &[2], EventType::PaymentCaptured),
                "duplicate_event_id",
            ),
            (
                Facts {
                    key: "sha256:ab",
                    digest: &[3],
                    event: Err(&unreadable),
                },
                "invalid_utf8",
            ),
        ];
        for (f, expected) in cases {
            let got = triage(std::slice::from_ref(&f), StageName::Revenue, &checks);
            assert_eq!(reason(&got[0]), expected, "{f:?}");
        }
    }

    #[test]
    fn within_a_batch_the_first_of_a_key_wins() {
        let checks = Checks::default();
        let batch = [
            facts("k", &[1], EventType::PaymentCaptured),
            facts("k", &[1], EventType::PaymentCaptured),
            facts("k", &[2], EventType::PaymentCaptured),
            facts("k", &[2], EventType::PaymentCaptured),
            facts("k", &[1], EventType::PaymentCaptured),
        ];
        let got: Vec<_> = triage(&batch, StageName::Revenue, &checks)
            .iter()
            .map(reason)
            .collect();
        assert_eq!(
            got,
            [
                "fresh",
                "duplicate",
                "duplicate_event_id",
                "duplicate",
                "duplicate"
            ]
        );
    }
}
