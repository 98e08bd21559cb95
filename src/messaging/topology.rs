//! The exchange and queues, all named under the namespace and declared idempotently.

use anyhow::Context;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ExchangeKind};

use crate::domain::StageName;
use crate::settings::AmqpSettings;

/// The arguments of a quorum queue.
fn quorum() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    arguments
}

/// The arguments of a quorum queue with a single active consumer: other consumers wait, and the
/// next takes over when the active one goes.
fn single_active() -> FieldTable {
    let mut arguments = quorum();
    arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    arguments
}

/// Whether the broker refused a declaration because the queue exists with other arguments.
fn is_precondition_failed(error: &anyhow::Error) -> bool {
    use lapin::ErrorKind;
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    error.chain().any(|cause| {
        let Some(lapin) = cause.downcast_ref::<lapin::Error>() else {
            return false;
        };
        matches!(lapin.kind(), ErrorKind::ProtocolError(e)
            if matches!(e.kind(), AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)))
    })
}

/// The routing-key pattern the review queue is bound with.
pub const REVIEW_BINDING: &str = "review.#";

/// Most `review.case_opened` notices the review queue keeps by default (see
/// [`Topology::with_review_bound`]).
pub const DEFAULT_REVIEW_QUEUE_MAX_LENGTH: u32 = 10_000;

/// The names of everything the pipeline declares on the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    namespace: String,
    /// Most notices the review queue keeps: the oldest are dropped beyond it. Every case is in
    /// the database; the queue is a feed for tools that watch it, and must not grow without
    /// bound when nothing does.
    review_max_length: u32,
    /// Partitions of each stage's input; 1 for none.
    partitions: u16,
}

