//! Reference data: the internal records orders are checked against. Loaded by `fulfilment seed`,
//! after [`checks`] has checked every record.

use serde::{Deserialize, Serialize};

pub mod checks;

pub use checks::{CatalogueError, InvalidCatalogue};

use super::order::Currency;

/// Whether a product is a physical good or a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductKind {
    /// Picked, packed and shipped; uses stock.
    Goods,
    /// Delivered in a scheduled slot; no stock.
    Service,
}

/// When a product's revenue is recognised: the point at which control passes to the customer.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RecognitionPoint {
    /// When the order is placed (and verified).
    OnOrder,
    /// When it leaves the warehouse (handed over to the carrier).
    OnDispatch,
    /// When the customer receives it.
    OnDelivery,
    /// When the customer accepts it (explicitly or deemed).
    OnAcceptance,
    /// Services: in equal instalments over the service period, from handover.
    OverServicePeriod,
}

impl RecognitionPoint {
    /// The name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RecognitionPoint::OnOrder => "on_order",
            RecognitionPoint::OnDispatch => "on_dispatch",
            RecognitionPoint::OnDelivery => "on_delivery",
            RecognitionPoint::OnAcceptance => "on_acceptance",
            RecognitionPoint::OverServicePeriod => "over_service_period",
        }
    }
}

/// How one product relates to another, for further sales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// A complementary product (an add-on).
    CrossSell,
    /// A better product in place of this one.
    UpSell,
}

/// A related product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Related {
    /// The related product.
    pub sku: String,
    /// How it relates.
    pub relation: Relation,
}

/// A customer record. `name` and `email` are personal data and stay in the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The customer's id.
    pub customer_id: String,
    /// The customer's name.
    pub name: String,
    /// The customer's email address.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether the customer's identity was established when the account was opened.
    pub identity_status: IdentityStatus,
    /// Where invoices go, on one line (personal data, as above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_address: Option<String>,
    /// Where goods go, on one line (personal data); the billing address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_address: Option<String>,
    /// Days from the invoice to its due date.
    #[serde(default = "thirty_days")]
    pub payment_terms_days: u32,
}

/// Invoices are due in 30 days unless the customer's terms say otherwise.
pub const DEFAULT_PAYMENT_TERMS_DAYS: u32 = 30;

fn thirty_days() -> u32 {
    DEFAULT_PAYMENT_TERMS_DAYS
}

/// Whether a customer's identity is established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityStatus {
    /// Established.
    Verified,
    /// Not established.
    Unverified,
}

/// A catalogue entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Stock-keeping unit.
    pub sku: String,
    /// Name shown on documents.
    pub name: String,
    /// Goods or service.
    pub kind: ProductKind,
    /// Whether it may be sold now.
    #[serde(default = "yes")]
    pub sellable: bool,
    /// List price per unit, minor units, net of tax.
    pub price_minor: i64,
    /// Currency of the list price.
    pub currency: Currency,
    /// Tax rate in basis points (2000 = 20%).
    pub tax_rate_bp: u32,
    /// Preparation checks recorded before handover.
    #[serde(default)]
    pub preparation_checks: Vec<String>,
    /// When revenue is recognised.
    pub recognition: RecognitionPoint,
    /// For `over_service_period`: the period in seconds.
    #[serde(default)]
    pub service_period_secs: Option<i64>,
    /// For `over_service_period`: the number of equal instalments.
    #[serde(default)]
    pub service_instalments: Option<u32>,
    /// For services: days from the order to the delivery slot.
    #[serde(default)]
    pub lead_time_days: u32,
    /// Related products for cross-sell and up-sell.
    #[serde(default)]
    pub related: Vec<Related>,
    /// Weight of one unit as shipped, in grams, where known (printed on the packing list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_grams: Option<u32>,
}

fn yes() -> bool {
    true
}

/// Units of a product available to allocate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    /// The product.
    pub sku: String,
    /// Units available.
    pub available: u32,
}

/// A contact-centre agent and their authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// The agent's id.
    pub agent_id: String,
    /// The agent's name.
    pub name: String,
    /// Largest discount off list price, in basis points.
    pub max_discount_bp: u32,
    /// Largest order value (net, minor units).
    pub max_order_value_minor: i64,
}

/// When ownership and risk pass to the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OwnershipPasses {
    /// At handover to the carrier (like FOB shipping point).
    OnDispatch,
    /// When the customer receives the goods (like FOB destination).
    OnDelivery,
}

/// Terms of delivery from the terms of sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryTerms {
    /// The code orders refer to, such as `FOB_SHIPPING_POINT`.
    pub code: String,
    /// What the terms say.
    pub description: String,
    /// When ownership and risk pass.
    pub ownership_passes: OwnershipPasses,
    /// Who carries the goods.
    pub carrier: String,
    /// The carrier's service, such as `Tracked 48`, where one is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier_service: Option<String>,
}

/// A whole reference-data file, as `fulfilment seed` reads it. Every section is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// Customers.
    #[serde(default)]
    pub customers: Vec<Customer>,
    /// Products.
    #[serde(default)]
    pub products: Vec<Product>,
    /// Stock levels (set, not added).
    #[serde(default)]
    pub stock: Vec<StockLevel>,
    /// Agents.
    #[serde(default)]
    pub agents: Vec<Agent>,
    /// Delivery terms.
    #[serde(default)]
    pub delivery_terms: Vec<DeliveryTerms>,
}
