//! Outages under a steady stream of orders: the broker stopped and started, the workers'
//! database connections terminated, a worker process killed and restarted. After each, every
//! submitted order reaches its final state exactly once. And the review desk publishes at once
//! again after the broker restarts.
//!
//! These tests stop the shared broker, so they live in their own test binary (cargo runs test
//! binaries one after another) and take a lock so that they run one at a time.

#[path = "pipeline/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use fulfilment::client::Client;
use fulfilment::domain::events::OrderPlaced;
use fulfilment::envelope::WireEvent;
use fulfilment::pipeline::PipelineOptions;
use fulfilment::settings::Settings;
use helpers::{TestEnv, order};
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const ORDERS: usize = 60;

/// Publishes `ORDERS` orders, one every 25 ms, each until the broker confirms it (reconnecting
/// as needed). A republished order is the same event, so it has one effect.
fn steady_stream(settings: Settings, prefix: &str) -> tokio::task::JoinHandle<()> {
    let events: Vec<WireEvent> = (0..ORDERS)
        .map(|i| {
            WireEvent::new(
                "tests",
                &OrderPlaced::new(order(&format!("{prefix}-{i}"), i as i64)),
                None,
            )
        })
        .collect();
    tokio::spawn(async move {
        let mut client: Option<Client> = None;
        for event in events {
            loop {
                if client.is_none() {
                    client = Client::connect(&settings.amqp, "tests/stream").await.ok();
                }
                let sent = match &client {
                    Some(c) => c.publish_raw(std::slice::from_ref(&event)).await.is_ok(),
                    None => false,
                };
                if sent {
                    break;
                }
                client = None;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
}

/// Every order completed once: six stage records each, the ledger balanced with revenue equal
/// to the net total, and one outbox event per order and event type.
async fn assert_exactly_once(env: &TestEnv, prefix: &str) {
    env.wait_completed(ORDERS as i64).await;
    let pool = &env.pool;
    let like = format!("{prefix}-%");
    let (orders, records): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM orders WHERE order_id LIKE $1 AND state = 'completed'),
                (SELECT count(*) FROM stage_records WHERE order_id LIKE $1)",
    )
    .bind(&like)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((orders, records), (ORDERS as i64, 6 * ORDERS as i64));
    let unbalanced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT o.order_id FROM orders o JOIN ledger_entries l USING (order_id)
           WHERE o.order_id LIKE $1 GROUP BY o.order_id, o.total_minor
           HAVING SUM(l.debit_minor) <> SUM(l.credit_minor)
               OR SUM(CASE WHEN l.account = 'revenue' THEN l.credit_minor - l.debit_minor END) <> o.total_minor) x",
    )
    .bind(&like)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        unbalanced, 0,
        "every ledger balances and recognises the net total once"
    );
    let ledger_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ledger_entries WHERE order_id LIKE $1")
            .bind(&like)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        ledger_rows,
        3 * ORDERS as i64,
        "one recognition posting (3 rows) per order"
    );
    let repeated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT order_id, routing_key FROM outbox WHERE order_id LIKE $1
           GROUP BY order_id, routing_key HAVING count(*) > 1) x",
    )
    .bind(&like)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(repeated, 0, "no event emitted twice for an order");
    let cases: i64 = sqlx::query_scalar("SELECT count(*) FROM review_cases")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(cases, 0, "nothing was escalated");
}

/// Starts the broker's application again when dropped, so a failing test leaves it running.
struct BrokerGuard;

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .arg("start_app")
            .stdout(Stdio::null())
            .status();
    }
}

async fn rabbitmqctl(action: &str) {
    let status = tokio::process::Command::new("rabbitmqctl")
        .arg(action)
        .stdout(Stdio::null())
        .status()
        .await
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {action}");
}

