//! revenue: recognises revenue when control passes, line by line, at the point each product's
//! policy names, and keeps a double-entry ledger in minor units.
//!
//! | milestone event            | recognition points reached                          | order must be |
//! |----------------------------|-----------------------------------------------------|---------------|
//! | `order.verified`           | `on_order`                                          | verified or later |
//! | `order.handed_over`        | `on_order`, `on_dispatch`; service periods start   | handed over or later |
//! | `order.delivered`          | ... and `on_delivery`                               | handed over or later |
//! | `order.customer_confirmed` | ... and `on_acceptance` (acceptance implies receipt)| confirmed or later |
//! | `revenue.instalment_due`   | one instalment of a service over its period        | handed over or later |
//!
//! A milestone the order's recorded state does not bear out (forged, or out of place) books
//! nothing and goes to review as `unexpected_event`; one about a cancelled order, or an older
//! version, is ignored.
//!
//! Each recognition posts: debit deferred revenue (as far as payments in advance cover it) and
//! receivable (the rest) for the gross; credit revenue with the net and tax payable with the tax.
//! `payment.captured` posts cash against the receivable, and any excess to deferred revenue; a
//! payment that would take what was paid beyond the order's gross total goes to finance
//! (`overpayment`) instead. The order is complete when it is confirmed and every line is fully
//! recognised.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::domain::catalogue::{OwnershipPasses, Product, ProductKind, RecognitionPoint};
use crate::domain::documents::{DocumentLine, priced_lines};
use crate::domain::events::{
    Payload, PaymentCaptured, PaymentRecorded, RecognisedLine, RevenueRecognised, RevenueReversed,
    Undone,
};
use crate::domain::ledger::{Account, Entry, Posting, PostingKind};
use crate::domain::timer::TimerKind;
use crate::domain::{OrderState, money};
use crate::settings::StageSettings;

use super::plan::{Effect, Outcome, Payment, Plan, Recognition, Timer, TooEarly};
use super::reference::Reference;
use super::view::{Current, OrderView};
use super::{Escalation, Input, Needs, Role, Stage, StageName};

/// The revenue stage.
pub struct Revenue {
    default_terms: String,
}

impl Revenue {
    /// The stage; orders without delivery terms get `settings.default_delivery_terms`.
    pub fn new(settings: &StageSettings) -> Self {
        Self {
            default_terms: settings.default_delivery_terms.clone(),
        }
    }
}

/// When a line's revenue is recognised: its product's policy, except that goods under terms
/// that pass ownership on delivery (like FOB destination) are recognised no earlier than
/// delivery: control does not pass before ownership does (IFRS 15). The handover says when
/// ownership passes; revenue follows it.
pub fn recognition_point(
    product: &Product,
    ownership: Option<OwnershipPasses>,
) -> RecognitionPoint {
    let on_delivery = ownership == Some(OwnershipPasses::OnDelivery);
    match product.kind {
        ProductKind::Goods if on_delivery && product.recognition < RecognitionPoint::OnDelivery => {
            RecognitionPoint::OnDelivery
        }
        _ => product.recognition,
    }
}

/// A milestone: the point it reaches, when control passed, the version it is about (when the
/// event says), and the state the order must have reached for it.
struct Milestone {
    reached: RecognitionPoint,
    at: DateTime<Utc>,
    version: Option<u32>,
    needs: OrderState,
}

/// The points reached once `milestone` is: every point up to it in the order of the pipeline.
pub fn points_reached(milestone: RecognitionPoint) -> Vec<RecognitionPoint> {
    use RecognitionPoint::*;
    [OnOrder, OnDispatch, OnDelivery, OnAcceptance]
        .into_iter()
        .filter(|p| *p <= milestone)
        .collect()
}

/// Instalment `k` of `n` of an amount: equal parts whose sum is exactly the amount.
pub fn instalment(amount: i64, k: u32, n: u32) -> i64 {
    let part = |i: u32| (i128::from(amount) * i128::from(i) / i128::from(n)) as i64;
    part(k) - part(k - 1)
}

impl Stage for Revenue {
    fn name(&self) -> StageName {
        StageName::Revenue
    }

    fn needs(&self) -> Needs {
        Needs {
            recognitions: true,
            ledger: true,
            products: true,
            parties: true,
            payments: true,
            ..Needs::NOTHING
        }
    }

