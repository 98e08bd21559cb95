//! Limits on the text and numbers that come from outside, checked before any database work.
//!
//! Everything the pipeline stores or logs from a message or a request passes one of these checks
//! first, so that a NUL byte, a control character, a 20 KB identifier or an amount near
//! `i64::MAX` is refused with the field's name instead of failing later in Postgres (which
//! refuses NUL in text, and an index entry over about 2,700 bytes) or overflowing a sum.
//!
//! | kind | rule |
//! |---|---|
//! | identifier (customer, SKU, agent, delivery terms, identity method, payment reference) | 1 to [`MAX_IDENTIFIER_CHARS`] characters, no control characters, no leading or trailing white space |
//! | event id (CloudEvents `id`) | 1 to [`MAX_EVENT_ID_CHARS`] characters, no control characters |
//! | free text (complaint or query, review note) | at most [`MAX_TEXT_CHARS`] characters, no control characters but line feed and tab |
//! | amount in minor units | 0 to [`MAX_AMOUNT_MINOR`] |
//! | order lines | 1 to [`MAX_ORDER_LINES`], each quantity 1 to [`MAX_QUANTITY`] |

use std::fmt;

/// The longest identifier, in characters.
pub const MAX_IDENTIFIER_CHARS: usize = 64;
/// The longest CloudEvents `id`, in characters.
pub const MAX_EVENT_ID_CHARS: usize = 200;
/// The longest free text, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// The largest amount in minor units (10^15: ten trillion pounds, dollars or euros), far below
/// `i64::MAX`, so that sums of amounts never overflow.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000_000;
/// The most lines an order may have.
pub const MAX_ORDER_LINES: usize = 1000;
/// The most units one order line may have.
pub const MAX_QUANTITY: u32 = 1_000_000;

/// Why a value was refused, without the value itself (it may be huge or hostile).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct TextError {
    /// The field, such as `customer_id` or `lines[2].sku`.
    pub field: String,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Nothing there (or only white space).
    Empty,
    /// More characters than allowed.
    TooLong {
        /// How many it has.
        chars: usize,
        /// How many are allowed.
        max: usize,
    },
    /// A control character, such as NUL, a line break or an escape.
    ControlCharacter {
        /// Its position, counted in characters from 0.
        at: usize,
        /// Its code point.
        code: u32,
    },
    /// White space at the start or the end.
    OuterWhitespace,
    /// A time outside the years 1970 to 9999.
    YearOutOfRange,
    /// A number outside its range.
    OutOfRange {
        /// The smallest allowed.
        min: i64,
        /// The largest allowed.
        max: i64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Empty => f.write_str("must not be empty"),
            Problem::TooLong { chars, max } => {
                write!(f, "must be at most {max} characters, has {chars}")
            }
            Problem::ControlCharacter { at, code } => {
                write!(
                    f,
                    "must not contain control characters (U+{code:04X} at character {at})"
                )
            }
            Problem::OuterWhitespace => f.write_str("must not start or end with white space"),
            Problem::OutOfRange { min, max } => write!(f, "must be between {min} and {max}"),
            Problem::YearOutOfRange => {
                write!(
                    f,
                    "must be a time between {EARLIEST_TIME} and {LATEST_TIME}"
                )
            }
        }
    }
}

fn refuse(field: &str, problem: Problem) -> Result<(), TextError> {
    Err(TextError {
        field: field.to_owned(),
        problem,
    })
}

/// The first control character and its position, allowing those in `allowed`.
fn control_character(value: &str, allowed: &[char]) -> Option<Problem> {
    value
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && !allowed.contains(c))
        .map(|(at, c)| Problem::ControlCharacter {
            at,
            code: u32::from(c),
        })
}

fn length(field: &str, value: &str, max: usize) -> Result<(), TextError> {
    // Counting stops just past the limit: a 20 MB value costs no more than a short one.
    let chars = value.chars().take(max + 1).count();
    if chars > max {
        let chars = value.chars().count();
        return refuse(field, Problem::TooLong { chars, max });
    }
    Ok(())
}

/// Checks an identifier: 1 to [`MAX_IDENTIFIER_CHARS`] characters, no control characters, no
/// white space at either end.
pub fn identifier(field: &str, value: &str) -> Result<(), TextError> {
    bounded(field, value, MAX_IDENTIFIER_CHARS)
}

/// Checks a CloudEvents `id`: 1 to [`MAX_EVENT_ID_CHARS`] characters, no control characters.
pub fn event_id(field: &str, value: &str) -> Result<(), TextError> {
    bounded(field, value, MAX_EVENT_ID_CHARS)
}

fn bounded(field: &str, value: &str, max: usize) -> Result<(), TextError> {
    if value.trim().is_empty() {
        return refuse(field, Problem::Empty);
    }
    length(field, value, max)?;
    if let Some(problem) = control_character(value, &[]) {
        return refuse(field, problem);
    }
    if value.trim() != value {
        return refuse(field, Problem::OuterWhitespace);
    }
    Ok(())
}

