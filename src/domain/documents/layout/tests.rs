use chrono::{NaiveDate, TimeZone, Utc};

use super::*;
use crate::domain::catalogue::ProductKind;
use crate::domain::documents::{
    Consignment, PaymentDue, Seller, TermsOfDelivery, Totals, totals, vat_summary,
};
use crate::domain::order::Currency;

fn line(i: u32, name: &str, net: i64, rate_bp: u32) -> DocumentLine {
    DocumentLine {
        line_no: i,
        sku: format!("SKU-{i}"),
        name: name.into(),
        kind: ProductKind::Goods,
        quantity: 1,
        unit_price_minor: net,
        net_minor: net,
        tax_rate_bp: rate_bp,
        tax_minor: money::tax_minor(net, rate_bp),
        weight_grams: (i % 2 == 0).then_some(1250),
    }
}

fn document(kind: DocumentKind, lines: Vec<DocumentLine>) -> DocumentContent {
    DocumentContent {
        kind,
        number: kind.number(7),
        order_id: "ORD-1".into(),
        version: 2,
        customer_id: "C-1".into(),
        buyer: Some(Buyer::Known {
            name: "Ada Lovelace".into(),
            billing_address: Some("12 St James's Square, London SW1Y 4JH".into()),
            delivery_address: Some("Ockham Park, Surrey KT11 1LS".into()),
        }),
        currency: Currency::parse("GBP").unwrap(),
        issued_at: Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap(),
        totals: totals(&lines),
        lines,
        delivery_terms: "FOB_DESTINATION".into(),
        terms: Some(TermsOfDelivery {
            code: "FOB_DESTINATION".into(),
            description: "Free on board destination".into(),
            ownership_passes: OwnershipPasses::OnDelivery,
        }),
        consignment: Some(Consignment {
            carrier: "Royal Mail".into(),
            service: Some("Tracked 48".into()),
            tracking_reference: "RM0123456789".into(),
        }),
        payment: (kind == DocumentKind::Invoice).then(|| PaymentDue {
            terms_days: 30,
            due_date: NaiveDate::from_ymd_opt(2026, 12, 20).unwrap(),
        }),
        supply_date: NaiveDate::from_ymd_opt(2026, 11, 20).filter(|_| kind.priced()),
        replaces: None,
        seller: Some(Seller {
            name: "Northern Kitchenware Ltd".into(),
            address: "1 Market Street, Leeds LS1 6DT".into(),
            tax_number: Some("GB123456789".into()),
            company_number: None,
        }),
    }
}

fn many(n: u32) -> Vec<DocumentLine> {
    (0..n)
        .map(|i| line(i, &format!("Product {i}"), 1000 + i64::from(i), 2000))
        .collect()
}

