//! A stage worker: takes deliveries from the stage's queue and applies the effectively-once rule.
//!
//! For each delivery, in one Postgres transaction: record the message id in the inbox (a
//! duplicate stops here), let the stage move the order along an allowed transition, write its
//! record and put the next event in the outbox. Commit; publish the outbox rows with confirms;
//! mark them sent; only then acknowledge the delivery. A crash anywhere leaves either nothing
//! committed (the delivery comes back) or committed rows the relay publishes.
//!
//! What a stage cannot finish is escalated in the same transaction: the stage's work is rolled
//! back to a savepoint, a review case keeps the message byte for byte, and a
//! `review.case_opened` event goes out through the outbox.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::{Acquire, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span, warn};
use uuid::Uuid;

use crate::domain::events::ReviewCaseOpened;
use crate::domain::{EventType, OrderId};
use crate::envelope::{Envelope, EnvelopeError, TraceParent, WireEvent};
use crate::messaging::{Inbound, InboundStream, Publisher};
use crate::settings::RetrySettings;
use crate::stages::{
    Escalation, Handled, IncomingEvent, Role, Stage, StageContext, StageError, StageName,
};
use crate::{db, relay};

/// The longest a worker waits between checks while the database is unreachable.
const DATABASE_BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Decides whether to simulate a crash right after a stage's commit, before it publishes.
pub type CrashHook = Arc<dyn Fn(StageName, &str) -> bool + Send + Sync>;

/// Decides whether to fail a delivery transiently: called with the stage, order id and attempt.
pub type TransientHook = Arc<dyn Fn(StageName, &str, u32) -> bool + Send + Sync>;

/// Faults injected on purpose, to prove recovery in tests. Empty in production.
#[derive(Clone, Default)]
pub struct Faults {
    /// Called before each stage runs; `true` fails the delivery as if the database had refused
    /// the transaction (a transient failure, retried through the delay queue).
    pub fail_transiently: Option<TransientHook>,
    /// Called with the stage and order id after every commit; `true` makes the worker stop
    /// there as if the process died: nothing published, the delivery not acknowledged.
    pub crash_after_commit: Option<CrashHook>,
}

/// Why a worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A fault injected by [`Faults::crash_after_commit`].
    #[error("simulated crash after commit in stage {0}")]
    SimulatedCrash(StageName),
    /// The broker or the database failed in a way the worker cannot carry on from.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// How a worker handles what it cannot process now.
#[derive(Debug, Clone)]
pub struct FailurePolicy {
    /// Retries of transient failures.
    pub retry: RetrySettings,
    /// The stage's delay queue.
    pub delay_queue: String,
    /// Messages larger than this go to review unparsed.
    pub max_message_bytes: usize,
}

/// A worker for one stage.
pub struct Worker {
    stage: Arc<dyn Stage>,
    pool: PgPool,
    publisher: Publisher,
    faults: Faults,
    policy: FailurePolicy,
    shutdown: CancellationToken,
}

/// What a stage emitted, and the refusal it made, if any.
type StageOutput = (Vec<(i64, WireEvent)>, Option<Escalation>);

/// What happened to one delivery inside its transaction.
enum Committed {
    /// The work was committed; these outbox rows are to be published.
    Emitted(Vec<(i64, WireEvent)>),
    /// The delivery is a transient failure; it goes back to the queue.
    Retry(anyhow::Error),
}

impl Worker {
    /// A worker for `stage` that publishes with `publisher`.
    pub fn new(
        stage: Arc<dyn Stage>,
        pool: PgPool,
        publisher: Publisher,
        faults: Faults,
        policy: FailurePolicy,
    ) -> Self {
        Self {
            stage,
            pool,
            publisher,
            faults,
            policy,
            shutdown: CancellationToken::new(),
        }
    }

