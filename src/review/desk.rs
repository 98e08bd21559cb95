//! Listing, showing and resolving review cases.
//!
//! Every resolution runs in one transaction that moves the case from `open` (so of two people
//! acting at once, exactly one succeeds), records the action with who and why, and writes what
//! must be published to the outbox; after the commit it is published (the relay covers a crash).

use std::sync::Arc;

use base64::Engine;
use chrono::Utc;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::db;
use crate::db::records::TimelineEntry;
use crate::db::review::{ActionRow, CaseFilter, CaseRow};
use crate::domain::documents::Seller;
use crate::domain::events::OrderAmended;
use crate::domain::text::{self, TextError};
use crate::domain::{Order, OrderId};
use crate::domain::{Role, StageName};
use crate::envelope::{DirectTarget, WireEvent};
use crate::erasure::{self, ErasureError, ErasureSummary};
use crate::messaging::Topology;
use crate::messaging::inbound::ATTEMPT_HEADER;
use crate::reissue::{self, ReissueError, Reissued, Requested};
use crate::settings::AmqpSettings;

use super::link::BrokerLink;
use super::people::Person;

/// The CloudEvents `source` of what the desk publishes.
pub const SOURCE: &str = "fulfilment/review";

/// Why a review request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No such case.
    #[error("no review case {0}")]
    NotFound(i64),
    /// The case was already resolved (perhaps by someone else a moment ago).
    #[error("case {0} is already {1}")]
    NotOpen(i64, String),
    /// The person lacks the authority the case needs.
    #[error("resolving case {case} needs the role {required}")]
    Forbidden {
        /// The case.
        case: i64,
        /// The role it needs.
        required: String,
    },
    /// The person lacks the authority an action outside any case needs.
    #[error("{action} needs the role {required}")]
    NotAuthorised {
        /// What they tried.
        action: &'static str,
        /// The role it needs.
        required: &'static str,
    },
    /// No such customer.
    #[error("{0}")]
    UnknownCustomer(String),
    /// The request does not fit the case.
    #[error("{0}")]
    Invalid(String),
    /// The database or broker failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ReviewError {
    fn from(e: sqlx::Error) -> Self {
        ReviewError::Internal(e.into())
    }
}

impl From<TextError> for ReviewError {
    fn from(e: TextError) -> Self {
        ReviewError::Invalid(e.to_string())
    }
}

/// What a person decided.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// Send the original message to the stage it failed at again.
    Retry,
    /// Apply this changed order (its version is raised above the current one if needed) and
    /// verify it again.
    Amend(serde_json::Value),
    /// Cancel the order and compensate what was done.
    Cancel,
    /// Resolved outside the pipeline.
    Close,
}

impl Resolution {
    fn action(&self) -> &'static str {
        match self {
            Resolution::Retry => "retry",
            Resolution::Amend(_) => "amend",
            Resolution::Cancel => "cancel",
            Resolution::Close => "close",
        }
    }

    fn status(&self) -> &'static str {
        match self {
            Resolution::Retry => "retried",
            Resolution::Amend(_) => "amended",
            Resolution::Cancel => "cancelled",
            Resolution::Close => "closed",
        }
    }
}

/// A case with everything a person needs to decide.
#[derive(Debug, Serialize)]
pub struct CaseDetail {
    /// The case.
    #[serde(flatten)]
    pub case: CaseRow,
    /// The message that could not be handled, as base64 (byte for byte).
    pub original_body_base64: String,
    /// The same, as text, when it is UTF-8.
    pub original_body_text: Option<String>,
    /// Its AMQP properties; a value that was not UTF-8 on the wire is shown as
    /// `{"hex": "..."}` of its octets.
    pub original_properties: serde_json::Value,
    /// The order's state, if the order exists.
    pub order_state: Option<String>,
    /// The order's timeline.
    pub timeline: Vec<TimelineEntry>,
    /// What people have done about the case.
    pub actions: Vec<ActionRow>,
}

/// The review desk.
#[derive(Clone)]
pub struct ReviewDesk {
    pool: PgPool,
    topology: Topology,
    /// The desk's own broker connection, opened when a resolution is first published.
    link: Arc<BrokerLink>,
    /// Who sells, for reissuing documents issued before it was configured.
    seller: Option<Seller>,
}

