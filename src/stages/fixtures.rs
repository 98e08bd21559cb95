//! Shared fixtures for the stages' table-driven tests: a small catalogue and orders in any state.

use chrono::{DateTime, TimeZone, Utc};

use crate::domain::catalogue::{
    Agent, DeliveryTerms, IdentityStatus, OwnershipPasses, Product, ProductKind, RecognitionPoint,
    Related, Relation,
};
use crate::domain::events::Payload;
use crate::domain::{Currency, Order, OrderId, OrderState};
use crate::settings::{SellerSettings, StageSettings};

use super::Input;
use super::plan::{Outcome, Plan};
use super::reference::{CustomerDetails, CustomerRecord, Reference};
use super::view::{Current, OrderView};

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap()
}

pub fn order_id() -> OrderId {
    OrderId::parse("ORD-1").unwrap()
}

pub fn gbp() -> Currency {
    Currency::parse("GBP").unwrap()
}

pub fn stage_settings() -> StageSettings {
    StageSettings {
        default_delivery_terms: "FOB_SHIPPING_POINT".into(),
        acceptance_window_secs: 86_400,
        seller: SellerSettings::default(),
    }
}

/// A web order for customer C-1 with these (sku, quantity, unit price) lines.
pub fn order_of(lines: &[(&str, u32, i64)]) -> Order {
    let lines: Vec<_> = lines
        .iter()
        .map(|(sku, q, p)| serde_json::json!({"sku": sku, "quantity": q, "unit_price_minor": p}))
        .collect();
    serde_json::from_value(serde_json::json!({
        "order_id": "ORD-1", "customer_id": "C-1", "channel": "web", "currency": "GBP",
        "placed_at": "2026-11-20T09:00:00Z", "lines": lines,
    }))
    .unwrap()
}

/// An order of `quantity` mugs at the list price.
pub fn mug_order(quantity: u32) -> Order {
    order_of(&[("MUG", quantity, 1250)])
}

/// A view of `order` in `state` (no order at all for `None`), with no history.
pub fn view_in(state: Option<OrderState>, order: Order) -> OrderView {
    OrderView {
        current: state.map(|state| Current { state, order }),
        ..OrderView::default()
    }
}

fn product(sku: &str, kind: ProductKind, price: i64, recognition: RecognitionPoint) -> Product {
    Product {
        sku: sku.into(),
        name: format!("{sku} name"),
        kind,
        sellable: true,
        price_minor: price,
        currency: gbp(),
        tax_rate_bp: 2000,
        preparation_checks: vec!["inspected".into()],
        recognition,
        service_period_secs: None,
        service_instalments: None,
        lead_time_days: 3,
        related: Vec::new(),
        weight_grams: (kind == ProductKind::Goods).then_some(350),
    }
}

/// MUG (goods, 12.50, recognised on acceptance, cross-sells SAUCER), SAUCER, INSTALL (a
/// service); customer C-1 (verified); agent A-1; both FOB terms; 10 mugs in stock.
pub fn catalogue() -> Reference {
    let mut mug = product(
        "MUG",
        ProductKind::Goods,
        1250,
        RecognitionPoint::OnAcceptance,
    );
    mug.related = vec![Related {
        sku: "SAUCER".into(),
        relation: Relation::CrossSell,
    }];
    let saucer = product(
        "SAUCER",
        ProductKind::Goods,
        500,
        RecognitionPoint::OnAcceptance,
    );
    let install = product(
        "INSTALL",
        ProductKind::Service,
        4500,
        RecognitionPoint::OnAcceptance,
    );
    let mut refs = Reference::default();
    for p in [mug, saucer, install] {
        refs.products.insert(p.sku.clone(), p);
    }
    refs.customers.insert(
        "C-1".into(),
        CustomerRecord {
            identity_status: IdentityStatus::Verified,
            erased_at: None,
            payment_terms_days: 30,
            details: Some(CustomerDetails {
                name: Some("Ada Lovelace".into()),
                billing_address: Some("12 St James's Square, London SW1Y 4JH".into()),
                delivery_address: None,
            }),
        },
    );
    refs.agents.insert(
        "A-1".into(),
        Agent {
            agent_id: "A-1".into(),
            name: "Agent".into(),
            max_discount_bp: 1000,
            max_order_value_minor: 100_000,
        },
    );
    for (code, passes) in [
        ("FOB_SHIPPING_POINT", OwnershipPasses::OnDispatch),
        ("FOB_DESTINATION", OwnershipPasses::OnDelivery),
    ] {
        let terms = DeliveryTerms {
            code: code.into(),
            description: code.into(),
            ownership_passes: passes,
            carrier: "Royal Mail".into(),
            carrier_service: Some("Tracked 48".into()),
        };
        refs.terms.insert(code.into(), terms);
    }
    refs.stock.insert("MUG".into(), 10);
    refs
}

/// The input for `payload`, now.
pub fn input(payload: &Payload) -> Input<'_> {
    Input {
        message_id: "msg-1",
        payload,
        event_time: now(),
        now: now(),
    }
}

/// A plan's outcome as one word: the reason of an escalation, else the outcome's name.
pub fn outcome_name(plan: &Plan) -> &'static str {
    match &plan.outcome {
        Outcome::Advanced => "advanced",
        Outcome::Waiting => "waiting",
        Outcome::AlreadyDone => "already_done",
        Outcome::TooEarly(_) => "too_early",
        Outcome::Escalated(e) => e.reason,
    }
}
