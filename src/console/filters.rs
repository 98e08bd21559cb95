//! The filters of the case and order lists, read from a query string the same way for the
//! console's pages and its JSON endpoints: text is checked against the identifier limits and
//! numbers and dates must parse, before anything reaches the database. An empty value does not
//! filter.

use chrono::{NaiveDate, TimeZone, Utc};

use crate::db::search::{CaseSearch, OrderFilter};
use crate::domain::text::{self, Problem, TextError};

use super::session::Fields;

/// Orders on one page of the list (unless `per_page` says otherwise, up to [`MAX_PER_PAGE`]).
pub const PER_PAGE: i64 = 25;
/// The most orders one page lists.
pub const MAX_PER_PAGE: i64 = 200;

/// The fields of a query string.
pub fn query(raw: Option<&str>) -> Fields {
    Fields(
        url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect(),
    )
}

/// An identifier-like field, or `None` when absent or empty.
fn identifier(fields: &Fields, name: &str) -> Result<Option<String>, TextError> {
    match fields.get(name).map(str::trim).filter(|v| !v.is_empty()) {
        Some(value) => {
            text::identifier(name, value)?;
            Ok(Some(value.to_owned()))
        }
        None => Ok(None),
    }
}

/// A whole number between `min` and `max`, or `None` when absent or empty.
fn number(fields: &Fields, name: &str, min: i64, max: i64) -> Result<Option<i64>, TextError> {
    let Some(raw) = fields.get(name).map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let out_of_range = || TextError {
        field: name.to_owned(),
        problem: Problem::OutOfRange { min, max },
    };
    let value: i64 = raw.parse().map_err(|_| out_of_range())?;
    text::within(name, value, min, max)?;
    Ok(Some(value))
}

/// A date (`YYYY-MM-DD`), or `None` when absent or empty.
fn date(fields: &Fields, name: &str) -> Result<Option<NaiveDate>, TextError> {
    let Some(raw) = fields.get(name).map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| TextError {
            field: name.to_owned(),
            problem: Problem::OutOfRange { min: 1, max: 9999 },
        })
}

/// The case filter: `status` (the console's pages default to `open`; `any` for every status),
/// `reason`, `stage`, `role`, `older_than_mins`, `order_id`, `customer_id`.
pub fn cases(fields: &Fields, default_status: Option<&str>) -> Result<CaseSearch, TextError> {
    let status = match identifier(fields, "status")? {
        Some(s) if s == "any" => None,
        Some(s) => Some(s),
        None => default_status.map(str::to_owned),
    };
    let max_mins = crate::db::review::MAX_OLDER_THAN_SECS / 60;
    Ok(CaseSearch {
        status,
        reason: identifier(fields, "reason")?,
        stage: identifier(fields, "stage")?,
        role: identifier(fields, "role")?,
        older_than_secs: number(fields, "older_than_mins", 0, max_mins)?.map(|m| m * 60),
        order_id: identifier(fields, "order_id")?,
        customer_id: identifier(fields, "customer_id")?,
    })
}

/// The order filter and page: `order_id` (part of an id), `customer_id`, `state`, `channel`,
/// `placed_from` and `placed_to` (dates, both included), `page` (from 1), `per_page`.
pub fn orders(fields: &Fields) -> Result<(OrderFilter, i64, i64), TextError> {
    let start = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"));
    let filter = OrderFilter {
        order_id: identifier(fields, "order_id")?,
        customer_id: identifier(fields, "customer_id")?,
        state: identifier(fields, "state")?,
        channel: identifier(fields, "channel")?,
        placed_from: date(fields, "placed_from")?.map(start),
        placed_before: date(fields, "placed_to")?
            .and_then(|d| d.succ_opt())
            .map(start),
    };
    let page = number(fields, "page", 1, 1_000_000)?.unwrap_or(1);
    let per_page = number(fields, "per_page", 1, MAX_PER_PAGE)?.unwrap_or(PER_PAGE);
    Ok((filter, page, per_page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked_and_empty_ones_do_not_filter() {
        let (filter, page, per_page) = orders(&query(Some(
            "customer_id=CUST-042&state=&placed_from=2026-11-01&placed_to=2026-11-30&page=2",
        )))
        .unwrap();
        assert_eq!(filter.customer_id.as_deref(), Some("CUST-042"));
        assert_eq!(filter.state, None);
        assert_eq!(
            filter.placed_before.unwrap().to_rfc3339(),
            "2026-12-01T00:00:00+00:00",
            "the last day is included"
        );
        assert_eq!((page, per_page), (2, PER_PAGE));
        for bad in [
            "page=0",
            "per_page=201",
            "placed_from=30/11/2026",
            "state=a%00b",
        ] {
            assert!(orders(&query(Some(bad))).is_err(), "{bad}");
        }
        let open = cases(&query(None), Some("open")).unwrap();
        assert_eq!(open.status.as_deref(), Some("open"));
        let any = cases(&query(Some("status=any&older_than_mins=5")), Some("open")).unwrap();
        assert_eq!((any.status, any.older_than_secs), (None, Some(300)));
    }
}
