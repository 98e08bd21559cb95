//! What a stage works with: the decoded event and a context over the delivery's transaction.

use serde::Serialize;
use sqlx::PgConnection;

use crate::db::{self, orders::StoredOrder, records::NewRecord};
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

/// A stage's view of the delivery's transaction.
pub struct StageContext<'t> {
    conn: &'t mut PgConnection,
    stage: StageName,
    message_id: String,
    trace: Option<TraceParent>,
    emitted: Vec<(i64, WireEvent)>,
}

impl<'t> StageContext<'t> {
    /// A context for `stage` handling message `message_id` on `conn`.
    pub fn new(
        conn: &'t mut PgConnection,
        stage: StageName,
        message_id: String,
        trace: Option<TraceParent>,
    ) -> Self {
        Self {
            conn,
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

    /// The stage this context belongs to.
    pub fn stage(&self) -> StageName {
        self.stage
    }

    /// The order, which must exist.
    pub async fn order(&mut self, order_id: &OrderId) -> Result<StoredOrder, StageError> {
        db::orders::find(self.conn, order_id.as_str())
            .await?
            .ok_or_else(|| {
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

    /// Puts an event in the outbox; it is published once the transaction commits.
    pub async fn emit<P: EventPayload>(&mut self, payload: &P) -> Result<(), StageError> {
        let source = format!("fulfilment/{}", self.stage);
        let event = WireEvent::new(&source, payload, self.trace.as_ref());
        let id = db::outbox::insert(self.conn, &event).await?;
        self.emitted.push((id, event));
        Ok(())
    }

    /// The common step: move the order to `to`, record `detail`, emit `next`.
    pub async fn step<P: EventPayload>(
        &mut self,
        order: &StoredOrder,
        to: OrderState,
        detail: &impl Serialize,
        next: &P,
    ) -> Result<Handled, StageError> {
        if let Some(done) = self.advance(order, to).await? {
            return Ok(done);
        }
        self.record(&order.order.order_id, to, detail).await?;
        self.emit(next).await?;
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
