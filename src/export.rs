//! Writing an order's documents out as PDF files, as `fulfilment documents` does.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sqlx::PgPool;

use crate::db;
use crate::db::documents::StoredDocument;
use crate::domain::documents::DocumentKind;
use crate::domain::documents::layout::VoidMark;

/// Writes every document of the order into `dir` as `<number>.pdf`, creating `dir` if needed.
/// A voided document is written as `<number>.void.pdf`: its content rendered again with a VOID
/// mark on every page saying when it was voided and which document replaced or credited it.
/// Returns the files written.
pub async fn documents(pool: &PgPool, order_id: &str, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut conn = pool.acquire().await?;
    let documents = db::documents::for_order(&mut conn, order_id).await?;
    anyhow::ensure!(!documents.is_empty(), "order {order_id} has no documents");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for doc in &documents {
        let (name, pdf) = match void_mark(doc, &documents) {
            Some(mark) => (
                format!("{}.void.pdf", doc.number),
                crate::render::void_copy(&doc.content.0, &mark),
            ),
            None => (format!("{}.pdf", doc.number), doc.pdf.clone()),
        };
        let path = dir.join(name);
        std::fs::write(&path, &pdf).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// What a voided document's copy says: when, and the next document of its kind for the order
/// (its replacement) or the credit note that credits it.
pub fn void_mark(doc: &StoredDocument, all: &[StoredDocument]) -> Option<VoidMark> {
    let voided_at = doc.voided_at?;
    let replaced_by = all
        .iter()
        .find(|d| d.id > doc.id && d.kind == doc.kind)
        .map(|d| d.number.clone());
    let credited_by = all
        .iter()
        .find(|d| {
            d.content.0.kind == DocumentKind::CreditNote
                && d.content.0.replaces.as_deref() == Some(doc.number.as_str())
        })
        .map(|d| d.number.clone());
    Some(VoidMark {
        voided_at,
        replaced_by,
        credited_by,
    })
}
