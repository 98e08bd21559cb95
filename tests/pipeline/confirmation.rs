//! handover and confirm: delivery terms decide when ownership passes; the customer accepts,
//! complains or says nothing (deemed acceptance, which survives a restart); a satisfied customer
//! is offered related products they have not bought.

use fulfilment::domain::events::ConfirmationOutcome;
use fulfilment::pipeline::PipelineOptions;
use serde_json::json;

use crate::helpers::{TestEnv, order_with};

fn kettle(id: &str, terms: &str) -> fulfilment::domain::Order {
    let mut order = order_with(
        id,
        vec![json!({"sku": "KETTLE-STEEL", "quantity": 1, "unit_price_minor": 3999})],
    );
    order.delivery_terms = Some(terms.into());
    order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_terms_decide_when_ownership_passes_and_acceptance_is_explicit() {
    let mut env = TestEnv::new().await;
    let tap = env.start_tap().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_customer_saying(&[
        ConfirmationOutcome::Delivered,
        ConfirmationOutcome::Accepted,
    ])
    .await;
    env.submit(&[
        kettle("FOB-SP", "FOB_SHIPPING_POINT"),
        kettle("FOB-DEST", "FOB_DESTINATION"),
    ])
    .await;
    env.wait_completed(2).await;
    env.wait_for("both sales opportunities", || {
        let n = tap.count_by_order("fulfilment.sales.opportunity.v1").len();
        async move { (n == 2).then_some(()) }
    })
    .await;

    let events = tap.events.lock().unwrap().clone();
    let data = |order: &str, ty: &str| {
        events
            .iter()
            .find(|(_, e)| e.subject == order && e.event_type == ty)
            .map(|(_, e)| e.data.clone())
            .unwrap_or_else(|| panic!("no {ty} for {order}"))
    };
    let shipping = data("FOB-SP", "fulfilment.order.handed_over.v1");
    assert_eq!(shipping["ownership_passes"], "on_dispatch");
    assert_eq!(shipping["ownership_passed_at"], shipping["handed_over_at"]);
    assert_eq!(shipping["carrier"], "Royal Mail");
    let destination = data("FOB-DEST", "fulfilment.order.handed_over.v1");
    assert_eq!(destination["ownership_passes"], "on_delivery");
    assert!(destination["ownership_passed_at"].is_null());
    assert_eq!(destination["carrier"], "DPD Local");
    data("FOB-DEST", "fulfilment.order.delivered.v1");

    let confirmed = data("FOB-SP", "fulfilment.order.customer_confirmed.v1");
    assert_eq!(confirmed["basis"], "explicit");
    let offer = data("FOB-SP", "fulfilment.sales.opportunity.v1");
    assert_eq!(offer["customer_id"], "CUST-042");
    let skus: Vec<&str> = offer["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["KETTLE-DESCALER", "CARE-PLAN-12M"]);
    assert!(tap.assert_all_match_the_contract() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_goes_to_customer_service_and_stops_the_acceptance_deadline() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.submit(&[kettle("UNHAPPY-1", "FOB_SHIPPING_POINT")])
        .await;
    // The confirm stage starts the deadline when it handles the handover.
    env.wait_for("the acceptance deadline", || async {
        (acceptance_timers(&env, "UNHAPPY-1").await == ["pending"]).then_some(())
    })
    .await;
    complain(&env, "UNHAPPY-1").await;
    let cases = env.wait_cases(1).await;
    assert_eq!(
        (cases[0].reason.as_str(), cases[0].required_role.as_str()),
        ("customer_complaint", "customer_service")
    );
    assert_eq!(acceptance_timers(&env, "UNHAPPY-1").await, ["cancelled"]);
    assert_eq!(
        crate::helpers::state(&env.pool, "UNHAPPY-1")
            .await
            .as_deref(),
        Some("handed_over")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_before_the_handover_means_silence_is_never_taken_as_acceptance() {
    let mut env = TestEnv::with(|s| s.stages.acceptance_window_secs = 1).await;
    // The complaint is queued for the confirm stage before the order exists, so it is handled
    // before the handover whatever the timing.
    complain(&env, "UNHAPPY-2").await;
    env.submit(&[kettle("UNHAPPY-2", "FOB_SHIPPING_POINT")])
        .await;
    env.start_pipeline(PipelineOptions::default()).await;
    let cases = env.wait_cases(1).await;
    assert_eq!(cases[0].reason, "customer_complaint");
    env.wait_state("UNHAPPY-2", "handed_over").await;

    // A later order with the same window is deemed accepted; the confirm stage handles events in
    // order, so by then it has handled UNHAPPY-2's handover too, and started no deadline.
    env.submit(&[kettle("QUIET-1", "FOB_SHIPPING_POINT")]).await;
    env.wait_state("QUIET-1", "completed").await;
    assert!(acceptance_timers(&env, "UNHAPPY-2").await.is_empty());
    assert_eq!(
        crate::helpers::state(&env.pool, "UNHAPPY-2")
            .await
            .as_deref(),
        Some("handed_over")
    );
}

async fn complain(env: &TestEnv, order: &str) {
    let id = fulfilment::domain::OrderId::parse(order).unwrap();
    env.client
        .confirm(
            id,
            ConfirmationOutcome::Complaint,
            Some("arrived dented".into()),
        )
        .await
        .unwrap();
}

/// The order's acceptance deadlines: `pending`, `fired` or `cancelled`, oldest first.
async fn acceptance_timers(env: &TestEnv, order: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT CASE WHEN cancelled_at IS NOT NULL THEN 'cancelled'
                     WHEN fired_at IS NOT NULL THEN 'fired' ELSE 'pending' END
         FROM timers WHERE order_id = $1 AND kind = 'acceptance_due' ORDER BY id",
    )
    .bind(order)
    .fetch_all(&env.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_is_deemed_acceptance_even_across_a_restart() {
    let mut env = TestEnv::with(|s| s.stages.acceptance_window_secs = 2).await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.submit(&[kettle("SILENT-1", "FOB_SHIPPING_POINT")])
        .await;
    env.wait_state("SILENT-1", "handed_over").await;
    env.stop_pipelines().await;

    // A new process knows nothing of the deadline but what the database holds.
    env.start_pipeline(PipelineOptions::default()).await;
    env.wait_state("SILENT-1", "completed").await;
    let basis: String = sqlx::query_scalar(
        "SELECT detail->>'basis' FROM stage_records WHERE order_id = 'SILENT-1' AND stage = 'confirm'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(basis, "deemed");
}
