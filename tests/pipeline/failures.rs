//! Failures: transient ones are retried through the delay queue and escalate when attempts run
//! out; a corpus of bad input interleaved with good orders becomes review cases with clear
//! reasons while every good order completes and no worker restarts.

use std::sync::Arc;

use fulfilment::domain::events::OrderPlaced;
use fulfilment::envelope::{Envelope, WireEvent};
use fulfilment::pipeline::PipelineOptions;
use fulfilment::stages::StageName;
use fulfilment::worker::Faults;
use serde_json::json;

use crate::helpers::{TestEnv, order, order_with, timelines};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_with_backoff_then_escalated() {
    let mut env = TestEnv::with(|s| {
        s.retry.max_attempts = 3;
        s.retry.base_delay_ms = 100;
        s.retry.max_delay_ms = 400;
    })
    .await;
    let hook = Arc::new(|stage: StageName, order: &str, attempt: u32| {
        stage == StageName::Prepare && (order == "FLAKY-1" && attempt < 3 || order == "BROKEN-1")
    });
    env.start_pipeline(PipelineOptions {
        faults: Faults {
            fail_transiently: Some(hook),
            ..Faults::default()
        },
        ..PipelineOptions::default()
    })
    .await;
    env.start_customer().await;
    env.submit(&[order("FLAKY-1", 1), order("BROKEN-1", 2)])
        .await;

    env.wait_state("FLAKY-1", "completed").await;
    let cases = env.wait_cases(1).await;
    assert_eq!(cases[0].order_id.as_deref(), Some("BROKEN-1"));
    assert_eq!(
        (cases[0].reason.as_str(), cases[0].stage.as_str()),
        ("retries_exhausted", "prepare")
    );
    let detail: String = sqlx::query_scalar("SELECT detail FROM review_cases")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert!(
        detail.contains("failed 3 times") && detail.contains("injected transient failure"),
        "{detail}"
    );
    assert_eq!(
        timelines(&env.pool).await["FLAKY-1"].len(),
        6,
        "retries had one effect"
    );
    assert_eq!(
        crate::helpers::state(&env.pool, "BROKEN-1")
            .await
            .as_deref(),
        Some("verified")
    );
}

fn raw(id: &str, body: Vec<u8>) -> WireEvent {
    let mut event = WireEvent::new("tests", &OrderPlaced::new(order(id, 0)), None);
    event.event_id = format!("raw-{id}");
    event.body = body;
    event
}

/// An `order.placed` envelope whose order is replaced by `order_json`.
fn placed_with(id: &str, order_json: serde_json::Value) -> WireEvent {
    let placed = OrderPlaced::new(order(id, 0));
    let mut envelope = Envelope::wrap("tests", &placed);
    envelope.data["order"] = order_json;
    raw(id, envelope.to_bytes())
}

