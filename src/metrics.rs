//! Prometheus metrics of one process: counters and histograms of the work it does, kept with
//! the `metrics` crate and rendered by its Prometheus exporter. The API serves them (with the
//! overview's gauges) at `GET /metrics`; a process without the API serves them on
//! `metrics.listen` (see `crate::cli`).
//!
//! | metric | kind | labels | what |
//! |---|---|---|---|
//! | `fulfilment_deliveries_total` | counter | stage, outcome | deliveries handled: `handled`, `duplicate`, `escalated`, `retried` |
//! | `fulfilment_review_cases_opened_total` | counter | stage, reason | review cases opened |
//! | `fulfilment_events_published_total` | counter | by | events confirmed by the broker: `handler` or `relay` |
//! | `fulfilment_publish_failures_total` | counter | | publishes the broker refused or did not confirm |
//! | `fulfilment_timers_fired_total` | counter | kind | timers turned into events |
//! | `fulfilment_sql_statements_total` | counter | | statements the stage engine, relay and scheduler sent (`BEGIN` and `COMMIT` included) |
//! | `fulfilment_db_commits_total` | counter | | transactions they committed |
//! | `fulfilment_batch_size` | histogram | stage | deliveries per batch |
//! | `fulfilment_batch_seconds` | histogram | stage | a batch from its first statement to its acknowledgement |
//! | `fulfilment_outbox_lag_seconds` | histogram | by | from an event's commit to the broker's confirm |
//! | `fulfilment_order_seconds` | histogram | | an order from intake to completion (revenue fully recognised) |

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::StageName;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds buckets from a millisecond to a minute.
const SECONDS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Orders take from under a second to days (acceptance windows).
const ORDER_SECONDS: [f64; 12] = [
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    30.0,
    300.0,
    3600.0,
    86_400.0,
    1_209_600.0,
];
/// Deliveries per batch.
const SIZES: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Installs this process's recorder (once) and returns its handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&SECONDS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full("fulfilment_batch_size".into()), &SIZES)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("fulfilment_order_seconds".into()),
                    &ORDER_SECONDS,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Only fails if a recorder is already installed, which `HANDLE` prevents.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

/// What each metric is, for `# HELP`.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "fulfilment_deliveries_total",
        "Deliveries handled, by stage and outcome."
    );
    describe_counter!(
        "fulfilment_review_cases_opened_total",
        "Review cases opened, by stage and reason."
    );
    describe_counter!(
        "fulfilment_events_published_total",
        "Events confirmed by the broker, by publisher."
    );
    describe_counter!(
        "fulfilment_publish_failures_total",
        "Publishes the broker refused or did not confirm."
    );
    describe_counter!(
        "fulfilment_timers_fired_total",
        "Timers turned into events, by kind."
    );
    describe_counter!(
        "fulfilment_sql_statements_total",
        "SQL statements sent by the stage engine, relay and scheduler."
    );
    describe_counter!(
        "fulfilment_db_commits_total",
        "Transactions committed by the stage engine, relay and scheduler."
    );
    describe_histogram!("fulfilment_batch_size", "Deliveries per batch, by stage.");
    describe_histogram!(
        "fulfilment_batch_seconds",
        metrics::Unit::Seconds,
        "A batch from its first statement to its acknowledgement."
    );
    describe_histogram!(
        "fulfilment_outbox_lag_seconds",
        metrics::Unit::Seconds,
        "From an event's commit to the broker's confirm."
    );
    describe_histogram!(
        "fulfilment_order_seconds",
        metrics::Unit::Seconds,
        "An order from intake to completion."
    );
    describe_gauge!("fulfilment_orders", "Orders in each state.");
    describe_gauge!(
        "fulfilment_orders_oldest_age_seconds",
        metrics::Unit::Seconds,
        "How long the order longest in each state has been there."
    );
    describe_gauge!(
        "fulfilment_review_cases_open",
        "Open review cases by reason and role."
    );
    describe_gauge!(
        "fulfilment_outbox_unsent",
        "Events committed and not yet published."
    );
    describe_gauge!("fulfilment_timers_pending", "Deadlines not yet fired.");
    describe_gauge!(
        "fulfilment_timers_overdue",
        "Deadlines over a minute past due and not fired."
    );
    describe_gauge!("fulfilment_queue_ready", "Messages waiting in each queue.");
    describe_gauge!("fulfilment_queue_consumers", "Consumers of each queue.");
    describe_gauge!(
        "fulfilment_broker_up",
        "1 if the broker answered the overview, else 0."
    );
}

/// Serves this process's metrics at `GET /metrics`, and its health at `/health/live` and
/// `/health/ready`, on `listener` until `shutdown` is cancelled, without authentication: for
/// every process, the API's or not (`metrics.listen`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: crate::health::Health,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use axum::http::header;
    install();
    tracing::info!(address = %listener.local_addr()?, "metrics and health listening");
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|| async {
                let content_type = "text/plain; version=0.0.4; charset=utf-8";
                ([(header::CONTENT_TYPE, content_type)], render())
            }),
        )
        .merge(crate::health::routes(health));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// The metrics in the Prometheus text format.
pub fn render() -> String {
    install().render()
}

/// `n` statements sent.
pub fn statements(n: u64) {
    metrics::counter!("fulfilment_sql_statements_total").increment(n);
}

/// A transaction committed.
pub fn committed() {
    metrics::counter!("fulfilment_db_commits_total").increment(1);
}

/// A delivery handled with `outcome`.
pub fn delivery(stage: StageName, outcome: &'static str) {
    metrics::counter!("fulfilment_deliveries_total", "stage" => stage.as_str(), "outcome" => outcome)
        .increment(1);
}

/// A review case opened.
pub fn case_opened(stage: &str, reason: &'static str) {
    metrics::counter!("fulfilment_review_cases_opened_total", "stage" => stage.to_owned(), "reason" => reason)
        .increment(1);
}

/// Events confirmed by the broker, published by `by` (`handler` or `relay`), with the time
/// from their commit to the confirm.
pub fn published(by: &'static str, events: u64, lag: Duration) {
    metrics::counter!("fulfilment_events_published_total", "by" => by).increment(events);
    metrics::histogram!("fulfilment_outbox_lag_seconds", "by" => by).record(lag.as_secs_f64());
}

/// A publish the broker refused or did not confirm.
pub fn publish_failed() {
    metrics::counter!("fulfilment_publish_failures_total").increment(1);
}

/// A timer fired.
pub fn timer_fired(kind: &str) {
    metrics::counter!("fulfilment_timers_fired_total", "kind" => kind.to_owned()).increment(1);
}

/// A batch of `size` deliveries done in `took`.
pub fn batch(stage: StageName, size: usize, took: Duration) {
    metrics::histogram!("fulfilment_batch_size", "stage" => stage.as_str()).record(size as f64);
    metrics::histogram!("fulfilment_batch_seconds", "stage" => stage.as_str())
        .record(took.as_secs_f64());
}

/// An order completed, `took` after it entered the pipeline.
pub fn order_completed(took: Duration) {
    metrics::histogram!("fulfilment_order_seconds").record(took.as_secs_f64());
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_and_histograms_render() {
        super::install();
        super::statements(3);
        super::batch(
            crate::domain::StageName::Prepare,
            7,
            std::time::Duration::from_millis(12),
        );
        let text = super::render();
        assert!(text.contains("fulfilment_sql_statements_total"), "{text}");
        assert!(
            text.contains("fulfilment_batch_size_bucket{stage=\"prepare\",le=\"8\"}"),
            "{text}"
        );
    }
}
