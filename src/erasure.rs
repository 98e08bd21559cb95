//! Erasing a customer's personal data while the financial records stay intact.
//!
//! What identifies a person lives in few places, by design: the customer record (name, email),
//! the words of their complaints and queries (kept with their answers, in the review cases opened
//! for them, and in any copy re-sent from review through the outbox), and the list of products
//! they have bought (kept only to suggest others). Erasure empties all of these in one
//! transaction, holding the locks of the customer's orders so no stage writes about them
//! meanwhile, and records who erased whose data, when and why.
//!
//! What stays: orders, their versions and records, documents, payments, revenue recognitions and
//! ledger entries. They name the customer only by id, and the customer's row stays (blank and
//! marked erased) so that id still resolves. An erased customer's new orders are refused at
//! verify (`customer_erased`), and `fulfilment seed` does not bring their record back.

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::db;
use crate::domain::EventType;

/// The outbox `event_type`s whose messages can carry a customer's words: their answers, a
/// re-sent copy of one, and the broadcast of a case opened for one.
const MESSAGE_TYPES: [&str; 3] = [
    "fulfilment.customer.confirmation.v1",
    "review.retry",
    "fulfilment.review.case_opened.v1",
];

/// What an erasure touched. Counts only: the summary itself holds no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureSummary {
    /// The customer.
    pub customer_id: String,
    /// Whether there was a customer record to blank (otherwise the customer was known only from
    /// their orders, and an erased record now stands in for it).
    pub customer_record: bool,
    /// The customer's orders, kept with their financial records.
    pub orders_kept: usize,
    /// Complaint and query texts removed from the customer's answers.
    pub answers_cleared: u64,
    /// Review cases whose detail or original message held the customer's words.
    pub review_cases_cleared: u64,
    /// Outbox messages that held the customer's words.
    pub outbox_messages_cleared: u64,
    /// Products forgotten from the customer's purchase history.
    pub purchases_forgotten: u64,
    /// When (UTC).
    pub erased_at: DateTime<Utc>,
}

/// Why an erasure could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// Neither a customer record nor an order names this customer.
    #[error("no customer {0}: no customer record and no order names them")]
    UnknownCustomer(String),
    /// The database failed; nothing was erased.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Erases `customer_id`'s personal data, as `erased_by` asked for the reason in `note`. Running
/// it again finds nothing more to erase and records the request again.
pub async fn erase_customer(
    pool: &PgPool,
    customer_id: &str,
    erased_by: &str,
    note: &str,
) -> Result<ErasureSummary, ErasureError> {
    let mut tx = pool.begin().await.context("starting the erasure")?;
    let orders = db::erasure::orders_of(&mut tx, customer_id)
        .await
        .context("finding the customer's orders")?;
    // With orders the customer is known; without, only a record can say so (whether one existed
    // is otherwise learned when it is blanked).
    if orders.is_empty()
        && !db::erasure::customer_exists(&mut tx, customer_id)
            .await
            .context("finding the customer")?
    {
        return Err(ErasureError::UnknownCustomer(customer_id.to_owned()));
    }
    db::batch::lock(&mut tx, &orders)
        .await
        .context("locking the customer's orders")?;
    let mut summary = erase_within(&mut tx, customer_id, &orders)
        .await
        .context("erasing")?;
    summary.erased_at = db::erasure::record(
        &mut tx,
        customer_id,
        erased_by,
        note,
        &serde_json::to_value(&summary).context("summarising")?,
    )
    .await
    .context("recording the erasure")?;
    tx.commit().await.context("committing the erasure")?;
    Ok(summary)
}

async fn erase_within(
    conn: &mut PgConnection,
    customer_id: &str,
    orders: &[String],
) -> anyhow::Result<ErasureSummary> {
    let customer_record = db::erasure::blank_customer(conn, customer_id).await?;
    let answers_cleared = db::erasure::clear_confirmation_reasons(conn, orders).await?;
    let review_cases_cleared = clear_review_cases(conn, orders).await?;
    let outbox_messages_cleared = clear_outbox(conn, orders).await?;
    let purchases_forgotten = db::erasure::forget_purchases(conn, customer_id).await?;
    Ok(ErasureSummary {
        customer_id: customer_id.to_owned(),
        customer_record,
        orders_kept: orders.len(),
        answers_cleared,
        review_cases_cleared,
        outbox_messages_cleared,
        purchases_forgotten,
        erased_at: Utc::now(),
    })
}

