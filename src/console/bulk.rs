//! Bulk retry or close: many cases resolved by one person with one note, one at a time through
//! the desk (so every case is checked and recorded as if done alone, and a case someone else
//! resolved first is reported, not resolved twice), at most [`CASES_PER_SECOND`].
//!
//! The job and each case's outcome are kept in the database, so its progress can be followed
//! from any process serving the console. Should the process stop part-way, the cases not yet
//! tried stay open (and their results empty): start another job for them.

use std::time::Duration;

use axum::Json;
use axum::extract::{RawForm, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Serialize;

use crate::db;
use crate::db::console::{JobRow, ResultRow};
use crate::db::search::CaseSearch;
use crate::review::api::ApiState;
use crate::review::{Person, Resolution, ReviewError};

use super::ConsolePath;
use super::page::{ConsoleError, layout};
use super::session::{Fields, Operator};

/// The most cases a bulk job resolves each second, so that a large group does not flood the
/// stages with re-injected messages at once.
pub const CASES_PER_SECOND: u64 = 10;
/// The most cases one job takes.
pub const MAX_CASES: usize = 1000;

/// A job's progress as the JSON endpoints and the progress bar read it.
#[derive(Debug, Serialize)]
pub struct Progress {
    /// The job.
    #[serde(flatten)]
    pub job: JobRow,
    /// How many cases were tried so far.
    pub done: usize,
    /// Every case with its outcome (`null` until tried).
    pub results: Vec<ResultRow>,
}

/// Starts resolving `case_ids` as `person` decided (`retry` or `close`), in the background.
/// Returns the job's id.
pub async fn start(
    state: &ApiState,
    person: &Person,
    action: &str,
    note: &str,
    case_ids: Vec<i64>,
) -> Result<i64, ReviewError> {
    let resolution = match action {
        "retry" => Resolution::Retry,
        "close" => Resolution::Close,
        other => {
            let other = crate::domain::text::excerpt(other, 40);
            return Err(ReviewError::Invalid(format!(
                "unknown bulk action \"{other}\"; expected retry or close"
            )));
        }
    };
    crate::domain::text::free_text("note", note)?;
    if note.trim().is_empty() {
        return Err(ReviewError::Invalid(
            "note: a note saying why is required".into(),
        ));
    }
    let mut ids = Vec::with_capacity(case_ids.len());
    for id in case_ids {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Err(ReviewError::Invalid("no cases were chosen".into()));
    }
    if ids.len() > MAX_CASES {
        return Err(ReviewError::Invalid(format!(
            "at most {MAX_CASES} cases at once"
        )));
    }
    let mut conn = state.pool.acquire().await?;
    // Authority over every case is checked before anything is done: a bulk action someone may
    // not take is refused whole, not tried case by case.
    let roles = db::console::required_roles(&mut conn, &ids).await?;
    if let Some(missing) = ids.iter().find(|id| !roles.iter().any(|(r, _)| r == *id)) {
        return Err(ReviewError::NotFound(*missing));
    }
    if let Some((case, required)) = roles.iter().find(|(_, role)| !person.may_resolve(role)) {
        return Err(ReviewError::Forbidden {
            case: *case,
            required: required.clone(),
        });
    }
    let job = db::console::insert_job(&mut conn, action, &person.name, note, &ids).await?;
    drop(conn);
    tracing::info!(job, action, cases = ids.len(), actor = %person.name, "bulk action started");
    let (state, person, note) = (state.clone(), person.clone(), note.to_owned());
    tokio::spawn(async move {
        let mut pace = tokio::time::interval(Duration::from_millis(1000 / CASES_PER_SECOND));
        for id in ids {
            pace.tick().await;
            let result = state
                .desk
                .resolve(id, &person, resolution.clone(), &note)
                .await;
            let (outcome, message) = outcome(&result);
            let recorded = async {
                let mut conn = state.pool.acquire().await?;
                db::console::record_result(&mut conn, job, id, outcome, &message).await
            };
            if let Err(error) = recorded.await {
                tracing::error!(job, case = id, error = %error, "recording a bulk result failed");
            }
        }
        tracing::info!(job, "bulk action finished");
    });
    Ok(job)
}

/// A case's outcome and what the person is told.
fn outcome(result: &Result<crate::db::review::CaseRow, ReviewError>) -> (&'static str, String) {
    match result {
        Ok(case) => ("done", format!("now {}", case.status)),
        Err(e @ ReviewError::NotOpen(..)) => ("conflict", e.to_string()),
        Err(e @ ReviewError::Forbidden { .. }) => ("forbidden", e.to_string()),
        Err(e @ (ReviewError::Invalid(_) | ReviewError::NotFound(_))) => ("invalid", e.to_string()),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "bulk case failed");
            ("failed", "internal error".to_owned())
        }
    }
}

