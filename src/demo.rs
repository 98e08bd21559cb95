//! Sample traffic for `fulfilment demo`: a steady mix of web and contact-centre orders from the
//! sample catalogue (`examples/catalogue.json`), one in [`PROBLEM_EVERY`] with a problem a
//! person must resolve. Pure: the n-th order of a run is always the same, so a demo can be
//! repeated and a test can count on what it sends.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::Order;

/// The sample reference data the demo seeds (customers, products, stock, agents, terms).
pub const CATALOGUE: &str = include_str!("../examples/catalogue.json");

/// Stock the demo gives every product, so that a long demo never runs out.
pub const DEMO_STOCK: u32 = 1_000_000;

/// One order in this many has a problem that sends it to review.
pub const PROBLEM_EVERY: u64 = 8;

/// Goods of the sample catalogue at list price: (SKU, unit price in pence).
const GOODS: [(&str, i64); 5] = [
    ("MUG-BLUE", 1250),
    ("MUG-SET-4", 4200),
    ("TEA-EARLGREY-250G", 699),
    ("KETTLE-STEEL", 3999),
    ("KETTLE-DESCALER", 450),
];

/// Customers of the sample catalogue who can order over every channel.
const CUSTOMERS: [&str; 2] = ["CUST-042", "CUST-107"];

/// What is wrong with a problem order, and so why it goes to review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// A discontinued product (`product_not_sellable`).
    Discontinued,
    /// A web order below list price (`price_mismatch`).
    BelowList,
    /// A phone order whose identity check failed (`identity_not_verified`).
    IdentityFailed,
}

impl Problem {
    /// The problem of the `n`-th order, if it has one.
    pub fn of(n: u64) -> Option<Self> {
        if n % PROBLEM_EVERY != PROBLEM_EVERY - 1 {
            return None;
        }
        Some(match (n / PROBLEM_EVERY) % 3 {
            0 => Self::Discontinued,
            1 => Self::BelowList,
            _ => Self::IdentityFailed,
        })
    }
}

/// The `n`-th order (from 0) of the demo run `run` (a short prefix unique to the run).
pub fn sample_order(run: &str, n: u64, placed_at: DateTime<Utc>) -> Order {
    let problem = Problem::of(n);
    let contact_centre = n % 3 == 1 || problem == Some(Problem::IdentityFailed);
    let first = GOODS[(n % GOODS.len() as u64) as usize];
    let second = GOODS[((n / 2 + 3) % GOODS.len() as u64) as usize];
    let mut lines = vec![line(first.0, 1 + n % 3, first.1)];
    if second.0 != first.0 {
        lines.push(line(second.0, 1, second.1));
    }
    match problem {
        Some(Problem::Discontinued) => lines.push(line("TEAPOT-CLASSIC", 1, 2500)),
        Some(Problem::BelowList) => lines[0]["unit_price_minor"] = json!(first.1 / 2),
        _ => {}
    }
    let mut order = json!({
        "order_id": format!("{run}-{}-{n:05}", if contact_centre { "CC" } else { "WEB" }),
        "customer_id": CUSTOMERS[(n % 2) as usize],
        "channel": if contact_centre { "phone" } else { "web" },
        "currency": "GBP",
        "placed_at": placed_at,
        "lines": lines,
    });
    if contact_centre {
        let result = match problem {
            Some(Problem::IdentityFailed) => "failed",
            _ => "passed",
        };
        order["agent_id"] = json!("AG-7");
        order["identity_check"] = json!({ "method": "security_questions", "result": result });
    }
    serde_json::from_value(order).expect("sample orders are valid orders")
}

fn line(sku: &str, quantity: u64, unit_price_minor: i64) -> serde_json::Value {
    json!({ "sku": sku, "quantity": quantity, "unit_price_minor": unit_price_minor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_order_in_eight_has_a_problem_and_every_kind_comes_round() {
        let problems: Vec<Problem> = (0..48).filter_map(Problem::of).collect();
        assert_eq!(problems.len(), 6);
        for kind in [
            Problem::Discontinued,
            Problem::BelowList,
            Problem::IdentityFailed,
        ] {
            assert_eq!(problems.iter().filter(|p| **p == kind).count(), 2);
        }
    }

    #[test]
    fn orders_mix_channels_and_ids_are_unique_per_run() {
        let now = Utc::now();
        let orders: Vec<Order> = (0..30).map(|n| sample_order("D1", n, now)).collect();
        let ids: std::collections::HashSet<String> =
            orders.iter().map(|o| o.order_id.to_string()).collect();
        assert_eq!(ids.len(), 30);
        let phone = orders.iter().filter(|o| o.agent_id.is_some()).count();
        assert!((5..=15).contains(&phone), "{phone} contact-centre orders");
        let discontinued = sample_order("D1", 7, now);
        assert!(discontinued.lines.iter().any(|l| l.sku == "TEAPOT-CLASSIC"));
    }
}
