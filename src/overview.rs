//! What an operator watches: orders by state and how long the oldest has waited, open review
//! cases, events not yet published, timers not yet fired, and every queue's depth and
//! consumers. `fulfilment overview` prints it; the review API serves it at `GET /overview`.
//! Both ask the broker over a connection that has declared the topology (the command opens one;
//! the API uses its own).

use std::fmt;

use chrono::{DateTime, Utc};
use lapin::Channel;
use serde::Serialize;
use sqlx::PgPool;

use crate::db;
use crate::db::overview::{CaseCount, OutboxBacklog, StateCount, TimerBacklog};
use crate::domain::OrderState;
use crate::messaging::{self, QueueCounts, Topology};
use crate::settings::AmqpSettings;

/// The state of the whole pipeline at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// When it was taken (UTC).
    pub at: DateTime<Utc>,
    /// Orders by state, in pipeline order.
    pub orders: Vec<StateCount>,
    /// Open review cases by reason, most first.
    pub open_cases: Vec<CaseCount>,
    /// Events committed and not yet published (the relay publishes them).
    pub outbox: OutboxBacklog,
    /// Deadlines not yet fired.
    pub timers: TimerBacklog,
    /// Every queue of the namespace; empty if the broker could not be asked.
    pub queues: Vec<QueueCounts>,
    /// Why the queues are missing, if they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_error: Option<String>,
}

/// Takes the overview with `queues` as counted (or why they could not be): the database must
/// answer; the broker need not (the queues are then missing and `broker_error` says why).
pub async fn take(
    pool: &PgPool,
    queues: anyhow::Result<Vec<QueueCounts>>,
) -> anyhow::Result<Overview> {
    let mut conn = pool.acquire().await?;
    let mut orders = db::overview::orders_by_state(&mut conn).await?;
    orders.sort_by_key(|s| pipeline_position(&s.state));
    let (queues, broker_error) = match queues {
        Ok(queues) => (queues, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    Ok(Overview {
        at: Utc::now(),
        orders,
        open_cases: db::overview::open_cases(&mut conn).await?,
        outbox: db::overview::outbox(&mut conn).await?,
        timers: db::overview::timers(&mut conn).await?,
        queues,
        broker_error,
    })
}

/// Every queue's counts, on a channel of a connection that has declared `topology`.
pub async fn queue_counts(
    channel: &Channel,
    topology: &Topology,
) -> anyhow::Result<Vec<QueueCounts>> {
    let mut counts = Vec::new();
    for queue in topology.queues() {
        counts.push(topology.counts(channel, &queue).await?);
    }
    Ok(counts)
}

/// Counts the queues over a connection of its own, for the command line.
pub async fn queue_counts_connecting(amqp: &AmqpSettings) -> anyhow::Result<Vec<QueueCounts>> {
    let topology = Topology::of(amqp);
    let connection = messaging::connect(amqp, "overview").await?;
    // Declaring is idempotent; it spares a namespace no process has run in yet from looking up
    // queues that do not exist.
    topology.declare(&connection).await?;
    let channel = connection.create_channel().await?;
    let counts = queue_counts(&channel, &topology).await;
    let _ = messaging::close_channel(&channel).await;
    let _ = connection.close(200, "done".into()).await;
    counts
}

fn pipeline_position(state: &str) -> usize {
    OrderState::ALL
        .iter()
        .position(|s| s.as_str() == state)
        .unwrap_or(usize::MAX)
}

impl fmt::Display for Overview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let age = |since: DateTime<Utc>| short_duration(self.at - since);
        writeln!(f, "at {}", self.at.format("%Y-%m-%dT%H:%M:%SZ"))?;
        writeln!(f, "orders")?;
        if self.orders.is_empty() {
            writeln!(f, "  none")?;
        }
        for s in &self.orders {
            let done = ["completed", "cancelled", "closed"].contains(&s.state.as_str());
            let oldest = match done {
                true => String::new(),
                false => format!("  oldest waiting {}", age(s.oldest_since)),
            };
            writeln!(f, "  {:<20} {:>8}{oldest}", s.state, s.orders)?;
        }
        writeln!(f, "open review cases")?;
        if self.open_cases.is_empty() {
            writeln!(f, "  none")?;
        }
        for c in &self.open_cases {
            writeln!(
                f,
                "  {:<28} {:>6}  for {:<17} oldest {}",
                c.reason,
                c.cases,
                c.required_role,
                age(c.oldest_opened_at)
            )?;
        }
        let oldest_unsent = match self.outbox.oldest_unsent_at {
            Some(at) => format!(", oldest {}", age(at)),
            None => String::new(),
        };
        writeln!(f, "outbox unsent {}{oldest_unsent}", self.outbox.unsent)?;
        writeln!(
            f,
            "timers pending {}, overdue {}",
            self.timers.pending, self.timers.overdue
        )?;
        writeln!(f, "queues (ready, consumers)")?;
        if let Some(error) = &self.broker_error {
            writeln!(f, "  broker unreachable: {error}")?;
        }
        for q in &self.queues {
            writeln!(f, "  {:<40} {:>8} {:>4}", q.queue, q.ready, q.consumers)?;
        }
        Ok(())
    }
}

