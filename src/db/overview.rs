//! The counts behind `fulfilment overview`: orders by state, open review cases, the outbox's
//! and the timers' backlogs.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

/// Orders in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StateCount {
    /// The state.
    pub state: String,
    /// How many orders are in it.
    pub orders: i64,
    /// When the order longest in this state last moved.
    pub oldest_since: DateTime<Utc>,
}

/// Open review cases of one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CaseCount {
    /// The reason.
    pub reason: String,
    /// Who may resolve them.
    pub required_role: String,
    /// How many are open.
    pub cases: i64,
    /// When the oldest was opened.
    pub oldest_opened_at: DateTime<Utc>,
}

/// Events committed and not yet published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OutboxBacklog {
    /// How many.
    pub unsent: i64,
    /// When the oldest was committed.
    pub oldest_unsent_at: Option<DateTime<Utc>>,
}

/// Timers not yet fired or cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TimerBacklog {
    /// How many are pending.
    pub pending: i64,
    /// Of those, how many fell due over a minute ago (no scheduler is firing them).
    pub overdue: i64,
    /// When the next falls due.
    pub next_due_at: Option<DateTime<Utc>>,
}

/// Orders by state (states with no orders are absent).
pub async fn orders_by_state(conn: &mut PgConnection) -> sqlx::Result<Vec<StateCount>> {
    sqlx::query_as(
        "SELECT state, count(*) AS orders, min(updated_at) AS oldest_since
         FROM orders GROUP BY state",
    )
    .fetch_all(conn)
    .await
}

/// Open review cases by reason, most first.
pub async fn open_cases(conn: &mut PgConnection) -> sqlx::Result<Vec<CaseCount>> {
    sqlx::query_as(
        "SELECT reason, required_role, count(*) AS cases, min(created_at) AS oldest_opened_at
         FROM review_cases WHERE status = 'open'
         GROUP BY reason, required_role ORDER BY cases DESC, reason",
    )
    .fetch_all(conn)
    .await
}

/// The outbox's backlog.
pub async fn outbox(conn: &mut PgConnection) -> sqlx::Result<OutboxBacklog> {
    sqlx::query_as(
        "SELECT count(*) AS unsent, min(created_at) AS oldest_unsent_at FROM outbox_pending",
    )
    .fetch_one(conn)
    .await
}

/// The timers' backlog.
pub async fn timers(conn: &mut PgConnection) -> sqlx::Result<TimerBacklog> {
    sqlx::query_as(
        "SELECT count(*) AS pending,
                count(*) FILTER (WHERE due_at < now() - interval '1 minute') AS overdue,
                min(due_at) AS next_due_at
         FROM timers WHERE fired_at IS NULL AND cancelled_at IS NULL",
    )
    .fetch_one(conn)
    .await
}
