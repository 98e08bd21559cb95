//! The inbox: which messages each stage has already handled.

use sqlx::{PgConnection, Row};

use super::orders::{StoredOrder, stored_from_row};

/// Takes the order's lock for this transaction (when there is an order) and records that
/// `stage` handles `message_id`, in one round trip. Returns false if the stage already did.
/// The lock comes first: the insert waits for the aggregate over the locking query.
pub async fn lock_and_record(
    conn: &mut PgConnection,
    order_id: Option<&str>,
    stage: &str,
    message_id: &str,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "WITH locked AS (
           SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0)) WHERE $1::text IS NOT NULL
         )
         INSERT INTO inbox (stage, message_id)
         SELECT $2, $3 FROM (SELECT count(*) FROM locked) AS lock_taken
         ON CONFLICT DO NOTHING",
    )
    .bind(order_id)
    .bind(stage)
    .bind(message_id)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Records that `stage` handles `message_id` and reads the order (if the message is about one
/// that exists), in one round trip. Returns false with the order if the stage already handled
/// the message. The caller must already hold the order's lock, so that the read, made when the
/// statement starts, is current.
pub async fn record_and_read(
    conn: &mut PgConnection,
    stage: &str,
    message_id: &str,
    order_id: Option<&str>,
) -> anyhow::Result<(bool, Option<StoredOrder>)> {
    let row = sqlx::query(
        "WITH recorded AS (
           INSERT INTO inbox (stage, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING
           RETURNING 1
         )
         SELECT (SELECT count(*) FROM recorded) AS fresh, o.state, o.body, o.updated_at
         FROM (SELECT 1) AS one LEFT JOIN orders AS o ON o.order_id = $3::text",
    )
    .bind(stage)
    .bind(message_id)
    .bind(order_id)
    .fetch_one(conn)
    .await?;
    let fresh: i64 = row.try_get("fresh")?;
    let state: Option<String> = row.try_get("state")?;
    let order = state.map(|_| stored_from_row(&row)).transpose()?;
    Ok((fresh == 1, order))
}

/// Forgets that `stage` handled `message_id`, so the message can be handled again (a retry
/// from review).
pub async fn forget(conn: &mut PgConnection, stage: &str, message_id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM inbox WHERE stage = $1 AND message_id = $2")
        .bind(stage)
        .bind(message_id)
        .execute(conn)
        .await?;
    Ok(())
}