    fn decide(&self, input: &Input<'_>, view: &OrderView, refs: &Reference) -> Plan {
        use RecognitionPoint::*;
        let (reached, at, version, needs) = match input.payload {
            Payload::OrderVerified(e) => (
                OnOrder,
                input.event_time,
                Some(e.version),
                OrderState::Verified,
            ),
            Payload::OrderHandedOver(e) => (
                OnDispatch,
                e.handed_over_at,
                Some(e.version),
                OrderState::HandedOver,
            ),
            Payload::OrderDelivered(e) => {
                (OnDelivery, e.delivered_at, None, OrderState::HandedOver)
            }
            Payload::OrderCustomerConfirmed(e) => {
                (OnAcceptance, e.confirmed_at, None, OrderState::Confirmed)
            }
            Payload::InstalmentDue(_) => return self.instalment_due(input, view, refs),
            Payload::PaymentCaptured(paid) => return payment(paid, view, refs),
            other => return super::unexpected_type(StageName::Revenue, other),
        };
        let milestone = Milestone {
            reached,
            at,
            version,
            needs,
        };
        self.milestone_reached(input, &milestone, view, refs)
    }
}

/// The order, if the event fits its recorded state: `Err` with the plan to return if not.
fn order_for<'v>(
    input: &Input<'_>,
    view: &'v OrderView,
    version: Option<u32>,
    needs: OrderState,
) -> Result<&'v Current, Plan> {
    let Some(current) = &view.current else {
        return Err(super::unknown_order(input.payload));
    };
    match version {
        Some(v) if v < current.order.version => return Err(Plan::already_done()),
        Some(v) if v > current.order.version => {
            let why = format!("version {v} was never recorded");
            return Err(super::unexpected_event(input.payload, why));
        }
        _ => {}
    }
    if current.state.is_ended() {
        return Err(Plan::already_done());
    }
    if current.state < needs {
        let why = format!("the order is {}, not yet {needs}", current.state);
        return Err(super::unexpected_event(input.payload, why));
    }
    Ok(current)
}

impl Revenue {
    fn milestone_reached(
        &self,
        input: &Input<'_>,
        milestone: &Milestone,
        view: &OrderView,
        refs: &Reference,
    ) -> Plan {
        let current = match order_for(input, view, milestone.version, milestone.needs) {
            Ok(current) => current,
            Err(plan) => return plan,
        };
        let lines = priced_lines(&current.order, &refs.products);
        let mut plan = Plan::new(Outcome::Waiting);
        if milestone.reached == RecognitionPoint::OnDispatch {
            plan.effects
                .extend(instalment_timers(&lines, &refs.products, milestone.at));
        }
        let points = points_reached(milestone.reached);
        let ownership = self.ownership(current, refs);
        let due: Vec<(&DocumentLine, u32)> = lines
            .iter()
            .filter(|l| {
                refs.products
                    .get(&l.sku)
                    .is_some_and(|p| points.contains(&recognition_point(p, ownership)))
            })
            .map(|l| (l, 0))
            .collect();
        let recognised = Recognised {
            basis: milestone.reached,
            at: milestone.at,
            evidence: input.message_id,
            ownership,
        };
        let new = recognised.lines(&due, view, refs);
        finish(plan, current, view, refs, &lines, new, milestone.reached)
    }

    fn instalment_due(&self, input: &Input<'_>, view: &OrderView, refs: &Reference) -> Plan {
        let Payload::InstalmentDue(due) = input.payload else {
            return super::unexpected_type(StageName::Revenue, input.payload);
        };
        let current = match order_for(input, view, None, OrderState::HandedOver) {
            Ok(current) => current,
            Err(plan) => return plan,
        };
        let lines = priced_lines(&current.order, &refs.products);
        let Some(line) = lines.iter().find(|l| l.line_no == due.line_no) else {
            return Plan::already_done();
        };
        let recognised = Recognised {
            basis: RecognitionPoint::OverServicePeriod,
            at: due.due_at,
            evidence: input.message_id,
            ownership: self.ownership(current, refs),
        };
        let new = recognised.lines(&[(line, due.instalment)], view, refs);
        let basis = RecognitionPoint::OverServicePeriod;
        finish(
            Plan::new(Outcome::Waiting),
            current,
            view,
            refs,
            &lines,
            new,
            basis,
        )
    }

