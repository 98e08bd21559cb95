//! An order's status and timeline, as `fulfilment status` prints it: for a person, money with
//! its currency and each stage record in a line of words; `--json` gives everything as stored.

use std::fmt;

use serde::Serialize;
use sqlx::PgPool;

use crate::db;
use crate::db::records::TimelineEntry;
use crate::db::review::OpenCase;
use crate::domain::{Currency, money};

/// An order's state and the records every stage wrote for it.
#[derive(Debug, Serialize)]
pub struct OrderStatus {
    /// The order.
    pub order_id: String,
    /// Its current state.
    pub state: String,
    /// Its current version.
    pub version: u32,
    /// Its total in minor units.
    pub total_minor: i64,
    /// Its currency.
    pub currency: String,
    /// Revenue recognised so far, net, in minor units.
    pub recognised_minor: i64,
    /// What the customer has paid, in minor units.
    pub paid_minor: i64,
    /// Its open review cases: id, reason and the role that may resolve it.
    pub open_cases: Vec<OpenCase>,
    /// What each stage did, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

/// Loads an order's status, or `None` if there is no such order.
pub async fn load(pool: &PgPool, order_id: &str) -> anyhow::Result<Option<OrderStatus>> {
    let mut conn = pool.acquire().await?;
    let Some(stored) = db::orders::find(&mut conn, order_id).await? else {
        return Ok(None);
    };
    let timeline = db::records::timeline(&mut conn, order_id).await?;
    let (recognised_minor, paid_minor) = db::orders::money_so_far(&mut conn, order_id).await?;
    let open_cases = db::review::open_for_order(&mut conn, order_id).await?;
    Ok(Some(OrderStatus {
        order_id: order_id.to_owned(),
        state: stored.state.to_string(),
        version: stored.order.version,
        total_minor: stored.order.lines_total_minor().unwrap_or_default(),
        currency: stored.order.currency.to_string(),
        recognised_minor,
        paid_minor,
        open_cases,
        timeline,
    }))
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let currency = Currency::parse(&self.currency).ok();
        let money = |minor: i64| match currency {
            Some(c) => money::format(minor, c),
            None => format!("{minor} (minor units)"),
        };
        writeln!(
            f,
            "order       {} (version {})",
            self.order_id, self.version
        )?;
        writeln!(f, "state       {}", self.state)?;
        writeln!(f, "total       {} net", money(self.total_minor))?;
        writeln!(f, "recognised  {} net", money(self.recognised_minor))?;
        writeln!(f, "paid        {}", money(self.paid_minor))?;
        for case in &self.open_cases {
            writeln!(
                f,
                "open case   #{} {} (for {})",
                case.id, case.reason, case.required_role
            )?;
        }
        writeln!(f, "timeline")?;
        for entry in &self.timeline {
            writeln!(
                f,
                "  {}  {:<9} {:<20} {}",
                entry.recorded_at.format("%Y-%m-%d %H:%M:%SZ"),
                entry.stage,
                entry.state_after,
                summary(&entry.detail, &money)
            )?;
        }
        Ok(())
    }
}

/// A stage record's detail in a line of words: a refusal as its reason and who may resolve
/// it; anything else as its plain fields (`key value`), lists as how many they hold, amounts
/// (`*_minor`) with the order's currency.
pub fn summary(detail: &serde_json::Value, money: &dyn Fn(i64) -> String) -> String {
    use serde_json::Value;
    let Value::Object(fields) = detail else {
        return String::new();
    };
    if let Some(reason) = fields.get("refused").and_then(Value::as_str) {
        let role = fields
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("review");
        return format!("refused: {reason} (for {role})");
    }
    let mut parts = Vec::new();
    for (key, value) in fields {
        let part = match value {
            Value::Number(n) if key.ends_with("_minor") => n
                .as_i64()
                .map(|m| format!("{} {}", key.trim_end_matches("_minor"), money(m))),
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(format!("{key} {s}")),
            Value::Number(n) => Some(format!("{key} {n}")),
            Value::Bool(b) => Some(format!("{key} {}", if *b { "yes" } else { "no" })),
            Value::Array(items) if items.is_empty() => None,
            Value::Array(items) => Some(format!("{key}: {}", items.len())),
            Value::Object(_) | Value::Null => None,
        };
        parts.extend(part);
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gbp(minor: i64) -> String {
        money::format(minor, Currency::parse("GBP").unwrap())
    }

    #[test]
    fn a_record_reads_as_words_with_money_in_its_currency() {
        let refused = serde_json::json!({"refused": "out_of_stock", "detail": "MUG: 3", "role": "customer_service"});
        assert_eq!(
            summary(&refused, &gbp),
            "refused: out_of_stock (for customer_service)"
        );
        let prepared = serde_json::json!({
            "version": 2, "pick_list": [{"sku": "MUG"}, {"sku": "TEA"}], "service_slots": [],
            "total_minor": 3199, "note": "", "paid": true, "nested": {"a": 1}
        });
        let line = summary(&prepared, &gbp);
        for part in ["version 2", "pick_list: 2", "total 31.99 GBP", "paid yes"] {
            assert!(line.contains(part), "{part} in {line}");
        }
        for absent in ["service_slots", "note", "nested", "{"] {
            assert!(!line.contains(absent), "{absent} in {line}");
        }
    }
}
