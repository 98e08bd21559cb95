//! verify: checks an order against the internal records (customer, identity, catalogue, price
//! list, agent authority, delivery terms, stock) and emits `order.verified`.
//!
//! `order.amended` (a higher version of the whole order) is verified again; while the order is
//! not yet handed over its allocations are released, its documents voided and any revenue
//! recognised for the old version reversed, and the order starts again from `verified`. An
//! amendment after handover is refused to review; a version not above the current one is stale
//! and ignored. Every version is kept.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db;
use crate::db::orders::StoredOrder;
use crate::domain::catalogue::{
    Agent, Customer, DeliveryTerms, IdentityStatus, Product, ProductKind,
};
use crate::domain::events::{OrderAmended, OrderPlaced, OrderVerified};
use crate::domain::order::IdentityResult;
use crate::domain::{EventType, Order, OrderState, money};
use crate::settings::StageSettings;

use super::{Escalation, Handled, IncomingEvent, Role, Stage, StageContext, StageError, StageName};

/// The verify stage.
pub struct Verify {
    default_terms: String,
}

impl Verify {
    /// The stage, applying `settings.default_delivery_terms` to orders that name none.
    pub fn new(settings: &StageSettings) -> Self {
        Self {
            default_terms: settings.default_delivery_terms.clone(),
        }
    }
}

/// The internal records an order is checked against.
#[derive(Debug, Default)]
pub struct References {
    /// The order's customer (`None` if unknown or erased).
    pub customer: Option<Customer>,
    /// When the customer's personal data was erased, if it was.
    pub customer_erased_at: Option<DateTime<Utc>>,
    /// The order's products, by SKU.
    pub products: HashMap<String, Product>,
    /// Units available, by SKU.
    pub stock: HashMap<String, i64>,
    /// The agent who placed the order.
    pub agent: Option<Agent>,
    /// The order's delivery terms.
    pub terms: Option<DeliveryTerms>,
}

/// What verify records for an order.
#[derive(Debug, Serialize)]
pub struct Verification {
    /// The version verified.
    pub version: u32,
    /// Number of lines.
    pub lines: usize,
    /// Net total in minor units.
    pub total_minor: i64,
    /// The currency.
    pub currency: String,
    /// The delivery terms that apply.
    pub delivery_terms: String,
    /// How identity was confirmed, for contact-centre orders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_method: Option<String>,
    /// The agent, for contact-centre orders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

fn refuse(reason: &'static str, detail: String, role: Role) -> Result<Verification, Escalation> {
    Err(Escalation::new(reason, detail, role))
}

/// Checks an order against the records. The first rule broken decides the escalation.
pub fn check(
    order: &Order,
    refs: &References,
    terms_code: &str,
) -> Result<Verification, Escalation> {
    let customer = match &refs.customer {
        Some(customer) => customer,
        None if refs.customer_erased_at.is_some() => {
            return refuse(
                "customer_erased",
                format!(
                    "customer {}'s personal data was erased; the order cannot be checked against \
                     their record",
                    order.customer_id
                ),
                Role::CustomerService,
            );
        }
        None => {
            return refuse(
                "unknown_customer",
                format!("no customer {}", order.customer_id),
                Role::CustomerService,
            );
        }
    };
    let identity_method = check_identity(order, customer)?;
    let agent = check_agent(order, refs)?;
    if refs.terms.is_none() {
        return refuse(
            "unknown_delivery_terms",
            format!("no delivery terms {terms_code}"),
            Role::CustomerService,
        );
    }
    for i in 0..order.lines.len() {
        check_line(order, i, refs, agent)?;
    }
    let total_minor = order.lines_total_minor().ok_or_else(|| {
        Escalation::new(
            "total_overflow",
            "order total overflows",
            Role::CustomerService,
        )
    })?;
    if let Some(declared) = order.total_minor.filter(|t| *t != total_minor) {
        return refuse(
            "total_mismatch",
            format!("order says total {declared} but its lines add up to {total_minor}"),
            Role::CustomerService,
        );
    }
    if let Some(agent) = agent.filter(|a| total_minor > a.max_order_value_minor) {
        return refuse(
            "beyond_agent_authority",
            format!(
                "order value {} exceeds agent {}'s limit of {}",
                money::format(total_minor, order.currency),
                agent.agent_id,
                money::format(agent.max_order_value_minor, order.currency)
            ),
            Role::Supervisor,
        );
    }
    check_stock(order, refs)?;
    Ok(Verification {
        version: order.version,
        lines: order.lines.len(),
        total_minor,
        currency: order.currency.to_string(),
        delivery_terms: terms_code.to_owned(),
        identity_method,
        agent_id: agent.map(|a| a.agent_id.clone()),
    })
}

fn check_identity(order: &Order, customer: &Customer) -> Result<Option<String>, Escalation> {
    if !order.channel.is_contact_centre() {
        return Ok(None);
    }
    match &order.identity_check {
        Some(check)
            if check.result == IdentityResult::Passed
                && customer.identity_status == IdentityStatus::Verified =>
        {
            Ok(Some(check.method.clone()))
        }
        Some(check) if check.result == IdentityResult::Passed => Err(Escalation::new(
            "identity_not_verified",
            "the customer's record has no established identity",
            Role::Supervisor,
        )),
        Some(check) => Err(Escalation::new(
            "identity_not_verified",
            format!("identity check by {} failed", check.method),
            Role::Supervisor,
        )),
        None => Err(Escalation::new(
            "identity_not_verified",
            "a contact-centre order must say how the customer's identity was confirmed",
            Role::Supervisor,
        )),
    }
}

fn check_agent<'r>(order: &Order, refs: &'r References) -> Result<Option<&'r Agent>, Escalation> {
    match (&order.agent_id, &refs.agent) {
        (None, _) if order.channel.is_contact_centre() => Err(Escalation::new(
            "unknown_agent",
            "a contact-centre order must name the agent who took it",
            Role::Supervisor,
        )),
        (None, _) => Ok(None),
        (Some(id), None) => Err(Escalation::new(
            "unknown_agent",
            format!("no agent {id}"),
            Role::Supervisor,
        )),
        (Some(_), Some(agent)) => Ok(Some(agent)),
    }
}

