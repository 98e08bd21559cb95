//! The one statement that writes a batch: a data-modifying common table expression for each
//! table the batch touches (and none for the others), arrays bound as parameters.

use anyhow::Context;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgConnection, Postgres, Row};

use crate::domain::Order;
use crate::domain::ledger::Entry;

use super::writes::Writes;

/// What [`write`] did.
#[derive(Debug)]
pub struct Written {
    /// The outbox row ids of [`Writes::outbox`], in order.
    pub outbox_ids: Vec<i64>,
}

/// A statement being built: its parameters (each named by its placeholder), its parts, and the
/// row counts it must reach.
struct Statement {
    args: PgArguments,
    n: usize,
    parts: Vec<String>,
    guards: Vec<(&'static str, &'static str, usize)>,
}

impl Statement {
    fn new() -> Self {
        Self {
            args: PgArguments::default(),
            n: 0,
            parts: Vec::new(),
            guards: Vec::new(),
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

    /// Binds one column of `rows`.
    fn column<R, T>(&mut self, rows: &[R], f: impl Fn(&R) -> T) -> String
    where
        T: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
        Vec<T>: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
    {
        self.bind(rows.iter().map(f).collect::<Vec<T>>())
    }

    /// Adds a common table expression.
    fn part(&mut self, sql: String) {
        self.parts.push(sql);
    }

    /// Requires the expression `cte` (which returns a row per row written) to write `expected`
    /// rows of `what`.
    fn guard(&mut self, cte: &'static str, what: &'static str, expected: usize) {
        self.guards.push((cte, what, expected));
    }
}

/// Writes everything in `writes` for `stage`, in one statement. Fails, writing nothing, if a
/// guard does not hold: an inbox row already there, an order not in the state it was loaded in,
/// stock missing, a payment reference taken.
pub async fn write(conn: &mut PgConnection, stage: &str, w: &Writes) -> anyhow::Result<Written> {
    let mut s = Statement::new();
    let stage_p = s.bind(stage.to_owned());
    inbox(&mut s, &stage_p, w);
    orders(&mut s, w);
    records(&mut s, &stage_p, w);
    stock(&mut s, w);
    documents(&mut s, w);
    timers(&mut s, w);
    answers(&mut s, w);
    revenue(&mut s, w);
    payments(&mut s, w);
    cases(&mut s, &stage_p, w);
    superseded_cases(&mut s, w);
    let outbox = outbox(&mut s, w);
    if s.parts.is_empty() {
        return Ok(Written {
            outbox_ids: Vec::new(),
        });
    }
    let counts: Vec<String> = s
        .guards
        .iter()
        .map(|(cte, _, _)| format!("(SELECT count(*) FROM {cte})"))
        .collect();
    let sql = format!(
        "WITH {} SELECT ARRAY[{}]::bigint[] AS counts, {} AS outbox_ids",
        s.parts.join(",\n"),
        counts.join(", "),
        match outbox {
            true => "(SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM outbox_rows)",
            false => "'{}'::bigint[]",
        }
    );
    let row = sqlx::query_with(sqlx::AssertSqlSafe(sql), s.args)
        .fetch_one(conn)
        .await
        .context("writing the batch")?;
    crate::metrics::statements(1);
    let written: Vec<i64> = row.try_get("counts")?;
    for ((_, what, expected), written) in s.guards.iter().zip(written) {
        let written = usize::try_from(written).unwrap_or(0);
        anyhow::ensure!(
            written == *expected,
            "{what}: wrote {written} of {expected}; something changed under the batch's locks"
        );
    }
    Ok(Written {
        outbox_ids: row.try_get("outbox_ids")?,
    })
}

fn version(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn json(order: &Order) -> serde_json::Value {
    serde_json::to_value(order).expect("orders always serialise")
}

fn inbox(s: &mut Statement, stage: &str, w: &Writes) {
    if w.inbox.is_empty() {
        return;
    }
    let mut rows = w.inbox.clone();
    rows.sort();
    let sql = format!(
        "inbox_rows AS (INSERT INTO inbox (stage, message_id, body_sha256)
           SELECT {stage}, m, d FROM unnest({}::text[], {}::bytea[]) AS u(m, d) ORDER BY m
           ON CONFLICT DO NOTHING RETURNING 1)",
        s.column(&rows, |r| r.0.clone()),
        s.column(&rows, |r| r.1.clone()),
    );
    s.part(sql);
    s.guard("inbox_rows", "inbox rows", rows.len());
}

fn orders(s: &mut Statement, w: &Writes) {
    let (new, changed): (Vec<_>, Vec<_>) = w.orders.iter().partition(|(_, r)| r.from.is_none());
    let total = |o: &Order| o.lines_total_minor().unwrap_or(0);
    let mut written = Vec::new();
    if !new.is_empty() {
        let sql = format!(
            "new_orders AS (INSERT INTO orders (order_id, state, version, customer_id, currency,
                 total_minor, body, traceparent)
               SELECT * FROM unnest({}::text[], {}::text[], {}::int[], {}::text[], {}::text[],
                 {}::bigint[], {}::jsonb[], {}::text[])
               RETURNING customer_id, body)",
            s.column(&new, |(id, _)| (*id).clone()),
            s.column(&new, |(_, r)| r.state.as_str().to_owned()),
            s.column(&new, |(_, r)| version(r.order.version)),
            s.column(&new, |(_, r)| r.order.customer_id.clone()),
            s.column(&new, |(_, r)| r.order.currency.to_string()),
            s.column(&new, |(_, r)| total(&r.order)),
            s.column(&new, |(_, r)| json(&r.order)),
            s.column(&new, |(_, r)| r.traceparent.clone()),
        );
        s.part(sql);
        s.guard("new_orders", "new orders", new.len());
        written.push("SELECT customer_id, body FROM new_orders");
    }
    if !changed.is_empty() {
        let sql = format!(
            "changed_orders AS (UPDATE orders o SET state = u.state, version = u.version,
                 customer_id = u.customer_id, currency = u.currency, total_minor = u.total,
                 body = u.body, updated_at = now()
               FROM unnest({}::text[], {}::text[], {}::text[], {}::int[], {}::text[], {}::text[],
                 {}::bigint[], {}::jsonb[], {}::bool[])
                 AS u(order_id, from_state, state, version, customer_id, currency, total, body,
                   new_body)
               WHERE o.order_id = u.order_id AND o.state = u.from_state
               RETURNING o.customer_id, o.body, u.new_body)",
            s.column(&changed, |(id, _)| (*id).clone()),
            s.column(&changed, |(_, r)| {
                r.from.map_or("", |state| state.as_str()).to_owned()
            }),
            s.column(&changed, |(_, r)| r.state.as_str().to_owned()),
            s.column(&changed, |(_, r)| version(r.order.version)),
            s.column(&changed, |(_, r)| r.order.customer_id.clone()),
            s.column(&changed, |(_, r)| r.order.currency.to_string()),
            s.column(&changed, |(_, r)| total(&r.order)),
            s.column(&changed, |(_, r)| json(&r.order)),
            s.column(&changed, |(_, r)| r.new_body),
        );
        s.part(sql);
        s.guard(
            "changed_orders",
            "order rows in their loaded state",
            changed.len(),
        );
        if changed.iter().any(|(_, r)| r.new_body) {
            written.push("SELECT customer_id, body FROM changed_orders WHERE new_body");
        }
    }
    if !written.is_empty() {
        // The products each customer ordered, for suggestions; not for erased customers.
        s.part(format!(
            "noted AS (INSERT INTO customer_skus (customer_id, sku)
               SELECT DISTINCT w.customer_id, line->>'sku'
               FROM ({}) AS w, jsonb_array_elements(w.body->'lines') AS line
               WHERE NOT EXISTS (SELECT 1 FROM customers c
                                 WHERE c.customer_id = w.customer_id AND c.erased_at IS NOT NULL)
               ORDER BY 1, 2
               ON CONFLICT DO NOTHING)",
            written.join(" UNION ALL ")
        ));
    }
    if !w.versions.is_empty() {
        let sql = format!(
            "versions AS (INSERT INTO order_versions (order_id, version, body)
               SELECT * FROM unnest({}::text[], {}::int[], {}::jsonb[]) ON CONFLICT DO NOTHING)",
            s.column(&w.versions, |o| o.order_id.to_string()),
            s.column(&w.versions, |o| version(o.version)),
            s.column(&w.versions, json),
        );
        s.part(sql);
    }
}

