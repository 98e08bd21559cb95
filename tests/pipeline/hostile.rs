//! Hostile input through the real broker and database: whatever bytes a publisher sends, no
//! stage stops, loops or books anything it should not; every message that cannot be handled
//! ends in review exactly once with its bytes, and a valid order sent afterwards completes.

use fulfilment::domain::events::{
    ConfirmationBasis, InstalmentDue, OrderCustomerConfirmed, OrderDelivered, OrderHandedOver,
    OrderPlaced, OrderVerified, PaymentCaptured,
};
use fulfilment::domain::{Currency, EventPayload, OrderId, StageName};
use fulfilment::envelope::{Envelope, WireEvent};
use fulfilment::pipeline::PipelineOptions;
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use serde_json::json;

use crate::helpers::{TestEnv, order};

/// Publishes `body` to the events exchange with `properties`, as any publisher could, and
/// waits for the broker's confirm.
async fn publish(env: &TestEnv, routing_key: &str, body: &[u8], properties: BasicProperties) {
    let channel = env.client.connection().create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = channel
        .basic_publish(
            env.topology.exchange().as_str().into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .unwrap();
    assert!(confirm.await.unwrap().is_ack());
    let _ = channel.close(200, "published".into()).await;
}

/// The usual properties of an event, as the pipeline's own publisher sets them.
fn properties_of(event: &WireEvent) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/cloudevents+json".into())
        .with_delivery_mode(2)
        .with_message_id(event.event_id.as_str().into())
        .with_type(event.event_type.as_str().into())
        .with_correlation_id(event.order_id.as_str().into())
}

fn placed(id: &str) -> WireEvent {
    WireEvent::new("tests", &OrderPlaced::new(order(id, 1)), None)
}

/// What the stage queues look like: every stage still has its one consumer.
async fn assert_every_stage_consumes(env: &TestEnv) {
    let channel = env.client.connection().create_channel().await.unwrap();
    for stage in StageName::ALL {
        let queue = env.topology.stage_queue(stage);
        let counts = env.topology.counts(&channel, &queue).await.unwrap();
        assert_eq!(counts.consumers, 1, "{queue} lost its consumer");
    }
    let _ = channel.close(200, "counted".into()).await;
    assert_eq!(env.restarts(), 0, "a worker restarted");
}

/// A review case as stored: reason, detail, body and properties.
async fn stored_cases(env: &TestEnv) -> Vec<(String, String, Vec<u8>, Vec<u8>)> {
    sqlx::query_as(
        "SELECT reason, detail, original_body, original_properties FROM review_cases ORDER BY id",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap()
}

/// Rows of anything an order may have booked.
async fn booked(env: &TestEnv, order_id: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM recognitions WHERE order_id = $1)
              + (SELECT count(*) FROM ledger_entries WHERE order_id = $1)
              + (SELECT count(*) FROM timers WHERE order_id = $1)
              + (SELECT count(*) FROM allocations WHERE order_id = $1)
              + (SELECT count(*) FROM documents WHERE order_id = $1)
              + (SELECT count(*) FROM payments WHERE order_id = $1)",
    )
    .bind(order_id)
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

/// A valid order still goes all the way through.
async fn a_good_order_completes(env: &TestEnv, id: &str) {
    env.submit(&[order(id, 1)]).await;
    env.wait_state(id, "completed").await;
}

