//! The broker's own ceiling for the pipeline's shape, measured by `fulfilment bench`: messages
//! pass through a chain of durable quorum queues, and each hop consumes from one, publishes to
//! the next with a publisher confirm and then acknowledges, exactly as a stage worker does but
//! with no database. Hops batch deliveries and confirms the way workers do, so the comparison is
//! with the same broker work and nothing else.

use std::sync::Arc;

use anyhow::Context;
use lapin::Connection;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{InboundStream, Publisher, Topology, connect};
use crate::settings::AmqpSettings;

/// Called with a message's number when it comes out of the last hop.
pub type Arrival = Arc<dyn Fn(u64) + Send + Sync>;

/// How the chain is shaped.
#[derive(Debug, Clone, Copy)]
pub struct ChainShape {
    /// Hops between the first queue and the sink (six, like the stages).
    pub hops: usize,
    /// Unacknowledged deliveries each hop holds at once.
    pub prefetch: u16,
    /// Most deliveries a hop forwards as one batch.
    pub batch_size: usize,
}

/// A running chain of hops, with a sink reporting what comes out of the last one.
pub struct Ceiling {
    /// The hops' connection, as a worker process has one connection for its stages.
    hop_connection: Connection,
    /// The driver's connection: publishing into the first queue and draining the sink.
    driver_connection: Connection,
    publisher: Publisher,
    topology: Topology,
    queues: Vec<String>,
    tasks: JoinSet<anyhow::Result<()>>,
    stop: CancellationToken,
}

impl Ceiling {
    /// Declares `hops + 1` quorum queues under the namespace and starts the hops and the sink.
    pub async fn start(
        settings: &AmqpSettings,
        shape: ChainShape,
        on_arrival: Arrival,
    ) -> anyhow::Result<Self> {
        let topology = Topology::new(&settings.namespace);
        let hop_connection = connect(settings, "ceiling-hops").await?;
        let driver_connection = connect(settings, "ceiling-driver").await?;
        let publisher = Publisher::open(&driver_connection, &topology).await?;
        let queues: Vec<String> = (0..=shape.hops)
            .map(|i| format!("{}.ceiling.{i}", settings.namespace))
            .collect();
        for queue in &queues {
            topology
                .declare_queue(publisher.channel(), queue, &[])
                .await?;
        }
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for pair in queues.windows(2) {
            let stream = InboundStream::open(&hop_connection, &pair[0], shape.prefetch).await?;
            let out = Publisher::open(&hop_connection, &topology).await?;
            let (next, stop) = (pair[1].clone(), stop.clone());
            tasks.spawn(hop(stream, out, next, shape.batch_size, stop));
        }
        let sink_queue = queues.last().context("a chain has a sink")?;
        let stream = InboundStream::open(&driver_connection, sink_queue, shape.prefetch).await?;
        tasks.spawn(sink(stream, shape.batch_size, on_arrival, stop.clone()));
        Ok(Self {
            hop_connection,
            driver_connection,
            publisher,
            topology,
            queues,
            tasks,
            stop,
        })
    }

    /// Publishes messages numbered `first..first + count`, each carrying `body`, into the first
    /// queue, and waits for their confirms.
    pub async fn send(&self, first: u64, count: u64, body: &[u8]) -> anyhow::Result<()> {
        let messages: Vec<(String, &[u8])> = (first..first + count)
            .map(|n| (n.to_string(), body))
            .collect();
        self.publisher
            .send_all(&self.queues[0], &messages)
            .await
            .context("publishing into the ceiling chain")
    }

    /// Stops the hops and the sink, deletes the queues and closes both connections.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        while let Some(joined) = self.tasks.join_next().await {
            joined.context("a ceiling hop panicked")??;
        }
        for queue in &self.queues {
            self.topology
                .delete_queue(self.publisher.channel(), queue)
                .await?;
        }
        self.hop_connection.close(200, "done".into()).await?;
        self.driver_connection.close(200, "done".into()).await?;
        Ok(())
    }
}

/// One hop: takes a batch, forwards it with confirms, then acknowledges it with one frame.
async fn hop(
    mut stream: InboundStream,
    publisher: Publisher,
    next_queue: String,
    batch_size: usize,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let batch = tokio::select! {
            _ = stop.cancelled() => break,
            batch = stream.next_batch(batch_size, std::time::Duration::ZERO) => batch.context("the broker closed a hop")??,
        };
        publisher.forward(&next_queue, &batch).await?;
        if let Some(last) = batch.last() {
            last.ack_through().await?;
        }
    }
    stream.close().await
}

/// The end of the chain: reports each message's number and acknowledges.
async fn sink(
    mut stream: InboundStream,
    batch_size: usize,
    on_arrival: Arrival,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let batch = tokio::select! {
            _ = stop.cancelled() => break,
            batch = stream.next_batch(batch_size, std::time::Duration::ZERO) => batch.context("the broker closed the sink")??,
        };
        for inbound in &batch {
            if let Some(n) = inbound.message_id().and_then(|id| id.parse().ok()) {
                on_arrival(n);
            }
        }
        if let Some(last) = batch.last() {
            last.ack_through().await?;
        }
    }
    stream.close().await
}
