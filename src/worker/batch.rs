//! One batch through the database: lock, check, load, decide, write, commit — a fixed handful
//! of statements whatever the batch's size (see [`crate::db::batch`]).

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::db;
use crate::db::batch::{self, NewCase, ReferenceKeys, Writes};
use crate::domain::events::{Payload, ReviewCaseOpened};
use crate::domain::{Escalation, OrderId};
use crate::envelope::WireEvent;
use crate::settings::RetrySettings;
use crate::stages::{Input, OrderView, Outcome, Plan, Stage};

use super::delivery::Delivery;
use super::faults::Faults;
use super::policy::{self, Action, Failure};
use super::triage::{Triage, triage};

/// What a committed batch leaves to do, per delivery (in the batch's order).
#[derive(Debug)]
pub enum After {
    /// Done (handled, a duplicate, or escalated): acknowledge once the events are published.
    Ack,
    /// Not handled: send to the delay queue as attempt `attempt` after `delay_ms`.
    Retry {
        /// The next attempt.
        attempt: u32,
        /// How long it waits.
        delay_ms: u64,
    },
    /// Not handled, for a reason the worker settles on its own (an injected fault).
    Failed(Failure),
}

/// A committed batch.
#[derive(Debug)]
pub struct Committed {
    /// The events written, with their outbox row ids, to publish.
    pub emitted: Vec<(i64, WireEvent)>,
    /// What to do with each delivery.
    pub after: Vec<After>,
    /// When it committed.
    pub at: std::time::Instant,
}

/// Runs batches of one stage.
pub struct Transaction<'a> {
    /// The stage.
    pub stage: &'a dyn Stage,
    /// Retry limits (for events that come too early).
    pub retry: &'a RetrySettings,
    /// The delivery terms orders without any get (reference data to load).
    pub default_terms: &'a str,
    /// Injected faults.
    pub faults: &'a Faults,
}

/// A delivery's work within the batch, before the review cases get their ids.
enum Slot {
    Event(WireEvent),
    Case {
        index: usize,
        escalation: Escalation,
        inbox_key: Option<String>,
    },
}

