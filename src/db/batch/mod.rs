//! A batch of deliveries against the database, by set: a fixed handful of statements whatever
//! the batch's size. In one transaction, the worker:
//!
//! 1. [`lock`]s every order the batch names (advisory locks, taken in one global order, so two
//!    batches never wait for each other in a cycle);
//! 2. [`check`]s which messages the stage's inbox already holds, and whether the events that
//!    claim to come from the pipeline are in its outbox, byte for byte;
//! 3. [`load_views`]: every order with the history its stage needs;
//! 4. [`load_reference`]: the reference data the batch names, with the shared rows it moves
//!    (stock, document sequences) locked in key order;
//! 5. [`write`]s every plan in one statement: one `INSERT … SELECT … FROM unnest(…)` or
//!    `UPDATE … FROM unnest(…)` per table, in data-modifying common table expressions.

mod reference;
mod views;
pub mod writes;

use std::collections::HashMap;

use anyhow::Context;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgConnection, Postgres, Row};

pub use reference::{ReferenceKeys, load_reference};
pub use views::load_views;
pub use writes::{NewCase, Writes};

use crate::domain::ledger::Entry;

/// Takes the locks of `keys` (order ids, or the inbox keys of messages about no order) for the
/// transaction, in one global order (by lock key). Taking a lock again later is free.
pub async fn lock(conn: &mut PgConnection, keys: &[String]) -> sqlx::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock(key)) FROM (
           SELECT DISTINCT hashtextextended(id, 0) AS key FROM unnest($1::text[]) AS id ORDER BY key
         ) AS keys",
    )
    .bind(keys)
    .execute(conn)
    .await?;
    Ok(())
}

/// What the database already holds about a batch's messages.
#[derive(Debug, Default)]
pub struct Checks {
    /// Inbox key → the body digest it was recorded with (empty for rows from before digests).
    pub inbox: HashMap<String, Vec<u8>>,
    /// Event id → SHA-256 of the body the pipeline emitted under it.
    pub outbox: HashMap<String, Vec<u8>>,
}

/// Which of `keys` the stage's inbox holds, and what the outbox holds under `event_ids`. Run
/// after [`lock`], so that what it reads is current.
pub async fn check(
    conn: &mut PgConnection,
    stage: &str,
    keys: &[String],
    event_ids: &[String],
) -> sqlx::Result<Checks> {
    let rows = sqlx::query(
        "SELECT true AS inbox, message_id AS key, coalesce(body_sha256, '') AS digest
         FROM inbox WHERE stage = $1 AND message_id = ANY($2::text[])
         UNION ALL
         SELECT false, event_id, sha256(body) FROM outbox WHERE event_id = ANY($3::text[])",
    )
    .bind(stage)
    .bind(keys)
    .bind(event_ids)
    .fetch_all(conn)
    .await?;
    let mut checks = Checks::default();
    for row in rows {
        let (inbox, key, digest): (bool, String, Vec<u8>) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        match inbox {
            true => checks.inbox.insert(key, digest),
            false => checks.outbox.insert(key, digest),
        };
    }
    Ok(checks)
}

/// Reserves `n` review case ids, so that a case and its `review.case_opened` event can be
/// written in one statement.
pub async fn reserve_case_ids(conn: &mut PgConnection, n: usize) -> sqlx::Result<Vec<i64>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT nextval('review_cases_id_seq') FROM generate_series(1, $1)")
        .bind(i32::try_from(n).unwrap_or(i32::MAX))
        .fetch_all(conn)
        .await
}

/// Locks the stock rows of `skus` for the transaction, in SKU order (for stages and the review
/// desk that return stock without having locked it when they read it).
pub async fn lock_stock(conn: &mut PgConnection, skus: &[String]) -> sqlx::Result<()> {
    if skus.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT count(*) FROM (SELECT sku FROM stock WHERE sku = ANY($1::text[])
           ORDER BY sku FOR UPDATE) AS locked",
    )
    .bind(skus)
    .execute(conn)
    .await?;
    Ok(())
}