    /// When the order's delivery terms pass ownership, if the terms are known.
    fn ownership(&self, current: &Current, refs: &Reference) -> Option<OwnershipPasses> {
        let code = current.order.delivery_terms_or(&self.default_terms);
        refs.terms.get(code).map(|t| t.ownership_passes)
    }
}

/// Timers for every instalment of every service recognised over its period, from `start`.
fn instalment_timers(
    lines: &[DocumentLine],
    products: &HashMap<String, Product>,
    start: DateTime<Utc>,
) -> Vec<Effect> {
    let mut timers = Vec::new();
    for line in lines {
        let Some(product) = products.get(&line.sku) else {
            continue;
        };
        let (Some(period), Some(n)) = (product.service_period_secs, product.service_instalments)
        else {
            continue;
        };
        if product.recognition != RecognitionPoint::OverServicePeriod || n == 0 {
            continue;
        }
        for k in 1..=n {
            let millis = i128::from(period) * 1000 * i128::from(k) / i128::from(n);
            let offset = chrono::Duration::milliseconds(i64::try_from(millis).unwrap_or(i64::MAX));
            timers.push(Effect::Schedule(Timer {
                kind: TimerKind::InstalmentDue,
                due_at: start.checked_add_signed(offset).unwrap_or(start),
                payload: serde_json::json!({ "line_no": line.line_no, "instalment": k }),
            }));
        }
    }
    timers
}

/// The amount and tax of one line (whole, or one instalment of a service over its period).
fn portion(line: &DocumentLine, instalment_no: u32, product: Option<&Product>) -> (i64, i64) {
    match (instalment_no, product.and_then(|p| p.service_instalments)) {
        (0, _) | (_, None) | (_, Some(0)) => (line.net_minor, line.tax_minor),
        (k, Some(n)) => (
            instalment(line.net_minor, k, n),
            instalment(line.tax_minor, k, n),
        ),
    }
}

/// What a milestone or instalment recognises: on what basis, when, on what evidence, and under
/// which ownership terms.
struct Recognised<'a> {
    basis: RecognitionPoint,
    at: DateTime<Utc>,
    evidence: &'a str,
    ownership: Option<OwnershipPasses>,
}

impl Recognised<'_> {
    /// The (line, instalment) pairs not yet recognised, as recognitions.
    fn lines(
        &self,
        due: &[(&DocumentLine, u32)],
        view: &OrderView,
        refs: &Reference,
    ) -> Vec<(Recognition, String)> {
        due.iter()
            .filter(|(line, k)| !view.recognised.contains_key(&(line.line_no, *k)))
            .map(|(line, k)| {
                let product = refs.products.get(&line.sku);
                let (amount, tax) = portion(line, *k, product);
                let point = product.map_or(self.basis, |p| recognition_point(p, self.ownership));
                let recognition = Recognition {
                    line_no: line.line_no,
                    instalment: *k,
                    amount_minor: amount,
                    tax_minor: tax,
                    basis: point.as_str(),
                    control_passed_at: self.at,
                    evidence: self.evidence.to_owned(),
                };
                (recognition, line.sku.clone())
            })
            .collect()
    }
}

/// Books what was recognised (ledger and `revenue.recognised`), completes the order if it is
/// now fully recognised, and records what this delivery did.
fn finish(
    mut plan: Plan,
    current: &Current,
    view: &OrderView,
    refs: &Reference,
    lines: &[DocumentLine],
    new: Vec<(Recognition, String)>,
    milestone: RecognitionPoint,
) -> Plan {
    let net: i64 = new.iter().map(|(r, _)| r.amount_minor).sum();
    let tax: i64 = new.iter().map(|(r, _)| r.tax_minor).sum();
    let event = (!new.is_empty()).then(|| {
        let first = &new[0].0;
        RevenueRecognised {
            order_id: current.order.order_id.clone(),
            lines: new
                .iter()
                .map(|(r, sku)| RecognisedLine {
                    line_no: r.line_no,
                    sku: sku.clone(),
                    instalment: r.instalment,
                    amount_minor: r.amount_minor,
                    tax_minor: r.tax_minor,
                    recognition: Some(basis_of(r.basis)),
                })
                .collect(),
            amount_minor: net,
            tax_minor: tax,
            currency: current.order.currency,
            basis: milestone,
            control_passed_at: first.control_passed_at,
            evidence_event_ids: vec![first.evidence.clone()],
            version: current.order.version,
        }
    });
    let done: Vec<(u32, u32)> = view
        .recognised
        .keys()
        .copied()
        .chain(new.iter().map(|(r, _)| (r.line_no, r.instalment)))
        .collect();
    for (recognition, _) in new {
        plan = plan.with(Effect::Recognise(recognition));
    }
    if let Some(event) = &event {
        let basis = event.basis;
        plan = plan.with(Effect::Post(recognition_posting(view, net, tax, basis)));
    }
    let completed =
        current.state == OrderState::Confirmed && fully_recognised(lines, &refs.products, &done);
    if completed {
        plan = plan.with(Effect::Move(OrderState::Completed));
    }
    if event.is_none() && !completed {
        return plan;
    }
    let state = if completed {
        OrderState::Completed
    } else {
        current.state
    };
    let detail = serde_json::json!({
        "recognised": event,
        "revenue_to_date_minor": -view.balance(Account::Revenue) + net,
        "completed": completed,
    });
    plan.outcome = Outcome::Advanced;
    let plan = plan.recording(state, &detail);
    match event {
        Some(event) => plan.emitting(event),
        None => plan,
    }
}

