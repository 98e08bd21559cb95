//! The published contract is the behaviour: a finance client on its documented binding books
//! exactly what the ledger books, through amendments, payments and cancellations; an order keeps
//! one trace from intake to revenue, timers and HTTP callers included; the AsyncAPI document's
//! examples go through the pipeline; and orders generated within the schemas all complete.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use fulfilment::contract::{BINDINGS, example, payload_schema};
use fulfilment::domain::events::{ConfirmationOutcome, PaymentCaptured};
use fulfilment::domain::{Currency, EventType, Order, OrderId};
use fulfilment::envelope::{Envelope, WireEvent};
use fulfilment::messaging::{self, InboundStream};
use fulfilment::pipeline::PipelineOptions;
use fulfilment::stages::StageName;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::json;

use crate::helpers::{TestEnv, line, order_with, post};

/// What a finance client has heard, per order: revenue, tax and cash.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Heard {
    revenue: i64,
    tax: i64,
    cash: i64,
}

/// A finance client as `docs/integration.md` describes it: its own queue on the documented
/// binding, every event counted once by its id.
async fn finance_client(env: &mut TestEnv) -> Arc<Mutex<HashMap<String, Heard>>> {
    let keys = BINDINGS.iter().find(|(_, q, _)| *q == "finance").unwrap().2;
    let queue = env.bind_queue("finance", keys).await;
    let connection = messaging::connect(&env.settings.amqp, "finance")
        .await
        .unwrap();
    let mut stream = InboundStream::open(&connection, &queue, 100).await.unwrap();
    let books: Arc<Mutex<HashMap<String, Heard>>> = Arc::default();
    let kept = books.clone();
    tokio::spawn(async move {
        let _connection = connection;
        let mut seen = std::collections::HashSet::new();
        while let Some(Ok(inbound)) = stream.next().await {
            let (envelope, _) = Envelope::decode(inbound.body()).unwrap();
            if seen.insert(envelope.id.clone()) {
                let data = &envelope.data;
                let amount = data["amount_minor"].as_i64().unwrap_or(0);
                let tax = data["tax_minor"].as_i64().unwrap_or(0);
                let mut books = kept.lock().unwrap();
                let heard = books.entry(envelope.subject.clone()).or_default();
                match envelope.event_type.as_str() {
                    "fulfilment.revenue.recognised.v1" => {
                        heard.revenue += amount;
                        heard.tax += tax;
                    }
                    "fulfilment.revenue.reversed.v1" => {
                        heard.revenue -= amount;
                        heard.tax -= tax;
                    }
                    "fulfilment.revenue.payment_recorded.v1" => heard.cash += amount,
                    _ => {}
                }
            }
            inbound.ack().await.unwrap();
        }
    });
    books
}

/// The ledger of an order: revenue and tax (credit balances) and cash (a debit balance).
async fn ledger(env: &TestEnv, order_id: &str) -> Heard {
    let (revenue, tax, cash): (i64, i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(credit_minor - debit_minor) FILTER (WHERE account = 'revenue'), 0)::bigint,
                coalesce(sum(credit_minor - debit_minor) FILTER (WHERE account = 'tax_payable'), 0)::bigint,
                coalesce(sum(debit_minor - credit_minor) FILTER (WHERE account = 'cash'), 0)::bigint
         FROM ledger_entries WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    Heard { revenue, tax, cash }
}

/// Waits until the ledger of `order_id` holds `expected`, and what finance heard about it
/// equals the ledger.
async fn finance_agrees(
    env: &TestEnv,
    books: &Arc<Mutex<HashMap<String, Heard>>>,
    order_id: &str,
    expected: Heard,
) {
    let what = format!("finance and the ledger of {order_id} at {expected:?}");
    let (booked, heard) = env
        .wait_for(&what, || async {
            let booked = ledger(env, order_id).await;
            let heard = books
                .lock()
                .unwrap()
                .get(order_id)
                .copied()
                .unwrap_or_default();
            (booked == expected && heard == booked).then_some((booked, heard))
        })
        .await;
    assert_eq!(heard, booked);
}

fn payment(order_id: &str, reference: &str, amount_minor: i64) -> PaymentCaptured {
    PaymentCaptured {
        order_id: OrderId::parse(order_id).unwrap(),
        payment_reference: reference.into(),
        amount_minor,
        currency: Currency::parse("GBP").unwrap(),
        captured_at: Utc::now(),
    }
}