/// A job's progress, or `None` if there is no such job.
pub async fn progress(state: &ApiState, id: i64) -> Result<Option<Progress>, ReviewError> {
    let mut conn = state.pool.acquire().await?;
    Ok(db::console::job(&mut conn, id)
        .await?
        .map(|(job, results)| Progress {
            done: results.iter().filter(|r| r.outcome.is_some()).count(),
            job,
            results,
        }))
}

/// The open cases of one group (`reason`, `stage`, `role`), oldest first, at most [`MAX_CASES`].
pub async fn group_cases(
    state: &ApiState,
    reason: &str,
    stage: &str,
    role: &str,
) -> Result<Vec<i64>, ReviewError> {
    for (field, value) in [("reason", reason), ("stage", stage), ("role", role)] {
        crate::domain::text::identifier(field, value)?;
    }
    let search = CaseSearch {
        status: Some("open".into()),
        reason: Some(reason.into()),
        stage: Some(stage.into()),
        role: Some(role.into()),
        ..CaseSearch::default()
    };
    let mut conn = state.pool.acquire().await?;
    let cases = db::search::cases(&mut conn, &search, MAX_CASES as i64).await?;
    Ok(cases.into_iter().map(|c| c.id).collect())
}

/// `POST /console/cases/bulk`: `do` (`retry selected`, `close selected`, `retry group` or
/// `close group`), `note`, the ticked `case` ids, and `group` (`reason stage role`) for every
/// open case of the group.
pub async fn submit(
    State(state): State<ApiState>,
    operator: Operator,
    form: RawForm,
) -> Result<Response, ConsoleError> {
    let fields = Fields::parse(&form);
    operator.check_csrf(&fields)?;
    let (action, scope) = fields
        .get("do")
        .and_then(|d| d.split_once(' '))
        .ok_or_else(|| ConsoleError::Invalid("do: expected an action and what to act on".into()))?;
    let ids = match scope {
        "group" => {
            let group = fields.get("group").unwrap_or_default();
            let parts: Vec<&str> = group.split(' ').collect();
            let [reason, stage, role] = parts[..] else {
                return Err(ConsoleError::Invalid(
                    "group: expected reason, stage and role".into(),
                ));
            };
            group_cases(&state, reason, stage, role).await?
        }
        _ => fields
            .all("case")
            .map(|id| {
                id.parse::<i64>()
                    .map_err(|_| ConsoleError::Invalid("case: not a case id".into()))
            })
            .collect::<Result<_, _>>()?,
    };
    let note = fields.get("note").unwrap_or_default();
    let job = start(&state, &operator.person, action, note, ids).await?;
    Ok(Redirect::to(&format!("/console/bulk/{job}")).into_response())
}

/// `GET /console/bulk/{id}`: the progress bar and each case's result; the page's script follows
/// the progress until every case was tried.
pub async fn page(
    State(state): State<ApiState>,
    operator: Operator,
    ConsolePath(id): ConsolePath<i64>,
) -> Result<maud::Markup, ConsoleError> {
    let progress = progress(&state, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no bulk action {id}")))?;
    let title = format!("Bulk {} #{}", progress.job.action, id);
    Ok(layout(
        &title,
        operator.who(),
        html! {
            p { "By " (progress.job.actor) ": " (progress.job.note) }
            div #bulk data-progress=(format!("/console/bulk/{id}/progress")) {
                progress #bulk-bar value=(progress.done) max=(progress.job.total) {}
                " "
                span #bulk-done { (progress.done) } " of " span #bulk-total { (progress.job.total) } " cases"
            }
            table #bulk-results {
                thead { tr { th { "case" } th { "outcome" } th { "" } } }
                tbody {
                    @for r in &progress.results {
                        tr data-case=(r.case_id) {
                            td { a href=(format!("/console/cases/{}", r.case_id)) { "#" (r.case_id) } }
                            td.outcome { (r.outcome.as_deref().unwrap_or("waiting")) }
                            td.message { (r.message.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        },
    ))
}

/// `GET /console/bulk/{id}/progress`: the same as JSON, for the progress bar.
pub async fn progress_json(
    State(state): State<ApiState>,
    _operator: Operator,
    ConsolePath(id): ConsolePath<i64>,
) -> Result<Json<Progress>, ConsoleError> {
    progress(&state, id)
        .await?
        .map(Json)
        .ok_or_else(|| ConsoleError::NotFound(format!("no bulk action {id}")))
}
