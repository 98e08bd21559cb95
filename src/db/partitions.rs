//! Who handles which partition (see [`crate::partitions`]): a session-level advisory lock per
//! partition, held on a connection of the process's own. Taking one is atomic, so two processes
//! never both take a partition; a process that dies loses its connection and with it its locks.

use sqlx::PgConnection;

/// The lock's two keys for partition `k` of the queue `stage_queue` (namespace and stage).
pub fn lock_key(stage_queue: &str, k: u16) -> (i32, i32) {
    let hash = crate::digest::fnv1a64(stage_queue.as_bytes());
    (hash as i32, i32::from(k))
}

/// Takes partition `key` if nobody holds it; whether this connection now holds it.
pub async fn try_take(conn: &mut PgConnection, key: (i32, i32)) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
        .bind(key.0)
        .bind(key.1)
        .fetch_one(conn)
        .await
}

/// Lets partition `key` go.
pub async fn let_go(conn: &mut PgConnection, key: (i32, i32)) -> sqlx::Result<()> {
    sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1, $2)")
        .bind(key.0)
        .bind(key.1)
        .fetch_one(conn)
        .await
        .map(|_| ())
}
