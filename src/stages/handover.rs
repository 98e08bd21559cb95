//! handover: records the handover (carrier, tracking reference, time; for services the delivery
//! record) and the transfer of ownership. The order's delivery terms decide when ownership and
//! risk pass: on dispatch (like FOB shipping point) they pass now; on delivery (like FOB
//! destination) they pass when the customer receives the goods. Emits `order.handed_over`, the
//! dispatch event warehouse systems follow.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db;
use crate::domain::OrderState;
use crate::domain::catalogue::OwnershipPasses;
use crate::domain::events::{DocumentsGenerated, OrderHandedOver, ServiceSlot};
use crate::settings::StageSettings;

use super::{Escalation, Handled, IncomingEvent, Role, Stage, StageContext, StageError, StageName};

/// The handover stage.
pub struct Handover {
    default_terms: String,
}

impl Handover {
    /// The stage; orders without delivery terms get `settings.default_delivery_terms`.
    pub fn new(settings: &StageSettings) -> Self {
        Self {
            default_terms: settings.default_delivery_terms.clone(),
        }
    }
}

/// What handover records for an order.
#[derive(Debug, Serialize)]
pub struct HandoverRecord {
    /// Who carries the goods.
    pub carrier: String,
    /// The carrier's reference.
    pub tracking_reference: String,
    /// When (UTC).
    pub handed_over_at: DateTime<Utc>,
    /// The delivery terms that apply.
    pub delivery_terms: String,
    /// When ownership and risk pass under them.
    pub ownership_passes: OwnershipPasses,
    /// When they passed, if they have.
    pub ownership_passed_at: Option<DateTime<Utc>>,
    /// Services delivered.
    pub services_delivered: Vec<ServiceSlot>,
}

#[async_trait]
impl Stage for Handover {
    fn name(&self) -> StageName {
        StageName::Handover
    }

    async fn handle(
        &self,
        ctx: &mut StageContext<'_>,
        event: &IncomingEvent,
    ) -> Result<Handled, StageError> {
        let generated: DocumentsGenerated = event.payload()?;
        let order = ctx.order(&generated.order_id).await?;
        if generated.version < order.order.version {
            return Ok(Handled::AlreadyDone);
        }
        if let Some(done) = ctx.readiness(&order, OrderState::HandedOver)? {
            return Ok(done);
        }
        let code = order
            .order
            .delivery_terms_or(&self.default_terms)
            .to_owned();
        let Some(terms) = db::reference::delivery_terms(ctx.conn(), &code).await? else {
            let refusal = Escalation::new(
                "unknown_delivery_terms",
                format!("no delivery terms {code}"),
                Role::CustomerService,
            );
            return ctx.refuse(&generated.order_id, order.state, refusal).await;
        };
        let now = Utc::now();
        let record = HandoverRecord {
            tracking_reference: tracking_reference(&terms.carrier),
            carrier: terms.carrier,
            handed_over_at: now,
            delivery_terms: terms.code,
            ownership_passes: terms.ownership_passes,
            ownership_passed_at: (terms.ownership_passes == OwnershipPasses::OnDispatch)
                .then_some(now),
            services_delivered: booked_services(ctx, &generated.order_id).await?,
        };
        let handed_over = OrderHandedOver {
            order_id: generated.order_id,
            version: order.order.version,
            carrier: record.carrier.clone(),
            tracking_reference: record.tracking_reference.clone(),
            handed_over_at: now,
            delivery_terms: record.delivery_terms.clone(),
            ownership_passes: record.ownership_passes,
            ownership_passed_at: record.ownership_passed_at,
            services_delivered: record.services_delivered.clone(),
        };
        ctx.step(&order, OrderState::HandedOver, &record, &handed_over)
            .await
    }
}

/// A carrier reference: the carrier's initials and a unique suffix.
fn tracking_reference(carrier: &str) -> String {
    let initials: String = carrier
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..10].to_ascii_uppercase();
    format!("{initials}{suffix}")
}

/// The service slots the prepare stage booked for the order.
async fn booked_services(
    ctx: &mut StageContext<'_>,
    order_id: &crate::domain::OrderId,
) -> Result<Vec<ServiceSlot>, StageError> {
    let detail = db::records::latest_detail(ctx.conn(), order_id.as_str(), "prepare").await?;
    Ok(detail
        .and_then(|d| serde_json::from_value(d["service_slots"].clone()).ok())
        .unwrap_or_default())
}
