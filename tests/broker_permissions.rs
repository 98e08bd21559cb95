//! The broker, not the client's good manners, confines what a web shop may do: a RabbitMQ user
//! given the shop's permissions exactly as `docs/operations.md` documents them (the commands are
//! read from there, so the two cannot drift apart) gets its `order.placed` confirmed and routed,
//! while a forged `order.customer_confirmed` is refused with 403 ACCESS_REFUSED and reaches no
//! queue, and the user cannot consume a stage queue.
//!
//! The test adds a broker user of its own with `rabbitmqctl` and deletes it afterwards, with its
//! namespace, whatever the outcome. It never stops the broker, so it runs beside other tests.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fulfilment::domain::events::{
    ConfirmationBasis, OrderCustomerConfirmed, OrderPlaced, SalesOpportunity,
};
use fulfilment::domain::{Order, OrderId};
use fulfilment::envelope::WireEvent;
use fulfilment::messaging::{self, InboundStream, PublishError, Publisher, Topology};
use fulfilment::settings::{AmqpSettings, SecretUrl, Settings};
use fulfilment::stages::StageName;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ErrorKind};
use uuid::Uuid;

/// How long the whole test may take before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// Where the shop's permission commands are documented.
const DOCS: &str = "docs/operations.md";
/// The user the documented commands are written for; each run uses a user of its own.
const DOCUMENTED_USER: &str = "fulfilment-shop";
/// The documented password argument, a shell variable the operator sets.
const DOCUMENTED_PASSWORD: &str = "$SHOP_PASSWORD";
/// The namespace the documented commands are written for (the default `amqp.namespace`).
const DOCUMENTED_NAMESPACE: &str = "fulfilment";

/// AMQP's reply code for an operation refused for lack of permission.
const ACCESS_REFUSED: u16 = 403;

#[tokio::test]
async fn a_shop_user_places_orders_but_cannot_forge_events_or_consume_stage_queues() {
    let world = Arc::new(World::new().await);
    let mut run = tokio::spawn(shop_is_confined(world.clone()));
    let outcome = tokio::time::timeout(DEADLINE, &mut run).await;
    run.abort();
    world.clean_up().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(failed)) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
        Ok(Err(failed)) => panic!("the test did not finish: {failed}"),
        Err(_) => panic!("the test took longer than {DEADLINE:?}"),
    }
}

/// The test's body: what the shop's user may and may not do.
async fn shop_is_confined(world: Arc<World>) {
    for command in documented_shop_commands() {
        rabbitmqctl(&world.for_this_run(&command)).await;
    }
    let shop = messaging::connect(&world.shop_settings(), "shop")
        .await
        .expect("the shop's user connects");
    let publisher = Publisher::open(&shop, &world.topology)
        .await
        .expect("the shop's user opens a channel in confirm mode");

    publisher
        .publish_routed(&[placed("SHOP-1")])
        .await
        .expect("order.placed is confirmed and routed");
    world.wait_for_ready(StageName::Verify, 1).await;

    let forged = publisher
        .publish_routed(&[forged_acceptance("SHOP-1")])
        .await;
    let (code, text) = refusal(forged).expect("the forged event is refused by the broker");
    assert_eq!(code, ACCESS_REFUSED, "{text}");
    assert!(
        text.contains("ACCESS_REFUSED") && text.contains("order.customer_confirmed"),
        "refused for its routing key: {text}"
    );
    world.assert_only_placed_was_routed().await;

    let verify = world.topology.stage_queue(StageName::Verify);
    let (code, text) = consume(&shop, &verify)
        .await
        .expect("consuming the verify queue is refused");
    assert_eq!(code, ACCESS_REFUSED, "{text}");
    assert!(text.contains(&verify), "refused for the queue: {text}");

    shop.close(200, "done".into()).await.expect("closing");
}

/// One test run's namespace and broker user, and the workers' own connection.
struct World {
    amqp: AmqpSettings,
    topology: Topology,
    user: String,
    password: String,
    /// A queue of the test's own bound to every routing key: what reached any queue.
    tap: String,
    workers: Connection,
}