fn basis_of(name: &str) -> RecognitionPoint {
    use RecognitionPoint::*;
    [
        OnOrder,
        OnDispatch,
        OnDelivery,
        OnAcceptance,
        OverServicePeriod,
    ]
    .into_iter()
    .find(|p| p.as_str() == name)
    .unwrap_or(OnAcceptance)
}

/// Whether every line (and every instalment of a service over its period) is recognised.
fn fully_recognised(
    lines: &[DocumentLine],
    products: &HashMap<String, Product>,
    done: &[(u32, u32)],
) -> bool {
    lines.iter().all(|line| {
        let over_period = products.get(&line.sku).and_then(|p| {
            (p.recognition == RecognitionPoint::OverServicePeriod).then_some(p.service_instalments?)
        });
        match over_period {
            Some(n) => (1..=n).all(|k| done.contains(&(line.line_no, k))),
            None => done.contains(&(line.line_no, 0)),
        }
    })
}

/// Debit deferred revenue (what advance payments cover) and receivable (the rest) with the
/// gross; credit revenue with the net and tax payable with the tax.
fn recognition_posting(view: &OrderView, net: i64, tax: i64, basis: RecognitionPoint) -> Posting {
    let deferred = -view.balance(Account::DeferredRevenue);
    let gross = net + tax;
    let from_deferred = deferred.clamp(0, gross);
    let entries = vec![
        Entry::Debit(Account::DeferredRevenue, from_deferred),
        Entry::Debit(Account::Receivable, gross - from_deferred),
        Entry::Credit(Account::Revenue, net),
        Entry::Credit(Account::TaxPayable, tax),
    ];
    let memo = format!("recognised {}", basis.as_str());
    Posting::new(PostingKind::Recognition, memo, entries).expect("a recognition balances")
}

/// The effects that take back every recognition of the order: the recognitions marked reversed,
/// a posting that returns revenue, tax and what they were booked against to zero, and the
/// `revenue.reversed` that tells finance. Nothing when nothing is recognised. For amendments
/// and cancellations; `current` is the order as it was.
pub fn reverse_recognised(
    current: &Current,
    view: &OrderView,
    reason: Undone,
    now: DateTime<Utc>,
) -> (Vec<Effect>, Option<RevenueReversed>) {
    let mut nets: Vec<(Account, i64)> = Vec::new();
    for account in Account::ALL {
        let net: i64 = [PostingKind::Recognition, PostingKind::Reversal]
            .iter()
            .map(|kind| view.ledger.get(&(account, *kind)).copied().unwrap_or(0))
            .sum();
        if net != 0 {
            nets.push((account, net));
        }
    }
    let mut effects = Vec::new();
    if !view.recognised.is_empty() {
        effects.push(Effect::ReverseRecognitions);
    }
    if !nets.is_empty() {
        let memo = match reason {
            Undone::Amended => "reversal: order amended".to_owned(),
            Undone::Cancelled => "reversal: order cancelled".to_owned(),
        };
        let entries = nets
            .into_iter()
            .map(|(account, net)| match net > 0 {
                true => Entry::Credit(account, net),
                false => Entry::Debit(account, -net),
            })
            .collect();
        let posting = Posting::new(PostingKind::Reversal, memo, entries)
            .expect("reversing balanced postings balances");
        effects.push(Effect::Post(posting));
    }
    if view.recognised.is_empty() {
        return (effects, None);
    }
    let mut lines: Vec<RecognisedLine> = view
        .recognised
        .iter()
        .map(|((line_no, instalment), (amount, tax))| RecognisedLine {
            line_no: *line_no,
            sku: current
                .order
                .lines
                .get(*line_no as usize)
                .map_or_else(String::new, |l| l.sku.clone()),
            instalment: *instalment,
            amount_minor: *amount,
            tax_minor: *tax,
            recognition: None,
        })
        .collect();
    lines.sort_by_key(|l| (l.line_no, l.instalment));
    let reversed = RevenueReversed {
        order_id: current.order.order_id.clone(),
        version: current.order.version,
        reason,
        amount_minor: lines.iter().map(|l| l.amount_minor).sum(),
        tax_minor: lines.iter().map(|l| l.tax_minor).sum(),
        lines,
        currency: current.order.currency,
        reversed_at: now,
    };
    (effects, Some(reversed))
}

