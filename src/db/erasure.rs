//! Erasing a customer's personal data: the queries. What to erase and how is decided in
//! [`crate::erasure`].

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// A stored message that may hold a customer's words: its row id and its bytes.
#[derive(Debug, sqlx::FromRow)]
pub struct StoredMessage {
    /// The row's id.
    pub id: i64,
    /// The review case's reason; `None` for an outbox row.
    pub reason: Option<String>,
    /// The review case's detail; `None` for an outbox row.
    pub detail: Option<String>,
    /// The message, byte for byte.
    pub body: Vec<u8>,
}

/// The ids of the customer's orders.
pub async fn orders_of(conn: &mut PgConnection, customer_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT order_id FROM orders WHERE customer_id = $1 ORDER BY order_id")
        .bind(customer_id)
        .fetch_all(conn)
        .await
}

/// Empties the customer's name, email and addresses and marks the row erased, creating the row if the
/// customer was only known from their orders. Returns whether a row existed before.
pub async fn blank_customer(conn: &mut PgConnection, customer_id: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "INSERT INTO customers (customer_id, name, email, identity_status, erased_at)
         VALUES ($1, NULL, NULL, 'unverified', now())
         ON CONFLICT (customer_id) DO UPDATE SET name = NULL, email = NULL,
             billing_address = NULL, delivery_address = NULL,
             erased_at = COALESCE(customers.erased_at, now()), updated_at = now()
         RETURNING (xmax <> 0)",
    )
    .bind(customer_id)
    .fetch_one(conn)
    .await
}

/// Whether a customer row exists, erased or not.
pub async fn customer_exists(conn: &mut PgConnection, customer_id: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM customers WHERE customer_id = $1)")
        .bind(customer_id)
        .fetch_one(conn)
        .await
}

/// When the customer's personal data was erased, if it was.
pub async fn erased_at(
    conn: &mut PgConnection,
    customer_id: &str,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
        "SELECT erased_at FROM customers WHERE customer_id = $1",
    )
    .bind(customer_id)
    .fetch_optional(conn)
    .await
    .map(Option::flatten)
}

/// Removes the words of the customer's complaints and queries about these orders. Returns how
/// many were removed.
pub async fn clear_confirmation_reasons(
    conn: &mut PgConnection,
    orders: &[String],
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE customer_confirmations SET reason = NULL
         WHERE order_id = ANY($1) AND reason IS NOT NULL",
    )
    .bind(orders)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The review cases about these orders, with their original messages.
pub async fn review_cases(
    conn: &mut PgConnection,
    orders: &[String],
) -> sqlx::Result<Vec<StoredMessage>> {
    sqlx::query_as(
        "SELECT id, reason, detail, original_body AS body FROM review_cases
         WHERE order_id = ANY($1) ORDER BY id",
    )
    .bind(orders)
    .fetch_all(conn)
    .await
}

/// Replaces a review case's detail and original message.
pub async fn rewrite_review_case(
    conn: &mut PgConnection,
    id: i64,
    detail: &str,
    body: &[u8],
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE review_cases SET detail = $2, original_body = $3, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(detail)
    .bind(body)
    .execute(conn)
    .await?;
    Ok(())
}

/// The outbox rows about these orders whose `event_type` is one of `types`.
pub async fn outbox_messages(
    conn: &mut PgConnection,
    orders: &[String],
    types: &[&str],
) -> sqlx::Result<Vec<StoredMessage>> {
    sqlx::query_as(
        "SELECT id, NULL::text AS reason, NULL::text AS detail, body FROM outbox
         WHERE order_id = ANY($1) AND event_type = ANY($2) ORDER BY id",
    )
    .bind(orders)
    .bind(types)
    .fetch_all(conn)
    .await
}

/// Replaces an outbox row's message.
pub async fn rewrite_outbox_message(
    conn: &mut PgConnection,
    id: i64,
    body: &[u8],
) -> sqlx::Result<()> {
    sqlx::query("UPDATE outbox SET body = $2 WHERE id = $1")
        .bind(id)
        .bind(body)
        .execute(conn)
        .await?;
    Ok(())
}

/// Forgets which products the customer has bought (used only for suggestions). Returns how many
/// entries were removed.
pub async fn forget_purchases(conn: &mut PgConnection, customer_id: &str) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM customer_skus WHERE customer_id = $1")
        .bind(customer_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Records an erasure: whose, by whom, why, and what it touched. Returns when.
pub async fn record(
    conn: &mut PgConnection,
    customer_id: &str,
    erased_by: &str,
    note: &str,
    summary: &serde_json::Value,
) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar(
        "INSERT INTO erasures (customer_id, erased_by, note, summary) VALUES ($1, $2, $3, $4)
         RETURNING erased_at",
    )
    .bind(customer_id)
    .bind(erased_by)
    .bind(note)
    .bind(summary)
    .fetch_one(conn)
    .await
}
