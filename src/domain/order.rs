//! An order as a front end or contact-centre tool places it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::text::{self, MAX_AMOUNT_MINOR, MAX_ORDER_LINES, MAX_QUANTITY, TextError};

/// Why an order (or a part of one) was refused when it was parsed. Each names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// The order id is empty, too long or has characters outside `A-Z a-z 0-9 . _ -`.
    #[error("order id must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-', got {0:?}")]
    BadOrderId(String),
    /// The currency is not three upper-case letters (ISO 4217).
    #[error("currency must be an ISO 4217 code of three upper-case letters, got {0:?}")]
    BadCurrency(String),
    /// An order needs at least one line.
    #[error("lines: an order needs at least one line")]
    NoLines,
    /// An order has more lines than allowed.
    #[error("lines: an order has at most {max} lines, this one has {lines}")]
    TooManyLines {
        /// How many it has.
        lines: usize,
        /// How many are allowed.
        max: usize,
    },
    /// A line's quantity is zero or too large.
    #[error("lines[{line}].quantity: must be between 1 and {max}")]
    Quantity {
        /// Index of the line, from 0.
        line: usize,
        /// The largest allowed.
        max: u32,
    },
    /// A line's unit price is negative or too large.
    #[error("lines[{line}].unit_price_minor: must be between 0 and {max}")]
    UnitPrice {
        /// Index of the line, from 0.
        line: usize,
        /// The largest allowed.
        max: i64,
    },
    /// The order's total is larger than any amount the pipeline books.
    #[error("the lines add up to more than {0} minor units")]
    TotalOverflow(i64),
    /// The version is 0; versions start at 1.
    #[error("version: must be at least 1")]
    Version,
    /// A text field breaks its limits (see [`super::text`]).
    #[error(transparent)]
    Text(#[from] TextError),
}

/// An order's id, as the system that placed it assigned it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderId(String);

impl OrderId {
    /// Parses an order id.
    pub fn parse(raw: impl Into<String>) -> Result<Self, OrderError> {
        let raw = raw.into();
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if raw.is_empty() || raw.len() > 64 || !raw.chars().all(valid_char) {
            return Err(OrderError::BadOrderId(raw));
        }
        Ok(Self(raw))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl schemars::JsonSchema for OrderId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OrderId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Za-z0-9._-]{1,64}$",
            "description": "An order's id, as the system that placed it assigned it."
        })
    }
}

