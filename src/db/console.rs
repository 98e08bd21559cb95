//! The web console's own rows: sessions of signed-in people, and bulk actions on review cases.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

/// A live session: who, and the token its forms carry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    /// The person's configured name.
    pub person: String,
    /// The session's CSRF token.
    pub csrf: String,
}

/// Records a session by the SHA-256 of its cookie, ending after `ttl_secs`.
pub async fn insert_session(
    conn: &mut PgConnection,
    id_sha256: &str,
    person: &str,
    csrf: &str,
    ttl_secs: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO console_sessions (id_sha256, person, csrf, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(id_sha256)
    .bind(person)
    .bind(csrf)
    .bind(ttl_secs as f64)
    .execute(&mut *conn)
    .await?;
    // Sessions that ended are of no use to anyone: removed as new ones begin.
    sqlx::query("DELETE FROM console_sessions WHERE expires_at < now()")
        .execute(conn)
        .await?;
    Ok(())
}

/// The unexpired session with this cookie hash.
pub async fn find_session(
    conn: &mut PgConnection,
    id_sha256: &str,
) -> sqlx::Result<Option<SessionRow>> {
    sqlx::query_as(
        "SELECT person, csrf FROM console_sessions WHERE id_sha256 = $1 AND expires_at > now()",
    )
    .bind(id_sha256)
    .fetch_optional(conn)
    .await
}

/// Ends a session.
pub async fn delete_session(conn: &mut PgConnection, id_sha256: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM console_sessions WHERE id_sha256 = $1")
        .bind(id_sha256)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a bulk job over `case_ids` (in that order), each not yet tried. Returns its id.
pub async fn insert_job(
    conn: &mut PgConnection,
    action: &str,
    actor: &str,
    note: &str,
    case_ids: &[i64],
) -> sqlx::Result<i64> {
    let total = i32::try_from(case_ids.len()).unwrap_or(i32::MAX);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO bulk_jobs (action, actor, note, total) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(action)
    .bind(actor)
    .bind(note)
    .bind(total)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO bulk_results (job_id, position, case_id)
         SELECT $1, ordinality::INTEGER, case_id FROM unnest($2::BIGINT[]) WITH ORDINALITY AS c(case_id)",
    )
    .bind(id)
    .bind(case_ids)
    .execute(conn)
    .await?;
    Ok(id)
}

/// Records how one case of a job went.
pub async fn record_result(
    conn: &mut PgConnection,
    job_id: i64,
    case_id: i64,
    outcome: &str,
    message: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE bulk_results SET outcome = $3, message = $4, done_at = now()
         WHERE job_id = $1 AND case_id = $2",
    )
    .bind(job_id)
    .bind(case_id)
    .bind(outcome)
    .bind(message)
    .execute(conn)
    .await?;
    Ok(())
}

/// A bulk job as its progress page shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct JobRow {
    /// The job.
    pub id: i64,
    /// retry or close.
    pub action: String,
    /// Who started it.
    pub actor: String,
    /// Why.
    pub note: String,
    /// How many cases it covers.
    pub total: i32,
    /// When it began (UTC).
    pub created_at: DateTime<Utc>,
}

/// One case of a bulk job; `outcome` is `None` until it was tried.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ResultRow {
    /// The case.
    pub case_id: i64,
    /// done, conflict (someone else resolved it first), forbidden, invalid or failed.
    pub outcome: Option<String>,
    /// What the desk said.
    pub message: Option<String>,
}

/// A job and its cases in order.
pub async fn job(
    conn: &mut PgConnection,
    id: i64,
) -> sqlx::Result<Option<(JobRow, Vec<ResultRow>)>> {
    let job: Option<JobRow> = sqlx::query_as(
        "SELECT id, action, actor, note, total, created_at FROM bulk_jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(job) = job else {
        return Ok(None);
    };
    let results = sqlx::query_as(
        "SELECT case_id, outcome, message FROM bulk_results WHERE job_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(Some((job, results)))
}

/// The role each of these cases needs, for the ids that exist.
pub async fn required_roles(
    conn: &mut PgConnection,
    ids: &[i64],
) -> sqlx::Result<Vec<(i64, String)>> {
    sqlx::query_as("SELECT id, required_role FROM review_cases WHERE id = ANY($1) ORDER BY id")
        .bind(ids)
        .fetch_all(conn)
        .await
}
