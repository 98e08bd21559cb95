//! Customer confirmations, kept until the order they are about is handed over.

use sqlx::PgConnection;

use crate::domain::events::ConfirmationOutcome;

/// Stores what a customer said about an order.
pub async fn insert(
    conn: &mut PgConnection,
    order_id: &str,
    message_id: &str,
    outcome: ConfirmationOutcome,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO customer_confirmations (order_id, message_id, outcome, reason)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(order_id)
    .bind(message_id)
    .bind(outcome.as_str())
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// The id of the first message in which the customer accepted the order.
pub async fn first_acceptance(
    conn: &mut PgConnection,
    order_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT message_id FROM customer_confirmations
         WHERE order_id = $1 AND outcome = 'accepted' ORDER BY id LIMIT 1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await
}

/// Every answer about an order, oldest first: (message id, outcome).
pub async fn for_order(
    conn: &mut PgConnection,
    order_id: &str,
) -> sqlx::Result<Vec<(String, ConfirmationOutcome)>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT message_id, outcome FROM customer_confirmations WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, outcome)| {
            serde_json::from_value(serde_json::Value::String(outcome))
                .ok()
                .map(|o| (id, o))
        })
        .collect())
}