impl Topology {
    /// The topology for a namespace.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            review_max_length: DEFAULT_REVIEW_QUEUE_MAX_LENGTH,
            partitions: 1,
        }
    }

    /// The topology the settings describe: their namespace, review queue bound and partitions.
    pub fn of(amqp: &AmqpSettings) -> Self {
        Self::new(&amqp.namespace)
            .with_review_bound(amqp.review_queue_max_length)
            .with_partitions(amqp.partitions)
    }

    /// The same topology with each stage's input split into `partitions` (1: not split).
    pub fn with_partitions(mut self, partitions: u16) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// How many partitions each stage's input has (1: not split).
    pub fn partitions(&self) -> u16 {
        self.partitions
    }

    /// The queue every process running a partitioned stage consumes (and nothing is ever sent
    /// to): its consumer count is how many processes share the stage's partitions.
    pub fn members_queue(&self, stage: StageName) -> String {
        format!("{}.{}.members", self.namespace, stage.as_str())
    }

    /// Partition `k` of a stage's input: a quorum queue with a single active consumer, fed by
    /// the stage's router (see [`crate::partitions`]).
    pub fn partition_queue(&self, stage: StageName, k: u16) -> String {
        format!("{}.{}.p{k}", self.namespace, stage.as_str())
    }

    /// The same topology with the review queue keeping at most `max_length` notices.
    pub fn with_review_bound(mut self, max_length: u32) -> Self {
        self.review_max_length = max_length;
        self
    }

    /// The durable topic exchange every event is published to.
    pub fn exchange(&self) -> String {
        format!("{}.events", self.namespace)
    }

    /// The quorum queue a stage consumes.
    pub fn stage_queue(&self, stage: StageName) -> String {
        format!("{}.{}", self.namespace, stage.as_str())
    }

    /// The delay queue where a stage's messages wait before another attempt. Messages expire
    /// after their own delay and are dead-lettered back to the stage's queue.
    pub fn retry_queue(&self, stage: StageName) -> String {
        format!("{}.{}.retry", self.namespace, stage.as_str())
    }

    /// The quorum queue of the human-review cases.
    pub fn review_queue(&self) -> String {
        format!("{}.review", self.namespace)
    }

    /// Declares the exchange, every stage queue with its bindings, and the review queue, on
    /// channels of its own. Safe to call any number of times, from any number of processes.
    pub async fn declare(&self, connection: &Connection) -> anyhow::Result<()> {
        let channel = connection.create_channel().await?;
        self.declare_stages(&channel).await?;
        super::close_channel(&channel).await?;
        for stage in StageName::ALL {
            let channel = connection.create_channel().await?;
            let declared = self.declare_retry_queue(&channel, stage).await;
            self.unless_older(
                declared,
                &channel,
                &self.retry_queue(stage),
                "a classic queue",
            )
            .await?;
        }
        let channel = connection.create_channel().await?;
        let declared = self.declare_review_queue(&channel).await;
        self.unless_older(
            declared,
            &channel,
            &self.review_queue(),
            "without its bound",
        )
        .await
    }

    /// Accepts a queue an older version declared with other arguments (the broker refuses to
    /// change them): it keeps working as it is, with a warning saying how to bring it up to
    /// date. Closes the channel when the declaration succeeded (a refused one closed it).
    async fn unless_older(
        &self,
        declared: anyhow::Result<()>,
        channel: &Channel,
        queue: &str,
        how: &str,
    ) -> anyhow::Result<()> {
        match declared {
            Err(error) if is_precondition_failed(&error) => {
                tracing::warn!(
                    queue,
                    "the queue exists {how} (declared by an older version): delete it while it \
                     is empty, and the next process to start declares it as this version does"
                );
                Ok(())
            }
            Err(error) => Err(error),
            Ok(()) => super::close_channel(channel).await,
        }
    }

    /// Declares the review queue: a quorum queue keeping the newest notices.
    async fn declare_review_queue(&self, channel: &Channel) -> anyhow::Result<()> {
        let mut arguments = quorum();
        arguments.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(i64::from(self.review_max_length)),
        );
        arguments.insert(
            "x-overflow".into(),
            AMQPValue::LongString("drop-head".into()),
        );
        self.declare_queue_with(channel, &self.review_queue(), &[REVIEW_BINDING], arguments)
            .await
    }

    async fn declare_stages(&self, channel: &Channel) -> anyhow::Result<()> {
        let exchange = self.exchange();
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("declaring exchange {exchange}"))?;
        for stage in StageName::ALL {
            let keys: Vec<&str> = stage
                .input_events()
                .iter()
                .map(|e| e.routing_key())
                .collect();
            if self.partitions == 1 {
                self.declare_queue(channel, &self.stage_queue(stage), &keys)
                    .await?;
                continue;
            }
            // The stage's queue is read by one router at a time, in order; each partition by
            // one worker at a time.
            let queue = self.stage_queue(stage);
            self.declare_queue_with(channel, &queue, &keys, single_active())
                .await
                .with_context(|| {
                    format!(
                        "with amqp.partitions {} the queue {queue} must have a single active \
                         consumer: stop every process, let it drain, delete it, and start again",
                        self.partitions
                    )
                })?;
            for k in 0..self.partitions {
                let partition = self.partition_queue(stage, k);
                self.declare_queue_with(channel, &partition, &[], single_active())
                    .await?;
            }
            self.declare_queue(channel, &self.members_queue(stage), &[])
                .await?;
        }
        Ok(())
    }

    /// Declares a durable quorum queue bound to the exchange with `keys`.
    pub async fn declare_queue(
        &self,
        channel: &Channel,
        queue: &str,
        keys: &[&str],
    ) -> anyhow::Result<()> {
        self.declare_queue_with(channel, queue, keys, quorum())
            .await
    }

    async fn declare_queue_with(
        &self,
        channel: &Channel,
        queue: &str,
        keys: &[&str],
        arguments: FieldTable,
    ) -> anyhow::Result<()> {
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .with_context(|| format!("declaring queue {queue}"))?;
        for key in keys {
            channel
                .queue_bind(
                    queue.into(),
                    self.exchange().as_str().into(),
                    (*key).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .with_context(|| format!("binding {queue} to {key}"))?;
        }
        Ok(())
    }

    /// Declares a stage's delay queue: a quorum queue (so it survives losing a broker node),
    /// dead-lettering expired messages to the stage.
    async fn declare_retry_queue(&self, channel: &Channel, stage: StageName) -> anyhow::Result<()> {
        let queue = self.retry_queue(stage);
        let mut arguments = quorum();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(self.stage_queue(stage).as_str().into()),
        );
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .with_context(|| format!("declaring delay queue {queue}"))?;
        Ok(())
    }

    /// How many messages wait in `queue` now and how many consumers it has (the queue must
    /// exist). Messages delivered and not yet acknowledged are not counted as waiting.
    pub async fn counts(&self, channel: &Channel, queue: &str) -> anyhow::Result<QueueCounts> {
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("looking up queue {queue}"))?;
        Ok(QueueCounts {
            queue: queue.to_owned(),
            ready: declared.message_count(),
            consumers: declared.consumer_count(),
        })
    }

    /// Every queue the pipeline declares: each stage's queue, delay queue, and (if split) its
    /// partitions and members queue; then the review queue.
    pub fn queues(&self) -> Vec<String> {
        let partitions = |stage| (0..self.partitions).map(move |k| self.partition_queue(stage, k));
        StageName::ALL
            .into_iter()
            .flat_map(|stage| {
                let split = (self.partitions > 1)
                    .then(|| partitions(stage).chain([self.members_queue(stage)]));
                [self.stage_queue(stage), self.retry_queue(stage)]
                    .into_iter()
                    .chain(split.into_iter().flatten())
            })
            .chain([self.review_queue()])
            .collect()
    }

    /// Deletes one queue of this namespace, messages and all.
    pub async fn delete_queue(&self, channel: &Channel, queue: &str) -> anyhow::Result<()> {
        channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await
            .with_context(|| format!("deleting queue {queue}"))?;
        Ok(())
    }

    /// Deletes every queue and the exchange of this namespace. Used to clean up after tests.
    pub async fn delete(&self, channel: &Channel) -> anyhow::Result<()> {
        for queue in self.queues() {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .with_context(|| format!("deleting queue {queue}"))?;
        }
        channel
            .exchange_delete(
                self.exchange().as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await
            .context("deleting exchange")
    }
}

/// A queue's counts at one moment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueCounts {
    /// The queue.
    pub queue: String,
    /// Messages waiting to be delivered.
    pub ready: u32,
    /// Consumers attached.
    pub consumers: u32,
}