async fn answer(env: &TestEnv, order_id: &str, outcome: ConfirmationOutcome) {
    let id = OrderId::parse(order_id).unwrap();
    let reason =
        (outcome == ConfirmationOutcome::Complaint).then(|| "it arrived broken".to_owned());
    env.client.confirm(id, outcome, reason).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_hears_every_ledger_movement_through_amendment_payment_and_cancellation() {
    let mut env = TestEnv::new().await;
    // Handover starts later: until then orders wait, documented, before handover.
    let before_handover = StageName::ALL
        .iter()
        .copied()
        .filter(|s| *s != StageName::Handover);
    let options = PipelineOptions {
        stages: before_handover.collect(),
        ..PipelineOptions::default()
    };
    env.start_pipeline(options).await;
    let books = finance_client(&mut env).await;
    let url = env
        .start_api(&[("Mia Chen", &["customer_service"], "tok-service")])
        .await;
    let tap = env.start_tap().await;

    // Descaler is recognised on order; the mug on dispatch.
    let v1 = order_with(
        "AMEND-FIN",
        vec![line("KETTLE-DESCALER", 2, 450), line("MUG-BLUE", 1, 1250)],
    );
    env.submit(std::slice::from_ref(&v1)).await;
    env.wait_state("AMEND-FIN", "documents_generated").await;
    env.client
        .pay(payment("AMEND-FIN", "PAY-A1", 1000))
        .await
        .unwrap();
    let expected = Heard {
        revenue: 900,
        tax: 180,
        cash: 1000,
    };
    finance_agrees(&env, &books, "AMEND-FIN", expected).await;

    // Amended: version 1's goods are released and its revenue reversed, version 2's
    // recognised, all announced.
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.lines[0].quantity = 3;
    env.client.amend(&[v2]).await.unwrap();
    env.wait_for("version 2 documented", || async {
        let version: i32 = sqlx::query_scalar(
            "SELECT version FROM orders WHERE order_id = 'AMEND-FIN' AND state = 'documents_generated'",
        )
        .fetch_optional(&env.pool)
        .await
        .unwrap()
        .unwrap_or(0);
        (version == 2).then_some(())
    })
    .await;
    let expected = Heard {
        revenue: 1350,
        tax: 270,
        cash: 1000,
    };
    finance_agrees(&env, &books, "AMEND-FIN", expected).await;
    env.start_pipeline(PipelineOptions {
        stages: vec![StageName::Handover],
        relay: false,
        ..PipelineOptions::default()
    })
    .await;
    env.wait_state("AMEND-FIN", "handed_over").await;
    let expected = Heard {
        revenue: 1350 + 1250,
        tax: 270 + 250,
        cash: 1000,
    };
    finance_agrees(&env, &books, "AMEND-FIN", expected).await;
    answer(&env, "AMEND-FIN", ConfirmationOutcome::Accepted).await;
    env.client
        .pay(payment("AMEND-FIN", "PAY-A2", 2120))
        .await
        .unwrap();
    env.wait_state("AMEND-FIN", "completed").await;
    let expected = Heard {
        revenue: 2600,
        tax: 520,
        cash: 3120,
    };
    finance_agrees(&env, &books, "AMEND-FIN", expected).await;
    let reversals = tap.count_by_order("fulfilment.revenue.reversed.v1");
    assert_eq!(reversals.get("AMEND-FIN"), Some(&1));
    let released = tap.count_by_order("fulfilment.goods.released.v1");
    assert_eq!(released.get("AMEND-FIN"), Some(&1));
    assert!(crate::helpers::cases(&env.pool).await.is_empty());

    // Cancelled after handover: the reversal reaches finance on its binding too.
    let cancel = order_with(
        "CANCEL-FIN",
        vec![line("KETTLE-DESCALER", 1, 450), line("MUG-BLUE", 2, 1250)],
    );
    env.submit(&[cancel]).await;
    env.wait_state("CANCEL-FIN", "handed_over").await;
    answer(&env, "CANCEL-FIN", ConfirmationOutcome::Complaint).await;
    let cases = env.wait_cases(1).await;
    assert_eq!(cases[0].reason, "customer_complaint");
    let id: i64 = sqlx::query_scalar("SELECT id FROM review_cases WHERE order_id = 'CANCEL-FIN'")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    let note = json!({"note": "the customer returns it"});
    let (status, body) = post(
        &reqwest::Client::new(),
        format!("{url}/cases/{id}/cancel"),
        "tok-service",
        note,
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    env.wait_state("CANCEL-FIN", "cancelled").await;
    finance_agrees(&env, &books, "CANCEL-FIN", Heard::default()).await;
    assert_eq!(
        tap.count_by_order("fulfilment.goods.released.v1")
            .get("CANCEL-FIN"),
        Some(&1)
    );
    assert_eq!(
        tap.count_by_order("fulfilment.revenue.reversed.v1")
            .get("CANCEL-FIN"),
        Some(&1)
    );
    tap.assert_all_match_the_contract();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_keeps_one_trace_from_intake_to_revenue_through_a_deadline() {
    let mut env = TestEnv::with(|s| s.stages.acceptance_window_secs = 1).await;
    env.start_pipeline(PipelineOptions::default()).await;
    let url = env.start_api(&[("Shop", &["intake"], "tok-shop")]).await;
    let tap = env.start_tap().await;
    // Over AMQP, the trace the shop's client started; over HTTP, the caller's own.
    env.submit(&[order_with("TRACE-AMQP", vec![line("MUG-BLUE", 1, 1250)])])
        .await;
    let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let body =
        serde_json::to_value(order_with("TRACE-HTTP", vec![line("MUG-BLUE", 1, 1250)])).unwrap();
    let response = reqwest::Client::new()
        .post(format!("{url}/orders"))
        .bearer_auth("tok-shop")
        .header("traceparent", caller)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    // Nobody answers: both are deemed accepted when the window passes.
    env.wait_completed(2).await;
    env.wait_for("the revenue events", || async {
        let seen = tap.count_by_order("fulfilment.revenue.recognised.v1");
        (seen.len() == 2).then_some(())
    })
    .await;
    for order in ["TRACE-AMQP", "TRACE-HTTP"] {
        let traces = tap.trace_ids_for(order);
        let kinds: Vec<&str> = traces.iter().map(|(t, _)| t.as_str()).collect();
        assert!(
            kinds.contains(&"fulfilment.order.acceptance_due.v1"),
            "{kinds:?}"
        );
        let ids: std::collections::HashSet<_> = traces.iter().map(|(_, t)| t.clone()).collect();
        assert_eq!(ids.len(), 1, "{order}: one trace, got {traces:?}");
        assert!(ids.iter().all(Option::is_some));
        if order == "TRACE-HTTP" {
            assert_eq!(
                ids.into_iter().next().unwrap().unwrap(),
                "0af7651916cd43dd8448eb211c80319c"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documents_examples_go_through_the_pipeline() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    let tap = env.start_tap().await;
    let publish = |event: EventType| {
        let data = example(event);
        let subject = data["order_id"].as_str().unwrap().to_owned();
        let envelope = Envelope::around(
            "fulfilment/example",
            event,
            &OrderId::parse(subject).unwrap(),
            data,
        );
        WireEvent::from_bytes(envelope.to_bytes(), None).unwrap()
    };
    env.client
        .publish_raw(&[
            publish(EventType::OrderPlaced),
            publish(EventType::PaymentCaptured),
        ])
        .await
        .unwrap();
    env.wait_state("WEB-1001", "handed_over").await;
    env.client
        .publish_raw(&[publish(EventType::CustomerConfirmation)])
        .await
        .unwrap();
    env.wait_state("WEB-1001", "completed").await;
    env.wait_for("the payment recorded", || async {
        let seen = tap.count_by_order("fulfilment.revenue.payment_recorded.v1");
        (seen.get("WEB-1001") == Some(&1)).then_some(())
    })
    .await;
    assert!(crate::helpers::cases(&env.pool).await.is_empty());
    tap.assert_all_match_the_contract();
}

/// Orders valid under `order.placed`'s schema, of the sample catalogue's sellable products at
/// list price (bar the care plan, which completes a year on), for its verified customers, under
/// either delivery terms.
fn catalogue_orders() -> impl Strategy<Value = serde_json::Value> {
    let products = prop::sample::select(vec![
        ("MUG-BLUE", 1250),
        ("MUG-SET-4", 4200),
        ("TEA-EARLGREY-250G", 699),
        ("KETTLE-STEEL", 3999),
        ("KETTLE-DESCALER", 450),
        ("INSTALL-SERVICE", 4500),
    ]);
    let line = (products, 1u32..=3)
        .prop_map(|((sku, price), quantity)| json!({"sku": sku, "quantity": quantity, "unit_price_minor": price}));
    (
        prop::collection::vec(line, 1..=4),
        prop::sample::select(vec!["CUST-042", "CUST-107"]),
        prop::sample::select(vec!["FOB_SHIPPING_POINT", "FOB_DESTINATION"]),
    )
        .prop_map(|(lines, customer, terms)| {
            json!({"customer_id": customer, "channel": "web", "currency": "GBP",
                   "placed_at": "2026-11-20T09:00:00Z", "delivery_terms": terms, "lines": lines})
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_generated_within_the_schema_all_complete() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_customer().await;
    let validator = jsonschema::validator_for(&payload_schema(EventType::OrderPlaced)).unwrap();
    let mut runner = TestRunner::default();
    let strategy = catalogue_orders();
    let mut orders: Vec<Order> = Vec::new();
    for i in 0..20 {
        let mut json = strategy.new_tree(&mut runner).unwrap().current();
        json["order_id"] = json!(format!("GEN-{i}"));
        let data = json!({"order_id": format!("GEN-{i}"), "order": json});
        assert!(validator.is_valid(&data), "{data}");
        orders.push(serde_json::from_value(data["order"].clone()).unwrap());
    }
    env.submit(&orders).await;
    // Done when every order completed or one of them was escalated: then no case may exist.
    let pool = env.pool.clone();
    let (completed, cases) = env
        .wait_for(
            "every generated order to complete or one to be escalated",
            || async {
                let completed: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM orders WHERE state = 'completed'")
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                let cases = crate::helpers::cases(&pool).await;
                (completed == 20 || !cases.is_empty()).then_some((completed, cases))
            },
        )
        .await;
    assert!(cases.is_empty(), "{cases:?}");
    assert_eq!(completed, 20);
}
