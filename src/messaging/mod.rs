//! RabbitMQ: connections, the topology, publishing with confirms and the deliveries workers take.
//!
//! This is the only module that speaks AMQP. Stages see typed events; workers see [`Inbound`]
//! messages and a [`Publisher`].

pub mod ceiling;
pub mod inbound;
pub mod publisher;
pub mod topology;

use anyhow::Context;
use lapin::{Connection, ConnectionProperties};

pub use inbound::{Inbound, InboundStream};
pub use publisher::{PublishError, Publisher};
pub use topology::{QueueCounts, Topology};

use crate::settings::AmqpSettings;

/// Opens a connection to the broker, named so operators can tell processes apart.
pub async fn connect(settings: &AmqpSettings, name: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("fulfilment/{}/{name}", settings.namespace).into());
    Connection::connect(settings.url.expose(), properties)
        .await
        .with_context(|| format!("connecting to {}", settings.url))
}
