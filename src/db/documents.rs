//! Documents and their gap-free numbering.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::domain::documents::{DocumentContent, DocumentKind};

/// The next number of `kind`. Gap-free: the sequence row stays locked until the transaction
/// ends, and a rollback gives the number back.
pub async fn next_number(conn: &mut PgConnection, kind: DocumentKind) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "UPDATE document_sequences SET next_value = next_value + 1 WHERE kind = $1
         RETURNING next_value - 1",
    )
    .bind(kind.as_str())
    .fetch_one(conn)
    .await
}

/// Stores a document with its PDF and the PDF's SHA-256.
pub async fn insert(
    conn: &mut PgConnection,
    content: &DocumentContent,
    pdf: &[u8],
    sha256: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO documents (order_id, version, kind, number, sha256, pdf, content, issued_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&content.order_id)
    .bind(content.version as i32)
    .bind(content.kind.as_str())
    .bind(&content.number)
    .bind(sha256)
    .bind(pdf)
    .bind(serde_json::to_value(content)?)
    .bind(content.issued_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Voids an order's current documents (after an amendment or a cancellation). Their numbers
/// stay used, so the sequence keeps no gaps.
pub async fn void_order(conn: &mut PgConnection, order_id: &str) -> sqlx::Result<u64> {
    let voided = sqlx::query(
        "UPDATE documents SET voided_at = now() WHERE order_id = $1 AND voided_at IS NULL",
    )
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(voided.rows_affected())
}

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
