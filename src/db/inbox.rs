//! The inbox: which messages each stage has already handled.

use sqlx::PgConnection;

/// Records that `stage` handles `message_id`. Returns false if it already did: the delivery is a
/// duplicate and must have no second effect.
pub async fn record(conn: &mut PgConnection, stage: &str, message_id: &str) -> sqlx::Result<bool> {
    let inserted =
        sqlx::query("INSERT INTO inbox (stage, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(stage)
            .bind(message_id)
            .execute(conn)
            .await?;
    Ok(inserted.rows_affected() == 1)
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
