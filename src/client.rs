//! Publishing into the pipeline from outside it: orders, amendments and customer answers.
//! Used by `fulfilment submit` and `fulfilment confirm`, and by tests.

use anyhow::Context;
use lapin::Connection;

use crate::domain::events::{
    ConfirmationOutcome, CustomerConfirmation, OrderAmended, OrderPlaced, PaymentCaptured,
};
use crate::domain::{EventPayload, Order, OrderId};
use crate::envelope::WireEvent;
use crate::messaging::{self, Publisher, Topology};
use crate::settings::AmqpSettings;

/// A connection for publishing into the pipeline.
pub struct Client {
    connection: Connection,
    publisher: Publisher,
    source: String,
}

impl Client {
    /// Connects and declares the topology, so nothing published is lost even if no worker has
    /// ever started.
    pub async fn connect(settings: &AmqpSettings, source: &str) -> anyhow::Result<Self> {
        let topology = Topology::of(settings);
        let connection = messaging::connect(settings, "client").await?;
        topology.declare(&connection).await?;
        let publisher = Publisher::open(&connection, &topology).await?;
        Ok(Self {
            connection,
            publisher,
            source: source.to_owned(),
        })
    }

    /// Publishes each order as `order.placed` and waits for the broker's confirms.
    /// Returns the event ids.
    pub async fn submit(&self, orders: &[Order]) -> anyhow::Result<Vec<String>> {
        let placed: Vec<OrderPlaced> = orders.iter().cloned().map(OrderPlaced::new).collect();
        self.publish(&placed).await
    }

    /// Publishes each order as `order.amended` (each must carry a higher version).
    pub async fn amend(&self, orders: &[Order]) -> anyhow::Result<Vec<String>> {
        let amended: Vec<OrderAmended> = orders.iter().cloned().map(OrderAmended::new).collect();
        self.publish(&amended).await
    }

    /// Publishes a captured payment.
    pub async fn pay(&self, payment: PaymentCaptured) -> anyhow::Result<String> {
        let ids = self.publish(&[payment]).await?;
        Ok(ids.into_iter().next().unwrap_or_default())
    }

    /// Publishes the customer's answer about an order.
    pub async fn confirm(
        &self,
        order_id: OrderId,
        outcome: ConfirmationOutcome,
        reason: Option<String>,
    ) -> anyhow::Result<String> {
        let answer = CustomerConfirmation {
            order_id,
            outcome,
            reason,
        };
        let ids = self.publish(&[answer]).await?;
        Ok(ids.into_iter().next().unwrap_or_default())
    }

    /// Publishes payloads as events (mandatory: each must reach a queue) and waits for confirms.
    pub async fn publish<P: EventPayload>(&self, payloads: &[P]) -> anyhow::Result<Vec<String>> {
        let events: Vec<WireEvent> = payloads
            .iter()
            .map(|p| WireEvent::new(&self.source, p, None))
            .collect();
        self.publish_raw(&events).await?;
        Ok(events.iter().map(|e| e.event_id.clone()).collect())
    }

    /// Publishes already-encoded events and waits for confirms.
    pub async fn publish_raw(&self, events: &[WireEvent]) -> anyhow::Result<()> {
        self.publisher
            .publish_routed(events)
            .await
            .context("publishing")
    }

    /// The underlying connection, for tools that need their own channels.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Closes the connection.
    pub async fn close(self) -> anyhow::Result<()> {
        self.connection
            .close(200, "done".into())
            .await
            .context("closing the connection")
    }
}
