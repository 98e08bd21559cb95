//! Whether this process is alive, and whether it is ready for work, as orchestrators and load
//! balancers ask (`GET /health/live`, `GET /health/ready`).
//!
//! *Live* means the process answers at all: restarting it would not help otherwise. *Ready*
//! means it can do its work now: the database answers, and, where the process runs a pipeline,
//! it is connected to the broker with every worker running. Readiness names the part that
//! fails, so an operator reading a 503 knows where to look.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::ConnectionStatus;
use serde::Serialize;
use sqlx::PgPool;

/// How long the database has to answer a readiness check.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// The pipeline's side of readiness, kept up to date by its supervisor.
#[derive(Clone, Default)]
pub struct PipelineHealth {
    state: Arc<Mutex<PipelineState>>,
}

#[derive(Clone, Default)]
enum PipelineState {
    /// Not yet connected.
    #[default]
    Starting,
    /// Connected, with these tasks started on the connection.
    Running {
        connection: ConnectionStatus,
        tasks: usize,
    },
    /// A task ended or the connection failed; the supervisor is reconnecting.
    Restarting(String),
    /// Shut down.
    Stopped,
}

impl PipelineHealth {
    /// A new generation of tasks runs on `connection`.
    pub fn running(&self, connection: ConnectionStatus, tasks: usize) {
        *self.lock() = PipelineState::Running { connection, tasks };
    }

    /// The pipeline is restarting on a new connection, for this reason.
    pub fn restarting(&self, why: impl Into<String>) {
        *self.lock() = PipelineState::Restarting(why.into());
    }

    /// The pipeline has stopped.
    pub fn stopped(&self) {
        *self.lock() = PipelineState::Stopped;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PipelineState> {
        // A poisoned lock only means a panic while holding it; the state is still readable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The broker check and the workers check, as they stand.
    fn checks(&self) -> (Check, Check) {
        match self.lock().clone() {
            PipelineState::Starting => (
                Check::failing("connecting to the broker"),
                Check::failing("not started"),
            ),
            PipelineState::Running { connection, tasks } => match connection.connected() {
                true => (Check::ok(), Check::ok_with(format!("{tasks} running"))),
                false => (
                    Check::failing("the connection to the broker is lost"),
                    Check::failing("stopped with the connection"),
                ),
            },
            PipelineState::Restarting(why) => (
                Check::failing(format!("reconnecting: {why}")),
                Check::failing("restarting"),
            ),
            PipelineState::Stopped => (Check::failing("stopped"), Check::failing("stopped")),
        }
    }
}

/// One part of readiness.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    /// Whether the part is fit for work.
    pub ok: bool,
    /// What was found, when there is something to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Check {
    fn ok() -> Self {
        Self {
            ok: true,
            detail: None,
        }
    }

    fn ok_with(detail: String) -> Self {
        Self {
            ok: true,
            detail: Some(detail),
        }
    }

    fn failing(detail: impl Into<String>) -> Self {
        Self {
            ok: false,
            detail: Some(detail.into()),
        }
    }
}

/// The answer to `GET /health/ready`.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// Whether every check passed.
    pub ready: bool,
    /// The process, to tell processes sharing one port apart.
    pub pid: u32,
    /// The database: does it answer a query?
    pub database: Check,
    /// The broker connection, when the process runs a pipeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<Check>,
    /// The stage workers, relay and scheduler, when the process runs a pipeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<Check>,
}

/// What readiness looks at in one process.
#[derive(Clone)]
pub struct Health {
    pool: PgPool,
    pipeline: Option<PipelineHealth>,
}

impl Health {
    /// Readiness over `pool`, and over `pipeline` when the process runs one.
    pub fn new(pool: PgPool, pipeline: Option<PipelineHealth>) -> Self {
        Self { pool, pipeline }
    }

    /// Checks every part now.
    pub async fn readiness(&self) -> Readiness {
        let database = database(&self.pool).await;
        let (broker, workers) = match &self.pipeline {
            Some(pipeline) => {
                let (broker, workers) = pipeline.checks();
                (Some(broker), Some(workers))
            }
            None => (None, None),
        };
        let ready = database.ok
            && broker.as_ref().is_none_or(|c| c.ok)
            && workers.as_ref().is_none_or(|c| c.ok);
        Readiness {
            ready,
            pid: std::process::id(),
            database,
            broker,
            workers,
        }
    }
}

/// Whether the database answers `SELECT 1` in time, on a connection of the pool.
async fn database(pool: &PgPool) -> Check {
    let query = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool);
    match tokio::time::timeout(DATABASE_TIMEOUT, query).await {
        Ok(Ok(_)) => Check::ok(),
        Ok(Err(error)) => Check::failing(format!("the database does not answer: {error}")),
        Err(_) => Check::failing(format!(
            "the database did not answer within {} s",
            DATABASE_TIMEOUT.as_secs()
        )),
    }
}

/// The routes: `GET /health` and `/health/live` (200 while the process answers) and
/// `GET /health/ready` (200 when ready, else 503, with every check as JSON).
pub fn routes<S: Clone + Send + Sync + 'static>(health: Health) -> axum::Router<S> {
    use axum::routing::get;
    axum::Router::new()
        .route("/health", get(live))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(health)
}

async fn live() -> &'static str {
    "alive"
}

async fn ready(
    axum::extract::State(health): axum::extract::State<Health>,
) -> (axum::http::StatusCode, axum::Json<Readiness>) {
    let readiness = health.readiness().await;
    let status = match readiness.ready {
        true => axum::http::StatusCode::OK,
        false => axum::http::StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, axum::Json(readiness))
}
