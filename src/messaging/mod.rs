//! RabbitMQ: connections, the topology, publishing with confirms and the deliveries workers take.
//!
//! This is the only module that speaks AMQP. Stages see typed events; workers see [`Inbound`]
//! messages and a [`Publisher`].

pub mod ceiling;
pub mod inbound;
pub mod publisher;
pub mod topology;

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use lapin::{Channel, Connection, ConnectionProperties};

pub use inbound::{Inbound, InboundStream};
pub use publisher::{PublishError, Publisher};
pub use topology::{QueueCounts, Topology};

use crate::settings::AmqpSettings;

/// The address (index into [`AmqpSettings::addresses`]) that last took a connection: the next
/// connection tries it first, so processes stay on a node that works instead of going back to
/// one that failed.
static LAST_GOOD: AtomicUsize = AtomicUsize::new(0);

/// Opens a connection to the broker, named so operators can tell processes apart. With several
/// addresses (`amqp.failover_urls`), tries each in turn, starting from the one that last worked,
/// and fails only when none answers.
pub async fn connect(settings: &AmqpSettings, name: &str) -> anyhow::Result<Connection> {
    let addresses = settings.addresses();
    let first = LAST_GOOD.load(Ordering::Relaxed) % addresses.len();
    let mut failures = Vec::new();
    for i in (0..addresses.len()).map(|k| (first + k) % addresses.len()) {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("fulfilment/{}/{name}", settings.namespace).into());
        match Connection::connect(addresses[i].expose(), properties).await {
            Ok(connection) => {
                if i != first {
                    tracing::warn!(broker = %addresses[i], "connected to another broker node");
                }
                LAST_GOOD.store(i, Ordering::Relaxed);
                return Ok(connection);
            }
            Err(error) => failures.push(format!("{}: {error}", addresses[i])),
        }
    }
    Err(anyhow::anyhow!(failures.join("; "))).context("connecting to the broker")
}

/// How long each step of closing a channel may take: a broker that does not answer cannot hold
/// up a shutdown.
pub const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Closes `channel` and waits for the broker to confirm, at most [`CLOSE_TIMEOUT`]. A channel
/// already closing or closed is left to finish. Closing every channel before its connection keeps
/// lapin from closing a dropped one behind the connection's back (which it reports as an error).
pub async fn close_channel(channel: &Channel) -> anyhow::Result<()> {
    if !channel.status().connected() {
        return Ok(());
    }
    let close = channel.close(200, "closing".into());
    match tokio::time::timeout(CLOSE_TIMEOUT, close)
        .await
        .context("closing the channel timed out")?
    {
        Ok(()) => Ok(()),
        Err(e) if already_closing(&e) => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context("closing the channel")),
    }
}

/// Whether an error only says the channel is already closing or closed (lapin closes a channel
/// by itself when the last handle to it is dropped).
fn already_closing(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        lapin::ErrorKind::InvalidChannelState(
            lapin::ChannelState::Closing | lapin::ChannelState::Closed,
            _
        )
    )
}
