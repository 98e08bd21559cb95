//! Handover documents as data: what a delivery note, packing list, invoice or service-delivery
//! record says. Rendering to PDF is in `crate::render`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::catalogue::{Product, ProductKind};
use super::money;
use super::order::{Currency, Order};

/// The kinds of document, each numbered from its own gap-free sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// What is in the consignment, for the recipient to sign.
    DeliveryNote,
    /// How the consignment is packed, for the warehouse.
    PackingList,
    /// What the customer owes.
    Invoice,
    /// The record of a service delivered.
    ServiceRecord,
}

impl DocumentKind {
    /// The name as stored (also the sequence name).
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::DeliveryNote => "delivery_note",
            DocumentKind::PackingList => "packing_list",
            DocumentKind::Invoice => "invoice",
            DocumentKind::ServiceRecord => "service_record",
        }
    }

    /// The kind with this stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            DocumentKind::DeliveryNote,
            DocumentKind::PackingList,
            DocumentKind::Invoice,
            DocumentKind::ServiceRecord,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    /// Prefix of the document number.
    pub fn prefix(self) -> &'static str {
        match self {
            DocumentKind::DeliveryNote => "DN",
            DocumentKind::PackingList => "PL",
            DocumentKind::Invoice => "INV",
            DocumentKind::ServiceRecord => "SR",
        }
    }

    /// The title printed on the document.
    pub fn title(self) -> &'static str {
        match self {
            DocumentKind::DeliveryNote => "Delivery note",
            DocumentKind::PackingList => "Packing list",
            DocumentKind::Invoice => "Invoice",
            DocumentKind::ServiceRecord => "Service delivery record",
        }
    }

    /// The document number for sequence value `n`: `INV-000042`.
    pub fn number(self, n: i64) -> String {
        format!("{}-{n:06}", self.prefix())
    }
}

/// The kinds of document an order needs: goods get a delivery note and packing list, services
/// a service-delivery record, and every order an invoice.
pub fn kinds_needed(
    order: &Order,
    products: &std::collections::HashMap<String, Product>,
) -> Vec<DocumentKind> {
    let has = |kind| {
        order
            .lines
            .iter()
            .any(|l| products.get(&l.sku).is_some_and(|p| p.kind == kind))
    };
    let mut kinds = Vec::new();
    if has(ProductKind::Goods) {
        kinds.extend([DocumentKind::DeliveryNote, DocumentKind::PackingList]);
    }
    if has(ProductKind::Service) {
        kinds.push(DocumentKind::ServiceRecord);
    }
    kinds.push(DocumentKind::Invoice);
    kinds
}

/// One line of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentLine {
    /// Line number on the order, from 0.
    pub line_no: u32,
    /// The product.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Goods or service.
    pub kind: ProductKind,
    /// Units.
    pub quantity: u32,
    /// Price per unit, net, minor units.
    pub unit_price_minor: i64,
    /// quantity x unit price.
    pub net_minor: i64,
    /// Tax rate in basis points.
    pub tax_rate_bp: u32,
    /// Tax, rounded half up per line.
    pub tax_minor: i64,
}

/// Totals of a document, exact in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Sum of line nets.
    pub net_minor: i64,
    /// Sum of line taxes.
    pub tax_minor: i64,
    /// net + tax.
    pub gross_minor: i64,
}

/// Who sells: the block at the top of every document. An invoice must name the seller, their
/// address and their tax registration number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seller {
    /// The seller's legal name.
    pub name: String,
    /// The seller's postal address, on one line.
    pub address: String,
    /// The VAT (or other tax) registration number, if registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_number: Option<String>,
    /// The company registration number, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_number: Option<String>,
}

impl Seller {
    fn text_lines(&self) -> Vec<String> {
        let mut out = vec![self.name.clone(), self.address.clone()];
        if let Some(number) = &self.tax_number {
            out.push(format!("VAT registration number: {number}"));
        }
        if let Some(number) = &self.company_number {
            out.push(format!("Company number: {number}"));
        }
        out.push(String::new());
        out
    }
}

