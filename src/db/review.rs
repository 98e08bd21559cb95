//! Review cases: what a stage could not finish, kept for a person with the right authority.

use sqlx::PgConnection;

/// A case to open.
#[derive(Debug, Clone)]
pub struct NewCase<'a> {
    /// The order, when the message named one.
    pub order_id: Option<&'a str>,
    /// The stage that escalated.
    pub stage: &'a str,
    /// Machine-readable reason.
    pub reason: &'a str,
    /// What went wrong, for a person.
    pub detail: &'a str,
    /// The role with authority to resolve it.
    pub required_role: &'a str,
    /// The message, byte for byte.
    pub original_body: &'a [u8],
    /// The message's AMQP properties.
    pub original_properties: serde_json::Value,
}

/// Opens a case and returns its id.
pub async fn open(conn: &mut PgConnection, case: NewCase<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO review_cases
           (order_id, stage, reason, detail, required_role, original_body, original_properties)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(case.order_id)
    .bind(case.stage)
    .bind(case.reason)
    .bind(case.detail)
    .bind(case.required_role)
    .bind(case.original_body)
    .bind(case.original_properties)
    .fetch_one(conn)
    .await
}
