//! What `fulfilment demo` shows of its own orders (those whose id starts with the run's prefix).

use sqlx::PgConnection;

/// A demo run's orders as they stand.
#[derive(Debug, Default, Clone)]
pub struct DemoProgress {
    /// Orders by state.
    pub states: Vec<(String, i64)>,
    /// Open review cases by reason.
    pub cases: Vec<(String, i64)>,
    /// Orders the pipeline is done with for now: ended (completed, cancelled, closed) or
    /// waiting for a person in review.
    pub settled: i64,
}

/// The progress of the orders whose id starts with `prefix`.
pub async fn progress(conn: &mut PgConnection, prefix: &str) -> sqlx::Result<DemoProgress> {
    let pattern = format!("{}%", prefix.replace('%', "\\%").replace('_', "\\_"));
    let states =
        sqlx::query_as("SELECT state, count(*) FROM orders WHERE order_id LIKE $1 GROUP BY state")
            .bind(&pattern)
            .fetch_all(&mut *conn)
            .await?;
    let cases = sqlx::query_as(
        "SELECT reason, count(*) FROM review_cases
         WHERE order_id LIKE $1 AND status = 'open' GROUP BY reason ORDER BY reason",
    )
    .bind(&pattern)
    .fetch_all(&mut *conn)
    .await?;
    let settled = sqlx::query_scalar(
        "SELECT count(*) FROM orders o WHERE o.order_id LIKE $1
           AND (o.state IN ('completed', 'cancelled', 'closed')
                OR EXISTS (SELECT 1 FROM review_cases c
                           WHERE c.order_id = o.order_id AND c.status = 'open'))",
    )
    .bind(&pattern)
    .fetch_one(&mut *conn)
    .await?;
    Ok(DemoProgress {
        states,
        cases,
        settled,
    })
}
