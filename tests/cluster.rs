//! Failover on a three-node RabbitMQ cluster started on this machine by
//! `scripts/rabbitmq-cluster`: two worker processes connected to node 1, sharing each stage's
//! partitions, handle a stream of orders while node 1 (the one they are connected to) stops and
//! comes back, then node 2, and one worker is killed. Every order completes, each stage handling it exactly once, in
//! pipeline order.

#[path = "support/process.rs"]
#[allow(dead_code)]
mod process;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fulfilment::client::Client;
use fulfilment::domain::{Order, OrderState};
use fulfilment::settings::{SecretUrl, Settings};
use fulfilment::{db, seed};
use process::{Process, free_address};
use serde_json::json;
use sqlx::PgPool;

/// Partitions of each stage: the two workers share them, and the survivor takes them all.
const PARTITIONS: u16 = 4;

/// How many orders the stream places.
const ORDERS: u64 = 120;

/// How long the test waits for every order to complete once the stream is over.
const DEADLINE: Duration = Duration::from_secs(180);

/// The cluster, stopped and its data removed when dropped.
struct Cluster;

impl Cluster {
    fn start() -> Self {
        // A cluster left by an earlier run that was killed is removed first.
        cluster(&["stop"]);
        assert!(cluster(&["start"]), "the cluster starts");
        Self
    }

    fn urls() -> Vec<String> {
        let output = Command::new("scripts/rabbitmq-cluster")
            .arg("urls")
            .output()
            .unwrap();
        String::from_utf8(output.stdout)
            .unwrap()
            .trim()
            .split(',')
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        cluster(&["stop"]);
    }
}

/// Runs `scripts/rabbitmq-cluster` with `args`; whether it succeeded.
fn cluster(args: &[&str]) -> bool {
    Command::new("scripts/rabbitmq-cluster")
        .args(args)
        .status()
        .unwrap()
        .success()
}

/// Settings for the cluster: node 1 first, the others to fail over to; a database of its own.
fn settings() -> Settings {
    let urls = Cluster::urls();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut settings = Settings::load().unwrap();
    settings.amqp.namespace = format!("cluster-{}", &id[..12]);
    settings.amqp.url = SecretUrl::new(urls[0].clone());
    settings.amqp.failover_urls = urls[1..].join(",");
    settings.amqp.partitions = PARTITIONS;
    let mut url = url::Url::parse(settings.database.url.expose()).unwrap();
    url.set_path(&format!("fulfilment_cluster_{}", &id[..12]));
    settings.database.url = SecretUrl::new(url.to_string());
    settings
}

/// A worker process on the cluster, deeming acceptance a second after handover.
fn worker(settings: &Settings) -> Process {
    Process::run(
        settings,
        &[
            (
                "FULFILMENT__AMQP__URL",
                settings.amqp.url.expose().to_owned(),
            ),
            (
                "FULFILMENT__AMQP__FAILOVER_URLS",
                settings.amqp.failover_urls.clone(),
            ),
            ("FULFILMENT__AMQP__PARTITIONS", PARTITIONS.to_string()),
            ("FULFILMENT__STAGES__ACCEPTANCE_WINDOW_SECS", "1".to_owned()),
            ("FULFILMENT__REVIEW__LISTEN", free_address()),
        ],
    )
}

fn order(n: u64) -> Order {
    serde_json::from_value(json!({
        "order_id": format!("HA-{n:04}"),
        "customer_id": "CUST-042",
        "channel": "web",
        "currency": "GBP",
        "placed_at": "2026-11-20T09:00:00Z",
        "lines": [{"sku": "MUG-BLUE", "quantity": 1 + n % 3, "unit_price_minor": 1250}]
    }))
    .unwrap()
}

/// Publishes `orders`, reconnecting (to any node) and publishing again until the broker
/// confirms them. Publishing an order twice is harmless: the same order again is ignored.
async fn place(client: &mut Client, settings: &Settings, orders: &[Order]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(error) = client.submit(orders).await {
        assert!(Instant::now() < deadline, "publishing: {error:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        match Client::connect(&settings.amqp, "tests/cluster").await {
            Ok(again) => *client = again,
            Err(error) => eprintln!("reconnecting: {error:#}"),
        }
    }
}

/// Every order's timeline, oldest first: the stage and the order's state after it.
async fn timelines(pool: &PgPool) -> HashMap<String, Vec<(String, OrderState)>> {
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT order_id, stage, state_after FROM stage_records ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut map: HashMap<String, Vec<(String, OrderState)>> = HashMap::new();
    for (order, stage, state) in rows {
        map.entry(order)
            .or_default()
            .push((stage, state.parse().unwrap()));
    }
    map
}

async fn completed(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM orders WHERE state = 'completed'")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_complete_once_and_in_order_through_node_failures_and_a_killed_worker() {
    let _cluster = Cluster::start();
    let settings = settings();
    db::create_if_missing(&settings.database).await.unwrap();
    let pool = db::connect(&settings.database).await.unwrap();
    db::migrate(&pool).await.unwrap();
    let catalogue = seed::read(Path::new("examples/catalogue.json")).unwrap();
    seed::apply(&pool, &catalogue).await.unwrap();
    sqlx::query("UPDATE stock SET available = 100000")
        .execute(&pool)
        .await
        .unwrap();

    let first = worker(&settings);
    let second = worker(&settings);
    let mut client = Client::connect(&settings.amqp, "tests/cluster")
        .await
        .unwrap();
    // Along the stream: node 1 (every process's first node) stops and returns, then node 2,
    // and the first worker is killed.
    let mut first = Some(first);
    for chunk in 0..ORDERS / 10 {
        let orders: Vec<Order> = (chunk * 10..chunk * 10 + 10).map(order).collect();
        place(&mut client, &settings, &orders).await;
        match chunk {
            2 => assert!(cluster(&["stop-node", "1"])),
            4 => assert!(cluster(&["start-node", "1"])),
            6 => assert!(cluster(&["stop-node", "2"])),
            8 => {
                let killed = first.take().unwrap();
                // SAFETY: signalling a child this test owns.
                unsafe { libc::kill(killed.child.id() as libc::pid_t, libc::SIGKILL) };
            }
            9 => assert!(cluster(&["start-node", "2"])),
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }

    let deadline = Instant::now() + DEADLINE;
    while completed(&pool).await < ORDERS as i64 {
        assert!(
            Instant::now() < deadline,
            "{} of {ORDERS} orders completed\n{}",
            completed(&pool).await,
            second.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let timelines = timelines(&pool).await;
    assert_eq!(timelines.len() as u64, ORDERS);
    for (order_id, timeline) in timelines {
        // Once: no stage recorded the same step twice. In order: the order only moved forward.
        let steps: HashSet<&(String, OrderState)> = timeline.iter().collect();
        assert_eq!(steps.len(), timeline.len(), "{order_id}: {timeline:?}");
        let states: Vec<OrderState> = timeline.iter().map(|(_, s)| *s).collect();
        assert!(states.is_sorted(), "{order_id}: {timeline:?}");
        assert_eq!(timeline[0].0, "verify", "{order_id}: {timeline:?}");
    }
    let recognised: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT order_id FROM recognitions GROUP BY order_id, line_no
           HAVING count(*) FILTER (WHERE reversed_at IS NULL) <> 1) AS twice",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(recognised, 0, "each line recognised once");
    drop(second);
    pool.close().await;
}
