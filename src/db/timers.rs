//! Timers: work due later (deemed acceptance, revenue instalments), kept in the database so a
//! deadline survives any restart.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

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
    /// The trace context of the event that set it, else the order's.
    pub traceparent: Option<String>,
}

/// Locks up to `limit` due timers, skipping those another scheduler holds, and marks them fired.
/// Call inside the transaction that also writes their events to the outbox.
pub async fn fire_due(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<DueTimer>> {
    let due = sqlx::query_as(
        "UPDATE timers SET fired_at = now() WHERE id IN (
            SELECT id FROM timers
            WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at <= now()
            ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id, order_id, kind, due_at, payload,
           coalesce(traceparent, (SELECT o.traceparent FROM orders o
                                  WHERE o.order_id = timers.order_id)) AS traceparent",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    crate::metrics::statements(1);
    Ok(due)
}
