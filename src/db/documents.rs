//! Documents and their gap-free numbering.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// A stored document.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredDocument {
    /// Its kind's name.
    pub kind: String,
    /// Its number.
    pub number: String,
    /// SHA-256 of the PDF, hex.
    pub sha256: String,
    /// The PDF.
    pub pdf: Vec<u8>,
    /// When it was voided, if it was.
    pub voided_at: Option<DateTime<Utc>>,
}

/// Every document of an order, oldest first.
pub async fn for_order(
    conn: &mut PgConnection,
    order_id: &str,
) -> sqlx::Result<Vec<StoredDocument>> {
    sqlx::query_as(
        "SELECT kind, number, sha256, pdf, voided_at FROM documents WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}
