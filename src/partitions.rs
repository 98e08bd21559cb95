//! Per-order partitions of a stage's input (`amqp.partitions` above 1), so that one order's
//! events are handled in the order they were sent, by one process at a time, however many
//! processes run the stage.
//!
//! ```text
//!  events ─▶ <ns>.<stage> ─▶ router ─┬▶ <ns>.<stage>.p0 ─▶ worker (one process at a time)
//!            (one reader at a time)  ├▶ <ns>.<stage>.p1 ─▶ worker
//!                                    └▶ ...
//! ```
//!
//! - The **router** reads the stage's queue (which has a single active consumer, so one
//!   process routes at a time, in the order the broker holds) and forwards each message, bytes
//!   and properties unchanged, to the partition of its order ([`partition_of`] the CloudEvents
//!   `subject`, else the `correlation-id`), and acknowledges it once the broker confirmed the
//!   copy. External publishers and consumers see nothing of this: bindings are unchanged.
//! - Each **partition** queue has a single active consumer too. Every process running the stage
//!   takes its share ([`share`]): partitions ÷ processes, rounded up, where processes is how many
//!   consumers the stage's members queue has (each such process consumes it; nothing is sent
//!   there). A partition belongs to the process holding its Postgres advisory lock
//!   ([`crate::db::partitions`]): a process with fewer than its share takes free ones; one with
//!   more lets some go (finishing the batch in hand first, so a partition changes hands between
//!   batches, never during one). When a process dies, its database session ends, its locks go
//!   with it, and the others take its partitions within a few seconds.
//! - A message deferred for retry goes through the stage's delay queue back to the stage's
//!   queue, and the router sends it to the same partition.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use sqlx::PgConnection;

use crate::db;
use crate::domain::StageName;
use crate::messaging::{Inbound, InboundStream, Publisher, Topology};

/// How often a process looks at its share of partitions (with jitter, so that processes started
/// together do not all look at once).
const REBALANCE: Duration = Duration::from_secs(2);

/// Most deliveries the router forwards in one go.
const ROUTER_BATCH: usize = 256;

/// The partition, of `partitions`, of an order (FNV-1a of its id: stable across processes,
/// versions and restarts).
pub fn partition_of(order_key: &str, partitions: u16) -> u16 {
    let hash = crate::digest::fnv1a64(order_key.as_bytes());
    (hash % u64::from(partitions.max(1))) as u16
}

/// What a message's partition is worked out from: the envelope's `subject` (the order id), or
/// the `correlation-id` property; empty for a message that has neither (it is still handled,
/// in partition 0, where the stage sends it to review if it is unusable).
pub fn order_key(inbound: &Inbound) -> String {
    #[derive(serde::Deserialize)]
    struct Subject {
        subject: Option<String>,
    }
    serde_json::from_slice::<Subject>(inbound.body())
        .ok()
        .and_then(|s| s.subject)
        .or_else(|| inbound.correlation_id().map(str::to_owned))
        .unwrap_or_default()
}

/// How many partitions each of `processes` takes.
pub fn share(partitions: u16, processes: u32) -> usize {
    usize::from(partitions).div_ceil(processes.max(1) as usize)
}

/// Forwards the stage's queue to its partitions until `stop` is cancelled.
pub async fn route(
    mut stream: InboundStream,
    publisher: Publisher,
    topology: Topology,
    stage: StageName,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let batch = tokio::select! {
            _ = stop.cancelled() => break,
            batch = stream.next_batch(ROUTER_BATCH, Duration::ZERO) => batch,
        };
        let Some(batch) = batch else {
            anyhow::bail!("the router of {stage} lost its consumer");
        };
        forward(&publisher, &topology, stage, batch?).await?;
    }
    stream.close().await
}

/// Sends each delivery to its partition, waits for every confirm, then acknowledges them all.
async fn forward(
    publisher: &Publisher,
    topology: &Topology,
    stage: StageName,
    batch: Vec<Inbound>,
) -> anyhow::Result<()> {
    let last = batch.iter().map(Inbound::delivery_tag).max();
    let mut by_partition: BTreeMap<u16, Vec<Inbound>> = BTreeMap::new();
    for inbound in batch {
        let k = partition_of(&order_key(&inbound), topology.partitions());
        by_partition.entry(k).or_default().push(inbound);
    }
    for (k, deliveries) in &by_partition {
        let queue = topology.partition_queue(stage, *k);
        publisher
            .forward(&queue, deliveries)
            .await
            .with_context(|| format!("forwarding to {queue}"))?;
    }
    let Some(last) = last else { return Ok(()) };
    let newest = by_partition
        .values()
        .flatten()
        .find(|d| d.delivery_tag() == last)
        .expect("the batch's newest delivery");
    newest.ack_through().await
}

/// A partition's worker as running: its stop signal and its task.
type Running = (CancellationToken, JoinHandle<anyhow::Result<()>>);

