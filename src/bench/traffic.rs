//! The world around the pipeline during a bench run: a shop placing orders, a customer who
//! accepts each order once it is handed over, and a finance tap that notes when each order's
//! revenue is recognised.

use std::ops::Range;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use tokio::task::JoinHandle;

use super::load::{Target, Tracker};
use crate::client::Client;
use crate::domain::events::{ConfirmationOutcome, CustomerConfirmation, OrderHandedOver};
use crate::domain::{EventType, Order};
use crate::envelope::Envelope;
use crate::messaging::{self, InboundStream, Topology};
use crate::settings::AmqpSettings;

/// Most deliveries the customer and the tap take at once.
const BATCH: usize = 200;

/// The bench's orders: `BENCH-<run>-<n>`, a kettle and, for every third, an installation visit,
/// both recognised on acceptance, so each order ends with one `revenue.recognised`.
pub fn order(run: &str, n: u64) -> Order {
    let mut lines =
        vec![serde_json::json!({"sku": "KETTLE-STEEL", "quantity": 1, "unit_price_minor": 3999})];
    if n % 3 == 0 {
        lines.push(
            serde_json::json!({"sku": "INSTALL-SERVICE", "quantity": 1, "unit_price_minor": 4500}),
        );
    }
    let json = serde_json::json!({
        "order_id": format!("BENCH-{run}-{n}"),
        "customer_id": "CUST-042",
        "channel": "web",
        "currency": "GBP",
        "placed_at": Utc::now(),
        "lines": lines,
    });
    serde_json::from_value(json).expect("the bench's orders are valid")
}

/// The number in a bench order id, if it is one of this run's.
fn number_of(order_id: &str, run: &str) -> Option<u64> {
    order_id
        .strip_prefix("BENCH-")?
        .strip_prefix(run)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// Places orders by publishing `order.placed`, as a web shop does.
pub struct Shop {
    /// The shop's connection to the broker.
    pub client: Client,
    /// This run's id, part of every order id.
    pub run: String,
}

impl Target for Shop {
    async fn place(&self, numbers: Range<u64>) -> anyhow::Result<()> {
        let orders: Vec<Order> = numbers.map(|n| order(&self.run, n)).collect();
        self.client.submit(&orders).await?;
        Ok(())
    }
}

/// Starts a customer who accepts every order handed over, and a tap reporting each recognised
/// order to `tracker`. Both consume queues of their own, bound like any outside system's.
pub async fn start_outside_world(
    settings: &AmqpSettings,
    run: &str,
    tracker: Arc<Tracker>,
) -> anyhow::Result<Vec<JoinHandle<anyhow::Result<()>>>> {
    let topology = Topology::new(&settings.namespace);
    let client = Client::connect(settings, "bench/customer").await?;
    let channel = client.connection().create_channel().await?;
    let customer_queue = format!("{}.bench-customer", settings.namespace);
    let tap_queue = format!("{}.bench-finance", settings.namespace);
    let handed_over = EventType::OrderHandedOver.routing_key();
    let recognised = EventType::RevenueRecognised.routing_key();
    topology
        .declare_queue(&channel, &customer_queue, &[handed_over])
        .await?;
    topology
        .declare_queue(&channel, &tap_queue, &[recognised])
        .await?;
    let customer_stream = InboundStream::open(client.connection(), &customer_queue, 500).await?;
    let tap_connection = messaging::connect(settings, "bench/finance").await?;
    let tap_stream = InboundStream::open(&tap_connection, &tap_queue, 500).await?;
    let run = run.to_owned();
    Ok(vec![
        tokio::spawn(customer(customer_stream, client)),
        tokio::spawn(async move {
            let _connection = tap_connection;
            tap(tap_stream, run, tracker).await
        }),
    ])
}

/// Answers each handed-over order with an acceptance, a batch at a time.
async fn customer(mut stream: InboundStream, client: Client) -> anyhow::Result<()> {
    while let Some(batch) = stream.next_batch(BATCH, std::time::Duration::ZERO).await {
        let batch = batch?;
        let answers: Vec<CustomerConfirmation> = batch
            .iter()
            .filter_map(|inbound| Envelope::decode(inbound.body()).ok())
            .filter_map(|(envelope, _)| envelope.payload::<OrderHandedOver>().ok())
            .map(|handed_over| CustomerConfirmation {
                order_id: handed_over.order_id,
                outcome: ConfirmationOutcome::Accepted,
                reason: None,
            })
            .collect();
        client
            .publish(&answers)
            .await
            .context("the customer's answers")?;
        if let Some(last) = batch.last() {
            last.ack_through().await?;
        }
    }
    Ok(())
}

/// Reports every order whose revenue was recognised.
async fn tap(mut stream: InboundStream, run: String, tracker: Arc<Tracker>) -> anyhow::Result<()> {
    while let Some(batch) = stream.next_batch(BATCH, std::time::Duration::ZERO).await {
        let batch = batch?;
        for inbound in &batch {
            let order_id = Envelope::decode(inbound.body())
                .ok()
                .and_then(|(envelope, _)| envelope.order_id());
            if let Some(n) = order_id.and_then(|id| number_of(id.as_str(), &run)) {
                tracker.completed(n);
            }
        }
        if let Some(last) = batch.last() {
            last.ack_through().await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_are_read_back_only_from_this_runs_ids() {
        let order = order("r1", 42);
        assert_eq!(number_of(order.order_id.as_str(), "r1"), Some(42));
        assert_eq!(number_of(order.order_id.as_str(), "r2"), None);
        assert_eq!(number_of("WEB-1", "r1"), None);
        assert_eq!(order.lines.len(), 2);
    }
}
