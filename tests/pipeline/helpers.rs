//! A test environment: its own database and namespace on the real Postgres and RabbitMQ, so
//! tests run in parallel; pipelines started in-process; a simulated customer; a tap that records
//! every event published; and waiting on outcomes, woken by each event the tap sees, with a
//! deadline. The environment removes its database and queues when it is dropped, whether the
//! test passed or not.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use fulfilment::client::Client;
use fulfilment::domain::Order;
use fulfilment::domain::catalogue::{Catalogue, StockLevel};
use fulfilment::domain::events::{ConfirmationOutcome, CustomerConfirmation, OrderHandedOver};
use fulfilment::envelope::Envelope;
use fulfilment::messaging::{self, InboundStream, Topology};
use fulfilment::pipeline::{Pipeline, PipelineOptions};
use fulfilment::review::People;
use fulfilment::review::api::{self, ApiState};
use fulfilment::review::people::hash_token;
use fulfilment::settings::{PersonSettings, SecretUrl, Settings};
use fulfilment::{db, seed};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How long a test waits for an outcome before it fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// How often a wait looks again when no event arrives (some outcomes, such as a review case
/// resolved, publish nothing).
const LOOK_AGAIN: Duration = Duration::from_millis(250);

/// One test's world.
pub struct TestEnv {
    pub settings: Settings,
    pub pool: PgPool,
    pub client: Client,
    pub topology: Topology,
    pipelines: Vec<Pipeline>,
    helpers: Vec<JoinHandle<()>>,
    extra_queues: Vec<String>,
    tap: Option<Tap>,
}

