//! The CloudEvents 1.0 envelope every message travels in (structured JSON mode), and the W3C
//! trace context that follows an order from stage to stage.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::events::{Payload, PayloadError};
use crate::domain::text::{self, TextError};
use crate::domain::{EventPayload, EventType, OrderId};

/// The content type of a structured CloudEvent.
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json";

/// Why a message body is not a usable event.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The body is not valid UTF-8.
    #[error("body is not valid UTF-8: {0}")]
    NotUtf8(#[from] std::str::Utf8Error),
    /// The body is not JSON, or not a CloudEvents 1.0 envelope.
    #[error("body is not a CloudEvents 1.0 JSON envelope: {0}")]
    NotCloudEvent(serde_json::Error),
    /// The `specversion` is not `1.0`.
    #[error("unsupported CloudEvents specversion {0:?}, expected \"1.0\"")]
    SpecVersion(String),
    /// The `type` is not one this pipeline knows.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// An envelope attribute breaks its limits (an empty, overlong or control-character `id`).
    #[error("envelope {0}")]
    BadAttribute(TextError),
    /// The `data` does not match the event type's payload; the message names the field.
    #[error("{event_type}: {source}")]
    BadPayload {
        /// The event type whose payload was expected.
        event_type: EventType,
        /// What is wrong, and where.
        source: PayloadError,
    },
    /// The `subject` differs from the payload's order id.
    #[error("subject {subject:?} differs from the payload's order id {order_id:?}")]
    SubjectMismatch {
        /// The envelope's subject.
        subject: String,
        /// The payload's order id.
        order_id: String,
    },
}

/// A CloudEvents 1.0 envelope in structured JSON mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Always `1.0`.
    pub specversion: String,
    /// Unique per event; consumers deduplicate on it.
    pub id: String,
    /// Who produced the event, such as `fulfilment/verify`.
    pub source: String,
    /// The versioned event type, such as `fulfilment.order.placed.v1`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The order id.
    pub subject: String,
    /// When the event happened (UTC, RFC 3339).
    pub time: DateTime<Utc>,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The payload.
    pub data: serde_json::Value,
}

impl Envelope {
    /// Wraps a payload in a new envelope with a fresh id.
    pub fn wrap<P: EventPayload>(source: &str, payload: &P) -> Self {
        let data = serde_json::to_value(payload).expect("event payloads always serialise");
        Self::around(source, P::TYPE, payload.order_id(), data)
    }

    /// An envelope with a fresh id and the current time around `data`, an event of
    /// `event_type` about `order_id`.
    pub fn around(
        source: &str,
        event_type: EventType,
        order_id: &OrderId,
        data: serde_json::Value,
    ) -> Self {
        Self {
            specversion: "1.0".into(),
            id: Uuid::now_v7().to_string(),
            source: source.into(),
            event_type: event_type.cloudevents_type().into(),
            subject: order_id.to_string(),
            time: Utc::now(),
            datacontenttype: "application/json".into(),
            data,
        }
    }