fn quick(settings: &mut Settings) {
    settings.stages.acceptance_window_secs = 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_stops_and_starts_mid_run() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut env = TestEnv::with(quick).await;
    env.start_pipeline(PipelineOptions::default()).await;
    let stream = steady_stream(env.settings.clone(), "BRK");
    env.wait_for("some orders verified", || {
        let pool = env.pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
                .fetch_one(&pool)
                .await
                .unwrap();
            (n >= 10).then_some(())
        }
    })
    .await;
    let guard = BrokerGuard;
    rabbitmqctl("stop_app").await;
    tokio::time::sleep(Duration::from_secs(2)).await; // the outage lasts two seconds
    rabbitmqctl("start_app").await;
    drop(guard);
    stream.await.unwrap();
    assert_exactly_once(&env, "BRK").await;
    assert!(env.restarts() >= 1, "the pipeline reconnected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_connections_are_terminated_mid_run() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut env = TestEnv::with(quick).await;
    env.start_pipeline(PipelineOptions::default()).await;
    let stream = steady_stream(env.settings.clone(), "PGK");
    let database = url::Url::parse(env.settings.database.url.expose())
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned();
    let admin = sqlx::PgPool::connect(env.settings.database.url.expose())
        .await
        .unwrap();
    for round in 0..3 {
        env.wait_for("more orders", || {
            let pool = env.pool.clone();
            async move {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
                (n >= 10 + 15 * round).then_some(())
            }
        })
        .await;
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&database)
        .fetch_all(&admin)
        .await
        .unwrap();
        assert!(!killed.is_empty());
    }
    admin.close().await;
    stream.await.unwrap();
    assert_exactly_once(&env, "PGK").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_is_killed_and_restarted() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::with(quick).await;
    let spawn = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_fulfilment"))
            .args(["run", "--no-api"])
            .env(
                "FULFILMENT__DATABASE__URL",
                env.settings.database.url.expose(),
            )
            .env("FULFILMENT__AMQP__NAMESPACE", &env.settings.amqp.namespace)
            .env("FULFILMENT__STAGES__ACCEPTANCE_WINDOW_SECS", "1")
            .env("FULFILMENT__SCHEDULER__INTERVAL_MS", "100")
            .env("FULFILMENT__LOG__FILTER", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the fulfilment binary")
    };
    let mut first = spawn();
    let stream = steady_stream(env.settings.clone(), "KIL");
    env.wait_for("some orders handed over", || {
        let pool = env.pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE state <> 'placed'")
                .fetch_one(&pool)
                .await
                .unwrap();
            (n >= 15).then_some(())
        }
    })
    .await;
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let second = Arc::new(tokio::sync::Mutex::new(spawn()));
    stream.await.unwrap();
    assert_exactly_once(&env, "KIL").await;
    second.lock().await.start_kill().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_desk_reconnects_after_the_broker_restarts() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    let url = env
        .start_api(&[("Mia Chen", &["customer_service"], "tok-service")])
        .await;
    env.set_stock("KETTLE-STEEL", 0).await;
    let kettle = |id: &str| {
        helpers::order_with(
            id,
            vec![
                serde_json::json!({"sku": "KETTLE-STEEL", "quantity": 1, "unit_price_minor": 3999}),
            ],
        )
    };
    env.submit(&[kettle("DESK-1"), kettle("DESK-2")]).await;
    env.wait_cases(2).await;

    retry_case_of(&env, &url, "DESK-1").await;
    assert_eq!(retry_published_by(&env, "DESK-1").await, "handler");
    let guard = BrokerGuard;
    rabbitmqctl("stop_app").await;
    rabbitmqctl("start_app").await;
    drop(guard);
    // The desk's first connection died with the broker; it opens a new one to publish.
    retry_case_of(&env, &url, "DESK-2").await;
    assert_eq!(retry_published_by(&env, "DESK-2").await, "handler");
}

