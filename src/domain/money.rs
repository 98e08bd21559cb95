//! Money arithmetic in integer minor units: tax and formatting. No floats anywhere.

use super::order::Currency;

/// Tax on a net amount at `rate_bp` basis points, rounded half up to the minor unit.
pub fn tax_minor(net_minor: i64, rate_bp: u32) -> i64 {
    let product = i128::from(net_minor) * i128::from(rate_bp);
    let rounded = if product >= 0 {
        (product + 5_000) / 10_000
    } else {
        (product - 5_000) / 10_000
    };
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

/// The discount of `unit` below `list`, in basis points, rounded up (a discount of 10.001% is
/// more than 10%).
pub fn discount_bp(list_minor: i64, unit_minor: i64) -> u32 {
    if list_minor <= 0 || unit_minor >= list_minor {
        return 0;
    }
    let off = i128::from(list_minor - unit_minor) * 10_000;
    let list = i128::from(list_minor);
    u32::try_from((off + list - 1) / list).unwrap_or(u32::MAX)
}

/// Digits after the decimal point for a currency (ISO 4217 minor unit).
pub fn exponent(currency: Currency) -> u32 {
    match currency.as_str() {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
        _ => 2,
    }
}

/// Formats minor units for people: `1250` GBP is `12.50 GBP`.
pub fn format(amount_minor: i64, currency: Currency) -> String {
    format!("{} {currency}", digits(amount_minor, currency))
}

/// Minor units as a decimal number without the currency: `1250` GBP is `12.50`.
pub fn digits(amount_minor: i64, currency: Currency) -> String {
    let exp = exponent(currency);
    if exp == 0 {
        return amount_minor.to_string();
    }
    let scale = 10i64.pow(exp);
    let sign = if amount_minor < 0 { "-" } else { "" };
    let abs = amount_minor.unsigned_abs();
    let (major, minor) = (abs / scale as u64, abs % scale as u64);
    format!("{sign}{major}.{minor:0width$}", width = exp as usize)
}

/// The currency's symbol where it has a common one (`£`, `€`, `$`, `¥`).
pub fn symbol(currency: Currency) -> Option<&'static str> {
    match currency.as_str() {
        "GBP" => Some("£"),
        "EUR" => Some("€"),
        "USD" => Some("$"),
        "JPY" => Some("¥"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_rounds_half_up_in_minor_units() {
        assert_eq!(tax_minor(1250, 2000), 250);
        assert_eq!(tax_minor(699, 2000), 140); // 139.8
        assert_eq!(tax_minor(2, 2500), 1); // 0.5 rounds up
        assert_eq!(tax_minor(1, 2000), 0); // 0.2 rounds down
        assert_eq!(tax_minor(4500, 0), 0);
    }

    #[test]
    fn discounts_round_up_so_limits_are_never_exceeded_by_rounding() {
        assert_eq!(discount_bp(1000, 900), 1000);
        assert_eq!(discount_bp(1000, 1000), 0);
        assert_eq!(discount_bp(3, 2), 3334);
        assert_eq!(discount_bp(1000, 1100), 0);
    }

    #[test]
    fn formats_by_currency_exponent() {
        let gbp = Currency::parse("GBP").unwrap();
        assert_eq!(format(1250, gbp), "12.50 GBP");
        assert_eq!(format(5, gbp), "0.05 GBP");
        assert_eq!(format(-5, gbp), "-0.05 GBP");
        assert_eq!(format(1500, Currency::parse("JPY").unwrap()), "1500 JPY");
        assert_eq!(format(1500, Currency::parse("KWD").unwrap()), "1.500 KWD");
    }
}
