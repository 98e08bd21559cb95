//! The double-entry ledger's vocabulary: accounts, entries and balanced postings, in integer
//! minor units. Writing them is the database layer's business.

use std::fmt;

/// Ledger accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// Every account.
    pub const ALL: [Account; 5] = [
        Account::Receivable,
        Account::DeferredRevenue,
        Account::Revenue,
        Account::TaxPayable,
        Account::Cash,
    ];

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

    /// The account with this stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a posting is for. Reversing an order's recognitions reverses exactly the postings of
/// kind [`PostingKind::Recognition`] (and earlier reversals), never its payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostingKind {
    /// Revenue recognised.
    Recognition,
    /// Recognised revenue taken back (amendment, cancellation).
    Reversal,
    /// Money received.
    Payment,
}

impl PostingKind {
    /// The kind's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            PostingKind::Recognition => "recognition",
            PostingKind::Reversal => "reversal",
            PostingKind::Payment => "payment",
        }
    }

    /// The kind with this stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            PostingKind::Recognition,
            PostingKind::Reversal,
            PostingKind::Payment,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
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

impl Entry {
    /// The entry's effect on its account's balance (debits minus credits).
    pub fn signed(self) -> (Account, i64) {
        match self {
            Entry::Debit(account, amount) => (account, amount),
            Entry::Credit(account, amount) => (account, -amount),
        }
    }
}

/// A balanced set of entries for one order, booked together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// What it is for.
    pub kind: PostingKind,
    /// Why, for people reading the ledger.
    pub memo: String,
    /// The entries; zero amounts are left out when written.
    pub entries: Vec<Entry>,
}

/// A posting whose debits and credits differ: always a bug, never data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unbalanced posting: debits {debits}, credits {credits}")]
pub struct Unbalanced {
    /// Sum of debits.
    pub debits: i64,
    /// Sum of credits.
    pub credits: i64,
}

impl Posting {
    /// A posting of `entries`, refused unless debits equal credits and no amount is negative.
    pub fn new(
        kind: PostingKind,
        memo: impl Into<String>,
        entries: Vec<Entry>,
    ) -> Result<Self, Unbalanced> {
        let (mut debits, mut credits) = (0i64, 0i64);
        let mut negative = false;
        for entry in &entries {
            match *entry {
                Entry::Debit(_, m) => debits = debits.saturating_add(m),
                Entry::Credit(_, m) => credits = credits.saturating_add(m),
            }
            negative |= matches!(*entry, Entry::Debit(_, m) | Entry::Credit(_, m) if m < 0);
        }
        if debits != credits || negative {
            return Err(Unbalanced { debits, credits });
        }
        Ok(Self {
            kind,
            memo: memo.into(),
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_must_balance() {
        let ok = Posting::new(
            PostingKind::Payment,
            "payment",
            vec![
                Entry::Debit(Account::Cash, 100),
                Entry::Credit(Account::Receivable, 60),
                Entry::Credit(Account::DeferredRevenue, 40),
            ],
        );
        assert!(ok.is_ok());
        let off = vec![
            Entry::Debit(Account::Cash, 100),
            Entry::Credit(Account::Receivable, 99),
        ];
        assert!(Posting::new(PostingKind::Payment, "x", off).is_err());
        let negative = vec![
            Entry::Debit(Account::Cash, -5),
            Entry::Credit(Account::Receivable, -5),
        ];
        assert!(Posting::new(PostingKind::Payment, "x", negative).is_err());
    }

    #[test]
    fn names_round_trip() {
        for account in Account::ALL {
            assert_eq!(Account::parse(account.as_str()), Some(account));
        }
    }
}
