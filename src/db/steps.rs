//! A stage's common step in one statement: move the order to its next state, add the stage's
//! record to its timeline and put the next event in the outbox. One round trip instead of three,
//! on the path every order takes six times.

use sqlx::PgConnection;

use super::outbox;
use super::records::NewRecord;
use crate::domain::OrderState;
use crate::envelope::WireEvent;

/// Moves the order in `record` from `from` to `record.state_after`, adds `record` and queues
/// `event`. Returns the outbox row's id, or `None` (and changes nothing) if the order was not in
/// `from`.
pub async fn advance(
    conn: &mut PgConnection,
    from: OrderState,
    record: NewRecord<'_>,
    event: &WireEvent,
) -> sqlx::Result<Option<i64>> {
    let query = sqlx::query_scalar(
        "WITH moved AS (
           UPDATE orders SET state = $3, updated_at = now()
           WHERE order_id = $1 AND state = $2
           RETURNING order_id
         ), recorded AS (
           INSERT INTO stage_records (order_id, stage, message_id, state_after, detail)
           SELECT order_id, $4, $5, $3, $6 FROM moved
         ), queued AS (
           INSERT INTO outbox (event_id, order_id, routing_key, event_type, body, event_time,
             traceparent, queue, properties)
           SELECT $7, $8, $9, $10, $11, $12, $13, $14, $15 FROM moved
           RETURNING id
         )
         SELECT id FROM queued",
    );
    let query = query
        .bind(record.order_id)
        .bind(from.as_str())
        .bind(record.state_after)
        .bind(record.stage)
        .bind(record.message_id)
        .bind(record.detail);
    outbox::bind_row(query, event).fetch_optional(conn).await
}
