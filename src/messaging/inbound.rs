//! Deliveries from a stage's queue, with what workers need and nothing of AMQP beyond it.

use anyhow::Context;
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, Consumer};

use crate::envelope::TraceParent;

use super::Publisher;

/// The header carrying which attempt at a message a delivery is.
pub const ATTEMPT_HEADER: &str = "x-fulfilment-attempt";

/// A message taken from a queue. It stays on the broker, unacknowledged, until [`Inbound::ack`].
pub struct Inbound {
    delivery: Delivery,
}

impl Inbound {
    /// The body, byte for byte.
    pub fn body(&self) -> &[u8] {
        &self.delivery.data
    }

    /// The AMQP `message-id` property, if set and exactly the text that was sent (see
    /// [`Inbound::property_problem`]).
    pub fn message_id(&self) -> Option<&str> {
        self.delivery
            .properties
            .message_id()
            .as_ref()
            .filter(|id| id.is_verbatim())
            .map(|id| id.as_str())
    }

    /// What is wrong with the message's AMQP properties, if anything: a short string (a
    /// property, or a header name at any depth) that is not UTF-8 or holds a NUL byte, both of
    /// which AMQP 0-9-1 forbids. Such a message is not handled; it goes to review as it came.
    pub fn property_problem(&self) -> Option<String> {
        let p = &self.delivery.properties;
        let named = [
            ("content-type", p.content_type()),
            ("content-encoding", p.content_encoding()),
            ("correlation-id", p.correlation_id()),
            ("reply-to", p.reply_to()),
            ("expiration", p.expiration()),
            ("message-id", p.message_id()),
            ("type", p.kind()),
            ("user-id", p.user_id()),
            ("app-id", p.app_id()),
            ("cluster-id", p.cluster_id()),
        ];
        for (name, value) in named {
            if let Some(problem) = value.as_ref().and_then(short_string_problem) {
                return Some(format!("property {name} {problem}"));
            }
        }
        p.headers()
            .as_ref()
            .and_then(|h| table_problem(h, "headers"))
    }

    /// The AMQP properties as JSON bytes, losslessly (an octet that is not UTF-8 round-trips),
    /// kept with review cases so that a retry sends the message with exactly these properties.
    pub fn properties_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.delivery.properties).unwrap_or_default()
    }

    /// The W3C trace context from the `traceparent` header, if present and valid.
    pub fn traceparent(&self) -> Option<TraceParent> {
        let headers = self.delivery.properties.headers().as_ref()?;
        match headers.inner().get("traceparent")? {
            AMQPValue::LongString(s) => TraceParent::parse(&s.to_string()),
            AMQPValue::ShortString(s) => TraceParent::parse(s.as_str()),
            _ => None,
        }
    }

    /// Which attempt at this message this is, from the `x-fulfilment-attempt` header (1 if absent).
    pub fn attempt(&self) -> u32 {
        let headers = self.delivery.properties.headers().as_ref();
        match headers.and_then(|h| h.inner().get(ATTEMPT_HEADER)) {
            Some(AMQPValue::LongUInt(n)) => *n,
            Some(AMQPValue::LongInt(n)) => u32::try_from(*n).unwrap_or(1),
            Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).unwrap_or(1),
            _ => 1,
        }
        .max(1)
    }

    /// Sends a copy of the message (same body, same properties) to `delay_queue`, marked as
    /// attempt `next_attempt`, to expire back to its stage after `delay_ms`; then acknowledges
    /// this delivery. If the copy is not confirmed, the delivery goes back to its queue instead.
    pub async fn defer(
        &self,
        publisher: &Publisher,
        delay_queue: &str,
        next_attempt: u32,
        delay_ms: u64,
    ) -> anyhow::Result<()> {
        let mut properties = self.delivery.properties.clone();
        let mut headers = properties.headers().clone().unwrap_or_default();
        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(next_attempt));
        properties = properties
            .with_headers(headers)
            .with_expiration(delay_ms.to_string().into());
        match publisher
            .publish_to_queue(delay_queue, self.body(), properties)
            .await
        {
            Ok(()) => self.ack().await,
            Err(error) => {
                self.requeue().await?;
                Err(anyhow::Error::new(error).context("deferring a delivery for retry"))
            }
        }
    }

    /// The AMQP `correlation-id` property, if set and verbatim (the pipeline's own events carry
    /// their order id there).
    pub fn correlation_id(&self) -> Option<&str> {
        self.delivery
            .properties
            .correlation_id()
            .as_ref()
            .filter(|id| id.is_verbatim())
            .map(|id| id.as_str())
    }

    /// The AMQP properties, for forwarding the message as it is.
    pub(crate) fn properties(&self) -> &lapin::BasicProperties {
        &self.delivery.properties
    }

    /// The routing key the message was published with.
    pub fn routing_key(&self) -> &str {
        self.delivery.routing_key.as_str()
    }

    /// Whether the broker delivered this message before.
    pub fn redelivered(&self) -> bool {
        self.delivery.redelivered
    }

    /// Acknowledges this message and every earlier one still unsettled on its channel, in one
    /// frame (`multiple`). Only for the last of a batch whose other deliveries are all done.
    pub async fn ack_through(&self) -> anyhow::Result<()> {
        self.delivery
            .ack(BasicAckOptions { multiple: true })
            .await
            .context("acknowledging a batch of deliveries")?;
        Ok(())
    }

    /// The position of this delivery on its channel; later deliveries have larger tags.
    pub fn delivery_tag(&self) -> u64 {
        self.delivery.delivery_tag
    }

    /// Acknowledges the message: the broker forgets it.
    pub async fn ack(&self) -> anyhow::Result<()> {
        self.delivery
            .ack(BasicAckOptions::default())
            .await
            .context("acknowledging a delivery")?;
        Ok(())
    }

    /// Returns the message to its queue, to be delivered again.
    pub async fn requeue(&self) -> anyhow::Result<()> {
        self.delivery
            .reject(BasicRejectOptions { requeue: true })
            .await
            .context("requeueing a delivery")?;
        Ok(())
    }
}

