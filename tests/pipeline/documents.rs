//! documents: delivery note, packing list and invoice for goods, a service record for services;
//! gap-free numbers per kind; each stored with its SHA-256 and as a PDF; exact invoice totals.
//! The PDFs are read back as text (`pdftotext` from poppler-utils) and checked as a customer,
//! a warehouse and an accountant would read them: names and addresses, carrier and tracking, the
//! VAT summary adding up to the total, the due date, page numbers, VOID marks and credit notes.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Days, Utc};
use fulfilment::domain::documents::tracking_reference;
use fulfilment::export;
use fulfilment::pipeline::PipelineOptions;
use fulfilment::reissue::{self, ReissueError, Reissued, Requested};
use fulfilment::stages::StageName;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{TestEnv, line, order_with, post};

fn with_seller(s: &mut fulfilment::settings::Settings) {
    s.stages.seller.name = "Northern Kitchenware Ltd".into();
    s.stages.seller.address = "1 Market Street, Leeds LS1 6DT".into();
    s.stages.seller.tax_number = "GB123456789".into();
    s.stages.seller.company_number = "01234567".into();
}

fn to_documents() -> PipelineOptions {
    PipelineOptions {
        stages: vec![StageName::Verify, StageName::Prepare, StageName::Documents],
        ..PipelineOptions::default()
    }
}

/// The text of a PDF, laid out as printed, pages separated by form feeds.
fn pdf_text(path: &Path) -> String {
    let output = std::process::Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is installed");
    assert!(
        output.status.success(),
        "pdftotext reads {}",
        path.display()
    );
    String::from_utf8(output.stdout).expect("UTF-8 text")
}

/// The order's documents written out, by file name, with their text.
async fn written(env: &TestEnv, order_id: &str) -> (PathBuf, Vec<(String, String)>) {
    let dir = std::env::temp_dir().join(format!("fulfilment-docs-{}", uuid::Uuid::new_v4()));
    let files = export::documents(&env.pool, order_id, &dir).await.unwrap();
    let texts = files
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, pdf_text(p))
        })
        .collect();
    (dir, texts)
}

/// Whether `text` says `expected`, however many spaces separate the words.
fn says(text: &str, expected: &str) -> bool {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    squash(text).contains(&squash(expected))
}

fn text_of<'a>(texts: &'a [(String, String)], file: &str) -> &'a str {
    texts
        .iter()
        .find(|(name, _)| name == file)
        .map(|(_, text)| text.as_str())
        .unwrap_or_else(|| panic!("{file} written; have {texts:?}"))
}

/// Minor units from an amount as printed (`57.39`).
fn minor(amount: &str) -> i64 {
    let (major, minor) = amount.split_once('.').expect("two decimals");
    major.parse::<i64>().unwrap() * 100 + minor.parse::<i64>().unwrap()
}

/// The VAT summary's rows as (rate, net, VAT, gross) in minor units, and the printed total due.
fn vat_rows(text: &str) -> (Vec<(String, i64, i64, i64)>, i64) {
    let mut rows = Vec::new();
    let mut in_summary = false;
    let mut total = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"VAT") && words.get(1) == Some(&"summary") {
            in_summary = true;
            continue;
        }
        if in_summary && words.len() == 7 && words[0].ends_with('%') {
            rows.push((
                words[0].to_owned(),
                minor(words[1]),
                minor(words[3]),
                minor(words[5]),
            ));
        }
        if let ["Total", "due:", amount, "GBP"] = words.as_slice() {
            total = Some(minor(amount));
        }
    }
    (rows, total.expect("a total due"))
}