/// The content of one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentContent {
    /// What kind.
    pub kind: DocumentKind,
    /// Its number.
    pub number: String,
    /// The order.
    pub order_id: String,
    /// The order version.
    pub version: u32,
    /// The customer's id (the name and address stay in the customer records).
    pub customer_id: String,
    /// Currency of every amount.
    pub currency: Currency,
    /// When issued (UTC).
    pub issued_at: DateTime<Utc>,
    /// The lines this document covers.
    pub lines: Vec<DocumentLine>,
    /// Totals of those lines.
    pub totals: Totals,
    /// The delivery terms' code.
    pub delivery_terms: String,
    /// Who sells, when configured (documents issued before it was are without).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller: Option<Seller>,
}

/// Priced lines of an order: net, tax per line (half up).
pub fn priced_lines(
    order: &Order,
    products: &std::collections::HashMap<String, Product>,
) -> Vec<DocumentLine> {
    order
        .lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let product = products.get(&line.sku)?;
            let net_minor = line.total_minor()?;
            Some(DocumentLine {
                line_no: i as u32,
                sku: line.sku.clone(),
                name: product.name.clone(),
                kind: product.kind,
                quantity: line.quantity,
                unit_price_minor: line.unit_price_minor,
                net_minor,
                tax_rate_bp: product.tax_rate_bp,
                tax_minor: money::tax_minor(net_minor, product.tax_rate_bp),
            })
        })
        .collect()
}

/// Totals of lines.
pub fn totals(lines: &[DocumentLine]) -> Totals {
    let net_minor = lines.iter().map(|l| l.net_minor).sum();
    let tax_minor = lines.iter().map(|l| l.tax_minor).sum();
    Totals {
        net_minor,
        tax_minor,
        gross_minor: net_minor + tax_minor,
    }
}

/// The lines a document of `kind` covers.
pub fn lines_for(kind: DocumentKind, all: &[DocumentLine]) -> Vec<DocumentLine> {
    all.iter()
        .filter(|l| match kind {
            DocumentKind::DeliveryNote | DocumentKind::PackingList => l.kind == ProductKind::Goods,
            DocumentKind::ServiceRecord => l.kind == ProductKind::Service,
            DocumentKind::Invoice => true,
        })
        .cloned()
        .collect()
}

impl DocumentContent {
    /// The document as lines of text, as printed on the PDF.
    pub fn text_lines(&self) -> Vec<String> {
        let money = |m| money::format(m, self.currency);
        let mut out = self
            .seller
            .as_ref()
            .map(Seller::text_lines)
            .unwrap_or_default();
        out.extend([
            format!("{} {}", self.kind.title(), self.number),
            String::new(),
            format!("Order: {} (version {})", self.order_id, self.version),
            format!("Customer: {}", self.customer_id),
            format!("Issued: {}", self.issued_at.format("%Y-%m-%d %H:%M UTC")),
            format!("Delivery terms: {}", self.delivery_terms),
            String::new(),
        ]);
        let priced = self.kind == DocumentKind::Invoice;
        let mut header = format!("{:>4}   {:<20} {:<24}", "qty", "product", "description");
        if priced {
            header.push_str(&format!(
                " {:>12} {:>12} {:>7} {:>12}",
                "unit price", "net", "tax", "tax amount"
            ));
        }
        out.push(header);
        for l in &self.lines {
            let name: String = l.name.chars().take(24).collect();
            let mut text = format!("{:>4} x {:<20} {:<24}", l.quantity, l.sku, name);
            if priced {
                text.push_str(&format!(
                    " {:>12} {:>12} {:>3}.{:02}% {:>12}",
                    money(l.unit_price_minor),
                    money(l.net_minor),
                    l.tax_rate_bp / 100,
                    l.tax_rate_bp % 100,
                    money(l.tax_minor),
                ));
            }
            out.push(text);
        }
        if priced {
            out.push(String::new());
            out.push(format!("Net total:   {}", money(self.totals.net_minor)));
            out.push(format!("Tax:         {}", money(self.totals.tax_minor)));
            out.push(format!("Total due:   {}", money(self.totals.gross_minor)));
        }
        if matches!(
            self.kind,
            DocumentKind::DeliveryNote | DocumentKind::ServiceRecord
        ) {
            out.push(String::new());
            out.push("Received by (name and signature): ______________________".into());
        }
        out
    }
}