fn order_value(id: &str, line: serde_json::Value) -> serde_json::Value {
    json!({"order_id": id, "customer_id": "CUST-042", "channel": "web", "currency": "GBP",
           "placed_at": "2026-11-20T09:00:00Z", "lines": [line]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_goes_to_review_with_a_reason_and_good_orders_complete() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_customer().await;

    let kettle = |q: serde_json::Value, p: serde_json::Value| json!({"sku": "KETTLE-STEEL", "quantity": q, "unit_price_minor": p});
    let mut wrong_type = Envelope::wrap("tests", &OrderPlaced::new(order("BAD-TYPE", 0)));
    wrong_type.event_type = "fulfilment.order.teleported.v1".into();
    let mut not_matching = Envelope::wrap("tests", &OrderPlaced::new(order("BAD-SHAPE", 0)));
    not_matching.data = json!({"order_id": "BAD-SHAPE", "order": {"hello": "world"}});
    let mut huge = br#"{"specversion":"1.0","padding":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    huge.extend(br#""}"#);

    let bad: Vec<(WireEvent, &str)> = vec![
        (
            raw("NOT-JSON", b"this is not json".to_vec()),
            "not_a_cloudevent",
        ),
        (
            raw("NOT-UTF8", vec![0xc3, 0x28, 0xa0, 0xa1]),
            "invalid_utf8",
        ),
        (
            raw("NOT-CE", br#"{"order_id": "X-1", "lines": []}"#.to_vec()),
            "not_a_cloudevent",
        ),
        (raw("BAD-TYPE", wrong_type.to_bytes()), "unknown_event_type"),
        (raw("BAD-SHAPE", not_matching.to_bytes()), "invalid_payload"),
        (raw("HUGE", huge), "message_too_large"),
        (
            placed_with(
                "NEG-QTY",
                order_value("NEG-QTY", kettle(json!(-1), json!(3999))),
            ),
            "invalid_payload",
        ),
        (
            placed_with(
                "ZERO-QTY",
                order_value("ZERO-QTY", kettle(json!(0), json!(3999))),
            ),
            "invalid_payload",
        ),
        (
            placed_with(
                "FRACTION",
                order_value("FRACTION", kettle(json!(1), json!(3999.5))),
            ),
            "invalid_payload",
        ),
        (
            placed_with(
                "NO-SKU",
                order_value(
                    "NO-SKU",
                    json!({"sku": "NOPE", "quantity": 1, "unit_price_minor": 5}),
                ),
            ),
            "unknown_product",
        ),
        (
            placed_with("EURO", {
                let mut o = order_value("EURO", kettle(json!(1), json!(3999)));
                o["currency"] = json!("EUR");
                o
            }),
            "currency_mismatch",
        ),
        (
            placed_with("LOWER-CCY", {
                let mut o = order_value("LOWER-CCY", kettle(json!(1), json!(3999)));
                o["currency"] = json!("gbp");
                o
            }),
            "invalid_payload",
        ),
    ];
    let good: Vec<_> = (0..10).map(|i| order(&format!("FINE-{i}"), i)).collect();
    // Each bad message is known by a tag: its AMQP message id is `raw-TAG`, and when it can be
    // read at all its body names TAG.
    let mut expected: Vec<(String, &str)> = Vec::new();
    for (i, (event, reason)) in bad.into_iter().enumerate() {
        expected.push((event.event_id.trim_start_matches("raw-").to_owned(), reason));
        env.client.publish_raw(&[event]).await.unwrap();
        env.submit(&good[i % good.len()..i % good.len() + 1]).await;
    }
    // The same order id again with different content.
    let twin = order_with(
        "FINE-0",
        vec![json!({"sku": "MUG-BLUE", "quantity": 9, "unit_price_minor": 1250})],
    );
    env.client.submit(&[twin]).await.unwrap();

    let cases = env.wait_cases(expected.len() + 1).await;
    env.wait_completed(10).await;
    assert_eq!(cases.len(), expected.len() + 1);
    let rows: Vec<(String, String, Vec<u8>, Option<String>)> =
        sqlx::query_as("SELECT message_key, reason, original_body, order_id FROM review_cases")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    for (tag, reason) in &expected {
        let found = rows.iter().find(|(key, _, body, _)| {
            *key == format!("raw-{tag}") || String::from_utf8_lossy(body).contains(tag.as_str())
        });
        let found = found.unwrap_or_else(|| panic!("no case for {tag}"));
        assert_eq!(found.1, *reason, "case for {tag}");
    }
    let twin_case = rows
        .iter()
        .find(|r| r.1 == "duplicate_order_id")
        .expect("a duplicate case");
    assert_eq!(twin_case.3.as_deref(), Some("FINE-0"));
    let huge_len: i32 = sqlx::query_scalar(
        "SELECT length(original_body) FROM review_cases WHERE reason = 'message_too_large'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(huge_len > 10 * 1024 * 1024, "the large body is kept whole");
    let utf8: Vec<u8> =
        sqlx::query_scalar("SELECT original_body FROM review_cases WHERE reason = 'invalid_utf8'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(utf8, vec![0xc3, 0x28, 0xa0, 0xa1], "kept byte for byte");
    assert_eq!(env.restarts(), 0, "no worker restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_delivery_is_split_off_and_the_rest_of_its_batch_commits() {
    let mut env = TestEnv::new().await;
    // Every order waits in the verify queue before the pipeline starts, so the first batch
    // holds them all, the poisoned one in the middle.
    let orders: Vec<_> = (0..12).map(|i| order(&format!("BATCH-{i}"), i)).collect();
    env.submit(&orders).await;
    let hook =
        Arc::new(|stage: StageName, order: &str| stage == StageName::Verify && order == "BATCH-5");
    env.start_pipeline(PipelineOptions {
        faults: Faults {
            poison: Some(hook),
            ..Faults::default()
        },
        ..PipelineOptions::default()
    })
    .await;
    env.start_customer().await;
    env.wait_completed(11).await;
    let cases = env.wait_cases(1).await;
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].order_id.as_deref(), Some("BATCH-5"));
    assert_eq!(cases[0].reason, "database_refused");
    let detail: String = sqlx::query_scalar("SELECT detail FROM review_cases")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert!(detail.contains("division by zero"), "{detail}");
    assert_eq!(crate::helpers::state(&env.pool, "BATCH-5").await, None);
    assert_eq!(env.restarts(), 0);
    // Every other order of the batch went all the way.
    let timelines = timelines(&env.pool).await;
    assert_eq!(timelines.len(), 11);
}
