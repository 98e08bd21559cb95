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

/// The reason of the order's latest stage record, when that record is a refusal (a stage kept
/// the order where it was and opened a review case); `None` when the latest record is anything
/// else, or there is none.
pub async fn latest_refusal(
    conn: &mut PgConnection,
    order_id: &str,
) -> sqlx::Result<Option<String>> {
    let latest: Option<Option<String>> = sqlx::query_scalar(
        "SELECT detail->>'refused' FROM stage_records WHERE order_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    Ok(latest.flatten())
}