/// What [`write`] did.
#[derive(Debug)]
pub struct Written {
    /// The outbox row ids of [`Writes::outbox`], in order.
    pub outbox_ids: Vec<i64>,
}

/// Parameters bound in order, each named by its placeholder.
struct Binds {
    args: PgArguments,
    n: usize,
}

impl Binds {
    fn new() -> Self {
        Self {
            args: PgArguments::default(),
            n: 0,
        }
    }

    /// Binds `value` and returns its placeholder, `$n`.
    fn bind<T>(&mut self, value: T) -> String
    where
        T: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
    {
        self.args
            .add(value)
            .expect("arrays of plain values always encode");
        self.n += 1;
        format!("${}", self.n)
    }
}

fn column<T, R>(rows: &[R], f: impl Fn(&R) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

/// Writes everything in `writes` for `stage`, in one statement. Fails, writing nothing, if a
/// guard does not hold: an inbox row already there, an order not in the state it was loaded in,
/// stock missing or short, a payment reference taken.
pub async fn write(conn: &mut PgConnection, stage: &str, w: &Writes) -> anyhow::Result<Written> {
    let mut b = Binds::new();
    let stage_p = b.bind(stage.to_owned());
    let mut inbox = w.inbox.clone();
    inbox.sort();
    let inbox_sql = format!(
        "inbox_rows AS (INSERT INTO inbox (stage, message_id, body_sha256)
           SELECT {stage_p}, m, d FROM unnest({}::text[], {}::bytea[]) AS u(m, d) ORDER BY m
           ON CONFLICT DO NOTHING RETURNING 1)",
        b.bind(column(&inbox, |r| r.0.clone())),
        b.bind(column(&inbox, |r| r.1.clone())),
    );
    let orders_sql = orders_sql(&mut b, w);
    let versions_sql = format!(
        "versions AS (INSERT INTO order_versions (order_id, version, body)
           SELECT * FROM unnest({}::text[], {}::int[], {}::jsonb[]) ON CONFLICT DO NOTHING)",
        b.bind(column(&w.versions, |o| o.order_id.to_string())),
        b.bind(column(&w.versions, |o| version(o.version))),
        b.bind(column(&w.versions, json)),
    );
    let records_sql = format!(
        "records AS (INSERT INTO stage_records (order_id, stage, message_id, state_after, detail)
           SELECT o, {stage_p}, m, s, d FROM unnest({}::text[], {}::text[], {}::text[], {}::jsonb[])
           WITH ORDINALITY AS u(o, m, s, d, n) ORDER BY n)",
        b.bind(column(&w.records, |r| r.0.clone())),
        b.bind(column(&w.records, |r| r.1.clone())),
        b.bind(column(&w.records, |r| r.2.as_str().to_owned())),
        b.bind(column(&w.records, |r| r.3.clone())),
    );
    let outbox_sql = format!(
        "outbox_rows AS (INSERT INTO outbox (event_id, order_id, routing_key, event_type, body,
             event_time, traceparent, created_at)
           SELECT e, o, r, t, bo, tm, tp, clock_timestamp() FROM unnest({}::text[], {}::text[],
             {}::text[], {}::text[], {}::bytea[], {}::timestamptz[], {}::text[])
           WITH ORDINALITY AS u(e, o, r, t, bo, tm, tp, n) ORDER BY n RETURNING id)",
        b.bind(column(&w.outbox, |e| e.event_id.clone())),
        b.bind(column(&w.outbox, |e| e.order_id.clone())),
        b.bind(column(&w.outbox, |e| e.routing_key.clone())),
        b.bind(column(&w.outbox, |e| e.event_type.clone())),
        b.bind(column(&w.outbox, |e| e.body.clone())),
        b.bind(column(&w.outbox, |e| e.time)),
        b.bind(column(&w.outbox, |e| e.traceparent.clone())),
    );
    let stock_sql = stock_sql(&mut b, w);
    let documents_sql = documents_sql(&mut b, w);
    let timers_sql = timers_sql(&mut b, w);
    let answers_sql = format!(
        "answered AS (INSERT INTO customer_confirmations (order_id, message_id, outcome, reason)
           SELECT o, m, oc, r FROM unnest({}::text[], {}::text[], {}::text[], {}::text[])
           WITH ORDINALITY AS u(o, m, oc, r, n) ORDER BY n)",
        b.bind(column(&w.answers, |a| a.0.clone())),
        b.bind(column(&w.answers, |a| a.1.message_id.clone())),
        b.bind(column(&w.answers, |a| a.1.outcome.as_str().to_owned())),
        b.bind(column(&w.answers, |a| a.1.reason.clone())),
    );
    let revenue_sql = revenue_sql(&mut b, w);
    let cases_sql = cases_sql(&mut b, &stage_p, w);
    let sql = format!(
        "WITH {inbox_sql}, {orders_sql}, {versions_sql}, {records_sql}, {outbox_sql},
           {stock_sql}, {documents_sql}, {timers_sql}, {answers_sql}, {revenue_sql}, {cases_sql}
         SELECT (SELECT count(*) FROM inbox_rows) AS inbox,
                (SELECT count(*) FROM new_orders) + (SELECT count(*) FROM changed_orders) AS orders,
                (SELECT count(*) FROM stocked) AS stocked,
                (SELECT count(*) FROM paid) AS paid,
                (SELECT coalesce(array_agg(id ORDER BY id), '{{}}') FROM outbox_rows) AS outbox_ids"
    );
    let row = sqlx::query_with(sqlx::AssertSqlSafe(sql), b.args)
        .fetch_one(conn)
        .await
        .context("writing the batch")?;
    let count = |name: &str| -> anyhow::Result<usize> {
        Ok(usize::try_from(row.try_get::<i64, _>(name)?).unwrap_or(0))
    };
    guard("inbox rows", count("inbox")?, inbox.len())?;
    guard("order rows", count("orders")?, w.orders.len())?;
    guard("stock rows", count("stocked")?, w.stock_skus().len())?;
    guard("payments", count("paid")?, w.payments.len())?;
    Ok(Written {
        outbox_ids: row.try_get("outbox_ids")?,
    })
}

