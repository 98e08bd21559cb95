//! The web console, served by the API's HTTP server: server-rendered pages for the people who
//! work the review queue and answer customers, with a little script of its own (no CDN).
//!
//! - [`session`]: sign-in with a bearer token, the session cookie, CSRF tokens, sign-out.
//! - [`overview`]: the pipeline at a glance, refreshing by itself.
//! - [`cases`]: review cases grouped by cause, a case's page and its actions.
//! - [`bulk`]: retry or close many cases at a bounded rate, with progress.
//! - [`orders`]: order search, an order's page, its documents as PDF.
//! - [`api`]: the JSON endpoints behind these, with the API's bearer tokens.
//! - [`filters`], [`page`]: the lists' filters; the page layout and refusals.
//!
//! Every action goes through the [`crate::review::ReviewDesk`], so the console and the API
//! share one set of rules: the same roles, the same notes, and of two people acting on one case
//! exactly one succeeds.

pub mod api;
pub mod bulk;
pub mod cases;
pub mod filters;
pub mod orders;
pub mod overview;
pub mod page;
pub mod session;

use axum::Router;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::review::api::ApiState;

use page::ConsoleError;

/// The console's routes and its JSON endpoints, merged into the API's router.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(overview::page))
        .route(
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/cases", get(cases::list))
        .route("/console/cases/bulk", post(bulk::submit))
        .route("/console/cases/{id}", get(cases::show))
        .route("/console/cases/{id}/{action}", post(cases::act))
        .route("/console/bulk/{id}", get(bulk::page))
        .route("/console/bulk/{id}/progress", get(bulk::progress_json))
        .route("/console/orders", get(orders::list))
        .route("/console/orders/{id}", get(orders::show))
        .route(
            "/console/orders/{id}/documents/{number}",
            get(orders::document),
        )
        .route("/console/assets/console.js", get(script))
        .route("/console/assets/console.css", get(style))
        .route_layer(axum::middleware::map_response(guarded))
        .route("/api/orders", get(api::orders))
        .route("/api/cases", get(api::cases))
        .route("/api/cases/bulk", post(api::bulk_start))
        .route("/api/cases/bulk/{id}", get(api::bulk_progress))
}

/// What every console page is served with: it may not be framed by another site (clickjacking),
/// loads nothing but this server's script and style, and is not cached (pages show personal
/// data and a session's CSRF token).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; \
     frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

async fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn script() -> impl IntoResponse {
    let content_type = "text/javascript; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        include_str!("assets/console.js"),
    )
}

async fn style() -> impl IntoResponse {
    let content_type = "text/css; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        include_str!("assets/console.css"),
    )
}

/// Path segments; a path that does not parse is a page that does not exist.
pub struct ConsolePath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ConsolePath<T> {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ConsolePath(value))
            .map_err(|_| ConsoleError::NotFound("no such page".into()))
    }
}