fn records(s: &mut Statement, stage: &str, w: &Writes) {
    if w.records.is_empty() {
        return;
    }
    let sql = format!(
        "records AS (INSERT INTO stage_records (order_id, stage, message_id, state_after, detail)
           SELECT o, {stage}, m, st, d FROM unnest({}::text[], {}::text[], {}::text[], {}::jsonb[])
           WITH ORDINALITY AS u(o, m, st, d, n) ORDER BY n)",
        s.column(&w.records, |r| r.0.clone()),
        s.column(&w.records, |r| r.1.clone()),
        s.column(&w.records, |r| r.2.as_str().to_owned()),
        s.column(&w.records, |r| r.3.clone()),
    );
    s.part(sql);
}

fn outbox(s: &mut Statement, w: &Writes) -> bool {
    if w.outbox.is_empty() {
        return false;
    }
    let sql = format!(
        "outbox_rows AS (INSERT INTO outbox (event_id, order_id, routing_key, event_type, body,
             event_time, traceparent, created_at)
           SELECT e, o, r, t, bo, tm, tp, clock_timestamp() FROM unnest({}::text[], {}::text[],
             {}::text[], {}::text[], {}::bytea[], {}::timestamptz[], {}::text[])
           WITH ORDINALITY AS u(e, o, r, t, bo, tm, tp, n) ORDER BY n RETURNING id, created_at),
         pending AS (INSERT INTO outbox_pending (id, created_at)
           SELECT id, created_at FROM outbox_rows)",
        s.column(&w.outbox, |e| e.event_id.clone()),
        s.column(&w.outbox, |e| e.order_id.clone()),
        s.column(&w.outbox, |e| e.routing_key.clone()),
        s.column(&w.outbox, |e| e.event_type.clone()),
        s.column(&w.outbox, |e| e.body.clone()),
        s.column(&w.outbox, |e| e.time),
        s.column(&w.outbox, |e| e.traceparent.clone()),
    );
    s.part(sql);
    true
}

