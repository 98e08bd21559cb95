//! revenue, end to end over the sample catalogue: goods and services, all four recognition
//! points plus a service over its period, both delivery terms, payments; every order's ledger
//! balances to the cent and recognises its net total once, each line when its point is reached.

use std::collections::HashMap;

use chrono::Utc;
use fulfilment::domain::catalogue::Catalogue;
use fulfilment::domain::events::{ConfirmationOutcome, PaymentCaptured};
use fulfilment::domain::{Currency, OrderId};
use fulfilment::pipeline::PipelineOptions;
use fulfilment::seed;
use fulfilment::stages::StageName;
use serde_json::json;

use crate::helpers::{TestEnv, cases, line, order_json, order_with};

/// (order, lines, delivery terms, channel extras)
fn orders() -> Vec<fulfilment::domain::Order> {
    let web = |id: &str, terms: Option<&str>, lines: Vec<serde_json::Value>| {
        let mut o = json!({"order_id": id, "customer_id": "CUST-042", "channel": "web", "currency": "GBP",
                           "placed_at": "2026-11-20T09:00:00Z", "lines": lines});
        if let Some(t) = terms {
            o["delivery_terms"] = json!(t);
        }
        order_json(o)
    };
    let phone = order_json(json!({
        "order_id": "R-4", "customer_id": "CUST-107", "channel": "phone", "agent_id": "AG-7",
        "identity_check": {"method": "one_time_passcode", "result": "passed"},
        "currency": "GBP", "placed_at": "2026-11-20T09:00:00Z", "delivery_terms": "FOB_DESTINATION",
        "lines": [line("KETTLE-STEEL", 1, 3600), line("MUG-BLUE", 1, 1250)]
    }));
    vec![
        web(
            "R-1",
            Some("FOB_SHIPPING_POINT"),
            vec![line("MUG-BLUE", 2, 1250), line("TEA-EARLGREY-250G", 1, 699)],
        ),
        web(
            "R-2",
            Some("FOB_DESTINATION"),
            vec![
                line("KETTLE-STEEL", 1, 3999),
                line("KETTLE-DESCALER", 2, 450),
            ],
        ),
        web(
            "R-3",
            None,
            vec![
                line("INSTALL-SERVICE", 1, 4500),
                line("CARE-PLAN-TEST", 1, 6000),
            ],
        ),
        phone,
    ]
}

