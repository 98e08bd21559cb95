//! The review desk over HTTP. Every route but the health checks needs `Authorization: Bearer
//! TOKEN` of a configured person: 401 without a valid token, 403 without the authority a case
//! needs.
//!
//! | method | path | body | |
//! |---|---|---|---|
//! | GET | `/health/live` (and `/health`) | | 200 while the process answers |
//! | GET | `/health/ready` | | 200 when ready, 503 naming what is not (see [`crate::health`]) |
//! | GET | `/overview` | | orders by state, open cases, backlogs, queues (see [`crate::overview`]) |
//! | GET | `/metrics` | | the same as Prometheus gauges |
//! | GET | `/cases?status=&reason=&stage=&role=&older_than_secs=&limit=` | | cases, oldest first |
//! | GET | `/cases/{id}` | | the case, its original message, the order's timeline, actions |
//! | POST | `/cases/{id}/retry` | `{"note"}` | re-inject the original message |
//! | POST | `/cases/{id}/amend` | `{"note", "order"}` | apply a changed order |
//! | POST | `/cases/{id}/cancel` | `{"note"}` | cancel and compensate |
//! | POST | `/cases/{id}/close` | `{"note"}` | resolved outside the pipeline |
//! | POST | `/customers/{id}/erase` | `{"note"}` | erase the customer's personal data (role `customer_service`) |
//! | POST | `/orders/{id}/documents/reissue` | `{"note"}` | reissue documents issued before the seller was configured (role `finance`) |
//!
//! The same server takes orders, amendments, answers and payments: see [`crate::intake`]; and
//! serves the web console (`/console`, signed in with a session cookie) and its JSON endpoints
//! (`/api/...`): see [`crate::console`].
//!
//! Nothing a caller sends reaches the database unchecked: notes, ids and filters are checked
//! against [`crate::domain::text`]'s limits and numbers against their ranges (422, naming the
//! field); a body axum cannot read is refused with its status (400, 413, 415), a body over
//! `amqp.max_message_bytes` with 413. Every refusal is JSON `{"error": ...}`.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::db::review::{CaseFilter, MAX_LIST_LIMIT, MAX_OLDER_THAN_SECS};
use crate::domain::text::{self, Problem, TextError};
use crate::health::{Health, PipelineHealth};
use crate::intake::Intake;
use crate::settings::AmqpSettings;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{People, Person, Resolution, ReviewDesk, ReviewError};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The desk.
    pub desk: ReviewDesk,
    /// Who may call.
    pub people: Arc<People>,
    /// The database, for the overview.
    pub pool: PgPool,
    /// Publishes what systems send to the intake routes.
    pub intake: Intake,
    /// The largest message the broker takes from the pipeline (`amqp.max_message_bytes`): also
    /// the largest request body, since what is sent becomes a message.
    pub max_message_bytes: usize,
    /// The process's readiness, served at `/health/ready`.
    pub health: Health,
}

impl ApiState {
    /// The same state, its desk reissuing documents with `seller` (see
    /// [`ReviewDesk::with_seller`]).
    pub fn with_seller(mut self, seller: Option<crate::domain::documents::Seller>) -> Self {
        self.desk = self.desk.with_seller(seller);
        self
    }

    /// The state for the API over `pool`, its desk and intake sharing one broker connection.
    pub fn new(amqp: &AmqpSettings, pool: PgPool, people: People) -> Self {
        let desk = ReviewDesk::new(amqp, pool.clone());
        let intake = Intake::new(desk.link(), amqp.max_message_bytes);
        Self {
            desk,
            people: Arc::new(people),
            health: Health::new(pool.clone(), None),
            pool,
            intake,
            max_message_bytes: amqp.max_message_bytes,
        }
    }

    /// The same state, with the pipeline running in this process part of its readiness.
    pub fn with_pipeline(mut self, pipeline: PipelineHealth) -> Self {
        self.health = Health::new(self.pool.clone(), Some(pipeline));
        self
    }
}

