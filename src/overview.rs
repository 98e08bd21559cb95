//! What an operator watches: orders by state and how long the oldest has waited, open review
//! cases, events not yet published, timers not yet fired, and every queue's depth and
//! consumers. `fulfilment overview` prints it; the review API serves it at `GET /overview`.
//! Both declare the topology first, as every command that talks to the broker does.

use std::fmt;

use chrono::{DateTime, Utc};
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

/// Takes the overview: the database must answer; the broker need not (the queues are then
/// missing and `broker_error` says why).
pub async fn take(pool: &PgPool, amqp: &AmqpSettings) -> anyhow::Result<Overview> {
    let mut conn = pool.acquire().await?;
    let mut orders = db::overview::orders_by_state(&mut conn).await?;
    orders.sort_by_key(|s| pipeline_position(&s.state));
    let (queues, broker_error) = match queues(amqp).await {
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

fn pipeline_position(state: &str) -> usize {
    OrderState::ALL
        .iter()
        .position(|s| s.as_str() == state)
        .unwrap_or(usize::MAX)
}

async fn queues(amqp: &AmqpSettings) -> anyhow::Result<Vec<QueueCounts>> {
    let topology = Topology::new(&amqp.namespace);
    let connection = messaging::connect(amqp, "overview").await?;
    let channel = connection.create_channel().await?;
    // Declaring is idempotent; it spares a namespace no process has run in yet from looking up
    // queues that do not exist.
    topology.declare(&channel).await?;
    let mut counts = Vec::new();
    for queue in topology.queues() {
        counts.push(topology.counts(&channel, &queue).await?);
    }
    let _ = messaging::close_channel(&channel).await;
    let _ = connection.close(200, "done".into()).await;
    Ok(counts)
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
    fn states_sort_in_pipeline_order() {
        let mut states = vec!["completed", "placed", "handed_over", "unheard-of"];
        states.sort_by_key(|s| pipeline_position(s));
        assert_eq!(states, ["placed", "handed_over", "completed", "unheard-of"]);
    }
}
