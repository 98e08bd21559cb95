//! A stage worker: takes batches of deliveries from the stage's queue and applies the
//! effectively-once rule to each batch.
//!
//! In one Postgres transaction per batch ([`batch`]): lock the batch's orders, record every
//! new message id in the inbox (a duplicate stops there), let the stage decide each delivery
//! against its order as recorded, and write every plan — state moves, records, stock,
//! documents, ledger, timers, outbox events, review cases — by set. Commit; publish the outbox
//! rows with pipelined confirms; mark them sent; then acknowledge the batch with one `multiple`
//! ack ([`settle`]). A crash anywhere leaves either nothing committed (the deliveries come
//! back) or committed rows the relay publishes.
//!
//! A batch that fails as a whole is split in halves and each half run again, down to the
//! single delivery, so one poisoned delivery does not hold up the others; what to do with a
//! delivery that still fails alone is a pure choice ([`policy`]): wait for the database, retry
//! through the delay queue, or open a review case.
//!
//! | module | what it does |
//! |---|---|
//! | [`delivery`] | reads a message once: inbox key, digest, event, order, span |
//! | [`triage`] | duplicates, and what goes straight to review, before any stage runs |
//! | [`batch`] | the batch's transaction |
//! | [`policy`] | retry or escalate, by failure and attempt |
//! | [`settle`] | publish, mark sent, acknowledge, defer |
//! | [`faults`] | faults injected by tests (only with the `faults` feature) |

pub mod batch;
pub mod delivery;
pub mod faults;
pub mod policy;
pub mod settle;
pub mod triage;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, warn};

pub use faults::Faults;

use crate::db;
use crate::domain::StageName;
use crate::messaging::{Inbound, InboundStream, Publisher};
use crate::settings::RetrySettings;
use crate::stages::Stage;

use batch::Transaction;
use delivery::Delivery;
use policy::{Action, Failure};

/// The longest a worker waits between checks while the database is unreachable.
const DATABASE_BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Why a worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A fault injected by [`Faults`]: the worker stopped as if the process had died.
    #[error("simulated crash after commit in stage {0}")]
    SimulatedCrash(StageName),
    /// The broker or the database failed in a way the worker cannot carry on from.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// How a worker takes its deliveries and handles what it cannot process now.
#[derive(Debug, Clone)]
pub struct FailurePolicy {
    /// Retries of transient failures.
    pub retry: RetrySettings,
    /// The stage's delay queue.
    pub delay_queue: String,
    /// Messages larger than this go to review unparsed.
    pub max_message_bytes: usize,
    /// Most deliveries handled in one transaction.
    pub batch_size: usize,
    /// How long a batch may wait to fill once it has its first delivery, when the pipeline is
    /// busy.
    pub batch_linger: Duration,
    /// The delivery terms of orders that name none (reference data every batch may need).
    pub default_terms: String,
}

/// The database pools of one process's workers.
#[derive(Clone)]
pub struct Pools {
    /// Every business write: the stages' transactions.
    pub work: PgPool,
    /// Marking outbox rows sent (see [`db::bookkeeping_pool`]).
    pub bookkeeping: PgPool,
}

impl Pools {
    /// The work pool and a bookkeeping pool beside it.
    pub fn new(work: PgPool) -> Self {
        let bookkeeping = db::bookkeeping_pool(&work);
        Self { work, bookkeeping }
    }
}

/// A worker for one stage.
pub struct Worker {
    stage: Arc<dyn Stage>,
    pools: Pools,
    publisher: Publisher,
    faults: Faults,
    policy: FailurePolicy,
    shutdown: CancellationToken,
}

impl Worker {
    /// A worker for `stage` that works on `pools` and publishes with `publisher`.
    pub fn new(
        stage: Arc<dyn Stage>,
        pools: &Pools,
        publisher: Publisher,
        faults: Faults,
        policy: FailurePolicy,
    ) -> Self {
        Self {
            stage,
            pools: pools.clone(),
            publisher,
            faults,
            policy,
            shutdown: CancellationToken::new(),
        }
    }

