//! Stage records: the timeline of what each stage did to an order.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

/// One entry of an order's timeline.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TimelineEntry {
    /// The stage that acted.
    pub stage: String,
    /// The order's state after it acted.
    pub state_after: String,
    /// The id of the message it acted on.
    pub message_id: String,
    /// What it did.
    pub detail: serde_json::Value,
    /// When (UTC).
    pub recorded_at: DateTime<Utc>,
}

/// A record to add to an order's timeline.
#[derive(Debug, Clone)]
pub struct NewRecord<'a> {
    /// The order.
    pub order_id: &'a str,
    /// The stage that acted.
    pub stage: &'a str,
    /// The message it acted on.
    pub message_id: &'a str,
    /// The order's state after it acted.
    pub state_after: &'a str,
    /// What it did.
    pub detail: serde_json::Value,
}

/// Adds a record to an order's timeline.
pub async fn insert(conn: &mut PgConnection, record: NewRecord<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO stage_records (order_id, stage, message_id, state_after, detail)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(record.order_id)
    .bind(record.stage)
    .bind(record.message_id)
    .bind(record.state_after)
    .bind(record.detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// An order's timeline, oldest first.
pub async fn timeline(conn: &mut PgConnection, order_id: &str) -> sqlx::Result<Vec<TimelineEntry>> {
    sqlx::query_as(
        "SELECT stage, state_after, message_id, detail, recorded_at
         FROM stage_records WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}

/// The detail of the latest record `stage` wrote for an order.
pub async fn latest_detail(
    conn: &mut PgConnection,
    order_id: &str,
    stage: &str,
) -> sqlx::Result<Option<serde_json::Value>> {
    sqlx::query_scalar(
        "SELECT detail FROM stage_records WHERE order_id = $1 AND stage = $2 ORDER BY id DESC LIMIT 1",
    )
    .bind(order_id)
    .bind(stage)
    .fetch_optional(conn)
    .await
}

/// Whether `stage` already wrote a record with exactly this detail for the order.
pub async fn has_record(
    conn: &mut PgConnection,
    order_id: &str,
    stage: &str,
    detail: &serde_json::Value,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM stage_records WHERE order_id = $1 AND stage = $2 AND detail = $3)",
    )
    .bind(order_id)
    .bind(stage)
    .bind(detail)
    .fetch_one(conn)
    .await
}
