//! Sets a document out as pages of text in fixed-width columns: the header (seller, title, dates,
//! customer, carrier, terms) in full on the first page and in short on the others, the table
//! heading on every page with lines, long names and descriptions wrapped within their column,
//! the totals (and the VAT summary) only on the last page, and "Page x of y" at the foot of every
//! page. A voided document carries a VOID line on every page saying when and what replaced it.

use chrono::{DateTime, Utc};

use super::{Buyer, DocumentContent, DocumentKind, DocumentLine, OwnershipPasses};
use crate::domain::money;

/// Lines on one page, the foot line included.
pub const LINES_PER_PAGE: usize = 68;
/// Characters on one line.
pub const WIDTH: usize = 100;

const QTY: usize = 5;
const SKU: usize = 20;
const MONEY: usize = 11;
const RATE: usize = 7;
const WEIGHT: usize = 12;

/// What a voided copy says about its voiding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoidMark {
    /// When it was voided.
    pub voided_at: DateTime<Utc>,
    /// The number of the document that replaced it, if one did.
    pub replaced_by: Option<String>,
    /// The number of the credit note that credited it, if one did.
    pub credited_by: Option<String>,
}

impl VoidMark {
    /// The line printed at the top of every page of the voided copy.
    pub fn line(&self) -> String {
        let when = self.voided_at.format("%Y-%m-%d %H:%M UTC");
        match (&self.replaced_by, &self.credited_by) {
            (Some(number), _) => format!("VOID - voided {when}, replaced by {number}"),
            (None, Some(number)) => format!("VOID - voided {when}, credited by {number}"),
            (None, None) => format!("VOID - voided {when}, not replaced"),
        }
    }
}

/// The title line, as on the first page: `Invoice INV-000042`.
pub fn title(doc: &DocumentContent) -> String {
    format!("{} {}", doc.kind.title(), doc.number)
}

/// The document's pages, each exactly [`LINES_PER_PAGE`] lines (padded with empty lines so
/// that the foot line sits at the bottom).
pub fn pages(doc: &DocumentContent, void: Option<&VoidMark>) -> Vec<Vec<String>> {
    let first = first_header(doc, void);
    let later = later_header(doc, void);
    let heading = heading(doc.kind);
    let rows: Vec<Vec<String>> = doc.lines.iter().map(|l| row(doc, l)).collect();
    let closing = closing(doc);
    // Room for the foot: an empty line and "Page x of y".
    let room = LINES_PER_PAGE - 2;
    let mut bodies: Vec<Vec<String>> = Vec::new();
    let mut page: Vec<String> = first.iter().chain(&heading).cloned().collect();
    let mut rows_on_page = 0;
    for row in rows {
        if rows_on_page > 0 && page.len() + row.len() > room {
            bodies.push(std::mem::take(&mut page));
            page = later.iter().chain(&heading).cloned().collect();
            rows_on_page = 0;
        }
        page.extend(row);
        rows_on_page += 1;
    }
    if page.len() + closing.len() > room {
        bodies.push(std::mem::take(&mut page));
        page = later.clone();
    }
    page.extend(closing);
    bodies.push(page);
    let count = bodies.len();
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, mut page)| {
            page.resize(LINES_PER_PAGE - 1, String::new());
            page.push(format!("{:>WIDTH$}", format!("Page {} of {count}", i + 1)));
            page
        })
        .collect()
}

