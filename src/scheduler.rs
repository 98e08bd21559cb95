//! The timer scheduler: turns due timers (deemed acceptance, revenue instalments) into events.
//!
//! In one transaction it marks due timers fired and writes their events to the outbox; after the
//! commit it publishes them. A crash after the commit leaves the events to the relay, so a timer
//! fires exactly once and survives any restart. Timers are claimed with `SKIP LOCKED`, so
//! schedulers in several processes share the work.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db;
use crate::db::timers::DueTimer;
use crate::domain::OrderId;
use crate::domain::events::{AcceptanceDue, InstalmentDue};
use crate::domain::timer::TimerKind;
use crate::envelope::WireEvent;
use crate::messaging::Publisher;
use crate::settings::SchedulerSettings;

const SOURCE: &str = "fulfilment/scheduler";
const BATCH: i64 = 200;

/// Fires due timers every `interval_ms` until `shutdown` is cancelled.
pub async fn run(
    pool: PgPool,
    publisher: Publisher,
    settings: SchedulerSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let interval = Duration::from_millis(settings.interval_ms);
    let ran = crate::periodic::every(interval, &publisher, &shutdown, "scheduler", || {
        fire_due(&pool, &publisher)
    })
    .await;
    let _ = publisher.close().await;
    ran
}

/// One pass: fires up to a batch of due timers. Returns how many fired.
pub async fn fire_due(pool: &PgPool, publisher: &Publisher) -> anyhow::Result<usize> {
    let mut tx = db::begin(pool)
        .await
        .context("starting the scheduler transaction")?;
    let due = db::timers::fire_due(&mut tx, BATCH).await?;
    let mut emitted = Vec::with_capacity(due.len());
    for timer in &due {
        let Some(event) = timer_event(timer) else {
            tracing::warn!(timer = timer.id, kind = %timer.kind, "timer of unknown kind ignored");
            continue;
        };
        let id = db::outbox::insert(&mut tx, &event).await?;
        emitted.push((id, event));
    }
    db::commit(tx).await.context("committing fired timers")?;
    for timer in &due {
        crate::metrics::timer_fired(&timer.kind);
    }
    crate::relay::publish_committed(pool, publisher, &emitted).await?;
    Ok(due.len())
}

/// The event a due timer stands for, continuing the trace of what set it.
fn timer_event(timer: &DueTimer) -> Option<WireEvent> {
    let trace = timer
        .traceparent
        .as_deref()
        .and_then(crate::envelope::TraceParent::parse);
    let order_id = OrderId::parse(timer.order_id.clone()).ok()?;
    let span = tracing::info_span!("timer", kind = %timer.kind, order_id = %order_id);
    let hop = crate::telemetry::otel::continue_trace(&span, trace.as_ref());
    let trace = Some(hop);
    if timer.kind == TimerKind::AcceptanceDue.as_str() {
        let due = AcceptanceDue {
            order_id,
            due_at: timer.due_at,
        };
        return Some(WireEvent::new(SOURCE, &due, trace.as_ref()));
    }
    if timer.kind == TimerKind::InstalmentDue.as_str() {
        let due = InstalmentDue {
            order_id,
            line_no: u32::try_from(timer.payload["line_no"].as_u64()?).ok()?,
            instalment: u32::try_from(timer.payload["instalment"].as_u64()?).ok()?,
            due_at: timer.due_at,
        };
        return Some(WireEvent::new(SOURCE, &due, trace.as_ref()));
    }
    None
}