    /// The envelope as bytes, as it goes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("envelopes always serialise")
    }

    /// Parses a body into an envelope of a known event type, with an `id` and `source` within
    /// their limits ([`text::event_id`]).
    pub fn decode(body: &[u8]) -> Result<(Self, EventType), EnvelopeError> {
        let text = std::str::from_utf8(body)?;
        let envelope: Envelope =
            serde_json::from_str(text).map_err(EnvelopeError::NotCloudEvent)?;
        if envelope.specversion != "1.0" {
            return Err(EnvelopeError::SpecVersion(text::excerpt(
                &envelope.specversion,
                20,
            )));
        }
        text::event_id("id", &envelope.id).map_err(EnvelopeError::BadAttribute)?;
        text::event_id("source", &envelope.source).map_err(EnvelopeError::BadAttribute)?;
        let event_type = EventType::from_cloudevents_type(&envelope.event_type)
            .ok_or_else(|| EnvelopeError::UnknownType(text::excerpt(&envelope.event_type, 100)))?;
        Ok((envelope, event_type))
    }

    /// Parses a body into an envelope and its payload, checked whole: a known type, a payload
    /// within its limits, and a `subject` that is the payload's order id.
    pub fn read(body: &[u8]) -> Result<(Self, Payload), EnvelopeError> {
        let (envelope, event_type) = Self::decode(body)?;
        let payload = Payload::decode(event_type, &envelope.data)
            .map_err(|source| EnvelopeError::BadPayload { event_type, source })?;
        if payload.order_id().as_str() != envelope.subject {
            return Err(EnvelopeError::SubjectMismatch {
                subject: text::excerpt(&envelope.subject, 100),
                order_id: payload.order_id().to_string(),
            });
        }
        Ok((envelope, payload))
    }

    /// The typed payload. Fails if `data` does not match `P` or names another order.
    pub fn payload<P: EventPayload>(&self) -> Result<P, EnvelopeError> {
        let payload: P = serde_json::from_value(self.data.clone()).map_err(|source| {
            EnvelopeError::BadPayload {
                event_type: P::TYPE,
                source: PayloadError::Shape {
                    path: String::new(),
                    message: source.to_string(),
                },
            }
        })?;
        if payload.order_id().as_str() != self.subject {
            return Err(EnvelopeError::SubjectMismatch {
                subject: self.subject.clone(),
                order_id: payload.order_id().to_string(),
            });
        }
        Ok(payload)
    }

    /// The subject as an order id, if it is one.
    pub fn order_id(&self) -> Option<OrderId> {
        OrderId::parse(self.subject.clone()).ok()
    }

    /// The time formatted as RFC 3339 in UTC.
    pub fn time_rfc3339(&self) -> String {
        self.time.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

/// An encoded event ready for the broker: the envelope's bytes and what the AMQP properties and
/// routing need. This is what the outbox stores and the publisher sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireEvent {
    /// The envelope's `id`.
    pub event_id: String,
    /// The envelope's `subject`.
    pub order_id: String,
    /// The routing key on the events exchange.
    pub routing_key: String,
    /// The envelope's `type`.
    pub event_type: String,
    /// The envelope's `time`.
    pub time: DateTime<Utc>,
    /// W3C trace context for the `traceparent` header.
    pub traceparent: String,
    /// The envelope, byte for byte.
    pub body: Vec<u8>,
    /// Set to send the message straight to one queue with its original AMQP properties (a
    /// message re-injected from review) instead of to the events exchange.
    pub direct: Option<DirectTarget>,
}

/// A message addressed to one queue, with the AMQP properties it must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectTarget {
    /// The queue.
    pub queue: String,
    /// The AMQP properties as JSON bytes, as kept with the review case.
    pub properties: Vec<u8>,
}

impl WireEvent {
    /// Wraps a payload in a new envelope carrying `trace`: the trace context of the hop that
    /// sends it (see [`crate::telemetry::otel::continue_trace`]), or a new trace when `None`.
    pub fn new<P: EventPayload>(source: &str, payload: &P, trace: Option<&TraceParent>) -> Self {
        Self::sealed(Envelope::wrap(source, payload), P::TYPE, trace)
    }

    /// Wraps a decoded payload of any type in a new envelope carrying `trace`.
    pub fn of(source: &str, payload: &Payload, trace: Option<&TraceParent>) -> Self {
        let event_type = payload.event_type();
        let envelope = Envelope::around(source, event_type, payload.order_id(), payload.to_data());
        Self::sealed(envelope, event_type, trace)
    }

    fn sealed(envelope: Envelope, event_type: EventType, trace: Option<&TraceParent>) -> Self {
        let trace = trace.copied().unwrap_or_else(TraceParent::new_root);
        Self {
            event_id: envelope.id.clone(),
            order_id: envelope.subject.clone(),
            routing_key: event_type.routing_key().to_owned(),
            event_type: envelope.event_type.clone(),
            time: envelope.time,
            traceparent: trace.to_string(),
            body: envelope.to_bytes(),
            direct: None,
        }
    }

    /// An event from an encoded envelope, kept byte for byte (same id, same body), to publish
    /// again: a re-injected message or a redelivery.
    pub fn from_bytes(
        body: Vec<u8>,
        traceparent: Option<&TraceParent>,
    ) -> Result<Self, EnvelopeError> {
        let (envelope, event_type) = Envelope::decode(&body)?;
        Ok(Self {
            event_id: envelope.id,
            order_id: envelope.subject,
            routing_key: event_type.routing_key().to_owned(),
            event_type: envelope.event_type,
            time: envelope.time,
            traceparent: traceparent
                .map_or_else(TraceParent::new_root, |t| *t)
                .to_string(),
            body,
            direct: None,
        })
    }
}

/// A W3C trace context (`traceparent` header): the trace follows an order through every stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: u128,
    span_id: u64,
}

impl TraceParent {
    /// Starts a new trace.
    pub fn new_root() -> Self {
        Self {
            trace_id: Uuid::new_v4().as_u128(),
            span_id: new_span_id(),
        }
    }

