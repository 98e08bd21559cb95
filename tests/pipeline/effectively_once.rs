//! Redelivery has one effect; a crash between commit and publish is recovered by the relay;
//! a message that is not an event goes to review with its bytes intact.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fulfilment::envelope::WireEvent;
use fulfilment::pipeline::PipelineOptions;
use fulfilment::stages::StageName;
use fulfilment::worker::Faults;

use crate::helpers::{TestEnv, order, six_stages, timelines};

async fn count(env: &TestEnv, sql: &'static str, order_id: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(order_id)
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_delivered_twice_has_one_effect() {
    let mut env = TestEnv::new().await;
    let tap = env.start_tap().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_customer().await;
    env.submit(&[order("TWICE-1", 1)]).await;
    env.wait_completed(1).await;
    env.wait_for("the revenue event of TWICE-1", || {
        let seen = tap
            .count_by_order("fulfilment.revenue.recognised.v1")
            .contains_key("TWICE-1");
        async move { seen.then_some(()) }
    })
    .await;
    let outbox_before = count(
        &env,
        "SELECT count(*) FROM outbox WHERE order_id = $1",
        "TWICE-1",
    )
    .await;

    // Deliver every message of the order a second time, byte for byte, same id.
    let originals = tap.bodies_for("TWICE-1");
    assert_eq!(
        originals.len(),
        9,
        "placed, 5 stage events, the customer's answer, the sales opportunity, revenue"
    );
    let again: Vec<WireEvent> = originals
        .into_iter()
        .map(|(_, body)| WireEvent::from_bytes(body, None).unwrap())
        .collect();
    env.client.publish_raw(&again).await.unwrap();

    // Each stage takes its queue in order, so once a later order has gone through every stage,
    // every duplicate in front of it has been handled.
    env.submit(&[order("AFTER-1", 2)]).await;
    env.wait_completed(2).await;

    assert_eq!(timelines(&env.pool).await["TWICE-1"], six_stages());
    let outbox_after = count(
        &env,
        "SELECT count(*) FROM outbox WHERE order_id = $1",
        "TWICE-1",
    )
    .await;
    assert_eq!(outbox_after, outbox_before, "a duplicate emitted an event");
    let answers = count(
        &env,
        "SELECT count(*) FROM customer_confirmations WHERE order_id = $1",
        "TWICE-1",
    )
    .await;
    assert_eq!(answers, 1);
    let cases = count(
        &env,
        "SELECT count(*) FROM review_cases WHERE order_id = $1",
        "TWICE-1",
    )
    .await;
    assert_eq!(cases, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_commit_and_publish_is_recovered_by_the_relay() {
    let mut env = TestEnv::new().await;
    let crashed = Arc::new(AtomicBool::new(false));
    let flag = crashed.clone();
    let faults = Faults {
        crash_after_commit: Some(Arc::new(move |stage, order| {
            stage == StageName::Prepare && order == "CRASH-1" && !flag.swap(true, Ordering::SeqCst)
        })),
        ..Faults::default()
    };
    env.start_pipeline(PipelineOptions {
        faults,
        ..PipelineOptions::default()
    })
    .await;
    env.start_customer().await;
    env.submit(&[order("CRASH-1", 3)]).await;
    env.wait_for("the simulated crash", || {
        let done = crashed.load(Ordering::SeqCst);
        async move { done.then_some(()) }
    })
    .await;

    // The crashed process's prepare worker is gone; a restarted one takes the queue again.
    env.start_pipeline(PipelineOptions {
        stages: vec![StageName::Prepare],
        relay: false,
        ..PipelineOptions::default()
    })
    .await;
    env.wait_completed(1).await;

    assert_eq!(timelines(&env.pool).await["CRASH-1"], six_stages());
    let relayed: bool = sqlx::query_scalar(
        "SELECT relayed_at IS NOT NULL FROM outbox
         WHERE order_id = 'CRASH-1' AND routing_key = 'goods.prepared'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(
        relayed,
        "the event left by the crash was published by the relay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_is_not_an_event_goes_to_review_with_its_bytes_intact() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    let garbage: Vec<u8> = vec![0xde, 0xad, b'{', 0xff, 0x00, b'x'];
    let mut event = WireEvent::new("tests", &order_placed("GOOD-1"), None);
    event.body = garbage.clone();
    event.event_id = "poison-1".into();
    env.client.publish_raw(&[event]).await.unwrap();

    let pool = env.pool.clone();
    let (reason, body, stage): (String, Vec<u8>, String) = env
        .wait_for("a review case", || {
            let pool = pool.clone();
            async move {
                sqlx::query_as("SELECT reason, original_body, stage FROM review_cases")
                    .fetch_optional(&pool)
                    .await
                    .unwrap()
            }
        })
        .await;
    assert_eq!(reason, "invalid_utf8");
    assert_eq!(body, garbage);
    assert_eq!(stage, "verify");
}

fn order_placed(id: &str) -> fulfilment::domain::events::OrderPlaced {
    fulfilment::domain::events::OrderPlaced::new(order(id, 0))
}