impl ReviewDesk {
    /// A desk over `pool` that publishes what it resolves through its own broker connection,
    /// opened when first needed and again whenever it has dropped. Should the broker be away,
    /// what the desk resolves is still committed to the outbox, and the relay publishes it.
    pub fn new(settings: &AmqpSettings, pool: PgPool) -> Self {
        Self {
            pool,
            topology: Topology::new(&settings.namespace),
            link: Arc::new(BrokerLink::new(settings)),
            seller: None,
        }
    }

    /// The same desk, reissuing documents with `seller` (`stages.seller`).
    pub fn with_seller(mut self, seller: Option<Seller>) -> Self {
        self.seller = seller;
        self
    }

    /// Reissues, naming the seller, the order's documents issued before the seller was
    /// configured, at `person`'s request for the reason in `note`; see [`crate::reissue`].
    /// Needs the `finance` role.
    pub async fn reissue_documents(
        &self,
        order_id: &str,
        person: &Person,
        note: &str,
    ) -> Result<Vec<Reissued>, ReviewError> {
        if !person.may_resolve(Role::Finance.as_str()) {
            return Err(ReviewError::NotAuthorised {
                action: "reissuing documents",
                required: Role::Finance.as_str(),
            });
        }
        text::identifier("order_id", order_id)?;
        require_note(note)?;
        let requested = Requested {
            by: Some(person.name.clone()),
            note: Some(note.to_owned()),
        };
        let seller = self.seller.clone();
        reissue::reissue(&self.pool, order_id, seller, Utc::now(), &requested)
            .await
            .map_err(|e| match e {
                ReissueError::Database(inner) => ReviewError::Internal(inner),
                refused => ReviewError::Invalid(refused.to_string()),
            })
    }

    /// The desk's broker connection, to share with the intake.
    pub fn link(&self) -> Arc<BrokerLink> {
        self.link.clone()
    }

    /// Cases matching `filter`, oldest first.
    pub async fn list(&self, filter: &CaseFilter) -> Result<Vec<CaseRow>, ReviewError> {
        filter.check()?;
        let mut conn = self.pool.acquire().await?;
        Ok(db::review::list(&mut conn, filter).await?)
    }

    /// One case with its message, the order's timeline and the actions taken.
    pub async fn show(&self, id: i64) -> Result<CaseDetail, ReviewError> {
        let mut conn = self.pool.acquire().await?;
        let case = db::review::get(&mut conn, id)
            .await?
            .ok_or(ReviewError::NotFound(id))?;
        let (body, properties, _) = db::review::original(&mut conn, id)
            .await?
            .ok_or(ReviewError::NotFound(id))?;
        let (order_state, timeline) = match &case.order_id {
            Some(order) => (
                db::orders::find(&mut conn, order)
                    .await?
                    .map(|o| o.state.to_string()),
                db::records::timeline(&mut conn, order).await?,
            ),
            None => (None, Vec::new()),
        };
        Ok(CaseDetail {
            original_body_base64: base64::engine::general_purpose::STANDARD.encode(&body),
            original_body_text: String::from_utf8(body).ok(),
            original_properties: readable_properties(&properties),
            order_state,
            timeline,
            actions: db::review::actions(&mut conn, id).await?,
            case,
        })
    }

    /// Erases a customer's personal data at `person`'s request, for the reason in `note`; see
    /// [`crate::erasure`]. Needs the `customer_service` role.
    pub async fn erase_customer(
        &self,
        customer_id: &str,
        person: &Person,
        note: &str,
    ) -> Result<ErasureSummary, ReviewError> {
        if !person.may_resolve(Role::CustomerService.as_str()) {
            return Err(ReviewError::NotAuthorised {
                action: "erasing a customer's personal data",
                required: Role::CustomerService.as_str(),
            });
        }
        text::identifier("customer_id", customer_id)?;
        require_note(note)?;
        erasure::erase_customer(&self.pool, customer_id, &person.name, note)
            .await
            .map_err(|e| match e {
                ErasureError::UnknownCustomer(_) => ReviewError::UnknownCustomer(e.to_string()),
                ErasureError::Internal(inner) => ReviewError::Internal(inner),
            })
    }

