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

/// The trace context an order arrived with, if it exists and had one: what is published about
/// it later, from outside any delivery, continues that trace.
pub async fn traceparent(
    conn: &mut PgConnection,
    order_id: &str,
) -> sqlx::Result<Option<crate::envelope::TraceParent>> {
    let trace: Option<Option<String>> =
        sqlx::query_scalar("SELECT traceparent FROM orders WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(conn)
            .await?;
    Ok(trace
        .flatten()
        .as_deref()
        .and_then(crate::envelope::TraceParent::parse))
}

/// An order's revenue recognised so far (net, after reversals) and the cash paid for it, in
/// minor units, from its ledger.
pub async fn money_so_far(conn: &mut PgConnection, order_id: &str) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT coalesce(sum(credit_minor - debit_minor) FILTER (WHERE account = 'revenue'), 0)::bigint,
                coalesce(sum(debit_minor - credit_minor) FILTER (WHERE account = 'cash'), 0)::bigint
         FROM ledger_entries WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_one(conn)
    .await
}

/// Counts orders in each state, for status reports and tests.
pub async fn count_by_state(conn: &mut PgConnection) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as("SELECT state, count(*) FROM orders GROUP BY state ORDER BY state")
        .fetch_all(conn)
        .await
}
