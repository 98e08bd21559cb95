//! Checking a reference-data file record by record before any database work, so that a bad
//! value is refused with the record and the field at fault (`products[3] (sku "MUG-BLUE"):
//! price_minor: must be between 0 and 1000000000000000`) instead of failing in Postgres, and a
//! record listed twice is refused instead of silently overwriting the first.
//!
//! A problem names a record by its section, its position (from 0) and its key; a value quoted
//! is escaped and cut short ([`text::excerpt`]); names and email addresses (personal data) are
//! never quoted.

use std::collections::HashMap;
use std::fmt;

use super::{
    Agent, Catalogue, Customer, DeliveryTerms, Product, ProductKind, RecognitionPoint, StockLevel,
};
use crate::domain::text::{self, Problem, TextError};

/// The longest name (of a customer, product or agent) or carrier, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest email address, in characters (as SMTP allows).
pub const MAX_EMAIL_CHARS: usize = 254;
/// The longest description of delivery terms, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// The largest rate in basis points (100%): tax rates and discounts.
pub const MAX_BASIS_POINTS: i64 = 10_000;
/// The longest service period: ten years (of 366 days), in seconds.
pub const MAX_SERVICE_PERIOD_SECS: i64 = 10 * 366 * 86_400;
/// The most instalments a service's revenue is recognised in (each is a timer per order line).
pub const MAX_SERVICE_INSTALMENTS: i64 = 1000;
/// The longest lead time of a service, in days (ten years).
pub const MAX_LEAD_TIME_DAYS: i64 = 3650;
/// The most preparation checks or related products one product may list.
pub const MAX_LIST_ITEMS: usize = 100;
/// The most units of stock one product may have (what the database column holds).
pub const MAX_STOCK: i64 = i32::MAX as i64;
/// The longest payment terms, in days.
pub const MAX_PAYMENT_TERMS_DAYS: i64 = 365;
/// The heaviest unit of a product, in grams (one tonne).
pub const MAX_WEIGHT_GRAMS: i64 = 1_000_000;
/// How many problems an error message lists before it only counts the rest.
const MAX_PROBLEMS_SHOWN: usize = 20;
/// The longest excerpt of a key quoted in a problem.
const MAX_KEY_EXCERPT: usize = 80;

/// A problem in a reference-data file: in one record, or between two.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    /// A field of a record breaks its limits.
    #[error("{record}: {error}")]
    Field {
        /// The record, such as `products[3] (sku "MUG-BLUE")`.
        record: String,
        /// The field and what is wrong with it.
        error: TextError,
    },
    /// A record breaks a rule that involves more than one field, or other records.
    #[error("{record}: {problem}")]
    Rule {
        /// The record, such as `stock[2] (sku "CARE-PLAN")`.
        record: String,
        /// What is wrong, naming the field.
        problem: String,
    },
    /// Two records of one section have the same key.
    #[error("{first} and {second} both have {key} \"{value}\"")]
    Duplicate {
        /// The first record, such as `products[1]`.
        first: String,
        /// The second, such as `products[4]`.
        second: String,
        /// The key, such as `sku`.
        key: &'static str,
        /// Its value, escaped and cut short.
        value: String,
    },
}

/// Every problem found in a reference-data file; it is refused whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidCatalogue {
    /// The problems, in the order of the file's sections and records.
    pub problems: Vec<CatalogueError>,
}

impl fmt::Display for InvalidCatalogue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        let plural = if count == 1 { "" } else { "s" };
        write!(f, "{count} problem{plural}:")?;
        for problem in self.problems.iter().take(MAX_PROBLEMS_SHOWN) {
            write!(f, "\n  {problem}")?;
        }
        if count > MAX_PROBLEMS_SHOWN {
            write!(f, "\n  and {} more", count - MAX_PROBLEMS_SHOWN)?;
        }
        Ok(())
    }
}

