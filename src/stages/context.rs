//! What a stage works with: the decoded event and a context over the delivery's transaction.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::PgConnection;

use crate::db::{self, orders::StoredOrder, records::NewRecord};
use crate::domain::catalogue::Product;
use crate::domain::{EventPayload, EventType, OrderId, OrderState};
use crate::envelope::{Envelope, TraceParent, WireEvent};

use super::{Escalation, Handled, Role, StageError, StageName};

/// An event a stage received, decoded from its envelope.
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    /// The envelope.
    pub envelope: Envelope,
    /// Its type.
    pub event_type: EventType,
}

impl IncomingEvent {
    /// The typed payload; a payload that does not match its type is escalated.
    pub fn payload<P: EventPayload>(&self) -> Result<P, StageError> {
        self.envelope
            .payload::<P>()
            .map_err(|e| Escalation::new("invalid_payload", e.to_string(), Role::Operations).into())
    }

    /// The event's id.
    pub fn id(&self) -> &str {
        &self.envelope.id
    }
}

/// Products already read in this transaction, by SKU. A batch of deliveries shares one, so
/// the catalogue is read once per batch rather than once per delivery.
pub type ProductCache = HashMap<String, Product>;

/// A stage's view of the delivery's transaction.
pub struct StageContext<'t> {
    conn: &'t mut PgConnection,
    products: &'t mut ProductCache,
    /// The delivery's order as read with the inbox check, handed out by the first
    /// [`Self::order`] or [`Self::find_order`] call; later calls read it again.
    preloaded: Option<StoredOrder>,
    stage: StageName,
    message_id: String,
    trace: Option<TraceParent>,
    emitted: Vec<(i64, WireEvent)>,
}

impl<'t> StageContext<'t> {
    /// A context for `stage` handling message `message_id` on `conn`, sharing the products
    /// read so far in the transaction.
    pub fn new(
        conn: &'t mut PgConnection,
        products: &'t mut ProductCache,
        stage: StageName,
        message_id: String,
        trace: Option<TraceParent>,
    ) -> Self {
        Self {
            conn,
            products,
            preloaded: None,
            stage,
            message_id,
            trace,
            emitted: Vec::new(),
        }
    }

