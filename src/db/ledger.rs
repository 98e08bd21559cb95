//! Revenue recognitions, the double-entry ledger and payments.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// Ledger accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// What the customer owes.
    Receivable,
    /// Money received before the revenue it pays for is recognised.
    DeferredRevenue,
    /// Revenue recognised.
    Revenue,
    /// Tax collected for the tax authority.
    TaxPayable,
    /// Money received.
    Cash,
}

impl Account {
    /// The account's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Account::Receivable => "receivable",
            Account::DeferredRevenue => "deferred_revenue",
            Account::Revenue => "revenue",
            Account::TaxPayable => "tax_payable",
            Account::Cash => "cash",
        }
    }
}

/// One side of a posting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A debit to an account.
    Debit(Account, i64),
    /// A credit to an account.
    Credit(Account, i64),
}

/// Writes a balanced posting. Zero amounts are skipped.
///
/// # Panics
/// If the debits and credits differ: an unbalanced posting is a bug, never data.
pub async fn post(
    conn: &mut PgConnection,
    order_id: &str,
    currency: &str,
    memo: &str,
    entries: &[Entry],
) -> sqlx::Result<()> {
    let sum = |debit: bool| -> i64 {
        entries
            .iter()
            .map(|e| match (e, debit) {
                (Entry::Debit(_, m), true) | (Entry::Credit(_, m), false) => *m,
                _ => 0,
            })
            .sum()
    };
    assert_eq!(
        sum(true),
        sum(false),
        "unbalanced posting for {order_id}: {entries:?}"
    );
    let posting = Uuid::now_v7();
    for entry in entries {
        let (account, debit, credit) = match *entry {
            Entry::Debit(a, m) => (a, m, 0),
            Entry::Credit(a, m) => (a, 0, m),
        };
        if debit == 0 && credit == 0 {
            continue;
        }
        sqlx::query(
            "INSERT INTO ledger_entries (posting_id, order_id, account, debit_minor, credit_minor,
               currency, memo) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(posting)
        .bind(order_id)
        .bind(account.as_str())
        .bind(debit)
        .bind(credit)
        .bind(currency)
        .bind(memo)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// An account's balance for an order: debits minus credits.
pub async fn balance(
    conn: &mut PgConnection,
    order_id: &str,
    account: Account,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COALESCE(SUM(debit_minor - credit_minor), 0)::BIGINT FROM ledger_entries
         WHERE order_id = $1 AND account = $2",
    )
    .bind(order_id)
    .bind(account.as_str())
    .fetch_one(conn)
    .await
}

/// A recognition to record.
#[derive(Debug, Clone)]
pub struct NewRecognition<'a> {
    /// The order.
    pub order_id: &'a str,
    /// The line, from 0.
    pub line_no: u32,
    /// 0 for a whole line, else the instalment.
    pub instalment: u32,
    /// Net amount.
    pub amount_minor: i64,
    /// Tax.
    pub tax_minor: i64,
    /// The recognition point's name.
    pub basis: &'a str,
    /// When control passed.
    pub control_passed_at: DateTime<Utc>,
    /// Evidence event ids.
    pub evidence: &'a [String],
}

/// Records a recognition. Returns false if that line (and instalment) was already recognised.
pub async fn recognise(conn: &mut PgConnection, r: &NewRecognition<'_>) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO recognitions (order_id, line_no, instalment, amount_minor, tax_minor, basis,
           control_passed_at, evidence) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (order_id, line_no, instalment) WHERE reversed_at IS NULL DO NOTHING",
    )
    .bind(r.order_id)
    .bind(r.line_no as i32)
    .bind(r.instalment as i32)
    .bind(r.amount_minor)
    .bind(r.tax_minor)
    .bind(r.basis)
    .bind(r.control_passed_at)
    .bind(r.evidence)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The (line, instalment) pairs already recognised for an order and not reversed.
pub async fn recognised(conn: &mut PgConnection, order_id: &str) -> sqlx::Result<Vec<(u32, u32)>> {
    let rows: Vec<(i32, i32)> = sqlx::query_as(
        "SELECT line_no, instalment FROM recognitions WHERE order_id = $1 AND reversed_at IS NULL",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(l, i)| (l as u32, i as u32))
        .collect())
}

/// Records a payment. Returns false if the reference was already recorded.
pub async fn record_payment(
    conn: &mut PgConnection,
    order_id: &str,
    reference: &str,
    amount_minor: i64,
    currency: &str,
    captured_at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO payments (order_id, payment_reference, amount_minor, currency, captured_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (payment_reference) DO NOTHING",
    )
    .bind(order_id)
    .bind(reference)
    .bind(amount_minor)
    .bind(currency)
    .bind(captured_at)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Reverses every live recognition of an order: marks them reversed and posts the opposite of
/// every recognition posting, so the ledger still balances and revenue returns to zero.
pub async fn reverse_recognitions(
    conn: &mut PgConnection,
    order_id: &str,
    currency: &str,
    memo: &str,
) -> sqlx::Result<i64> {
    let reversed: i64 = sqlx::query_scalar(
        "WITH r AS (UPDATE recognitions SET reversed_at = now()
                    WHERE order_id = $1 AND reversed_at IS NULL RETURNING amount_minor)
         SELECT COALESCE(SUM(amount_minor), 0)::BIGINT FROM r",
    )
    .bind(order_id)
    .fetch_one(&mut *conn)
    .await?;
    let sums: Vec<(String, i64)> = sqlx::query_as(
        "SELECT account, SUM(debit_minor - credit_minor)::BIGINT FROM ledger_entries
         WHERE order_id = $1 AND (memo LIKE 'recognised%' OR memo LIKE 'reversal%')
         GROUP BY account",
    )
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    let entries: Vec<Entry> = sums
        .into_iter()
        .filter_map(|(account, net)| {
            let account = account_from_str(&account)?;
            match net {
                n if n > 0 => Some(Entry::Credit(account, n)),
                n if n < 0 => Some(Entry::Debit(account, -n)),
                _ => None,
            }
        })
        .collect();
    if !entries.is_empty() {
        post(
            conn,
            order_id,
            currency,
            &format!("reversal: {memo}"),
            &entries,
        )
        .await?;
    }
    Ok(reversed)
}

fn account_from_str(s: &str) -> Option<Account> {
    [
        Account::Receivable,
        Account::DeferredRevenue,
        Account::Revenue,
        Account::TaxPayable,
        Account::Cash,
    ]
    .into_iter()
    .find(|a| a.as_str() == s)
}