async fn clear_review_cases(conn: &mut PgConnection, orders: &[String]) -> anyhow::Result<u64> {
    let mut cleared = 0;
    for case in db::erasure::review_cases(conn, orders).await? {
        let reason = case.reason.as_deref().unwrap_or_default();
        let Some(detail) = erased_detail(reason) else {
            continue;
        };
        let scrubbed = scrub_message(&case.body);
        if scrubbed.is_none() && case.detail.as_deref() == Some(detail) {
            continue;
        }
        let body = scrubbed.unwrap_or(case.body);
        db::erasure::rewrite_review_case(conn, case.id, detail, &body).await?;
        cleared += 1;
    }
    Ok(cleared)
}

async fn clear_outbox(conn: &mut PgConnection, orders: &[String]) -> anyhow::Result<u64> {
    let mut cleared = 0;
    for message in db::erasure::outbox_messages(conn, orders, &MESSAGE_TYPES).await? {
        if let Some(body) = scrub_message(&message.body) {
            db::erasure::rewrite_outbox_message(conn, message.id, &body).await?;
            cleared += 1;
        }
    }
    Ok(cleared)
}

/// The detail of a review case opened for a customer's complaint or query once their words are
/// erased; `None` for a case of any other reason (whose detail never holds a customer's words).
pub fn erased_detail(reason: &str) -> Option<&'static str> {
    match reason {
        "customer_complaint" => Some("the customer raised a complaint; their words were erased"),
        "customer_query" => Some("the customer raised a query; their words were erased"),
        _ => None,
    }
}

/// The message without the customer's words, or `None` if it holds none: a
/// `customer.confirmation` loses its `reason`, a `review.case_opened` about a complaint or query
/// gets the erased detail. Anything that is not such a JSON envelope is left as it is.
pub fn scrub_message(body: &[u8]) -> Option<Vec<u8>> {
    let mut envelope: Value = serde_json::from_slice(body).ok()?;
    let event_type = envelope
        .get("type")
        .and_then(Value::as_str)
        .and_then(EventType::from_cloudevents_type)?;
    let data = envelope.get_mut("data")?.as_object_mut()?;
    match event_type {
        EventType::CustomerConfirmation => {
            if data.get("reason").is_none_or(Value::is_null) {
                return None;
            }
            data.insert("reason".into(), Value::Null);
        }
        EventType::ReviewCaseOpened => {
            let reason = data
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let detail = erased_detail(reason)?;
            if data.get("detail").and_then(Value::as_str) == Some(detail) {
                return None;
            }
            data.insert("detail".into(), Value::String(detail.into()));
        }
        _ => return None,
    }
    serde_json::to_vec(&envelope).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bytes(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn an_answer_loses_its_reason_and_keeps_everything_else() {
        let body = bytes(json!({
            "type": "fulfilment.customer.confirmation.v1", "id": "m-1", "subject": "A-1",
            "data": {"order_id": "A-1", "outcome": "complaint", "reason": "call Jo on 0123"}
        }));
        let scrubbed: Value = serde_json::from_slice(&scrub_message(&body).unwrap()).unwrap();
        assert_eq!(scrubbed["data"]["reason"], Value::Null);
        assert_eq!(scrubbed["data"]["outcome"], "complaint");
        assert_eq!(scrubbed["id"], "m-1");
        assert_eq!(
            scrub_message(&bytes(scrubbed)),
            None,
            "nothing left to erase"
        );
    }

    #[test]
    fn a_broadcast_case_about_a_complaint_gets_the_erased_detail() {
        let body = bytes(json!({
            "type": "fulfilment.review.case_opened.v1",
            "data": {"case_id": 3, "reason": "customer_complaint", "detail": "raised: Jo's dent"}
        }));
        let scrubbed: Value = serde_json::from_slice(&scrub_message(&body).unwrap()).unwrap();
        assert_eq!(
            scrubbed["data"]["detail"],
            "the customer raised a complaint; their words were erased"
        );
        let other = bytes(json!({
            "type": "fulfilment.review.case_opened.v1",
            "data": {"case_id": 4, "reason": "out_of_stock", "detail": "KETTLE-STEEL: 0 left"}
        }));
        assert_eq!(scrub_message(&other), None);
    }

    #[test]
    fn other_messages_and_unreadable_bytes_are_left_alone() {
        let placed = bytes(json!({
            "type": "fulfilment.order.placed.v1", "data": {"order_id": "A-1", "reason": "x"}
        }));
        assert_eq!(scrub_message(&placed), None);
        assert_eq!(scrub_message(b"\xff not json"), None);
        assert_eq!(erased_detail("price_mismatch"), None);
    }
}