impl World {
    /// A fresh namespace, declared as the workers declare it, with a tap bound to `#`.
    async fn new() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let mut amqp = Settings::load().expect("settings load").amqp;
        amqp.namespace = format!("test-{}", &id[..12]);
        let topology = Topology::new(&amqp.namespace);
        let workers = messaging::connect(&amqp, "workers")
            .await
            .expect("connect broker");
        let channel = workers.create_channel().await.expect("channel");
        topology.declare(&workers).await.expect("declare topology");
        let tap = format!("{}.test-tap", amqp.namespace);
        topology
            .declare_queue(&channel, &tap, &["#"])
            .await
            .expect("declare the tap");
        messaging::close_channel(&channel).await.expect("close");
        Self {
            amqp,
            topology,
            user: format!("shop-{}", &id[..12]),
            password: id[12..].to_owned(),
            tap,
            workers,
        }
    }

    /// A documented command with this run's user, password and namespace.
    fn for_this_run(&self, command: &[String]) -> Vec<String> {
        command
            .iter()
            .map(|word| match word.as_str() {
                DOCUMENTED_USER => self.user.clone(),
                DOCUMENTED_PASSWORD => self.password.clone(),
                _ => word.replace(DOCUMENTED_NAMESPACE, &self.amqp.namespace),
            })
            .collect()
    }

    /// The broker settings of the shop: the same broker and vhost, as the shop's user.
    fn shop_settings(&self) -> AmqpSettings {
        let mut url = url::Url::parse(self.amqp.url.expose()).expect("broker URL");
        url.set_username(&self.user).expect("user in URL");
        url.set_password(Some(&self.password))
            .expect("password in URL");
        AmqpSettings {
            url: SecretUrl::new(url.as_str()),
            ..self.amqp.clone()
        }
    }

    /// Waits until `stage`'s queue holds `ready` messages; fails at the deadline.
    async fn wait_for_ready(&self, stage: StageName, ready: u32) {
        let queue = self.topology.stage_queue(stage);
        let channel = self.workers.create_channel().await.expect("channel");
        let deadline = tokio::time::Instant::now() + DEADLINE / 2;
        loop {
            let counts = self
                .topology
                .counts(&channel, &queue)
                .await
                .expect("counts");
            if counts.ready == ready {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{queue} holds {} messages, not {ready}",
                counts.ready
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        messaging::close_channel(&channel).await.expect("close");
    }

    /// Publishes a sentinel as the workers (routed to the tap only), then reads the tap up to
    /// it: the shop's `order.placed` is the only message before it, and the revenue queue, the
    /// one bound to `order.customer_confirmed`, is empty.
    async fn assert_only_placed_was_routed(&self) {
        let workers = Publisher::open(&self.workers, &self.topology)
            .await
            .expect("publisher");
        workers
            .publish_routed(&[sentinel()])
            .await
            .expect("the sentinel is confirmed and routed");
        workers.close().await.expect("close");
        let mut tap = InboundStream::open(&self.workers, &self.tap, 10)
            .await
            .expect("consume the tap");
        let mut keys = Vec::new();
        while keys.last().map(String::as_str) != Some("sales.opportunity") {
            let inbound = tap
                .next()
                .await
                .expect("the tap is open")
                .expect("delivery");
            keys.push(inbound.routing_key().to_owned());
            inbound.ack().await.expect("ack");
        }
        tap.close().await.expect("close the tap");
        assert_eq!(keys, ["order.placed", "sales.opportunity"]);
        let channel = self.workers.create_channel().await.expect("channel");
        let revenue = self.topology.stage_queue(StageName::Revenue);
        let counts = self
            .topology
            .counts(&channel, &revenue)
            .await
            .expect("counts");
        assert_eq!(counts.ready, 0, "nothing reached {revenue}");
        messaging::close_channel(&channel).await.expect("close");
    }

    /// Deletes the user and every queue and the exchange of the namespace. Runs whatever the
    /// outcome, so each step reports its failure instead of stopping the others.
    async fn clean_up(&self) {
        let deleted = tokio::process::Command::new("rabbitmqctl")
            .args(["-q", "delete_user", &self.user])
            .output()
            .await;
        if !deleted.is_ok_and(|output| output.status.success()) {
            eprintln!(
                "could not delete broker user {} (it may not exist)",
                self.user
            );
        }
        let Ok(channel) = self.workers.create_channel().await else {
            eprintln!("could not open a channel to delete {}", self.amqp.namespace);
            return;
        };
        if let Err(e) = self.topology.delete_queue(&channel, &self.tap).await {
            eprintln!("{e:#}");
        }
        if let Err(e) = self.topology.delete(&channel).await {
            eprintln!("{e:#}");
        }
        let _ = messaging::close_channel(&channel).await;
        let _ = self.workers.close(200, "done".into()).await;
    }
}

/// The `rabbitmqctl` commands `docs/operations.md` gives for the shop's user, split into words
/// as a shell would. They must be exactly: add the user, set its permissions, set its topic
/// permissions.
fn documented_shop_commands() -> Vec<Vec<String>> {
    let docs = std::fs::read_to_string(DOCS).expect("the operations guide");
    let commands: Vec<Vec<String>> = docs
        .lines()
        .filter(|line| line.starts_with("rabbitmqctl "))
        .map(shell_words)
        .filter(|words| words.iter().any(|w| w == DOCUMENTED_USER))
        .map(|words| words[1..].to_vec())
        .collect();
    let names: Vec<&str> = commands.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(
        names,
        ["add_user", "set_permissions", "set_topic_permissions"],
        "{DOCS} documents the shop's user in three commands"
    );
    commands
}

/// Splits a command line into words: blanks separate words, and single or double quotes keep
/// what they enclose as it is (no variable is expanded).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_default().push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_default();
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_default().push(c),
        }
    }
    assert!(quote.is_none(), "unbalanced quotes in {line}");
    words.extend(word);
    words
}

