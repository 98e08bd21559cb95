//! The operator's overview over HTTP, as JSON and as Prometheus gauges: orders by state, open
//! cases, the outbox, every queue.

use fulfilment::pipeline::PipelineOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestEnv, line, order_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_orders_cases_backlogs_and_queues() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_customer().await;
    let url = env
        .start_api(&[("Sam Ops", &["operations"], "tok-ops")])
        .await;
    env.set_stock("KETTLE-STEEL", 0).await;
    env.submit(&[
        order_with("STUCK-1", vec![line("KETTLE-STEEL", 1, 3999)]),
        order_with("FINE-1", vec![line("MUG-BLUE", 1, 1250)]),
    ])
    .await;
    env.wait_cases(1).await;
    env.wait_completed(1).await;

    let http = reqwest::Client::new();
    let get = |token: Option<&'static str>| {
        let request = http.get(format!("{url}/overview"));
        let request = match token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };
    assert_eq!(get(None).await.status(), StatusCode::UNAUTHORIZED);
    // The case's broadcast reaches the review queue just after the case is committed.
    let overview: Value = env
        .wait_for("the case on the review queue", || async {
            let overview: Value = get(Some("tok-ops")).await.json().await.unwrap();
            let review = queue(
                &overview,
                &format!("{}.review", env.settings.amqp.namespace),
            );
            (review["ready"] == 1).then_some(overview)
        })
        .await;

    let states: Vec<(String, i64)> = overview["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["state"].as_str().unwrap().to_owned(),
                s["orders"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("placed".to_owned(), 1), ("completed".to_owned(), 1)]
    );
    let cases = &overview["open_cases"];
    assert_eq!(cases.as_array().unwrap().len(), 1);
    assert_eq!(
        [
            &cases[0]["reason"],
            &cases[0]["required_role"],
            &cases[0]["cases"]
        ],
        [
            &json!("out_of_stock"),
            &json!("customer_service"),
            &json!(1)
        ]
    );
    assert_eq!(overview["outbox"]["unsent"], 0);
    assert_eq!(overview["queues"].as_array().unwrap().len(), 13);
    let verify = queue(
        &overview,
        &format!("{}.verify", env.settings.amqp.namespace),
    );
    assert_eq!(
        (&verify["ready"], &verify["consumers"]),
        (&json!(0), &json!(1))
    );
    assert!(overview.get("broker_error").is_none());

    let metrics = http
        .get(format!("{url}/metrics"))
        .bearer_auth("tok-ops")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.unwrap();
    for line in [
        "fulfilment_orders{state=\"completed\"} 1",
        "fulfilment_review_cases_open{reason=\"out_of_stock\",role=\"customer_service\"} 1",
        "fulfilment_broker_up 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

fn queue<'a>(overview: &'a Value, name: &str) -> &'a Value {
    overview["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == name)
        .unwrap_or_else(|| panic!("no queue {name} in {overview}"))
}
