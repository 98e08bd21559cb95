//! Taking orders, amendments, customers' answers and payments over HTTP, for systems that do
//! not speak AMQP. Each request is checked whole (nothing is published if any part is invalid),
//! published as the same events `fulfilment submit` publishes, and answered only once the broker
//! has confirmed every event (202 Accepted).
//!
//! | method | path | body | publishes |
//! |---|---|---|---|
//! | POST | `/orders` | an order, or an array of orders | `order.placed` |
//! | POST | `/amendments` | a changed order (higher `version`), or an array | `order.amended` |
//! | POST | `/confirmations` | `{"order_id", "outcome", "reason"}` | `customer.confirmation` |
//! | POST | `/payments` | `{"order_id", "payment_reference", "amount_minor", "currency", "captured_at"}` | `payment.captured` |
//!
//! The caller needs the `intake` role. Sending a request again is safe: an order is placed once
//! per `order_id`, an amendment applies once per version, a payment is booked once per
//! `payment_reference`, and an acceptance or receipt counts once.
//!
//! The intake refuses (422, naming the field) what the pipeline would refuse later: orders are
//! parsed as [`Order`]s with their limits, answers and payments as [`Payload::decode`] decodes
//! them from a message. A request body over `amqp.max_message_bytes`, or an event whose encoded
//! envelope would be over it, is refused with 413 before anything is published: the stages would
//! only send such a message to review as `message_too_large`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use crate::domain::events::{OrderAmended, OrderPlaced, Payload, PayloadError};
use crate::domain::{EventPayload, EventType, Order, text};
use crate::envelope::{TraceParent, WireEvent};
use crate::review::api::{ApiError, ApiState, Caller};
use crate::review::extract::ApiJson;
use crate::review::link::BrokerLink;
use crate::review::{Person, ReviewError};
use tracing::Instrument;

/// The role a caller needs to publish into the pipeline.
pub const INTAKE_ROLE: &str = "intake";

/// The CloudEvents `source` of what the intake publishes.
const SOURCE: &str = "fulfilment/intake";

/// The longest part of a parser's message quoted back: it may quote what was sent.
const MAX_PROBLEM_CHARS: usize = 300;

/// Publishes what callers send, over the API's broker connection.
#[derive(Clone)]
pub struct Intake {
    link: Arc<BrokerLink>,
    max_message_bytes: usize,
}

/// One event published for a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// The order it is about.
    pub order_id: String,
    /// The event's id.
    pub event_id: String,
}

/// An event would be a message larger than the stages take (`amqp.max_message_bytes`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "event #{number} (order {order_id}) would be a message of {bytes} bytes, over the limit of \
     {max} bytes (amqp.max_message_bytes)"
)]
pub struct TooLarge {
    /// Which event of the request, from 1.
    pub number: usize,
    /// The order it is about.
    pub order_id: String,
    /// Its encoded size.
    pub bytes: usize,
    /// The limit.
    pub max: usize,
}

impl Intake {
    /// An intake publishing over `link` messages of at most `max_message_bytes`.
    pub fn new(link: Arc<BrokerLink>, max_message_bytes: usize) -> Self {
        Self {
            link,
            max_message_bytes,
        }
    }

    /// Encodes `payloads` as events, refusing the request if any would be over the message
    /// limit (the stages would send it to review unread).
    pub fn encode<P: EventPayload>(
        &self,
        payloads: &[P],
        trace: Option<&TraceParent>,
    ) -> Result<Vec<WireEvent>, TooLarge> {
        let events: Vec<WireEvent> = payloads
            .iter()
            .map(|p| WireEvent::new(SOURCE, p, trace))
            .collect();
        match events
            .iter()
            .position(|e| e.body.len() > self.max_message_bytes)
        {
            Some(i) => Err(TooLarge {
                number: i + 1,
                order_id: events[i].order_id.clone(),
                bytes: events[i].body.len(),
                max: self.max_message_bytes,
            }),
            None => Ok(events),
        }
    }

    /// Publishes `events` and waits for the broker's confirms.
    pub async fn publish(&self, events: Vec<WireEvent>) -> anyhow::Result<Vec<Accepted>> {
        self.link.publish(&events).await?;
        Ok(events
            .into_iter()
            .map(|e| Accepted {
                order_id: e.order_id,
                event_id: e.event_id,
            })
            .collect())
    }
}

/// Orders from a JSON order or array of orders; an invalid one is named by its position (from 1)
/// and the field at fault.
pub fn orders_from_json(value: Value) -> Result<Vec<Order>, String> {
    let items = match value {
        Value::Array(items) => items,
        single => vec![single],
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            order_from_json(item).map_err(|e| format!("order #{} is invalid: {e}", i + 1))
        })
        .collect()
}

