//! Signing in to the console with a person's bearer token, the session cookie it is exchanged
//! for, and the CSRF token every form carries.
//!
//! The cookie is `HttpOnly` and `SameSite=Strict`; only its SHA-256 is stored (with the person's
//! name and the session's CSRF token), so the database holds nothing that signs anyone in. The
//! person's roles are read from the configuration on every request. The sign-in form itself is
//! protected by a double-submit token: a cookie set with the form that the form must repeat.

use axum::extract::{FromRequestParts, RawForm, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use maud::html;

use crate::db;
use crate::digest::sha256_hex;
use crate::review::Person;
use crate::review::api::ApiState;

use super::page::{ConsoleError, layout};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "fulfilment_session";
/// The sign-in form's double-submit cookie.
const SIGN_IN_COOKIE: &str = "fulfilment_sign_in";
/// How long a session lasts: twelve hours, a working day.
pub const SESSION_SECS: i64 = 12 * 3600;

/// A signed-in person and their session's CSRF token.
#[derive(Debug, Clone)]
pub struct Operator {
    /// Who.
    pub person: Person,
    /// The token their forms carry.
    pub csrf: String,
    session_hash: String,
}

impl Operator {
    /// Refuses a form that does not carry this session's CSRF token.
    pub fn check_csrf(&self, form: &Fields) -> Result<(), ConsoleError> {
        match form.get("csrf") {
            Some(token) if same(token.as_bytes(), self.csrf.as_bytes()) => Ok(()),
            _ => Err(ConsoleError::Csrf),
        }
    }

    /// The person and token the page layout shows.
    pub fn who(&self) -> Option<(&Person, &str)> {
        Some((&self.person, &self.csrf))
    }
}

/// Without a session, a page sends the browser to sign in.
pub struct SignInFirst;

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        Redirect::to("/console/sign-in").into_response()
    }
}

impl FromRequestParts<ApiState> for Operator {
    type Rejection = SignInFirst;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let cookie = cookie(&parts.headers, SESSION_COOKIE).ok_or(SignInFirst)?;
        let session_hash = sha256_hex(cookie.as_bytes());
        let mut conn = state.pool.acquire().await.map_err(|_| SignInFirst)?;
        let session = db::console::find_session(&mut conn, &session_hash)
            .await
            .ok()
            .flatten()
            .ok_or(SignInFirst)?;
        let person = state.people.named(&session.person).ok_or(SignInFirst)?;
        Ok(Operator {
            person: person.clone(),
            csrf: session.csrf,
            session_hash,
        })
    }
}

/// A form's fields in order; a name may repeat (the cases ticked for a bulk action).
#[derive(Debug, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The fields of an `application/x-www-form-urlencoded` body.
    pub fn parse(form: &RawForm) -> Self {
        Fields(url::form_urlencoded::parse(&form.0).into_owned().collect())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A fresh unguessable token: 244 random bits, hex.
fn fresh_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn set_cookie(name: &str, value: &str, max_age: i64) -> String {
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}")
}

/// `GET /console/sign-in`: the form, with its double-submit token.
pub async fn sign_in_page() -> Response {
    form_page(StatusCode::OK, None)
}

fn form_page(status: StatusCode, refusal: Option<&str>) -> Response {
    let token = fresh_token();
    let body = layout(
        "Sign in",
        None,
        html! {
            @if let Some(refusal) = refusal { p.error #refusal { (refusal) } }
            form.signin method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(token);
                label for="token" { "Your access token" }
                input #token type="password" name="token" autocomplete="current-password" required;
                button #sign-in type="submit" { "Sign in" }
            }
            p.hint { "The same token the API takes as " code { "Authorization: Bearer" } "." }
        },
    );
    let cookie = set_cookie(SIGN_IN_COOKIE, &token, 600);
    (status, [(header::SET_COOKIE, cookie)], body).into_response()
}

/// `POST /console/sign-in`: exchanges a valid token for a session cookie.
pub async fn sign_in(State(state): State<ApiState>, headers: HeaderMap, form: RawForm) -> Response {
    let fields = Fields::parse(&form);
    let expected = cookie(&headers, SIGN_IN_COOKIE);
    let csrf_ok = matches!((expected, fields.get("csrf")),
        (Some(e), Some(g)) if same(e.as_bytes(), g.as_bytes()));
    if !csrf_ok {
        return ConsoleError::Csrf.into_response();
    }
    let token = fields.get("token").unwrap_or_default().trim();
    let Some(person) = state.people.authenticate(token).cloned() else {
        return form_page(StatusCode::UNAUTHORIZED, Some("That token is not valid."));
    };
    let session = fresh_token();
    let created = async {
        let mut conn = state.pool.acquire().await?;
        db::console::insert_session(
            &mut conn,
            &sha256_hex(session.as_bytes()),
            &person.name,
            &fresh_token(),
            SESSION_SECS,
        )
        .await
    };
    if let Err(e) = created.await {
        return ConsoleError::from(e).into_response();
    }
    tracing::info!(actor = %person.name, "console sign-in");
    let headers = AppendHeaders([
        (
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, &session, SESSION_SECS),
        ),
        (header::SET_COOKIE, set_cookie(SIGN_IN_COOKIE, "", 0)),
    ]);
    (headers, Redirect::to("/console")).into_response()
}

/// `POST /console/sign-out`: ends the session.
pub async fn sign_out(
    State(state): State<ApiState>,
    operator: Operator,
    form: RawForm,
) -> Result<Response, ConsoleError> {
    operator.check_csrf(&Fields::parse(&form))?;
    let mut conn = state.pool.acquire().await?;
    db::console::delete_session(&mut conn, &operator.session_hash).await?;
    let cookie = set_cookie(SESSION_COOKIE, "", 0);
    Ok((
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/console/sign-in"),
    )
        .into_response())
}
