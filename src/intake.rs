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

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use crate::domain::events::{CustomerConfirmation, OrderAmended, OrderPlaced, PaymentCaptured};
use crate::domain::{EventPayload, Order};
use crate::envelope::WireEvent;
use crate::review::api::{ApiError, ApiState, Caller};
use crate::review::link::BrokerLink;
use crate::review::{Person, ReviewError};

/// The role a caller needs to publish into the pipeline.
pub const INTAKE_ROLE: &str = "intake";

/// The CloudEvents `source` of what the intake publishes.
const SOURCE: &str = "fulfilment/intake";

/// Publishes what callers send, over the API's broker connection.
#[derive(Clone)]
pub struct Intake {
    link: Arc<BrokerLink>,
}

/// One event published for a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// The order it is about.
    pub order_id: String,
    /// The event's id.
    pub event_id: String,
}

impl Intake {
    /// An intake publishing over `link`.
    pub fn new(link: Arc<BrokerLink>) -> Self {
        Self { link }
    }

    /// Publishes `payloads` as events and waits for the broker's confirms.
    pub async fn publish<P: EventPayload>(&self, payloads: &[P]) -> anyhow::Result<Vec<Accepted>> {
        let events: Vec<WireEvent> = payloads
            .iter()
            .map(|p| WireEvent::new(SOURCE, p, None))
            .collect();
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

/// Orders from a JSON order or array of orders; an invalid one is named by its position (from 1).
pub fn orders_from_json(value: Value) -> Result<Vec<Order>, String> {
    let items = match value {
        Value::Array(items) => items,
        single => vec![single],
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value(item).map_err(|e| format!("order #{} is invalid: {e}", i + 1))
        })
        .collect()
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
    Json(body): Json<Value>,
) -> Result<impl IntoResponse, ApiError> {
    publish_orders(&state, &person, body, OrderPlaced::new).await
}

async fn amend(
    State(state): State<ApiState>,
    Caller(person): Caller,
    Json(body): Json<Value>,
) -> Result<impl IntoResponse, ApiError> {
    publish_orders(&state, &person, body, OrderAmended::new).await
}

/// Checks every order in `body`, then publishes each as `wrap` makes it.
async fn publish_orders<P: EventPayload>(
    state: &ApiState,
    person: &Person,
    body: Value,
    wrap: fn(Order) -> P,
) -> Result<impl IntoResponse + use<P>, ApiError> {
    may_publish(person)?;
    let orders = orders_from_json(body).map_err(ReviewError::Invalid)?;
    let payloads: Vec<P> = orders.into_iter().map(wrap).collect();
    accepted(state, &payloads).await
}

async fn confirm(
    State(state): State<ApiState>,
    Caller(person): Caller,
    Json(body): Json<Value>,
) -> Result<impl IntoResponse, ApiError> {
    may_publish(&person)?;
    let answer: CustomerConfirmation = parse(body, "customer confirmation")?;
    accepted(&state, &[answer]).await
}

async fn pay(
    State(state): State<ApiState>,
    Caller(person): Caller,
    Json(body): Json<Value>,
) -> Result<impl IntoResponse, ApiError> {
    may_publish(&person)?;
    let payment: PaymentCaptured = parse(body, "payment")?;
    if payment.amount_minor <= 0 {
        let problem = "payment is invalid: amount_minor must be above 0";
        return Err(ReviewError::Invalid(problem.into()).into());
    }
    accepted(&state, &[payment]).await
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

fn parse<T: serde::de::DeserializeOwned>(body: Value, what: &str) -> Result<T, ApiError> {
    serde_json::from_value(body)
        .map_err(|e| ReviewError::Invalid(format!("{what} is invalid: {e}")).into())
}

async fn accepted<P: EventPayload>(
    state: &ApiState,
    payloads: &[P],
) -> Result<impl IntoResponse + use<P>, ApiError> {
    let accepted = state
        .intake
        .publish(payloads)
        .await
        .map_err(ApiError::Unavailable)?;
    let body = serde_json::json!({ "accepted": accepted });
    Ok((StatusCode::ACCEPTED, Json(body)))
}