/// Fails when a statement touched fewer rows than the batch meant to: something changed under
/// the batch's locks, or a row it relied on is missing. The transaction is rolled back.
fn guard(what: &str, written: usize, expected: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        written == expected,
        "{what}: wrote {written} of {expected}; the batch is rolled back"
    );
    Ok(())
}

fn version(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn json(order: &crate::domain::Order) -> serde_json::Value {
    serde_json::to_value(order).expect("orders always serialise")
}

fn orders_sql(b: &mut Binds, w: &Writes) -> String {
    let (new, changed): (Vec<_>, Vec<_>) = w.orders.iter().partition(|(_, r)| r.from.is_none());
    let total = |o: &crate::domain::Order| o.lines_total_minor().unwrap_or(0);
    format!(
        "new_orders AS (INSERT INTO orders (order_id, state, version, customer_id, currency,
             total_minor, body)
           SELECT * FROM unnest({}::text[], {}::text[], {}::int[], {}::text[], {}::text[],
             {}::bigint[], {}::jsonb[])
           RETURNING customer_id, body),
         changed_orders AS (UPDATE orders o SET state = u.state, version = u.version,
             customer_id = u.customer_id, currency = u.currency, total_minor = u.total,
             body = u.body, updated_at = now()
           FROM unnest({}::text[], {}::text[], {}::text[], {}::int[], {}::text[], {}::text[],
             {}::bigint[], {}::jsonb[], {}::bool[])
             AS u(order_id, from_state, state, version, customer_id, currency, total, body, new_body)
           WHERE o.order_id = u.order_id AND o.state = u.from_state
           RETURNING o.customer_id, o.body, u.new_body),
         noted AS (INSERT INTO customer_skus (customer_id, sku)
           SELECT DISTINCT w.customer_id, line->>'sku'
           FROM (SELECT customer_id, body FROM new_orders
                 UNION ALL SELECT customer_id, body FROM changed_orders WHERE new_body) AS w,
             jsonb_array_elements(w.body->'lines') AS line
           WHERE NOT EXISTS (SELECT 1 FROM customers c
                             WHERE c.customer_id = w.customer_id AND c.erased_at IS NOT NULL)
           ON CONFLICT DO NOTHING)",
        b.bind(column(&new, |(id, _)| (*id).clone())),
        b.bind(column(&new, |(_, r)| r.state.as_str().to_owned())),
        b.bind(column(&new, |(_, r)| version(r.order.version))),
        b.bind(column(&new, |(_, r)| r.order.customer_id.clone())),
        b.bind(column(&new, |(_, r)| r.order.currency.to_string())),
        b.bind(column(&new, |(_, r)| total(&r.order))),
        b.bind(column(&new, |(_, r)| json(&r.order))),
        b.bind(column(&changed, |(id, _)| (*id).clone())),
        b.bind(column(&changed, |(_, r)| {
            r.from.map_or("", |s| s.as_str()).to_owned()
        })),
        b.bind(column(&changed, |(_, r)| r.state.as_str().to_owned())),
        b.bind(column(&changed, |(_, r)| version(r.order.version))),
        b.bind(column(&changed, |(_, r)| r.order.customer_id.clone())),
        b.bind(column(&changed, |(_, r)| r.order.currency.to_string())),
        b.bind(column(&changed, |(_, r)| total(&r.order))),
        b.bind(column(&changed, |(_, r)| json(&r.order))),
        b.bind(column(&changed, |(_, r)| r.new_body)),
    )
}