impl TestEnv {
    /// A fresh database and namespace, migrated, seeded with `examples/catalogue.json` and
    /// declared, with nothing running yet.
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// Like [`TestEnv::new`], with settings changed by `tweak`.
    pub async fn with(tweak: impl FnOnce(&mut Settings)) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let mut settings = Settings::load().expect("settings load");
        settings.amqp.namespace = format!("test-{}", &id[..12]);
        settings.database.url = database_url(&settings, &format!("fulfilment_test_{}", &id[..12]));
        settings.relay.interval_ms = 100;
        settings.relay.grace_ms = 1000;
        settings.scheduler.interval_ms = 100;
        settings.stages.acceptance_window_secs = 86_400;
        tweak(&mut settings);
        db::create_if_missing(&settings.database)
            .await
            .expect("create database");
        let pool = db::connect(&settings.database)
            .await
            .expect("connect database");
        db::migrate(&pool).await.expect("migrate");
        let catalogue = seed::read(Path::new("examples/catalogue.json")).expect("sample catalogue");
        seed::apply(&pool, &catalogue).await.expect("seed");
        let client = Client::connect(&settings.amqp, "tests")
            .await
            .expect("connect broker");
        let topology = Topology::of(&settings.amqp);
        let mut env = Self {
            settings,
            pool,
            client,
            topology,
            pipelines: Vec::new(),
            helpers: Vec::new(),
            extra_queues: Vec::new(),
            tap: None,
        };
        let tap = env.tap_everything().await;
        env.tap = Some(tap);
        env
    }

    /// Starts a pipeline in this process with `options`.
    pub async fn start_pipeline(&mut self, options: PipelineOptions) {
        let pipeline = Pipeline::start(&self.settings, self.pool.clone(), options)
            .await
            .expect("start pipeline");
        self.pipelines.push(pipeline);
    }

    /// Restarts of every pipeline's tasks so far (0 means no worker ever restarted).
    pub fn restarts(&self) -> u64 {
        self.pipelines.iter().map(|p| p.restarts()).sum()
    }

    /// Serves the review API on a free local port for these people (name, roles, token) and
    /// returns its base URL.
    pub async fn start_api(&mut self, people: &[(&str, &[&str], &str)]) -> String {
        let settings: Vec<PersonSettings> = people
            .iter()
            .map(|(name, roles, token)| PersonSettings {
                name: (*name).into(),
                roles: roles.iter().map(|r| (*r).into()).collect(),
                token_sha256: hash_token(token),
            })
            .collect();
        let people = People::from_settings(&settings);
        let state = ApiState::new(&self.settings.amqp, self.pool.clone(), people)
            .with_seller(self.settings.stages.seller.seller());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let token = tokio_util::sync::CancellationToken::new();
        self.helpers.push(tokio::spawn(async move {
            api::serve(listener, state, token).await.unwrap();
        }));
        url
    }

    /// Shuts down every pipeline started so far, as a process stop would.
    pub async fn stop_pipelines(&mut self) {
        for pipeline in self.pipelines.drain(..) {
            pipeline.shutdown().await.expect("clean shutdown");
        }
    }

    /// Starts a simulated customer who accepts every order once it is handed over.
    pub async fn start_customer(&mut self) {
        self.start_customer_saying(&[ConfirmationOutcome::Accepted])
            .await;
    }

    /// Starts a simulated customer who answers every handed-over order with `answers`, in order.
    pub async fn start_customer_saying(&mut self, answers: &[ConfirmationOutcome]) {
        let answers = answers.to_vec();
        let queue = self.bind_queue("customer", &["order.handed_over"]).await;
        let connection = messaging::connect(&self.settings.amqp, "customer")
            .await
            .unwrap();
        let mut stream = InboundStream::open(&connection, &queue, 100).await.unwrap();
        let client = Client::connect(&self.settings.amqp, "tests/customer")
            .await
            .unwrap();
        self.helpers.push(tokio::spawn(async move {
            let _connection = connection;
            // Like any well-behaved consumer, the customer deduplicates on the event id.
            let mut seen = std::collections::HashSet::new();
            while let Some(Ok(inbound)) = stream.next().await {
                let (envelope, _) = Envelope::decode(inbound.body()).unwrap();
                if !seen.insert(envelope.id.clone()) {
                    inbound.ack().await.unwrap();
                    continue;
                }
                let handed_over: OrderHandedOver = envelope.payload().unwrap();
                for outcome in &answers {
                    let answer = CustomerConfirmation {
                        order_id: handed_over.order_id.clone(),
                        outcome: *outcome,
                        reason: None,
                    };
                    client.publish(&[answer]).await.unwrap();
                }
                inbound.ack().await.unwrap();
            }
        }));
    }

    /// The tap recording every event published on the exchange since the environment began.
    pub async fn start_tap(&mut self) -> Tap {
        self.tap.clone().expect("every environment has a tap")
    }

    async fn tap_everything(&mut self) -> Tap {
        let queue = self.bind_queue("tap", &["#"]).await;
        let connection = messaging::connect(&self.settings.amqp, "tap")
            .await
            .unwrap();
        let mut stream = InboundStream::open(&connection, &queue, 500).await.unwrap();
        let tap = Tap::default();
        let (events, arrived, traces) =
            (tap.events.clone(), tap.arrived.clone(), tap.traces.clone());
        self.helpers.push(tokio::spawn(async move {
            let _connection = connection;
            while let Some(Ok(inbound)) = stream.next().await {
                // Bad input published by tests is not an event; the tap keeps only events.
                if let Ok((envelope, _)) = Envelope::decode(inbound.body()) {
                    if let Some(trace) = inbound.traceparent() {
                        traces.lock().unwrap().insert(envelope.id.clone(), trace);
                    }
                    events
                        .lock()
                        .unwrap()
                        .push((inbound.body().to_vec(), envelope));
                }
                arrived.notify_waiters();
                inbound.ack().await.unwrap();
            }
        }));
        tap
    }

    /// Declares a test-owned quorum queue bound to `keys`; it is deleted at teardown.
    pub async fn bind_queue(&mut self, name: &str, keys: &[&str]) -> String {
        let queue = format!("{}.test-{name}", self.settings.amqp.namespace);
        let channel = self.client.connection().create_channel().await.unwrap();
        self.topology
            .declare_queue(&channel, &queue, keys)
            .await
            .unwrap();
        channel.close(200, "ok".into()).await.unwrap();
        self.extra_queues.push(queue.clone());
        queue
    }

    /// Deletes a queue someone else declared in this namespace when the test ends.
    pub fn forget_queue_at_teardown(&mut self, queue: &str) {
        self.extra_queues.push(queue.to_owned());
    }

    /// Submits orders as `order.placed`.
    pub async fn submit(&self, orders: &[Order]) {
        self.client.submit(orders).await.expect("submit orders");
    }

    /// Waits until `check` returns `Some`, looking again each time the tap sees an event (and
    /// at least every [`LOOK_AGAIN`]); fails the test at the deadline with `what`.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        match self.wait_until(check).await {
            Some(value) => value,
            None => panic!("timed out waiting for {what}"),
        }
    }

    /// Like [`TestEnv::wait_for`], but `None` at the deadline, for callers that say more.
    pub async fn wait_until<T, F, Fut>(&self, mut check: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let arrived = self
            .tap
            .as_ref()
            .map(|t| t.arrived.clone())
            .unwrap_or_default();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let next_event = arrived.notified();
            if let Some(value) = check().await {
                return Some(value);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            let _ = tokio::time::timeout(LOOK_AGAIN, next_event).await;
        }
    }

    /// Sets the stock of one product, as `fulfilment seed` would.
    pub async fn set_stock(&self, sku: &str, available: u32) {
        let stock = Catalogue {
            stock: vec![StockLevel {
                sku: sku.into(),
                available,
            }],
            ..Catalogue::default()
        };
        seed::apply(&self.pool, &stock).await.expect("set stock");
    }

    /// Waits until all `n` orders are completed and the tap has seen a revenue event for each.
    pub async fn wait_recognised(&self, tap: &Tap, n: usize) {
        self.wait_completed(i64::try_from(n).unwrap()).await;
        self.wait_for(&format!("{n} revenue events on the exchange"), || {
            let seen = tap.count_by_order("fulfilment.revenue.recognised.v1").len();
            async move { (seen == n).then_some(()) }
        })
        .await;
    }

    /// Waits until exactly `n` orders are completed and no outbox row is unsent.
    pub async fn wait_completed(&self, n: i64) {
        let pool = self.pool.clone();
        let done = self
            .wait_until(|| {
                let pool = pool.clone();
                async move {
                    let (done, unsent) = completion(&pool).await;
                    (done == n && unsent == 0).then_some(())
                }
            })
            .await;
        if done.is_none() {
            let (done, unsent) = completion(&self.pool).await;
            let states: Vec<(String, String)> =
                sqlx::query_as("SELECT order_id, state FROM orders WHERE state <> 'completed'")
                    .fetch_all(&self.pool)
                    .await
                    .unwrap();
            let cases = cases(&self.pool).await;
            panic!(
                "timed out waiting for {n} completed orders: {done} completed, {unsent} events \
                 not yet relayed, not completed {states:?}, cases {cases:?}"
            );
        }
    }
}