/// Records a payment: cash against the receivable, any excess as deferred revenue. A payment
/// may be captured before its order reaches the pipeline: it is tried again later, and goes to
/// finance only if the order never comes.
fn payment(paid: &PaymentCaptured, view: &OrderView, refs: &Reference) -> Plan {
    let Some(current) = &view.current else {
        return Plan::new(Outcome::TooEarly(payment_before_order(paid)));
    };
    let finance =
        |reason, detail: String| Plan::escalate(Escalation::new(reason, detail, Role::Finance));
    let order = &current.order;
    if paid.currency != order.currency {
        let detail = format!(
            "payment {} of {} {} does not fit order in {}",
            paid.payment_reference, paid.amount_minor, paid.currency, order.currency
        );
        return finance("payment_mismatch", detail);
    }
    if let Some(known) = refs.payments.get(&paid.payment_reference) {
        if known.order_id == order.order_id.as_str() && known.amount_minor == paid.amount_minor {
            return Plan::already_done();
        }
        let detail = format!(
            "payment reference {} was already recorded for order {} ({})",
            paid.payment_reference,
            known.order_id,
            money::format(known.amount_minor, order.currency)
        );
        return finance("duplicate_payment_reference", detail);
    }
    let gross: i64 = priced_lines(order, &refs.products)
        .iter()
        .map(|l| l.net_minor + l.tax_minor)
        .sum();
    let paid_before = view.balance(Account::Cash);
    if paid_before + paid.amount_minor > gross {
        let detail = format!(
            "payment {} of {} would bring what was paid for order {} to {}, above its total of {}",
            paid.payment_reference,
            money::format(paid.amount_minor, order.currency),
            order.order_id,
            money::format(paid_before + paid.amount_minor, order.currency),
            money::format(gross, order.currency)
        );
        return finance("overpayment", detail);
    }
    let receivable = view.balance(Account::Receivable);
    let against_receivable = receivable.clamp(0, paid.amount_minor);
    let entries = vec![
        Entry::Debit(Account::Cash, paid.amount_minor),
        Entry::Credit(Account::Receivable, against_receivable),
        Entry::Credit(
            Account::DeferredRevenue,
            paid.amount_minor - against_receivable,
        ),
    ];
    let posting = Posting::new(PostingKind::Payment, "payment captured", entries)
        .expect("a payment balances");
    let detail = serde_json::json!({
        "payment_reference": paid.payment_reference,
        "amount_minor": paid.amount_minor,
    });
    let recorded = PaymentRecorded {
        order_id: order.order_id.clone(),
        version: order.version,
        payment_reference: paid.payment_reference.clone(),
        amount_minor: paid.amount_minor,
        against_receivable_minor: against_receivable,
        deferred_minor: paid.amount_minor - against_receivable,
        currency: paid.currency,
        captured_at: paid.captured_at,
    };
    Plan::new(Outcome::Waiting)
        .with(Effect::RecordPayment(Payment {
            reference: paid.payment_reference.clone(),
            amount_minor: paid.amount_minor,
            currency: paid.currency,
            captured_at: paid.captured_at,
        }))
        .with(Effect::Post(posting))
        .recording(current.state, &detail)
        .emitting(recorded)
}

