//! Loading reference data (customers, products, stock, agents, delivery terms) from a JSON or
//! TOML file, as `fulfilment seed FILE` does. Loading is an upsert: running it again updates.
//!
//! Every record is checked before any database work (see [`crate::domain::catalogue::checks`]),
//! and the whole file is loaded in one transaction: when anything is refused, nothing is written.

use std::path::Path;

use anyhow::Context;
use serde::de::DeserializeOwned;
use sqlx::{PgConnection, PgPool};

use crate::db;
use crate::domain::catalogue::{Catalogue, InvalidCatalogue, ProductKind, checks};
use crate::domain::text;

/// The most lines of a parser's message kept, each cut to [`MAX_LINE_CHARS`].
const MAX_MESSAGE_LINES: usize = 12;
/// The longest line of a parser's message kept (it may quote the file).
const MAX_LINE_CHARS: usize = 300;

/// Why reference data was not loaded. In every case nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not JSON or TOML of the reference-data shape.
    #[error("{path} is not a valid reference-data file: {problem}")]
    Malformed {
        /// The file.
        path: String,
        /// Where and what, as the parser says it (escaped and cut short).
        problem: String,
    },
    /// Records of the file break their limits or are listed twice.
    #[error("{path} is refused, nothing was written: {invalid}")]
    InvalidFile {
        /// The file.
        path: String,
        /// The problems.
        invalid: InvalidCatalogue,
    },
    /// The reference data breaks its limits, is listed twice, or gives stock for a product
    /// neither in it nor in the database.
    #[error("the reference data is refused, nothing was written: {0}")]
    Invalid(InvalidCatalogue),
    /// The database failed.
    #[error("loading reference data, nothing was written: {0:#}")]
    Database(anyhow::Error),
}

/// Reads and checks a reference-data file; `.toml` files are TOML, anything else JSON.
pub fn read(path: &Path) -> Result<Catalogue, SeedError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
        path: shown.clone(),
        source,
    })?;
    let toml = path.extension().is_some_and(|e| e == "toml");
    parse(&text, &shown, toml)
}

/// Parses and checks reference data given as text (TOML if `toml`, else JSON); `shown` names
/// it in errors.
pub fn parse(text: &str, shown: &str, toml: bool) -> Result<Catalogue, SeedError> {
    let parsed = match toml {
        true => parse_toml(text),
        false => parse_json(text),
    };
    let catalogue: Catalogue = parsed.map_err(|problem| SeedError::Malformed {
        path: shown.to_owned(),
        problem,
    })?;
    catalogue
        .validate()
        .map_err(|invalid| SeedError::InvalidFile {
            path: shown.to_owned(),
            invalid,
        })?;
    Ok(catalogue)
}

fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(at_path)?;
    deserializer.end().map_err(|e| tidy(&e.to_string()))?;
    Ok(value)
}

fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let deserializer = toml::de::Deserializer::parse(text).map_err(|e| tidy(&e.to_string()))?;
    serde_path_to_error::deserialize(deserializer).map_err(at_path)
}

/// A parser's error with the path of the field it is about (`products[3].price_minor`).
fn at_path<E: std::fmt::Display>(error: serde_path_to_error::Error<E>) -> String {
    let path = error.path().to_string();
    let problem = tidy(&error.into_inner().to_string());
    match path.as_str() {
        "." => problem,
        _ => format!("{path}: {problem}"),
    }
}

/// A parser's message, which may quote the file: each line escaped and cut short.
fn tidy(message: &str) -> String {
    let lines: Vec<String> = message
        .lines()
        .take(MAX_MESSAGE_LINES)
        .map(|line| text::excerpt(line, MAX_LINE_CHARS))
        .collect();
    lines.join("\n")
}

/// Checks the reference data and writes it in one transaction. Returns the ids of customers
/// left as they were because their personal data was erased.
pub async fn apply(pool: &PgPool, catalogue: &Catalogue) -> Result<Vec<String>, SeedError> {
    catalogue.validate().map_err(SeedError::Invalid)?;
    let mut tx = pool
        .begin()
        .await
        .context("starting the transaction")
        .map_err(SeedError::Database)?;
    let left_erased = db::reference::upsert_records(&mut tx, catalogue)
        .await
        .map_err(SeedError::Database)?;
    let problems = stock_problems(&mut tx, catalogue)
        .await
        .map_err(SeedError::Database)?;
    if !problems.is_empty() {
        // Dropping the transaction rolls back what was written above.
        return Err(SeedError::Invalid(InvalidCatalogue { problems }));
    }
    db::reference::set_stock(&mut tx, &catalogue.stock)
        .await
        .map_err(SeedError::Database)?;
    tx.commit()
        .await
        .context("committing")
        .map_err(SeedError::Database)?;
    Ok(left_erased)
}

/// Stock levels for a product that does not exist, or is a service, once the file's products
/// are written: what only the database can tell.
async fn stock_problems(
    conn: &mut PgConnection,
    catalogue: &Catalogue,
) -> anyhow::Result<Vec<checks::CatalogueError>> {
    let skus: Vec<String> = catalogue.stock.iter().map(|s| s.sku.clone()).collect();
    let kinds = db::reference::product_kinds(conn, &skus)
        .await
        .context("finding the products of the stock levels")?;
    Ok(catalogue
        .stock
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match kinds.get(&s.sku) {
            None => Some(checks::stock_for_unknown_product(i, &s.sku)),
            Some(ProductKind::Service) => Some(checks::stock_for_service(
                i,
                &s.sku,
                "the product in the database",
            )),
            Some(ProductKind::Goods) => None,
        })
        .collect())
}