impl Drop for TestEnv {
    /// Removes the test's queues and database even when the test failed part-way: pipelines
    /// and helpers are told to stop, and the removal runs on a runtime of its own.
    fn drop(&mut self) {
        for pipeline in &self.pipelines {
            pipeline.shutdown_token().cancel();
        }
        for helper in &self.helpers {
            helper.abort();
        }
        let (settings, topology) = (self.settings.clone(), self.topology.clone());
        let queues = std::mem::take(&mut self.extra_queues);
        let removal = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the removal");
            runtime.block_on(remove(&settings, &topology, &queues));
        });
        let _ = removal.join();
    }
}

/// Deletes a test's queues and exchange, and its database (closing its connections).
async fn remove(settings: &Settings, topology: &Topology, extra_queues: &[String]) {
    if let Ok(client) = Client::connect(&settings.amqp, "tests/teardown").await {
        if let Ok(channel) = client.connection().create_channel().await {
            for queue in extra_queues {
                let _ = channel
                    .queue_delete(queue.as_str().into(), Default::default())
                    .await;
            }
            let _ = topology.delete(&channel).await;
        }
        let _ = client.close().await;
    }
    let _ = db::drop_database(&settings.database).await;
}

/// Completed orders and unsent outbox rows.
pub async fn completion(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM orders WHERE state = 'completed'),
                (SELECT count(*) FROM outbox_pending)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Stage names in each order's timeline, by order id.