fn check_line(
    order: &Order,
    i: usize,
    refs: &References,
    agent: Option<&Agent>,
) -> Result<(), Escalation> {
    let line = &order.lines[i];
    let Some(product) = refs.products.get(&line.sku) else {
        return Err(Escalation::new(
            "unknown_product",
            format!("line {i}: no product {}", line.sku),
            Role::CustomerService,
        ));
    };
    if !product.sellable {
        return Err(Escalation::new(
            "product_not_sellable",
            format!("line {i}: {} is not for sale", line.sku),
            Role::CustomerService,
        ));
    }
    if product.currency != order.currency {
        return Err(Escalation::new(
            "currency_mismatch",
            format!(
                "line {i}: {} is priced in {}, the order is in {}",
                line.sku, product.currency, order.currency
            ),
            Role::CustomerService,
        ));
    }
    let (list, unit) = (product.price_minor, line.unit_price_minor);
    if unit == list {
        return Ok(());
    }
    let describe = format!(
        "line {i}: {} at {} against list price {}",
        line.sku,
        money::format(unit, order.currency),
        money::format(list, order.currency)
    );
    match agent {
        _ if unit > list => Err(Escalation::new(
            "price_mismatch",
            describe,
            Role::Supervisor,
        )),
        None => Err(Escalation::new(
            "price_mismatch",
            describe,
            Role::Supervisor,
        )),
        Some(agent) => {
            let discount = money::discount_bp(list, unit);
            if discount <= agent.max_discount_bp {
                Ok(())
            } else {
                Err(Escalation::new(
                    "beyond_agent_authority",
                    format!(
                        "{describe}: a discount of {discount} bp exceeds agent {}'s limit of {} bp",
                        agent.agent_id, agent.max_discount_bp
                    ),
                    Role::Supervisor,
                ))
            }
        }
    }
}

fn check_stock(order: &Order, refs: &References) -> Result<(), Escalation> {
    let mut wanted: HashMap<&str, i64> = HashMap::new();
    for line in &order.lines {
        if refs
            .products
            .get(&line.sku)
            .is_some_and(|p| p.kind == ProductKind::Goods)
        {
            *wanted.entry(line.sku.as_str()).or_default() += i64::from(line.quantity);
        }
    }
    let mut skus: Vec<_> = wanted.into_iter().collect();
    skus.sort();
    for (sku, quantity) in skus {
        let available = refs.stock.get(sku).copied().unwrap_or(0);
        if quantity > available {
            return Err(Escalation::new(
                "out_of_stock",
                format!("{sku}: {quantity} wanted, {available} available"),
                Role::CustomerService,
            ));
        }
    }
    Ok(())
}

