//! The page every console screen is drawn in, and how refusals are shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::domain::{Currency, money};
use crate::review::{Person, ReviewError};

/// A whole page: the head, the navigation (with sign-out when someone is signed in) and `body`.
pub fn layout(title: &str, who: Option<(&Person, &str)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · fulfilment" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header {
                    a.brand href="/console" { "fulfilment" }
                    @if let Some((person, csrf)) = who {
                        nav {
                            a href="/console" { "Overview" }
                            a href="/console/cases" { "Review cases" }
                            a href="/console/orders" { "Orders" }
                        }
                        form.signout method="post" action="/console/sign-out" {
                            span #who { (person.name) " (" (person.roles.join(", ")) ")" }
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// Minor units for people, with the currency: `1250` GBP is `12.50 GBP`.
pub fn money(minor: i64, currency: &str) -> String {
    match Currency::parse(currency) {
        Ok(c) => money::format(minor, c),
        Err(_) => format!("{minor} (minor units)"),
    }
}

/// How long ago `at` was, in the largest whole unit.
pub fn age(at: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (chrono::Utc::now() - at).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// A UTC time as the console shows it.
pub fn when(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// Why the console refused or failed, shown as a page with its status.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The form did not carry the session's CSRF token (403).
    #[error(
        "the form is out of date or did not come from this console; reload the page and try again"
    )]
    Csrf,
    /// Nothing there (404).
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit (422).
    #[error("{0}")]
    Invalid(String),
    /// The desk refused or failed.
    #[error(transparent)]
    Review(#[from] ReviewError),
}

impl From<sqlx::Error> for ConsoleError {
    fn from(e: sqlx::Error) -> Self {
        ConsoleError::Review(ReviewError::Internal(e.into()))
    }
}

impl From<anyhow::Error> for ConsoleError {
    fn from(e: anyhow::Error) -> Self {
        ConsoleError::Review(ReviewError::Internal(e))
    }
}

impl From<crate::domain::text::TextError> for ConsoleError {
    fn from(e: crate::domain::text::TextError) -> Self {
        ConsoleError::Invalid(e.to_string())
    }
}

impl ConsoleError {
    /// The HTTP status the refusal is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ConsoleError::Csrf => StatusCode::FORBIDDEN,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ConsoleError::Review(e) => match e {
                ReviewError::NotFound(_) | ReviewError::UnknownCustomer(_) => StatusCode::NOT_FOUND,
                ReviewError::Forbidden { .. } | ReviewError::NotAuthorised { .. } => {
                    StatusCode::FORBIDDEN
                }
                ReviewError::NotOpen(..) => StatusCode::CONFLICT,
                ReviewError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                ReviewError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// What the person is told: the desk's words, but nothing of an internal failure.
    pub fn message(&self) -> String {
        match self {
            ConsoleError::Review(ReviewError::Internal(inner)) => {
                tracing::error!(error = %format!("{inner:#}"), "console failure");
                "internal error".to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = layout(
            status.canonical_reason().unwrap_or("Refused"),
            None,
            html! {
                p.error #refusal { (self.message()) }
                p { a href="/console" { "Back to the console" } }
            },
        );
        (status, body).into_response()
    }
}