/// What is wrong with a short string, if anything.
fn short_string_problem(value: &ShortString) -> Option<&'static str> {
    if !value.is_verbatim() {
        return Some("is not valid UTF-8");
    }
    value
        .as_str()
        .contains('\0')
        .then_some("contains a NUL byte")
}

/// What is wrong with a header table (its names, at any depth), naming the place.
fn table_problem(table: &FieldTable, at: &str) -> Option<String> {
    for (name, value) in table.inner() {
        if let Some(problem) = short_string_problem(name) {
            let shown =
                crate::domain::text::excerpt(&String::from_utf8_lossy(&name.wire_bytes()), 40);
            return Some(format!("{at}: the header name {shown:?} {problem}"));
        }
        let place = format!("{at}.{}", crate::domain::text::excerpt(name.as_str(), 40));
        if let Some(problem) = value_problem(value, &place) {
            return Some(problem);
        }
    }
    None
}

fn value_problem(value: &AMQPValue, at: &str) -> Option<String> {
    match value {
        AMQPValue::ShortString(s) => short_string_problem(s).map(|p| format!("{at} {p}")),
        AMQPValue::FieldTable(t) => table_problem(t, at),
        AMQPValue::FieldArray(a) => a
            .as_slice()
            .iter()
            .enumerate()
            .find_map(|(i, v)| value_problem(v, &format!("{at}[{i}]"))),
        _ => None,
    }
}

/// A consumer on one queue.
pub struct InboundStream {
    channel: Channel,
    consumer: Consumer,
    tag: String,
    /// An error met while filling a batch, reported by the next call instead of being lost.
    held_error: Option<lapin::Error>,
}

impl InboundStream {
    /// Starts consuming `queue` on a new channel with `prefetch` unacknowledged deliveries.
    pub async fn open(connection: &Connection, queue: &str, prefetch: u16) -> anyhow::Result<Self> {
        let channel = connection
            .create_channel()
            .await
            .context("opening a channel")?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .context("setting prefetch")?;
        let tag = format!("{queue}-{}", uuid::Uuid::new_v4().simple());
        let consumer = channel
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("consuming {queue}"))?;
        Ok(Self {
            channel,
            consumer,
            tag,
            held_error: None,
        })
    }

    /// The next delivery; `None` when the consumer was cancelled or the channel closed.
    pub async fn next(&mut self) -> Option<anyhow::Result<Inbound>> {
        if let Some(error) = self.held_error.take() {
            return Some(Err(
                anyhow::Error::new(error).context("receiving a delivery")
            ));
        }
        let delivery = self.consumer.next().await?;
        Some(
            delivery
                .map(|delivery| Inbound { delivery })
                .context("receiving a delivery"),
        )
    }

    /// The next delivery and any others already received, up to `max` in all (in delivery
    /// order); then, if the batch is not full and `linger` is not zero, whatever else arrives
    /// within `linger` of the first. Under load a batch grows to what arrived while the last one
    /// was handled; the caller lingers only when the last batch showed load, so a quiet
    /// pipeline handles messages one at a time without waiting. `None` as for [`Self::next`].
    pub async fn next_batch(
        &mut self,
        max: usize,
        linger: std::time::Duration,
    ) -> Option<anyhow::Result<Vec<Inbound>>> {
        let first = match self.next().await? {
            Ok(first) => first,
            Err(error) => return Some(Err(error)),
        };
        let deadline = tokio::time::Instant::now() + linger;
        let mut batch = vec![first];
        while batch.len() < max {
            let next = match futures_lite::future::poll_once(self.consumer.next()).await {
                Some(next) => next,
                None if linger.is_zero() => break,
                None => match tokio::time::timeout_at(deadline, self.consumer.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
            };
            match next {
                Some(Ok(delivery)) => batch.push(Inbound { delivery }),
                Some(Err(error)) => {
                    self.held_error = Some(error);
                    break;
                }
                // The end, which the next call reports.
                None => break,
            }
        }
        Some(Ok(batch))
    }

    /// Stops taking deliveries and closes the channel; unacknowledged ones go back to the queue.
    /// A channel the broker or lapin is already closing is left to finish closing. Each step
    /// waits at most [`super::CLOSE_TIMEOUT`]: a broker that does not answer cannot hold up a
    /// shutdown.
    pub async fn close(self) -> anyhow::Result<()> {
        if self.channel.status().connected() {
            let cancel = self
                .channel
                .basic_cancel(self.tag.as_str().into(), BasicCancelOptions::default());
            tokio::time::timeout(super::CLOSE_TIMEOUT, cancel)
                .await
                .context("cancelling the consumer timed out")?
                .context("cancelling the consumer")?;
        }
        super::close_channel(&self.channel).await
    }
}
