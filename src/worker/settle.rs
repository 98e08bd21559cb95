//! After a batch commits: publish its events with pipelined confirms, mark them sent, then
//! settle every delivery — defer what is to be retried, and acknowledge the rest with one
//! `multiple` ack.

use crate::envelope::WireEvent;
use crate::messaging::Inbound;
use crate::relay;

use super::batch::{After, Committed};
use super::delivery::Delivery;
use super::{Worker, WorkerError};

/// Publishes what `committed` wrote and settles `deliveries` as it says.
pub async fn settle(
    worker: &Worker,
    deliveries: Vec<Delivery>,
    committed: Committed,
) -> Result<(), WorkerError> {
    publish(worker, &committed.emitted, committed.at).await?;
    let mut last_done: Option<Inbound> = None;
    for (delivery, after) in deliveries.into_iter().zip(committed.after) {
        match after {
            After::Ack => {
                let later = last_done
                    .as_ref()
                    .is_none_or(|last| delivery.inbound.delivery_tag() > last.delivery_tag());
                if later {
                    last_done = Some(delivery.inbound);
                }
            }
            After::Retry { attempt, delay_ms } => {
                delivery
                    .inbound
                    .defer(
                        &worker.publisher,
                        &worker.policy.delay_queue,
                        attempt,
                        delay_ms,
                    )
                    .await?;
            }
            After::Failed(failure) => Box::pin(worker.failed_alone(delivery, failure)).await?,
        }
    }
    if let Some(last) = last_done {
        last.ack_through().await?;
    }
    Ok(())
}

/// Publishes committed outbox rows with confirms, then marks them sent. A failure to mark them
/// (the database restarting) is not the broker's: the rows stay unsent, the relay publishes
/// them again later, and consumers drop the copies.
async fn publish(
    worker: &Worker,
    emitted: &[(i64, WireEvent)],
    committed_at: std::time::Instant,
) -> Result<(), WorkerError> {
    if emitted.is_empty() {
        return Ok(());
    }
    let events: Vec<WireEvent> = emitted.iter().map(|(_, e)| e.clone()).collect();
    if let Err(error) = worker.publisher.publish_all(&events, false).await {
        crate::metrics::publish_failed();
        return Err(WorkerError::Failed(
            anyhow::Error::new(error).context("publishing the outbox"),
        ));
    }
    crate::metrics::published("handler", events.len() as u64, committed_at.elapsed());
    let ids: Vec<i64> = emitted.iter().map(|(id, _)| *id).collect();
    if let Err(error) = relay::mark_sent(&worker.pools.bookkeeping, &ids).await {
        tracing::warn!(error = %format!("{error:#}"), "marking published events sent failed; the relay will publish them again");
    }
    Ok(())
}

/// Returns every delivery to its queue, as it is.
pub async fn requeue_all(deliveries: &[Delivery]) -> Result<(), WorkerError> {
    for delivery in deliveries {
        delivery.inbound.requeue().await?;
    }
    Ok(())
}