async fn issued_at(env: &TestEnv, number: &str) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT issued_at FROM documents WHERE number = $1")
        .bind(number)
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_numbered_without_gaps_fingerprinted_and_exact() {
    let mut env = TestEnv::with(with_seller).await;
    env.start_pipeline(to_documents()).await;
    let mut orders: Vec<_> = (0..12)
        .map(|i| {
            order_with(
                &format!("DOC-{i}"),
                vec![
                    json!({"sku": "MUG-BLUE", "quantity": 3, "unit_price_minor": 1250}),
                    json!({"sku": "TEA-EARLGREY-250G", "quantity": 1, "unit_price_minor": 699}),
                    json!({"sku": "KETTLE-DESCALER", "quantity": 1, "unit_price_minor": 450}),
                ],
            )
        })
        .collect();
    orders.push(order_with(
        "DOC-SERVICE",
        vec![json!({"sku": "INSTALL-SERVICE", "quantity": 1, "unit_price_minor": 4500})],
    ));
    env.submit(&orders).await;
    let pool = env.pool.clone();
    env.wait_for("13 orders with documents", || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM orders WHERE state = 'documents_generated'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            (n == 13).then_some(())
        }
    })
    .await;

    for (kind, prefix, count) in [
        ("invoice", "INV", 13),
        ("delivery_note", "DN", 12),
        ("packing_list", "PL", 12),
        ("service_record", "SR", 1),
    ] {
        let mut numbers: Vec<String> =
            sqlx::query_scalar("SELECT number FROM documents WHERE kind = $1")
                .bind(kind)
                .fetch_all(&env.pool)
                .await
                .unwrap();
        numbers.sort();
        let expected: Vec<String> = (1..=count).map(|n| format!("{prefix}-{n:06}")).collect();
        assert_eq!(numbers, expected, "{kind} numbers have no gaps");
    }
    let service_kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM documents WHERE order_id = 'DOC-SERVICE' ORDER BY id")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(service_kinds, ["service_record", "invoice"]);

    let rows: Vec<(String, String, Vec<u8>, serde_json::Value)> = sqlx::query_as(
        "SELECT number, sha256, pdf, content FROM documents WHERE order_id = 'DOC-3' ORDER BY id",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    for (_, sha, pdf, _) in &rows {
        assert!(pdf.starts_with(b"%PDF-"), "a PDF");
        let digest: String = Sha256::digest(pdf)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(&digest, sha);
    }
    let invoice = rows
        .iter()
        .map(|(_, _, _, c)| c)
        .find(|c| c["kind"] == "invoice")
        .unwrap();
    // 3 mugs at 12.50 (20%: 7.50), tea 6.99 (zero-rated), descaler 4.50 (20%: 0.90).
    assert_eq!(
        invoice["totals"],
        json!({"net_minor": 4899, "tax_minor": 840, "gross_minor": 5739})
    );
    assert_eq!(invoice["currency"], "GBP");
    assert_eq!(
        invoice["seller"],
        json!({"name": "Northern Kitchenware Ltd", "address": "1 Market Street, Leeds LS1 6DT",
               "tax_number": "GB123456789", "company_number": "01234567"})
    );

    let (dir, texts) = written(&env, "DOC-3").await;
    let numbers: Vec<String> = rows.iter().map(|r| format!("{}.pdf", r.0)).collect();
    let names: Vec<String> = texts.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names, numbers);
    let (dn, pl, inv) = (&numbers[0], &numbers[1], &numbers[2]);
    let tracking = tracking_reference("Royal Mail", "DOC-3", 1);

    // The accountant's invoice.
    let text = text_of(&texts, inv);
    let date = issued_at(&env, &rows[2].0).await.date_naive();
    let due = date.checked_add_days(Days::new(14)).unwrap();
    for expected in [
        "Northern Kitchenware Ltd".to_owned(),
        "VAT registration number: GB123456789".into(),
        "Company number: 01234567".into(),
        format!("Invoice {}", rows[2].0),
        format!("Invoice date: {date}"),
        format!("Date of supply: {date}"),
        "Customer: CUST-042".into(),
        "Bill to:    Ada Lovelace, 12 St James's Square, London SW1Y 4JH, United Kingdom".into(),
        "Currency: GBP (£)".into(),
        format!("Payment terms: 14 days; due {due}"),
        "Earl Grey loose tea 250 g".into(),
        "Total due:      57.39 GBP".into(),
        "Page 1 of 1".into(),
    ] {
        assert!(
            says(text, &expected),
            "the invoice says {expected:?}:\n{text}"
        );
    }
    let (vat, total) = vat_rows(text);
    assert_eq!(
        vat,
        [
            ("20.00%".to_owned(), 4200, 840, 5040),
            ("0.00%".to_owned(), 699, 0, 699)
        ],
        "{text}"
    );
    assert_eq!(vat.iter().map(|r| r.3).sum::<i64>(), total);
    assert_eq!(vat.iter().map(|r| r.1 + r.2).sum::<i64>(), total);

    // The customer's delivery note and the warehouse's packing list.
    for file in [dn, pl] {
        let text = text_of(&texts, file);
        for expected in [
            "Deliver to: Ada Lovelace, Ockham Park, Ockham Lane, Woking GU23 6NP, United Kingdom"
                .to_owned(),
            "Carrier: Royal Mail, service: Tracked 48".into(),
            format!("Tracking reference: {tracking}"),
            "Delivery terms: FOB_SHIPPING_POINT - Ownership and risk pass to the customer when"
                .into(),
            "Ownership and risk pass: at handover to the carrier".into(),
        ] {
            assert!(says(text, &expected), "{file} says {expected:?}:\n{text}");
        }
        assert!(!text.contains("GBP"), "{file} states no prices");
    }
    assert!(says(
        text_of(&texts, dn),
        "Received by (name and signature)"
    ));
    assert!(says(text_of(&texts, pl), "Total weight: 1.540 kg"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_order_paginates_with_headings_on_every_page_and_totals_on_the_last() {
    let mut env = TestEnv::with(with_seller).await;
    env.start_pipeline(to_documents()).await;
    let skus = ["MUG-BLUE", "TEA-EARLGREY-250G", "KETTLE-DESCALER"];
    let prices = [1250, 699, 450];
    let lines = (0..120)
        .map(|i| line(skus[i % 3], 1 + (i % 4) as u32, prices[i % 3]))
        .collect();
    env.submit(&[order_with("LONG-1", lines)]).await;
    env.wait_state("LONG-1", "documents_generated").await;
    let (dir, texts) = written(&env, "LONG-1").await;
    let invoice = text_of(&texts, "INV-000001.pdf");
    let pages: Vec<&str> = invoice
        .split('\x0c')
        .filter(|p| !p.trim().is_empty())
        .collect();
    assert_eq!(pages.len(), 3, "{invoice}");
    for (i, page) in pages.iter().enumerate() {
        assert!(
            says(page, &format!("Page {} of 3", i + 1)),
            "page {i}: {page}"
        );
        assert!(says(page, "Invoice INV-000001"), "the title on page {i}");
        assert!(says(page, "unit price"), "the table heading on page {i}");
        assert_eq!(says(page, "Total due:"), i == 2, "totals on the last page");
    }
    let (vat, total) = vat_rows(invoice);
    let gross: i64 = sqlx::query_scalar(
        "SELECT (content->'totals'->>'gross_minor')::bigint FROM documents WHERE number = 'INV-000001'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(total, gross);
    assert_eq!(vat.iter().map(|r| r.3).sum::<i64>(), gross);
    let printed_lines = invoice
        .lines()
        .filter(|l| skus.iter().any(|s| l.split_whitespace().nth(1) == Some(*s)))
        .count();
    assert_eq!(printed_lines, 120, "every line printed once");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_after_invoicing_issues_a_credit_note_and_the_ledger_returns_to_zero() {
    let mut env = TestEnv::with(with_seller).await;
    env.start_pipeline(PipelineOptions::default()).await;
    let url = env
        .start_api(&[("Mia Chen", &["customer_service"], "tok-service")])
        .await;
    env.submit(&[order_with(
        "CREDIT-1",
        vec![json!({"sku": "MUG-BLUE", "quantity": 2, "unit_price_minor": 1250})],
    )])
    .await;
    env.wait_state("CREDIT-1", "handed_over").await;
    let pool = env.pool.clone();
    env.wait_for("revenue recognised at dispatch", || {
        let pool = pool.clone();
        async move {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM recognitions WHERE order_id = 'CREDIT-1'")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            (n > 0).then_some(())
        }
    })
    .await;
    // The invoice's totals are what the ledger booked, to the cent.
    let (net, tax, gross): (i64, i64, i64) = sqlx::query_as(
        "SELECT (content->'totals'->>'net_minor')::bigint, (content->'totals'->>'tax_minor')::bigint,
                (content->'totals'->>'gross_minor')::bigint
         FROM documents WHERE order_id = 'CREDIT-1' AND kind = 'invoice'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    let booked: Vec<(String, i64)> = sqlx::query_as(
        "SELECT account, sum(debit_minor - credit_minor)::bigint FROM ledger_entries
         WHERE order_id = 'CREDIT-1' GROUP BY account ORDER BY account",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        booked,
        [
            ("receivable".to_owned(), gross),
            ("revenue".into(), -net),
            ("tax_payable".into(), -tax)
        ]
    );
    env.client
        .confirm(
            fulfilment::domain::OrderId::parse("CREDIT-1").unwrap(),
            fulfilment::domain::events::ConfirmationOutcome::Complaint,
            Some("arrived broken".into()),
        )
        .await
        .unwrap();
    env.wait_cases(1).await;
    let case: i64 = sqlx::query_scalar("SELECT id FROM review_cases WHERE order_id = 'CREDIT-1'")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    let (status, body) = post(
        &reqwest::Client::new(),
        format!("{url}/cases/{case}/cancel"),
        "tok-service",
        json!({"note": "refund"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let documents: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT kind, number, voided_at IS NULL FROM documents WHERE order_id = 'CREDIT-1' ORDER BY id",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        documents,
        [
            ("delivery_note".to_owned(), "DN-000001".to_owned(), false),
            ("packing_list".into(), "PL-000001".into(), false),
            ("invoice".into(), "INV-000001".into(), false),
            ("credit_note".into(), "CN-000001".into(), true),
        ]
    );
    let balances: Vec<(String, i64)> = sqlx::query_as(
        "SELECT account, sum(debit_minor - credit_minor)::bigint FROM ledger_entries
         WHERE order_id = 'CREDIT-1' GROUP BY account ORDER BY account",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert!(!balances.is_empty(), "the ledger was booked");
    assert!(
        balances.iter().all(|(_, b)| *b == 0),
        "every account back to zero: {balances:?}"
    );
    let memos: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT memo FROM ledger_entries WHERE order_id = 'CREDIT-1' AND kind = 'reversal'",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        memos,
        ["reversal: order cancelled; credit note CN-000001 for invoice INV-000001"]
    );

    let (dir, texts) = written(&env, "CREDIT-1").await;
    let credit = text_of(&texts, "CN-000001.pdf");
    for expected in [
        "Credit note CN-000001",
        "Credits invoice INV-000001 in full",
        "Bill to:    Ada Lovelace",
        "Total credited: 30.00 GBP",
        "Northern Kitchenware Ltd",
    ] {
        assert!(
            says(credit, expected),
            "the credit note says {expected:?}:\n{credit}"
        );
    }
    let void = text_of(&texts, "INV-000001.void.pdf");
    assert!(says(void, "credited by CN-000001"), "{void}");
    assert!(void.contains("VOID"));
    assert!(says(text_of(&texts, "DN-000001.void.pdf"), "VOID - voided"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_without_the_seller_are_reissued_once_it_is_configured_even_after_erasure() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(to_documents()).await;
    env.submit(&[order_with(
        "REISSUE-1",
        vec![json!({"sku": "KETTLE-STEEL", "quantity": 1, "unit_price_minor": 3999})],
    )])
    .await;
    env.wait_state("REISSUE-1", "documents_generated").await;
    let (dir, texts) = written(&env, "REISSUE-1").await;
    let before = text_of(&texts, "INV-000001.pdf").to_owned();
    assert!(before.contains("Ada Lovelace") && !before.contains("Northern Kitchenware"));
    std::fs::remove_dir_all(dir).unwrap();

    let now = Utc::now();
    let refused = reissue::reissue(&env.pool, "REISSUE-1", None, now, &Requested::default()).await;
    assert!(
        matches!(refused, Err(ReissueError::NoSeller)),
        "{refused:?}"
    );

    fulfilment::erasure::erase_customer(&env.pool, "CUST-042", "Mia Chen", "request 17")
        .await
        .unwrap();
    let mut settings = env.settings.clone();
    with_seller(&mut settings);
    let seller = settings.stages.seller.seller();
    let reissued = reissue::reissue(
        &env.pool,
        "REISSUE-1",
        seller.clone(),
        now,
        &Requested::default(),
    )
    .await
    .unwrap();
    let pair = |number: &str, replaces: &str| Reissued {
        number: number.into(),
        replaces: replaces.into(),
    };
    assert_eq!(
        reissued,
        [
            pair("DN-000002", "DN-000001"),
            pair("PL-000002", "PL-000001"),
            pair("INV-000002", "INV-000001"),
        ]
    );
    let again = reissue::reissue(&env.pool, "REISSUE-1", seller, now, &Requested::default()).await;
    assert!(
        matches!(again, Err(ReissueError::NothingToReissue(_))),
        "{again:?}"
    );

    let (dir, texts) = written(&env, "REISSUE-1").await;
    let after = text_of(&texts, "INV-000002.pdf");
    for expected in [
        "Northern Kitchenware Ltd",
        "VAT registration number: GB123456789",
        "Replaces INV-000001",
        "Customer: CUST-042 (personal data erased",
        "Total due:      47.99 GBP",
    ] {
        assert!(
            says(after, expected),
            "the reissue says {expected:?}:\n{after}"
        );
    }
    assert!(!after.contains("Ada Lovelace") && !after.contains("Ockham"));
    assert_eq!(vat_rows(after), vat_rows(&before), "amounts and tax stay");
    let void = text_of(&texts, "INV-000001.void.pdf");
    assert!(
        says(void, "VOID - voided") && says(void, "replaced by INV-000002"),
        "{void}"
    );
    let timeline: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT detail FROM stage_records WHERE order_id = 'REISSUE-1' AND detail ? 'reissued'",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(timeline.len(), 1, "the reissue is in the order's timeline");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amendment_voids_the_documents_and_issues_new_ones_that_the_void_copies_name() {
    let mut env = TestEnv::with(with_seller).await;
    env.start_pipeline(to_documents()).await;
    let v1 = order_with(
        "AMEND-DOC-1",
        vec![json!({"sku": "MUG-BLUE", "quantity": 1, "unit_price_minor": 1250})],
    );
    env.submit(std::slice::from_ref(&v1)).await;
    env.wait_state("AMEND-DOC-1", "documents_generated").await;
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.lines[0].quantity = 4;
    env.client.amend(&[v2]).await.unwrap();
    let pool = env.pool.clone();
    env.wait_for("version 2's documents", || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM documents WHERE order_id = 'AMEND-DOC-1' AND version = 2",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            (n == 3).then_some(())
        }
    })
    .await;
    let (dir, texts) = written(&env, "AMEND-DOC-1").await;
    let names: Vec<&str> = texts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "DN-000001.void.pdf",
            "PL-000001.void.pdf",
            "INV-000001.void.pdf",
            "DN-000002.pdf",
            "PL-000002.pdf",
            "INV-000002.pdf"
        ]
    );
    for (old, new) in [
        ("DN", "DN-000002"),
        ("PL", "PL-000002"),
        ("INV", "INV-000002"),
    ] {
        let void = text_of(&texts, &format!("{old}-000001.void.pdf"));
        assert!(says(void, &format!("replaced by {new}")), "{void}");
        assert!(says(void, "Order: AMEND-DOC-1 (version 1)"));
    }
    let invoice = text_of(&texts, "INV-000002.pdf");
    assert!(says(invoice, "Order: AMEND-DOC-1 (version 2)"));
    assert!(says(invoice, "Total due: 60.00 GBP"), "{invoice}");
    assert!(
        !says(invoice, "VOID"),
        "the live invoice carries no VOID mark"
    );
    assert!(says(
        text_of(&texts, "DN-000002.pdf"),
        &format!(
            "Tracking reference: {}",
            tracking_reference("Royal Mail", "AMEND-DOC-1", 2)
        )
    ));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_reissues_documents_from_the_review_desk() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(to_documents()).await;
    env.submit(&[order_with(
        "REISSUE-2",
        vec![json!({"sku": "MUG-BLUE", "quantity": 1, "unit_price_minor": 1250})],
    )])
    .await;
    env.wait_state("REISSUE-2", "documents_generated").await;
    // The seller is configured afterwards; the desk started now knows it.
    with_seller(&mut env.settings);
    let url = env
        .start_api(&[
            ("Ravi Shah", &["finance"], "tok-finance"),
            ("Mia Chen", &["customer_service"], "tok-service"),
        ])
        .await;
    let http = reqwest::Client::new();
    let path = format!("{url}/orders/REISSUE-2/documents/reissue");
    let (status, _) = post(&http, path.clone(), "tok-service", json!({"note": "x"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(&http, path.clone(), "tok-finance", json!({"note": " "})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = post(
        &http,
        path.clone(),
        "tok-finance",
        json!({"note": "seller now configured"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!([
            {"number": "DN-000002", "replaces": "DN-000001"},
            {"number": "PL-000002", "replaces": "PL-000001"},
            {"number": "INV-000002", "replaces": "INV-000001"}
        ])
    );
    let (status, body) = post(&http, path, "tok-finance", json!({"note": "again"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let requested: serde_json::Value = sqlx::query_scalar(
        "SELECT detail->'requested' FROM stage_records WHERE order_id = 'REISSUE-2' AND detail ? 'reissued'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        requested,
        json!({"by": "Ravi Shah", "note": "seller now configured"})
    );
    let (dir, texts) = written(&env, "REISSUE-2").await;
    assert!(says(
        text_of(&texts, "INV-000002.pdf"),
        "Northern Kitchenware Ltd"
    ));
    std::fs::remove_dir_all(dir).unwrap();
}
