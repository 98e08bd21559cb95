//! Finding orders and review cases for the console and its JSON endpoints, and what an order's
//! page shows beyond its timeline: ledger lines and the events sent about it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::review::CaseRow;

/// Which orders to list. Empty fields do not filter; the caller checks the text.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    /// Orders whose id contains this (case-insensitive).
    pub order_id: Option<String>,
    /// Only this customer's orders.
    pub customer_id: Option<String>,
    /// Only orders in this state.
    pub state: Option<String>,
    /// Only orders of this channel.
    pub channel: Option<String>,
    /// Only orders placed on or after this moment.
    pub placed_from: Option<DateTime<Utc>>,
    /// Only orders placed before this moment.
    pub placed_before: Option<DateTime<Utc>>,
}

/// An order as listed.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OrderSummary {
    /// The order.
    pub order_id: String,
    /// Its customer.
    pub customer_id: String,
    /// Its state.
    pub state: String,
    /// Its channel.
    pub channel: String,
    /// Its currency.
    pub currency: String,
    /// Its total in minor units.
    pub total_minor: i64,
    /// When it was placed (UTC), as the order says.
    pub placed_at: Option<DateTime<Utc>>,
    /// When it last moved (UTC).
    pub updated_at: DateTime<Utc>,
}

/// One page of orders matching `filter`, newest placed first, and how many match in all.
pub async fn orders(
    conn: &mut PgConnection,
    filter: &OrderFilter,
    offset: i64,
    limit: i64,
) -> sqlx::Result<(Vec<OrderSummary>, i64)> {
    const WHERE: &str = "WHERE ($1::TEXT IS NULL OR order_id ILIKE '%' || $1 || '%')
           AND ($2::TEXT IS NULL OR customer_id = $2) AND ($3::TEXT IS NULL OR state = $3)
           AND ($4::TEXT IS NULL OR body->>'channel' = $4)
           AND ($5::TIMESTAMPTZ IS NULL OR (body->>'placed_at')::TIMESTAMPTZ >= $5)
           AND ($6::TIMESTAMPTZ IS NULL OR (body->>'placed_at')::TIMESTAMPTZ < $6)";
    // ILIKE's own wildcards in what was typed are matched literally.
    let like = filter.order_id.as_ref().map(|s| {
        s.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    });
    let list = format!(
        "SELECT order_id, customer_id, state, coalesce(body->>'channel', '') AS channel,
                currency::TEXT AS currency, total_minor,
                (body->>'placed_at')::TIMESTAMPTZ AS placed_at, updated_at
         FROM orders {WHERE}
         ORDER BY (body->>'placed_at')::TIMESTAMPTZ DESC NULLS LAST, order_id LIMIT $7 OFFSET $8"
    );
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(list))
        .bind(&like)
        .bind(&filter.customer_id)
        .bind(&filter.state)
        .bind(&filter.channel)
        .bind(filter.placed_from)
        .bind(filter.placed_before)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
    let count = format!("SELECT count(*) FROM orders {WHERE}");
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
        .bind(&like)
        .bind(&filter.customer_id)
        .bind(&filter.state)
        .bind(&filter.channel)
        .bind(filter.placed_from)
        .bind(filter.placed_before)
        .fetch_one(conn)
        .await?;
    Ok((rows, total))
}

/// Which review cases to list. Empty fields do not filter; the caller checks the text.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CaseSearch {
    /// Only cases with this status (the console asks for `open` unless told otherwise).
    pub status: Option<String>,
    /// Only cases with this reason.
    pub reason: Option<String>,
    /// Only cases from this stage.
    pub stage: Option<String>,
    /// Only cases needing this role.
    pub role: Option<String>,
    /// Only cases opened at least this many seconds ago.
    pub older_than_secs: Option<i64>,
    /// Only cases about this order.
    pub order_id: Option<String>,
    /// Only cases about this customer's orders.
    pub customer_id: Option<String>,
}