    /// Handles deliveries until `shutdown` is cancelled, then finishes the one in hand, stops
    /// consuming and closes its channel (unacknowledged deliveries return to the queue).
    pub async fn run(
        mut self,
        mut stream: InboundStream,
        shutdown: CancellationToken,
    ) -> Result<(), WorkerError> {
        self.shutdown = shutdown.clone();
        let stage = self.stage.name();
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                next = stream.next() => next,
            };
            let inbound = match next {
                Some(inbound) => inbound?,
                None => {
                    return Err(anyhow::anyhow!("the broker closed the {stage} consumer").into());
                }
            };
            if let Err(error) = self.process(&inbound).await {
                let _ = stream.close().await;
                return Err(error);
            }
        }
        stream.close().await?;
        Ok(())
    }

    async fn process(&self, inbound: &Inbound) -> Result<(), WorkerError> {
        if inbound.body().len() > self.policy.max_message_bytes {
            let key = message_key(inbound, None);
            let span = info_span!("delivery", stage = %self.stage.name(), order_id = "-", message_id = %key);
            let too_large = Escalation::new(
                "message_too_large",
                format!(
                    "{} bytes, over the limit of {} (amqp.max_message_bytes)",
                    inbound.body().len(),
                    self.policy.max_message_bytes
                ),
                Role::Operations,
            );
            return self
                .escalate_alone(inbound, &key, None, too_large)
                .instrument(span)
                .await;
        }
        let decoded = Envelope::decode(inbound.body());
        let key = message_key(inbound, decoded.as_ref().ok().map(|(e, _)| e));
        let order_id = decoded.as_ref().ok().and_then(|(e, _)| e.order_id());
        let span = info_span!(
            "delivery",
            stage = %self.stage.name(),
            order_id = %order_id.as_ref().map_or("-", |id| id.as_str()),
            message_id = %key,
            attempt = inbound.attempt(),
        );
        self.process_decoded(inbound, decoded, &key, order_id.as_ref())
            .instrument(span)
            .await
    }

    async fn process_decoded(
        &self,
        inbound: &Inbound,
        decoded: Result<(Envelope, EventType), EnvelopeError>,
        key: &str,
        order_id: Option<&OrderId>,
    ) -> Result<(), WorkerError> {
        let emitted = match self.transact(inbound, decoded, key, order_id).await {
            Ok(Committed::Emitted(emitted)) => emitted,
            Ok(Committed::Retry(error)) | Err(error) => {
                return self.failed_transiently(inbound, key, order_id, error).await;
            }
        };
        if let Some(hook) = &self.faults.crash_after_commit {
            let order = order_id.map_or("", |id| id.as_str());
            if hook(self.stage.name(), order) {
                return Err(WorkerError::SimulatedCrash(self.stage.name()));
            }
        }
        self.publish(&emitted).await?;
        inbound.ack().await?;
        Ok(())
    }

    /// A transient failure: while the database is unreachable, wait for it and return the
    /// delivery to its queue (no attempt is used up); otherwise retry through the delay queue,
    /// and after the last attempt escalate.
    async fn failed_transiently(
        &self,
        inbound: &Inbound,
        key: &str,
        order_id: Option<&OrderId>,
        error: anyhow::Error,
    ) -> Result<(), WorkerError> {
        let error_text = format!("{error:#}");
        if database_unavailable(&error) {
            warn!(error = %error_text, "database unavailable; pausing until it answers");
            self.wait_for_database().await;
            inbound.requeue().await?;
            return Ok(());
        }
        let attempt = inbound.attempt();
        if attempt >= self.policy.retry.max_attempts {
            let exhausted = Escalation::new(
                "retries_exhausted",
                format!("failed {attempt} times; last error: {error_text}"),
                Role::Operations,
            );
            return self.escalate_alone(inbound, key, order_id, exhausted).await;
        }
        let jitter = (Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
        let delay = self.policy.retry.delay_ms(attempt, jitter);
        warn!(error = %error_text, attempt, delay_ms = delay, "transient failure; retrying later");
        inbound
            .defer(
                &self.publisher,
                &self.policy.delay_queue,
                attempt + 1,
                delay,
            )
            .await?;
        Ok(())
    }

    /// Waits until the database answers, backing off, or until shutdown.
    async fn wait_for_database(&self) {
        let mut backoff = Duration::from_millis(250);
        loop {
            if sqlx::query("SELECT 1").execute(&self.pool).await.is_ok() {
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

    /// Opens a review case for a delivery without running the stage (a message too large to
    /// read, or one whose attempts ran out), then publishes and acknowledges.
    async fn escalate_alone(
        &self,
        inbound: &Inbound,
        key: &str,
        order_id: Option<&OrderId>,
        escalation: Escalation,
    ) -> Result<(), WorkerError> {
        let result: anyhow::Result<Vec<(i64, WireEvent)>> = async {
            let stage = self.stage.name();
            let mut tx = self.pool.begin().await?;
            if let Some(id) = order_id {
                db::orders::lock(&mut tx, id.as_str()).await?;
            }
            let mut emitted = Vec::new();
            if db::inbox::record(&mut tx, stage.as_str(), key).await? {
                let trace = inbound.traceparent();
                emitted.push(
                    escalate(&mut tx, stage, inbound, key, order_id, &escalation, trace).await?,
                );
            }
            tx.commit().await?;
            Ok(emitted)
        }
        .await;
        match result {
            Ok(emitted) => {
                self.publish(&emitted).await?;
                inbound.ack().await?;
                Ok(())
            }
            Err(error) => {
                warn!(error = %format!("{error:#}"), "could not open a review case; waiting for the database");
                self.wait_for_database().await;
                inbound.requeue().await?;
                Ok(())
            }
        }
    }

    /// Runs the delivery's transaction. `Err` means the transaction itself failed.
    async fn transact(
        &self,
        inbound: &Inbound,
        decoded: Result<(Envelope, EventType), EnvelopeError>,
        key: &str,
        order_id: Option<&OrderId>,
    ) -> anyhow::Result<Committed> {
        let stage = self.stage.name();
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        if let Some(id) = order_id {
            db::orders::lock(&mut tx, id.as_str()).await?;
        }
        if !db::inbox::record(&mut tx, stage.as_str(), key).await? {
            tx.commit().await?;
            tracing::debug!("duplicate delivery; no second effect");
            return Ok(Committed::Emitted(Vec::new()));
        }
        let trace = inbound.traceparent();
        let outcome = match decoded {
            Err(error) => Err(poison(&error)),
            Ok((envelope, event_type)) if !stage.input_events().contains(&event_type) => {
                Err(Escalation::new(
                    "unexpected_event_type",
                    format!("{stage} does not consume {event_type} ({})", envelope.id),
                    Role::Operations,
                ))
            }
            Ok((envelope, event_type)) => {
                if let Some(hook) = &self.faults.fail_transiently {
                    let order = order_id.map_or("", |id| id.as_str());
                    if hook(stage, order, inbound.attempt()) {
                        return Ok(Committed::Retry(anyhow::anyhow!(
                            "injected transient failure"
                        )));
                    }
                }
                let event = IncomingEvent {
                    envelope,
                    event_type,
                };
                match self.run_stage(&mut tx, key, trace, &event).await? {
                    Ok((emitted, None)) => Ok(emitted),
                    Ok((mut emitted, Some(refusal))) => {
                        let case =
                            escalate(&mut tx, stage, inbound, key, order_id, &refusal, trace)
                                .await?;
                        emitted.push(case);
                        Ok(emitted)
                    }
                    Err(StageError::Escalate(escalation)) => Err(escalation),
                    Err(StageError::Transient(error)) => return Ok(Committed::Retry(error)),
                }
            }
        };
        let emitted = match outcome {
            Ok(emitted) => emitted,
            Err(escalation) => {
                let case =
                    escalate(&mut tx, stage, inbound, key, order_id, &escalation, trace).await?;
                vec![case]
            }
        };
        tx.commit().await.context("committing")?;
        Ok(Committed::Emitted(emitted))
    }

    /// Runs the stage inside a savepoint, so an escalation can undo its partial work. A business
    /// refusal keeps the stage's work (its record of the refusal) and is returned alongside.
    async fn run_stage(
        &self,
        conn: &mut PgConnection,
        key: &str,
        trace: Option<TraceParent>,
        event: &IncomingEvent,
    ) -> anyhow::Result<Result<StageOutput, StageError>> {
        let mut savepoint = conn.begin().await?;
        let mut ctx = StageContext::new(&mut savepoint, self.stage.name(), key.to_owned(), trace);
        let result = self.stage.handle(&mut ctx, event).await;
        let emitted = ctx.into_emitted();
        match result {
            Ok(Handled::Escalated(refusal)) => {
                savepoint.commit().await?;
                Ok(Ok((emitted, Some(refusal))))
            }
            Ok(handled) => {
                savepoint.commit().await?;
                tracing::info!(?handled, "handled");
                Ok(Ok((emitted, None)))
            }
            Err(error) => {
                savepoint.rollback().await?;
                Ok(Err(error))
            }
        }
    }

    /// Publishes committed outbox rows and marks them sent.
    async fn publish(&self, emitted: &[(i64, WireEvent)]) -> anyhow::Result<()> {
        relay::publish_committed(&self.pool, &self.publisher, emitted).await
    }
}

/// The id the inbox deduplicates on: the envelope's id, else the AMQP message id, else a hash of
/// the body (so even an unreadable message is escalated only once).
fn message_key(inbound: &Inbound, envelope: Option<&Envelope>) -> String {
    if let Some(envelope) = envelope.filter(|e| !e.id.is_empty()) {
        return envelope.id.clone();
    }
    if let Some(id) = inbound.message_id().filter(|id| !id.is_empty()) {
        return id.to_owned();
    }
    format!("sha256:{}", crate::digest::sha256_hex(inbound.body()))
}

/// The escalation for a message that is not a usable event.
fn poison(error: &EnvelopeError) -> Escalation {
    let reason = match error {
        EnvelopeError::NotUtf8(_) => "invalid_utf8",
        EnvelopeError::NotCloudEvent(_) | EnvelopeError::SpecVersion(_) => "not_a_cloudevent",
        EnvelopeError::UnknownType(_) => "unknown_event_type",
        EnvelopeError::BadPayload { .. } | EnvelopeError::SubjectMismatch { .. } => {
            "invalid_payload"
        }
    };
    Escalation::new(reason, error.to_string(), Role::Operations)
}

/// Opens a review case for the delivery and puts a `review.case_opened` event in the outbox.
async fn escalate(
    conn: &mut PgConnection,
    stage: StageName,
    inbound: &Inbound,
    key: &str,
    order_id: Option<&OrderId>,
    escalation: &Escalation,
    trace: Option<TraceParent>,
) -> anyhow::Result<(i64, WireEvent)> {
    let case_id = db::review::open(
        conn,
        db::review::NewCase {
            order_id: order_id.map(|id| id.as_str()),
            stage: stage.as_str(),
            reason: escalation.reason,
            detail: &escalation.detail,
            required_role: escalation.role.as_str(),
            original_body: inbound.body(),
            original_properties: inbound.properties_json(),
            message_key: key,
        },
    )
    .await
    .context("opening a review case")?;
    warn!(
        case_id,
        reason = escalation.reason,
        role = escalation.role.as_str(),
        "escalated to review"
    );
    let opened = ReviewCaseOpened {
        case_id,
        order_id: order_id
            .cloned()
            .unwrap_or_else(|| OrderId::parse("unknown").expect("a valid id")),
        stage: stage.as_str().into(),
        reason: escalation.reason.into(),
        detail: escalation.detail.clone(),
        required_role: escalation.role.as_str().into(),
    };
    let event = WireEvent::new(&format!("fulfilment/{stage}"), &opened, trace.as_ref());
    let id = db::outbox::insert(conn, &event).await?;
    Ok((id, event))
}

/// Whether an error means the database cannot be reached (as opposed to a failed statement).
fn database_unavailable(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| match cause.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => true,
            Some(sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed) => true,
            Some(sqlx::Error::Database(db)) => db
                .code()
                .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
            _ => false,
        })
}
