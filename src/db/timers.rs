//! Timers: work due later (deemed acceptance, revenue instalments), kept in the database so a
//! deadline survives any restart.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// The customer's acceptance window closes.
    AcceptanceDue,
    /// An instalment of a service's revenue falls due.
    InstalmentDue,
}

impl TimerKind {
    /// The name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::AcceptanceDue => "acceptance_due",
            TimerKind::InstalmentDue => "instalment_due",
        }
    }
}

/// A due timer.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueTimer {
    /// Row id.
    pub id: i64,
    /// The order.
    pub order_id: String,
    /// The kind's name.
    pub kind: String,
    /// When it fell due.
    pub due_at: DateTime<Utc>,
    /// Kind-specific data.
    pub payload: serde_json::Value,
}

/// Schedules a timer; scheduling the same one twice has no effect.
pub async fn schedule(
    conn: &mut PgConnection,
    order_id: &str,
    kind: TimerKind,
    due_at: DateTime<Utc>,
    payload: serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO timers (order_id, kind, due_at, payload) VALUES ($1, $2, $3, $4)
         ON CONFLICT (order_id, kind, payload) DO NOTHING",
    )
    .bind(order_id)
    .bind(kind.as_str())
    .bind(due_at)
    .bind(payload)
    .execute(conn)
    .await?;
    Ok(())
}

/// Cancels an order's pending timers of `kind`.
pub async fn cancel(conn: &mut PgConnection, order_id: &str, kind: TimerKind) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE timers SET cancelled_at = now()
         WHERE order_id = $1 AND kind = $2 AND fired_at IS NULL AND cancelled_at IS NULL",
    )
    .bind(order_id)
    .bind(kind.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks up to `limit` due timers, skipping those another scheduler holds, and marks them fired.
/// Call inside the transaction that also writes their events to the outbox.
pub async fn fire_due(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<DueTimer>> {
    sqlx::query_as(
        "UPDATE timers SET fired_at = now() WHERE id IN (
            SELECT id FROM timers
            WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at <= now()
            ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id, order_id, kind, due_at, payload",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}
