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
    let topology = Topology::new(&amqp.namespace);
    let connection = messaging::connect(amqp, "overview").await?;
    let channel = connection.create_channel().await?;
    // Declaring is idempotent; it spares a namespace no process has run in yet from looking up
    // queues that do not exist.
    topology.declare(&channel).await?;
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
            let done = ["completed", "cancelled"].contains(&s.state.as_str());
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
    /// The overview in Prometheus' text exposition format: gauges named `fulfilment_...`, ages in
    /// seconds.
    pub fn prometheus(&self) -> String {
        let mut out = Metrics::default();
        let age = |since: DateTime<Utc>| (self.at - since).num_milliseconds() as f64 / 1000.0;
        out.gauge("orders", "Orders in each state.");
        for s in &self.orders {
            out.sample(&[("state", &s.state)], s.orders as f64);
        }
        out.gauge(
            "orders_oldest_age_seconds",
            "How long the order longest in each state has been there.",
        );
        for s in &self.orders {
            out.sample(&[("state", &s.state)], age(s.oldest_since));
        }
        out.gauge("review_cases_open", "Open review cases by reason and role.");
        for c in &self.open_cases {
            let labels = [("reason", c.reason.as_str()), ("role", &c.required_role)];
            out.sample(&labels, c.cases as f64);
        }
        out.gauge("outbox_unsent", "Events committed and not yet published.");
        out.sample(&[], self.outbox.unsent as f64);
        out.gauge("timers_pending", "Deadlines not yet fired.");
        out.sample(&[], self.timers.pending as f64);
        out.gauge(
            "timers_overdue",
            "Deadlines over a minute past due and not fired.",
        );
        out.sample(&[], self.timers.overdue as f64);
        out.gauge("queue_ready", "Messages waiting in each queue.");
        for q in &self.queues {
            out.sample(&[("queue", &q.queue)], f64::from(q.ready));
        }
        out.gauge("queue_consumers", "Consumers of each queue.");
        for q in &self.queues {
            out.sample(&[("queue", &q.queue)], f64::from(q.consumers));
        }
        out.gauge(
            "broker_up",
            "1 if the broker answered the overview, else 0.",
        );
        out.sample(
            &[],
            if self.broker_error.is_none() {
                1.0
            } else {
                0.0
            },
        );
        out.text
    }
}

/// Text in Prometheus' exposition format, one gauge after another.
#[derive(Default)]
struct Metrics {
    text: String,
    name: String,
}

impl Metrics {
    fn gauge(&mut self, name: &str, help: &str) {
        use std::fmt::Write;
        self.name = format!("fulfilment_{name}");
        let _ = writeln!(self.text, "# HELP {} {help}", self.name);
        let _ = writeln!(self.text, "# TYPE {} gauge", self.name);
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        use std::fmt::Write;
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect();
        let labels = match labels.is_empty() {
            true => String::new(),
            false => format!("{{{}}}", labels.join(",")),
        };
        let _ = writeln!(self.text, "{}{labels} {value}", self.name);
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn states_sort_in_pipeline_order() {
        let mut states = vec!["completed", "placed", "handed_over", "unheard-of"];
        states.sort_by_key(|s| pipeline_position(s));
        assert_eq!(states, ["placed", "handed_over", "completed", "unheard-of"]);
    }
}
