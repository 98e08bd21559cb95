//! Background work done in passes at a fixed interval (the outbox relay, the timer scheduler).

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::messaging::Publisher;

/// Runs `pass` every `interval` until `shutdown` is cancelled. A pass that fails is logged and
/// tried again next time; a closed broker channel ends the loop with an error, so that the
/// pipeline's supervisor reconnects. `what` names the work in logs.
pub async fn every<F, Fut>(
    interval: Duration,
    publisher: &Publisher,
    shutdown: &CancellationToken,
    what: &str,
    mut pass: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        if !publisher.channel().status().connected() {
            anyhow::bail!("the {what}'s broker channel closed");
        }
        match pass().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "{what}: pass done"),
            Err(error) => tracing::warn!(error = %format!("{error:#}"), "{what}: pass failed"),
        }
    }
}