/// Takes and lets go of `stage`'s partitions so that this process handles its share, until
/// `stop` is cancelled; `start(k, token)` starts a worker on partition `k` that stops when
/// `token` is cancelled. Fails when a worker fails (the pipeline then starts afresh).
pub async fn share_out<F, Fut>(
    membership: InboundStream,
    probe: lapin::Channel,
    mut locks: PgConnection,
    topology: Topology,
    stage: StageName,
    mut start: F,
    stop: CancellationToken,
) -> anyhow::Result<()>
where
    F: FnMut(u16, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<JoinHandle<anyhow::Result<()>>>>,
{
    let mut mine: BTreeMap<u16, Running> = BTreeMap::new();
    let outcome = loop {
        let jitter = Duration::from_millis(rand_millis(500));
        tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            _ = tokio::time::sleep(REBALANCE + jitter) => {}
        }
        let ended = mine.iter().find(|(_, (_, task))| task.is_finished());
        if let Some(k) = ended.map(|(k, _)| *k) {
            let (_, task) = mine.remove(&k).expect("found above");
            let why = match task.await {
                Ok(Ok(())) => anyhow::anyhow!("it stopped by itself"),
                Ok(Err(error)) => error,
                Err(panic) => anyhow::Error::new(panic),
            };
            let queue = topology.partition_queue(stage, k);
            break Err(why.context(format!("the worker of {queue}")));
        }
        let look = Look {
            probe: &probe,
            locks: &mut locks,
            topology: &topology,
            stage,
            stop: &stop,
        };
        let claimed = look.rebalance(&mut mine, &mut start).await;
        if let Err(error) = claimed {
            break Err(error);
        }
    };
    for (token, _) in mine.values() {
        token.cancel();
    }
    for (_, (_, task)) in mine {
        let _ = task.await;
    }
    let _ = membership.close().await;
    outcome
}

/// What one look at a stage's partitions works with.
struct Look<'a> {
    probe: &'a lapin::Channel,
    locks: &'a mut PgConnection,
    topology: &'a Topology,
    stage: StageName,
    stop: &'a CancellationToken,
}

impl Look<'_> {
    /// Lets go of partitions beyond this process's share, and takes free ones up to it (a
    /// partition is taken with its lock: atomically, so never by two processes at once).
    async fn rebalance<F, Fut>(
        self,
        mine: &mut BTreeMap<u16, Running>,
        start: &mut F,
    ) -> anyhow::Result<()>
    where
        F: FnMut(u16, CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<JoinHandle<anyhow::Result<()>>>>,
    {
        let (topology, stage) = (self.topology, self.stage);
        let members = topology.members_queue(stage);
        let processes = topology.counts(self.probe, &members).await?.consumers;
        let share = share(topology.partitions(), processes);
        let stage_queue = topology.stage_queue(stage);
        while mine.len() > share {
            let (k, (token, task)) = mine.pop_last().expect("more than the share");
            token.cancel();
            let _ = task.await;
            // Only once its worker has stopped (its batch done, its consumer gone).
            db::partitions::let_go(self.locks, db::partitions::lock_key(&stage_queue, k)).await?;
            tracing::info!(%stage, partition = k, "let a partition go");
        }
        // Each process starts looking at a partition of its own, so that processes starting
        // together rarely reach for the same ones.
        let partitions = topology.partitions();
        let first = rand_millis(u64::from(partitions)) as u16;
        for k in (0..partitions).map(|i| (first + i) % partitions) {
            if mine.len() >= share {
                break;
            }
            let key = db::partitions::lock_key(&stage_queue, k);
            if mine.contains_key(&k) || !db::partitions::try_take(self.locks, key).await? {
                continue;
            }
            // A child of the pipeline's token: the worker stops with the pipeline, even if
            // this task is aborted.
            let token = self.stop.child_token();
            match start(k, token.clone()).await {
                Ok(task) => {
                    mine.insert(k, (token, task));
                    tracing::info!(%stage, partition = k, "took a partition");
                }
                Err(error) => {
                    db::partitions::let_go(self.locks, key).await?;
                    return Err(error);
                }
            }
        }
        Ok(())
    }
}

/// Up to `max` milliseconds, different in each process and each call.
fn rand_millis(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    (nanos ^ u64::from(std::process::id())) % max.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_always_lands_in_the_same_partition_and_orders_spread() {
        assert_eq!(partition_of("WEB-1001", 8), partition_of("WEB-1001", 8));
        assert_eq!(partition_of("anything", 1), 0);
        let mut counts = [0u32; 4];
        for n in 0..4000 {
            counts[usize::from(partition_of(&format!("ORD-{n}"), 4))] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }

    #[test]
    fn each_process_takes_its_share_rounded_up() {
        assert_eq!(share(8, 1), 8);
        assert_eq!(share(8, 2), 4);
        assert_eq!(share(8, 3), 3);
        assert_eq!(share(4, 0), 4);
    }
}