fn first_header(doc: &DocumentContent, void: Option<&VoidMark>) -> Vec<String> {
    let mut out: Vec<String> = void
        .map(|v| vec![v.line(), String::new()])
        .unwrap_or_default();
    if let Some(seller) = &doc.seller {
        out.extend(wrap(&seller.name, WIDTH));
        out.extend(wrap(&seller.address, WIDTH));
        if let Some(number) = &seller.tax_number {
            out.push(format!("VAT registration number: {number}"));
        }
        if let Some(number) = &seller.company_number {
            out.push(format!("Company number: {number}"));
        }
        out.push(String::new());
    }
    out.push(title(doc));
    out.push(String::new());
    let date = doc.issued_at.date_naive();
    match doc.kind {
        DocumentKind::Invoice => out.push(format!("Invoice date: {date}")),
        DocumentKind::CreditNote => out.push(format!("Credit note date: {date}")),
        _ => out.push(format!(
            "Issued: {}",
            doc.issued_at.format("%Y-%m-%d %H:%M UTC")
        )),
    }
    if let Some(supply) = doc.supply_date {
        out.push(format!("Date of supply: {supply}"));
    }
    out.push(format!("Order: {} (version {})", doc.order_id, doc.version));
    if let Some(number) = &doc.replaces {
        out.push(match doc.kind {
            DocumentKind::CreditNote => format!("Credits invoice {number} in full"),
            _ => format!("Replaces {number}"),
        });
    }
    out.extend(buyer(doc));
    if let Some(c) = &doc.consignment {
        let service = c
            .service
            .as_ref()
            .map(|s| format!(", service: {s}"))
            .unwrap_or_default();
        out.push(format!("Carrier: {}{service}", c.carrier));
        out.push(format!("Tracking reference: {}", c.tracking_reference));
    }
    match &doc.terms {
        Some(terms) => {
            let text = format!("{} - {}", terms.code, terms.description);
            out.extend(labelled("Delivery terms: ", &text));
            out.push(format!(
                "Ownership and risk pass: {}",
                match terms.ownership_passes {
                    OwnershipPasses::OnDispatch =>
                        "at handover to the carrier (the buyer bears the risk in transit)",
                    OwnershipPasses::OnDelivery =>
                        "on delivery to the buyer (the seller bears the risk in transit)",
                }
            ));
        }
        None => out.push(format!("Delivery terms: {}", doc.delivery_terms)),
    }
    if doc.kind.priced() {
        let symbol = money::symbol(doc.currency)
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        out.push(format!("Currency: {}{symbol}", doc.currency));
    }
    if let Some(due) = &doc.payment {
        out.push(match due.terms_days {
            0 => format!("Payment terms: due on receipt, by {}", due.due_date),
            days => format!("Payment terms: {days} days; due {}", due.due_date),
        });
    }
    out.push(String::new());
    out
}

/// The customer block: who is billed and where the goods go.
fn buyer(doc: &DocumentContent) -> Vec<String> {
    let mut out = Vec::new();
    match &doc.buyer {
        None => out.push(format!("Customer: {}", doc.customer_id)),
        Some(Buyer::Erased) => out.push(format!(
            "Customer: {} (personal data erased: name and addresses not shown)",
            doc.customer_id
        )),
        Some(Buyer::Known {
            name,
            billing_address,
            delivery_address,
        }) => {
            out.push(format!("Customer: {}", doc.customer_id));
            let deliver_to = delivery_address.as_ref().or(billing_address.as_ref());
            let mut block = |label: &str, address: Option<&String>| {
                let text = match address {
                    Some(address) => format!("{name}, {address}"),
                    None => name.clone(),
                };
                out.extend(labelled(label, &text));
            };
            if doc.kind.priced() || doc.kind == DocumentKind::ServiceRecord {
                block("Bill to:    ", billing_address.as_ref());
            }
            if doc.kind.shipping() || (doc.kind.priced() && delivery_address.is_some()) {
                block("Deliver to: ", deliver_to);
            }
        }
    }
    out
}

fn later_header(doc: &DocumentContent, void: Option<&VoidMark>) -> Vec<String> {
    let mut out: Vec<String> = void
        .map(|v| vec![v.line(), String::new()])
        .unwrap_or_default();
    if let Some(seller) = &doc.seller {
        out.extend(wrap(&seller.name, WIDTH));
    }
    out.push(format!("{} (continued)", title(doc)));
    out.push(format!("Order: {} (version {})", doc.order_id, doc.version));
    out.push(String::new());
    out
}

/// The width of the description column for a kind of document.
fn description_width(kind: DocumentKind) -> usize {
    let fixed = QTY + 2 + SKU + 1;
    if kind.priced() {
        WIDTH - fixed - (1 + MONEY) * 3 - (1 + RATE)
    } else if kind == DocumentKind::PackingList {
        WIDTH - fixed - (1 + WEIGHT)
    } else {
        WIDTH - fixed
    }
}

fn heading(kind: DocumentKind) -> Vec<String> {
    let desc = description_width(kind);
    let mut line = format!(
        "{:>QTY$}  {:<SKU$} {:<desc$}",
        "qty", "product", "description"
    );
    if kind.priced() {
        line.push_str(&format!(
            " {:>MONEY$} {:>MONEY$} {:>RATE$} {:>MONEY$}",
            "unit price", "net", "VAT", "VAT amount"
        ));
    } else if kind == DocumentKind::PackingList {
        line.push_str(&format!(" {:>WEIGHT$}", "weight"));
    }
    vec![line.trim_end().to_owned(), "-".repeat(WIDTH)]
}