fn payment_before_order(paid: &PaymentCaptured) -> TooEarly {
    TooEarly {
        detail: format!(
            "payment {} came before order {}",
            paid.payment_reference, paid.order_id
        ),
        if_never: Escalation::new(
            "unknown_order",
            format!(
                "payment {} of {} names order {}, which never reached the pipeline",
                paid.payment_reference,
                money::format(paid.amount_minor, paid.currency),
                paid.order_id
            ),
            Role::Finance,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::domain::events::{ConfirmationBasis, OrderCustomerConfirmed, OrderVerified};

    fn stage() -> Revenue {
        Revenue::new(&stage_settings())
    }

    #[test]
    fn instalments_add_up_exactly() {
        for (amount, n) in [(1000, 3), (1, 12), (99_999, 7), (0, 4)] {
            let sum: i64 = (1..=n).map(|k| instalment(amount, k, n)).sum();
            assert_eq!(sum, amount);
        }
        assert_eq!(instalment(1000, 1, 3), 333);
    }

    #[test]
    fn each_milestone_reaches_the_points_before_it() {
        use RecognitionPoint::*;
        assert_eq!(points_reached(OnOrder), vec![OnOrder]);
        assert_eq!(
            points_reached(OnAcceptance),
            vec![OnOrder, OnDispatch, OnDelivery, OnAcceptance]
        );
    }

    fn accepted() -> Payload {
        Payload::OrderCustomerConfirmed(OrderCustomerConfirmed {
            order_id: order_id(),
            basis: ConfirmationBasis::Explicit,
            confirmed_at: now(),
        })
    }

    fn posted(plan: &Plan) -> i64 {
        plan.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Post(p) => Some(
                    p.entries
                        .iter()
                        .filter_map(|e| match e {
                            Entry::Credit(Account::Revenue, m) => Some(*m),
                            _ => None,
                        })
                        .sum::<i64>(),
                ),
                _ => None,
            })
            .sum()
    }

    #[test]
    fn a_milestone_the_order_has_not_reached_books_nothing() {
        let cases = [
            (Some(OrderState::Placed), "unexpected_event", 0),
            (Some(OrderState::HandedOver), "unexpected_event", 0),
            (Some(OrderState::Cancelled), "already_done", 0),
            (None, "unknown_order", 0),
            (Some(OrderState::Confirmed), "advanced", 2500),
        ];
        for (state, expect, revenue) in cases {
            let view = view_in(state, mug_order(2));
            let payload = accepted();
            let plan = stage().decide(&input(&payload), &view, &catalogue());
            assert_eq!(outcome_name(&plan), expect, "{state:?}");
            assert_eq!(posted(&plan), revenue, "{state:?}");
        }
    }

    #[test]
    fn acceptance_completes_a_confirmed_order_once() {
        let mut view = view_in(Some(OrderState::Confirmed), mug_order(2));
        let payload = accepted();
        let mut refs = catalogue();
        let plan = stage().decide(&input(&payload), &view, &refs);
        assert!(plan.effects.contains(&Effect::Move(OrderState::Completed)));
        assert_eq!(plan.emit.len(), 1);
        for effect in &plan.effects {
            view.apply(effect, "m", &mut refs);
        }
        let again = stage().decide(&input(&payload), &view, &refs);
        assert_eq!(posted(&again), 0, "recognised once");
    }

    #[test]
    fn payments_book_against_the_receivable_and_never_beyond_the_total() {
        let paid = |amount: i64, reference: &str| {
            Payload::PaymentCaptured(PaymentCaptured {
                order_id: order_id(),
                payment_reference: reference.into(),
                amount_minor: amount,
                currency: gbp(),
                captured_at: now(),
            })
        };
        let view = view_in(Some(OrderState::Verified), mug_order(2));
        let refs = catalogue();
        // Two mugs: 2500 net + 500 tax.
        assert_eq!(
            outcome_name(&stage().decide(&input(&paid(3000, "P1")), &view, &refs)),
            "waiting"
        );
        assert_eq!(
            outcome_name(&stage().decide(&input(&paid(3001, "P1")), &view, &refs)),
            "overpayment"
        );
        assert_eq!(
            outcome_name(&stage().decide(&input(&paid(i64::MAX, "P1")), &view, &refs)),
            "overpayment"
        );
        let early = stage().decide(&input(&paid(10, "P2")), &view_in(None, mug_order(1)), &refs);
        assert!(matches!(early.outcome, Outcome::TooEarly(_)));
    }

    #[test]
    fn amendments_reverse_exactly_what_was_recognised() {
        let mut view = view_in(Some(OrderState::Verified), mug_order(2));
        let mut refs = catalogue();
        refs.products.get_mut("MUG").unwrap().recognition = RecognitionPoint::OnOrder;
        let verified = Payload::OrderVerified(OrderVerified {
            order_id: order_id(),
            version: 1,
            total_minor: 2500,
            currency: gbp(),
        });
        let plan = stage().decide(&input(&verified), &view, &refs);
        for effect in &plan.effects {
            view.apply(effect, "m", &mut refs);
        }
        assert_eq!(view.balance(Account::Revenue), -2500);
        let current = view.current.clone().unwrap();
        let (effects, event) = reverse_recognised(&current, &view, Undone::Amended, now());
        let event = event.expect("a reversal is announced");
        assert_eq!(
            (event.amount_minor, event.tax_minor, event.version),
            (2500, 500, 1)
        );
        for effect in effects {
            view.apply(&effect, "m", &mut refs);
        }
        for account in Account::ALL {
            assert_eq!(view.balance(account), 0, "{account}");
        }
        assert!(view.recognised.is_empty());
    }

    #[test]
    fn goods_under_fob_destination_wait_for_delivery() {
        let refs = catalogue();
        let mug = refs.products.get("MUG").unwrap().clone();
        let install = refs.products.get("INSTALL").unwrap().clone();
        use RecognitionPoint::*;
        let (dispatch, delivery) = (OwnershipPasses::OnDispatch, OwnershipPasses::OnDelivery);
        let cases = [
            (OnDispatch, Some(delivery), OnDelivery),
            (OnDispatch, Some(dispatch), OnDispatch),
            (OnOrder, Some(delivery), OnDelivery),
            (OnOrder, None, OnOrder),
            (OnAcceptance, Some(delivery), OnAcceptance),
        ];
        for (policy, terms, expected) in cases {
            let mut goods = mug.clone();
            goods.recognition = policy;
            assert_eq!(
                recognition_point(&goods, terms),
                expected,
                "{policy:?} {terms:?}"
            );
        }
        let mut service = install;
        service.recognition = OnOrder;
        assert_eq!(
            recognition_point(&service, Some(delivery)),
            OnOrder,
            "services keep theirs"
        );

        // Dispatched under FOB destination: nothing recognised until delivery.
        let mut order = mug_order(2);
        order.delivery_terms = Some("FOB_DESTINATION".into());
        let view = view_in(Some(OrderState::HandedOver), order);
        let mut refs = catalogue();
        refs.products.get_mut("MUG").unwrap().recognition = OnDispatch;
        let handed = Payload::OrderHandedOver(crate::domain::events::OrderHandedOver {
            order_id: order_id(),
            version: 1,
            carrier: "DPD".into(),
            tracking_reference: "D1".into(),
            handed_over_at: now(),
            delivery_terms: "FOB_DESTINATION".into(),
            ownership_passes: delivery,
            ownership_passed_at: None,
            services_delivered: Vec::new(),
        });
        assert_eq!(posted(&stage().decide(&input(&handed), &view, &refs)), 0);
        let delivered = Payload::OrderDelivered(crate::domain::events::OrderDelivered {
            order_id: order_id(),
            delivered_at: now(),
        });
        let plan = stage().decide(&input(&delivered), &view, &refs);
        assert_eq!(posted(&plan), 2500);
        let Some(Payload::RevenueRecognised(event)) = plan.emit.first() else {
            panic!()
        };
        assert_eq!(event.lines[0].recognition, Some(OnDelivery));
        assert_eq!(event.basis, OnDelivery);
    }

    #[test]
    fn a_booked_payment_is_announced() {
        let view = view_in(Some(OrderState::Verified), mug_order(2));
        let paid = Payload::PaymentCaptured(PaymentCaptured {
            order_id: order_id(),
            payment_reference: "P1".into(),
            amount_minor: 1000,
            currency: gbp(),
            captured_at: now(),
        });
        let plan = stage().decide(&input(&paid), &view, &catalogue());
        let Some(Payload::PaymentRecorded(recorded)) = plan.emit.first() else {
            panic!("{plan:?}")
        };
        assert_eq!(
            (recorded.amount_minor, recorded.deferred_minor),
            (1000, 1000)
        );
    }
}
