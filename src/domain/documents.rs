//! Handover documents as data: what a delivery note, packing list, invoice, service-delivery
//! record or credit note says. [`layout`] sets it out as pages of text; rendering to PDF is in
//! `crate::render`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::catalogue::{DeliveryTerms, OwnershipPasses, Product, ProductKind};
use super::money;
use super::order::{Currency, Order};

pub mod layout;

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
    /// What the seller owes back: an invoice credited (on cancellation after invoicing).
    CreditNote,
}

impl DocumentKind {
    /// The name as stored (also the sequence name).
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::DeliveryNote => "delivery_note",
            DocumentKind::PackingList => "packing_list",
            DocumentKind::Invoice => "invoice",
            DocumentKind::ServiceRecord => "service_record",
            DocumentKind::CreditNote => "credit_note",
        }
    }

    /// The kind with this stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            DocumentKind::DeliveryNote,
            DocumentKind::PackingList,
            DocumentKind::Invoice,
            DocumentKind::ServiceRecord,
            DocumentKind::CreditNote,
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
            DocumentKind::CreditNote => "CN",
        }
    }

    /// The title printed on the document.
    pub fn title(self) -> &'static str {
        match self {
            DocumentKind::DeliveryNote => "Delivery note",
            DocumentKind::PackingList => "Packing list",
            DocumentKind::Invoice => "Invoice",
            DocumentKind::ServiceRecord => "Service delivery record",
            DocumentKind::CreditNote => "Credit note",
        }
    }

    /// Whether it states prices, tax and totals (invoices and credit notes).
    pub fn priced(self) -> bool {
        matches!(self, DocumentKind::Invoice | DocumentKind::CreditNote)
    }

    /// Whether it travels with goods (and so names the carrier and the delivery address).
    pub fn shipping(self) -> bool {
        matches!(self, DocumentKind::DeliveryNote | DocumentKind::PackingList)
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
    /// Weight of one unit in grams, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_grams: Option<u32>,
}

/// Totals of a document, exact in minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// Who buys, as printed: from the customer's records at issue time, or a note that their
/// personal data was erased (numbers, amounts and tax stay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Buyer {
    /// As the customer's records said.
    Known {
        /// Their name.
        name: String,
        /// Where invoices go.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        billing_address: Option<String>,
        /// Where goods go (the billing address when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delivery_address: Option<String>,
    },
    /// The customer's personal data was erased before the document was issued.
    Erased,
}

/// The terms of delivery spelt out: the code, what it means, and where ownership and risk pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsOfDelivery {
    /// The code, such as `FOB_SHIPPING_POINT`.
    pub code: String,
    /// What the terms say.
    pub description: String,
    /// When ownership and risk pass to the buyer.
    pub ownership_passes: OwnershipPasses,
}

impl From<&DeliveryTerms> for TermsOfDelivery {
    fn from(terms: &DeliveryTerms) -> Self {
        Self {
            code: terms.code.clone(),
            description: terms.description.clone(),
            ownership_passes: terms.ownership_passes,
        }
    }
}

/// Who carries the goods and the reference to follow them by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consignment {
    /// The carrier.
    pub carrier: String,
    /// The carrier's service, where named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The tracking reference handover records (see [`tracking_reference`]).
    pub tracking_reference: String,
}

/// When an invoice is to be paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentDue {
    /// Days from the invoice date, from the customer's terms.
    pub terms_days: u32,
    /// The invoice date plus those days.
    pub due_date: NaiveDate,
}

/// The carrier's tracking reference for version `version` of an order: the carrier's initials and
/// ten hexadecimal digits of a digest of the order and version. The documents print it and
/// handover records it, so both give the same reference.
pub fn tracking_reference(carrier: &str, order_id: &str, version: u32) -> String {
    let initials: String = carrier
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let digest = crate::digest::sha256_hex(format!("{order_id}\n{version}").as_bytes());
    format!("{initials}{}", digest[..10].to_ascii_uppercase())
}

/// Tax at one rate on a priced document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VatAtRate {
    /// The rate in basis points.
    pub rate_bp: u32,
    /// Net of the lines at this rate.
    pub net_minor: i64,
    /// Tax of those lines (each rounded half up, as the ledger books them).
    pub tax_minor: i64,
    /// net + tax.
    pub gross_minor: i64,
}

/// The VAT summary of `lines`: one entry per rate, highest rate first. The entries add up to
/// [`totals`] of the same lines exactly.
pub fn vat_summary(lines: &[DocumentLine]) -> Vec<VatAtRate> {
    let mut by_rate: BTreeMap<u32, (i64, i64)> = BTreeMap::new();
    for line in lines {
        let entry = by_rate.entry(line.tax_rate_bp).or_default();
        entry.0 += line.net_minor;
        entry.1 += line.tax_minor;
    }
    by_rate
        .into_iter()
        .rev()
        .map(|(rate_bp, (net_minor, tax_minor))| VatAtRate {
            rate_bp,
            net_minor,
            tax_minor,
            gross_minor: net_minor + tax_minor,
        })
        .collect()
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
    /// The customer's id.
    pub customer_id: String,
    /// The customer's name and addresses at issue time (absent on documents issued before they
    /// were printed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer: Option<Buyer>,
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
    /// The delivery terms spelt out, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<TermsOfDelivery>,
    /// The carrier and tracking reference (documents that travel with goods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consignment: Option<Consignment>,
    /// When the invoice is due (invoices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentDue>,
    /// The date of supply (priced documents): the goods are prepared for dispatch and the
    /// documents issued on the same day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supply_date: Option<NaiveDate>,
    /// The document this one credits or replaces: the invoice a credit note credits, or the
    /// document a reissued copy replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
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
                weight_grams: product.weight_grams,
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
            DocumentKind::Invoice | DocumentKind::CreditNote => true,
        })
        .cloned()
        .collect()
}

/// The credit note numbered `number` that credits `invoice` in full, issued `now`: the same
/// lines, tax and totals, the same seller, and the buyer as `buyer` says now (erased if the
/// customer's personal data was erased since).
pub fn credit_note(
    invoice: &DocumentContent,
    number: String,
    buyer: Option<Buyer>,
    now: DateTime<Utc>,
) -> DocumentContent {
    DocumentContent {
        kind: DocumentKind::CreditNote,
        number,
        issued_at: now,
        buyer,
        payment: None,
        consignment: None,
        replaces: Some(invoice.number.clone()),
        ..invoice.clone()
    }
}

impl DocumentContent {
    /// The document's pages as lines of text, as printed on the PDF (see [`layout`]).
    pub fn pages(&self, void: Option<&layout::VoidMark>) -> Vec<Vec<String>> {
        layout::pages(self, void)
    }

    /// The amounts of this document as money for people, in its currency without the code.
    fn amount(&self, minor: i64) -> String {
        money::digits(minor, self.currency)
    }
}
