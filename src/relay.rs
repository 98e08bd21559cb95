//! The outbox relay: publishes events whose stage committed them but did not publish them (it
//! crashed, or the broker was away), then marks them sent.
//!
//! Rows are claimed with `FOR UPDATE SKIP LOCKED`, so relays in several processes share the work.
//! A row is only taken once it is older than the grace period, leaving its own stage time to
//! publish it; if both publish, consumers' inboxes drop the second copy.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db;
use crate::envelope::WireEvent;
use crate::messaging::Publisher;
use crate::settings::RelaySettings;

/// Runs relay passes every `interval_ms` until `shutdown` is cancelled.
pub async fn run(
    pool: PgPool,
    publisher: Publisher,
    settings: RelaySettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let interval = Duration::from_millis(settings.interval_ms);
    let ran = crate::periodic::every(interval, &publisher, &shutdown, "relay", || {
        relay_once(&pool, &publisher, &settings)
    })
    .await;
    let _ = publisher.close().await;
    ran
}

/// Publishes outbox rows just committed by their writer (a stage, the scheduler, the review desk)
/// with confirms, then marks them sent. If this fails the rows stay unsent and the relay
/// publishes them once their grace period is over.
pub async fn publish_committed(
    pool: &PgPool,
    publisher: &Publisher,
    emitted: &[(i64, WireEvent)],
) -> anyhow::Result<()> {
    if emitted.is_empty() {
        return Ok(());
    }
    let events: Vec<WireEvent> = emitted.iter().map(|(_, e)| e.clone()).collect();
    publisher
        .publish_all(&events, false)
        .await
        .context("publishing the outbox")?;
    let ids: Vec<i64> = emitted.iter().map(|(id, _)| *id).collect();
    mark_sent(pool, &ids).await
}

/// Marks outbox rows published by their writer as sent, in one statement.
pub async fn mark_sent(pool: &PgPool, ids: &[i64]) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    db::outbox::mark_sent(&mut conn, ids).await?;
    Ok(())
}

/// One pass: publishes up to `batch_size` unsent rows older than the grace period.
/// Returns how many were published.
pub async fn relay_once(
    pool: &PgPool,
    publisher: &Publisher,
    settings: &RelaySettings,
) -> anyhow::Result<usize> {
    let grace =
        chrono::Duration::milliseconds(i64::try_from(settings.grace_ms).unwrap_or(i64::MAX));
    let mut tx = db::begin(pool)
        .await
        .context("starting the relay transaction")?;
    let rows = db::outbox::claim_unsent(&mut tx, chrono::Utc::now() - grace, settings.batch_size)
        .await
        .context("claiming unsent outbox rows")?;
    if rows.is_empty() {
        return Ok(0);
    }
    let (ids, events): (Vec<i64>, Vec<WireEvent>) = rows.into_iter().unzip();
    publisher
        .publish_all(&events, false)
        .await
        .context("publishing unsent outbox rows")?;
    db::outbox::mark_relayed(&mut tx, &ids).await?;
    db::commit(tx).await.context("committing the relay pass")?;
    crate::metrics::published("relay", ids.len() as u64, std::time::Duration::ZERO);
    Ok(ids.len())
}
