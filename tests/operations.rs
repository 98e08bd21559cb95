//! What an operator relies on, tried on real `fulfilment` processes: metrics that move as orders
//! flow, readiness that follows the database, traces exported to an OTLP collector that keep
//! one tree per order through a deemed acceptance, and two processes serving the API on one
//! port side by side.

#[path = "pipeline/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "support/process.rs"]
#[allow(dead_code)]
mod process;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::routing::post;
use helpers::{TestEnv, line, order_with};
use process::{Process, free_address};
use serde_json::Value;

/// `GET url`: status and body, or `None` when nothing answers.
async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// The value of one sample in a Prometheus text page: `name{labels}` exactly, 0 if absent.
fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_histograms_move_as_orders_flow() {
    let mut env = TestEnv::new().await;
    let metrics = free_address();
    let process = Process::run(
        &env.settings,
        &[
            ("FULFILMENT__METRICS__LISTEN", metrics.clone()),
            ("FULFILMENT__REVIEW__LISTEN", free_address()),
        ],
    );
    let url = format!("http://{metrics}/metrics");
    let before = env
        .wait_for("the metrics listener", || async {
            get(&url).await.map(|(_, b)| b)
        })
        .await;
    env.start_customer().await;
    env.submit(&helpers::orders("METRIC", 5)).await;
    env.wait_completed(5).await;
    let handled = "fulfilment_deliveries_total{stage=\"verify\",outcome=\"handled\"}";
    let series = [
        handled,
        "fulfilment_batch_seconds_count{stage=\"revenue\"}",
        "fulfilment_batch_size_count{stage=\"prepare\"}",
        "fulfilment_events_published_total{by=\"handler\"}",
        "fulfilment_order_seconds_count",
        "fulfilment_outbox_lag_seconds_count{by=\"handler\"}",
        "fulfilment_sql_statements_total",
        "fulfilment_db_commits_total",
    ];
    let after = env
        .wait_for("every order counted", || async {
            let page = get(&url).await?.1;
            (sample(&page, "fulfilment_order_seconds_count") >= 5.0).then_some(page)
        })
        .await;
    for series in series {
        assert!(
            sample(&after, series) > sample(&before, series),
            "{series} did not move: {} -> {}\n{}",
            sample(&before, series),
            sample(&after, series),
            process.log()
        );
    }
    assert_eq!(sample(&after, handled) - sample(&before, handled), 5.0);
    assert!(after.contains("# TYPE fulfilment_batch_seconds histogram"));
    assert!(after.contains("# TYPE fulfilment_deliveries_total counter"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_turns_503_while_the_database_is_unreachable_and_back_after() {
    let env = TestEnv::new().await;
    let metrics = free_address();
    let _process = Process::run(
        &env.settings,
        &[
            ("FULFILMENT__METRICS__LISTEN", metrics.clone()),
            ("FULFILMENT__REVIEW__LISTEN", free_address()),
        ],
    );
    let url = format!("http://{metrics}/health/ready");
    let ready = |want: u16| {
        let url = url.clone();
        async move {
            let (status, body) = get(&url).await?;
            (status == want).then(|| serde_json::from_str::<Value>(&body).unwrap())
        }
    };
    let body = env.wait_for("ready", || ready(200)).await;
    assert_eq!(body["broker"]["ok"], true, "{body}");
    assert_eq!(body["workers"]["ok"], true, "{body}");
    assert_eq!(
        get(&format!("http://{metrics}/health/live"))
            .await
            .unwrap()
            .0,
        200
    );

    // The database refuses new connections and drops the process's.
    let (database, admin) = admin_pool(&env).await;
    let sql = format!("ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS false");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&admin)
        .await
        .unwrap();
    let terminate = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                     WHERE datname = $1 AND pid <> pg_backend_pid()";
    let drop_connections = || async {
        sqlx::query(terminate)
            .bind(&database)
            .execute(&admin)
            .await
            .unwrap();
    };
    drop_connections().await;
    let body = env
        .wait_for("not ready", || async {
            drop_connections().await;
            ready(503).await
        })
        .await;
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["database"]["ok"], false, "{body}");
    assert!(
        body["database"]["detail"]
            .as_str()
            .unwrap()
            .contains("database"),
        "the failing part is named: {body}"
    );
    assert_eq!(
        get(&format!("http://{metrics}/health/live"))
            .await
            .unwrap()
            .0,
        200,
        "alive all along"
    );

    let sql = format!("ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS true");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&admin)
        .await
        .unwrap();
    let body = env.wait_for("ready again", || ready(200)).await;
    assert_eq!(body["database"]["ok"], true, "{body}");
}

