//! prepare: stock is allocated atomically; under concurrent orders from two processes it never
//! goes negative and is never oversold. Services get a delivery slot instead.

use fulfilment::pipeline::PipelineOptions;
use fulfilment::stages::StageName;
use serde_json::json;

use crate::helpers::{TestEnv, order_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_oversell_and_stock_never_goes_negative() {
    let mut env = TestEnv::new().await;
    env.set_stock("KETTLE-STEEL", 50).await;
    let two_stages = || PipelineOptions {
        stages: vec![StageName::Verify, StageName::Prepare],
        ..PipelineOptions::default()
    };
    env.start_pipeline(two_stages()).await;
    env.start_pipeline(two_stages()).await;

    let orders: Vec<_> = (0..80)
        .map(|i| {
            order_with(
                &format!("RUSH-{i}"),
                vec![json!({"sku": "KETTLE-STEEL", "quantity": 1, "unit_price_minor": 3999})],
            )
        })
        .collect();
    env.submit(&orders).await;
    let pool = env.pool.clone();
    let (prepared, refused) = env
        .wait_for("every order prepared or refused", || {
            let pool = pool.clone();
            async move {
                let (prepared, refused): (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM orders WHERE state = 'prepared'),
                            (SELECT count(*) FROM review_cases WHERE reason = 'out_of_stock')",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                (prepared + refused == 80).then_some((prepared, refused))
            }
        })
        .await;
    let (available, allocated): (i32, i64) = sqlx::query_as(
        "SELECT (SELECT available FROM stock WHERE sku = 'KETTLE-STEEL'),
                (SELECT COALESCE(SUM(quantity), 0) FROM allocations WHERE released_at IS NULL)",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!((prepared, refused), (50, 30));
    assert_eq!(available, 0);
    assert_eq!(allocated, 50, "allocations match what left the shelf");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goods_get_checks_and_a_pick_list_and_services_get_a_slot() {
    let mut env = TestEnv::new().await;
    let tap = env.start_tap().await;
    env.start_pipeline(PipelineOptions {
        stages: vec![StageName::Verify, StageName::Prepare],
        ..PipelineOptions::default()
    })
    .await;
    let order = order_with(
        "MIXED-1",
        vec![
            json!({"sku": "KETTLE-STEEL", "quantity": 2, "unit_price_minor": 3999}),
            json!({"sku": "INSTALL-SERVICE", "quantity": 1, "unit_price_minor": 4500}),
        ],
    );
    env.submit(&[order]).await;
    env.wait_state("MIXED-1", "prepared").await;
    let prepared = env
        .wait_for("goods.prepared on the exchange", || {
            let found = tap.events.lock().unwrap().iter().find_map(|(_, e)| {
                (e.event_type == "fulfilment.goods.prepared.v1").then(|| e.data.clone())
            });
            async move { found }
        })
        .await;
    assert_eq!(
        prepared["pick_list"],
        json!([{"sku": "KETTLE-STEEL", "quantity": 2}])
    );
    let checks: Vec<&str> = prepared["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["inspected", "serial_numbers_recorded", "packaged"]);
    let slot = &prepared["service_slots"][0];
    assert_eq!(slot["sku"], "INSTALL-SERVICE");
    assert!(
        slot["scheduled_for"]
            .as_str()
            .unwrap()
            .ends_with("T09:00:00Z")
    );
}
