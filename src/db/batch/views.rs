//! Loading a batch's orders with the history their stage needs, in one statement.

use std::collections::HashMap;

use sqlx::types::Json;
use sqlx::{PgConnection, Row};

use crate::domain::documents::DocumentContent;
use crate::domain::events::ServiceSlot;
use crate::domain::ledger::{Account, PostingKind};
use crate::domain::timer::TimerKind;
use crate::domain::{Order, OrderState};
use crate::stages::view::{Current, KeptAnswer};
use crate::stages::{Needs, OrderView};

/// Every order in `ids` (one view per id, empty when the order does not exist) with the parts
/// of its history `needs` names. Each part is a correlated subquery that runs only when asked
/// for, by index on the order id (never a scan of the whole table).
pub async fn load_views(
    conn: &mut PgConnection,
    needs: &Needs,
    ids: &[String],
) -> anyhow::Result<HashMap<String, OrderView>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(
        "SELECT ids.id, o.state, o.body, o.created_at,
           CASE WHEN $2 THEN (SELECT coalesce(jsonb_agg(jsonb_build_array(sku, quantity) ORDER BY id), '[]')
             FROM allocations a WHERE a.order_id = ids.id AND a.released_at IS NULL) END AS allocations,
           CASE WHEN $3 THEN (SELECT count(*) FROM documents d
             WHERE d.order_id = ids.id AND d.voided_at IS NULL) END AS live_documents,
           CASE WHEN $3 THEN (SELECT content FROM documents d WHERE d.order_id = ids.id
             AND d.voided_at IS NULL AND d.kind = 'invoice' ORDER BY d.id DESC LIMIT 1)
             END AS live_invoice,
           CASE WHEN $4 THEN (SELECT coalesce(jsonb_agg(jsonb_build_array(kind, payload) ORDER BY id), '[]')
             FROM timers t WHERE t.order_id = ids.id AND t.fired_at IS NULL
               AND t.cancelled_at IS NULL) END AS timers,
           CASE WHEN $5 THEN (SELECT coalesce(jsonb_agg(jsonb_build_object('message_id', message_id,
               'outcome', outcome) ORDER BY id), '[]')
             FROM customer_confirmations c WHERE c.order_id = ids.id) END AS answers,
           CASE WHEN $6 THEN (SELECT coalesce(jsonb_agg(jsonb_build_array(line_no, instalment,
               amount_minor, tax_minor)), '[]')
             FROM recognitions r WHERE r.order_id = ids.id AND r.reversed_at IS NULL) END AS recognised,
           CASE WHEN $7 THEN (SELECT coalesce(jsonb_agg(jsonb_build_array(account, kind, balance)), '[]')
             FROM (SELECT account, kind, sum(debit_minor - credit_minor)::bigint AS balance
                   FROM ledger_entries l WHERE l.order_id = ids.id GROUP BY account, kind) AS b)
             END AS ledger,
           CASE WHEN $8 THEN (SELECT true FROM stage_records s WHERE s.order_id = ids.id
             AND s.stage = 'confirm' AND s.detail ? 'receipt' LIMIT 1) END AS delivered,
           CASE WHEN $8 THEN (SELECT s.detail->'service_slots' FROM stage_records s
             WHERE s.order_id = ids.id AND s.stage = 'prepare' ORDER BY s.id DESC LIMIT 1)
             END AS service_slots,
           CASE WHEN $8 THEN (SELECT (s.detail->>'version')::int FROM stage_records s
             WHERE s.order_id = ids.id AND s.stage = 'prepare' AND s.state_after = 'prepared'
             ORDER BY s.id DESC LIMIT 1) END AS prepared_version
         FROM unnest($1::text[]) AS ids(id)
           LEFT JOIN LATERAL (SELECT state, body, created_at FROM orders WHERE order_id = ids.id) AS o ON true",
    )
    .bind(ids)
    .bind(needs.allocations)
    .bind(needs.documents)
    .bind(needs.timers)
    .bind(needs.answers)
    .bind(needs.recognitions)
    .bind(needs.ledger)
    .bind(needs.stage_records)
    .fetch_all(conn)
    .await?;
    crate::metrics::statements(1);
    rows.iter()
        .map(|row| Ok((row.try_get("id")?, view_from(row)?)))
        .collect()
}

type Pairs<A, B> = Option<Json<Vec<(A, B)>>>;

/// A live recognition as loaded: line, instalment, net, tax.
type RecognisedRow = (u32, u32, i64, i64);

fn view_from(row: &sqlx::postgres::PgRow) -> anyhow::Result<OrderView> {
    let state: Option<String> = row.try_get("state")?;
    let body: Option<Json<Order>> = row.try_get("body")?;
    let current = match (state, body) {
        (Some(state), Some(body)) => Some(Current {
            state: state.parse::<OrderState>()?,
            order: body.0,
        }),
        _ => None,
    };
    let allocations: Pairs<String, u32> = row.try_get("allocations")?;
    let timers: Pairs<String, serde_json::Value> = row.try_get("timers")?;
    let answers: Option<Json<Vec<KeptAnswer>>> = row.try_get("answers")?;
    let recognised: Option<Json<Vec<RecognisedRow>>> = row.try_get("recognised")?;
    let ledger: Option<Json<Vec<(String, String, i64)>>> = row.try_get("ledger")?;
    let slots: Option<Json<Vec<ServiceSlot>>> = row.try_get("service_slots")?;
    let invoice: Option<Json<DocumentContent>> = row.try_get("live_invoice")?;
    Ok(OrderView {
        current,
        entered_at: row.try_get("created_at")?,
        allocations: allocations.map(|j| j.0).unwrap_or_default(),
        live_documents: row
            .try_get::<Option<i64>, _>("live_documents")?
            .map_or(0, |n| n.unsigned_abs()),
        live_invoice: invoice.map(|j| Box::new(j.0)),
        timers: timers
            .map(|j| j.0)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(kind, payload)| Some((TimerKind::parse(&kind)?, payload)))
            .collect(),
        answers: answers.map(|j| j.0).unwrap_or_default(),
        recognised: recognised
            .map(|j| j.0)
            .unwrap_or_default()
            .into_iter()
            .map(|(line, k, amount, tax)| ((line, k), (amount, tax)))
            .collect(),
        ledger: ledger
            .map(|j| j.0)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(account, kind, balance)| {
                Some((
                    (Account::parse(&account)?, PostingKind::parse(&kind)?),
                    balance,
                ))
            })
            .collect(),
        delivered: row
            .try_get::<Option<bool>, _>("delivered")?
            .unwrap_or(false),
        service_slots: slots.map(|j| j.0).unwrap_or_default(),
        prepared_version: row
            .try_get::<Option<i32>, _>("prepared_version")?
            .and_then(|v| u32::try_from(v).ok()),
    })
}