    /// Handles deliveries until `shutdown` is cancelled, then finishes the batch in hand, stops
    /// consuming and closes its channels (unacknowledged deliveries return to the queue).
    pub async fn run(
        mut self,
        mut stream: InboundStream,
        shutdown: CancellationToken,
    ) -> Result<(), WorkerError> {
        self.shutdown = shutdown.clone();
        let stage = self.stage.name();
        let mut linger = Duration::ZERO;
        loop {
            let max = self.policy.batch_size;
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                next = stream.next_batch(max, linger) => next,
            };
            let batch = match next {
                Some(batch) => batch?,
                None => {
                    return Err(anyhow::anyhow!("the broker closed the {stage} consumer").into());
                }
            };
            // A batch of more than one shows load: let the next one fill up a little.
            linger = match batch.len() {
                1 => Duration::ZERO,
                _ => self.policy.batch_linger,
            };
            if let Err(error) = self.process_batch(batch).await {
                let _ = stream.close().await;
                let _ = self.publisher.close().await;
                return Err(error);
            }
        }
        stream.close().await?;
        self.publisher.close().await?;
        Ok(())
    }

    fn transaction(&self) -> Transaction<'_> {
        Transaction {
            stage: self.stage.as_ref(),
            retry: &self.policy.retry,
            default_terms: &self.policy.default_terms,
            faults: &self.faults,
        }
    }

    /// Reads a batch and handles it.
    async fn process_batch(&self, batch: Vec<Inbound>) -> Result<(), WorkerError> {
        let stage = self.stage.name();
        let max = self.policy.max_message_bytes;
        let deliveries = batch
            .into_iter()
            .map(|inbound| Delivery::read(inbound, stage, max))
            .collect();
        self.process(deliveries).await
    }

    /// Runs `deliveries` in one transaction and settles them; if the transaction fails, splits
    /// them in halves and runs each, down to the single delivery.
    async fn process(&self, deliveries: Vec<Delivery>) -> Result<(), WorkerError> {
        let started = std::time::Instant::now();
        match self.transaction().run(&self.pools.work, &deliveries).await {
            Ok(committed) => {
                self.crash_if_told(&deliveries)?;
                let size = deliveries.len();
                let committed_in = started.elapsed();
                settle::settle(self, deliveries, committed).await?;
                crate::metrics::batch(self.stage.name(), size, started.elapsed());
                tracing::debug!(
                    stage = %self.stage.name(),
                    size,
                    transaction_ms = committed_in.as_millis() as u64,
                    settled_ms = (started.elapsed() - committed_in).as_millis() as u64,
                    "batch done"
                );
                Ok(())
            }
            Err(error) => {
                let failure = policy::classify(&error);
                if failure == Failure::DatabaseDown {
                    self.pause_for_database(&format!("{error:#}")).await;
                    return settle::requeue_all(&deliveries).await;
                }
                if deliveries.len() == 1 {
                    let delivery = deliveries.into_iter().next().expect("one delivery");
                    return self.failed_alone(delivery, failure).await;
                }
                warn!(error = %format!("{error:#}"), size = deliveries.len(), "batch failed; splitting it");
                let mut first = deliveries;
                let second = first.split_off(first.len() / 2);
                Box::pin(self.process(first)).await?;
                Box::pin(self.process(second)).await
            }
        }
    }

    /// Stops here, as a crashed process would, when a fault says so.
    fn crash_if_told(&self, deliveries: &[Delivery]) -> Result<(), WorkerError> {
        let stage = self.stage.name();
        let crash = deliveries
            .iter()
            .filter_map(Delivery::order_id)
            .any(|order| self.faults.crashes(stage, order.as_str()));
        match crash {
            true => Err(WorkerError::SimulatedCrash(stage)),
            false => Ok(()),
        }
    }

    /// A delivery that could not be handled, even alone: retry it later, or open a case.
    async fn failed_alone(&self, delivery: Delivery, failure: Failure) -> Result<(), WorkerError> {
        let attempt = delivery.inbound.attempt();
        let span = delivery.span.clone();
        let action = policy::on_failure(
            failure.clone(),
            attempt,
            &self.policy.retry,
            batch::jitter(),
        );
        async {
            match action {
                Action::PauseAndRequeue => {
                    self.pause_for_database("database unavailable").await;
                    delivery.inbound.requeue().await?;
                }
                Action::Retry { attempt, delay_ms } => {
                    warn!(failure = ?failure, attempt, delay_ms, "failed; retrying later");
                    delivery
                        .inbound
                        .defer(&self.publisher, &self.policy.delay_queue, attempt, delay_ms)
                        .await?;
                }
                Action::Escalate(escalation) => self.escalate_alone(delivery, escalation).await?,
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Opens a review case for a delivery on its own, then publishes and acknowledges. Should
    /// even that fail, the delivery goes back to its queue once the database answers.
    async fn escalate_alone(
        &self,
        delivery: Delivery,
        escalation: crate::domain::Escalation,
    ) -> Result<(), WorkerError> {
        match self
            .transaction()
            .escalate(&self.pools.work, &delivery, escalation)
            .await
        {
            Ok(committed) => settle::settle(self, vec![delivery], committed).await,
            Err(error) => {
                warn!(error = %format!("{error:#}"), "could not open a review case; waiting for the database");
                self.wait_for_database().await;
                delivery.inbound.requeue().await?;
                Ok(())
            }
        }
    }

    /// Says why the worker stops taking work, then waits for the database.
    async fn pause_for_database(&self, error: &str) {
        warn!(%error, "database unavailable; pausing until it answers");
        self.wait_for_database().await;
    }

    /// Waits until the database answers, backing off, or until shutdown.
    async fn wait_for_database(&self) {
        let mut backoff = Duration::from_millis(250);
        loop {
            if sqlx::query("SELECT 1")
                .execute(&self.pools.work)
                .await
                .is_ok()
            {
                tracing::info!("database answers again");
                return;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(DATABASE_BACKOFF_CAP);
        }
    }
}
