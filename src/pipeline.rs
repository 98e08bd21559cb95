//! Starting and stopping a pipeline: the chosen stage workers and the outbox relay, in one
//! process, sharing one broker connection and one database pool.

use anyhow::Context;
use lapin::Connection;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::messaging::{self, InboundStream, Publisher, Topology};
use crate::settings::Settings;
use crate::stages::StageName;
use crate::worker::{Faults, Worker, WorkerError};
use crate::{relay, scheduler};

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

/// A running pipeline.
pub struct Pipeline {
    connection: Connection,
    shutdown: CancellationToken,
    tasks: JoinSet<(String, anyhow::Result<()>)>,
}

impl Pipeline {
    /// Declares the topology and starts the workers and relay. The database must be migrated.
    pub async fn start(
        settings: &Settings,
        pool: PgPool,
        options: PipelineOptions,
    ) -> anyhow::Result<Self> {
        let topology = Topology::new(&settings.amqp.namespace);
        let connection = messaging::connect(&settings.amqp, "pipeline").await?;
        let channel = connection.create_channel().await?;
        topology.declare(&channel).await?;
        channel.close(200, "declared".into()).await?;
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for stage in options.stages {
            let queue = topology.stage_queue(stage);
            let stream = InboundStream::open(&connection, &queue, settings.amqp.prefetch).await?;
            let publisher = Publisher::open(&connection, &topology)
                .await
                .context("opening a publisher")?;
            let worker = Worker::new(
                stage.build(&settings.stages),
                pool.clone(),
                publisher,
                options.faults.clone(),
            );
            let token = shutdown.clone();
            tasks.spawn(async move {
                let result = worker.run(stream, token).await.map_err(|e| match e {
                    WorkerError::Failed(e) => e,
                    crash => anyhow::Error::new(crash),
                });
                (stage.to_string(), result)
            });
            tracing::info!(%stage, %queue, "stage worker started");
        }
        if options.relay {
            let publisher = Publisher::open(&connection, &topology).await?;
            let (relay_pool, relay_settings, token) =
                (pool.clone(), settings.relay.clone(), shutdown.clone());
            tasks.spawn(async move {
                let result = relay::run(relay_pool, publisher, relay_settings, token).await;
                ("relay".to_owned(), result)
            });
            let publisher = Publisher::open(&connection, &topology).await?;
            let (pool, timer_settings, token) =
                (pool.clone(), settings.scheduler.clone(), shutdown.clone());
            tasks.spawn(async move {
                let result = scheduler::run(pool, publisher, timer_settings, token).await;
                ("scheduler".to_owned(), result)
            });
        }
        Ok(Self {
            connection,
            shutdown,
            tasks,
        })
    }

    /// A token that stops the pipeline when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the shutdown token is cancelled or a task stops on its own. A task that stops
    /// on its own is an error: the caller should shut down and let the process be restarted.
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        tokio::select! {
            _ = self.shutdown.cancelled() => Ok(()),
            Some(joined) = self.tasks.join_next() => {
                let (task, result) = joined.context("a pipeline task panicked")?;
                result.with_context(|| format!("{task} stopped"))?;
                anyhow::bail!("{task} stopped unexpectedly")
            }
        }
    }

    /// Stops consuming, lets in-flight deliveries finish, then closes the connection. Returns
    /// the first error any task ended with.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((task, Err(error))) => {
                    tracing::warn!(%task, error = %format!("{error:#}"), "task ended with an error");
                    first_error.get_or_insert(error.context(task));
                }
                Err(join) => {
                    first_error.get_or_insert(anyhow::Error::new(join));
                }
            }
        }
        // Every task has finished (and acknowledged what it handled), so a connection that does
        // not close cleanly loses nothing; the broker drops it either way.
        if self.connection.status().connected()
            && let Err(error) = self.connection.close(200, "shutting down".into()).await
        {
            tracing::debug!(%error, "closing the broker connection");
        }
        first_error.map_or(Ok(()), Err)
    }
}
