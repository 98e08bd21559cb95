//! The outbox: events written with the effect that caused them, published after commit.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryScalar;
use sqlx::{PgConnection, Postgres, Row};

use crate::envelope::{DirectTarget, WireEvent};

/// Adds an event to the outbox, pending until published, and returns its row id.
pub async fn insert(conn: &mut PgConnection, event: &WireEvent) -> sqlx::Result<i64> {
    let query = sqlx::query_scalar(
        "WITH written AS (
           INSERT INTO outbox (event_id, order_id, routing_key, event_type, body, event_time,
             traceparent, queue, properties)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id, created_at
         ), pending AS (
           INSERT INTO outbox_pending (id, created_at) SELECT id, created_at FROM written
         )
         SELECT id FROM written",
    );
    let id = bind_row(query, event).fetch_one(conn).await?;
    crate::metrics::statements(1);
    Ok(id)
}

/// A query returning an outbox row id, with the nine columns of `event`'s row bound next, in
/// the order of [`insert`].
pub(crate) fn bind_row<'q>(
    query: QueryScalar<'q, Postgres, i64, PgArguments>,
    event: &'q WireEvent,
) -> QueryScalar<'q, Postgres, i64, PgArguments> {
    query
        .bind(&event.event_id)
        .bind(&event.order_id)
        .bind(&event.routing_key)
        .bind(&event.event_type)
        .bind(&event.body)
        .bind(event.time)
        .bind(&event.traceparent)
        .bind(event.direct.as_ref().map(|d| d.queue.as_str()))
        .bind(event.direct.as_ref().map(|d| &d.properties))
}

/// Marks rows as published by the stage (or desk, or scheduler) that wrote them: they are no
/// longer pending.
pub async fn mark_sent(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM outbox_pending WHERE id = ANY($1)")
        .bind(ids)
        .execute(conn)
        .await?;
    crate::metrics::statements(1);
    crate::metrics::committed();
    Ok(())
}

/// Marks rows as published by the relay: no longer pending, and relayed now.
pub async fn mark_relayed(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<()> {
    sqlx::query(
        "WITH done AS (DELETE FROM outbox_pending WHERE id = ANY($1) RETURNING id)
         UPDATE outbox SET relayed_at = now() WHERE id IN (SELECT id FROM done)",
    )
    .bind(ids)
    .execute(conn)
    .await?;
    crate::metrics::statements(1);
    Ok(())
}

/// Locks up to `limit` pending rows older than `older_than`, skipping rows another relay holds.
/// Call inside a transaction; the locks last until it ends.
pub async fn claim_unsent(
    conn: &mut PgConnection,
    older_than: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<(i64, WireEvent)>> {
    let rows = sqlx::query(
        "SELECT id, event_id, order_id, routing_key, event_type, body, event_time, traceparent,
           queue, properties
         FROM outbox WHERE id IN (
           SELECT id FROM outbox_pending WHERE created_at < $1
           ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
         ORDER BY id",
    )
    .bind(older_than)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    crate::metrics::statements(1);
    rows.into_iter()
        .map(|row| {
            let queue: Option<String> = row.try_get("queue")?;
            let properties: Option<Vec<u8>> = row.try_get("properties")?;
            let event = WireEvent {
                event_id: row.try_get("event_id")?,
                order_id: row.try_get("order_id")?,
                routing_key: row.try_get("routing_key")?,
                event_type: row.try_get("event_type")?,
                time: row.try_get("event_time")?,
                traceparent: row.try_get("traceparent")?,
                body: row.try_get("body")?,
                direct: queue.map(|queue| DirectTarget {
                    queue,
                    properties: properties.unwrap_or_default(),
                }),
            };
            Ok((row.try_get("id")?, event))
        })
        .collect()
}