    /// Resolves a case as `person` decided, for the reason in `note`.
    pub async fn resolve(
        &self,
        id: i64,
        person: &Person,
        resolution: Resolution,
        note: &str,
    ) -> Result<CaseRow, ReviewError> {
        let mut tx = self.pool.begin().await?;
        let case = db::review::get(&mut tx, id)
            .await?
            .ok_or(ReviewError::NotFound(id))?;
        if !person.may_resolve(&case.required_role) {
            return Err(ReviewError::Forbidden {
                case: id,
                required: case.required_role,
            });
        }
        require_note(note)?;
        if let Some(order) = &case.order_id {
            db::batch::lock(&mut tx, std::slice::from_ref(order)).await?;
        }
        if !db::review::resolve(&mut tx, id, resolution.status()).await? {
            let current = db::review::get(&mut tx, id)
                .await?
                .map(|c| c.status)
                .unwrap_or_default();
            return Err(ReviewError::NotOpen(id, current));
        }
        let (detail, emitted) = match &resolution {
            Resolution::Retry => self.retry(&mut tx, &case).await?,
            Resolution::Amend(order) => amend(&mut tx, &case, order.clone()).await?,
            Resolution::Cancel => {
                let order_id = order_of(&case)?;
                super::cancel::cancel(&mut tx, &case, &order_id, note).await?
            }
            Resolution::Close => (super::close::close(&mut tx, &case).await?, Vec::new()),
        };
        db::review::record_action(&mut tx, id, resolution.action(), &person.name, note, detail)
            .await?;
        tx.commit().await?;
        tracing::info!(case = id, action = resolution.action(), actor = %person.name, "review case resolved");
        self.publish(&emitted).await;
        let mut conn = self.pool.acquire().await?;
        db::review::get(&mut conn, id)
            .await?
            .ok_or(ReviewError::NotFound(id))
    }

    /// Re-injects the original message into its stage's queue, and lets the stage's inbox take
    /// it again.
    async fn retry(
        &self,
        conn: &mut PgConnection,
        case: &CaseRow,
    ) -> Result<(serde_json::Value, Vec<(i64, WireEvent)>), ReviewError> {
        let stage: StageName = case.stage.parse().map_err(|_| {
            ReviewError::Invalid(format!("case {} has no stage to retry at", case.id))
        })?;
        let (body, properties, key) = db::review::original(conn, case.id)
            .await?
            .ok_or(ReviewError::NotFound(case.id))?;
        if let Some(key) = &key {
            db::inbox::forget(conn, stage.as_str(), key).await?;
        }
        let properties = without_attempt_header(&properties);
        let queue = self.topology.stage_queue(stage);
        let event = WireEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            order_id: case.order_id.clone().unwrap_or_default(),
            routing_key: queue.clone(),
            event_type: "review.retry".into(),
            time: Utc::now(),
            traceparent: crate::envelope::TraceParent::new_root().to_string(),
            body,
            direct: Some(DirectTarget {
                queue: queue.clone(),
                properties,
            }),
        };
        let id = db::outbox::insert(conn, &event).await?;
        Ok((
            serde_json::json!({ "requeued_to": queue }),
            vec![(id, event)],
        ))
    }

    async fn publish(&self, emitted: &[(i64, WireEvent)]) {
        if emitted.is_empty() {
            return;
        }
        let published = async {
            let publisher = self.link.publisher().await?;
            crate::relay::publish_committed(&self.pool, &publisher, emitted).await
        };
        if let Err(error) = published.await {
            self.link.reset().await;
            tracing::warn!(error = %format!("{error:#}"), "publishing a resolution failed; the relay will");
        }
    }
}

/// Every action a person takes needs a note saying why, within the limits of free text (it is
/// stored, and a cancellation's note is published as its reason).
fn require_note(note: &str) -> Result<(), ReviewError> {
    text::free_text("note", note)?;
    match note.trim().is_empty() {
        true => Err(ReviewError::Invalid(
            "note: a note saying why is required".into(),
        )),
        false => Ok(()),
    }
}

