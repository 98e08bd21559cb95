//! Review cases: what a stage could not finish, kept for a person with the right authority.

use sqlx::PgConnection;

use crate::domain::text::{self, TextError};

/// The oldest a listed case may be asked to be (`older_than_secs`): ten years, in seconds. Far
/// below what would overflow the interval arithmetic.
pub const MAX_OLDER_THAN_SECS: i64 = 10 * 365 * 86_400;
/// The most cases one list returns.
pub const MAX_LIST_LIMIT: i64 = 1000;
/// The cases one list returns when the caller does not say.
const DEFAULT_LIST_LIMIT: i64 = 100;

/// A case as listed and shown.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct CaseRow {
    /// The case's id.
    pub id: i64,
    /// The order, if the message named one.
    pub order_id: Option<String>,
    /// The stage that escalated.
    pub stage: String,
    /// Machine-readable reason.
    pub reason: String,
    /// What went wrong.
    pub detail: String,
    /// The role with authority to resolve it.
    pub required_role: String,
    /// open, retried, amended, cancelled, closed or superseded.
    pub status: String,
    /// When it was opened (UTC).
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it was resolved (UTC).
    pub resolved_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Which cases to list. Empty fields do not filter.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct CaseFilter {
    /// Only cases with this status.
    pub status: Option<String>,
    /// Only cases with this reason.
    pub reason: Option<String>,
    /// Only cases from this stage.
    pub stage: Option<String>,
    /// Only cases needing this role.
    pub role: Option<String>,
    /// Only cases opened at least this many seconds ago.
    pub older_than_secs: Option<i64>,
    /// Most cases returned (default 100, at most 1000).
    pub limit: Option<i64>,
}

impl CaseFilter {
    /// Checks the filter before it reaches the database: text fields are identifiers, numbers
    /// lie in their ranges (`older_than_secs` 0 to [`MAX_OLDER_THAN_SECS`], `limit` 1 to
    /// [`MAX_LIST_LIMIT`]).
    pub fn check(&self) -> Result<(), TextError> {
        let texts = [
            ("status", &self.status),
            ("reason", &self.reason),
            ("stage", &self.stage),
            ("role", &self.role),
        ];
        for (field, value) in texts {
            if let Some(value) = value {
                text::identifier(field, value)?;
            }
        }
        if let Some(secs) = self.older_than_secs {
            text::within("older_than_secs", secs, 0, MAX_OLDER_THAN_SECS)?;
        }
        if let Some(limit) = self.limit {
            text::within("limit", limit, 1, MAX_LIST_LIMIT)?;
        }
        Ok(())
    }
}

const CASE_COLUMNS: &str =
    "id, order_id, stage, reason, detail, required_role, status, created_at, resolved_at";

/// Cases matching the filter, oldest first. The filter must have passed [`CaseFilter::check`].
pub async fn list(conn: &mut PgConnection, filter: &CaseFilter) -> sqlx::Result<Vec<CaseRow>> {
    let sql = format!(
        "SELECT {CASE_COLUMNS} FROM review_cases
         WHERE ($1::TEXT IS NULL OR status = $1) AND ($2::TEXT IS NULL OR reason = $2)
           AND ($3::TEXT IS NULL OR stage = $3) AND ($4::TEXT IS NULL OR required_role = $4)
           AND ($5::BIGINT IS NULL OR created_at <= now() - make_interval(secs => $5))
         ORDER BY id LIMIT $6"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&filter.status)
        .bind(&filter.reason)
        .bind(&filter.stage)
        .bind(&filter.role)
        .bind(filter.older_than_secs)
        .bind(
            filter
                .limit
                .unwrap_or(DEFAULT_LIST_LIMIT)
                .clamp(1, MAX_LIST_LIMIT),
        )
        .fetch_all(conn)
        .await
}

/// One case.
pub async fn get(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<CaseRow>> {
    let sql = format!("SELECT {CASE_COLUMNS} FROM review_cases WHERE id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The message a case keeps: body, AMQP properties (as JSON bytes) and inbox key.
pub async fn original(
    conn: &mut PgConnection,
    id: i64,
) -> sqlx::Result<Option<(Vec<u8>, Vec<u8>, Option<String>)>> {
    sqlx::query_as(
        "SELECT original_body, original_properties, message_key FROM review_cases WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Moves an open case to `status`. Returns false if it was not open: only one of several people
/// acting at once succeeds.
pub async fn resolve(conn: &mut PgConnection, id: i64, status: &str) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE review_cases SET status = $2, resolved_at = now(), updated_at = now()
         WHERE id = $1 AND status = 'open'",
    )
    .bind(id)
    .bind(status)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// An action taken on a case.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ActionRow {
    /// retry, amend, cancel or close.
    pub action: String,
    /// Who.
    pub actor: String,
    /// Why.
    pub note: String,
    /// What it did.
    pub detail: serde_json::Value,
    /// When (UTC).
    pub acted_at: chrono::DateTime<chrono::Utc>,
}

/// Records an action on a case.
pub async fn record_action(
    conn: &mut PgConnection,
    case_id: i64,
    action: &str,
    actor: &str,
    note: &str,
    detail: serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO review_actions (case_id, action, actor, note, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(case_id)
    .bind(action)
    .bind(actor)
    .bind(note)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// A case's actions, oldest first.
pub async fn actions(conn: &mut PgConnection, case_id: i64) -> sqlx::Result<Vec<ActionRow>> {
    sqlx::query_as(
        "SELECT action, actor, note, detail, acted_at FROM review_actions WHERE case_id = $1 ORDER BY id",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked_before_the_database() {
        assert!(CaseFilter::default().check().is_ok());
        let nul = CaseFilter {
            reason: Some("out\0of_stock".into()),
            ..CaseFilter::default()
        };
        assert!(nul.check().unwrap_err().to_string().starts_with("reason: "));
        let cases = [
            (
                Some(i64::MAX),
                None,
                "older_than_secs: must be between 0 and 315360000",
            ),
            (
                Some(-1),
                None,
                "older_than_secs: must be between 0 and 315360000",
            ),
            (None, Some(0), "limit: must be between 1 and 1000"),
            (None, Some(-5), "limit: must be between 1 and 1000"),
            (None, Some(1001), "limit: must be between 1 and 1000"),
        ];
        for (older_than_secs, limit, message) in cases {
            let filter = CaseFilter {
                older_than_secs,
                limit,
                ..CaseFilter::default()
            };
            assert_eq!(filter.check().unwrap_err().to_string(), message);
        }
        let widest = CaseFilter {
            older_than_secs: Some(MAX_OLDER_THAN_SECS),
            limit: Some(MAX_LIST_LIMIT),
            ..CaseFilter::default()
        };
        assert!(widest.check().is_ok());
    }
}

/// An order's open review case, as `fulfilment status` lists it.
#[derive(Debug, serde::Serialize, sqlx::FromRow)]
pub struct OpenCase {
    /// The case.
    pub id: i64,
    /// Why it was opened.
    pub reason: String,
    /// Who may resolve it.
    pub required_role: String,
}

/// The order's open cases, oldest first.
pub async fn open_for_order(
    conn: &mut PgConnection,
    order_id: &str,
) -> sqlx::Result<Vec<OpenCase>> {
    sqlx::query_as(
        "SELECT id, reason, required_role FROM review_cases
         WHERE order_id = $1 AND status = 'open' ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}
