//! Two pipelines on one namespace compete for the same queues without duplicate effects.

use fulfilment::pipeline::PipelineOptions;

use crate::helpers::{TestEnv, orders, six_stages, timelines};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pipelines_on_one_namespace_finish_200_orders_without_duplicate_effects() {
    let mut env = TestEnv::new().await;
    let tap = env.start_tap().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_customer().await;

    let orders = orders("PAIR", 200);
    env.submit(&orders).await;
    env.wait_recognised(&tap, 200).await;

    let timelines = timelines(&env.pool).await;
    for order in &orders {
        assert_eq!(
            timelines[order.order_id.as_str()],
            six_stages(),
            "{}",
            order.order_id
        );
    }
    for event in [
        "fulfilment.order.verified.v1",
        "fulfilment.goods.prepared.v1",
        "fulfilment.order.handed_over.v1",
        "fulfilment.revenue.recognised.v1",
    ] {
        let counts = tap.count_by_order(event);
        assert_eq!(counts.len(), 200, "{event}");
        assert!(
            counts.values().all(|&n| n == 1),
            "{event} published twice for an order"
        );
    }
}