fn order_of(case: &CaseRow) -> Result<OrderId, ReviewError> {
    let id = case
        .order_id
        .clone()
        .ok_or_else(|| ReviewError::Invalid(format!("case {} is not about an order", case.id)))?;
    OrderId::parse(id).map_err(|e| ReviewError::Invalid(e.to_string()))
}

/// Publishes the changed order as `order.amended`, with a version above the current one.
async fn amend(
    conn: &mut PgConnection,
    case: &CaseRow,
    mut body: serde_json::Value,
) -> Result<(serde_json::Value, Vec<(i64, WireEvent)>), ReviewError> {
    let order_id = order_of(case)?;
    let current = db::orders::find(conn, order_id.as_str()).await?;
    let current_version = current.as_ref().map_or(0, |o| o.order.version);
    let Some(fields) = body.as_object_mut() else {
        return Err(ReviewError::Invalid(
            "order: the amended order must be a JSON object".into(),
        ));
    };
    let given = fields.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    let given = u32::try_from(given).unwrap_or(u32::MAX);
    let version = given.max(current_version.saturating_add(1));
    fields.insert("version".into(), version.into());
    fields.insert("order_id".into(), order_id.as_str().into());
    let order: Order = serde_json::from_value(body).map_err(|e| {
        let problem = text::excerpt(&e.to_string(), 300);
        ReviewError::Invalid(format!("the amended order is invalid: {problem}"))
    })?;
    let amended = OrderAmended {
        order_id: order_id.clone(),
        order: order.clone(),
    };
    let trace = order_trace(conn, order_id.as_str(), case.id).await?;
    let event = WireEvent::new(SOURCE, &amended, Some(&trace));
    let id = db::outbox::insert(conn, &event).await?;
    Ok((
        serde_json::json!({ "version": order.version }),
        vec![(id, event)],
    ))
}

/// The trace context of a review decision about an order: a span of its own in the order's
/// trace, so that what the decision publishes continues the order's trace.
pub async fn order_trace(
    conn: &mut PgConnection,
    order_id: &str,
    case_id: i64,
) -> sqlx::Result<crate::envelope::TraceParent> {
    let trace = db::orders::traceparent(conn, order_id).await?;
    let span = tracing::info_span!("review", case_id, order_id = %order_id);
    Ok(crate::telemetry::otel::continue_trace(
        &span,
        trace.as_ref(),
    ))
}

/// AMQP properties (as kept with a case) without the attempt header, so that a retried message
/// starts its attempts again. Properties that cannot be read are kept as they are.
fn without_attempt_header(properties: &[u8]) -> Vec<u8> {
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(properties) else {
        return properties.to_vec();
    };
    if let Some(headers) = json.pointer_mut("/headers").and_then(|h| h.as_object_mut()) {
        headers.remove(ATTEMPT_HEADER);
    }
    serde_json::to_vec(&json).unwrap_or_else(|_| properties.to_vec())
}

/// AMQP properties (as kept with a case) for people: each text that stood for octets that were
/// not UTF-8 becomes `{"hex": "..."}` of those octets.
fn readable_properties(properties: &[u8]) -> serde_json::Value {
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(properties) else {
        let hex = crate::digest::hex(properties);
        return serde_json::json!({ "unreadable": hex });
    };
    show_raw_octets(&mut json);
    json
}

fn show_raw_octets(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => {
            let raw = lapin::types::ShortString::try_new(text.clone())
                .ok()
                .filter(|s| !s.is_verbatim());
            if let Some(raw) = raw {
                let hex = crate::digest::hex(&raw.wire_bytes());
                *value = serde_json::json!({ "hex": hex });
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(show_raw_octets),
        serde_json::Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if let Some(mut inner) = map.remove(&key) {
                    show_raw_octets(&mut inner);
                    let shown = match lapin::types::ShortString::try_new(key.clone()) {
                        Ok(s) if !s.is_verbatim() => {
                            format!("hex:{}", crate::digest::hex(&s.wire_bytes()))
                        }
                        _ => key,
                    };
                    map.insert(shown, inner);
                }
            }
        }
        _ => {}
    }
}