impl Catalogue {
    /// Checks every record and that no key is listed twice; what only the database can tell
    /// (stock for a product loaded earlier) is checked when the file is loaded.
    pub fn validate(&self) -> Result<(), InvalidCatalogue> {
        let problems = self.problems();
        match problems.is_empty() {
            true => Ok(()),
            false => Err(InvalidCatalogue { problems }),
        }
    }

    /// Every problem in the file, in the order of its sections and records.
    pub fn problems(&self) -> Vec<CatalogueError> {
        let mut found = Vec::new();
        each(
            &mut found,
            "customers",
            "customer_id",
            &self.customers,
            |c| &c.customer_id,
            check_customer,
        );
        duplicates(
            &mut found,
            "customers",
            "customer_id",
            &self.customers,
            |c| &c.customer_id,
        );
        each(
            &mut found,
            "products",
            "sku",
            &self.products,
            |p| &p.sku,
            check_product,
        );
        duplicates(&mut found, "products", "sku", &self.products, |p| &p.sku);
        each(
            &mut found,
            "stock",
            "sku",
            &self.stock,
            |s| &s.sku,
            check_stock,
        );
        duplicates(&mut found, "stock", "sku", &self.stock, |s| &s.sku);
        found.extend(self.stock_for_services());
        each(
            &mut found,
            "agents",
            "agent_id",
            &self.agents,
            |a| &a.agent_id,
            check_agent,
        );
        duplicates(&mut found, "agents", "agent_id", &self.agents, |a| {
            &a.agent_id
        });
        each(
            &mut found,
            "delivery_terms",
            "code",
            &self.delivery_terms,
            |t| &t.code,
            check_terms,
        );
        duplicates(
            &mut found,
            "delivery_terms",
            "code",
            &self.delivery_terms,
            |t| &t.code,
        );
        found
    }

    /// Stock levels given for a product the file lists as a service.
    fn stock_for_services(&self) -> Vec<CatalogueError> {
        let services: HashMap<&str, usize> = self
            .products
            .iter()
            .enumerate()
            .filter(|(_, p)| p.kind == ProductKind::Service)
            .map(|(i, p)| (p.sku.as_str(), i))
            .collect();
        self.stock
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let product = services.get(s.sku.as_str())?;
                Some(stock_for_service(
                    i,
                    &s.sku,
                    &format!("products[{product}]"),
                ))
            })
            .collect()
    }
}

/// The problem of stock given for a service (`stock[i]`, whose product is `product`).
pub fn stock_for_service(i: usize, sku: &str, product: &str) -> CatalogueError {
    CatalogueError::Rule {
        record: record("stock", i, "sku", sku),
        problem: format!("sku: only goods have stock, and {product} is a service"),
    }
}

/// The problem of stock given for a product neither in the file nor in the database.
pub fn stock_for_unknown_product(i: usize, sku: &str) -> CatalogueError {
    CatalogueError::Rule {
        record: record("stock", i, "sku", sku),
        problem: "sku: no product with this sku in the file or in the database".into(),
    }
}

/// How a problem names a record: `products[3] (sku "MUG-BLUE")`.
pub fn record(section: &str, i: usize, key: &str, value: &str) -> String {
    format!(
        "{section}[{i}] ({key} \"{}\")",
        text::excerpt(value, MAX_KEY_EXCERPT)
    )
}

/// Runs `check` on every record of a section, naming each problem's record.
fn each<T>(
    found: &mut Vec<CatalogueError>,
    section: &str,
    key: &str,
    records: &[T],
    key_of: fn(&T) -> &String,
    check: fn(&T) -> Vec<TextError>,
) {
    for (i, item) in records.iter().enumerate() {
        let errors = check(item);
        if errors.is_empty() {
            continue;
        }
        let record = record(section, i, key, key_of(item));
        found.extend(errors.into_iter().map(|error| CatalogueError::Field {
            record: record.clone(),
            error,
        }));
    }
}