/// Retries the open case about `order` through the review API.
async fn retry_case_of(env: &TestEnv, url: &str, order: &str) {
    let id: i64 =
        sqlx::query_scalar("SELECT id FROM review_cases WHERE order_id = $1 AND status = 'open'")
            .bind(order)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    let note = serde_json::json!({"note": "stock arrived"});
    let retry = format!("{url}/cases/{id}/retry");
    let (status, body) = helpers::post(&reqwest::Client::new(), retry, "tok-service", note).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
}

/// Who published the re-sent message for `order`: `handler` (the desk, at once) or `relay`
/// (after the grace period, had the desk failed to).
async fn retry_published_by(env: &TestEnv, order: &str) -> String {
    env.wait_for("the re-sent message published", || async {
        let (pending, relayed): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM outbox_pending WHERE id = o.id), relayed_at IS NOT NULL
             FROM outbox o WHERE order_id = $1 AND event_type = 'review.retry'",
        )
        .bind(order)
        .fetch_one(&env.pool)
        .await
        .unwrap();
        match (pending, relayed) {
            (true, _) => None,
            (false, true) => Some("relay".to_owned()),
            (false, false) => Some("handler".to_owned()),
        }
    })
    .await
}

/// Orders of two to four lines each, over the same four products in varying line orders, so
/// that concurrent batches want the same stock rows.
fn hot_orders(prefix: &str, n: usize) -> Vec<WireEvent> {
    let skus = [
        ("MUG-BLUE", 1250),
        ("KETTLE-STEEL", 3999),
        ("TEA-EARLGREY-250G", 699),
        ("KETTLE-DESCALER", 450),
    ];
    (0..n)
        .map(|i| {
            let lines: Vec<serde_json::Value> = (0..2 + i % 3)
                .map(|k| {
                    let (sku, price) = skus[(i * 3 + k * (1 + i % 2)) % skus.len()];
                    helpers::line(sku, 1, price)
                })
                .collect();
            let order = helpers::order_with(&format!("{prefix}-{i}"), lines);
            WireEvent::new("tests", &OrderPlaced::new(order), None)
        })
        .collect()
}

/// Deadlocks Postgres has detected in the test's database.
async fn deadlocks(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_hot_stock_through_a_broker_restart_without_deadlock() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut env = TestEnv::with(quick).await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_pipeline(PipelineOptions::default()).await;
    let before = deadlocks(&env).await;
    let orders = hot_orders("HOT", 150);
    let (first, rest) = orders.split_at(50);
    env.client.publish_raw(first).await.unwrap();
    env.wait_for("some orders prepared", || {
        let pool = env.pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM allocations")
                .fetch_one(&pool)
                .await
                .unwrap();
            (n >= 20).then_some(())
        }
    })
    .await;
    let guard = BrokerGuard;
    rabbitmqctl("stop_app").await;
    rabbitmqctl("start_app").await;
    drop(guard);
    // A backlog builds while the pipelines reconnect, and arrives as full batches in both.
    let client = Client::connect(&env.settings.amqp, "tests/hot")
        .await
        .unwrap();
    client.publish_raw(rest).await.unwrap();
    env.wait_completed(150).await;
    assert_eq!(
        deadlocks(&env).await - before,
        0,
        "Postgres detected deadlocks"
    );
    // Stock adds up: what is left and what is allocated is what was seeded.
    let catalogue =
        fulfilment::seed::read(std::path::Path::new("examples/catalogue.json")).unwrap();
    for level in catalogue.stock {
        let (available, allocated): (i32, i64) = sqlx::query_as(
            "SELECT available, (SELECT coalesce(sum(quantity), 0) FROM allocations
               WHERE sku = $1 AND released_at IS NULL) FROM stock WHERE sku = $1",
        )
        .bind(&level.sku)
        .fetch_one(&env.pool)
        .await
        .unwrap();
        assert_eq!(
            i64::from(available) + allocated,
            i64::from(level.available),
            "{}",
            level.sku
        );
    }
    assert!(env.restarts() >= 2, "both pipelines reconnected");
}
