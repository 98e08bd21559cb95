//! documents: delivery note, packing list and invoice for goods, a service record for services;
//! gap-free numbers per kind; each stored with its SHA-256 and as a PDF; exact invoice totals.

use fulfilment::export;
use fulfilment::pipeline::PipelineOptions;
use fulfilment::stages::StageName;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{TestEnv, order_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_numbered_without_gaps_fingerprinted_and_exact() {
    let mut env = TestEnv::with(|s| {
        s.stages.seller.name = "Northern Kitchenware Ltd".into();
        s.stages.seller.address = "1 Market Street, Leeds LS1 6DT".into();
        s.stages.seller.tax_number = "GB123456789".into();
    })
    .await;
    env.start_pipeline(PipelineOptions {
        stages: vec![StageName::Verify, StageName::Prepare, StageName::Documents],
        ..PipelineOptions::default()
    })
    .await;
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

    let rows: Vec<(String, Vec<u8>, serde_json::Value)> =
        sqlx::query_as("SELECT sha256, pdf, content FROM documents WHERE order_id = 'DOC-3'")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 3);
    for (sha, pdf, _) in &rows {
        assert!(pdf.starts_with(b"%PDF-"), "a PDF");
        let digest: String = Sha256::digest(pdf)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(&digest, sha);
    }
    let invoice = rows
        .iter()
        .map(|(_, _, c)| c)
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
               "tax_number": "GB123456789"})
    );

    let dir = std::env::temp_dir().join(format!("fulfilment-docs-{}", uuid::Uuid::new_v4()));
    let written = export::documents(&env.pool, "DOC-3", &dir).await.unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3);
    assert!(names.iter().all(|n| n.ends_with(".pdf")));
    let text = String::from_utf8_lossy(&std::fs::read(&written[2]).unwrap()).into_owned();
    assert!(
        text.contains("Total due:   57.39 GBP"),
        "the invoice PDF states the total"
    );
    for seller in [
        "Northern Kitchenware Ltd",
        "VAT registration number: GB123456789",
    ] {
        assert!(
            text.contains(seller),
            "the invoice PDF names the seller: {seller}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
