//! revenue: recognises revenue when control passes, line by line, at the point each product's
//! policy names, and keeps a double-entry ledger in minor units.
//!
//! | milestone event            | recognition points reached                          |
//! |----------------------------|-----------------------------------------------------|
//! | `order.verified`           | `on_order`                                          |
//! | `order.handed_over`        | `on_order`, `on_dispatch`; service periods start   |
//! | `order.delivered`          | ... and `on_delivery`                               |
//! | `order.customer_confirmed` | ... and `on_acceptance` (acceptance implies receipt)|
//! | `revenue.instalment_due`   | one instalment of a service over its period        |
//!
//! Each recognition posts: debit deferred revenue (as far as payments in advance cover it) and
//! receivable (the rest) for the gross; credit revenue with the net and tax payable with the tax.
//! `payment.captured` posts cash against the receivable, and any excess to deferred revenue.
//! The order is complete when it is confirmed and every line is fully recognised.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::db;
use crate::db::ledger::{Account, Entry, NewRecognition};
use crate::db::orders::StoredOrder;
use crate::db::timers::TimerKind;
use crate::domain::catalogue::{Product, RecognitionPoint};
use crate::domain::documents::{DocumentLine, priced_lines};
use crate::domain::events::{
    InstalmentDue, OrderCustomerConfirmed, OrderDelivered, OrderHandedOver, OrderVerified,
    PaymentCaptured, RecognisedLine, RevenueRecognised,
};
use crate::domain::{EventType, OrderId, OrderState, money};

use super::{
    Escalation, Handled, IncomingEvent, Role, Stage, StageContext, StageError, StageName, TooEarly,
};

/// The revenue stage.
pub struct Revenue;

/// A milestone: what point it reaches, when control passed, and the evidence.
struct Milestone {
    order_id: OrderId,
    version: Option<u32>,
    reached: RecognitionPoint,
    at: DateTime<Utc>,
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

#[async_trait]
impl Stage for Revenue {
    fn name(&self) -> StageName {
        StageName::Revenue
    }

