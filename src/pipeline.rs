//! Starting, supervising and stopping a pipeline: the chosen stage workers, the outbox relay and
//! the timer scheduler, in one process, sharing one broker connection and one database pool.
//!
//! The broker connection is supervised. When it fails (or any task stops on its own), every task
//! of that connection is stopped, and the pipeline reconnects with exponential backoff,
//! redeclares the topology and starts the tasks again. Deliveries in flight when the connection
//! dropped return to their queues; what was committed but not published is published by the
//! relay. lapin's own recovery is not used. The database pool reconnects by itself; a worker
//! that finds the database unreachable pauses until it answers (see [`crate::worker`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use lapin::Connection;
use sqlx::PgPool;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::domain::StageName;
use crate::health::PipelineHealth;
use crate::messaging::{self, InboundStream, Publisher, Topology};
use crate::settings::Settings;
use crate::worker::{FailurePolicy, Faults, Pools, Worker, WorkerError};
use crate::{partitions, relay, scheduler};

/// Unacknowledged deliveries a stage's router holds (it forwards them in batches).
const ROUTER_PREFETCH: u16 = 256;

/// The longest a shutdown waits for in-flight deliveries to finish.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The longest wait between reconnection attempts.
const RECONNECT_BACKOFF_CAP: Duration = Duration::from_secs(15);

/// What to run.
#[derive(Clone)]
pub struct PipelineOptions {
    /// The stages to run; several processes may run the same stage and compete for its queue.
    pub stages: Vec<StageName>,
    /// Whether to run the outbox relay and the timer scheduler in this process.
    pub relay: bool,
    /// Faults to inject (tests only).
    pub faults: Faults,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            stages: StageName::ALL.to_vec(),
            relay: true,
            faults: Faults::default(),
        }
    }
}

/// A running, supervised pipeline.
pub struct Pipeline {
    shutdown: CancellationToken,
    supervisor: JoinHandle<()>,
    restarts: Arc<AtomicU64>,
    health: PipelineHealth,
}

/// The tasks running on one broker connection.
struct Generation {
    connection: Arc<Connection>,
    stop: CancellationToken,
    tasks: JoinSet<(String, anyhow::Result<()>)>,
}

impl Pipeline {
    /// Connects, declares the topology and starts the tasks; fails if the first connection
    /// cannot be made. The database must be migrated.
    pub async fn start(
        settings: &Settings,
        pool: PgPool,
        options: PipelineOptions,
    ) -> anyhow::Result<Self> {
        let first = Generation::start(settings, &pool, &options).await?;
        let health = PipelineHealth::default();
        first.report(&health);
        let shutdown = CancellationToken::new();
        let restarts = Arc::new(AtomicU64::new(0));
        let supervision = Supervision {
            settings: settings.clone(),
            pool,
            options,
            shutdown: shutdown.clone(),
            restarts: restarts.clone(),
            health: health.clone(),
        };
        let supervisor = tokio::spawn(supervision.run(first));
        Ok(Self {
            shutdown,
            supervisor,
            restarts,
            health,
        })
    }

    /// The pipeline's part of this process's readiness.
    pub fn health(&self) -> PipelineHealth {
        self.health.clone()
    }

    /// How many times the tasks were restarted on a new connection.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// A token that stops the pipeline when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the pipeline is told to shut down.
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        Ok(())
    }

    /// Stops consuming, lets in-flight deliveries finish, then closes the connection.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.supervisor
            .await
            .context("the pipeline supervisor panicked")
    }
}

/// What the supervisor of a pipeline works with.
struct Supervision {
    settings: Settings,
    pool: PgPool,
    options: PipelineOptions,
    shutdown: CancellationToken,
    restarts: Arc<AtomicU64>,
    health: PipelineHealth,
}

