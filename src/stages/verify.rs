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
use crate::domain::events::{OrderVerified, Payload, Undone};
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
            Payload::OrderAmended(amended) => self.amended(&amended.order, view, refs, input.now),
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

    fn amended(
        &self,
        amended: &Order,
        view: &OrderView,
        refs: &Reference,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Plan {
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
        let (release, released) = super::prepare::release_goods(stored, view, Undone::Amended, now);
        let (reverse, reversed) =
            super::revenue::reverse_recognised(stored, view, Undone::Amended, now);
        let mut plan = plan.with(Effect::SupersedeCases {
            version: amended.version,
        });
        plan.effects.extend(release);
        plan.effects.push(Effect::VoidDocuments);
        plan.effects.extend(reverse);
        plan.emit.extend(released.map(Payload::from));
        plan.emit.extend(reversed.map(Payload::from));
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::domain::events::{OrderAmended, OrderPlaced};
    use crate::domain::ledger::{Account, PostingKind};
    use crate::stages::reference::CustomerRecord;

    fn stage() -> Verify {
        Verify::new(&stage_settings())
    }

    fn placed(order: Order) -> Payload {
        Payload::OrderPlaced(OrderPlaced::new(order))
    }

    /// An order changed by `change`, checked against the catalogue changed by `refs`.
    fn verdict(
        change: impl Fn(&mut serde_json::Value),
        refs: impl Fn(&mut Reference),
    ) -> &'static str {
        let mut json = serde_json::to_value(mug_order(2)).unwrap();
        change(&mut json);
        let order: Order = serde_json::from_value(json).unwrap();
        let mut catalogue = catalogue();
        refs(&mut catalogue);
        let payload = placed(order);
        let plan = stage().decide(&input(&payload), &OrderView::default(), &catalogue);
        outcome_name(&plan)
    }

    /// A change to an order's JSON.
    type OrderChange = Box<dyn Fn(&mut serde_json::Value)>;
    /// A change to the reference data.
    type RefsChange = Box<dyn Fn(&mut Reference)>;

    #[test]
    fn each_rule_refuses_with_its_reason() {
        let none = |_: &mut Reference| {};
        let contact_centre = |j: &mut serde_json::Value| {
            j["channel"] = "phone".into();
            j["agent_id"] = "A-1".into();
            j["identity_check"] =
                serde_json::json!({"method": "security_questions", "result": "passed"});
        };
        let cases: Vec<(&str, OrderChange, RefsChange, &str)> = vec![
            ("a good order", Box::new(|_| {}), Box::new(none), "advanced"),
            (
                "unknown customer",
                Box::new(|j| j["customer_id"] = "C-9".into()),
                Box::new(none),
                "unknown_customer",
            ),
            (
                "erased customer",
                Box::new(|_| {}),
                Box::new(|r| r.customers.get_mut("C-1").unwrap().erased_at = Some(now())),
                "customer_erased",
            ),
            (
                "contact centre, all in order",
                Box::new(contact_centre),
                Box::new(none),
                "advanced",
            ),
            (
                "contact centre without identity",
                Box::new(move |j| {
                    contact_centre(j);
                    j.as_object_mut().unwrap().remove("identity_check");
                }),
                Box::new(none),
                "identity_not_verified",
            ),
            (
                "contact centre, unverified record",
                Box::new(contact_centre),
                Box::new(|r| {
                    r.customers
                        .insert(
                            "C-1".into(),
                            CustomerRecord {
                                identity_status: IdentityStatus::Unverified,
                                erased_at: None,
                                payment_terms_days: 30,
                                details: None,
                            },
                        )
                        .map(|_| ())
                        .unwrap_or(())
                }),
                "identity_not_verified",
            ),
            (
                "unknown agent",
                Box::new(move |j| {
                    contact_centre(j);
                    j["agent_id"] = "A-9".into();
                }),
                Box::new(none),
                "unknown_agent",
            ),
            (
                "unknown terms",
                Box::new(|j| j["delivery_terms"] = "NOPE".into()),
                Box::new(none),
                "unknown_delivery_terms",
            ),
            (
                "unknown product",
                Box::new(|j| j["lines"][0]["sku"] = "NOPE".into()),
                Box::new(none),
                "unknown_product",
            ),
            (
                "not for sale",
                Box::new(|_| {}),
                Box::new(|r| r.products.get_mut("MUG").unwrap().sellable = false),
                "product_not_sellable",
            ),
            (
                "other currency",
                Box::new(|j| j["currency"] = "EUR".into()),
                Box::new(none),
                "currency_mismatch",
            ),
            (
                "above list price",
                Box::new(|j| j["lines"][0]["unit_price_minor"] = 1300.into()),
                Box::new(none),
                "price_mismatch",
            ),
            (
                "web discount",
                Box::new(|j| j["lines"][0]["unit_price_minor"] = 1200.into()),
                Box::new(none),
                "price_mismatch",
            ),
            (
                "agent discount within authority",
                Box::new(move |j| {
                    contact_centre(j);
                    j["lines"][0]["unit_price_minor"] = 1150.into();
                }),
                Box::new(none),
                "advanced",
            ),
            (
                "agent discount beyond authority",
                Box::new(move |j| {
                    contact_centre(j);
                    j["lines"][0]["unit_price_minor"] = 1000.into();
                }),
                Box::new(none),
                "beyond_agent_authority",
            ),
            (
                "declared total differs",
                Box::new(|j| j["total_minor"] = 1.into()),
                Box::new(none),
                "total_mismatch",
            ),
            (
                "out of stock",
                Box::new(|_| {}),
                Box::new(|r| {
                    r.stock.insert("MUG".into(), 1);
                }),
                "out_of_stock",
            ),
        ];
        for (name, change, refs, expected) in cases {
            assert_eq!(verdict(change, refs), expected, "{name}");
        }
    }

    #[test]
    fn the_same_order_again_is_done_and_another_with_its_id_goes_to_a_supervisor() {
        let order = mug_order(2);
        let view = view_in(Some(OrderState::Verified), order.clone());
        let same = stage().decide(&input(&placed(order.clone())), &view, &catalogue());
        assert_eq!(same, Plan::already_done());
        let other = stage().decide(&input(&placed(mug_order(3))), &view, &catalogue());
        assert_eq!(outcome_name(&other), "duplicate_order_id");
        assert!(other.effects.is_empty());
        // Refused before and sent again from review: checked again.
        let refused = view_in(Some(OrderState::Placed), order.clone());
        let again = stage().decide(&input(&placed(order)), &refused, &catalogue());
        assert_eq!(outcome_name(&again), "advanced");
    }

    #[test]
    fn an_amendment_undoes_the_old_version_and_verifies_the_new() {
        let mut view = view_in(Some(OrderState::Confirmed), mug_order(2));
        let mut amended = mug_order(3);
        amended.version = 2;
        let payload = Payload::OrderAmended(OrderAmended::new(amended.clone()));
        let plan = stage().decide(&input(&payload), &view, &catalogue());
        assert_eq!(
            outcome_name(&plan),
            "amendment_after_handover",
            "too late once confirmed"
        );
        view.current.as_mut().unwrap().state = OrderState::Prepared;
        view.allocations = vec![("MUG".into(), 2)];
        view.recognised.insert((0, 0), (2500, 500));
        view.ledger
            .insert((Account::Revenue, PostingKind::Recognition), -2500);
        view.ledger
            .insert((Account::TaxPayable, PostingKind::Recognition), -500);
        view.ledger
            .insert((Account::Receivable, PostingKind::Recognition), 3000);
        let plan = stage().decide(&input(&payload), &view, &catalogue());
        assert_eq!(outcome_name(&plan), "advanced");
        for effect in [
            Effect::SupersedeCases { version: 2 },
            Effect::ReleaseStock,
            Effect::VoidDocuments,
            Effect::ReverseRecognitions,
        ] {
            assert!(plan.effects.contains(&effect), "{effect:?}");
        }
        assert!(plan.effects.contains(&Effect::Amend(amended)));
        assert!(plan.effects.contains(&Effect::Move(OrderState::Verified)));
        let stale = Payload::OrderAmended(OrderAmended::new(mug_order(1)));
        assert_eq!(
            stage().decide(&input(&stale), &view, &catalogue()),
            Plan::already_done()
        );
    }
}
