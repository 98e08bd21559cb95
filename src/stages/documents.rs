//! documents: produces the handover documents. Goods get a delivery note and a packing list,
//! services a service-delivery record, and every order an invoice. Numbers come from a gap-free
//! sequence per kind; each document is stored as data, rendered as PDF and fingerprinted with
//! SHA-256. Emits `documents.generated`.

use async_trait::async_trait;
use chrono::Utc;
use serde::Serialize;

use crate::db;
use crate::domain::OrderState;
use crate::domain::documents::{self, DocumentContent, Seller};
use crate::domain::events::{DocumentRef, DocumentsGenerated, GoodsPrepared};
use crate::render;
use crate::settings::StageSettings;

use super::{Handled, IncomingEvent, Stage, StageContext, StageError, StageName};

/// The documents stage.
pub struct Documents {
    default_terms: String,
    /// Printed at the top of every document, when configured.
    seller: Option<Seller>,
}

impl Documents {
    /// The stage; orders without delivery terms get `settings.default_delivery_terms`, and
    /// documents name `settings.seller`.
    pub fn new(settings: &StageSettings) -> Self {
        Self {
            default_terms: settings.default_delivery_terms.clone(),
            seller: settings.seller.seller(),
        }
    }
}

/// What documents records for an order.
#[derive(Debug, Serialize)]
pub struct DocumentSet {
    /// The documents produced.
    pub documents: Vec<DocumentRef>,
    /// The invoice's totals.
    pub invoice_totals: documents::Totals,
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
        if prepared.version < order.order.version {
            return Ok(Handled::AlreadyDone);
        }
        if let Some(done) = ctx.readiness(&order, OrderState::DocumentsGenerated)? {
            return Ok(done);
        }
        let skus: Vec<String> = order.order.lines.iter().map(|l| l.sku.clone()).collect();
        let products = ctx.products(&skus).await?;
        let priced = documents::priced_lines(&order.order, &products);
        let issued_at = Utc::now();
        let terms = order
            .order
            .delivery_terms_or(&self.default_terms)
            .to_owned();
        let mut refs = Vec::new();
        for kind in documents::kinds_needed(&order.order, &products) {
            let number = kind.number(db::documents::next_number(ctx.conn(), kind).await?);
            let lines = documents::lines_for(kind, &priced);
            let content = DocumentContent {
                kind,
                number: number.clone(),
                order_id: order.order.order_id.to_string(),
                version: order.order.version,
                customer_id: order.order.customer_id.clone(),
                currency: order.order.currency,
                issued_at,
                totals: documents::totals(&lines),
                lines,
                delivery_terms: terms.clone(),
                seller: self.seller.clone(),
            };
            let pdf = render::pdf(&content);
            let sha256 = crate::digest::sha256_hex(&pdf);
            db::documents::insert(ctx.conn(), &content, &pdf, &sha256).await?;
            refs.push(DocumentRef {
                kind: kind.as_str().into(),
                number,
                sha256,
            });
        }
        let set = DocumentSet {
            documents: refs.clone(),
            invoice_totals: documents::totals(&priced),
        };
        let generated = DocumentsGenerated {
            order_id: prepared.order_id,
            version: order.order.version,
            documents: refs,
        };
        ctx.step(&order, OrderState::DocumentsGenerated, &set, &generated)
            .await
    }
}
