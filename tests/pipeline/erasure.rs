//! Erasing a customer's personal data: gone from every table but the documents already issued
//! (kept as issued, as invoices must be), the financial records untouched, only for someone with
//! the authority, and the customer's new orders refused afterwards.

use std::path::Path;

use fulfilment::domain::OrderId;
use fulfilment::domain::events::ConfirmationOutcome;
use fulfilment::pipeline::PipelineOptions;
use fulfilment::seed;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestEnv, order_with, post, state};

const SERVICE: &str = "tok-service";
const FINANCE: &str = "tok-finance";
/// What the customer wrote in their complaint, and what the customer record holds.
const PERSONAL: [&str; 5] = [
    "Jo Bloggs on 07700 900123",
    "Ada Lovelace",
    "ada@example.com",
    "12 St James's Square",
    "Ockham Park",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_removes_personal_data_everywhere_and_keeps_the_books() {
    let mut env = TestEnv::new().await;
    let tap = env.start_tap().await;
    env.start_pipeline(PipelineOptions::default()).await;
    let url = env
        .start_api(&[
            ("Mia Chen", &["customer_service"], SERVICE),
            ("Ravi Shah", &["finance"], FINANCE),
        ])
        .await;
    let http = reqwest::Client::new();
    let order = OrderId::parse("ERASE-1").unwrap();
    env.submit(&[order_with(
        "ERASE-1",
        vec![json!({"sku": "KETTLE-STEEL", "quantity": 1, "unit_price_minor": 3999})],
    )])
    .await;
    env.wait_state("ERASE-1", "handed_over").await;
    let complaint = Some(format!("dented, please ring {}", PERSONAL[0]));
    env.client
        .confirm(order.clone(), ConfirmationOutcome::Complaint, complaint)
        .await
        .unwrap();
    env.wait_cases(1).await;
    // A retry re-sends the complaint through the outbox, so a copy of the words is there too.
    let (status, body) = post_note(&http, &url, "/cases/1/retry", SERVICE, "call back").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    env.wait_cases(2).await;
    env.client
        .confirm(order, ConfirmationOutcome::Accepted, None)
        .await
        .unwrap();
    env.wait_state("ERASE-1", "completed").await;

    let opened = env
        .wait_for("both cases broadcast", || {
            let opened: Vec<Vec<u8>> = tap
                .bodies_for("ERASE-1")
                .into_iter()
                .filter(|(ty, _)| ty == "fulfilment.review.case_opened.v1")
                .map(|(_, body)| body)
                .collect();
            async move { (opened.len() == 2).then_some(opened) }
        })
        .await;
    assert!(
        opened
            .iter()
            .all(|body| !String::from_utf8_lossy(body).contains(PERSONAL[0])),
        "review.case_opened never broadcasts the customer's words"
    );
    for needle in PERSONAL {
        assert!(!mentions(&env.pool, needle).await.is_empty(), "{needle}");
    }
    let books_before = books(&env.pool).await;

    let (status, _) = post_note(&http, &url, "/customers/CUST-042/erase", FINANCE, "asked").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post_note(&http, &url, "/customers/CUST-042/erase", SERVICE, " ").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = post_note(&http, &url, "/customers/CUST-999/erase", SERVICE, "asked").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, summary) =
        post_note(&http, &url, "/customers/CUST-042/erase", SERVICE, "req 17").await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["customer_record"], true);
    assert_eq!(summary["orders_kept"], 1);
    assert_eq!(summary["answers_cleared"], 2, "the complaint and its retry");
    assert_eq!(summary["review_cases_cleared"], 2);
    assert!(summary["outbox_messages_cleared"].as_u64().unwrap() >= 1);
    assert!(summary["purchases_forgotten"].as_u64().unwrap() >= 1);

    for needle in PERSONAL {
        // The name and addresses stay on the documents issued before the erasure.
        let kept: &[&str] = if [PERSONAL[1], PERSONAL[3], PERSONAL[4]].contains(&needle) {
            &["documents"]
        } else {
            &[]
        };
        assert_eq!(mentions(&env.pool, needle).await, kept, "{needle}");
    }
    let issued_with_name: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM documents WHERE content->'buyer'->>'name' = 'Ada Lovelace'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        issued_with_name, 3,
        "delivery note, packing list and invoice as issued"
    );
    assert_eq!(
        books(&env.pool).await,
        books_before,
        "financial records are untouched"
    );
    let (by, note): (String, String) =
        sqlx::query_as("SELECT erased_by, note FROM erasures WHERE customer_id = 'CUST-042'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!((by.as_str(), note.as_str()), ("Mia Chen", "req 17"));

    // A stale reference-data file does not bring the record back; a new order is refused.
    let catalogue = seed::read(Path::new("examples/catalogue.json")).unwrap();
    let left_erased = seed::apply(&env.pool, &catalogue).await.unwrap();
    assert_eq!(left_erased, ["CUST-042"]);
    assert_eq!(mentions(&env.pool, PERSONAL[1]).await, ["documents"]);
    env.submit(&[order_with(
        "ERASE-2",
        vec![json!({"sku": "KETTLE-STEEL", "quantity": 1, "unit_price_minor": 3999})],
    )])
    .await;
    let cases = env.wait_cases(3).await;
    assert_eq!(
        (cases[2].reason.as_str(), cases[2].required_role.as_str()),
        ("customer_erased", "customer_service")
    );
    assert_eq!(state(&env.pool, "ERASE-2").await.as_deref(), Some("placed"));
    let remembered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM customer_skus WHERE customer_id = 'CUST-042'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(remembered, 0, "no purchase history grows again");

    // Asking again finds nothing more to erase.
    let (status, again) =
        post_note(&http, &url, "/customers/CUST-042/erase", SERVICE, "again").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        [&again["answers_cleared"], &again["review_cases_cleared"]],
        [&json!(0), &json!(0)]
    );
    assert_eq!(again["outbox_messages_cleared"], 0);
}

/// POSTs `{"note": note}` to `path` on the API.
async fn post_note(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    token: &str,
    note: &str,
) -> (StatusCode, Value) {
    post(http, format!("{url}{path}"), token, json!({ "note": note })).await
}

/// The tables with a row holding `needle`, as text or as bytes.
async fn mentions(pool: &PgPool, needle: &str) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
    let mut found = Vec::new();
    for table in tables {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {table} t WHERE strpos(t::text, $1) > 0 OR strpos(t::text, $2) > 0)"
        );
        // The table names come from the catalogue, not from input.
        let hit: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(needle)
            .bind(&hex)
            .fetch_one(pool)
            .await
            .unwrap();
        if hit {
            found.push(table);
        }
    }
    found
}

/// Counts and sums of the financial records, to compare before and after.
async fn books(pool: &PgPool) -> Value {
    sqlx::query_scalar(
        "SELECT json_build_object(
            'ledger', (SELECT json_agg(json_build_array(account, debit_minor, credit_minor) ORDER BY id)
                       FROM ledger_entries),
            'recognitions', (SELECT json_agg(json_build_array(line_no, amount_minor, tax_minor) ORDER BY id)
                             FROM recognitions),
            'documents', (SELECT json_agg(json_build_array(number, sha256) ORDER BY id) FROM documents),
            'orders', (SELECT json_agg(json_build_array(order_id, customer_id, state, total_minor))
                       FROM orders WHERE order_id = 'ERASE-1'))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}
