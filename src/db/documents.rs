//! Documents and their gap-free numbering.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::domain::documents::DocumentContent;
use crate::stages::plan::IssuedDocument;

/// A stored document.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredDocument {
    /// Its row id (documents of an order are issued in id order).
    pub id: i64,
    /// Its kind's name.
    pub kind: String,
    /// Its number.
    pub number: String,
    /// SHA-256 of the PDF, hex.
    pub sha256: String,
    /// The PDF as issued.
    pub pdf: Vec<u8>,
    /// What it says, as data.
    pub content: Json<DocumentContent>,
    /// When it was voided, if it was.
    pub voided_at: Option<DateTime<Utc>>,
}

/// Every document of an order, oldest first.
pub async fn for_order(
    conn: &mut PgConnection,
    order_id: &str,
) -> sqlx::Result<Vec<StoredDocument>> {
    sqlx::query_as(
        "SELECT id, kind, number, sha256, pdf, content, voided_at FROM documents
         WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}

/// The order's live documents that name no seller, oldest first.
pub async fn live_without_seller(
    conn: &mut PgConnection,
    order_id: &str,
) -> sqlx::Result<Vec<StoredDocument>> {
    sqlx::query_as(
        "SELECT id, kind, number, sha256, pdf, content, voided_at FROM documents
         WHERE order_id = $1 AND voided_at IS NULL AND NOT content ? 'seller' ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}

/// The next value of each of these sequences, locked until the transaction ends (in kind
/// order, as every issuer locks them).
pub async fn lock_sequences(
    conn: &mut PgConnection,
    kinds: &[String],
) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT kind, next_value FROM document_sequences WHERE kind = ANY($1)
         ORDER BY kind FOR UPDATE",
    )
    .bind(kinds)
    .fetch_all(conn)
    .await
}

/// Stores `issued` as documents of `order_id`, voids the documents with ids `replaced`, moves
/// each sequence on past the numbers used, and records `detail` in the order's timeline by
/// `stage` in its current state.
pub async fn replace(
    conn: &mut PgConnection,
    order_id: &str,
    stage: &str,
    replaced: &[i64],
    issued: &[IssuedDocument],
    detail: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE documents SET voided_at = now() WHERE id = ANY($1) AND voided_at IS NULL")
        .bind(replaced)
        .execute(&mut *conn)
        .await?;
    for doc in issued {
        sqlx::query(
            "INSERT INTO documents (order_id, version, kind, number, sha256, pdf, content, issued_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(order_id)
        .bind(i32::try_from(doc.content.version).unwrap_or(i32::MAX))
        .bind(doc.content.kind.as_str())
        .bind(&doc.content.number)
        .bind(&doc.sha256)
        .bind(&doc.pdf)
        .bind(Json(&doc.content))
        .bind(doc.content.issued_at)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE document_sequences SET next_value = GREATEST(next_value, $2) WHERE kind = $1",
        )
        .bind(doc.content.kind.as_str())
        .bind(doc.sequence_value + 1)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "INSERT INTO stage_records (order_id, stage, message_id, state_after, detail)
         SELECT order_id, $2, $3, state, $4 FROM orders WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(stage)
    .bind(format!("{stage}-{}", uuid::Uuid::new_v4()))
    .bind(detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