/// One table row: the first line with every column, then the rest of the wrapped SKU and name.
fn row(doc: &DocumentContent, l: &DocumentLine) -> Vec<String> {
    let desc = description_width(doc.kind);
    let skus = wrap(&l.sku, SKU);
    let names = wrap(&l.name, desc);
    let height = skus.len().max(names.len());
    (0..height)
        .map(|i| {
            let sku = skus.get(i).map_or("", String::as_str);
            let name = names.get(i).map_or("", String::as_str);
            let qty = if i == 0 {
                format!("{:>QTY$}", l.quantity)
            } else {
                " ".repeat(QTY)
            };
            let mut line = format!("{qty}  {sku:<SKU$} {name:<desc$}");
            if i == 0 && doc.kind.priced() {
                line.push_str(&format!(
                    " {:>MONEY$} {:>MONEY$} {:>RATE$} {:>MONEY$}",
                    doc.amount(l.unit_price_minor),
                    doc.amount(l.net_minor),
                    rate(l.tax_rate_bp),
                    doc.amount(l.tax_minor),
                ));
            } else if i == 0 && doc.kind == DocumentKind::PackingList {
                let weight = l
                    .weight_grams
                    .map(|g| kilograms(u64::from(g) * u64::from(l.quantity)))
                    .unwrap_or_else(|| "not known".into());
                line.push_str(&format!(" {weight:>WEIGHT$}"));
            }
            line.trim_end().to_owned()
        })
        .collect()
}

fn closing(doc: &DocumentContent) -> Vec<String> {
    let mut out = vec![String::new()];
    if doc.kind.priced() {
        let money = |m| money::format(m, doc.currency);
        out.push(format!(
            "{:<14} {:>8} {:>16} {:>16} {:>16}",
            "VAT summary", "rate", "net", "VAT", "gross"
        ));
        for at in super::vat_summary(&doc.lines) {
            out.push(format!(
                "{:<14} {:>8} {:>16} {:>16} {:>16}",
                "",
                rate(at.rate_bp),
                money(at.net_minor),
                money(at.tax_minor),
                money(at.gross_minor)
            ));
        }
        let t = doc.totals;
        out.push(format!(
            "{:<14} {:>8} {:>16} {:>16} {:>16}",
            "total",
            "",
            money(t.net_minor),
            money(t.tax_minor),
            money(t.gross_minor)
        ));
        out.push(String::new());
        out.push(format!("Net total:      {}", money(t.net_minor)));
        out.push(format!("VAT:            {}", money(t.tax_minor)));
        if doc.kind == DocumentKind::CreditNote {
            out.push(format!("Total credited: {}", money(t.gross_minor)));
        } else {
            out.push(format!("Total due:      {}", money(t.gross_minor)));
            if let Some(due) = &doc.payment {
                out.push(String::new());
                out.push(format!(
                    "Please pay {} by {}, quoting {}.",
                    money(t.gross_minor),
                    due.due_date,
                    doc.number
                ));
            }
        }
    }
    if doc.kind == DocumentKind::PackingList {
        let units: u64 = doc.lines.iter().map(|l| u64::from(l.quantity)).sum();
        out.push(format!("Lines: {}   Units: {units}", doc.lines.len()));
        let known: u64 = doc
            .lines
            .iter()
            .filter_map(|l| l.weight_grams.map(|g| u64::from(g) * u64::from(l.quantity)))
            .sum();
        let unknown = doc
            .lines
            .iter()
            .filter(|l| l.weight_grams.is_none())
            .count();
        out.push(match unknown {
            0 => format!("Total weight: {}", kilograms(known)),
            n if n == doc.lines.len() => "Total weight: not known".into(),
            n => format!(
                "Total weight: {} (without {n} line(s) of unknown weight)",
                kilograms(known)
            ),
        });
    }
    if matches!(
        doc.kind,
        DocumentKind::DeliveryNote | DocumentKind::ServiceRecord
    ) {
        out.push("Received by (name and signature): ______________________".into());
    }
    out
}

/// A rate in basis points as a percentage: `2000` is `20.00%`.
fn rate(bp: u32) -> String {
    format!("{}.{:02}%", bp / 100, bp % 100)
}

/// Grams as kilograms: `1250` is `1.250 kg`.
fn kilograms(grams: u64) -> String {
    format!("{}.{:03} kg", grams / 1000, grams % 1000)
}

/// `text` broken into lines of at most `width` characters, at spaces where it can be and inside
/// a word longer than a line where it cannot. Never empty.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        let used = line.chars().count();
        if used > 0 && used + 1 + word.len() <= width {
            line.push(' ');
            line.extend(&word);
            continue;
        }
        if used > 0 {
            lines.push(std::mem::take(&mut line));
        }
        while word.len() > width {
            lines.push(word.drain(..width).collect());
        }
        line.extend(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// `label` then `text` wrapped beside it, its continuation lines aligned under the text.
fn labelled(label: &str, text: &str) -> Vec<String> {
    let indent = label.chars().count();
    let pad = " ".repeat(indent);
    wrap(text, WIDTH - indent)
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            let lead = if i == 0 { label } else { pad.as_str() };
            format!("{lead}{line}")
        })
        .collect()
}

#[cfg(test)]
mod tests;
