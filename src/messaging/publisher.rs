//! Publishing events with publisher confirms.

use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};

use crate::envelope::{CLOUDEVENTS_CONTENT_TYPE, WireEvent};

use super::{Inbound, Topology};

/// Why a publish did not succeed. Nothing published without a positive confirm counts as sent.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker or the connection failed.
    #[error("broker error while publishing: {0}")]
    Broker(#[from] lapin::Error),
    /// The broker refused the message (negative confirm).
    #[error("the broker refused event {0}")]
    Nacked(String),
    /// A mandatory message matched no queue.
    #[error("event {0} matched no queue (routing key {1})")]
    Unroutable(String, String),
}

/// Publishes events to the exchange on a channel in confirm mode.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    exchange: String,
}

impl Publisher {
    /// Opens a channel in confirm mode on `connection`.
    pub async fn open(connection: &Connection, topology: &Topology) -> Result<Self, PublishError> {
        let channel = connection.create_channel().await?;
        Self::on_channel(channel, topology).await
    }

    /// Puts `channel` in confirm mode and publishes on it.
    pub async fn on_channel(channel: Channel, topology: &Topology) -> Result<Self, PublishError> {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            channel,
            exchange: topology.exchange(),
        })
    }

    /// The channel the publisher uses.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Closes the publisher's channel (see [`super::close_channel`]); every clone shares it.
    pub async fn close(&self) -> anyhow::Result<()> {
        super::close_channel(&self.channel).await
    }

    /// Publishes events from outside the pipeline, each of which must reach a queue, in rounds
    /// of at most 500 unconfirmed at once, waiting for each round's confirms.
    pub async fn publish_routed(&self, events: &[WireEvent]) -> Result<(), PublishError> {
        for chunk in events.chunks(500) {
            self.publish_all(chunk, true).await?;
        }
        Ok(())
    }

    /// Publishes every event, then waits for all their confirms (pipelined, not one by one).
    /// With `mandatory`, an event that matches no queue is an error.
    pub async fn publish_all(
        &self,
        events: &[WireEvent],
        mandatory: bool,
    ) -> Result<(), PublishError> {
        let mut pending = Vec::with_capacity(events.len());
        for event in events {
            let (exchange, routing_key, properties) = match &event.direct {
                None => (
                    self.exchange.as_str(),
                    event.routing_key.as_str(),
                    properties(event),
                ),
                Some(direct) => (
                    "",
                    direct.queue.as_str(),
                    serde_json::from_slice(&direct.properties)
                        .unwrap_or_else(|_| properties(event)),
                ),
            };
            let confirm = self
                .channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: mandatory || event.direct.is_some(),
                        ..Default::default()
                    },
                    &event.body,
                    properties,
                )
                .await?;
            pending.push((event, confirm));
        }
        for (event, confirm) in pending {
            match confirm.await? {
                Confirmation::Ack(None) => {}
                Confirmation::NotRequested => {
                    return Err(PublishError::Nacked(format!(
                        "{} (confirms not enabled on the channel)",
                        event.event_id
                    )));
                }
                Confirmation::Ack(Some(_returned)) => {
                    return Err(PublishError::Unroutable(
                        event.event_id.clone(),
                        event.routing_key.clone(),
                    ));
                }
                Confirmation::Nack(_) => {
                    return Err(PublishError::Nacked(event.event_id.clone()));
                }
            }
        }
        Ok(())
    }

    /// Publishes one message to a queue through the default exchange and waits for its confirm.
    pub async fn publish_to_queue(
        &self,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        publish_all_to_queue(&self.channel, queue, vec![(body, properties)]).await
    }

    /// Publishes copies of `deliveries` (same bodies, same properties) to `queue` and waits
    /// for all their confirms, pipelined.
    pub async fn forward(&self, queue: &str, deliveries: &[Inbound]) -> Result<(), PublishError> {
        let messages: Vec<(&[u8], BasicProperties)> = deliveries
            .iter()
            .map(|d| (d.body(), d.properties().clone()))
            .collect();
        publish_all_to_queue(&self.channel, queue, messages).await
    }

    /// Publishes `bodies` to `queue` as persistent messages whose message ids are `ids`, and
    /// waits for all their confirms, pipelined.
    pub async fn send_all(
        &self,
        queue: &str,
        bodies: &[(String, &[u8])],
    ) -> Result<(), PublishError> {
        let messages: Vec<(&[u8], BasicProperties)> = bodies
            .iter()
            .map(|(id, body)| {
                let properties = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_message_id(id.as_str().into());
                (*body, properties)
            })
            .collect();
        publish_all_to_queue(&self.channel, queue, messages).await
    }
}

/// Publishes every message to `queue` through the default exchange, then waits for all their
/// confirms (pipelined). Each must reach the queue.
async fn publish_all_to_queue(
    channel: &Channel,
    queue: &str,
    messages: Vec<(&[u8], BasicProperties)>,
) -> Result<(), PublishError> {
    let mut pending = Vec::new();
    for (body, properties) in messages {
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = channel
            .basic_publish("".into(), queue.into(), options, body, properties)
            .await?;
        pending.push(confirm);
    }
    for confirm in pending {
        match confirm.await? {
            Confirmation::Ack(None) => {}
            Confirmation::Ack(Some(_)) => {
                return Err(PublishError::Unroutable("message".into(), queue.into()));
            }
            _ => return Err(PublishError::Nacked(format!("message to {queue}"))),
        }
    }
    Ok(())
}

/// The AMQP properties mirroring the envelope: id, type, content type, order id as correlation
/// id, time, persistent delivery and the trace context.
fn properties(event: &WireEvent) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString(event.traceparent.as_str().into()),
    );
    BasicProperties::default()
        .with_content_type(CLOUDEVENTS_CONTENT_TYPE.into())
        .with_delivery_mode(2)
        .with_message_id(event.event_id.as_str().into())
        .with_type(event.event_type.as_str().into())
        .with_correlation_id(event.order_id.as_str().into())
        .with_timestamp(u64::try_from(event.time.timestamp()).unwrap_or(0))
        .with_app_id("fulfilment".into())
        .with_headers(headers)
}