/// The test's database name, and a pool on the server's `postgres` database to change it from
/// outside.
async fn admin_pool(env: &TestEnv) -> (String, sqlx::PgPool) {
    let mut url = url::Url::parse(env.settings.database.url.expose()).unwrap();
    let database = url.path().trim_start_matches('/').to_owned();
    url.set_path("postgres");
    let mut settings = env.settings.database.clone();
    settings.url = fulfilment::settings::SecretUrl::new(url.to_string());
    settings.max_connections = 2;
    (database, fulfilment::db::connect(&settings).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_serve_the_api_on_one_port_side_by_side() {
    let env = TestEnv::new().await;
    let api = free_address();
    let vars = [("FULFILMENT__REVIEW__LISTEN", api.clone())];
    let first = Process::run(&env.settings, &vars);
    let second = Process::run(&env.settings, &vars);
    let url = format!("http://{api}/health/ready");
    let pids = Arc::new(Mutex::new(HashSet::new()));
    let seen = env
        .wait_for("both processes to answer on the shared port", || {
            let (url, pids) = (url.clone(), pids.clone());
            async move {
                // New connections are spread over the listening processes.
                for _ in 0..20 {
                    let client = reqwest::Client::new();
                    let Ok(response) = client.get(&url).send().await else {
                        continue;
                    };
                    if let Ok(body) = response.json::<Value>().await {
                        pids.lock().unwrap().insert(body["pid"].as_u64().unwrap());
                    }
                }
                let pids = pids.lock().unwrap();
                (pids.len() == 2).then(|| pids.clone())
            }
        })
        .await;
    let expected: HashSet<u64> = [first.child.id(), second.child.id()]
        .into_iter()
        .map(u64::from)
        .collect();
    assert_eq!(seen, expected, "{}\n{}", first.log(), second.log());
}

/// Spans as an OTLP/HTTP collector receives them (JSON encoding).
type Spans = Arc<Mutex<Vec<Value>>>;

/// A collector on a free local port: keeps every span posted to `/v1/traces`.
async fn collector() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let request: Value = serde_json::from_slice(&body).unwrap_or_default();
                let mut kept = kept.lock().unwrap();
                for resource in request["resourceSpans"].as_array().into_iter().flatten() {
                    for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                        kept.extend(scope["spans"].as_array().into_iter().flatten().cloned());
                    }
                }
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), spans)
}

/// A span's attribute as text, if it has it.
fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?["value"]["stringValue"]
        .as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_one_trace_in_the_collector_through_a_deemed_acceptance() {
    let env = TestEnv::new().await;
    let (endpoint, spans) = collector().await;
    let process = Process::run(
        &env.settings,
        &[
            ("FULFILMENT__TELEMETRY__OTLP_ENDPOINT", endpoint),
            ("FULFILMENT__TELEMETRY__OTLP_PROTOCOL", "http/json".into()),
            ("FULFILMENT__STAGES__ACCEPTANCE_WINDOW_SECS", "1".into()),
            ("FULFILMENT__REVIEW__LISTEN", free_address()),
        ],
    );
    env.submit(&[order_with("TRACED-1", vec![line("KETTLE-STEEL", 1, 3999)])])
        .await;
    env.wait_completed(1).await;
    // Every stage handled the order, and the timer fired; spans are exported in batches.
    let wanted: HashSet<&str> = [
        "verify",
        "prepare",
        "documents",
        "handover",
        "confirm",
        "revenue",
    ]
    .into_iter()
    .collect();
    let of_order = env
        .wait_for("the order's spans at the collector", || async {
            let spans = spans.lock().unwrap().clone();
            let of_order: Vec<Value> = spans
                .into_iter()
                .filter(|s| attribute(s, "order_id") == Some("TRACED-1"))
                .collect();
            let stages: HashSet<&str> = of_order
                .iter()
                .filter_map(|s| attribute(s, "stage"))
                .collect();
            let timer = of_order.iter().any(|s| s["name"] == "timer");
            (wanted.is_subset(&stages) && timer).then_some(of_order)
        })
        .await;
    let traces: HashSet<&str> = of_order
        .iter()
        .filter_map(|s| s["traceId"].as_str())
        .collect();
    assert_eq!(traces.len(), 1, "one trace: {traces:?}\n{}", process.log());
    let trace = *traces.iter().next().unwrap();
    // Within the trace, every span's parent is a span of the trace, but for the first hop's,
    // whose parent is the shop's client (which exports nothing).
    let all: Vec<Value> = spans
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s["traceId"] == trace)
        .cloned()
        .collect();
    let ids: HashSet<&str> = all.iter().filter_map(|s| s["spanId"].as_str()).collect();
    let orphans: Vec<&Value> = all
        .iter()
        .filter(|s| !ids.contains(s["parentSpanId"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(orphans.len(), 1, "one root: {orphans:#?}");
    assert_eq!(attribute(orphans[0], "stage"), Some("verify"));
    // The deemed acceptance is the timer's child, and the timer a child of the handover.
    let by_id: HashMap<&str, &Value> = all
        .iter()
        .map(|s| (s["spanId"].as_str().unwrap(), s))
        .collect();
    let timer = all.iter().find(|s| s["name"] == "timer").unwrap();
    let parent = by_id[timer["parentSpanId"].as_str().unwrap()];
    assert_eq!(attribute(parent, "stage"), Some("confirm"), "{parent:#}");
    let deemed = all
        .iter()
        .find(|s| attribute(s, "stage") == Some("confirm") && s["parentSpanId"] == timer["spanId"]);
    assert!(deemed.is_some(), "the acceptance comes from the timer");
}