/// The routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .merge(crate::health::routes(state.health.clone()))
        .route("/overview", get(overview))
        .route("/metrics", get(metrics))
        .route("/cases", get(list))
        .route("/cases/{id}", get(show))
        .route("/cases/{id}/{action}", post(resolve))
        .route("/customers/{id}/erase", post(erase))
        .route("/orders/{id}/documents/reissue", post(reissue))
        .merge(crate::intake::routes())
        .merge(crate::console::routes())
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_message_bytes))
        .with_state(state)
}

async fn no_such_route() -> ApiError {
    ApiError::Rejected(StatusCode::NOT_FOUND, "no such route".into())
}

async fn method_not_allowed() -> ApiError {
    let message = "the route does not take this method";
    ApiError::Rejected(StatusCode::METHOD_NOT_ALLOWED, message.into())
}

/// Listens on `address` so that several processes on one host may serve the API there at once
/// (`SO_REUSEPORT`: the kernel shares connections between them). The API keeps nothing in a
/// process, so any of them answers any request alike.
pub fn bind(address: &str) -> std::io::Result<TcpListener> {
    let address: std::net::SocketAddr = address
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let socket = match address {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "review API listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// An error as the API answers it.
#[derive(Debug)]
pub enum ApiError {
    /// No valid bearer token.
    Unauthorized,
    /// The desk refused.
    Review(ReviewError),
    /// The broker did not take the message; the caller should send it again.
    Unavailable(anyhow::Error),
    /// The request does not fit (422); the message names the field.
    Invalid(String),
    /// The request body, or a message it would become, is larger than the broker takes (413).
    TooLarge(String),
    /// Axum refused the request before a handler saw it, with this status and message.
    Rejected(StatusCode, String),
}

impl From<ReviewError> for ApiError {
    fn from(e: ReviewError) -> Self {
        ApiError::Review(e)
    }
}

impl From<TextError> for ApiError {
    fn from(e: TextError) -> Self {
        ApiError::Invalid(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Unauthorized => {
                let body = Json(serde_json::json!({ "error": "a valid bearer token is required" }));
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    body,
                )
                    .into_response();
            }
            ApiError::Unavailable(error) => {
                tracing::warn!(error = %format!("{error:#}"), "intake could not publish");
                let message = "the broker did not take the message; send it again";
                (StatusCode::SERVICE_UNAVAILABLE, message.to_owned())
            }
            ApiError::Invalid(message) => (StatusCode::UNPROCESSABLE_ENTITY, message),
            ApiError::TooLarge(message) => (StatusCode::PAYLOAD_TOO_LARGE, message),
            ApiError::Rejected(status, message) => (status, message),
            ApiError::Review(e) => match &e {
                ReviewError::NotFound(_) | ReviewError::UnknownCustomer(_) => {
                    (StatusCode::NOT_FOUND, e.to_string())
                }
                ReviewError::NotAuthorised { .. } => (StatusCode::FORBIDDEN, e.to_string()),
                ReviewError::NotOpen(..) => (StatusCode::CONFLICT, e.to_string()),
                ReviewError::Forbidden { .. } => (StatusCode::FORBIDDEN, e.to_string()),
                ReviewError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
                ReviewError::Internal(inner) => {
                    tracing::error!(error = %format!("{inner:#}"), "review API failure");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal error".to_owned(),
                    )
                }
            },
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// The authenticated caller.
pub struct Caller(pub Person);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        state
            .people
            .authenticate(token.trim())
            .cloned()
            .map(Caller)
            .ok_or(ApiError::Unauthorized)
    }
}

async fn overview(
    State(state): State<ApiState>,
    _caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(take_overview(&state).await?))
}

async fn metrics(
    State(state): State<ApiState>,
    _caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let text = take_overview(&state).await?.prometheus();
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, content_type)], text))
}

async fn take_overview(state: &ApiState) -> Result<crate::overview::Overview, ApiError> {
    let queues = state.desk.link().queue_counts().await;
    crate::overview::take(&state.pool, queues)
        .await
        .map_err(|e| ReviewError::Internal(e).into())
}