fn stock(s: &mut Statement, w: &Writes) {
    if !w.release_allocations.is_empty() {
        let sql = format!(
            "released AS (UPDATE allocations SET released_at = now()
               WHERE order_id = ANY({}::text[]) AND released_at IS NULL)",
            s.bind(w.release_allocations.clone()),
        );
        s.part(sql);
    }
    let allocations: Vec<_> = w.allocations().collect();
    if !allocations.is_empty() {
        let sql = format!(
            "allocated AS (INSERT INTO allocations (order_id, version, sku, quantity, released_at)
               SELECT o, v, sk, q, CASE WHEN r THEN now() END
               FROM unnest({}::text[], {}::int[], {}::text[], {}::int[], {}::bool[])
                 AS u(o, v, sk, q, r))",
            s.column(&allocations, |a| a.0.to_owned()),
            s.column(&allocations, |a| version(a.1)),
            s.column(&allocations, |a| a.2.to_owned()),
            s.column(&allocations, |a| version(a.3)),
            s.column(&allocations, |a| a.4),
        );
        s.part(sql);
    }
    let deltas: Vec<(String, i64)> = w
        .stock
        .iter()
        .filter(|(_, d)| **d != 0)
        .map(|(sku, d)| (sku.clone(), *d))
        .collect();
    if !deltas.is_empty() {
        let sql = format!(
            "stocked AS (UPDATE stock SET available = available + u.delta, updated_at = now()
               FROM unnest({}::text[], {}::bigint[]) AS u(sku, delta) WHERE stock.sku = u.sku
               RETURNING 1)",
            s.column(&deltas, |d| d.0.clone()),
            s.column(&deltas, |d| d.1),
        );
        s.part(sql);
        s.guard("stocked", "stock rows", deltas.len());
    }
}

fn documents(s: &mut Statement, w: &Writes) {
    if !w.void_documents.is_empty() {
        let sql = format!(
            "voided AS (UPDATE documents SET voided_at = now()
               WHERE order_id = ANY({}::text[]) AND voided_at IS NULL)",
            s.bind(w.void_documents.clone()),
        );
        s.part(sql);
    }
    let documents: Vec<_> = w.documents().collect();
    if !documents.is_empty() {
        let sql = format!(
            "issued AS (INSERT INTO documents (order_id, version, kind, number, sha256, pdf,
                 content, issued_at, voided_at)
               SELECT o, v, k, nu, sh, p, c, i, CASE WHEN vd THEN now() END
               FROM unnest({}::text[], {}::int[], {}::text[], {}::text[], {}::text[],
                 {}::bytea[], {}::jsonb[], {}::timestamptz[], {}::bool[])
                 AS u(o, v, k, nu, sh, p, c, i, vd))",
            s.column(&documents, |d| d.0.to_owned()),
            s.column(&documents, |d| version(d.1.content.version)),
            s.column(&documents, |d| d.1.content.kind.as_str().to_owned()),
            s.column(&documents, |d| d.1.content.number.clone()),
            s.column(&documents, |d| d.1.sha256.clone()),
            s.column(&documents, |d| d.1.pdf.clone()),
            s.column(&documents, |d| {
                serde_json::to_value(&d.1.content).expect("documents always serialise")
            }),
            s.column(&documents, |d| d.1.content.issued_at),
            s.column(&documents, |d| d.2),
        );
        s.part(sql);
    }
    if !w.sequences.is_empty() {
        let sequences: Vec<(String, i64)> = w
            .sequences
            .iter()
            .map(|(kind, next)| ((*kind).to_owned(), *next))
            .collect();
        let sql = format!(
            "numbered AS (UPDATE document_sequences q SET next_value = u.next
               FROM unnest({}::text[], {}::bigint[]) AS u(kind, next) WHERE q.kind = u.kind)",
            s.column(&sequences, |q| q.0.clone()),
            s.column(&sequences, |q| q.1),
        );
        s.part(sql);
    }
}

