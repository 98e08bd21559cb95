//! Reissuing an order's documents that were issued before the seller was configured
//! (`fulfilment documents reissue ORDER_ID`): each live document without the seller's block is
//! rendered again with it, as a new document numbered in the same series, naming the document it
//! replaces; the old one is voided (its number stays used). The customer block is taken from the
//! customer's records as they are now: after an erasure the copy says the personal data was
//! erased, while lines, amounts, tax, dates of supply and due dates stay as issued.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::db;
use crate::domain::documents::{Buyer, DocumentKind, Seller};
use crate::stages::plan::IssuedDocument;

/// Why documents could not be reissued.
#[derive(Debug, thiserror::Error)]
pub enum ReissueError {
    /// `stages.seller` is not configured: a reissue would name no seller either.
    #[error("stages.seller is not configured: configure the seller before reissuing documents")]
    NoSeller,
    /// The order has no live document without the seller's block.
    #[error("order {0} has no live document without the seller's details")]
    NothingToReissue(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] anyhow::Error),
}

/// A document reissued.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reissued {
    /// The new document's number.
    pub number: String,
    /// The number of the document it replaces (now voided).
    pub replaces: String,
}

/// Who asked for a reissue and why, for the order's timeline (the review desk's person and note).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Requested {
    /// The person, when the review desk reissues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Their note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Reissues the order's live documents that lack the seller's block, naming `seller`, in one
/// transaction under the order's lock, recording `requested` in the order's timeline. Returns
/// what replaced what.
pub async fn reissue(
    pool: &PgPool,
    order_id: &str,
    seller: Option<Seller>,
    now: DateTime<Utc>,
    requested: &Requested,
) -> Result<Vec<Reissued>, ReissueError> {
    let seller = seller.ok_or(ReissueError::NoSeller)?;
    let mut tx = pool.begin().await.map_err(anyhow::Error::from)?;
    db::batch::lock(&mut tx, &[order_id.to_owned()])
        .await
        .map_err(anyhow::Error::from)?;
    let old = db::documents::live_without_seller(&mut tx, order_id)
        .await
        .map_err(anyhow::Error::from)?;
    let Some(first) = old.first() else {
        return Err(ReissueError::NothingToReissue(order_id.to_owned()));
    };
    let customer_id = first.content.0.customer_id.clone();
    let buyer = buyer_now(&mut tx, &customer_id).await?;
    let mut kinds: Vec<String> = old.iter().map(|d| d.kind.clone()).collect();
    kinds.sort();
    kinds.dedup();
    let mut next: std::collections::HashMap<String, i64> =
        db::documents::lock_sequences(&mut tx, &kinds)
            .await
            .map_err(anyhow::Error::from)?
            .into_iter()
            .collect();
    let mut issued = Vec::new();
    for doc in &old {
        let content = &doc.content.0;
        let kind: DocumentKind = content.kind;
        let value = next.get(kind.as_str()).copied().unwrap_or(1);
        next.insert(kind.as_str().to_owned(), value + 1);
        let mut new = content.clone();
        new.number = kind.number(value);
        new.issued_at = now;
        new.seller = Some(seller.clone());
        new.replaces = Some(content.number.clone());
        new.buyer = buyer.clone();
        issued.push(IssuedDocument::render(new, value));
    }
    let reissued: Vec<Reissued> = issued
        .iter()
        .map(|d| Reissued {
            number: d.content.number.clone(),
            replaces: d.content.replaces.clone().unwrap_or_default(),
        })
        .collect();
    let ids: Vec<i64> = old.iter().map(|d| d.id).collect();
    let detail = serde_json::json!({
        "reissued": reissued,
        "reason": "seller_configured",
        "requested": requested,
    });
    db::documents::replace(&mut tx, order_id, "documents", &ids, &issued, &detail)
        .await
        .map_err(anyhow::Error::from)?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(reissued)
}

/// The customer block as the customer's records say now.
async fn buyer_now(
    conn: &mut sqlx::PgConnection,
    customer_id: &str,
) -> Result<Option<Buyer>, ReissueError> {
    if db::erasure::erased_at(conn, customer_id)
        .await
        .map_err(anyhow::Error::from)?
        .is_some()
    {
        return Ok(Some(Buyer::Erased));
    }
    let customer = db::reference::customer(conn, customer_id).await?;
    Ok(customer.map(|c| Buyer::Known {
        name: c.name,
        billing_address: c.billing_address,
        delivery_address: c.delivery_address,
    }))
}
