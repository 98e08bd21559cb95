//! verify: each rule refuses the order to review with its reason and the role that may resolve
//! it; orders within the rules are verified.

use std::collections::HashMap;

use fulfilment::domain::events::OrderPlaced;
use fulfilment::envelope::{Envelope, WireEvent};
use fulfilment::pipeline::PipelineOptions;
use fulfilment::stages::StageName;
use serde_json::json;

use crate::helpers::{TestEnv, line, order_json};

fn web(id: &str, lines: Vec<serde_json::Value>) -> serde_json::Value {
    json!({"order_id": id, "customer_id": "CUST-042", "channel": "web", "currency": "GBP",
           "placed_at": "2026-11-20T09:00:00Z", "lines": lines})
}

fn phone(
    id: &str,
    customer: &str,
    identity: serde_json::Value,
    lines: Vec<serde_json::Value>,
) -> serde_json::Value {
    json!({"order_id": id, "customer_id": customer, "channel": "phone", "agent_id": "AG-7",
           "identity_check": identity, "currency": "GBP", "placed_at": "2026-11-20T09:00:00Z",
           "lines": lines})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rule_refuses_to_review_with_its_reason_and_role() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions {
        stages: vec![StageName::Verify],
        ..PipelineOptions::default()
    })
    .await;
    let passed = json!({"method": "security_questions", "result": "passed",
                        "answers": {"first_pet": "Rex"}});
    let kettle = || line("KETTLE-STEEL", 1, 3999);
    let mut expected: Vec<(serde_json::Value, &str, &str)> = vec![
        (
            json!({"customer_id": "CUST-999"}),
            "unknown_customer",
            "customer_service",
        ),
        (
            web("", vec![line("NO-SUCH-SKU", 1, 100)]),
            "unknown_product",
            "customer_service",
        ),
        (
            web("", vec![line("TEAPOT-CLASSIC", 1, 2500)]),
            "product_not_sellable",
            "customer_service",
        ),
        (
            web("", vec![line("MUG-BLUE", 1, 1000)]),
            "price_mismatch",
            "supervisor",
        ),
        (
            web("", vec![line("MUG-BLUE", 1, 1300)]),
            "price_mismatch",
            "supervisor",
        ),
        (
            web("", vec![line("MUG-BLUE-EU", 1, 1450)]),
            "currency_mismatch",
            "customer_service",
        ),
        (
            json!({"total_minor": 4000}),
            "total_mismatch",
            "customer_service",
        ),
        (
            web("", vec![line("KETTLE-STEEL", 2001, 3999)]),
            "out_of_stock",
            "customer_service",
        ),
        (
            json!({"delivery_terms": "CIF"}),
            "unknown_delivery_terms",
            "customer_service",
        ),
        (
            phone(
                "",
                "CUST-107",
                passed.clone(),
                vec![line("KETTLE-STEEL", 1, 3500)],
            ),
            "beyond_agent_authority",
            "supervisor",
        ),
        (
            phone(
                "",
                "CUST-107",
                passed.clone(),
                vec![line("KETTLE-STEEL", 30, 3999)],
            ),
            "beyond_agent_authority",
            "supervisor",
        ),
        (
            phone("", "CUST-107", json!(null), vec![kettle()]),
            "identity_not_verified",
            "supervisor",
        ),
        (
            phone(
                "",
                "CUST-107",
                json!({"method": "one_time_passcode", "result": "failed"}),
                vec![kettle()],
            ),
            "identity_not_verified",
            "supervisor",
        ),
        (
            phone("", "CUST-200", passed.clone(), vec![kettle()]),
            "identity_not_verified",
            "supervisor",
        ),
    ];
    let mut unknown_agent = phone("", "CUST-107", passed.clone(), vec![kettle()]);
    unknown_agent["agent_id"] = json!("AG-404");
    expected.push((unknown_agent, "unknown_agent", "supervisor"));

    let mut orders = Vec::new();
    let mut want: HashMap<String, (&str, &str)> = HashMap::new();
    for (i, (shape, reason, role)) in expected.iter().enumerate() {
        let id = format!("BAD-{i}");
        let mut order = web(&id, vec![kettle()]);
        for (k, v) in shape.as_object().unwrap() {
            if k != "order_id" {
                order[k] = v.clone();
            }
        }
        order["order_id"] = json!(id);
        orders.push(order_json(order));
        want.insert(id, (*reason, *role));
    }
    orders.push(order_json(web(
        "GOOD-WEB",
        vec![line("MUG-BLUE", 2, 1250), line("TEA-EARLGREY-250G", 1, 699)],
    )));
    env.submit(&orders).await;

    // A contact-centre tool that sends the answers to security questions along: the pipeline
    // must not keep them.
    let good = phone(
        "GOOD-DISCOUNT",
        "CUST-107",
        passed.clone(),
        vec![line("KETTLE-STEEL", 1, 3600)],
    );
    let placed = OrderPlaced::new(order_json(good.clone()));
    let mut envelope = Envelope::wrap("tests", &placed);
    envelope.data["order"] = good;
    let mut raw = WireEvent::new("tests", &placed, None);
    raw.event_id = envelope.id.clone();
    raw.body = envelope.to_bytes();
    assert!(String::from_utf8_lossy(&raw.body).contains("Rex"));
    env.client.publish_raw(&[raw]).await.unwrap();

    let cases = env.wait_cases(want.len()).await;
    env.wait_state("GOOD-DISCOUNT", "verified").await;
    env.wait_state("GOOD-WEB", "verified").await;
    assert_eq!(cases.len(), want.len());
    for case in &cases {
        let id = case.order_id.clone().unwrap();
        let (reason, role) = want[&id];
        assert_eq!(
            (case.reason.as_str(), case.required_role.as_str()),
            (reason, role),
            "{id}"
        );
        assert_eq!(case.stage, "verify");
        assert_eq!(
            crate::helpers::state(&env.pool, &id).await.as_deref(),
            Some("placed"),
            "{id} waits"
        );
    }

    // The answers to security questions never reach storage.
    let stored: String =
        sqlx::query_scalar("SELECT body::text FROM orders WHERE order_id = 'GOOD-DISCOUNT'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(
        stored.contains("security_questions") && !stored.contains("Rex"),
        "{stored}"
    );
}
