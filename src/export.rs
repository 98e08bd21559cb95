//! Writing an order's documents out as PDF files, as `fulfilment documents` does.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sqlx::PgPool;

use crate::db;

/// Writes every document of the order into `dir` as `<number>.pdf` (voided ones as
/// `<number>.void.pdf`), creating `dir` if needed. Returns the files written.
pub async fn documents(pool: &PgPool, order_id: &str, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut conn = pool.acquire().await?;
    let documents = db::documents::for_order(&mut conn, order_id).await?;
    anyhow::ensure!(!documents.is_empty(), "order {order_id} has no documents");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for doc in documents {
        let suffix = if doc.voided_at.is_some() {
            ".void.pdf"
        } else {
            ".pdf"
        };
        let path = dir.join(format!("{}{suffix}", doc.number));
        std::fs::write(&path, &doc.pdf).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