impl Supervision {
    /// Runs generations until shutdown, replacing a failed one with a new connection.
    async fn run(self, mut current: Generation) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => {
                    current.stop().await;
                    self.health.stopped();
                    return;
                }
                (task, result) = current.next_exit() => {
                    let error = result.err().map_or_else(|| "stopped".to_owned(), |e| format!("{e:#}"));
                    tracing::warn!(%task, %error, "a pipeline task ended; restarting on a new connection");
                    self.health.restarting(format!("{task} ended: {error}"));
                }
            }
            current.stop().await;
            self.restarts.fetch_add(1, Ordering::Relaxed);
            match self.reconnect().await {
                Some(next) => {
                    next.report(&self.health);
                    current = next;
                }
                None => {
                    self.health.stopped();
                    return;
                }
            }
        }
    }

    /// Starts a new generation, backing off between attempts. `None` on shutdown.
    async fn reconnect(&self) -> Option<Generation> {
        let mut backoff = Duration::from_millis(200);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                _ = tokio::time::sleep(backoff) => {}
            }
            match Generation::start(&self.settings, &self.pool, &self.options).await {
                Ok(generation) => {
                    tracing::info!("reconnected to the broker; pipeline resumed");
                    return Some(generation);
                }
                Err(error) => {
                    let error = format!("{error:#}");
                    tracing::warn!(%error, ?backoff, "reconnecting to the broker failed");
                    self.health.restarting(error);
                    backoff = (backoff * 2).min(RECONNECT_BACKOFF_CAP);
                }
            }
        }
    }
}

/// What a generation's stage workers are started with.
#[derive(Clone)]
struct Shared {
    settings: Settings,
    pool: PgPool,
    connection: Arc<Connection>,
    topology: Topology,
    pools: Pools,
    options: PipelineOptions,
}

/// A generation's tasks: each ends with its name and how it ended.
type Tasks = JoinSet<(String, anyhow::Result<()>)>;

impl Shared {
    /// A worker of `stage` consuming `queue` (the stage's queue, or one of its partitions),
    /// running until `token` is cancelled.
    async fn worker(
        &self,
        stage: StageName,
        queue: &str,
        token: CancellationToken,
    ) -> anyhow::Result<impl Future<Output = anyhow::Result<()>> + use<>> {
        let settings = &self.settings;
        let stream = InboundStream::open(&self.connection, queue, settings.amqp.prefetch).await?;
        let publisher = Publisher::open(&self.connection, &self.topology)
            .await
            .context("opening a publisher")?;
        let policy = FailurePolicy {
            retry: settings.retry.clone(),
            delay_queue: self.topology.retry_queue(stage),
            max_message_bytes: settings.amqp.max_message_bytes,
            batch_size: settings.amqp.batch_size,
            batch_linger: Duration::from_millis(settings.amqp.batch_linger_ms),
            default_terms: settings.stages.default_delivery_terms.clone(),
        };
        let stage_impl = crate::stages::build(stage, &settings.stages);
        let faults = self.options.faults.clone();
        let worker = Worker::new(stage_impl, &self.pools, publisher, faults, policy);
        Ok(async move {
            worker.run(stream, token).await.map_err(|e| match e {
                WorkerError::Failed(e) => e,
                crash => anyhow::Error::new(crash),
            })
        })
    }

    /// `amqp.consumers` workers of `stage` competing on its queue.
    async fn spawn_competing(
        &self,
        stage: StageName,
        stop: &CancellationToken,
        tasks: &mut Tasks,
    ) -> anyhow::Result<()> {
        let queue = self.topology.stage_queue(stage);
        for _ in 0..self.settings.amqp.consumers.of(stage) {
            let run = self.worker(stage, &queue, stop.clone()).await?;
            tasks.spawn(async move { (stage.to_string(), run.await) });
        }
        Ok(())
    }

