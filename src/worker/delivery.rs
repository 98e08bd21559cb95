//! One delivery as the worker handles it: the message, read once into what every later step
//! needs (its inbox keys, its event, the order it is about, why it cannot be handled).

use tracing::info_span;

use crate::digest::{hex, sha256};
use crate::domain::events::Payload;
use crate::domain::{Escalation, OrderId, Role, StageName, text};
use crate::envelope::{Envelope, EnvelopeError, TraceParent};
use crate::messaging::Inbound;

use super::triage::Facts;

/// A delivery, read.
pub struct Delivery {
    /// The message, still unacknowledged on the broker.
    pub inbound: Inbound,
    /// The key the inbox deduplicates on: the envelope's `id` when it has a usable one, else
    /// the AMQP `message-id`, else a digest of the body.
    pub key: String,
    /// SHA-256 of the body: the same key with other content is a different message.
    pub digest: Vec<u8>,
    /// The event, or why the message cannot be handled.
    pub event: Result<Event, Escalation>,
    /// The trace context of this hop: the message's trace, with this delivery's span as the
    /// parent of what it causes (see [`crate::telemetry::otel`]).
    pub trace: TraceParent,
    /// The span the delivery is logged in.
    pub span: tracing::Span,
}

/// A delivery's event.
pub struct Event {
    /// The envelope.
    pub envelope: Envelope,
    /// Its payload, checked.
    pub payload: Payload,
}

impl Delivery {
    /// Reads a delivery for `stage`: a message over `max_bytes` is not parsed at all; one with
    /// malformed AMQP properties is not handled either; both go to review as they came.
    pub fn read(inbound: Inbound, stage: StageName, max_bytes: usize) -> Self {
        let body = inbound.body();
        let digest = sha256(body);
        let event = if body.len() > max_bytes {
            Err(too_large(body.len(), max_bytes))
        } else if let Some(problem) = inbound.property_problem() {
            Err(Escalation::new(
                "invalid_properties",
                problem,
                Role::Operations,
            ))
        } else {
            Envelope::read(body)
                .map(|(envelope, payload)| Event { envelope, payload })
                .map_err(|error| poison(&error))
        };
        let key = message_key(&inbound, event.as_ref().ok(), &digest);
        let order = event
            .as_ref()
            .ok()
            .map(|e| e.payload.order_id().to_string());
        let span = info_span!(
            "delivery",
            stage = %stage,
            order_id = %order.as_deref().unwrap_or("-"),
            message_id = %key,
            attempt = inbound.attempt(),
        );
        let trace = crate::telemetry::otel::continue_trace(&span, inbound.traceparent().as_ref());
        Self {
            inbound,
            key,
            digest,
            event,
            trace,
            span,
        }
    }

    /// The order the delivery is about, when it could be read.
    pub fn order_id(&self) -> Option<&OrderId> {
        self.event.as_ref().ok().map(|e| e.payload.order_id())
    }

    /// The key that serialises work on this delivery: its order's id, else its inbox key.
    pub fn lock_key(&self) -> &str {
        self.order_id().map_or(self.key.as_str(), |id| id.as_str())
    }

    /// What triage needs to know of the delivery.
    pub fn facts(&self) -> Facts<'_> {
        Facts {
            key: &self.key,
            digest: &self.digest,
            event: self.event.as_ref().map(|e| {
                let order = e.payload.order_id().as_str();
                (e.payload.event_type(), e.envelope.id.as_str(), order)
            }),
        }
    }
}

/// The inbox key: the envelope's `id` (already checked against [`text::event_id`]), else the
/// AMQP `message-id` when it is within the same limits, else `sha256:` and the body's digest
/// (so even an unreadable message is escalated once).
fn message_key(inbound: &Inbound, event: Option<&Event>, digest: &[u8]) -> String {
    if let Some(event) = event {
        return event.envelope.id.clone();
    }
    match inbound.message_id() {
        Some(id) if text::event_id("message-id", id).is_ok() => id.to_owned(),
        _ => format!("sha256:{}", hex(digest)),
    }
}

fn too_large(bytes: usize, max: usize) -> Escalation {
    Escalation::new(
        "message_too_large",
        format!("{bytes} bytes, over the limit of {max} (amqp.max_message_bytes)"),
        Role::Operations,
    )
}

/// The escalation for a message that is not a usable event.
fn poison(error: &EnvelopeError) -> Escalation {
    let reason = match error {
        EnvelopeError::NotUtf8(_) => "invalid_utf8",
        EnvelopeError::NotCloudEvent(_) | EnvelopeError::SpecVersion(_) => "not_a_cloudevent",
        EnvelopeError::BadAttribute(_) => "invalid_envelope",
        EnvelopeError::UnknownType(_) => "unknown_event_type",
        EnvelopeError::BadPayload { .. } | EnvelopeError::SubjectMismatch { .. } => {
            "invalid_payload"
        }
    };
    let detail = text::excerpt(&error.to_string(), 1000);
    Escalation::new(reason, detail, Role::Operations)
}
