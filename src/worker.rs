//! A stage worker: takes deliveries from the stage's queue and applies the effectively-once rule.
//!
//! For each delivery, in one Postgres transaction: record the message id in the inbox (a
//! duplicate stops here), let the stage move the order along an allowed transition, write its
//! record and put the next event in the outbox. Commit; publish the outbox rows with confirms;
//! mark them sent; only then acknowledge the delivery. A crash anywhere leaves either nothing
//! committed (the delivery comes back) or committed rows the relay publishes.
//!
//! Deliveries are handled in batches: whatever has already arrived (up to `amqp.batch_size`),
//! split by order into up to `amqp.transactions_per_batch` transactions run side by side. Each
//! transaction first runs without savepoints; if a delivery fails or escalates, it is rolled back
//! and run again with a savepoint per delivery, so that one delivery does not undo the others.
//! The batch's events are published with pipelined confirms and the batch is acknowledged with
//! one `multiple` ack. The rule holds per delivery exactly as
//! above; what batching saves is a commit, a confirm wait and an ack per delivery.
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

use crate::db::orders::StoredOrder;
use crate::domain::events::ReviewCaseOpened;
use crate::domain::{EventType, OrderId};
use crate::envelope::{Envelope, EnvelopeError, TraceParent, WireEvent};
use crate::messaging::{Inbound, InboundStream, Publisher};
use crate::settings::RetrySettings;
use crate::stages::{
    Escalation, Handled, IncomingEvent, ProductCache, Role, Stage, StageContext, StageError,
    StageName, TooEarly,
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
    /// Most deliveries handled in one transaction.
    pub batch_size: usize,
    /// Transactions a batch is split into, by order, and run side by side.
    pub transactions_per_batch: usize,
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
    pool: PgPool,
    /// Where outbox rows are marked sent (see [`db::bookkeeping_pool`]).
    bookkeeping: PgPool,
    publisher: Publisher,
    faults: Faults,
    policy: FailurePolicy,
    shutdown: CancellationToken,
}

/// What a stage emitted, and the refusal it made, if any.
type StageOutput = (Vec<(i64, WireEvent)>, Option<Escalation>);

/// One delivery of a batch, read and ready to be handled.
struct Pending {
    inbound: Inbound,
    decoded: Result<(Envelope, EventType), EnvelopeError>,
    key: String,
    order_id: Option<OrderId>,
    span: tracing::Span,
    /// Set when the delivery failed transiently inside the batch; it is retried on its own.
    retry: Option<anyhow::Error>,
}

impl Pending {
    fn read(inbound: Inbound, stage: StageName) -> Self {
        let decoded = Envelope::decode(inbound.body());
        let key = message_key(&inbound, decoded.as_ref().ok().map(|(e, _)| e));
        let order_id = decoded.as_ref().ok().and_then(|(e, _)| e.order_id());
        let span = info_span!(
            "delivery",
            stage = %stage,
            order_id = %order_id.as_ref().map_or("-", |id| id.as_str()),
            message_id = %key,
            attempt = inbound.attempt(),
        );
        Self {
            inbound,
            decoded,
            key,
            order_id,
            span,
            retry: None,
        }
    }
}

/// What happened to one delivery inside its transaction.
enum Committed {
    /// The work is done; these outbox rows are to be published once committed.
    Emitted(Vec<(i64, WireEvent)>),
    /// The stage cannot finish: its partial work must be undone, then a review case opened.
    Escalate(Escalation),
    /// The delivery is a transient failure; it goes back to the queue.
    Retry(anyhow::Error),
}