fn text(pages: &[Vec<String>]) -> String {
    pages
        .iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_page_is_full_height_with_its_number_at_the_foot() {
    for n in [1, 40, 120, 300] {
        let pages = pages(&document(DocumentKind::Invoice, many(n)), None);
        let count = pages.len();
        for (i, page) in pages.iter().enumerate() {
            assert_eq!(page.len(), LINES_PER_PAGE, "{n} lines, page {i}");
            assert_eq!(
                page.last().unwrap().trim(),
                format!("Page {} of {count}", i + 1)
            );
            assert!(page.iter().all(|l| l.chars().count() <= WIDTH), "{page:#?}");
        }
    }
}

#[test]
fn a_hundred_and_twenty_lines_make_three_pages_with_headings_repeated_and_totals_last() {
    let pages = pages(&document(DocumentKind::Invoice, many(120)), None);
    assert_eq!(pages.len(), 3);
    for (i, page) in pages.iter().enumerate() {
        assert!(
            page.iter().any(|l| l.starts_with("Invoice INV-000007")),
            "the title on page {i}"
        );
        assert!(
            page.iter().any(|l| l.contains("unit price")),
            "the table heading on page {i}"
        );
        let totals = page.iter().any(|l| l.starts_with("Total due:"));
        assert_eq!(totals, i == 2, "totals on the last page only (page {i})");
    }
    let all = text(&pages);
    for i in 0..120 {
        assert_eq!(
            all.matches(&format!("SKU-{i} ")).count(),
            1,
            "line {i} printed once"
        );
    }
}

#[test]
fn long_names_wrap_within_their_column_and_nothing_is_cut() {
    let name = "Hand-thrown stoneware serving platter with reactive glaze, dishwasher safe";
    let doc = document(DocumentKind::Invoice, vec![line(0, name, 4500, 2000)]);
    let all = text(&pages(&doc, None));
    let words: Vec<&str> = all.split_whitespace().collect();
    for word in name.split_whitespace() {
        assert!(words.contains(&word), "{word} is printed");
    }
    let rows: Vec<&str> = all.lines().filter(|l| l.contains("SKU-0")).collect();
    assert!(rows[0].contains("45.00"), "amounts on the line's first row");
    assert!(
        rows.len() == 1 && all.lines().any(|l| l.trim() == "safe"),
        "the rest on the next lines"
    );
}

#[test]
fn the_vat_summary_adds_up_to_the_totals() {
    let lines = vec![
        line(0, "Mug", 1250, 2000),
        line(1, "Tea", 699, 0),
        line(2, "Descaler", 450, 2000),
        line(3, "Book", 333, 500),
    ];
    let summary = vat_summary(&lines);
    assert_eq!(
        summary.iter().map(|v| v.rate_bp).collect::<Vec<_>>(),
        [2000, 500, 0]
    );
    let t = totals(&lines);
    let sum = summary.iter().fold(Totals::default(), |acc, v| Totals {
        net_minor: acc.net_minor + v.net_minor,
        tax_minor: acc.tax_minor + v.tax_minor,
        gross_minor: acc.gross_minor + v.gross_minor,
    });
    assert_eq!(sum, t);
    let all = text(&pages(&document(DocumentKind::Invoice, lines), None));
    assert!(all.contains("20.00%        17.00 GBP         3.40 GBP        20.40 GBP"));
    assert!(all.contains(" 5.00%         3.33 GBP         0.17 GBP         3.50 GBP"));
    assert!(all.contains("Total due:      30.89 GBP"));
    assert!(all.contains("Payment terms: 30 days; due 2026-12-20"));
    assert!(all.contains("Currency: GBP (£)"));
    assert!(all.contains("Bill to:    Ada Lovelace, 12 St James's Square"));
}

#[test]
fn documents_that_travel_with_goods_name_the_carrier_and_the_delivery_address() {
    for kind in [DocumentKind::DeliveryNote, DocumentKind::PackingList] {
        let all = text(&pages(&document(kind, many(3)), None));
        assert!(all.contains("Deliver to: Ada Lovelace, Ockham Park, Surrey KT11 1LS"));
        assert!(all.contains("Carrier: Royal Mail, service: Tracked 48"));
        assert!(all.contains("Tracking reference: RM0123456789"));
        assert!(all.contains("Delivery terms: FOB_DESTINATION - Free on board destination"));
        assert!(all.contains("Ownership and risk pass: on delivery to the buyer"));
        assert!(!all.contains("Bill to:"), "{kind:?}");
        assert!(!all.contains("GBP"), "no prices on a {kind:?}");
    }
    let packing = text(&pages(&document(DocumentKind::PackingList, many(3)), None));
    assert!(packing.contains("Total weight: 2.500 kg (without 1 line(s) of unknown weight)"));
}

#[test]
fn an_erased_customer_is_said_to_be_erased() {
    let mut doc = document(DocumentKind::Invoice, many(2));
    doc.buyer = Some(Buyer::Erased);
    let all = text(&pages(&doc, None));
    assert!(all.contains("Customer: C-1 (personal data erased"));
    assert!(!all.contains("Ada"));
    assert!(all.contains("Total due:"));
}

#[test]
fn a_void_copy_says_so_on_every_page() {
    let mark = VoidMark {
        voided_at: Utc.with_ymd_and_hms(2026, 11, 21, 8, 30, 0).unwrap(),
        replaced_by: Some("INV-000008".into()),
        credited_by: None,
    };
    let pages = pages(&document(DocumentKind::Invoice, many(120)), Some(&mark));
    for page in &pages {
        assert_eq!(
            page[0],
            "VOID - voided 2026-11-21 08:30 UTC, replaced by INV-000008"
        );
    }
}

#[test]
fn wrapping_breaks_at_spaces_and_inside_overlong_words() {
    assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
    assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
    assert_eq!(wrap("", 4), [""]);
}