    async fn handle(
        &self,
        ctx: &mut StageContext<'_>,
        event: &IncomingEvent,
    ) -> Result<Handled, StageError> {
        use RecognitionPoint::*;
        let milestone = match event.event_type {
            EventType::OrderVerified => {
                let e: OrderVerified = event.payload()?;
                Milestone {
                    order_id: e.order_id,
                    version: Some(e.version),
                    reached: OnOrder,
                    at: event.envelope.time,
                }
            }
            EventType::OrderHandedOver => {
                let e: OrderHandedOver = event.payload()?;
                Milestone {
                    order_id: e.order_id,
                    version: Some(e.version),
                    reached: OnDispatch,
                    at: e.handed_over_at,
                }
            }
            EventType::OrderDelivered => {
                let e: OrderDelivered = event.payload()?;
                Milestone {
                    order_id: e.order_id,
                    version: None,
                    reached: OnDelivery,
                    at: e.delivered_at,
                }
            }
            EventType::OrderCustomerConfirmed => {
                let e: OrderCustomerConfirmed = event.payload()?;
                Milestone {
                    order_id: e.order_id,
                    version: None,
                    reached: OnAcceptance,
                    at: e.confirmed_at,
                }
            }
            EventType::InstalmentDue => return instalment_due(ctx, event, event.payload()?).await,
            EventType::PaymentCaptured => return payment(ctx, event.payload()?).await,
            other => return Err(super::unexpected(StageName::Revenue, other)),
        };
        milestone_reached(ctx, event, milestone).await
    }
}

async fn milestone_reached(
    ctx: &mut StageContext<'_>,
    event: &IncomingEvent,
    milestone: Milestone,
) -> Result<Handled, StageError> {
    let order = ctx.order(&milestone.order_id).await?;
    if milestone.version.is_some_and(|v| v < order.order.version) {
        return Ok(Handled::AlreadyDone);
    }
    let (lines, products) = lines_and_products(ctx, &order).await?;
    if milestone.reached == RecognitionPoint::OnDispatch {
        schedule_instalments(ctx, &order, &lines, &products, milestone.at).await?;
    }
    let points = points_reached(milestone.reached);
    let due: Vec<(&DocumentLine, u32)> = lines
        .iter()
        .filter(|l| {
            products
                .get(&l.sku)
                .is_some_and(|p| points.contains(&p.recognition))
        })
        .map(|l| (l, 0))
        .collect();
    let recognised = recognise(
        ctx,
        &order,
        &products,
        &due,
        milestone.reached,
        milestone.at,
        event.id(),
    )
    .await?;
    finish(ctx, &order, recognised, &lines, &products).await
}

/// Completes the order if it is now fully recognised, and writes one timeline record for what
/// this delivery did.
async fn finish(
    ctx: &mut StageContext<'_>,
    order: &StoredOrder,
    recognised: Option<RevenueRecognised>,
    lines: &[DocumentLine],
    products: &std::collections::HashMap<String, Product>,
) -> Result<Handled, StageError> {
    let completed = complete_if_done(ctx, order, lines, products).await?;
    if recognised.is_none() && !completed {
        return Ok(Handled::Waiting);
    }
    let id = order.order.order_id.as_str();
    let revenue_minor = -db::ledger::balance(ctx.conn(), id, Account::Revenue).await?;
    let state = if completed {
        OrderState::Completed
    } else {
        order.state
    };
    let detail = serde_json::json!({
        "recognised": recognised,
        "revenue_to_date_minor": revenue_minor,
        "completed": completed,
    });
    ctx.record(&order.order.order_id, state, &detail).await?;
    Ok(Handled::Advanced)
}

async fn lines_and_products(
    ctx: &mut StageContext<'_>,
    order: &StoredOrder,
) -> Result<
    (
        Vec<DocumentLine>,
        std::collections::HashMap<String, Product>,
    ),
    StageError,
> {
    let skus: Vec<String> = order.order.lines.iter().map(|l| l.sku.clone()).collect();
    let products = ctx.products(&skus).await?;
    Ok((priced_lines(&order.order, &products), products))
}

/// Schedules every instalment of every service recognised over its period, from `start`.
async fn schedule_instalments(
    ctx: &mut StageContext<'_>,
    order: &StoredOrder,
    lines: &[DocumentLine],
    products: &std::collections::HashMap<String, Product>,
    start: DateTime<Utc>,
) -> Result<(), StageError> {
    for line in lines {
        let Some(product) = products.get(&line.sku) else {
            continue;
        };
        let (Some(period), Some(n)) = (product.service_period_secs, product.service_instalments)
        else {
            continue;
        };
        if product.recognition != RecognitionPoint::OverServicePeriod {
            continue;
        }
        for k in 1..=n {
            let offset =
                chrono::Duration::milliseconds(period * 1000 * i64::from(k) / i64::from(n));
            let payload = serde_json::json!({ "line_no": line.line_no, "instalment": k });
            let id = order.order.order_id.as_str();
            db::timers::schedule(
                ctx.conn(),
                id,
                TimerKind::InstalmentDue,
                start + offset,
                payload,
            )
            .await?;
        }
    }
    Ok(())
}

async fn instalment_due(
    ctx: &mut StageContext<'_>,
    event: &IncomingEvent,
    due: InstalmentDue,
) -> Result<Handled, StageError> {
    let order = ctx.order(&due.order_id).await?;
    let (lines, products) = lines_and_products(ctx, &order).await?;
    let Some(line) = lines.iter().find(|l| l.line_no == due.line_no) else {
        return Ok(Handled::AlreadyDone);
    };
    let recognised = recognise(
        ctx,
        &order,
        &products,
        &[(line, due.instalment)],
        RecognitionPoint::OverServicePeriod,
        due.due_at,
        event.id(),
    )
    .await?;
    finish(ctx, &order, recognised, &lines, &products).await
}

/// The amount and tax of one line (whole, or one instalment of a service over its period).
fn portion(line: &DocumentLine, instalment_no: u32, products: Option<&Product>) -> (i64, i64) {
    match (instalment_no, products.and_then(|p| p.service_instalments)) {
        (0, _) | (_, None) => (line.net_minor, line.tax_minor),
        (k, Some(n)) => (
            instalment(line.net_minor, k, n),
            instalment(line.tax_minor, k, n),
        ),
    }
}

/// Recognises the given (line, instalment) pairs not yet recognised; posts the ledger and emits
/// `revenue.recognised`. Returns what was recognised, if anything.
async fn recognise(
    ctx: &mut StageContext<'_>,
    order: &StoredOrder,
    products: &std::collections::HashMap<String, Product>,
    due: &[(&DocumentLine, u32)],
    basis: RecognitionPoint,
    control_passed_at: DateTime<Utc>,
    evidence: &str,
) -> Result<Option<RevenueRecognised>, StageError> {
    let id = order.order.order_id.as_str();
    let evidence = vec![evidence.to_owned()];
    let mut recognised = Vec::new();
    for (line, k) in due {
        let product = products.get(&line.sku);
        let (amount, tax) = portion(line, *k, product);
        let new = NewRecognition {
            order_id: id,
            line_no: line.line_no,
            instalment: *k,
            amount_minor: amount,
            tax_minor: tax,
            basis: product.map_or(basis, |p| p.recognition).as_str(),
            control_passed_at,
            evidence: &evidence,
        };
        if db::ledger::recognise(ctx.conn(), &new).await? {
            recognised.push(RecognisedLine {
                line_no: line.line_no,
                sku: line.sku.clone(),
                instalment: *k,
                amount_minor: amount,
                tax_minor: tax,
            });
        }
    }
    if recognised.is_empty() {
        return Ok(None);
    }
    let amount: i64 = recognised.iter().map(|l| l.amount_minor).sum();
    let tax: i64 = recognised.iter().map(|l| l.tax_minor).sum();
    post_recognition(ctx, order, amount, tax, basis).await?;
    let event = RevenueRecognised {
        order_id: order.order.order_id.clone(),
        lines: recognised,
        amount_minor: amount,
        tax_minor: tax,
        currency: order.order.currency,
        basis,
        control_passed_at,
        evidence_event_ids: evidence,
    };
    ctx.emit(&event).await?;
    Ok(Some(event))
}

/// Debit deferred revenue (what advance payments cover) and receivable (the rest) with the
/// gross; credit revenue with the net and tax payable with the tax.
async fn post_recognition(
    ctx: &mut StageContext<'_>,
    order: &StoredOrder,
    net: i64,
    tax: i64,
    basis: RecognitionPoint,
) -> Result<(), StageError> {
    let id = order.order.order_id.as_str();
    let deferred = -db::ledger::balance(ctx.conn(), id, Account::DeferredRevenue).await?;
    let gross = net + tax;
    let from_deferred = deferred.clamp(0, gross);
    let entries = [
        Entry::Debit(Account::DeferredRevenue, from_deferred),
        Entry::Debit(Account::Receivable, gross - from_deferred),
        Entry::Credit(Account::Revenue, net),
        Entry::Credit(Account::TaxPayable, tax),
    ];
    let memo = format!("recognised {}", basis.as_str());
    db::ledger::post(
        ctx.conn(),
        id,
        order.order.currency.as_str(),
        &memo,
        &entries,
    )
    .await?;
    Ok(())
}

/// Completes a confirmed order once every line is fully recognised. `order` is as this delivery
/// read it; nothing the revenue stage does moves it, so it is still current.
async fn complete_if_done(
    ctx: &mut StageContext<'_>,
    order: &StoredOrder,
    lines: &[DocumentLine],
    products: &std::collections::HashMap<String, Product>,
) -> Result<bool, StageError> {
    if order.state != OrderState::Confirmed {
        return Ok(false);
    }
    let done: HashSet<(u32, u32)> =
        db::ledger::recognised(ctx.conn(), order.order.order_id.as_str())
            .await?
            .into_iter()
            .collect();
    let fully = lines.iter().all(|line| {
        match products.get(&line.sku).and_then(|p| {
            (p.recognition == RecognitionPoint::OverServicePeriod).then_some(p.service_instalments?)
        }) {
            Some(n) => (1..=n).all(|k| done.contains(&(line.line_no, k))),
            None => done.contains(&(line.line_no, 0)),
        }
    });
    if !fully {
        return Ok(false);
    }
    Ok(ctx.advance(order, OrderState::Completed).await?.is_none())
}

/// Records a payment: cash against the receivable, any excess as deferred revenue. A payment
/// may be captured before its order reaches the pipeline: it is tried again later, and goes to
/// finance only if the order never comes.
async fn payment(ctx: &mut StageContext<'_>, paid: PaymentCaptured) -> Result<Handled, StageError> {
    let Some(order) = ctx.find_order(&paid.order_id).await? else {
        return Err(StageError::TooEarly(payment_before_order(&paid)));
    };
    let id = paid.order_id.as_str();
    if paid.currency != order.order.currency || paid.amount_minor <= 0 {
        return Err(Escalation::new(
            "payment_mismatch",
            format!(
                "payment {} of {} {} does not fit order in {}",
                paid.payment_reference, paid.amount_minor, paid.currency, order.order.currency
            ),
            Role::Finance,
        )
        .into());
    }
    let new = db::ledger::record_payment(
        ctx.conn(),
        id,
        &paid.payment_reference,
        paid.amount_minor,
        paid.currency.as_str(),
        paid.captured_at,
    )
    .await?;
    if !new {
        return Ok(Handled::AlreadyDone);
    }
    let receivable = db::ledger::balance(ctx.conn(), id, Account::Receivable).await?;
    let against_receivable = receivable.clamp(0, paid.amount_minor);
    let entries = [
        Entry::Debit(Account::Cash, paid.amount_minor),
        Entry::Credit(Account::Receivable, against_receivable),
        Entry::Credit(
            Account::DeferredRevenue,
            paid.amount_minor - against_receivable,
        ),
    ];
    db::ledger::post(
        ctx.conn(),
        id,
        paid.currency.as_str(),
        "payment captured",
        &entries,
    )
    .await?;
    let detail = serde_json::json!({ "payment_reference": paid.payment_reference, "amount_minor": paid.amount_minor });
    ctx.record(&paid.order_id, order.state, &detail).await?;
    Ok(Handled::Waiting)
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
    use super::*;

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
}
