//! The HTTP API's own broker connection (for the review desk and the intake): opened when first
//! needed, and opened again when it has dropped, so a broker restart costs nothing but a
//! reconnect. While the broker is away, resolutions are still committed to the outbox and the
//! relay publishes them; the intake answers that it could not take the message.

use tokio::sync::Mutex;

use crate::envelope::WireEvent;
use crate::messaging::{self, Publisher, QueueCounts, Topology};
use crate::settings::AmqpSettings;

/// A broker connection that reopens itself on demand.
pub struct BrokerLink {
    settings: AmqpSettings,
    topology: Topology,
    /// The open connection and its publisher, if any; the lock also keeps two callers from
    /// reconnecting at once.
    open: Mutex<Option<Open>>,
}

struct Open {
    connection: lapin::Connection,
    publisher: Publisher,
}

impl BrokerLink {
    /// A link to the broker in `settings`; nothing is opened yet.
    pub fn new(settings: &AmqpSettings) -> Self {
        Self {
            settings: settings.clone(),
            topology: Topology::of(settings),
            open: Mutex::new(None),
        }
    }

    /// A publisher on a live connection, reconnecting first if there is none.
    pub async fn publisher(&self) -> anyhow::Result<Publisher> {
        let mut open = self.open.lock().await;
        if let Some(live) = open.as_ref().filter(|o| o.is_live()) {
            return Ok(live.publisher.clone());
        }
        if open.is_some() {
            tracing::info!("review desk reconnecting to the broker");
        }
        let connection = messaging::connect(&self.settings, "review").await?;
        // Declaring is idempotent; it keeps what is published routable even if no worker has
        // ever started.
        self.topology.declare(&connection).await?;
        let publisher = Publisher::open(&connection, &self.topology).await?;
        *open = Some(Open {
            connection,
            publisher: publisher.clone(),
        });
        Ok(publisher)
    }

    /// Publishes `events` to the exchange, each of which must reach a queue, and waits for the
    /// broker's confirms; after a failure the next call opens a new connection.
    pub async fn publish(&self, events: &[WireEvent]) -> anyhow::Result<()> {
        let published = async {
            let publisher = self.publisher().await?;
            anyhow::Ok(publisher.publish_routed(events).await?)
        };
        let result = published.await;
        if result.is_err() {
            self.reset().await;
        }
        result
    }

    /// Every queue's counts, over this link's connection (which declared the topology).
    pub async fn queue_counts(&self) -> anyhow::Result<Vec<QueueCounts>> {
        let counted = async {
            let publisher = self.publisher().await?;
            crate::overview::queue_counts(publisher.channel(), &self.topology).await
        };
        let result = counted.await;
        if result.is_err() {
            self.reset().await;
        }
        result
    }

    /// Drops the connection after a failure, so the next publish opens a new one.
    pub async fn reset(&self) {
        if let Some(old) = self.open.lock().await.take() {
            let _ = old.connection.close(200, "reconnecting".into()).await;
        }
    }
}

impl Open {
    fn is_live(&self) -> bool {
        self.connection.status().connected() && self.publisher.channel().status().connected()
    }
}