/// Two records of a section with the same key, naming both positions.
fn duplicates<T>(
    found: &mut Vec<CatalogueError>,
    section: &str,
    key: &'static str,
    records: &[T],
    key_of: fn(&T) -> &String,
) {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, item) in records.iter().enumerate() {
        let value = key_of(item).as_str();
        match first.get(value) {
            Some(&j) => found.push(CatalogueError::Duplicate {
                first: format!("{section}[{j}]"),
                second: format!("{section}[{i}]"),
                key,
                value: text::excerpt(value, MAX_KEY_EXCERPT),
            }),
            None => {
                first.insert(value, i);
            }
        }
    }
}

fn check_customer(c: &Customer) -> Vec<TextError> {
    let mut errors = vec![
        text::identifier("customer_id", &c.customer_id),
        label("name", &c.name, MAX_NAME_CHARS),
    ];
    if let Some(email) = &c.email {
        errors.push(label("email", email, MAX_EMAIL_CHARS));
    }
    for (field, address) in [
        ("billing_address", &c.billing_address),
        ("delivery_address", &c.delivery_address),
    ] {
        if let Some(address) = address {
            errors.push(label(field, address, MAX_DESCRIPTION_CHARS));
        }
    }
    errors.push(text::within(
        "payment_terms_days",
        i64::from(c.payment_terms_days),
        0,
        MAX_PAYMENT_TERMS_DAYS,
    ));
    failures(errors)
}

fn check_product(p: &Product) -> Vec<TextError> {
    let mut errors = vec![
        text::identifier("sku", &p.sku),
        label("name", &p.name, MAX_NAME_CHARS),
        text::amount("price_minor", p.price_minor),
        text::within("tax_rate_bp", i64::from(p.tax_rate_bp), 0, MAX_BASIS_POINTS),
        text::within(
            "lead_time_days",
            i64::from(p.lead_time_days),
            0,
            MAX_LEAD_TIME_DAYS,
        ),
        at_most("preparation_checks", p.preparation_checks.len()),
        at_most("related", p.related.len()),
    ];
    for (i, check) in p.preparation_checks.iter().enumerate() {
        errors.push(text::identifier(&format!("preparation_checks[{i}]"), check));
    }
    for (i, related) in p.related.iter().enumerate() {
        errors.push(text::identifier(&format!("related[{i}].sku"), &related.sku));
    }
    if let Some(grams) = p.weight_grams {
        errors.push(text::within(
            "weight_grams",
            i64::from(grams),
            1,
            MAX_WEIGHT_GRAMS,
        ));
    }
    errors.extend(service_period(p));
    failures(errors)
}

/// A service recognised over its period needs the period and the instalments, in range.
fn service_period(p: &Product) -> Vec<Result<(), TextError>> {
    if p.recognition != RecognitionPoint::OverServicePeriod {
        return Vec::new();
    }
    let secs = p.service_period_secs.unwrap_or(0);
    let instalments = p.service_instalments.map_or(0, i64::from);
    vec![
        text::within("service_period_secs", secs, 1, MAX_SERVICE_PERIOD_SECS),
        text::within(
            "service_instalments",
            instalments,
            1,
            MAX_SERVICE_INSTALMENTS,
        ),
    ]
}

fn check_stock(s: &StockLevel) -> Vec<TextError> {
    failures(vec![
        text::identifier("sku", &s.sku),
        text::within("available", i64::from(s.available), 0, MAX_STOCK),
    ])
}

fn check_agent(a: &Agent) -> Vec<TextError> {
    failures(vec![
        text::identifier("agent_id", &a.agent_id),
        label("name", &a.name, MAX_NAME_CHARS),
        text::within(
            "max_discount_bp",
            i64::from(a.max_discount_bp),
            0,
            MAX_BASIS_POINTS,
        ),
        text::amount("max_order_value_minor", a.max_order_value_minor),
    ])
}

fn check_terms(t: &DeliveryTerms) -> Vec<TextError> {
    failures(vec![
        text::identifier("code", &t.code),
        label("description", &t.description, MAX_DESCRIPTION_CHARS),
        label("carrier", &t.carrier, MAX_NAME_CHARS),
        t.carrier_service
            .as_ref()
            .map_or(Ok(()), |s| label("carrier_service", s, MAX_NAME_CHARS)),
    ])
}