impl Overview {
    /// Sets the overview's gauges (`fulfilment_orders`, `fulfilment_review_cases_open`, ...,
    /// ages in seconds) in this process's metrics, and returns every metric of the process in
    /// Prometheus' text format. A label seen before and absent now is set to 0, so that a
    /// reason with no open cases left reads 0 rather than its last count.
    pub fn prometheus(&self) -> String {
        use metrics::gauge;
        let age = |since: DateTime<Utc>| (self.at - since).num_milliseconds() as f64 / 1000.0;
        crate::metrics::install();
        for state in crate::domain::OrderState::ALL {
            let found = self.orders.iter().find(|s| s.state == state.as_str());
            let name = state.as_str();
            gauge!("fulfilment_orders", "state" => name)
                .set(found.map_or(0.0, |s| s.orders as f64));
            gauge!("fulfilment_orders_oldest_age_seconds", "state" => name)
                .set(found.map_or(0.0, |s| age(s.oldest_since)));
        }
        let open: Vec<(String, String, f64)> = self
            .open_cases
            .iter()
            .map(|c| (c.reason.clone(), c.required_role.clone(), c.cases as f64))
            .collect();
        for (reason, role, cases) in with_zeroes(&SEEN_CASE_LABELS, open) {
            gauge!("fulfilment_review_cases_open", "reason" => reason, "role" => role).set(cases);
        }
        gauge!("fulfilment_outbox_unsent").set(self.outbox.unsent as f64);
        gauge!("fulfilment_timers_pending").set(self.timers.pending as f64);
        gauge!("fulfilment_timers_overdue").set(self.timers.overdue as f64);
        for q in &self.queues {
            gauge!("fulfilment_queue_ready", "queue" => q.queue.clone()).set(f64::from(q.ready));
            gauge!("fulfilment_queue_consumers", "queue" => q.queue.clone())
                .set(f64::from(q.consumers));
        }
        let up = if self.broker_error.is_none() {
            1.0
        } else {
            0.0
        };
        gauge!("fulfilment_broker_up").set(up);
        crate::metrics::render()
    }
}

/// The (reason, role) labels of open cases set so far.
static SEEN_CASE_LABELS: std::sync::Mutex<Vec<(String, String)>> =
    std::sync::Mutex::new(Vec::new());

/// `now`, plus every label pair seen before and missing now with a value of 0; remembers
/// `now`'s labels.
fn with_zeroes(
    seen: &std::sync::Mutex<Vec<(String, String)>>,
    now: Vec<(String, String, f64)>,
) -> Vec<(String, String, f64)> {
    let mut seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out = now.clone();
    for (reason, role) in seen.iter() {
        if !now.iter().any(|(r, o, _)| r == reason && o == role) {
            out.push((reason.clone(), role.clone(), 0.0));
        }
    }
    for (reason, role, _) in now {
        if !seen.contains(&(reason.clone(), role.clone())) {
            seen.push((reason, role));
        }
    }
    out
}

/// A duration as the two largest units, such as `2d 4h`, `3m 10s` or `0s`.
fn short_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    let units = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    let parts: Vec<String> = units
        .iter()
        .scan(secs, |left, (name, size)| {
            let n = *left / size;
            *left %= size;
            Some((n, *name))
        })
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, name)| format!("{n}{name}"))
        .collect();
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_show_their_two_largest_units() {
        let d = |s| short_duration(chrono::Duration::seconds(s));
        assert_eq!(d(0), "0s");
        assert_eq!(d(-5), "0s");
        assert_eq!(d(59), "59s");
        assert_eq!(d(190), "3m 10s");
        assert_eq!(d(2 * 86_400 + 4 * 3_600 + 7), "2d 4h");
        assert_eq!(d(3_600 + 5), "1h");
    }

    #[test]
    fn the_prometheus_text_has_one_sample_per_state_case_and_queue() {
        let at = Utc::now();
        let overview = Overview {
            at,
            orders: vec![StateCount {
                state: "placed".into(),
                orders: 3,
                oldest_since: at - chrono::Duration::seconds(90),
            }],
            open_cases: vec![CaseCount {
                reason: "out_of_stock".into(),
                required_role: "customer_service".into(),
                cases: 2,
                oldest_opened_at: at,
            }],
            outbox: OutboxBacklog {
                unsent: 0,
                oldest_unsent_at: None,
            },
            timers: TimerBacklog {
                pending: 4,
                overdue: 0,
                next_due_at: None,
            },
            queues: vec![QueueCounts {
                queue: "shop.verify".into(),
                ready: 7,
                consumers: 1,
            }],
            broker_error: None,
        };
        let text = overview.prometheus();
        for line in [
            "# TYPE fulfilment_orders gauge",
            "fulfilment_orders{state=\"placed\"} 3",
            "fulfilment_orders_oldest_age_seconds{state=\"placed\"} 90",
            "fulfilment_review_cases_open{reason=\"out_of_stock\",role=\"customer_service\"} 2",
            "fulfilment_outbox_unsent 0",
            "fulfilment_timers_pending 4",
            "fulfilment_queue_ready{queue=\"shop.verify\"} 7",
            "fulfilment_queue_consumers{queue=\"shop.verify\"} 1",
            "fulfilment_broker_up 1",
            "fulfilment_orders{state=\"completed\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn a_reason_with_no_open_cases_left_reads_zero() {
        let seen = std::sync::Mutex::new(Vec::new());
        let first = with_zeroes(&seen, vec![("a".into(), "r".into(), 2.0)]);
        assert_eq!(first, vec![("a".into(), "r".into(), 2.0)]);
        let second = with_zeroes(&seen, vec![("b".into(), "r".into(), 1.0)]);
        assert!(second.contains(&("a".into(), "r".into(), 0.0)));
    }

    #[test]
    fn states_sort_in_pipeline_order() {
        let mut states = vec!["completed", "placed", "handed_over", "unheard-of"];
        states.sort_by_key(|s| pipeline_position(s));
        assert_eq!(states, ["placed", "handed_over", "completed", "unheard-of"]);
    }
}