async fn sum(env: &TestEnv, sql: &'static str, order: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(order)
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_is_recognised_at_its_point_and_the_ledger_balances_to_the_cent() {
    let mut env = TestEnv::new().await;
    let short_plan: Catalogue = serde_json::from_value(json!({"products": [{
        "sku": "CARE-PLAN-TEST", "name": "Care plan (two seconds)", "kind": "service",
        "price_minor": 6000, "currency": "GBP", "tax_rate_bp": 2000,
        "recognition": "over_service_period", "service_period_secs": 2, "service_instalments": 2
    }]}))
    .unwrap();
    seed::apply(&env.pool, &short_plan).await.unwrap();
    let tap = env.start_tap().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_customer_saying(&[
        ConfirmationOutcome::Delivered,
        ConfirmationOutcome::Accepted,
    ])
    .await;
    env.submit(&orders()).await;

    // Payments: R-1 in full, R-2 in part.
    let paid = HashMap::from([("R-1", 3699i64), ("R-2", 1000)]);
    for (order, amount) in &paid {
        env.wait_state_at_least_verified(order).await;
        env.client
            .pay(PaymentCaptured {
                order_id: OrderId::parse(*order).unwrap(),
                payment_reference: format!("PAY-{order}"),
                amount_minor: *amount,
                currency: Currency::parse("GBP").unwrap(),
                captured_at: Utc::now(),
            })
            .await
            .unwrap();
    }
    env.wait_completed(4).await;
    env.wait_for("revenue events for every order", || {
        let n = tap.count_by_order("fulfilment.revenue.recognised.v1").len();
        async move { (n == 4).then_some(()) }
    })
    .await;
    let pool = env.pool.clone();
    env.wait_for("both payments booked", || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
                .fetch_one(&pool)
                .await
                .unwrap();
            (n == 2).then_some(())
        }
    })
    .await;

    // (net, tax) per order, worked out by hand from the catalogue.
    let expected = HashMap::from([
        ("R-1", (3199, 500)),
        ("R-2", (4899, 980)),
        ("R-3", (10500, 2100)),
        ("R-4", (4850, 970)),
    ]);
    for (order, (net, tax)) in &expected {
        let debits = sum(
            &env,
            "SELECT COALESCE(SUM(debit_minor),0)::BIGINT FROM ledger_entries WHERE order_id = $1",
            order,
        )
        .await;
        let credits = sum(
            &env,
            "SELECT COALESCE(SUM(credit_minor),0)::BIGINT FROM ledger_entries WHERE order_id = $1",
            order,
        )
        .await;
        assert_eq!(debits, credits, "{order}: debits equal credits");
        let balance = |account: &'static str| {
            let env = &env;
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COALESCE(SUM(credit_minor - debit_minor),0)::BIGINT FROM ledger_entries
                     WHERE order_id = $1 AND account = $2",
                )
                .bind(*order)
                .bind(account)
                .fetch_one(&env.pool)
                .await
                .unwrap()
            }
        };
        assert_eq!(
            balance("revenue").await,
            *net,
            "{order}: revenue equals the net total"
        );
        assert_eq!(balance("tax_payable").await, *tax, "{order}: tax");
        let paid = paid.get(order).copied().unwrap_or(0);
        assert_eq!(-balance("cash").await, paid, "{order}: cash");
        assert_eq!(
            -balance("receivable").await,
            net + tax - paid,
            "{order}: still owed"
        );
        assert_eq!(
            balance("deferred_revenue").await,
            0,
            "{order}: nothing left deferred"
        );
        let recognised = sum(
            &env,
            "SELECT COALESCE(SUM(amount_minor),0)::BIGINT FROM recognitions WHERE order_id = $1",
            order,
        )
        .await;
        assert_eq!(recognised, *net, "{order}: recognised once");
        // Distinct events by id: a redelivered copy is the same event.
        let published: i64 = tap
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, e)| {
                e.subject == *order && e.event_type == "fulfilment.revenue.recognised.v1"
            })
            .map(|(_, e)| (e.id.clone(), e.data["amount_minor"].as_i64().unwrap()))
            .collect::<HashMap<_, _>>()
            .values()
            .sum();
        assert_eq!(
            published, *net,
            "{order}: revenue events add up to the net total"
        );
    }

    // Each line was recognised at its own point, on the evidence of the matching milestone.
    let events = tap.events.lock().unwrap().clone();
    let type_of = |id: &str| {
        events
            .iter()
            .find(|(_, e)| e.id == id)
            .map(|(_, e)| e.event_type.clone())
    };
    let rows: Vec<(String, i32, i32, String, Vec<String>)> = sqlx::query_as(
        "SELECT order_id, line_no, instalment, basis, evidence FROM recognitions ORDER BY id",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    let milestone = |basis: &str| match basis {
        "on_order" => "fulfilment.order.verified.v1",
        "on_dispatch" => "fulfilment.order.handed_over.v1",
        "on_delivery" => "fulfilment.order.delivered.v1",
        "on_acceptance" => "fulfilment.order.customer_confirmed.v1",
        _ => "fulfilment.revenue.instalment_due.v1",
    };
    let bases: Vec<(&str, i32, i32, &str)> = rows
        .iter()
        .map(|(o, l, i, b, _)| (o.as_str(), *l, *i, b.as_str()))
        .collect();
    for expected in [
        ("R-1", 0, 0, "on_dispatch"),
        ("R-1", 1, 0, "on_delivery"),
        ("R-2", 0, 0, "on_acceptance"),
        // Goods under FOB destination: not before delivery, whatever the product's point.
        ("R-2", 1, 0, "on_delivery"),
        ("R-3", 0, 0, "on_acceptance"),
        ("R-3", 1, 1, "over_service_period"),
        ("R-3", 1, 2, "over_service_period"),
        ("R-4", 0, 0, "on_acceptance"),
        ("R-4", 1, 0, "on_delivery"),
    ] {
        assert!(
            bases.contains(&expected),
            "missing recognition {expected:?} in {bases:?}"
        );
    }
    assert_eq!(rows.len(), 9, "each line (or instalment) recognised once");
    for (order, _, _, basis, evidence) in &rows {
        assert_eq!(
            type_of(&evidence[0]).as_deref(),
            Some(milestone(basis)),
            "{order} {basis}"
        );
    }
    assert!(tap.assert_all_match_the_contract() > 0);
}

