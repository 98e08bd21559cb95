//! Amendments: a higher version is verified again and replaces the order (releasing its stock);
//! a stale version is ignored; an amendment after handover is refused to review.

use fulfilment::pipeline::PipelineOptions;
use fulfilment::stages::StageName;
use serde_json::json;

use crate::helpers::{TestEnv, order_with};

async fn available(env: &TestEnv, sku: &str) -> i32 {
    sqlx::query_scalar("SELECT available FROM stock WHERE sku = $1")
        .bind(sku)
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_version_is_verified_again_and_a_stale_one_is_ignored() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions {
        stages: vec![StageName::Verify, StageName::Prepare],
        ..PipelineOptions::default()
    })
    .await;
    let before = available(&env, "KETTLE-STEEL").await;
    let mut v1 = order_with(
        "AMEND-1",
        vec![json!({"sku": "KETTLE-STEEL", "quantity": 2, "unit_price_minor": 3999})],
    );
    env.submit(std::slice::from_ref(&v1)).await;
    env.wait_state("AMEND-1", "prepared").await;
    assert_eq!(available(&env, "KETTLE-STEEL").await, before - 2);

    let mut v2 = v1.clone();
    v2.version = 2;
    v2.lines[0].quantity = 5;
    env.client.amend(&[v2]).await.unwrap();
    let pool = env.pool.clone();
    env.wait_for("version 2 prepared", || {
        let pool = pool.clone();
        async move {
            let (version, state): (i32, String) =
                sqlx::query_as("SELECT version, state FROM orders WHERE order_id = 'AMEND-1'")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            (version == 2 && state == "prepared").then_some(())
        }
    })
    .await;
    assert_eq!(
        available(&env, "KETTLE-STEEL").await,
        before - 5,
        "v1's allocation was released"
    );

    // A stale version changes nothing.
    v1.lines[0].quantity = 9;
    env.client.amend(&[v1]).await.unwrap();
    let mut sentinel = order_with(
        "AFTER-STALE",
        vec![json!({"sku": "MUG-BLUE", "quantity": 1, "unit_price_minor": 1250})],
    );
    sentinel.version = 1;
    env.submit(&[sentinel]).await;
    env.wait_state("AFTER-STALE", "prepared").await;
    let version: i32 = sqlx::query_scalar("SELECT version FROM orders WHERE order_id = 'AMEND-1'")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(version, 2);
    assert_eq!(available(&env, "KETTLE-STEEL").await, before - 5);
    let versions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM order_versions WHERE order_id = 'AMEND-1'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(versions, 2, "the order keeps its versions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amendment_after_handover_is_refused_to_review() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    let v1 = order_with(
        "LATE-1",
        vec![json!({"sku": "KETTLE-STEEL", "quantity": 1, "unit_price_minor": 3999})],
    );
    env.submit(std::slice::from_ref(&v1)).await;
    env.wait_state("LATE-1", "handed_over").await;

    let mut v2 = v1.clone();
    v2.version = 2;
    v2.lines[0].quantity = 3;
    env.client.amend(&[v2]).await.unwrap();
    let cases = env.wait_cases(1).await;
    assert_eq!(cases[0].reason, "amendment_after_handover");
    assert_eq!(cases[0].required_role, "supervisor");
    let version: i32 = sqlx::query_scalar("SELECT version FROM orders WHERE order_id = 'LATE-1'")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(version, 1);
}

/// The statuses of every review case, oldest first.
async fn case_statuses(env: &TestEnv) -> Vec<String> {
    sqlx::query_scalar("SELECT status FROM review_cases ORDER BY id")
        .fetch_all(&env.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amendment_supersedes_the_cases_of_the_version_it_replaces() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions {
        stages: vec![StageName::Verify, StageName::Prepare],
        ..PipelineOptions::default()
    })
    .await;
    let teapot = json!({"sku": "TEAPOT-CLASSIC", "quantity": 1, "unit_price_minor": 2500});
    let mug = json!({"sku": "MUG-BLUE", "quantity": 1, "unit_price_minor": 1250});
    let v1 = order_with("AMEND-3", vec![teapot.clone()]);
    env.submit(std::slice::from_ref(&v1)).await;
    env.wait_cases(1).await;

    // Version 2 still has the teapot: version 1's case is settled, version 2's is open.
    let mut v2 = order_with("AMEND-3", vec![mug.clone(), teapot]);
    v2.version = 2;
    env.client.amend(&[v2]).await.unwrap();
    env.wait_cases(2).await;
    assert_eq!(case_statuses(&env).await, ["superseded", "open"]);
    let (actor, note): (String, String) =
        sqlx::query_as("SELECT actor, note FROM review_actions WHERE case_id = 1")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(actor, "pipeline");
    assert!(note.contains("version 2"), "{note}");

    // Version 3 is sellable: nothing is left open.
    let mut v3 = order_with("AMEND-3", vec![mug]);
    v3.version = 3;
    env.client.amend(&[v3]).await.unwrap();
    env.wait_state("AMEND-3", "prepared").await;
    assert_eq!(case_statuses(&env).await, ["superseded", "superseded"]);
}
