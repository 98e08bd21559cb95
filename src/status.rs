//! An order's status and timeline, as `fulfilment status` prints it.

use std::fmt;

use serde::Serialize;
use sqlx::PgPool;

use crate::db;
use crate::db::records::TimelineEntry;

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
    Ok(Some(OrderStatus {
        order_id: order_id.to_owned(),
        state: stored.state.to_string(),
        version: stored.order.version,
        total_minor: stored.order.lines_total_minor().unwrap_or_default(),
        currency: stored.order.currency.to_string(),
        timeline,
    }))
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "order     {}", self.order_id)?;
        writeln!(f, "state     {}", self.state)?;
        writeln!(f, "version   {}", self.version)?;
        writeln!(
            f,
            "total     {} {} (minor units)",
            self.total_minor, self.currency
        )?;
        writeln!(f, "timeline")?;
        for entry in &self.timeline {
            writeln!(
                f,
                "  {}  {:<10} -> {:<20} {}",
                entry.recorded_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                entry.stage,
                entry.state_after,
                entry.detail
            )?;
        }
        Ok(())
    }
}