    /// The router of `stage`'s queue and the task that keeps this process's share of its
    /// partitions (see [`crate::partitions`]).
    async fn spawn_partitioned(
        &self,
        stage: StageName,
        stop: &CancellationToken,
        tasks: &mut Tasks,
    ) -> anyhow::Result<()> {
        let queue = self.topology.stage_queue(stage);
        let stream = InboundStream::open(&self.connection, &queue, ROUTER_PREFETCH).await?;
        let publisher = Publisher::open(&self.connection, &self.topology).await?;
        let route = partitions::route(
            stream,
            publisher,
            self.topology.clone(),
            stage,
            stop.clone(),
        );
        tasks.spawn(async move { (format!("{stage} router"), route.await) });
        let members = self.topology.members_queue(stage);
        let membership = InboundStream::open(&self.connection, &members, 1).await?;
        let probe = self.connection.create_channel().await?;
        // The partitions' locks live as long as this connection: it is the process's own.
        let locks = self.pool.acquire().await?.detach();
        let shared = self.clone();
        let start = move |k: u16, token: CancellationToken| {
            let shared = shared.clone();
            async move {
                let queue = shared.topology.partition_queue(stage, k);
                let run = shared.worker(stage, &queue, token).await?;
                Ok(tokio::spawn(run))
            }
        };
        let topology = self.topology.clone();
        let share = partitions::share_out(
            membership,
            probe,
            locks,
            topology,
            stage,
            start,
            stop.clone(),
        );
        tasks.spawn(async move { (format!("{stage} partitions"), share.await) });
        Ok(())
    }
}

impl Generation {
    async fn start(
        settings: &Settings,
        pool: &PgPool,
        options: &PipelineOptions,
    ) -> anyhow::Result<Self> {
        let topology = Topology::of(&settings.amqp);
        let connection = Arc::new(messaging::connect(&settings.amqp, "pipeline").await?);
        topology.declare(&connection).await?;
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let pools = Pools::new(pool.clone());
        let shared = Shared {
            settings: settings.clone(),
            pool: pool.clone(),
            connection: connection.clone(),
            topology: topology.clone(),
            pools,
            options: options.clone(),
        };
        for &stage in &options.stages {
            match topology.partitions() {
                1 => shared.spawn_competing(stage, &stop, &mut tasks).await?,
                _ => shared.spawn_partitioned(stage, &stop, &mut tasks).await?,
            }
            tracing::debug!(%stage, "stage workers started");
        }
        if options.relay {
            let publisher = Publisher::open(&connection, &topology).await?;
            let (relay_pool, relay_settings, token) =
                (pool.clone(), settings.relay.clone(), stop.clone());
            tasks.spawn(async move {
                let result = relay::run(relay_pool, publisher, relay_settings, token).await;
                ("relay".to_owned(), result)
            });
            let publisher = Publisher::open(&connection, &topology).await?;
            let (timer_pool, timer_settings, token) =
                (pool.clone(), settings.scheduler.clone(), stop.clone());
            tasks.spawn(async move {
                let result = scheduler::run(timer_pool, publisher, timer_settings, token).await;
                ("scheduler".to_owned(), result)
            });
        }
        Ok(Self {
            connection,
            stop,
            tasks,
        })
    }

    /// Tells `health` this generation runs.
    fn report(&self, health: &PipelineHealth) {
        health.running(self.connection.status().clone(), self.tasks.len());
    }

    /// The first task to end (an error, or a task that stopped without being told to).
    async fn next_exit(&mut self) -> (String, anyhow::Result<()>) {
        match self.tasks.join_next().await {
            Some(Ok(exit)) => exit,
            Some(Err(join)) => ("task".to_owned(), Err(anyhow::Error::new(join))),
            None => std::future::pending().await,
        }
    }

    /// Stops every task (letting in-flight deliveries finish, for at most [`STOP_TIMEOUT`]; any
    /// task still running then is aborted, and its unacknowledged deliveries return to their
    /// queues) and closes the connection.
    async fn stop(mut self) {
        self.stop.cancel();
        let joined = tokio::time::timeout(STOP_TIMEOUT, async {
            while let Some(joined) = self.tasks.join_next().await {
                if let Ok((task, Err(error))) = joined {
                    tracing::debug!(%task, error = %format!("{error:#}"), "task ended with an error");
                }
            }
        })
        .await;
        if joined.is_err() {
            tracing::warn!("tasks did not stop in time; aborting them");
            self.tasks.abort_all();
        }
        // Every task has finished (and acknowledged what it handled), so a connection that does
        // not close cleanly loses nothing; the broker drops it either way.
        if self.connection.status().connected() {
            let close = self.connection.close(200, "shutting down".into());
            match tokio::time::timeout(Duration::from_secs(5), close).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%error, "closing the broker connection"),
                Err(_) => tracing::debug!("closing the broker connection timed out"),
            }
        }
    }
}