fn timers(s: &mut Statement, w: &Writes) {
    if !w.cancel_timers.is_empty() {
        let sql = format!(
            "cancelled AS (UPDATE timers t SET cancelled_at = now()
               FROM unnest({}::text[], {}::text[]) AS u(o, k)
               WHERE t.order_id = u.o AND t.kind = u.k AND t.fired_at IS NULL
                 AND t.cancelled_at IS NULL)",
            s.column(&w.cancel_timers, |c| c.0.clone()),
            s.column(&w.cancel_timers, |c| c.1.to_owned()),
        );
        s.part(sql);
    }
    let timers: Vec<_> = w.timers().collect();
    if !timers.is_empty() {
        let sql = format!(
            "scheduled AS (INSERT INTO timers (order_id, kind, due_at, payload, traceparent,
                 cancelled_at)
               SELECT o, k, d, p, tp, CASE WHEN c THEN now() END
               FROM unnest({}::text[], {}::text[], {}::timestamptz[], {}::jsonb[], {}::text[],
                 {}::bool[]) AS u(o, k, d, p, tp, c)
               ON CONFLICT (order_id, kind, payload) DO NOTHING)",
            s.column(&timers, |t| t.0.to_owned()),
            s.column(&timers, |t| t.1.kind.as_str().to_owned()),
            s.column(&timers, |t| t.1.due_at),
            s.column(&timers, |t| t.1.payload.clone()),
            s.column(&timers, |t| t.2.map(str::to_owned)),
            s.column(&timers, |t| t.3),
        );
        s.part(sql);
    }
}

fn answers(s: &mut Statement, w: &Writes) {
    if w.answers.is_empty() {
        return;
    }
    let sql = format!(
        "answered AS (INSERT INTO customer_confirmations (order_id, message_id, outcome, reason)
           SELECT o, m, oc, r FROM unnest({}::text[], {}::text[], {}::text[], {}::text[])
           WITH ORDINALITY AS u(o, m, oc, r, n) ORDER BY n)",
        s.column(&w.answers, |a| a.0.clone()),
        s.column(&w.answers, |a| a.1.message_id.clone()),
        s.column(&w.answers, |a| a.1.outcome.as_str().to_owned()),
        s.column(&w.answers, |a| a.1.reason.clone()),
    );
    s.part(sql);
}

fn revenue(s: &mut Statement, w: &Writes) {
    if !w.reverse_recognitions.is_empty() {
        let sql = format!(
            "reversed AS (UPDATE recognitions SET reversed_at = now()
               WHERE order_id = ANY({}::text[]) AND reversed_at IS NULL)",
            s.bind(w.reverse_recognitions.clone()),
        );
        s.part(sql);
    }
    let recognitions: Vec<_> = w.recognitions().collect();
    if !recognitions.is_empty() {
        let sql = format!(
            "recognised AS (INSERT INTO recognitions (order_id, line_no, instalment, amount_minor,
                 tax_minor, basis, control_passed_at, evidence, reversed_at)
               SELECT o, l, i, a, t, ba, c, ARRAY[e], CASE WHEN r THEN now() END
               FROM unnest({}::text[], {}::int[], {}::int[], {}::bigint[], {}::bigint[],
                 {}::text[], {}::timestamptz[], {}::text[], {}::bool[])
                 AS u(o, l, i, a, t, ba, c, e, r))",
            s.column(&recognitions, |r| r.0.to_owned()),
            s.column(&recognitions, |r| version(r.1.line_no)),
            s.column(&recognitions, |r| version(r.1.instalment)),
            s.column(&recognitions, |r| r.1.amount_minor),
            s.column(&recognitions, |r| r.1.tax_minor),
            s.column(&recognitions, |r| r.1.basis.to_owned()),
            s.column(&recognitions, |r| r.1.control_passed_at),
            s.column(&recognitions, |r| r.1.evidence.clone()),
            s.column(&recognitions, |r| r.2),
        );
        s.part(sql);
    }
    if w.ledger.is_empty() {
        return;
    }
    let amounts = |e: &Entry| match *e {
        Entry::Debit(_, m) => (m, 0),
        Entry::Credit(_, m) => (0, m),
    };
    let sql = format!(
        "posted AS (INSERT INTO ledger_entries (posting_id, order_id, account, debit_minor,
             credit_minor, currency, memo, kind)
           SELECT p, o, a, d, c, cu, m, k FROM unnest({}::uuid[], {}::text[], {}::text[],
             {}::bigint[], {}::bigint[], {}::text[], {}::text[], {}::text[])
           WITH ORDINALITY AS u(p, o, a, d, c, cu, m, k, n) ORDER BY n)",
        s.column(&w.ledger, |l| l.posting_id),
        s.column(&w.ledger, |l| l.order_id.clone()),
        s.column(&w.ledger, |l| l.entry.signed().0.as_str().to_owned()),
        s.column(&w.ledger, |l| amounts(&l.entry).0),
        s.column(&w.ledger, |l| amounts(&l.entry).1),
        s.column(&w.ledger, |l| l.currency.clone()),
        s.column(&w.ledger, |l| l.memo.clone()),
        s.column(&w.ledger, |l| l.kind.to_owned()),
    );
    s.part(sql);
}