pub async fn timelines(pool: &PgPool) -> HashMap<String, Vec<String>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT order_id, stage FROM stage_records ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (order, stage) in rows {
        map.entry(order).or_default().push(stage);
    }
    map
}

/// The six stages in pipeline order, as timelines list them.
pub fn six_stages() -> Vec<String> {
    [
        "verify",
        "prepare",
        "documents",
        "handover",
        "confirm",
        "revenue",
    ]
    .map(String::from)
    .to_vec()
}

/// An event as the tap saw it: the raw body and its decoded envelope.
pub type Seen = (Vec<u8>, Envelope);

/// Every event the tap saw, and a signal each time one arrives.
#[derive(Clone, Default)]
pub struct Tap {
    pub events: Arc<Mutex<Vec<Seen>>>,
    arrived: Arc<tokio::sync::Notify>,
    /// The trace context each event (by id) carried.
    traces: Arc<Mutex<HashMap<String, fulfilment::envelope::TraceParent>>>,
}

impl Tap {
    /// How many distinct events (by id) of `ce_type` the tap saw for each order. Delivery is at
    /// least once: the same event may arrive twice (a stage and the relay both published it),
    /// and consumers deduplicate on its id; two ids would be two effects.
    pub fn count_by_order(&self, ce_type: &str) -> HashMap<String, usize> {
        let mut ids: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
        for (_, e) in self.events.lock().unwrap().iter() {
            if e.event_type == ce_type {
                ids.entry(e.subject.clone())
                    .or_default()
                    .insert(e.id.clone());
            }
        }
        ids.into_iter()
            .map(|(order, ids)| (order, ids.len()))
            .collect()
    }

    /// Checks every event the tap saw against the contract: its `data` is valid under the JSON
    /// Schema of its type. Returns how many events were checked.
    pub fn assert_all_match_the_contract(&self) -> usize {
        let events = self.events.lock().unwrap().clone();
        for (_, envelope) in &events {
            let event = fulfilment::domain::EventType::from_cloudevents_type(&envelope.event_type)
                .expect("a known type");
            let schema = fulfilment::contract::payload_schema(event);
            let validator = jsonschema::validator_for(&schema).expect("a valid schema");
            let errors: Vec<String> = validator
                .iter_errors(&envelope.data)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{} does not match its schema: {errors:?}",
                envelope.event_type
            );
        }
        events.len()
    }

    /// The trace ids of the events the tap saw about `order_id`, by routing key, in order.
    pub fn trace_ids_for(&self, order_id: &str) -> Vec<(String, Option<String>)> {
        let traces = self.traces.lock().unwrap();
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, e)| e.subject == order_id)
            .map(|(_, e)| {
                (
                    e.event_type.clone(),
                    traces.get(&e.id).map(|t| t.trace_id()),
                )
            })
            .collect()
    }

    /// The raw bodies of every event the tap saw about `order_id`.
    pub fn bodies_for(&self, order_id: &str) -> Vec<(String, Vec<u8>)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, e)| e.subject == order_id)
            .map(|(raw, e)| (e.event_type.clone(), raw.clone()))
            .collect()
    }
}