/// How a batch's transaction is run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No savepoints: the common case where every delivery goes through. If one does not, the
    /// whole transaction is rolled back and the batch run again [`Mode::Careful`]ly.
    Fast,
    /// A savepoint per delivery, so one delivery's failure or escalation undoes only its own work.
    Careful,
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
            pool: pools.work.clone(),
            bookkeeping: pools.bookkeeping.clone(),
            publisher,
            faults,
            policy,
            shutdown: CancellationToken::new(),
        }
    }

    /// Handles deliveries until `shutdown` is cancelled, then finishes the one in hand, stops
    /// consuming and closes its channels (unacknowledged deliveries return to the queue).
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
                next = stream.next_batch(self.policy.batch_size) => next,
            };
            let batch = match next {
                Some(batch) => batch?,
                None => {
                    return Err(anyhow::anyhow!("the broker closed the {stage} consumer").into());
                }
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

    /// Handles a batch: messages too large to read go to review on their own; the rest share
    /// one transaction, then their events are published and they are acknowledged together.
    async fn process_batch(&self, batch: Vec<Inbound>) -> Result<(), WorkerError> {
        let mut pending = Vec::with_capacity(batch.len());
        for inbound in batch {
            if inbound.body().len() > self.policy.max_message_bytes {
                self.reject_too_large(&inbound).await?;
            } else {
                pending.push(Pending::read(inbound, self.stage.name()));
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let mut groups = split_by_order(pending, self.policy.transactions_per_batch);
        let outcomes =
            futures_util::future::join_all(groups.iter_mut().map(|g| self.transact_batch(g))).await;
        let mut emitted = Vec::new();
        let mut committed = Vec::new();
        for (group, outcome) in groups.into_iter().zip(outcomes) {
            match outcome {
                Ok(rows) => {
                    emitted.extend(rows);
                    committed.extend(group);
                }
                // Settled one by one now, before the batch's `multiple` ack.
                Err(error) => self.batch_failed(&group, error).await?,
            }
        }
        if let Some(hook) = &self.faults.crash_after_commit {
            let done = committed.iter().filter(|p| p.retry.is_none());
            if done
                .map(|p| p.order_id.as_ref().map_or("", |id| id.as_str()))
                .any(|order| hook(self.stage.name(), order))
            {
                return Err(WorkerError::SimulatedCrash(self.stage.name()));
            }
        }
        self.publish(&emitted).await?;
        self.settle(committed).await
    }

    /// Acknowledges a batch whose work is committed and published: deliveries that failed
    /// transiently are retried (or escalated) one by one first, then one `multiple` ack covers
    /// the rest.
    async fn settle(&self, pending: Vec<Pending>) -> Result<(), WorkerError> {
        let mut last_done: Option<Inbound> = None;
        for mut item in pending {
            match item.retry.take() {
                Some(error) => {
                    self.failed_transiently(
                        &item.inbound,
                        &item.key,
                        item.order_id.as_ref(),
                        error,
                    )
                    .instrument(item.span.clone())
                    .await?;
                }
                // The `multiple` ack goes on the latest delivery (groups may interleave).
                None => {
                    let tag = item.inbound.delivery_tag();
                    if last_done
                        .as_ref()
                        .is_none_or(|last| tag > last.delivery_tag())
                    {
                        last_done = Some(item.inbound);
                    }
                }
            }
        }
        if let Some(last) = last_done {
            last.ack_through().await?;
        }
        Ok(())
    }

    /// The batch's transaction failed as a whole, so nothing of it was committed: every
    /// delivery is a transient failure.
    async fn batch_failed(
        &self,
        pending: &[Pending],
        error: anyhow::Error,
    ) -> Result<(), WorkerError> {
        let text = format!("{error:#}");
        if database_unavailable(&error) {
            self.pause_for_database(&text).await;
            for item in pending {
                item.inbound.requeue().await?;
            }
            return Ok(());
        }
        for item in pending {
            let error = anyhow::anyhow!("{text}");
            self.failed_transiently(&item.inbound, &item.key, item.order_id.as_ref(), error)
                .instrument(item.span.clone())
                .await?;
        }
        Ok(())
    }

    /// Sends a message too large to read to review, unparsed.
    async fn reject_too_large(&self, inbound: &Inbound) -> Result<(), WorkerError> {
        let key = message_key(inbound, None);
        let span =
            info_span!("delivery", stage = %self.stage.name(), order_id = "-", message_id = %key);
        let too_large = Escalation::new(
            "message_too_large",
            format!(
                "{} bytes, over the limit of {} (amqp.max_message_bytes)",
                inbound.body().len(),
                self.policy.max_message_bytes
            ),
            Role::Operations,
        );
        self.escalate_alone(inbound, &key, None, too_large)
            .instrument(span)
            .await
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
            self.pause_for_database(&error_text).await;
            inbound.requeue().await?;
            return Ok(());
        }
        let attempt = inbound.attempt();
        let too_early = error.downcast_ref::<TooEarly>();
        let max_attempts = match too_early {
            Some(_) => self.policy.retry.too_early_max_attempts,
            None => self.policy.retry.max_attempts,
        };
        if attempt >= max_attempts {
            let exhausted = match too_early {
                Some(early) => early.if_never.clone(),
                None => Escalation::new(
                    "retries_exhausted",
                    format!("failed {attempt} times; last error: {error_text}"),
                    Role::Operations,
                ),
            };
            return self.escalate_alone(inbound, key, order_id, exhausted).await;
        }
        let jitter = (Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
        let delay = self.policy.retry.delay_ms(attempt, jitter);
        if too_early.is_some() {
            tracing::info!(reason = %error_text, attempt, delay_ms = delay, "too early; trying again later");
        } else {
            warn!(error = %error_text, attempt, delay_ms = delay, "transient failure; retrying later");
        }
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

    /// Says why the worker stops taking work, then waits for the database.
    async fn pause_for_database(&self, error: &str) {
        warn!(%error, "database unavailable; pausing until it answers");
        self.wait_for_database().await;
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
            let mut emitted = Vec::new();
            let order = order_id.map(|id| id.as_str());
            if db::inbox::lock_and_record(&mut tx, order, stage.as_str(), key).await? {
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

    /// Runs the batch's transaction: first without savepoints, and if any delivery does not go
    /// through, again with one savepoint per delivery. `Err` means the transaction as a whole
    /// failed (nothing is committed).
    async fn transact_batch(
        &self,
        pending: &mut [Pending],
    ) -> anyhow::Result<Vec<(i64, WireEvent)>> {
        if let Some(emitted) = self.run_transaction(pending, Mode::Fast).await? {
            return Ok(emitted);
        }
        let emitted = self.run_transaction(pending, Mode::Careful).await?;
        emitted.context("a careful batch always completes")
    }

    /// One attempt at the batch's transaction. `None` when a fast attempt met a delivery that
    /// did not go through (and was rolled back).
    async fn run_transaction(
        &self,
        pending: &mut [Pending],
        mode: Mode,
    ) -> anyhow::Result<Option<Vec<(i64, WireEvent)>>> {
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let orders: Vec<&str> = pending
            .iter()
            .filter_map(|p| p.order_id.as_ref().map(|id| id.as_str()))
            .collect();
        db::orders::lock_all(&mut tx, &orders)
            .await
            .context("locking the batch's orders")?;
        let mut emitted = Vec::new();
        let mut products = ProductCache::new();
        for item in pending.iter_mut() {
            let span = item.span.clone();
            let rows = match mode {
                Mode::Fast => match self
                    .transact(&mut tx, &mut products, item)
                    .instrument(span)
                    .await
                {
                    Ok(Committed::Emitted(rows)) => rows,
                    Err(error) if database_unavailable(&error) => return Err(error),
                    Ok(_) | Err(_) => return Ok(None),
                },
                Mode::Careful => {
                    self.transact_carefully(&mut tx, &mut products, item)
                        .instrument(span)
                        .await?
                }
            };
            emitted.extend(rows);
        }
        tx.commit().await.context("committing")?;
        Ok(Some(emitted))
    }

    /// Handles a delivery inside a savepoint: a transient failure rolls back to it and marks the
    /// delivery for retry; an escalation rolls back the stage's work and opens a review case.
    async fn transact_carefully(
        &self,
        conn: &mut PgConnection,
        products: &mut ProductCache,
        item: &mut Pending,
    ) -> anyhow::Result<Vec<(i64, WireEvent)>> {
        let mut savepoint = conn.begin().await.context("starting a savepoint")?;
        match self.transact(&mut savepoint, products, item).await {
            Ok(Committed::Emitted(rows)) => {
                savepoint.commit().await?;
                Ok(rows)
            }
            Ok(Committed::Escalate(escalation)) => {
                savepoint.rollback().await?;
                self.escalate_undone(conn, item, &escalation).await
            }
            Ok(Committed::Retry(error)) => {
                savepoint.rollback().await?;
                item.retry = Some(error);
                Ok(Vec::new())
            }
            Err(error) if database_unavailable(&error) => Err(error),
            Err(error) => {
                savepoint.rollback().await?;
                item.retry = Some(error);
                Ok(Vec::new())
            }
        }
    }

    /// Opens a review case for a delivery whose stage work was just rolled back.
    async fn escalate_undone(
        &self,
        conn: &mut PgConnection,
        item: &Pending,
        escalation: &Escalation,
    ) -> anyhow::Result<Vec<(i64, WireEvent)>> {
        let stage = self.stage.name();
        let order_id = item.order_id.as_ref();
        let order = order_id.map(|id| id.as_str());
        if !db::inbox::lock_and_record(conn, order, stage.as_str(), &item.key).await? {
            return Ok(Vec::new());
        }
        let trace = item.inbound.traceparent();
        let case = escalate(
            conn,
            stage,
            &item.inbound,
            &item.key,
            order_id,
            escalation,
            trace,
        );
        Ok(vec![case.await?])
    }

    /// Handles one delivery inside the batch's transaction. `Err` means a statement failed.
    async fn transact(
        &self,
        conn: &mut PgConnection,
        products: &mut ProductCache,
        item: &mut Pending,
    ) -> anyhow::Result<Committed> {
        let stage = self.stage.name();
        let (inbound, key, order_id) = (&item.inbound, item.key.as_str(), item.order_id.as_ref());
        // The batch holds the order's lock already (see `run_transaction`).
        let order = order_id.map(|id| id.as_str());
        let (fresh, stored) = db::inbox::record_and_read(conn, stage.as_str(), key, order).await?;
        if !fresh {
            tracing::debug!("duplicate delivery; no second effect");
            return Ok(Committed::Emitted(Vec::new()));
        }
        let trace = inbound.traceparent();
        let outcome = match &item.decoded {
            Err(error) => Err(poison(error)),
            Ok((envelope, event_type)) if !stage.input_events().contains(event_type) => {
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
                    envelope: envelope.clone(),
                    event_type: *event_type,
                };
                match self
                    .run_stage(conn, products, stored, key, trace, &event)
                    .await
                {
                    Ok((emitted, None)) => Ok(emitted),
                    Ok((mut emitted, Some(refusal))) => {
                        let case =
                            escalate(conn, stage, inbound, key, order_id, &refusal, trace).await?;
                        emitted.push(case);
                        Ok(emitted)
                    }
                    Err(StageError::Escalate(escalation)) => {
                        return Ok(Committed::Escalate(escalation));
                    }
                    Err(StageError::Transient(error)) => return Ok(Committed::Retry(error)),
                    Err(StageError::TooEarly(early)) => {
                        return Ok(Committed::Retry(anyhow::Error::new(early)));
                    }
                }
            }
        };
        let emitted = match outcome {
            Ok(emitted) => emitted,
            Err(escalation) => {
                let case =
                    escalate(conn, stage, inbound, key, order_id, &escalation, trace).await?;
                vec![case]
            }
        };
        Ok(Committed::Emitted(emitted))
    }

    /// Runs the stage. A business refusal keeps the stage's work (its record of the refusal)
    /// and is returned alongside; an error leaves partial work the caller must roll back.
    async fn run_stage(
        &self,
        conn: &mut PgConnection,
        products: &mut ProductCache,
        order: Option<StoredOrder>,
        key: &str,
        trace: Option<TraceParent>,
        event: &IncomingEvent,
    ) -> Result<StageOutput, StageError> {
        let mut ctx = StageContext::new(conn, products, self.stage.name(), key.to_owned(), trace)
            .with_order(order);
        let result = self.stage.handle(&mut ctx, event).await;
        let emitted = ctx.into_emitted();
        match result? {
            Handled::Escalated(refusal) => Ok((emitted, Some(refusal))),
            handled => {
                tracing::debug!(?handled, "handled");
                Ok((emitted, None))
            }
        }
    }

    /// Publishes committed outbox rows and marks them sent.
    async fn publish(&self, emitted: &[(i64, WireEvent)]) -> anyhow::Result<()> {
        relay::publish_committed(&self.bookkeeping, &self.publisher, emitted).await
    }
}

/// Splits a batch into at most `parts` groups, every delivery about one order in the same group
/// and in the order received. Groups touch disjoint orders, so their transactions never wait for
/// each other's locks, and one order's deliveries are still handled one after another.
fn split_by_order(pending: Vec<Pending>, parts: usize) -> Vec<Vec<Pending>> {
    split_by_key(pending, parts, |item| {
        item.order_id
            .as_ref()
            .map_or(item.key.as_str(), |id| id.as_str())
    })
}

/// Splits `items` into at most `parts` non-empty groups by `key`, keeping their order; items
/// with equal keys land in the same group.
fn split_by_key<T>(items: Vec<T>, parts: usize, key: impl Fn(&T) -> &str) -> Vec<Vec<T>> {
    let parts = parts.clamp(1, items.len().max(1));
    let mut groups: Vec<Vec<T>> = (0..parts).map(|_| Vec::new()).collect();
    for item in items {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(key(&item), &mut hasher);
        let part = (std::hash::Hasher::finish(&hasher) % parts as u64) as usize;
        groups[part].push(item);
    }
    groups.retain(|g| !g.is_empty());
    groups
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

#[cfg(test)]
mod tests {
    use super::split_by_key;

    #[test]
    fn a_split_keeps_each_orders_deliveries_together_and_in_order() {
        let batch: Vec<(String, usize)> = (0..40).map(|i| (format!("O-{}", i % 7), i)).collect();
        let groups = split_by_key(batch.clone(), 3, |(order, _)| order.as_str());
        assert!(!groups.is_empty() && groups.len() <= 3);
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), batch.len());
        for order in (0..7).map(|i| format!("O-{i}")) {
            let holding: Vec<_> = groups
                .iter()
                .filter(|g| g.iter().any(|(o, _)| *o == order))
                .collect();
            assert_eq!(holding.len(), 1, "{order} is split across groups");
            let positions: Vec<usize> = holding[0]
                .iter()
                .filter(|(o, _)| *o == order)
                .map(|(_, i)| *i)
                .collect();
            assert!(
                positions.windows(2).all(|w| w[0] < w[1]),
                "{order} reordered"
            );
        }
        assert_eq!(split_by_key(batch, 1, |(o, _)| o.as_str()).len(), 1);
        assert!(split_by_key(Vec::<(String, usize)>::new(), 2, |(o, _)| o.as_str()).is_empty());
    }
}
