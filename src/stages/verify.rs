//! verify: checks an order against the internal records (customer, identity, catalogue, price
//! list, agent authority, delivery terms, stock) and emits `order.verified`.
//!
//! `order.amended` (a higher version of the whole order) is verified again; while the order is
//! not yet handed over its allocations are released, its documents voided and any revenue
//! recognised for the old version reversed, and the order starts again from `placed`. An
//! amendment after handover is refused to review; a version not above the current one is stale
//! and ignored. Every version is kept.

use std::collections::HashMap;

use serde::Serialize;

use crate::domain::catalogue::{Agent, IdentityStatus, ProductKind};
use crate::domain::events::{OrderVerified, Payload};
use crate::domain::order::IdentityResult;
use crate::domain::{Order, OrderState, money};
use crate::settings::StageSettings;

use super::plan::{Effect, Outcome, Plan};
use super::reference::Reference;
use super::view::{Current, OrderView};
use super::{Escalation, Input, Needs, Role, Stage, StageName, StockUse};

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

impl Stage for Verify {
    fn name(&self) -> StageName {
        StageName::Verify
    }

    fn needs(&self) -> Needs {
        Needs {
            allocations: true,
            documents: true,
            recognitions: true,
            ledger: true,
            products: true,
            parties: true,
            stock: StockUse::Read,
            ..Needs::NOTHING
        }
    }

    fn decide(&self, input: &Input<'_>, view: &OrderView, refs: &Reference) -> Plan {
        match input.payload {
            Payload::OrderPlaced(placed) => self.placed(&placed.order, view, refs),
            Payload::OrderAmended(amended) => self.amended(&amended.order, view, refs),
            other => super::unexpected_type(StageName::Verify, other),
        }
    }
}

impl Verify {
    fn placed(&self, order: &Order, view: &OrderView, refs: &Reference) -> Plan {
        match &view.current {
            // Refused before and sent again from review: check it again.
            Some(existing) if existing.order == *order && existing.state == OrderState::Placed => {
                self.verify(existing, refs, Plan::new(Outcome::Advanced))
            }
            Some(existing) if existing.order == *order => Plan::already_done(),
            Some(_) => Plan::escalate(Escalation::new(
                "duplicate_order_id",
                format!(
                    "order {} already exists with different content",
                    order.order_id
                ),
                Role::Supervisor,
            )),
            None => {
                let plan = Plan::new(Outcome::Advanced)
                    .with(Effect::Place(order.clone()))
                    .with(Effect::KeepVersion(order.clone()));
                let placed = Current {
                    state: OrderState::Placed,
                    order: order.clone(),
                };
                self.verify(&placed, refs, plan)
            }
        }
    }

    fn amended(&self, amended: &Order, view: &OrderView, refs: &Reference) -> Plan {
        let Some(stored) = &view.current else {
            return Plan::escalate(Escalation::new(
                "unknown_order",
                format!("order {} does not exist", amended.order_id),
                Role::Operations,
            ));
        };
        if amended.version <= stored.order.version {
            return Plan::already_done();
        }
        let plan = Plan::new(Outcome::Advanced).with(Effect::KeepVersion(amended.clone()));
        if !stored.state.can_amend() {
            let refusal = Escalation::new(
                "amendment_after_handover",
                format!(
                    "version {} arrived after the order was {}; it can no longer be changed",
                    amended.version, stored.state
                ),
                Role::Supervisor,
            );
            return plan.refused(stored.state, refusal);
        }
        let mut plan = plan.with(Effect::ReleaseStock).with(Effect::VoidDocuments);
        for effect in super::revenue::reverse_recognised(view, "order amended") {
            plan = plan.with(effect);
        }
        let plan = plan.with(Effect::Amend(amended.clone()));
        let restarted = Current {
            state: OrderState::Placed,
            order: amended.clone(),
        };
        self.verify(&restarted, refs, plan)
    }

    fn verify(&self, stored: &Current, refs: &Reference, plan: Plan) -> Plan {
        let order = &stored.order;
        let terms = order.delivery_terms_or(&self.default_terms);
        match check(order, refs, terms) {
            Err(refusal) => plan.refused(stored.state, refusal),
            Ok(verification) => {
                let verified = OrderVerified {
                    order_id: order.order_id.clone(),
                    version: order.version,
                    total_minor: verification.total_minor,
                    currency: order.currency,
                };
                plan.with(Effect::Move(OrderState::Verified))
                    .recording(OrderState::Verified, &verification)
                    .emitting(verified)
            }
        }
    }
}

fn refuse(reason: &'static str, detail: String, role: Role) -> Result<Verification, Escalation> {
    Err(Escalation::new(reason, detail, role))
}

/// Checks an order against the records. The first rule broken decides the escalation.
pub fn check(
    order: &Order,
    refs: &Reference,
    terms_code: &str,
) -> Result<Verification, Escalation> {
    let customer = match refs.customers.get(&order.customer_id) {
        Some(customer) if customer.erased_at.is_none() => customer.identity_status,
        Some(_) => {
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
    if !refs.terms.contains_key(terms_code) {
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

fn check_identity(order: &Order, customer: IdentityStatus) -> Result<Option<String>, Escalation> {
    if !order.channel.is_contact_centre() {
        return Ok(None);
    }
    match &order.identity_check {
        Some(check)
            if check.result == IdentityResult::Passed && customer == IdentityStatus::Verified =>
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

fn check_agent<'r>(order: &Order, refs: &'r Reference) -> Result<Option<&'r Agent>, Escalation> {
    let agent = order.agent_id.as_ref().and_then(|id| refs.agents.get(id));
    match (&order.agent_id, agent) {
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
    refs: &Reference,
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

fn check_stock(order: &Order, refs: &Reference) -> Result<(), Escalation> {
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
        let available = refs.available(sku);
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