impl TryFrom<String> for OrderId {
    type Error = OrderError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<OrderId> for String {
    fn from(id: OrderId) -> Self {
        id.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ISO 4217 currency code such as `GBP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses a currency code: exactly three upper-case ASCII letters.
    pub fn parse(raw: &str) -> Result<Self, OrderError> {
        match raw.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => Ok(Self([*a, *b, *c])),
            _ => Err(OrderError::BadCurrency(raw.to_owned())),
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl schemars::JsonSchema for Currency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "An ISO 4217 currency code."
        })
    }
}

impl TryFrom<String> for Currency {
    type Error = OrderError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The channel an order came through. Contact-centre channels carry an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A web shop.
    Web,
    /// A contact-centre agent on the phone.
    Phone,
    /// A contact-centre agent on live chat or web chat.
    Chat,
    /// A contact-centre agent on social media.
    Social,
}

impl Channel {
    /// Whether an agent in the contact centre took the order (phone, chat, social).
    pub fn is_contact_centre(self) -> bool {
        !matches!(self, Channel::Web)
    }
}

/// How the customer's identity was confirmed for this order: the method and its result, never
/// the secrets (answers to security questions are not part of an order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdentityCheck {
    /// How, such as `security_questions`, `one_time_passcode`, `signed_in_session`.
    #[schemars(schema_with = "super::text::identifier_schema")]
    pub method: String,
    /// What the check found.
    pub result: IdentityResult,
}

/// The result of an identity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentityResult {
    /// The customer is who they say.
    Passed,
    /// The check failed.
    Failed,
}

/// One line of an order: a product, how many, and the price per unit in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderLine {
    /// The product's stock-keeping unit.
    #[schemars(schema_with = "super::text::identifier_schema")]
    pub sku: String,
    /// How many units; at least 1.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub quantity: u32,
    /// Price of one unit in the order's currency, in minor units (pence, cents).
    #[schemars(range(min = 0, max = 1_000_000_000_000_000_i64))]
    pub unit_price_minor: i64,
}

impl OrderLine {
    /// The line's total in minor units, or `None` on overflow.
    pub fn total_minor(&self) -> Option<i64> {
        self.unit_price_minor.checked_mul(i64::from(self.quantity))
    }
}

/// The order as it is written on the wire, before its rules are checked.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
struct RawOrder {
    order_id: OrderId,
    #[serde(default = "first_version")]
    #[schemars(range(min = 1))]
    version: u32,
    #[schemars(schema_with = "super::text::identifier_schema")]
    customer_id: String,
    channel: Channel,
    currency: Currency,
    #[schemars(length(min = 1, max = 1000))]
    lines: Vec<OrderLine>,
    placed_at: DateTime<Utc>,
    #[serde(default)]
    #[schemars(schema_with = "super::text::identifier_schema")]
    agent_id: Option<String>,
    #[serde(default)]
    identity_check: Option<IdentityCheck>,
    #[serde(default)]
    #[schemars(schema_with = "super::text::identifier_schema")]
    delivery_terms: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 0, max = 1_000_000_000_000_000_i64))]
    total_minor: Option<i64>,
}

fn first_version() -> u32 {
    1
}

/// A placed order whose shape has been checked: it has lines, positive quantities, prices that
/// are not negative, and a total that fits. Whether it matches the catalogue is the verify
/// stage's business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawOrder")]
pub struct Order {
    /// The order's id, unique per placing system.
    pub order_id: OrderId,
    /// Starts at 1; an amendment carries a higher version.
    pub version: u32,
    /// The customer's id in the customer records.
    pub customer_id: String,
    /// Where the order came from.
    pub channel: Channel,
    /// The one currency of every price in the order.
    pub currency: Currency,
    /// What was ordered.
    pub lines: Vec<OrderLine>,
    /// When the customer placed the order (UTC).
    pub placed_at: DateTime<Utc>,
    /// The contact-centre agent who took the order, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// How the customer's identity was confirmed (required for contact-centre channels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_check: Option<IdentityCheck>,
    /// The delivery terms' code; the default terms apply when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_terms: Option<String>,
    /// The total the placing system computed; checked against the lines when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_minor: Option<i64>,
}

impl TryFrom<RawOrder> for Order {
    type Error = OrderError;
    fn try_from(raw: RawOrder) -> Result<Self, Self::Error> {
        if raw.version == 0 {
            return Err(OrderError::Version);
        }
        text::identifier("customer_id", &raw.customer_id)?;
        check_lines(&raw.lines)?;
        if let Some(agent) = &raw.agent_id {
            text::identifier("agent_id", agent)?;
        }
        if let Some(terms) = &raw.delivery_terms {
            text::identifier("delivery_terms", terms)?;
        }
        if let Some(check) = &raw.identity_check {
            text::identifier("identity_check.method", &check.method)?;
        }
        if let Some(total) = raw.total_minor {
            text::amount("total_minor", total)?;
        }
        text::timestamp("placed_at", raw.placed_at)?;
        let order = Order {
            order_id: raw.order_id,
            version: raw.version,
            customer_id: raw.customer_id,
            channel: raw.channel,
            currency: raw.currency,
            lines: raw.lines,
            placed_at: raw.placed_at,
            agent_id: raw.agent_id,
            identity_check: raw.identity_check,
            delivery_terms: raw.delivery_terms,
            total_minor: raw.total_minor,
        };
        match order.lines_total_minor() {
            Some(total) if total <= MAX_AMOUNT_MINOR => Ok(order),
            _ => Err(OrderError::TotalOverflow(MAX_AMOUNT_MINOR)),
        }
    }
}

/// Checks the lines: how many, and each line's SKU, quantity and price.
fn check_lines(lines: &[OrderLine]) -> Result<(), OrderError> {
    if lines.is_empty() {
        return Err(OrderError::NoLines);
    }
    if lines.len() > MAX_ORDER_LINES {
        return Err(OrderError::TooManyLines {
            lines: lines.len(),
            max: MAX_ORDER_LINES,
        });
    }
    for (line, l) in lines.iter().enumerate() {
        text::identifier(&format!("lines[{line}].sku"), &l.sku)?;
        if !(1..=MAX_QUANTITY).contains(&l.quantity) {
            let max = MAX_QUANTITY;
            return Err(OrderError::Quantity { line, max });
        }
        if !(0..=MAX_AMOUNT_MINOR).contains(&l.unit_price_minor) {
            let max = MAX_AMOUNT_MINOR;
            return Err(OrderError::UnitPrice { line, max });
        }
    }
    Ok(())
}

impl Order {
    /// The order's delivery terms, or `default` when it names none.
    pub fn delivery_terms_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.delivery_terms.as_deref().unwrap_or(default)
    }

    /// The order's total in minor units computed from its lines, or `None` if it overflows.
    pub fn lines_total_minor(&self) -> Option<i64> {
        self.lines
            .iter()
            .try_fold(0i64, |sum, line| sum.checked_add(line.total_minor()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> serde_json::Value {
        serde_json::json!({
            "order_id": "ORD-1",
            "customer_id": "C-1",
            "channel": "web",
            "currency": "GBP",
            "placed_at": "2026-11-01T10:00:00Z",
            "lines": [{"sku": "MUG", "quantity": 2, "unit_price_minor": 1250}]
        })
    }

    #[test]
    fn parses_a_valid_order_and_totals_it() {
        let order: Order = serde_json::from_value(sample()).unwrap();
        assert_eq!(order.version, 1);
        assert_eq!(order.lines_total_minor(), Some(2500));
    }

    #[test]
    fn refuses_zero_quantity_fractional_price_and_bad_ids() {
        let mut zero = sample();
        zero["lines"][0]["quantity"] = 0.into();
        assert!(serde_json::from_value::<Order>(zero).is_err());

        let mut fraction = sample();
        fraction["lines"][0]["unit_price_minor"] = serde_json::json!(12.5);
        assert!(serde_json::from_value::<Order>(fraction).is_err());

        let mut bad_id = sample();
        bad_id["order_id"] = "has space".into();
        assert!(serde_json::from_value::<Order>(bad_id).is_err());

        let mut currency = sample();
        currency["currency"] = "gbp".into();
        assert!(serde_json::from_value::<Order>(currency).is_err());
    }
}
