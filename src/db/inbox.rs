//! The inbox: which messages each stage has already handled (written with each batch, see
//! [`super::batch`]).

use sqlx::PgConnection;

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
