//! Loading reference data (customers, products, stock, agents, delivery terms) from a JSON or
//! TOML file, as `fulfilment seed FILE` does. Loading is an upsert: running it again updates.

use std::path::Path;

use anyhow::Context;
use sqlx::PgPool;

use crate::db;
use crate::domain::catalogue::Catalogue;

/// Reads a reference-data file; `.toml` files are TOML, anything else JSON.
pub fn read(path: &Path) -> anyhow::Result<Catalogue> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let catalogue: Catalogue = if path.extension().is_some_and(|e| e == "toml") {
        toml::from_str(&text)
            .with_context(|| format!("{} is not a valid reference-data file", path.display()))?
    } else {
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid reference-data file", path.display()))?
    };
    catalogue
        .validate()
        .with_context(|| format!("{} is not a valid reference-data file", path.display()))?;
    Ok(catalogue)
}

/// Writes the reference data in one transaction. Returns the ids of customers left as they were
/// because their personal data was erased.
pub async fn apply(pool: &PgPool, catalogue: &Catalogue) -> anyhow::Result<Vec<String>> {
    let mut tx = pool.begin().await?;
    let left_erased = db::reference::upsert(&mut tx, catalogue)
        .await
        .context("loading reference data")?;
    tx.commit().await?;
    Ok(left_erased)
}
