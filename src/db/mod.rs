//! Postgres access: every query the pipeline runs lives in this module's children.
//!
//! Functions take a `&mut PgConnection` so that callers can run them inside the one transaction a
//! stage uses for a delivery.

pub mod batch;
pub mod console;
pub mod demo;
pub mod documents;
pub mod erasure;
pub mod inbox;
pub mod orders;
pub mod outbox;
pub mod overview;
pub mod partitions;
pub mod records;
pub mod reference;
pub mod review;
pub mod search;
pub mod timers;

use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::settings::DatabaseSettings;

/// Connects a pool to the configured database.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = settings
        .url
        .expose()
        .parse()
        .with_context(|| format!("parsing database.url {}", settings.url))?;
    // Statements take arrays of a batch's keys: planned for the arrays at hand they use the
    // indexes; a plan cached while the tables were small would scan them whole once they grow.
    let options = options.options([("plan_cache_mode", "force_custom_plan")]);
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .with_context(|| format!("connecting to {}", settings.url))
}

/// A small pool over the same database for bookkeeping whose loss in a crash does no harm:
/// marking outbox rows sent (a lost mark only makes the relay publish the row again, and the
/// consumers' inboxes drop the copy). Its sessions commit without waiting for the WAL to reach
/// the disk (`synchronous_commit = off`); every business write stays on the main pool.
pub fn bookkeeping_pool(pool: &PgPool) -> PgPool {
    let options = (*pool.connect_options())
        .clone()
        .options([("synchronous_commit", "off")]);
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options)
}

/// Starts a transaction on `pool`, counted in the process's metrics.
pub async fn begin(pool: &PgPool) -> sqlx::Result<sqlx::Transaction<'static, Postgres>> {
    let tx = pool.begin().await?;
    crate::metrics::statements(1);
    Ok(tx)
}

/// Commits `tx`, counted in the process's metrics.
pub async fn commit(tx: sqlx::Transaction<'static, Postgres>) -> sqlx::Result<()> {
    tx.commit().await?;
    crate::metrics::statements(1);
    crate::metrics::committed();
    Ok(())
}

/// Creates the configured database if it does not exist yet.
pub async fn create_if_missing(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let url = settings.url.expose();
    let exists = Postgres::database_exists(url)
        .await
        .with_context(|| format!("checking whether {} exists", settings.url))?;
    if !exists {
        tracing::info!(database = %settings.url, "creating database");
        Postgres::create_database(url)
            .await
            .with_context(|| format!("creating {}", settings.url))?;
    }
    Ok(())
}

/// Applies the migrations built into the binary.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::migrate!("./migrations")
        .run(pool)
        .await
        .context("applying migrations")
}

/// Drops a database, closing any connections to it. For tests and tooling.
pub async fn drop_database(settings: &DatabaseSettings) -> anyhow::Result<()> {
    Postgres::force_drop_database(settings.url.expose())
        .await
        .with_context(|| format!("dropping {}", settings.url))
}