fn payments(s: &mut Statement, w: &Writes) {
    if w.payments.is_empty() {
        return;
    }
    let mut payments = w.payments.clone();
    payments.sort_by(|a, b| a.1.reference.cmp(&b.1.reference));
    let sql = format!(
        "paid AS (INSERT INTO payments (order_id, payment_reference, amount_minor, currency,
             captured_at)
           SELECT o, r, a, c, t FROM unnest({}::text[], {}::text[], {}::bigint[], {}::text[],
             {}::timestamptz[]) WITH ORDINALITY AS u(o, r, a, c, t, n) ORDER BY n
           ON CONFLICT (payment_reference) DO NOTHING RETURNING 1)",
        s.column(&payments, |p| p.0.clone()),
        s.column(&payments, |p| p.1.reference.clone()),
        s.column(&payments, |p| p.1.amount_minor),
        s.column(&payments, |p| p.1.currency.to_string()),
        s.column(&payments, |p| p.1.captured_at),
    );
    s.part(sql);
    s.guard("paid", "payments", payments.len());
}

/// Settles the open cases that held an earlier version of an amended order. A case opened by
/// this same statement is not among them (a statement's parts all see the database as it was
/// before it), so a refusal of the new version stays open.
fn superseded_cases(s: &mut Statement, w: &Writes) {
    if w.supersede_cases.is_empty() {
        return;
    }
    let sql = format!(
        "superseded AS (UPDATE review_cases c SET status = 'superseded', resolved_at = now(),
             updated_at = now()
           FROM unnest({}::text[], {}::int[]) AS u(o, v)
           WHERE c.order_id = u.o AND c.status = 'open' AND c.stage IN ('verify', 'prepare')
             AND c.reason <> 'duplicate_order_id'
           RETURNING c.id, u.v),
         superseded_actions AS (INSERT INTO review_actions (case_id, action, actor, note)
           SELECT id, 'superseded', 'pipeline', 'the order was amended to version ' || v
           FROM superseded)",
        s.column(&w.supersede_cases, |c| c.0.clone()),
        s.column(&w.supersede_cases, |c| version(c.1)),
    );
    s.part(sql);
}

fn cases(s: &mut Statement, stage: &str, w: &Writes) {
    if w.cases.is_empty() {
        return;
    }
    let sql = format!(
        "cases AS (INSERT INTO review_cases (id, order_id, stage, reason, detail, required_role,
             original_body, original_properties, message_key)
           SELECT i, o, {stage}, r, d, ro, bo, p, k FROM unnest({}::bigint[], {}::text[],
             {}::text[], {}::text[], {}::text[], {}::bytea[], {}::bytea[], {}::text[])
             AS u(i, o, r, d, ro, bo, p, k))",
        s.column(&w.cases, |c| c.id),
        s.column(&w.cases, |c| c.order_id.clone()),
        s.column(&w.cases, |c| c.escalation.reason.to_owned()),
        s.column(&w.cases, |c| c.escalation.detail.clone()),
        s.column(&w.cases, |c| c.escalation.role.as_str().to_owned()),
        s.column(&w.cases, |c| c.body.clone()),
        s.column(&w.cases, |c| c.properties.clone()),
        s.column(&w.cases, |c| c.message_key.clone()),
    );
    s.part(sql);
}