/// Cases matching `search`, oldest first, at most `limit`.
pub async fn cases(
    conn: &mut PgConnection,
    search: &CaseSearch,
    limit: i64,
) -> sqlx::Result<Vec<CaseRow>> {
    sqlx::query_as(
        "SELECT c.id, c.order_id, c.stage, c.reason, c.detail, c.required_role, c.status,
                c.created_at, c.resolved_at
         FROM review_cases c LEFT JOIN orders o ON o.order_id = c.order_id
         WHERE ($1::TEXT IS NULL OR c.status = $1) AND ($2::TEXT IS NULL OR c.reason = $2)
           AND ($3::TEXT IS NULL OR c.stage = $3) AND ($4::TEXT IS NULL OR c.required_role = $4)
           AND ($5::BIGINT IS NULL OR c.created_at <= now() - make_interval(secs => $5))
           AND ($6::TEXT IS NULL OR c.order_id = $6) AND ($7::TEXT IS NULL OR o.customer_id = $7)
         ORDER BY c.id LIMIT $8",
    )
    .bind(&search.status)
    .bind(&search.reason)
    .bind(&search.stage)
    .bind(&search.role)
    .bind(search.older_than_secs)
    .bind(&search.order_id)
    .bind(&search.customer_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A ledger line of an order.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LedgerLine {
    /// The account.
    pub account: String,
    /// Debit in minor units (0 for a credit).
    pub debit_minor: i64,
    /// Credit in minor units (0 for a debit).
    pub credit_minor: i64,
    /// Its currency.
    pub currency: String,
    /// What it is for.
    pub memo: String,
    /// When it was posted (UTC).
    pub posted_at: DateTime<Utc>,
}

/// An order's ledger lines, in posting order.
pub async fn ledger(conn: &mut PgConnection, order_id: &str) -> sqlx::Result<Vec<LedgerLine>> {
    sqlx::query_as(
        "SELECT account, debit_minor, credit_minor, currency::TEXT AS currency, memo, posted_at
         FROM ledger_entries WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}

/// An event written about an order.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SentEvent {
    /// Its CloudEvents type.
    pub event_type: String,
    /// Its id.
    pub event_id: String,
    /// When it was committed (UTC).
    pub created_at: DateTime<Utc>,
    /// Whether it was published (it is no longer waiting in `outbox_pending`).
    pub published: bool,
}

/// The events written about an order, oldest first.
pub async fn events(conn: &mut PgConnection, order_id: &str) -> sqlx::Result<Vec<SentEvent>> {
    sqlx::query_as(
        "SELECT o.event_type, o.event_id, o.created_at, p.id IS NULL AS published
         FROM outbox o LEFT JOIN outbox_pending p ON p.id = o.id
         WHERE o.order_id = $1 ORDER BY o.id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}

/// An order's documents without their PDFs: kind, number, when issued and voided.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DocumentListing {
    /// Its kind.
    pub kind: String,
    /// Its number.
    pub number: String,
    /// The order version it was issued for.
    pub version: i32,
    /// When it was issued (UTC).
    pub issued_at: DateTime<Utc>,
    /// When it was voided (UTC), if it was.
    pub voided_at: Option<DateTime<Utc>>,
}

/// An order's documents, oldest first.
pub async fn documents(
    conn: &mut PgConnection,
    order_id: &str,
) -> sqlx::Result<Vec<DocumentListing>> {
    sqlx::query_as(
        "SELECT kind, number, version, issued_at, voided_at FROM documents
         WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}

/// One document's PDF, by order and number.
pub async fn document_pdf(
    conn: &mut PgConnection,
    order_id: &str,
    number: &str,
) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT pdf FROM documents WHERE order_id = $1 AND number = $2")
        .bind(order_id)
        .bind(number)
        .fetch_optional(conn)
        .await
}

/// Orders that reached `completed` in each of the last `minutes` minutes, oldest minute first.
pub async fn completed_per_minute(conn: &mut PgConnection, minutes: i32) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT count(r.id) FROM generate_series($1 - 1, 0, -1) AS m(ago)
         LEFT JOIN stage_records r ON r.state_after = 'completed'
           AND r.recorded_at >= date_trunc('minute', now()) - make_interval(mins => m.ago)
           AND r.recorded_at < date_trunc('minute', now()) - make_interval(mins => m.ago - 1)
         GROUP BY m.ago ORDER BY m.ago DESC",
    )
    .bind(minutes)
    .fetch_all(conn)
    .await
}
