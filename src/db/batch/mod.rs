//! A batch of deliveries against the database, by set: a fixed handful of statements whatever
//! the batch's size. In one transaction, the worker:
//!
//! 1. [`lock`]s every order the batch names (advisory locks, taken in one global order, so two
//!    batches never wait for each other in a cycle);
//! 2. [`check`]s which messages the stage's inbox already holds, and whether the events that
//!    claim to come from the pipeline are in its outbox, byte for byte;
//! 3. [`load_views`]: every order with the history its stage needs;
//! 4. [`load_reference`]: the reference data the batch names, with the shared rows it moves
//!    (stock, document sequences) locked in key order;
//! 5. [`write`]s every plan in one statement: one `INSERT … SELECT … FROM unnest(…)` or
//!    `UPDATE … FROM unnest(…)` per table the batch touches, in data-modifying common table
//!    expressions.
//!
//! The work pool plans every statement for its actual parameters (`plan_cache_mode =
//! force_custom_plan`, see [`super::connect`]): a plan cached for small tables and reused once
//! they are large would scan them whole.

mod reference;
mod statement;
mod views;
pub mod writes;

use std::collections::HashMap;

use sqlx::{PgConnection, Row};

pub use reference::{ReferenceKeys, load_reference};
pub use statement::{Written, write};
pub use views::load_views;
pub use writes::{NewCase, Writes};

/// Takes the locks of `keys` (order ids, or the inbox keys of messages about no order) for the
/// transaction, in one global order (by lock key). Taking a lock again later is free.
pub async fn lock(conn: &mut PgConnection, keys: &[String]) -> sqlx::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock(key)) FROM (
           SELECT DISTINCT hashtextextended(id, 0) AS key FROM unnest($1::text[]) AS id ORDER BY key
         ) AS keys",
    )
    .bind(keys)
    .execute(conn)
    .await?;
    crate::metrics::statements(1);
    Ok(())
}

/// What the database already holds about a batch's messages.
#[derive(Debug, Default)]
pub struct Checks {
    /// Inbox key → the body digest it was recorded with (empty for rows from before digests).
    pub inbox: HashMap<String, Vec<u8>>,
    /// Event id → SHA-256 of the body the pipeline emitted under it.
    pub outbox: HashMap<String, Vec<u8>>,
}

/// Which of `keys` the stage's inbox holds, and what the outbox holds under `event_ids`. Run
/// after [`lock`], so that what it reads is current.
pub async fn check(
    conn: &mut PgConnection,
    stage: &str,
    keys: &[String],
    event_ids: &[String],
) -> sqlx::Result<Checks> {
    let rows = sqlx::query(
        "SELECT true AS inbox, message_id AS key, coalesce(body_sha256, '') AS digest
         FROM inbox WHERE stage = $1 AND message_id = ANY($2::text[])
         UNION ALL
         SELECT false, event_id, sha256(body) FROM outbox WHERE event_id = ANY($3::text[])",
    )
    .bind(stage)
    .bind(keys)
    .bind(event_ids)
    .fetch_all(conn)
    .await?;
    crate::metrics::statements(1);
    let mut checks = Checks::default();
    for row in rows {
        let (inbox, key, digest): (bool, String, Vec<u8>) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        match inbox {
            true => checks.inbox.insert(key, digest),
            false => checks.outbox.insert(key, digest),
        };
    }
    Ok(checks)
}

/// Makes the transaction fail as a poisoned delivery would (a division by zero): for tests of
/// how a batch isolates one bad delivery.
#[cfg(feature = "faults")]
pub async fn refuse_on_purpose(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT 1 / 0").execute(conn).await?;
    Ok(())
}

/// Reserves `n` review case ids, so that a case and its `review.case_opened` event can be
/// written in one statement.
pub async fn reserve_case_ids(conn: &mut PgConnection, n: usize) -> sqlx::Result<Vec<i64>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let ids =
        sqlx::query_scalar("SELECT nextval('review_cases_id_seq') FROM generate_series(1, $1)")
            .bind(i32::try_from(n).unwrap_or(i32::MAX))
            .fetch_all(conn)
            .await?;
    crate::metrics::statements(1);
    Ok(ids)
}

/// Locks the stock rows of `skus` for the transaction, in SKU order (for stages and the review
/// desk that return stock without having locked it when they read it).
pub async fn lock_stock(conn: &mut PgConnection, skus: &[String]) -> sqlx::Result<()> {
    if skus.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT count(*) FROM (SELECT sku FROM stock WHERE sku = ANY($1::text[])
           ORDER BY sku FOR UPDATE) AS locked",
    )
    .bind(skus)
    .execute(conn)
    .await?;
    crate::metrics::statements(1);
    Ok(())
}