    /// The connection, for stage-specific records kept in `crate::db`.
    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn
    }

    /// The products with these SKUs (unknown SKUs are left out), read from the database only if
    /// this transaction has not read them yet.
    pub async fn products(&mut self, skus: &[String]) -> Result<ProductCache, StageError> {
        let missing: Vec<String> = skus
            .iter()
            .filter(|sku| !self.products.contains_key(*sku))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let read = db::reference::products(self.conn, &missing).await?;
            self.products.extend(read);
        }
        Ok(skus
            .iter()
            .filter_map(|sku| Some((sku.clone(), self.products.get(sku)?.clone())))
            .collect())
    }

    /// The stage this context belongs to.
    pub fn stage(&self) -> StageName {
        self.stage
    }

    /// Hands the context the delivery's order, already read in this transaction.
    pub fn with_order(mut self, order: Option<StoredOrder>) -> Self {
        self.preloaded = order;
        self
    }

    /// The order, if it exists. The first call may return the order as read when the delivery's
    /// handling began (nothing has changed it since: its lock is held); later calls read it.
    pub async fn find_order(
        &mut self,
        order_id: &OrderId,
    ) -> Result<Option<StoredOrder>, StageError> {
        if let Some(order) = self.preloaded.take()
            && order.order.order_id == *order_id
        {
            return Ok(Some(order));
        }
        Ok(db::orders::find(self.conn, order_id.as_str()).await?)
    }

    /// The order, which must exist (see [`Self::find_order`]).
    pub async fn order(&mut self, order_id: &OrderId) -> Result<StoredOrder, StageError> {
        self.find_order(order_id).await?.ok_or_else(|| {
            Escalation::new(
                "unknown_order",
                format!("order {order_id} does not exist"),
                Role::Operations,
            )
            .into()
        })
    }

    /// Whether the order can move to `to` now: `Ok(None)` if so, `Ok(Some(AlreadyDone))` if it
    /// is at or past `to`, an escalation if it is not ready for it.
    pub fn readiness(
        &self,
        order: &StoredOrder,
        to: OrderState,
    ) -> Result<Option<Handled>, StageError> {
        let from = order.state;
        if from >= to {
            return Ok(Some(Handled::AlreadyDone));
        }
        if !from.can_move_to(to) {
            return Err(Escalation::new(
                "invalid_transition",
                format!("order is {from}; {} moves orders only to {to}", self.stage),
                Role::Operations,
            )
            .into());
        }
        Ok(None)
    }

    /// Moves the order to `to`, which must be the next state. An order already at or past `to`
    /// gives [`Handled::AlreadyDone`]; an order not yet ready for it is escalated.
    pub async fn advance(
        &mut self,
        order: &StoredOrder,
        to: OrderState,
    ) -> Result<Option<Handled>, StageError> {
        if let Some(done) = self.readiness(order, to)? {
            return Ok(Some(done));
        }
        let from = order.state;
        let id = order.order.order_id.as_str();
        if !db::orders::set_state(self.conn, id, from, to).await? {
            return Err(StageError::Transient(anyhow::anyhow!(
                "order {id} changed state under a lock"
            )));
        }
        Ok(None)
    }

    /// Adds this stage's record to the order's timeline.
    pub async fn record(
        &mut self,
        order_id: &OrderId,
        state_after: OrderState,
        detail: &impl Serialize,
    ) -> Result<(), StageError> {
        let detail = serde_json::to_value(detail).map_err(anyhow::Error::from)?;
        db::records::insert(
            self.conn,
            NewRecord {
                order_id: order_id.as_str(),
                stage: self.stage.as_str(),
                message_id: &self.message_id,
                state_after: state_after.as_str(),
                detail,
            },
        )
        .await?;
        Ok(())
    }

    /// An event from this stage, carrying the trace of the delivery that caused it.
    fn event<P: EventPayload>(&self, payload: &P) -> WireEvent {
        let source = format!("fulfilment/{}", self.stage);
        WireEvent::new(&source, payload, self.trace.as_ref())
    }

    /// Puts an event in the outbox; it is published once the transaction commits.
    pub async fn emit<P: EventPayload>(&mut self, payload: &P) -> Result<(), StageError> {
        let event = self.event(payload);
        let id = db::outbox::insert(self.conn, &event).await?;
        self.emitted.push((id, event));
        Ok(())
    }

    /// The common step: move the order to `to`, record `detail`, emit `next` (in one statement).
    pub async fn step<P: EventPayload>(
        &mut self,
        order: &StoredOrder,
        to: OrderState,
        detail: &impl Serialize,
        next: &P,
    ) -> Result<Handled, StageError> {
        if let Some(done) = self.readiness(order, to)? {
            return Ok(done);
        }
        let id = order.order.order_id.as_str();
        let event = self.event(next);
        let record = NewRecord {
            order_id: id,
            stage: self.stage.as_str(),
            message_id: &self.message_id,
            state_after: to.as_str(),
            detail: serde_json::to_value(detail).map_err(anyhow::Error::from)?,
        };
        let Some(row) = db::steps::advance(self.conn, order.state, record, &event).await? else {
            return Err(StageError::Transient(anyhow::anyhow!(
                "order {id} changed state under a lock"
            )));
        };
        self.emitted.push((row, event));
        Ok(Handled::Advanced)
    }

    /// Refuses the order: records the refusal in its timeline (the state does not change) and
    /// returns the escalation for a review case.
    pub async fn refuse(
        &mut self,
        order_id: &OrderId,
        state: OrderState,
        escalation: Escalation,
    ) -> Result<Handled, StageError> {
        let detail = serde_json::json!({
            "refused": escalation.reason,
            "detail": escalation.detail,
            "role": escalation.role.as_str(),
        });
        self.record(order_id, state, &detail).await?;
        Ok(Handled::Escalated(escalation))
    }

    /// The events emitted so far, with their outbox row ids.
    pub fn into_emitted(self) -> Vec<(i64, WireEvent)> {
        self.emitted
    }
}