fn stock_sql(b: &mut Binds, w: &Writes) -> String {
    let allocations: Vec<_> = w.allocations().collect();
    let deltas: Vec<(String, i64)> = w
        .stock
        .iter()
        .filter(|(_, d)| **d != 0)
        .map(|(s, d)| (s.clone(), *d))
        .collect();
    format!(
        "released AS (UPDATE allocations SET released_at = now()
           WHERE order_id = ANY({}::text[]) AND released_at IS NULL),
         allocated AS (INSERT INTO allocations (order_id, version, sku, quantity, released_at)
           SELECT o, v, s, q, CASE WHEN r THEN now() END
           FROM unnest({}::text[], {}::int[], {}::text[], {}::int[], {}::bool[]) AS u(o, v, s, q, r)),
         stocked AS (UPDATE stock SET available = available + u.delta, updated_at = now()
           FROM unnest({}::text[], {}::bigint[]) AS u(sku, delta) WHERE stock.sku = u.sku
           RETURNING 1)",
        b.bind(w.release_allocations.clone()),
        b.bind(column(&allocations, |a| a.0.to_owned())),
        b.bind(column(&allocations, |a| version(a.1))),
        b.bind(column(&allocations, |a| a.2.to_owned())),
        b.bind(column(&allocations, |a| version(a.3))),
        b.bind(column(&allocations, |a| a.4)),
        b.bind(column(&deltas, |d| d.0.clone())),
        b.bind(column(&deltas, |d| d.1)),
    )
}