/// `n` distinct valid orders with ids `<prefix>-<i>`.
pub fn orders(prefix: &str, n: usize) -> Vec<Order> {
    (0..n)
        .map(|i| order(&format!("{prefix}-{i}"), i as i64))
        .collect()
}

/// One valid web order of products recognised on acceptance: a kettle, and for every third
/// order an installation visit.
pub fn order(id: &str, seed: i64) -> Order {
    let mut lines =
        vec![serde_json::json!({"sku": "KETTLE-STEEL", "quantity": 1, "unit_price_minor": 3999})];
    if seed % 3 == 0 {
        lines.push(
            serde_json::json!({"sku": "INSTALL-SERVICE", "quantity": 1, "unit_price_minor": 4500}),
        );
    }
    order_with(id, lines)
}

/// An order line as JSON.
pub fn line(sku: &str, quantity: u32, unit_price_minor: i64) -> serde_json::Value {
    serde_json::json!({"sku": sku, "quantity": quantity, "unit_price_minor": unit_price_minor})
}

/// A web order for CUST-042 placed on 2026-11-20 with these lines.
pub fn order_with(id: &str, lines: Vec<serde_json::Value>) -> Order {
    let json = serde_json::json!({
        "order_id": id,
        "customer_id": "CUST-042",
        "channel": "web",
        "currency": "GBP",
        "placed_at": Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap(),
        "lines": lines,
    });
    serde_json::from_value(json).expect("valid test order")
}

/// An order from JSON, which must be valid.
pub fn order_json(json: serde_json::Value) -> Order {
    serde_json::from_value(json).expect("valid test order")
}

/// A review case as tests look at it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Case {
    pub order_id: Option<String>,
    pub stage: String,
    pub reason: String,
    pub required_role: String,
}

/// Every review case, oldest first.
pub async fn cases(pool: &PgPool) -> Vec<Case> {
    sqlx::query_as("SELECT order_id, stage, reason, required_role FROM review_cases ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// The state of an order, if it exists.
pub async fn state(pool: &PgPool, order_id: &str) -> Option<String> {
    sqlx::query_scalar("SELECT state FROM orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
        .unwrap()
}

impl TestEnv {
    /// Waits until the order is in `wanted`.
    pub async fn wait_state(&self, order_id: &str, wanted: &str) {
        let pool = self.pool.clone();
        self.wait_for(&format!("{order_id} to be {wanted}"), || {
            let pool = pool.clone();
            async move { (state(&pool, order_id).await.as_deref() == Some(wanted)).then_some(()) }
        })
        .await;
    }

    /// Waits until the order exists and is past `placed`.
    pub async fn wait_state_at_least_verified(&self, order_id: &str) {
        let pool = self.pool.clone();
        self.wait_for(&format!("{order_id} to be verified"), || {
            let pool = pool.clone();
            async move {
                let state = state(&pool, order_id).await;
                state.filter(|s| s != "placed").map(|_| ())
            }
        })
        .await;
    }

    /// Waits until there are `n` review cases.
    pub async fn wait_cases(&self, n: usize) -> Vec<Case> {
        let pool = self.pool.clone();
        self.wait_for(&format!("{n} review cases"), || {
            let pool = pool.clone();
            async move {
                let found = cases(&pool).await;
                (found.len() >= n).then_some(found)
            }
        })
        .await
    }
}

fn database_url(settings: &Settings, name: &str) -> SecretUrl {
    let mut url = url::Url::parse(settings.database.url.expose()).expect("database.url");
    url.set_path(name);
    SecretUrl::new(url.to_string())
}

/// POSTs `body` as JSON to `url` with a bearer token; the status and the JSON answer (null if
/// there is none).
pub async fn post(
    http: &reqwest::Client,
    url: String,
    token: &str,
    body: serde_json::Value,
) -> (reqwest::StatusCode, serde_json::Value) {
    let response = http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}
