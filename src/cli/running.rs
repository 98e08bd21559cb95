//! A pipeline process's parts, started and stopped together: the pipeline, the metrics and
//! health listener on `metrics.listen` (when set) and, when asked, the API on `review.listen`.
//! `run` and `demo` both start one.

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::pipeline::{Pipeline, PipelineOptions};
use crate::review::api;
use crate::settings::Settings;

/// A server task: it ends when the pipeline's shutdown token is cancelled.
type Server = JoinHandle<anyhow::Result<()>>;

/// The running pipeline and the servers beside it.
pub struct Running {
    /// The pipeline; its shutdown token stops the servers too.
    pub pipeline: Pipeline,
    servers: Vec<Server>,
}

impl Running {
    /// Starts the pipeline with `options`, then its metrics listener and, if `with_api`, the API.
    pub async fn start(
        settings: &Settings,
        pool: sqlx::PgPool,
        options: PipelineOptions,
        with_api: bool,
    ) -> anyhow::Result<Self> {
        // Before the pipeline starts: what is recorded before the recorder exists is lost.
        crate::metrics::install();
        let pipeline = Pipeline::start(settings, pool.clone(), options).await?;
        let shutdown = pipeline.shutdown_token();
        let health = Health::new(pool.clone(), Some(pipeline.health()));
        let mut servers: Vec<Server> = start_metrics(settings, health, shutdown.clone())
            .await?
            .into_iter()
            .collect();
        if with_api {
            let state = super::api_state(settings, pool).with_pipeline(pipeline.health());
            servers.push(start_api(settings, state, shutdown).await?);
        }
        Ok(Self { pipeline, servers })
    }

    /// Stops the pipeline (in-flight deliveries finish) and waits for the servers to end.
    pub async fn stop(self) -> anyhow::Result<()> {
        let closed = self.pipeline.shutdown().await;
        for server in self.servers {
            server.await??;
        }
        closed
    }
}

/// Serves the process's metrics and health on `metrics.listen`, when it is set.
pub async fn start_metrics(
    settings: &Settings,
    health: Health,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<Server>> {
    let address = settings.metrics.listen.trim();
    if address.is_empty() {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on metrics.listen {address}"))?;
    Ok(Some(tokio::spawn(crate::metrics::serve(
        listener, health, shutdown,
    ))))
}

/// Serves the API on `review.listen`, which other processes may share.
pub async fn start_api(
    settings: &Settings,
    state: api::ApiState,
    shutdown: CancellationToken,
) -> anyhow::Result<Server> {
    let listener = api::bind(&settings.review.listen)
        .with_context(|| format!("listening on review.listen {}", settings.review.listen))?;
    Ok(tokio::spawn(api::serve(listener, state, shutdown)))
}
