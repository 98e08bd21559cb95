//! The API's extractors: axum's `Json`, `Query` and `Path`, whose refusals (bad JSON, a wrong
//! content type, a body over the limit, a path or query string that does not parse) are answered
//! like every other error, as JSON `{"error": ...}` with axum's status, instead of plain text.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::domain::text;

use super::api::{ApiError, ApiState};

/// The longest part of axum's own message kept in an answer: it may quote what was sent.
const MAX_REJECTION_CHARS: usize = 300;

/// A JSON request body, refused as JSON.
pub struct ApiJson<T>(pub T);

/// A query string, refused as JSON.
pub struct ApiQuery<T>(pub T);

/// Path segments, refused as JSON.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned> FromRequest<ApiState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(refused) if refused.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::TooLarge(format!(
                    "the request body is over the limit of {} bytes (amqp.max_message_bytes)",
                    state.max_message_bytes
                )))
            }
            Err(refused) => Err(rejected(refused.status(), &refused.body_text())),
        }
    }
}

impl<T: DeserializeOwned + Send> FromRequestParts<ApiState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|refused| rejected(refused.status(), &refused.body_text()))
    }
}

impl<T: DeserializeOwned + Send> FromRequestParts<ApiState> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|refused| rejected(refused.status(), &refused.body_text()))
    }
}

/// Axum's refusal with its status and its message, escaped and cut short.
fn rejected(status: StatusCode, message: &str) -> ApiError {
    ApiError::Rejected(status, text::excerpt(message, MAX_REJECTION_CHARS))
}