fn documents_sql(b: &mut Binds, w: &Writes) -> String {
    let documents: Vec<_> = w.documents().collect();
    let sequences: Vec<(String, i64)> = w
        .sequences
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect();
    format!(
        "voided AS (UPDATE documents SET voided_at = now()
           WHERE order_id = ANY({}::text[]) AND voided_at IS NULL),
         issued AS (INSERT INTO documents (order_id, version, kind, number, sha256, pdf, content,
             issued_at, voided_at)
           SELECT o, v, k, nu, sh, p, c, i, CASE WHEN vd THEN now() END
           FROM unnest({}::text[], {}::int[], {}::text[], {}::text[], {}::text[], {}::bytea[],
             {}::jsonb[], {}::timestamptz[], {}::bool[]) AS u(o, v, k, nu, sh, p, c, i, vd)),
         numbered AS (UPDATE document_sequences s SET next_value = u.next
           FROM unnest({}::text[], {}::bigint[]) AS u(kind, next) WHERE s.kind = u.kind)",
        b.bind(w.void_documents.clone()),
        b.bind(column(&documents, |d| d.0.to_owned())),
        b.bind(column(&documents, |d| version(d.1.content.version))),
        b.bind(column(&documents, |d| d.1.content.kind.as_str().to_owned())),
        b.bind(column(&documents, |d| d.1.content.number.clone())),
        b.bind(column(&documents, |d| d.1.sha256.clone())),
        b.bind(column(&documents, |d| d.1.pdf.clone())),
        b.bind(column(&documents, |d| {
            serde_json::to_value(&d.1.content).expect("documents always serialise")
        })),
        b.bind(column(&documents, |d| d.1.content.issued_at)),
        b.bind(column(&documents, |d| d.2)),
        b.bind(column(&sequences, |s| s.0.clone())),
        b.bind(column(&sequences, |s| s.1)),
    )
}

fn timers_sql(b: &mut Binds, w: &Writes) -> String {
    let timers: Vec<_> = w.timers().collect();
    format!(
        "cancelled AS (UPDATE timers t SET cancelled_at = now()
           FROM unnest({}::text[], {}::text[]) AS u(o, k)
           WHERE t.order_id = u.o AND t.kind = u.k AND t.fired_at IS NULL
             AND t.cancelled_at IS NULL),
         scheduled AS (INSERT INTO timers (order_id, kind, due_at, payload, cancelled_at)
           SELECT o, k, d, p, CASE WHEN c THEN now() END
           FROM unnest({}::text[], {}::text[], {}::timestamptz[], {}::jsonb[], {}::bool[])
             AS u(o, k, d, p, c)
           ON CONFLICT (order_id, kind, payload) DO NOTHING)",
        b.bind(column(&w.cancel_timers, |c| c.0.clone())),
        b.bind(column(&w.cancel_timers, |c| c.1.to_owned())),
        b.bind(column(&timers, |t| t.0.to_owned())),
        b.bind(column(&timers, |t| t.1.kind.as_str().to_owned())),
        b.bind(column(&timers, |t| t.1.due_at)),
        b.bind(column(&timers, |t| t.1.payload.clone())),
        b.bind(column(&timers, |t| t.2)),
    )
}