/// One order, or what is wrong with it: the field's path (when the parser knows it) and the
/// problem, escaped and cut short.
fn order_from_json(item: Value) -> Result<Order, String> {
    serde_path_to_error::deserialize(item).map_err(|error| {
        let path = error.path().to_string();
        let problem = text::excerpt(&error.into_inner().to_string(), MAX_PROBLEM_CHARS);
        match path.as_str() {
            "." => problem,
            _ => format!("{path}: {problem}"),
        }
    })
}

/// The caller's W3C `traceparent` header, when it sent a valid one: the events published for
/// the request continue the caller's trace (a new trace starts otherwise).
pub struct CallerTrace(pub Option<TraceParent>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for CallerTrace {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let trace = parts
            .headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(TraceParent::parse);
        Ok(CallerTrace(trace))
    }
}

/// The intake's routes, served with the review API.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/orders", post(place))
        .route("/amendments", post(amend))
        .route("/confirmations", post(confirm))
        .route("/payments", post(pay))
}

async fn place(
    State(state): State<ApiState>,
    Caller(person): Caller,
    CallerTrace(trace): CallerTrace,
    ApiJson(body): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    publish_orders(&state, &person, body, trace, OrderPlaced::new).await
}

async fn amend(
    State(state): State<ApiState>,
    Caller(person): Caller,
    CallerTrace(trace): CallerTrace,
    ApiJson(body): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    publish_orders(&state, &person, body, trace, OrderAmended::new).await
}

/// Checks every order in `body`, then publishes each as `wrap` makes it.
async fn publish_orders<P: EventPayload>(
    state: &ApiState,
    person: &Person,
    body: Value,
    trace: Option<TraceParent>,
    wrap: fn(Order) -> P,
) -> Result<impl IntoResponse + use<P>, ApiError> {
    may_publish(person)?;
    let orders = orders_from_json(body).map_err(ApiError::Invalid)?;
    let payloads: Vec<P> = orders.into_iter().map(wrap).collect();
    accepted(state, &payloads, trace).await
}

async fn confirm(
    State(state): State<ApiState>,
    Caller(person): Caller,
    CallerTrace(trace): CallerTrace,
    ApiJson(body): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    may_publish(&person)?;
    let answer = match decode(
        EventType::CustomerConfirmation,
        &body,
        "customer confirmation",
    )? {
        Payload::CustomerConfirmation(answer) => answer,
        other => return Err(decoded_as_another(&other)),
    };
    accepted(&state, &[answer], trace).await
}

async fn pay(
    State(state): State<ApiState>,
    Caller(person): Caller,
    CallerTrace(trace): CallerTrace,
    ApiJson(body): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    may_publish(&person)?;
    let payment = match decode(EventType::PaymentCaptured, &body, "payment")? {
        Payload::PaymentCaptured(payment) => payment,
        other => return Err(decoded_as_another(&other)),
    };
    accepted(&state, &[payment], trace).await
}

fn may_publish(person: &Person) -> Result<(), ApiError> {
    match person.roles.iter().any(|r| r == INTAKE_ROLE) {
        true => Ok(()),
        false => Err(ReviewError::NotAuthorised {
            action: "publishing into the pipeline",
            required: INTAKE_ROLE,
        }
        .into()),
    }
}

/// `body` as the payload of `event_type`, checked as a stage would check it, or what is wrong
/// with it (the body is the event's `data`, so fields are named from the body).
fn decode(event_type: EventType, body: &Value, what: &str) -> Result<Payload, ApiError> {
    Payload::decode(event_type, body).map_err(|error| {
        let problem = match error {
            PayloadError::Shape { path, message } if path.is_empty() => message,
            PayloadError::Shape { path, message } => format!("{path}: {message}"),
            PayloadError::Limits(limits) => limits.to_string(),
            other => other.to_string(),
        };
        ApiError::Invalid(format!("{what} is invalid: {problem}"))
    })
}

/// [`Payload::decode`] answered with another type than asked: a bug, not the caller's fault.
fn decoded_as_another(payload: &Payload) -> ApiError {
    let error = anyhow::anyhow!("decoding gave a {} payload", payload.event_type());
    ReviewError::Internal(error).into()
}

async fn accepted<P: EventPayload>(
    state: &ApiState,
    payloads: &[P],
    trace: Option<TraceParent>,
) -> Result<impl IntoResponse + use<P>, ApiError> {
    // One span for the request, the child of the caller's when it sent a trace.
    let span = tracing::info_span!("intake", events = payloads.len());
    let hop = crate::telemetry::otel::continue_trace(&span, trace.as_ref());
    let events = state
        .intake
        .encode(payloads, Some(&hop))
        .map_err(|e| ApiError::TooLarge(e.to_string()))?;
    let accepted = state
        .intake
        .publish(events)
        .instrument(span)
        .await
        .map_err(ApiError::Unavailable)?;
    let body = serde_json::json!({ "accepted": accepted });
    Ok((StatusCode::ACCEPTED, Json(body)))
}
