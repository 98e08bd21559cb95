//! The reference data a batch's deliveries are decided against, loaded once per batch: the
//! products, customers, agents and delivery terms they name, and the shared counters they move
//! (stock available, the next document numbers), locked for the batch where a stage moves them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::domain::catalogue::{Agent, DeliveryTerms, IdentityStatus, Product};
use crate::domain::documents::DocumentKind;

/// What the customer records say about a customer, without their personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRecord {
    /// Whether the customer's identity was established when the account was opened.
    pub identity_status: IdentityStatus,
    /// When their personal data was erased, if it was.
    pub erased_at: Option<DateTime<Utc>>,
    /// Days from an invoice to its due date.
    pub payment_terms_days: u32,
    /// Their name and addresses, loaded only for stages that print them (see
    /// [`Needs::customer_details`](super::Needs::customer_details)).
    pub details: Option<CustomerDetails>,
}

/// A customer's name and addresses: personal data, printed on documents and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerDetails {
    /// Their name (absent once erased).
    pub name: Option<String>,
    /// Where invoices go.
    pub billing_address: Option<String>,
    /// Where goods go.
    pub delivery_address: Option<String>,
}

/// A payment already recorded, by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownPayment {
    /// The order it was booked to.
    pub order_id: String,
    /// Its amount, minor units.
    pub amount_minor: i64,
}

/// Reference data and shared counters for one batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reference {
    /// Products by SKU (those the batch names, and the products they relate to).
    pub products: HashMap<String, Product>,
    /// Customers by id.
    pub customers: HashMap<String, CustomerRecord>,
    /// Agents by id.
    pub agents: HashMap<String, Agent>,
    /// Delivery terms by code.
    pub terms: HashMap<String, DeliveryTerms>,
    /// Units available by SKU.
    pub stock: HashMap<String, i64>,
    /// The next value of each document number sequence.
    pub next_numbers: HashMap<DocumentKind, i64>,
    /// Products each customer has ordered before.
    pub bought: HashMap<String, HashSet<String>>,
    /// Payments already recorded, by reference.
    pub payments: HashMap<String, KnownPayment>,
}

impl Reference {
    /// Units of `sku` available now (0 if it has no stock row).
    pub fn available(&self, sku: &str) -> i64 {
        self.stock.get(sku).copied().unwrap_or(0)
    }

    /// The next number of `kind`, and the one after it once that is used.
    pub fn next_number(&self, kind: DocumentKind) -> i64 {
        self.next_numbers.get(&kind).copied().unwrap_or(1)
    }

    pub(super) fn take_stock(&mut self, sku: &str, quantity: u32) {
        *self.stock.entry(sku.to_owned()).or_default() -= i64::from(quantity);
    }

    pub(super) fn return_stock(&mut self, sku: &str, quantity: u32) {
        *self.stock.entry(sku.to_owned()).or_default() += i64::from(quantity);
    }

    pub(super) fn use_number(&mut self, kind: DocumentKind, value: i64) {
        self.next_numbers.insert(kind, value + 1);
    }

    pub(super) fn note_payment(&mut self, reference: &str, order_id: &str, amount_minor: i64) {
        let known = KnownPayment {
            order_id: order_id.to_owned(),
            amount_minor,
        };
        self.payments.insert(reference.to_owned(), known);
    }
}