/// Checks free text: at most [`MAX_TEXT_CHARS`] characters, no control characters but line feed
/// and tab. Empty text is allowed (callers that need some say so).
pub fn free_text(field: &str, value: &str) -> Result<(), TextError> {
    length(field, value, MAX_TEXT_CHARS)?;
    match control_character(value, &['\n', '\t']) {
        Some(problem) => refuse(field, problem),
        None => Ok(()),
    }
}

/// Checks an amount in minor units: 0 to [`MAX_AMOUNT_MINOR`].
pub fn amount(field: &str, value: i64) -> Result<(), TextError> {
    within(field, value, 0, MAX_AMOUNT_MINOR)
}

/// Checks that a number is between `min` and `max`.
pub fn within(field: &str, value: i64, min: i64, max: i64) -> Result<(), TextError> {
    match (min..=max).contains(&value) {
        true => Ok(()),
        false => refuse(field, Problem::OutOfRange { min, max }),
    }
}

/// The earliest business time accepted (orders placed, payments captured).
pub const EARLIEST_TIME: &str = "1970-01-01T00:00:00Z";
/// The latest business time accepted.
pub const LATEST_TIME: &str = "9999-12-31T23:59:59Z";

/// Checks a business time: between [`EARLIEST_TIME`] and [`LATEST_TIME`], where date arithmetic
/// and the database's timestamps are safe.
pub fn timestamp(field: &str, value: chrono::DateTime<chrono::Utc>) -> Result<(), TextError> {
    use chrono::Datelike;
    match (1970..=9999).contains(&value.year()) {
        true => Ok(()),
        false => refuse(field, Problem::YearOutOfRange),
    }
}

/// The JSON Schema of an identifier (see [`identifier`]): 1 to 64 characters, no control
/// characters, no white space at either end.
pub fn identifier_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_IDENTIFIER_CHARS,
        "pattern": IDENTIFIER_PATTERN,
    })
}

/// An identifier as a JSON Schema pattern: no control characters (C0, DEL, C1), no white space
/// at either end.
pub const IDENTIFIER_PATTERN: &str = "^[^\\s\\u0000-\\u001F\\u007F-\\u009F](?:[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F])?$";

/// The JSON Schema of free text (see [`free_text`]): at most 2000 characters, no control
/// characters but line feed and tab.
pub fn free_text_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "maxLength": MAX_TEXT_CHARS,
        "pattern": "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$",
    })
}

/// A value for logs and review details: control characters escaped, cut to `max` characters
/// with an ellipsis. For text that may be hostile and is shown to people.
pub fn excerpt(value: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_have_limits_that_name_the_field() {
        assert!(identifier("sku", "MUG-BLUE").is_ok());
        assert!(identifier("sku", "Café Crème 日本").is_ok());
        let cases = [
            ("", "sku: must not be empty"),
            ("   ", "sku: must not be empty"),
            (" A", "sku: must not start or end with white space"),
            (
                "A\u{0}B",
                "sku: must not contain control characters (U+0000 at character 1)",
            ),
            (
                "A\nB",
                "sku: must not contain control characters (U+000A at character 1)",
            ),
        ];
        for (value, message) in cases {
            assert_eq!(identifier("sku", value).unwrap_err().to_string(), message);
        }
        let long = "x".repeat(20_000);
        assert_eq!(
            identifier("sku", &long).unwrap_err().to_string(),
            "sku: must be at most 64 characters, has 20000"
        );
        assert!(
            identifier("sku", &"é".repeat(64)).is_ok(),
            "characters, not bytes"
        );
    }

    #[test]
    fn free_text_keeps_line_feeds_and_tabs_only() {
        assert!(free_text("reason", "It broke.\n\tTwice.").is_ok());
        assert!(free_text("reason", "").is_ok());
        assert!(free_text("reason", "bell\u{7}").is_err());
        assert!(free_text("reason", "\r").is_err());
        assert!(free_text("reason", &"x".repeat(MAX_TEXT_CHARS + 1)).is_err());
    }

    #[test]
    fn amounts_stay_far_from_overflow() {
        assert!(amount("amount_minor", 0).is_ok());
        assert!(amount("amount_minor", MAX_AMOUNT_MINOR).is_ok());
        assert!(amount("amount_minor", -1).is_err());
        assert!(amount("amount_minor", i64::MAX).is_err());
        // The sum of a thousand largest amounts still fits.
        assert!(MAX_AMOUNT_MINOR.checked_mul(1000).is_some());
    }

    #[test]
    fn excerpts_escape_and_cut() {
        assert_eq!(excerpt("a\nb\u{1b}[2J", 100), "a\\nb\\u{1b}[2J");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}