fn failures(results: Vec<Result<(), TextError>>) -> Vec<TextError> {
    results.into_iter().filter_map(Result::err).collect()
}

/// Checks a name, description or address: not blank, at most `max` characters, no control
/// characters.
fn label(field: &str, value: &str, max: usize) -> Result<(), TextError> {
    let refuse = |problem| {
        Err(TextError {
            field: field.to_owned(),
            problem,
        })
    };
    if value.trim().is_empty() {
        return refuse(Problem::Empty);
    }
    let chars = value.chars().count();
    if chars > max {
        return refuse(Problem::TooLong { chars, max });
    }
    match value.chars().enumerate().find(|(_, c)| c.is_control()) {
        Some((at, c)) => refuse(Problem::ControlCharacter {
            at,
            code: u32::from(c),
        }),
        None => Ok(()),
    }
}

/// Checks that a list has at most [`MAX_LIST_ITEMS`] items.
fn at_most(field: &str, items: usize) -> Result<(), TextError> {
    let items = i64::try_from(items).unwrap_or(i64::MAX);
    let max = i64::try_from(MAX_LIST_ITEMS).unwrap_or(i64::MAX);
    text::within(&format!("{field} (number of items)"), items, 0, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalogue(value: serde_json::Value) -> Catalogue {
        serde_json::from_value(value).expect("the shape is right")
    }

    fn product(sku: &str) -> serde_json::Value {
        json!({"sku": sku, "name": "Mug", "kind": "goods", "price_minor": 1250, "currency": "GBP",
               "tax_rate_bp": 2000, "recognition": "on_dispatch"})
    }

    fn messages(c: &Catalogue) -> Vec<String> {
        c.problems().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_sample_catalogue_is_valid() {
        let text = std::fs::read_to_string("examples/catalogue.json").unwrap();
        let sample: Catalogue = serde_json::from_str(&text).unwrap();
        assert_eq!(sample.validate(), Ok(()));
    }

    #[test]
    fn a_problem_names_the_record_and_the_field() {
        let mut bad = product("MUG-BLUE");
        bad["price_minor"] = json!(-1);
        let c = catalogue(json!({"products": [product("A"), product("B"), product("C"), bad]}));
        assert_eq!(
            messages(&c),
            ["products[3] (sku \"MUG-BLUE\"): price_minor: must be between 0 and 1000000000000000"]
        );
    }

    #[test]
    fn every_kind_of_field_is_checked() {
        let mut service = product("CARE");
        service["kind"] = json!("service");
        service["recognition"] = json!("over_service_period");
        service["service_period_secs"] = json!(MAX_SERVICE_PERIOD_SECS + 1);
        service["lead_time_days"] = json!(100_000);
        service["related"] = json!([{"sku": "", "relation": "cross_sell"}]);
        let mut taxed = product("TAX");
        taxed["tax_rate_bp"] = json!(10_001);
        taxed["preparation_checks"] = json!(["ok", "bad\u{1b}[2J"]);
        let c = catalogue(json!({
            "customers": [{"customer_id": "C\u{0}1", "name": "  ", "email": "a\nb@example.com",
                           "identity_status": "verified"}],
            "products": [service, taxed],
            "stock": [{"sku": "TAX", "available": 3_000_000_000_u64}],
            "agents": [{"agent_id": "AG-1", "name": "Sam", "max_discount_bp": 20_000,
                        "max_order_value_minor": i64::MAX}],
            "delivery_terms": [{"code": " FOB", "description": "x".repeat(2001),
                                "ownership_passes": "on_dispatch", "carrier": "Carrier\u{7}"}],
        }));
        assert_eq!(
            messages(&c),
            [
                "customers[0] (customer_id \"C\\u{0}1\"): customer_id: must not contain control characters (U+0000 at character 1)",
                "customers[0] (customer_id \"C\\u{0}1\"): name: must not be empty",
                "customers[0] (customer_id \"C\\u{0}1\"): email: must not contain control characters (U+000A at character 1)",
                "products[0] (sku \"CARE\"): lead_time_days: must be between 0 and 3650",
                "products[0] (sku \"CARE\"): related[0].sku: must not be empty",
                "products[0] (sku \"CARE\"): service_period_secs: must be between 1 and 316224000",
                "products[0] (sku \"CARE\"): service_instalments: must be between 1 and 1000",
                "products[1] (sku \"TAX\"): tax_rate_bp: must be between 0 and 10000",
                "products[1] (sku \"TAX\"): preparation_checks[1]: must not contain control characters (U+001B at character 3)",
                "stock[0] (sku \"TAX\"): available: must be between 0 and 2147483647",
                "agents[0] (agent_id \"AG-1\"): max_discount_bp: must be between 0 and 10000",
                "agents[0] (agent_id \"AG-1\"): max_order_value_minor: must be between 0 and 1000000000000000",
                "delivery_terms[0] (code \" FOB\"): code: must not start or end with white space",
                "delivery_terms[0] (code \" FOB\"): description: must be at most 2000 characters, has 2001",
                "delivery_terms[0] (code \" FOB\"): carrier: must not contain control characters (U+0007 at character 7)",
            ]
        );
    }

    #[test]
    fn personal_data_is_never_quoted() {
        let c = catalogue(json!({"customers": [{"customer_id": "C-1",
            "name": format!("Ada Lovelace{}", "x".repeat(300)), "email": "ada@example.com\u{0}",
            "identity_status": "verified"}]}));
        let all = c.validate().unwrap_err().to_string();
        assert!(!all.contains("Ada") && !all.contains("ada@"), "{all}");
        assert_eq!(c.problems().len(), 2);
    }

    #[test]
    fn a_key_listed_twice_names_both_records() {
        let c = catalogue(json!({
            "products": [product("A"), product("MUG"), product("B"), product("C"), product("MUG")],
            "stock": [{"sku": "A", "available": 1}, {"sku": "A", "available": 2}],
            "agents": [{"agent_id": "AG", "name": "Sam", "max_discount_bp": 0, "max_order_value_minor": 0},
                       {"agent_id": "AG", "name": "Jo", "max_discount_bp": 0, "max_order_value_minor": 0}],
            "delivery_terms": [
                {"code": "T", "description": "d", "ownership_passes": "on_dispatch", "carrier": "c"},
                {"code": "T", "description": "d", "ownership_passes": "on_delivery", "carrier": "c"}],
            "customers": [
                {"customer_id": "C", "name": "n", "identity_status": "verified"},
                {"customer_id": "C", "name": "m", "identity_status": "unverified"}],
        }));
        assert_eq!(
            messages(&c),
            [
                "customers[0] and customers[1] both have customer_id \"C\"",
                "products[1] and products[4] both have sku \"MUG\"",
                "stock[0] and stock[1] both have sku \"A\"",
                "agents[0] and agents[1] both have agent_id \"AG\"",
                "delivery_terms[0] and delivery_terms[1] both have code \"T\"",
            ]
        );
    }

    #[test]
    fn stock_for_a_service_in_the_file_is_refused() {
        let mut service = product("VISIT");
        service["kind"] = json!("service");
        let c = catalogue(json!({"products": [product("A"), service],
                                 "stock": [{"sku": "VISIT", "available": 1}]}));
        assert_eq!(
            messages(&c),
            ["stock[0] (sku \"VISIT\"): sku: only goods have stock, and products[1] is a service"]
        );
    }

    #[test]
    fn many_problems_are_counted_not_all_listed() {
        let products: Vec<_> = (0..30)
            .map(|i| {
                let mut p = product(&format!("P-{i}"));
                p["price_minor"] = json!(-1);
                p
            })
            .collect();
        let error = catalogue(json!({ "products": products }))
            .validate()
            .unwrap_err();
        let shown = error.to_string();
        assert!(
            shown.starts_with("30 problems:\n  products[0] (sku \"P-0\")"),
            "{shown}"
        );
        assert!(shown.ends_with("\n  and 10 more"), "{shown}");
        assert_eq!(shown.lines().count(), 22);
    }
}