fn revenue_sql(b: &mut Binds, w: &Writes) -> String {
    let recognitions: Vec<_> = w.recognitions().collect();
    let mut payments = w.payments.clone();
    payments.sort_by(|a, b| a.1.reference.cmp(&b.1.reference));
    let amounts = |e: &Entry| match *e {
        Entry::Debit(_, m) => (m, 0),
        Entry::Credit(_, m) => (0, m),
    };
    format!(
        "reversed AS (UPDATE recognitions SET reversed_at = now()
           WHERE order_id = ANY({}::text[]) AND reversed_at IS NULL),
         recognised AS (INSERT INTO recognitions (order_id, line_no, instalment, amount_minor,
             tax_minor, basis, control_passed_at, evidence, reversed_at)
           SELECT o, l, i, a, t, ba, c, ARRAY[e], CASE WHEN r THEN now() END
           FROM unnest({}::text[], {}::int[], {}::int[], {}::bigint[], {}::bigint[], {}::text[],
             {}::timestamptz[], {}::text[], {}::bool[]) AS u(o, l, i, a, t, ba, c, e, r)),
         posted AS (INSERT INTO ledger_entries (posting_id, order_id, account, debit_minor,
             credit_minor, currency, memo, kind)
           SELECT p, o, a, d, c, cu, m, k FROM unnest({}::uuid[], {}::text[], {}::text[],
             {}::bigint[], {}::bigint[], {}::text[], {}::text[], {}::text[])
           WITH ORDINALITY AS u(p, o, a, d, c, cu, m, k, n) ORDER BY n),
         paid AS (INSERT INTO payments (order_id, payment_reference, amount_minor, currency,
             captured_at)
           SELECT o, r, a, c, t FROM unnest({}::text[], {}::text[], {}::bigint[], {}::text[],
             {}::timestamptz[]) WITH ORDINALITY AS u(o, r, a, c, t, n) ORDER BY n
           ON CONFLICT (payment_reference) DO NOTHING RETURNING 1)",
        b.bind(w.reverse_recognitions.clone()),
        b.bind(column(&recognitions, |r| r.0.to_owned())),
        b.bind(column(&recognitions, |r| version(r.1.line_no))),
        b.bind(column(&recognitions, |r| version(r.1.instalment))),
        b.bind(column(&recognitions, |r| r.1.amount_minor)),
        b.bind(column(&recognitions, |r| r.1.tax_minor)),
        b.bind(column(&recognitions, |r| r.1.basis.to_owned())),
        b.bind(column(&recognitions, |r| r.1.control_passed_at)),
        b.bind(column(&recognitions, |r| r.1.evidence.clone())),
        b.bind(column(&recognitions, |r| r.2)),
        b.bind(column(&w.ledger, |l| l.posting_id)),
        b.bind(column(&w.ledger, |l| l.order_id.clone())),
        b.bind(column(&w.ledger, |l| l
            .entry
            .signed()
            .0
            .as_str()
            .to_owned())),
        b.bind(column(&w.ledger, |l| amounts(&l.entry).0)),
        b.bind(column(&w.ledger, |l| amounts(&l.entry).1)),
        b.bind(column(&w.ledger, |l| l.currency.clone())),
        b.bind(column(&w.ledger, |l| l.memo.clone())),
        b.bind(column(&w.ledger, |l| l.kind.to_owned())),
        b.bind(column(&payments, |p| p.0.clone())),
        b.bind(column(&payments, |p| p.1.reference.clone())),
        b.bind(column(&payments, |p| p.1.amount_minor)),
        b.bind(column(&payments, |p| p.1.currency.to_string())),
        b.bind(column(&payments, |p| p.1.captured_at)),
    )
}

fn cases_sql(b: &mut Binds, stage_p: &str, w: &Writes) -> String {
    format!(
        "cases AS (INSERT INTO review_cases (id, order_id, stage, reason, detail, required_role,
             original_body, original_properties, message_key)
           SELECT i, o, {stage_p}, r, d, ro, bo, p, k FROM unnest({}::bigint[], {}::text[],
             {}::text[], {}::text[], {}::text[], {}::bytea[], {}::bytea[], {}::text[])
             AS u(i, o, r, d, ro, bo, p, k))",
        b.bind(column(&w.cases, |c| c.id)),
        b.bind(column(&w.cases, |c| c.order_id.clone())),
        b.bind(column(&w.cases, |c| c.escalation.reason.to_owned())),
        b.bind(column(&w.cases, |c| c.escalation.detail.clone())),
        b.bind(column(&w.cases, |c| c.escalation.role.as_str().to_owned())),
        b.bind(column(&w.cases, |c| c.body.clone())),
        b.bind(column(&w.cases, |c| c.properties.clone())),
        b.bind(column(&w.cases, |c| c.message_key.clone())),
    )
}
