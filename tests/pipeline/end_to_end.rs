//! 200 orders through all six stages.

use fulfilment::pipeline::PipelineOptions;

use crate::helpers::{TestEnv, orders, six_stages, timelines};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_orders_each_complete_once_with_one_record_per_stage_in_order() {
    let mut env = TestEnv::new().await;
    let tap = env.start_tap().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_customer().await;

    let orders = orders("E2E", 200);
    env.submit(&orders).await;
    env.wait_recognised(&tap, 200).await;

    let timelines = timelines(&env.pool).await;
    assert_eq!(timelines.len(), 200);
    for order in &orders {
        assert_eq!(
            timelines[order.order_id.as_str()],
            six_stages(),
            "{}",
            order.order_id
        );
    }
    let revenue = tap.count_by_order("fulfilment.revenue.recognised.v1");
    assert!(
        revenue.values().all(|&n| n == 1),
        "a revenue event was published twice"
    );

    let status = fulfilment::status::load(&env.pool, "E2E-7")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.state, "completed");
    let stages: Vec<_> = status.timeline.iter().map(|e| e.stage.clone()).collect();
    assert_eq!(stages, six_stages());
    assert_eq!(status.total_minor, orders[7].lines_total_minor().unwrap());
    // Every message of the run matches the published contract.
    assert!(tap.assert_all_match_the_contract() >= 200 * 9);
}