/// The list filter as the query string has it: every value as text, so that a number that does
/// not parse gets the same clear answer as one out of range. An empty value does not filter.
#[derive(Debug, Default, Deserialize)]
pub struct CaseQuery {
    /// Only cases with this status.
    pub status: Option<String>,
    /// Only cases with this reason.
    pub reason: Option<String>,
    /// Only cases from this stage.
    pub stage: Option<String>,
    /// Only cases needing this role.
    pub role: Option<String>,
    /// Only cases opened at least this many seconds ago.
    pub older_than_secs: Option<String>,
    /// Most cases returned.
    pub limit: Option<String>,
}

impl CaseQuery {
    /// The filter, with its numbers parsed (their ranges and the text limits are checked by
    /// [`CaseFilter::check`]).
    pub fn into_filter(self) -> Result<CaseFilter, TextError> {
        Ok(CaseFilter {
            status: given(self.status),
            reason: given(self.reason),
            stage: given(self.stage),
            role: given(self.role),
            older_than_secs: number(
                "older_than_secs",
                self.older_than_secs,
                0,
                MAX_OLDER_THAN_SECS,
            )?,
            limit: number("limit", self.limit, 1, MAX_LIST_LIMIT)?,
        })
    }
}

/// `None` for an absent or empty parameter.
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// A whole number meant to lie between `min` and `max`; text that is not one is refused with
/// that range.
fn number(
    field: &str,
    value: Option<String>,
    min: i64,
    max: i64,
) -> Result<Option<i64>, TextError> {
    let Some(raw) = given(value) else {
        return Ok(None);
    };
    raw.parse().map(Some).map_err(|_| TextError {
        field: field.to_owned(),
        problem: Problem::OutOfRange { min, max },
    })
}

async fn list(
    State(state): State<ApiState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<CaseQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let filter = query.into_filter()?;
    Ok(Json(state.desk.list(&filter).await?))
}

async fn show(
    State(state): State<ApiState>,
    _caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.desk.show(id).await?))
}

/// The body of a resolution.
#[derive(Debug, Deserialize)]
pub struct ResolveBody {
    /// Why.
    pub note: String,
    /// For `amend`: the changed order.
    #[serde(default)]
    pub order: Option<serde_json::Value>,
}

async fn resolve(
    State(state): State<ApiState>,
    Caller(person): Caller,
    ApiPath((id, action)): ApiPath<(i64, String)>,
    ApiJson(body): ApiJson<ResolveBody>,
) -> Result<impl IntoResponse, ApiError> {
    let resolution = match (action.as_str(), body.order) {
        ("retry", _) => Resolution::Retry,
        ("amend", Some(order)) => Resolution::Amend(order),
        ("amend", None) => {
            return Err(ReviewError::Invalid("amend needs an \"order\"".into()).into());
        }
        ("cancel", _) => Resolution::Cancel,
        ("close", _) => Resolution::Close,
        (other, _) => {
            let action = text::excerpt(other, 40);
            return Err(ApiError::Invalid(format!(
                "unknown action \"{action}\"; expected retry, amend, cancel or close"
            )));
        }
    };
    Ok(Json(
        state
            .desk
            .resolve(id, &person, resolution, &body.note)
            .await?,
    ))
}

/// The body of an erasure request.
#[derive(Debug, Deserialize)]
pub struct EraseBody {
    /// Why (the customer's request, its reference).
    pub note: String,
}

async fn erase(
    State(state): State<ApiState>,
    Caller(person): Caller,
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(body): ApiJson<EraseBody>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state
            .desk
            .erase_customer(&customer_id, &person, &body.note)
            .await?,
    ))
}

async fn reissue(
    State(state): State<ApiState>,
    Caller(person): Caller,
    ApiPath(order_id): ApiPath<String>,
    ApiJson(body): ApiJson<EraseBody>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state
            .desk
            .reissue_documents(&order_id, &person, &body.note)
            .await?,
    ))
}
