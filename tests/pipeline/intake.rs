//! The HTTP intake: a system with the `intake` role places, amends, answers and pays over HTTP;
//! a request with one invalid part publishes nothing; a caller without the role is refused.

use chrono::Utc;
use fulfilment::pipeline::PipelineOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestEnv, cases, line, order_with, state};

const SHOP: &str = "tok-shop";
const SERVICE: &str = "tok-service";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_places_answers_pays_and_amends_over_http() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    let url = env
        .start_api(&[
            ("web-shop", &["intake"], SHOP),
            ("Mia Chen", &["customer_service"], SERVICE),
        ])
        .await;
    let http = reqwest::Client::new();
    let post = |path: &str, token: &'static str, body: Value| {
        crate::helpers::post(&http, format!("{url}{path}"), token, body)
    };
    let order =
        |id: &str| serde_json::to_value(order_with(id, vec![line("MUG-BLUE", 1, 1250)])).unwrap();

    let (status, _) = post("/orders", SERVICE, order("HTTP-0")).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "placing needs the intake role"
    );
    let mut broken = order("HTTP-BAD");
    broken["lines"][0]["quantity"] = json!(0);
    let (status, body) = post("/orders", SHOP, json!([order("HTTP-LOST"), broken])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("order #2 is invalid"),
        "{body}"
    );

    let (status, body) = post("/orders", SHOP, order("HTTP-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"][0]["order_id"], "HTTP-1");
    assert!(
        body["accepted"][0]["event_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    let answer = json!({"order_id": "HTTP-1", "outcome": "accepted"});
    assert_eq!(
        post("/confirmations", SHOP, answer).await.0,
        StatusCode::ACCEPTED
    );
    let mut payment = json!({"order_id": "HTTP-1", "payment_reference": "PSP-77", "amount_minor": 1500,
                             "currency": "GBP", "captured_at": Utc::now()});
    assert_eq!(
        post("/payments", SHOP, payment.clone()).await.0,
        StatusCode::ACCEPTED
    );
    payment["amount_minor"] = json!(0);
    assert_eq!(
        post("/payments", SHOP, payment).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    env.wait_completed(1).await;
    let paid: i64 =
        sqlx::query_scalar("SELECT amount_minor FROM payments WHERE order_id = 'HTTP-1'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(paid, 1500);
    // The rejected request placed nothing, not even its valid order (verify handles orders in
    // the order they were published, so it would have been stored before HTTP-1).
    assert_eq!(state(&env.pool, "HTTP-LOST").await, None);

    let mut changed = order("HTTP-1");
    changed["version"] = json!(2);
    assert_eq!(
        post("/amendments", SHOP, changed).await.0,
        StatusCode::ACCEPTED
    );
    let case = env.wait_cases(1).await.remove(0);
    assert_eq!(case.reason, "amendment_after_handover");
    assert_eq!(cases(&env.pool).await.len(), 1);
}