    /// A new span in the same trace, for an event caused by this one.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: new_span_id(),
        }
    }

    /// Parses a `traceparent` header value (version 00).
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.split('-');
        let (version, trace, span, _flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || trace.len() != 32 || span.len() != 16 {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(Self { trace_id, span_id })
    }

    /// A trace context from its ids; `None` if either is zero (W3C forbids it).
    pub fn from_ids(trace_id: u128, span_id: u64) -> Option<Self> {
        (trace_id != 0 && span_id != 0).then_some(Self { trace_id, span_id })
    }

    /// The trace id as 32 hex digits.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The trace id as a number.
    pub fn trace_id_u128(&self) -> u128 {
        self.trace_id
    }

    /// The id of the span that sent the message, as a number.
    pub fn span_id_u64(&self) -> u64 {
        self.span_id
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "00-{:032x}-{:016x}-01", self.trace_id, self.span_id)
    }
}

fn new_span_id() -> u64 {
    // Never zero: the W3C format forbids an all-zero span id.
    (Uuid::new_v4().as_u128() as u64) | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::ConfirmationOutcome;
    use crate::domain::events::CustomerConfirmation;

    #[test]
    fn envelope_round_trips_with_typed_payload() {
        let payload = CustomerConfirmation {
            order_id: OrderId::parse("ORD-9").unwrap(),
            outcome: ConfirmationOutcome::Accepted,
            reason: None,
        };
        let envelope = Envelope::wrap("test", &payload);
        let (decoded, event_type) = Envelope::decode(&envelope.to_bytes()).unwrap();
        assert_eq!(event_type, EventType::CustomerConfirmation);
        assert_eq!(decoded.subject, "ORD-9");
        assert_eq!(decoded.payload::<CustomerConfirmation>().unwrap(), payload);
    }

    #[test]
    fn decode_names_what_is_wrong() {
        assert!(matches!(
            Envelope::decode(&[0xff, 0xfe]),
            Err(EnvelopeError::NotUtf8(_))
        ));
        assert!(matches!(
            Envelope::decode(b"not json"),
            Err(EnvelopeError::NotCloudEvent(_))
        ));
        let unknown = br#"{"specversion":"1.0","id":"1","source":"s","type":"x.y","subject":"A",
            "time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","data":{}}"#;
        assert!(matches!(
            Envelope::decode(unknown),
            Err(EnvelopeError::UnknownType(_))
        ));
    }

    #[test]
    fn traceparent_round_trips_and_children_share_the_trace() {
        let root = TraceParent::new_root();
        let parsed = TraceParent::parse(&root.to_string()).unwrap();
        assert_eq!(parsed, root);
        assert_eq!(root.child().trace_id(), root.trace_id());
        assert!(TraceParent::parse("garbage").is_none());
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::Value;

        use super::super::*;

        /// Any JSON value, nested a few levels, with hostile strings and numbers.
        fn any_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(
                    |f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
                ),
                ".{0,40}".prop_map(Value::String),
                "[\\u{0}-\\u{1f}\\u{2028}\\u{202e}a-z]{0,8}".prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 64, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn valid() -> Value {
            let payload = crate::domain::events::OrderVerified {
                order_id: OrderId::parse("ORD-1").unwrap(),
                version: 1,
                total_minor: 100,
                currency: crate::domain::Currency::parse("GBP").unwrap(),
            };
            serde_json::to_value(Envelope::wrap("test", &payload)).unwrap()
        }

        /// A refusal says what is wrong without carrying a hostile value raw.
        fn assert_named(error: &EnvelopeError) {
            let text = error.to_string();
            assert!(!text.is_empty());
            assert!(!text.contains('\u{0}'), "{text:?}");
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn any_bytes_are_an_event_or_a_named_refusal(body in prop::collection::vec(any::<u8>(), 0..1024)) {
                if let Err(error) = Envelope::read(&body) {
                    assert_named(&error);
                }
            }

            #[test]
            fn any_data_in_an_envelope_is_an_event_or_a_named_refusal(data in any_json()) {
                let mut envelope = valid();
                envelope["data"] = data;
                if let Err(error) = Envelope::read(&serde_json::to_vec(&envelope).unwrap()) {
                    assert_named(&error);
                }
            }

            #[test]
            fn any_attribute_is_an_event_or_a_named_refusal(
                field in prop::sample::select(vec!["id", "source", "type", "subject", "time", "specversion"]),
                value in any_json(),
            ) {
                let mut envelope = valid();
                envelope[field] = value;
                match Envelope::read(&serde_json::to_vec(&envelope).unwrap()) {
                    Err(error) => assert_named(&error),
                    Ok((read, _)) => prop_assert!(crate::domain::text::event_id("id", &read.id).is_ok()),
                }
            }
        }
    }
}