/// Loads the records an order is checked against.
pub async fn load_references(
    ctx: &mut StageContext<'_>,
    order: &Order,
    terms_code: &str,
) -> Result<References, StageError> {
    let skus: Vec<String> = order.lines.iter().map(|l| l.sku.clone()).collect();
    let products = ctx.products(&skus).await?;
    let conn = ctx.conn();
    let customer = db::reference::customer(conn, &order.customer_id).await?;
    let customer_erased_at = match customer {
        Some(_) => None,
        None => db::erasure::erased_at(conn, &order.customer_id).await?,
    };
    Ok(References {
        customer,
        customer_erased_at,
        products,
        stock: db::reference::stock(conn, &skus).await?,
        agent: match &order.agent_id {
            Some(id) => db::reference::agent(conn, id).await?,
            None => None,
        },
        terms: db::reference::delivery_terms(conn, terms_code).await?,
    })
}

#[async_trait]
impl Stage for Verify {
    fn name(&self) -> StageName {
        StageName::Verify
    }

    async fn handle(
        &self,
        ctx: &mut StageContext<'_>,
        event: &IncomingEvent,
    ) -> Result<Handled, StageError> {
        match event.event_type {
            EventType::OrderPlaced => {
                self.placed(ctx, event.payload::<OrderPlaced>()?.order)
                    .await
            }
            EventType::OrderAmended => {
                self.amended(ctx, event.payload::<OrderAmended>()?.order)
                    .await
            }
            other => Err(super::unexpected(StageName::Verify, other)),
        }
    }
}

impl Verify {
    async fn placed(
        &self,
        ctx: &mut StageContext<'_>,
        order: Order,
    ) -> Result<Handled, StageError> {
        if !db::orders::insert_placed(ctx.conn(), &order).await? {
            let existing = ctx.order(&order.order_id).await?;
            if existing.order == order && existing.state == OrderState::Placed {
                // Refused before and sent again from review: check it again.
                return self.verify(ctx, existing).await;
            }
            if existing.order == order {
                return Ok(Handled::AlreadyDone);
            }
            return Err(Escalation::new(
                "duplicate_order_id",
                format!(
                    "order {} already exists with different content",
                    order.order_id
                ),
                Role::Supervisor,
            )
            .into());
        }
        db::orders::insert_version(ctx.conn(), &order).await?;
        let stored = StoredOrder {
            state: OrderState::Placed,
            order,
            updated_at: Utc::now(),
        };
        self.verify(ctx, stored).await
    }

    async fn amended(
        &self,
        ctx: &mut StageContext<'_>,
        amended: Order,
    ) -> Result<Handled, StageError> {
        let stored = ctx.order(&amended.order_id).await?;
        if amended.version <= stored.order.version {
            return Ok(Handled::AlreadyDone);
        }
        db::orders::insert_version(ctx.conn(), &amended).await?;
        if !stored.state.can_amend() {
            let refusal = Escalation::new(
                "amendment_after_handover",
                format!(
                    "version {} arrived after the order was {}; it can no longer be changed",
                    amended.version, stored.state
                ),
                Role::Supervisor,
            );
            return ctx.refuse(&amended.order_id, stored.state, refusal).await;
        }
        let id = amended.order_id.as_str().to_owned();
        let conn = ctx.conn();
        db::stock::release_order(conn, &id).await?;
        db::documents::void_order(conn, &id).await?;
        let currency = stored.order.currency.to_string();
        db::ledger::reverse_recognitions(conn, &id, &currency, "order amended").await?;
        if !db::orders::amend(conn, &amended, stored.state, OrderState::Placed).await? {
            return Err(StageError::Transient(anyhow::anyhow!(
                "order {id} changed under a lock"
            )));
        }
        let stored = StoredOrder {
            state: OrderState::Placed,
            order: amended,
            updated_at: Utc::now(),
        };
        self.verify(ctx, stored).await
    }

    async fn verify(
        &self,
        ctx: &mut StageContext<'_>,
        stored: StoredOrder,
    ) -> Result<Handled, StageError> {
        let terms = stored
            .order
            .delivery_terms_or(&self.default_terms)
            .to_owned();
        let refs = load_references(ctx, &stored.order, &terms).await?;
        let verification = match check(&stored.order, &refs, &terms) {
            Ok(v) => v,
            Err(refusal) => {
                return ctx
                    .refuse(&stored.order.order_id, stored.state, refusal)
                    .await;
            }
        };
        let verified = OrderVerified {
            order_id: stored.order.order_id.clone(),
            version: stored.order.version,
            total_minor: verification.total_minor,
            currency: stored.order.currency,
        };
        ctx.step(&stored, OrderState::Verified, &verification, &verified)
            .await
    }
}