/// Runs `rabbitmqctl` with `args`; the test fails if it does.
async fn rabbitmqctl(args: &[String]) {
    let output = tokio::process::Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .await
        .expect("rabbitmqctl runs");
    assert!(
        output.status.success(),
        "rabbitmqctl {}: {}",
        args[0],
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Tries to consume `queue` on a new channel of `connection`; the broker's refusal, if any.
async fn consume(connection: &Connection, queue: &str) -> Option<(u16, String)> {
    let channel = connection.create_channel().await.expect("channel");
    let consumed = channel
        .basic_consume(
            queue.into(),
            "shop".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    match consumed {
        Ok(_) => None,
        Err(e) => broker_refusal(&e),
    }
}

/// The reply code and text of the broker's refusal behind a failed publish, if there was one.
fn refusal(published: Result<(), PublishError>) -> Option<(u16, String)> {
    match published {
        Err(PublishError::Broker(e)) => broker_refusal(&e),
        _ => None,
    }
}

/// The reply code and text with which the broker closed the channel, if it did.
fn broker_refusal(error: &lapin::Error) -> Option<(u16, String)> {
    match error.kind() {
        ErrorKind::ProtocolError(e) => Some((e.get_id(), e.get_message().as_str().to_owned())),
        _ => None,
    }
}

/// A valid web order as `order.placed`.
fn placed(order_id: &str) -> WireEvent {
    let order: Order = serde_json::from_value(serde_json::json!({
        "order_id": order_id,
        "customer_id": "CUST-042",
        "channel": "web",
        "currency": "GBP",
        "placed_at": Utc::now(),
        "lines": [{"sku": "MUG-BLUE", "quantity": 2, "unit_price_minor": 1250}],
    }))
    .expect("valid order");
    WireEvent::new("shop/web", &OrderPlaced::new(order), None)
}

/// The event a dishonest shop would publish to have revenue recognised without the customer.
fn forged_acceptance(order_id: &str) -> WireEvent {
    let forged = OrderCustomerConfirmed {
        order_id: OrderId::parse(order_id).expect("order id"),
        basis: ConfirmationBasis::Explicit,
        confirmed_at: Utc::now(),
    };
    WireEvent::new("shop/web", &forged, None)
}

/// An event no stage consumes, so that only the tap receives it.
fn sentinel() -> WireEvent {
    let opportunity = SalesOpportunity {
        order_id: OrderId::parse("SENTINEL").expect("order id"),
        customer_id: "CUST-042".into(),
        suggestions: Vec::new(),
    };
    WireEvent::new("tests", &opportunity, None)
}
