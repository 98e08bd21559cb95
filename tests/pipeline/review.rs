//! The human-review desk over HTTP: 401 without a valid token, 403 without authority; retry is
//! exactly once even when two people click at once; amend verifies again; cancel compensates
//! (stock, documents, revenue); close records who and why.

use fulfilment::domain::events::ConfirmationOutcome;
use fulfilment::pipeline::PipelineOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestEnv, order_with, post, state};

const SUPERVISOR: &str = "tok-supervisor";
const FINANCE: &str = "tok-finance";
const SERVICE: &str = "tok-service";

async fn desk(env: &mut TestEnv) -> (String, reqwest::Client) {
    let url = env
        .start_api(&[
            ("Jo Okafor", &["supervisor"], SUPERVISOR),
            ("Ravi Shah", &["finance"], FINANCE),
            ("Mia Chen", &["customer_service"], SERVICE),
        ])
        .await;
    (url, reqwest::Client::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authority_is_enforced_and_a_retry_happens_once_for_two_clicks() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_customer().await;
    let (url, http) = desk(&mut env).await;
    env.set_stock("KETTLE-STEEL", 0).await;
    env.submit(&[order_with(
        "WAIT-1",
        vec![json!({"sku": "KETTLE-STEEL", "quantity": 1, "unit_price_minor": 3999})],
    )])
    .await;
    let case = env.wait_cases(1).await.remove(0);
    assert_eq!(case.reason, "out_of_stock");
    let id = sqlx::query_scalar::<_, i64>("SELECT id FROM review_cases")
        .fetch_one(&env.pool)
        .await
        .unwrap();

    // Who may look, who may act.
    let cases = format!("{url}/cases?status=open");
    assert_eq!(
        http.get(&cases).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        http.get(&cases)
            .bearer_auth("nope")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let listed: Value = http
        .get(&cases)
        .bearer_auth(FINANCE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let retry = format!("{url}/cases/{id}/retry");
    let (status, _) = post(&http, retry.clone(), FINANCE, json!({"note": "try again"})).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "out of stock needs customer service"
    );
    let shown: Value = http
        .get(format!("{url}/cases/{id}"))
        .bearer_auth(SERVICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        shown["original_body_text"]
            .as_str()
            .unwrap()
            .contains("WAIT-1")
    );
    assert_eq!(shown["timeline"][0]["stage"], "verify");

    // Stock arrives; two people click retry at the same moment.
    env.set_stock("KETTLE-STEEL", 10).await;
    let (a, b) = tokio::join!(
        post(&http, retry.clone(), SERVICE, json!({"note": "restocked"})),
        post(
            &http,
            retry.clone(),
            SERVICE,
            json!({"note": "restocked too"})
        ),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    env.wait_state("WAIT-1", "completed").await;
    let verified: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM stage_records WHERE order_id = 'WAIT-1' AND stage = 'verify' AND state_after = 'verified'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(verified, 1, "the re-injected order was verified once");
    let actions: Vec<(String, String)> = sqlx::query_as("SELECT action, actor FROM review_actions")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(actions, [("retry".to_owned(), "Mia Chen".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amend_verifies_again_cancel_compensates_and_close_records_why() {
    let mut env = TestEnv::new().await;
    let tap = env.start_tap().await;
    env.start_pipeline(PipelineOptions::default()).await;
    let (url, http) = desk(&mut env).await;

    // A price below list on a web order: a supervisor amends it to the list price.
    env.submit(&[order_with(
        "CHEAP-1",
        vec![json!({"sku": "MUG-BLUE", "quantity": 1, "unit_price_minor": 999})],
    )])
    .await;
    env.wait_cases(1).await;
    let fixed = json!({"order_id": "CHEAP-1", "customer_id": "CUST-042", "channel": "web", "currency": "GBP",
        "placed_at": "2026-11-20T09:00:00Z", "lines": [{"sku": "MUG-BLUE", "quantity": 1, "unit_price_minor": 1250}]});
    let (status, body) = post(
        &http,
        format!("{url}/cases/1/amend"),
        SUPERVISOR,
        json!({"note": "list price", "order": fixed}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    env.wait_state("CHEAP-1", "handed_over").await;

    // The customer complains after dispatch revenue was recognised: cancel it.
    env.client
        .confirm(
            fulfilment::domain::OrderId::parse("CHEAP-1").unwrap(),
            ConfirmationOutcome::Complaint,
            Some("wrong colour".into()),
        )
        .await
        .unwrap();
    let cases = env.wait_cases(2).await;
    assert_eq!(cases[1].reason, "customer_complaint");
    let stock_before: i32 =
        sqlx::query_scalar("SELECT available FROM stock WHERE sku = 'MUG-BLUE'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    let (status, body) = post(
        &http,
        format!("{url}/cases/2/cancel"),
        SERVICE,
        json!({"note": "customer wants a refund"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        state(&env.pool, "CHEAP-1").await.as_deref(),
        Some("cancelled")
    );
    let stock_after: i32 = sqlx::query_scalar("SELECT available FROM stock WHERE sku = 'MUG-BLUE'")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(stock_after, stock_before + 1, "stock released");
    let (live_docs, revenue, debits, credits): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM documents WHERE order_id = 'CHEAP-1' AND voided_at IS NULL
                   AND kind <> 'credit_note'),
                (SELECT COALESCE(SUM(credit_minor - debit_minor), 0)::BIGINT FROM ledger_entries
                  WHERE order_id = 'CHEAP-1' AND account = 'revenue'),
                (SELECT COALESCE(SUM(debit_minor), 0)::BIGINT FROM ledger_entries WHERE order_id = 'CHEAP-1'),
                (SELECT COALESCE(SUM(credit_minor), 0)::BIGINT FROM ledger_entries WHERE order_id = 'CHEAP-1')",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        live_docs, 0,
        "documents voided (the invoice's credit note stays)"
    );
    assert_eq!(revenue, 0, "revenue reversed");
    assert!(
        debits > 0 && debits == credits,
        "reversing rows keep the ledger balanced"
    );
    env.wait_for("order.cancelled on the exchange", || {
        let seen = tap
            .count_by_order("fulfilment.order.cancelled.v1")
            .contains_key("CHEAP-1");
        async move { seen.then_some(()) }
    })
    .await;

    // Closing needs a note, and records who and why.
    let garbage = {
        let mut e = fulfilment::envelope::WireEvent::new(
            "tests",
            &fulfilment::domain::events::OrderPlaced::new(order_with(
                "X",
                vec![json!({"sku": "MUG-BLUE", "quantity": 1, "unit_price_minor": 1250})],
            )),
            None,
        );
        e.body = b"not json at all".to_vec();
        e.event_id = "garbage-1".into();
        e
    };
    env.client.publish_raw(&[garbage]).await.unwrap();
    env.wait_cases(3).await;
    let (status, _) = post(
        &http,
        format!("{url}/cases/3/close"),
        SUPERVISOR,
        json!({"note": ""}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "unreadable messages need operations"
    );
    let ops = env
        .start_api(&[("Sam Ops", &["operations"], "tok-ops")])
        .await;
    let (status, _) = post(
        &http,
        format!("{ops}/cases/3/close"),
        "tok-ops",
        json!({"note": ""}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a note is required"
    );
    let (status, body) = post(
        &http,
        format!("{ops}/cases/3/close"),
        "tok-ops",
        json!({"note": "test traffic from a broken client"}),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("closed"))
    );
    let shown: Value = http
        .get(format!("{ops}/cases/3"))
        .bearer_auth("tok-ops")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["actions"][0]["actor"], "Sam Ops");
    assert_eq!(
        shown["actions"][0]["note"],
        "test traffic from a broken client"
    );
    assert!(tap.assert_all_match_the_contract() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_case_that_holds_its_order_closes_the_order() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    let (url, http) = desk(&mut env).await;

    // A discontinued product: verify refuses the order, which waits in `placed`.
    env.submit(&[order_with(
        "HELD-1",
        vec![json!({"sku": "TEAPOT-CLASSIC", "quantity": 1, "unit_price_minor": 2500})],
    )])
    .await;
    let cases = env.wait_cases(1).await;
    assert_eq!(cases[0].reason, "product_not_sellable");
    assert_eq!(state(&env.pool, "HELD-1").await.as_deref(), Some("placed"));

    let (status, body) = post(
        &http,
        format!("{url}/cases/1/close"),
        SERVICE,
        json!({"note": "customer ordered elsewhere"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(state(&env.pool, "HELD-1").await.as_deref(), Some("closed"));
    let (stage, detail): (String, Value) = sqlx::query_as(
        "SELECT state_after, detail FROM stage_records WHERE order_id = 'HELD-1'
         ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(stage, "closed", "the timeline says so: {detail}");
    assert_eq!(detail["case_id"], 1, "and which case closed it: {detail}");

    // The overview counts it as closed, not as an order waiting in `placed`.
    let overview = fulfilment::overview::take(&env.pool, Ok(Vec::new()))
        .await
        .unwrap();
    let count = |name: &str| {
        overview
            .orders
            .iter()
            .find(|s| s.state == name)
            .map_or(0, |s| s.orders)
    };
    assert_eq!((count("placed"), count("closed")), (0, 1), "{overview:?}");
}