impl Transaction<'_> {
    /// Runs `deliveries` in one transaction. `Err` means nothing was committed.
    pub async fn run(&self, pool: &PgPool, deliveries: &[Delivery]) -> anyhow::Result<Committed> {
        let stage = self.stage.name();
        let now = Utc::now();
        let mut tx = db::begin(pool).await.context("starting a transaction")?;
        let mut lock_keys: Vec<String> =
            deliveries.iter().map(|d| d.lock_key().to_owned()).collect();
        lock_keys.sort();
        lock_keys.dedup();
        batch::lock(&mut tx, &lock_keys)
            .await
            .context("locking the batch's orders")?;
        let facts: Vec<_> = deliveries.iter().map(Delivery::facts).collect();
        let mut keys: Vec<String> = facts.iter().map(|f| f.key.to_owned()).collect();
        keys.extend(facts.iter().map(|f| f.conflict_key()));
        let event_ids: Vec<String> = deliveries
            .iter()
            .filter_map(|d| d.event.as_ref().ok())
            .filter(|e| !e.payload.event_type().from_outside())
            .map(|e| e.envelope.id.clone())
            .collect();
        let checks = batch::check(&mut tx, stage.as_str(), &keys, &event_ids)
            .await
            .context("checking the inbox and outbox")?;
        let triaged = triage(&facts, stage, &checks);
        let fresh: Vec<usize> = (0..deliveries.len())
            .filter(|i| triaged[*i] == Triage::Fresh)
            .collect();
        let needs = self.stage.needs();
        let mut order_ids: Vec<String> = fresh
            .iter()
            .filter_map(|i| deliveries[*i].order_id().map(|id| id.to_string()))
            .collect();
        order_ids.sort();
        order_ids.dedup();
        let mut views = batch::load_views(&mut tx, &needs, &order_ids)
            .await
            .context("loading the batch's orders")?;
        let keys = self.reference_keys(deliveries, &fresh, &views);
        let mut refs = batch::load_reference(&mut tx, &needs, &keys)
            .await
            .context("loading reference data")?;

        let mut writes = Writes::default();
        let mut slots = Vec::new();
        let mut after = Vec::with_capacity(deliveries.len());
        for (index, (delivery, triage)) in deliveries.iter().zip(triaged).enumerate() {
            let outcome = match triage {
                Triage::Duplicate => {
                    tracing::debug!(parent: &delivery.span, "duplicate delivery; no second effect");
                    crate::metrics::delivery(stage, "duplicate");
                    After::Ack
                }
                Triage::Escalate {
                    escalation,
                    inbox_key,
                    message_key,
                } => {
                    writes.inbox.push((inbox_key, delivery.digest.clone()));
                    slots.push(Slot::Case {
                        index,
                        escalation,
                        inbox_key: message_key,
                    });
                    After::Ack
                }
                Triage::Fresh => {
                    let view = views.entry(order_key(delivery)).or_default();
                    self.decide(
                        index,
                        delivery,
                        view,
                        &mut refs,
                        now,
                        &mut writes,
                        &mut slots,
                    )
                }
            };
            after.push(outcome);
        }

        let case_ids = batch::reserve_case_ids(&mut tx, count_cases(&slots))
            .await
            .context("reserving review case ids")?;
        let events = self.fill_cases(slots, case_ids, deliveries, &mut writes);
        writes.outbox = events;
        #[cfg(feature = "faults")]
        if deliveries
            .iter()
            .filter_map(Delivery::order_id)
            .any(|order| self.faults.poisons(stage, order.as_str()))
        {
            batch::refuse_on_purpose(&mut tx).await?;
        }
        let outbox_ids = if writes.is_empty() {
            Vec::new()
        } else {
            let skus = writes.stock_skus();
            if needs.stock != crate::stages::StockUse::Lock {
                batch::lock_stock(&mut tx, &skus)
                    .await
                    .context("locking stock")?;
            }
            batch::write(&mut tx, stage.as_str(), &writes)
                .await?
                .outbox_ids
        };
        db::commit(tx).await.context("committing")?;
        let emitted = outbox_ids.into_iter().zip(writes.outbox).collect();
        Ok(Committed {
            emitted,
            after,
            at: std::time::Instant::now(),
        })
    }

    /// Opens a review case for one delivery on its own (its attempts ran out, or the database
    /// refused it), unless the inbox shows it was already handled.
    pub async fn escalate(
        &self,
        pool: &PgPool,
        delivery: &Delivery,
        escalation: Escalation,
    ) -> anyhow::Result<Committed> {
        let stage = self.stage.name();
        let mut tx = db::begin(pool).await.context("starting a transaction")?;
        batch::lock(&mut tx, &[delivery.lock_key().to_owned()]).await?;
        let key = delivery.key.clone();
        let checks = batch::check(&mut tx, stage.as_str(), std::slice::from_ref(&key), &[]).await?;
        if checks.inbox.contains_key(&key) {
            db::commit(tx).await?;
            return Ok(Committed {
                emitted: Vec::new(),
                after: vec![After::Ack],
                at: std::time::Instant::now(),
            });
        }
        let mut writes = Writes::default();
        writes.inbox.push((key.clone(), delivery.digest.clone()));
        let slots = vec![Slot::Case {
            index: 0,
            escalation,
            inbox_key: Some(key),
        }];
        let case_ids = batch::reserve_case_ids(&mut tx, 1).await?;
        writes.outbox =
            self.fill_cases(slots, case_ids, std::slice::from_ref(delivery), &mut writes);
        let written = batch::write(&mut tx, stage.as_str(), &writes).await?;
        db::commit(tx).await.context("committing")?;
        let emitted = written.outbox_ids.into_iter().zip(writes.outbox).collect();
        Ok(Committed {
            emitted,
            after: vec![After::Ack],
            at: std::time::Instant::now(),
        })
    }

    /// Asks the stage for a delivery's plan and adds it to the batch's writes.
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        index: usize,
        delivery: &Delivery,
        view: &mut OrderView,
        refs: &mut crate::stages::Reference,
        now: DateTime<Utc>,
        writes: &mut Writes,
        slots: &mut Vec<Slot>,
    ) -> After {
        let Ok(event) = &delivery.event else {
            unreachable!("only readable deliveries are fresh")
        };
        let stage = self.stage.name();
        let order_id = event.payload.order_id().to_string();
        let attempt = delivery.inbound.attempt();
        if self.faults.fails(stage, &order_id, attempt) {
            return After::Failed(Failure::Transient("injected transient failure".into()));
        }
        let input = Input {
            message_id: &delivery.key,
            payload: &event.payload,
            event_time: event.envelope.time,
            now,
        };
        let mut plan = self.stage.decide(&input, view, refs);
        let _enter = delivery.span.enter();
        tracing::debug!(outcome = ?plan.outcome, effects = plan.effects.len(), "decided");
        let completes = crate::stages::Effect::Move(crate::domain::OrderState::Completed);
        if plan.effects.contains(&completes)
            && let Some(entered) = view.entered_at
        {
            crate::metrics::order_completed((now - entered).to_std().unwrap_or_default());
        }
        if let Outcome::TooEarly(early) = &plan.outcome {
            let failure = Failure::TooEarly(early.clone());
            match policy::on_failure(failure, attempt, self.retry, jitter()) {
                Action::Retry { attempt, delay_ms } => {
                    tracing::info!(reason = %early, attempt, delay_ms, "too early; trying again later");
                    crate::metrics::delivery(stage, "retried");
                    return After::Retry { attempt, delay_ms };
                }
                Action::Escalate(escalation) => plan = Plan::escalate(escalation),
                Action::PauseAndRequeue => unreachable!("too early never pauses"),
            }
        }
        writes
            .inbox
            .push((delivery.key.clone(), delivery.digest.clone()));
        let trace = delivery.trace.to_string();
        for effect in &plan.effects {
            writes.add(&order_id, &delivery.key, Some(&trace), effect, view);
            view.apply(effect, &delivery.key, refs);
        }
        let source = format!("fulfilment/{stage}");
        for payload in &plan.emit {
            slots.push(Slot::Event(WireEvent::of(
                &source,
                payload,
                Some(&delivery.trace),
            )));
        }
        let outcome = match plan.outcome {
            Outcome::Escalated(_) => "escalated",
            _ => "handled",
        };
        crate::metrics::delivery(stage, outcome);
        if let Outcome::Escalated(escalation) = plan.outcome {
            slots.push(Slot::Case {
                index,
                escalation,
                inbox_key: Some(delivery.key.clone()),
            });
        }
        After::Ack
    }

    /// Turns the batch's slots into outbox events, opening each review case with its reserved
    /// id and its `review.case_opened` event, in delivery order.
    fn fill_cases(
        &self,
        slots: Vec<Slot>,
        case_ids: Vec<i64>,
        deliveries: &[Delivery],
        writes: &mut Writes,
    ) -> Vec<WireEvent> {
        let stage = self.stage.name();
        let source = format!("fulfilment/{stage}");
        let mut ids = case_ids.into_iter();
        let mut events = Vec::with_capacity(slots.len());
        for slot in slots {
            match slot {
                Slot::Event(event) => events.push(event),
                Slot::Case {
                    index,
                    escalation,
                    inbox_key,
                } => {
                    let delivery = &deliveries[index];
                    let id = ids.next().expect("one id reserved per case");
                    let _enter = delivery.span.enter();
                    tracing::warn!(
                        case_id = id,
                        reason = escalation.reason,
                        role = escalation.role.as_str(),
                        "escalated to review"
                    );
                    crate::metrics::case_opened(stage.as_str(), escalation.reason);
                    let opened = ReviewCaseOpened {
                        case_id: id,
                        order_id: delivery
                            .order_id()
                            .cloned()
                            .unwrap_or_else(|| OrderId::parse("unknown").expect("a valid id")),
                        stage: stage.as_str().into(),
                        reason: escalation.reason.into(),
                        detail: escalation.detail.clone(),
                        required_role: escalation.role.as_str().into(),
                    };
                    let payload = Payload::ReviewCaseOpened(opened);
                    events.push(WireEvent::of(&source, &payload, Some(&delivery.trace)));
                    writes.cases.push(NewCase {
                        id,
                        order_id: delivery.order_id().map(|o| o.to_string()),
                        escalation,
                        body: delivery.inbound.body().to_vec(),
                        properties: delivery.inbound.properties_bytes(),
                        message_key: inbox_key,
                    });
                }
            }
        }
        events
    }

    /// The reference data the fresh deliveries name: from their events and their orders.
    fn reference_keys(
        &self,
        deliveries: &[Delivery],
        fresh: &[usize],
        views: &HashMap<String, OrderView>,
    ) -> ReferenceKeys {
        let mut keys = ReferenceKeys::default();
        keys.terms.insert(self.default_terms.to_owned());
        for i in fresh {
            let Ok(event) = &deliveries[*i].event else {
                continue;
            };
            let mut orders = Vec::new();
            match &event.payload {
                Payload::OrderPlaced(p) => orders.push(&p.order),
                Payload::OrderAmended(a) => orders.push(&a.order),
                Payload::PaymentCaptured(p) => {
                    keys.payments.insert(p.payment_reference.clone());
                }
                _ => {}
            }
            let view = views.get(event.payload.order_id().as_str());
            orders.extend(view.and_then(|v| v.current.as_ref()).map(|c| &c.order));
            for order in orders {
                keys.customers.insert(order.customer_id.clone());
                keys.agents.extend(order.agent_id.clone());
                keys.terms.extend(order.delivery_terms.clone());
                keys.skus.extend(order.lines.iter().map(|l| l.sku.clone()));
            }
        }
        keys
    }
}

fn order_key(delivery: &Delivery) -> String {
    delivery
        .order_id()
        .map(|o| o.to_string())
        .unwrap_or_default()
}

fn count_cases(slots: &[Slot]) -> usize {
    slots
        .iter()
        .filter(|s| matches!(s, Slot::Case { .. }))
        .count()
}

/// A random fraction in `[0, 1)`, to spread retries.
pub fn jitter() -> f64 {
    (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0
}
