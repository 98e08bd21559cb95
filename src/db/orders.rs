//! Orders and their state.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use crate::domain::{Order, OrderState};

/// An order as stored, with where it is in the pipeline.
#[derive(Debug, Clone)]
pub struct StoredOrder {
    /// The order's current state.
    pub state: OrderState,
    /// The order as placed or last amended.
    pub order: Order,
    /// When the row was last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

/// Serialises all work on one order until the transaction ends, even before the order exists.
pub async fn lock(conn: &mut PgConnection, order_id: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(order_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes the locks of several orders for this transaction, in one global order (by lock key),
/// so that two transactions locking overlapping sets of orders cannot deadlock. Taking an order's
/// lock again later in the transaction is free.
pub async fn lock_all(conn: &mut PgConnection, order_ids: &[&str]) -> sqlx::Result<()> {
    if order_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock(key)) FROM (
           SELECT DISTINCT hashtextextended(id, 0) AS key FROM unnest($1::text[]) AS id ORDER BY key
         ) AS keys",
    )
    .bind(order_ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// The end of a statement that writes an order (as `written`, returning `customer_id` and
/// `body`): notes which products the customer has now ordered (unless their personal data was
/// erased), and counts the rows written.
macro_rules! note_customer_skus {
    () => {
        "noted AS (
           INSERT INTO customer_skus (customer_id, sku)
           SELECT DISTINCT written.customer_id, line->>'sku'
           FROM written, jsonb_array_elements(written.body->'lines') AS line
           WHERE NOT EXISTS (SELECT 1 FROM customers
                             WHERE customer_id = written.customer_id AND erased_at IS NOT NULL)
           ON CONFLICT DO NOTHING
         )
         SELECT count(*) FROM written"
    };
}

/// Inserts a newly placed order. Returns false if an order with that id already exists.
pub async fn insert_placed(conn: &mut PgConnection, order: &Order) -> sqlx::Result<bool> {
    let total = order.lines_total_minor().unwrap_or(i64::MAX);
    let inserted: i64 = sqlx::query_scalar(concat!(
        "WITH written AS (
           INSERT INTO orders (order_id, state, version, customer_id, currency, total_minor, body)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (order_id) DO NOTHING
           RETURNING customer_id, body
         ), ",
        note_customer_skus!()
    ))
    .bind(order.order_id.as_str())
    .bind(OrderState::Placed.as_str())
    .bind(i32::try_from(order.version).unwrap_or(i32::MAX))
    .bind(&order.customer_id)
    .bind(order.currency.as_str())
    .bind(total)
    .bind(sqlx::types::Json(order))
    .fetch_one(conn)
    .await?;
    Ok(inserted == 1)
}

/// Keeps a version of an order in its history. A version already kept is left as it was.
pub async fn insert_version(conn: &mut PgConnection, order: &Order) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO order_versions (order_id, version, body) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(order.order_id.as_str())
    .bind(i32::try_from(order.version).unwrap_or(i32::MAX))
    .bind(sqlx::types::Json(order))
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces an order with its amended version and moves it from `from` to `to`. Returns false
/// if it was not in `from`.
pub async fn amend(
    conn: &mut PgConnection,
    order: &Order,
    from: OrderState,
    to: OrderState,
) -> sqlx::Result<bool> {
    let updated: i64 = sqlx::query_scalar(concat!(
        "WITH written AS (
           UPDATE orders SET body = $2, version = $3, total_minor = $4, currency = $5, state = $7,
             updated_at = now()
           WHERE order_id = $1 AND state = $6
           RETURNING customer_id, body
         ), ",
        note_customer_skus!()
    ))
    .bind(order.order_id.as_str())
    .bind(sqlx::types::Json(order))
    .bind(i32::try_from(order.version).unwrap_or(i32::MAX))
    .bind(order.lines_total_minor().unwrap_or(i64::MAX))
    .bind(order.currency.as_str())
    .bind(from.as_str())
    .bind(to.as_str())
    .fetch_one(conn)
    .await?;
    Ok(updated == 1)
}

/// Loads an order.
pub async fn find(conn: &mut PgConnection, order_id: &str) -> anyhow::Result<Option<StoredOrder>> {
    let row = sqlx::query("SELECT state, body, updated_at FROM orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(stored_from_row).transpose()
}

/// An order from a row with `state`, `body` and `updated_at`.
pub(crate) fn stored_from_row(row: &sqlx::postgres::PgRow) -> anyhow::Result<StoredOrder> {
    let state: String = row.try_get("state")?;
    let body: sqlx::types::Json<Order> = row.try_get("body")?;
    Ok(StoredOrder {
        state: state.parse()?,
        order: body.0,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Moves an order from `from` to `to`. Returns false if it was not in `from`.
pub async fn set_state(
    conn: &mut PgConnection,
    order_id: &str,
    from: OrderState,
    to: OrderState,
) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE orders SET state = $3, updated_at = now() WHERE order_id = $1 AND state = $2",
    )
    .bind(order_id)
    .bind(from.as_str())
    .bind(to.as_str())
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Counts orders in each state, for status reports and tests.
pub async fn count_by_state(conn: &mut PgConnection) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as("SELECT state, count(*) FROM orders GROUP BY state ORDER BY state")
        .fetch_all(conn)
        .await
}