fn payment(order: &str, amount_minor: i64) -> PaymentCaptured {
    PaymentCaptured {
        order_id: OrderId::parse(order).unwrap(),
        payment_reference: format!("PAY-{order}"),
        amount_minor,
        currency: Currency::parse("GBP").unwrap(),
        captured_at: Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_captured_before_its_order_waits_for_the_order() {
    let mut env = TestEnv::with(|s| {
        s.retry.base_delay_ms = 200;
        s.retry.max_delay_ms = 2000;
        s.retry.too_early_max_attempts = 8;
    })
    .await;
    // Only revenue runs at first, so the payment is certainly handled before its order exists.
    env.start_pipeline(PipelineOptions {
        stages: vec![StageName::Revenue],
        ..PipelineOptions::default()
    })
    .await;
    env.client.pay(payment("EARLY-1", 3999)).await.unwrap();
    let queue = env.topology.stage_queue(StageName::Revenue);
    let channel = env.client.connection().create_channel().await.unwrap();
    env.wait_for("revenue to take the payment", || async {
        let counts = env.topology.counts(&channel, &queue).await.unwrap();
        (counts.ready == 0).then_some(())
    })
    .await;

    env.submit(&[order_with("EARLY-1", vec![line("KETTLE-STEEL", 1, 3999)])])
        .await;
    let others = StageName::ALL
        .into_iter()
        .filter(|s| *s != StageName::Revenue);
    env.start_pipeline(PipelineOptions {
        stages: others.collect(),
        relay: false,
        ..PipelineOptions::default()
    })
    .await;
    let pool = env.pool.clone();
    env.wait_for("the payment booked", || {
        let pool = pool.clone();
        async move {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM payments WHERE order_id = 'EARLY-1'")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            (n == 1).then_some(())
        }
    })
    .await;
    let cash = sum(
        &env,
        "SELECT COALESCE(SUM(debit_minor),0)::BIGINT FROM ledger_entries WHERE order_id = $1 AND account = 'cash'",
        "EARLY-1",
    )
    .await;
    assert_eq!(cash, 3999);
    assert!(cases(&env.pool).await.is_empty(), "nothing went to review");
    channel.close(200, "ok".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_for_an_order_that_never_comes_goes_to_finance() {
    let mut env = TestEnv::with(|s| {
        s.retry.base_delay_ms = 50;
        s.retry.max_attempts = 1;
        s.retry.too_early_max_attempts = 3;
    })
    .await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.client.pay(payment("NEVER-1", 500)).await.unwrap();
    let case = env.wait_cases(1).await.remove(0);
    assert_eq!(
        (case.reason.as_str(), case.required_role.as_str()),
        ("unknown_order", "finance")
    );
    let detail: String = sqlx::query_scalar("SELECT detail FROM review_cases")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(
        detail,
        "payment PAY-NEVER-1 of 5.00 GBP names order NEVER-1, which never reached the pipeline"
    );
    // It had the attempts of a payment that is early, not those of a transient failure.
    let properties: Vec<u8> = sqlx::query_scalar("SELECT original_properties FROM review_cases")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    let properties: serde_json::Value = serde_json::from_slice(&properties).unwrap();
    assert_eq!(
        properties["headers"]["x-fulfilment-attempt"],
        json!({"LongUInt": 3})
    );
}
