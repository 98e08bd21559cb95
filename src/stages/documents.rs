//! documents: produces the handover documents and emits `documents.generated`.

use async_trait::async_trait;
use serde::Serialize;

use crate::domain::events::{DocumentRef, DocumentsGenerated, GoodsPrepared};
use crate::domain::{Order, OrderState};

use super::{Handled, IncomingEvent, Stage, StageContext, StageError, StageName};

/// The documents stage.
pub struct Documents;

/// What documents records for an order.
#[derive(Debug, Serialize)]
pub struct DocumentSet {
    /// The documents produced.
    pub documents: Vec<DocumentRef>,
}

/// The documents an order needs. Numbering from gap-free sequences, rendering and hashing plug in
/// here.
pub fn documents_for(order: &Order) -> DocumentSet {
    let documents = [
        ("delivery_note", "DN"),
        ("packing_list", "PL"),
        ("invoice", "INV"),
    ]
    .into_iter()
    .map(|(kind, prefix)| DocumentRef {
        kind: kind.into(),
        number: format!("{prefix}-{}", order.order_id),
    })
    .collect();
    DocumentSet { documents }
}

#[async_trait]
impl Stage for Documents {
    fn name(&self) -> StageName {
        StageName::Documents
    }

    async fn handle(
        &self,
        ctx: &mut StageContext<'_>,
        event: &IncomingEvent,
    ) -> Result<Handled, StageError> {
        let prepared: GoodsPrepared = event.payload()?;
        let order = ctx.order(&prepared.order_id).await?;
        let set = documents_for(&order.order);
        let generated = DocumentsGenerated {
            order_id: prepared.order_id,
            documents: set.documents.clone(),
        };
        ctx.step(&order, OrderState::DocumentsGenerated, &set, &generated)
            .await
    }
}
