//! The JSON endpoints behind the console, with the API's bearer tokens and roles:
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/api/orders?order_id=&customer_id=&state=&channel=&placed_from=&placed_to=&page=&per_page=` | one page of orders |
//! | GET | `/api/cases?status=&reason=&stage=&role=&older_than_mins=&order_id=&customer_id=` | cases and their groups |
//! | POST | `/api/cases/bulk` | `{"action", "note", "case_ids"}` or `{"action", "note", "group": {"reason", "stage", "role"}}` |
//! | GET | `/api/cases/bulk/{id}` | a bulk action's progress and each case's result |

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use crate::db;
use crate::review::ReviewError;
use crate::review::api::{ApiError, ApiState, Caller};
use crate::review::extract::{ApiJson, ApiPath};

use super::{bulk, filters};

/// The most cases `/api/cases` returns.
const CASE_LIMIT: i64 = 1000;

/// A page of orders.
#[derive(Debug, Serialize)]
struct OrderPage {
    page: i64,
    per_page: i64,
    total: i64,
    orders: Vec<db::search::OrderSummary>,
}

/// `GET /api/orders`.
pub async fn orders(
    State(state): State<ApiState>,
    _caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let (filter, page, per_page) = filters::orders(&filters::query(raw.as_deref()))?;
    let mut conn = state.pool.acquire().await.map_err(ReviewError::from)?;
    let (orders, total) = db::search::orders(&mut conn, &filter, (page - 1) * per_page, per_page)
        .await
        .map_err(ReviewError::from)?;
    Ok(Json(OrderPage {
        page,
        per_page,
        total,
        orders,
    }))
}

/// Cases of one reason, stage and role.
#[derive(Debug, Serialize)]
struct GroupCount {
    reason: String,
    stage: String,
    required_role: String,
    cases: usize,
    oldest_opened_at: chrono::DateTime<chrono::Utc>,
}

/// `GET /api/cases`: matching cases (open unless `status` says otherwise; `any` for all),
/// oldest first, and their groups.
pub async fn cases(
    State(state): State<ApiState>,
    _caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let search = filters::cases(&filters::query(raw.as_deref()), Some("open"))?;
    let mut conn = state.pool.acquire().await.map_err(ReviewError::from)?;
    let cases = db::search::cases(&mut conn, &search, CASE_LIMIT)
        .await
        .map_err(ReviewError::from)?;
    let mut groups: Vec<GroupCount> = Vec::new();
    for case in &cases {
        match groups.iter_mut().find(|g| {
            g.reason == case.reason
                && g.stage == case.stage
                && g.required_role == case.required_role
        }) {
            Some(group) => group.cases += 1,
            None => groups.push(GroupCount {
                reason: case.reason.clone(),
                stage: case.stage.clone(),
                required_role: case.required_role.clone(),
                cases: 1,
                oldest_opened_at: case.created_at,
            }),
        }
    }
    Ok(Json(
        serde_json::json!({ "groups": groups, "cases": cases }),
    ))
}

/// A group of cases, named by what they share.
#[derive(Debug, Deserialize)]
pub struct GroupKey {
    /// Their reason.
    pub reason: String,
    /// Their stage.
    pub stage: String,
    /// The role they need.
    pub role: String,
}

/// The body of a bulk action.
#[derive(Debug, Deserialize)]
pub struct BulkBody {
    /// `retry` or `close`.
    pub action: String,
    /// Why.
    pub note: String,
    /// These cases…
    #[serde(default)]
    pub case_ids: Vec<i64>,
    /// …or every open case of this group.
    #[serde(default)]
    pub group: Option<GroupKey>,
}

/// `POST /api/cases/bulk`: 202 with the job's id; follow it at `/api/cases/bulk/{id}`.
pub async fn bulk_start(
    State(state): State<ApiState>,
    Caller(person): Caller,
    ApiJson(body): ApiJson<BulkBody>,
) -> Result<impl IntoResponse, ApiError> {
    let ids = match &body.group {
        Some(g) => bulk::group_cases(&state, &g.reason, &g.stage, &g.role).await?,
        None => body.case_ids,
    };
    let total = ids.len();
    let job = bulk::start(&state, &person, &body.action, &body.note, ids).await?;
    let progress = format!("/api/cases/bulk/{job}");
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "job_id": job, "total": total, "progress": progress })),
    ))
}

/// `GET /api/cases/bulk/{id}`.
pub async fn bulk_progress(
    State(state): State<ApiState>,
    _caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    match bulk::progress(&state, id).await? {
        Some(progress) => Ok(Json(progress)),
        None => Err(ApiError::Rejected(
            StatusCode::NOT_FOUND,
            format!("no bulk action {id}"),
        )),
    }
}