/// Makes good properties bad.
type Spoil = Box<dyn Fn(BasicProperties) -> BasicProperties>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_that_are_not_utf8_or_hold_nul_go_to_review_and_stop_nothing() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_customer().await;
    fn bad(bytes: &[u8]) -> ShortString {
        ShortString::from_wire(bytes)
    }
    fn header(key: &[u8]) -> FieldTable {
        let mut headers = FieldTable::default();
        headers.insert(bad(key), AMQPValue::LongString("x".into()));
        headers
    }
    let variants: Vec<(&str, Spoil)> = vec![
        (
            "message-id",
            Box::new(move |p| p.with_message_id(bad(&[0xff, 0xfe, b'1']))),
        ),
        (
            "correlation-id",
            Box::new(move |p| p.with_correlation_id(bad(&[b'A', 0xc3, 0x28]))),
        ),
        ("type", Box::new(move |p| p.with_type(bad(&[0x80])))),
        (
            "content-type",
            Box::new(move |p| p.with_content_type(bad(&[0xe2, 0x82]))),
        ),
        (
            "the header name",
            Box::new(move |p| p.with_headers(header(&[b'k', 0xff]))),
        ),
        (
            "message-id",
            Box::new(move |p| p.with_message_id(bad(b"nul\0id"))),
        ),
        (
            "the header name",
            Box::new(move |p| p.with_headers(header(b"nul\0key"))),
        ),
    ];
    let mut sent = Vec::new();
    for (i, (_, spoil)) in variants.iter().enumerate() {
        let event = placed(&format!("BAD-PROP-{i}"));
        let properties = spoil(properties_of(&event));
        publish(&env, "order.placed", &event.body, properties.clone()).await;
        sent.push((event.body, properties));
    }
    a_good_order_completes(&env, "AFTER-PROPS").await;

    let cases = env.wait_cases(variants.len()).await;
    assert_eq!(cases.len(), variants.len(), "{cases:?}");
    let stored = stored_cases(&env).await;
    for ((name, _), ((reason, detail, body, properties), (sent_body, sent_properties))) in
        variants.iter().zip(stored.iter().zip(&sent))
    {
        assert_eq!(reason, "invalid_properties");
        assert!(detail.contains(name), "{detail} should name {name}");
        assert_eq!(body, sent_body, "the body is kept byte for byte");
        let kept: BasicProperties = serde_json::from_slice(properties).unwrap();
        assert_eq!(
            &kept, sent_properties,
            "the properties are kept octet for octet"
        );
    }
    let orders: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE order_id LIKE 'BAD-PROP-%'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(orders, 0);
    assert_every_stage_consumes(&env).await;
}

/// An `order.placed` envelope for `id` whose JSON is changed by `spoil`.
fn spoiled(id: &str, spoil: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let envelope = Envelope::wrap("tests", &OrderPlaced::new(order(id, 1)));
    let mut json = serde_json::to_value(&envelope).unwrap();
    spoil(&mut json);
    serde_json::to_vec(&json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_envelopes_and_payloads_go_to_review_once_naming_the_field() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_customer().await;
    let long = "x".repeat(20_000);
    let payment = |reference: &str| {
        let paid = PaymentCaptured {
            order_id: OrderId::parse("PAY-MAX").unwrap(),
            payment_reference: reference.into(),
            amount_minor: i64::MAX,
            currency: Currency::parse("GBP").unwrap(),
            captured_at: chrono::Utc::now(),
        };
        Envelope::wrap("tests", &paid).to_bytes()
    };
    let bad: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "order.placed",
            spoiled("NUL-ID", |j| j["id"] = json!("a\u{0}b")),
            "invalid_envelope",
            "id",
        ),
        (
            "order.placed",
            spoiled("LONG-ID", |j| j["id"] = json!(long)),
            "invalid_envelope",
            "id",
        ),
        (
            "order.placed",
            spoiled("EMPTY-ID", |j| j["id"] = json!("")),
            "invalid_envelope",
            "id",
        ),
        (
            "order.placed",
            spoiled("NUL-CUSTOMER", |j| {
                j["data"]["order"]["customer_id"] = json!("C\u{0}1")
            }),
            "invalid_payload",
            "customer_id",
        ),
        (
            "order.placed",
            spoiled("LONG-SKU", |j| {
                j["data"]["order"]["lines"][0]["sku"] = json!(long)
            }),
            "invalid_payload",
            "lines[0].sku",
        ),
        (
            "order.placed",
            spoiled("NEG-QTY", |j| {
                j["data"]["order"]["lines"][0]["quantity"] = json!(-1)
            }),
            "invalid_payload",
            "order.lines[0].quantity",
        ),
        (
            "order.placed",
            spoiled("BAD-DATE", |j| {
                j["data"]["order"]["placed_at"] = json!("yesterday")
            }),
            "invalid_payload",
            "order.placed_at",
        ),
        (
            "order.placed",
            spoiled("SUBJECT-1", |j| j["subject"] = json!("SUBJECT-2")),
            "invalid_payload",
            "subject",
        ),
        (
            "order.placed",
            spoiled("OUTER-1", |j| j["data"]["order_id"] = json!("OUTER-2")),
            "invalid_payload",
            "data.order_id",
        ),
        (
            "payment.captured",
            payment("MAX-1"),
            "invalid_payload",
            "amount_minor",
        ),
    ];
    for (key, body, _, _) in &bad {
        // Twice each: the same bytes again are a duplicate, not a second case.
        for _ in 0..2 {
            publish(
                &env,
                key,
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await;
        }
    }
    a_good_order_completes(&env, "AFTER-ENVELOPES").await;
    let cases = env.wait_cases(bad.len()).await;
    let stored = stored_cases(&env).await;
    assert_eq!(stored.len(), bad.len(), "one case each: {cases:?}");
    for (_, body, reason, field) in &bad {
        let case = stored
            .iter()
            .find(|c| &c.2 == body)
            .expect("a case keeps the bytes");
        assert_eq!(case.0, *reason, "{}", case.1);
        assert!(case.1.contains(field), "{:?} should name {field}", case.1);
        assert!(
            !case.1.contains('\u{0}') && case.1.len() < 2000,
            "{:?}",
            case.1
        );
    }
    for id in [
        "NUL-CUSTOMER",
        "LONG-SKU",
        "SUBJECT-1",
        "SUBJECT-2",
        "OUTER-1",
        "OUTER-2",
        "PAY-MAX",
    ] {
        assert_eq!(crate::helpers::state(&env.pool, id).await, None, "{id}");
        assert_eq!(booked(&env, id).await, 0, "{id}");
    }
    assert_every_stage_consumes(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_events_book_nothing_and_go_to_review() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_customer().await;
    // An order refused at verify stays `placed`.
    env.set_stock("KETTLE-STEEL", 0).await;
    env.submit(&[order("FORGE-1", 1)]).await;
    env.wait_cases(1).await;
    let id = OrderId::parse("FORGE-1").unwrap();
    let ghost = OrderId::parse("GHOST-1").unwrap();
    let now = chrono::Utc::now();
    let handed_over = |order_id: &OrderId| OrderHandedOver {
        order_id: order_id.clone(),
        version: 1,
        carrier: "Royal Mail".into(),
        tracking_reference: "RM1".into(),
        handed_over_at: now,
        delivery_terms: "FOB_SHIPPING_POINT".into(),
        ownership_passes: fulfilment::domain::catalogue::OwnershipPasses::OnDispatch,
        ownership_passed_at: Some(now),
        services_delivered: Vec::new(),
    };
    let forged = vec![
        event(&OrderCustomerConfirmed {
            order_id: id.clone(),
            basis: ConfirmationBasis::Explicit,
            confirmed_at: now,
        }),
        event(&OrderVerified {
            order_id: id.clone(),
            version: 1,
            total_minor: 3999,
            currency: Currency::parse("GBP").unwrap(),
        }),
        event(&handed_over(&id)),
        event(&OrderDelivered {
            order_id: id.clone(),
            delivered_at: now,
        }),
        event(&InstalmentDue {
            order_id: id.clone(),
            line_no: 0,
            instalment: 1,
            due_at: now,
        }),
        event(&handed_over(&ghost)),
    ];
    env.client.publish_raw(&forged).await.unwrap();
    // Each forged event reaches every stage bound to it: revenue for the acceptance; prepare
    // and revenue for order.verified; confirm and revenue for each order.handed_over; revenue
    // for the receipt and the instalment.
    let expected = 1 + 2 + 2 + 1 + 1 + 2;
    let cases = env.wait_cases(1 + expected).await;
    let reasons: Vec<&str> = cases.iter().skip(1).map(|c| c.reason.as_str()).collect();
    assert!(
        reasons.iter().all(|r| *r == "unexpected_event"),
        "{reasons:?}"
    );
    assert_eq!(reasons.len(), expected, "{reasons:?}");
    assert_eq!(booked(&env, "FORGE-1").await, 0);
    assert_eq!(booked(&env, "GHOST-1").await, 0);
    assert_eq!(
        crate::helpers::state(&env.pool, "FORGE-1").await.as_deref(),
        Some("placed")
    );

    // A genuine event replayed with altered content is refused too (its id is known, with
    // other content).
    env.set_stock("KETTLE-STEEL", 10).await;
    a_good_order_completes(&env, "GENUINE-1").await;
    let tap = env.start_tap().await;
    let (_, genuine) = tap
        .bodies_for("GENUINE-1")
        .into_iter()
        .find(|(t, _)| t == "fulfilment.order.customer_confirmed.v1")
        .unwrap();
    let mut tampered: serde_json::Value = serde_json::from_slice(&genuine).unwrap();
    tampered["data"]["confirmed_at"] = json!("2030-01-01T00:00:00Z");
    let body = serde_json::to_vec(&tampered).unwrap();
    publish(
        &env,
        "order.customer_confirmed",
        &body,
        BasicProperties::default(),
    )
    .await;
    let cases = env.wait_cases(2 + expected).await;
    assert_eq!(cases.last().unwrap().reason, "duplicate_event_id");
    let recognised: i64 =
        sqlx::query_scalar("SELECT count(*) FROM recognitions WHERE order_id = 'GENUINE-1'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(recognised, 1, "recognised once, by the genuine acceptance");
    assert_every_stage_consumes(&env).await;
}

fn event<P: EventPayload>(payload: &P) -> WireEvent {
    WireEvent::new("fulfilment/forger", payload, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_used_again_for_other_content_opens_a_case_instead_of_vanishing() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_customer().await;
    let first = placed("REUSE-1");
    let mut second = placed("REUSE-2");
    let mut envelope: serde_json::Value = serde_json::from_slice(&second.body).unwrap();
    envelope["id"] = json!(first.event_id);
    second.body = serde_json::to_vec(&envelope).unwrap();
    second.event_id = first.event_id.clone();
    env.client.publish_raw(&[first]).await.unwrap();
    env.wait_state("REUSE-1", "completed").await;
    env.client
        .publish_raw(&[second.clone(), second])
        .await
        .unwrap();
    let cases = env.wait_cases(1).await;
    assert_eq!(cases[0].reason, "duplicate_event_id");
    a_good_order_completes(&env, "AFTER-REUSE").await;
    assert_eq!(
        crate::helpers::cases(&env.pool).await.len(),
        1,
        "one case, not two"
    );
    assert_eq!(crate::helpers::state(&env.pool, "REUSE-2").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_id_cannot_forge_a_log_line() {
    use std::process::{Command, Stdio};
    let env = TestEnv::new().await;
    let log_path = std::env::temp_dir().join(format!("{}.log", env.settings.amqp.namespace));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_fulfilment"))
        .args(["run", "--no-api"])
        .env("FULFILMENT__AMQP__NAMESPACE", &env.settings.amqp.namespace)
        .env(
            "FULFILMENT__DATABASE__URL",
            env.settings.database.url.expose(),
        )
        .env("FULFILMENT__LOG__FORMAT", "text")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // An id CloudEvents allows (no control characters) that a terminal would show as a second
    // line, right to left; and a message that is not an event, with control characters in its
    // AMQP message id. The order's customer is unknown, so the delivery is logged.
    let forged = "2026-11-30T00:00:00.000000Z  INFO fulfilment: forged";
    let mut unknown = order("LOGGED-1", 1);
    unknown.customer_id = "NOBODY".into();
    let mut event = WireEvent::new("tests", &OrderPlaced::new(unknown), None);
    let mut envelope: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
    envelope["id"] = json!(format!("id\u{2028}{forged}\u{202e}"));
    event.body = serde_json::to_vec(&envelope).unwrap();
    event.event_id = "plain-id".into();
    env.client.publish_raw(&[event]).await.unwrap();
    let properties = BasicProperties::default()
        .with_message_id(format!("x\n{forged}\r\u{1b}[2J").as_str().into());
    publish(&env, "order.placed", b"\x1b[2Jnot an event\n", properties).await;
    env.wait_cases(2).await;
    // SAFETY: sending a signal to a child this test owns and has not reaped.
    unsafe { libc::kill(worker.id() as libc::pid_t, libc::SIGTERM) };
    let status = worker.wait().unwrap();
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "{status}:\n{text}");
    let _ = std::fs::remove_file(&log_path);
    assert!(text.contains("escalated to review"), "{text}");
    assert!(
        text.contains("\\u{2028}"),
        "the separator is shown escaped:\n{text}"
    );
    for line in text.lines() {
        assert!(
            !line.contains("  INFO fulfilment: forged") || line.contains("\\u{2028}"),
            "{line}"
        );
        assert!(!line.starts_with(forged), "a forged line: {line}");
    }
    for raw in ['\u{1b}', '\r', '\u{2028}', '\u{202e}', '\u{0}'] {
        assert!(!text.contains(raw), "raw {raw:?} in the log:\n{text}");
    }
}
