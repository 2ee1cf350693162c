//! Money as integer minor units plus an ISO 4217 currency, and billing periods.
//!
//! Prices are never floats: `4.99 USD` is `Money { minor_units: 499, currency: USD }`, and
//! `50000 VND` is `50000` (the dong has no minor unit).

use std::fmt;
use std::num::NonZeroU32;

use super::ValidationError;

/// An ISO 4217 currency code that Docobo knows: one of [`ISO_4217`], upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

/// The active ISO 4217 currencies (the list maintained by SIX, as of 2025; precious metals,
/// testing and transaction codes left out), grouped by their minor unit: the number of
/// digits after the decimal point. Only these are accepted, so that every price has a
/// known number of decimals: an unknown code is refused instead of guessed at 2.
pub const ISO_4217: [(u32, &[&str]); 4] = [
    (
        0,
        &[
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
            "VND", "VUV", "XAF", "XOF", "XPF",
        ],
    ),
    (
        2,
        &[
            "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
            "BGN", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
            "CDF", "CHE", "CHF", "CHW", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DKK",
            "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP",
            "GMD", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IRR", "JMD",
            "KES", "KGS", "KHR", "KPW", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD",
            "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV",
            "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "PAB", "PEN", "PGK", "PHP",
            "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD",
            "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT",
            "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "USN", "UYU", "UZS", "VED", "VES",
            "WST", "XCD", "XCG", "YER", "ZAR", "ZMW", "ZWG",
        ],
    ),
    (3, &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"]),
    (4, &["CLF", "UYW"]),
];

impl Currency {
    /// # Errors
    /// Anything but an active ISO 4217 code ([`ISO_4217`]; case is folded to upper).
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let code = text.trim().to_ascii_uppercase();
        let known = ISO_4217
            .iter()
            .any(|(_, codes)| codes.contains(&code.as_str()));
        match code.as_bytes() {
            &[a, b, c] if known => Ok(Self([a, b, c])),
            _ => Err(ValidationError::new(
                "currency",
                format!(
                    "{text:?} is not an ISO 4217 currency code Docobo knows (e.g. USD, EUR, VND)"
                ),
            )),
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        // Constructed only from the ASCII codes of `ISO_4217`.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Digits after the decimal point in this currency (its ISO 4217 minor unit).
    #[must_use]
    pub fn exponent(self) -> u32 {
        ISO_4217
            .iter()
            .find(|(_, codes)| codes.contains(&self.as_str()))
            .map_or(2, |(exponent, _)| *exponent)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor_units: i64,
    currency: Currency,
}

impl Money {
    /// # Errors
    /// Negative amounts (prices and payments are never negative here).
    pub fn new(minor_units: i64, currency: Currency) -> Result<Self, ValidationError> {
        if minor_units < 0 {
            return Err(ValidationError::new(
                "amount",
                format!("{minor_units} is negative; amounts must be zero or more"),
            ));
        }
        Ok(Self {
            minor_units,
            currency,
        })
    }

    /// Parses an amount written in the currency's major units, as an owner types a price:
    /// `4.99`, `5`, `1,234.50`, `4,99` (a decimal comma), `50000`, `50,000` or `50.000` (for
    /// a currency without a minor unit, `,` and `.` can only separate thousands), and `_` or
    /// spaces anywhere. Thousands separators must stand between groups of three digits.
    ///
    /// # Errors
    /// Not a number, negative, more decimals than the currency has (`49.99 VND`: the dong
    /// has none), misplaced separators, or more minor units than an `i64` holds.
    pub fn parse_major(text: &str, currency: Currency) -> Result<Self, ValidationError> {
        let err = |why: &str| {
            ValidationError::new(
                "price",
                format!("{text:?} is not a valid {currency} amount: {why}"),
            )
        };
        let mut cleaned: String = text
            .trim()
            .chars()
            .filter(|c| *c != '_' && *c != ' ')
            .collect();
        if let Some(stripped) = cleaned.strip_suffix(currency.as_str()) {
            cleaned = stripped.trim().to_owned();
        }
        if cleaned.is_empty() {
            return Err(err("it is empty"));
        }
        if cleaned.starts_with('-') {
            return Err(err("prices cannot be negative"));
        }
        let exponent = currency.exponent();
        let (whole, fraction) = if exponent == 0 {
            // No decimals: "50,000" and "50.000" are thousands; "49.99" and "50.5" are not
            // read as 4999 and 505.
            (cleaned.as_str(), "")
        } else if cleaned.contains(',')
            && !cleaned.contains('.')
            && cleaned.matches(',').count() == 1
        {
            // "4,99": a decimal comma.
            cleaned.split_once(',').unwrap_or((&cleaned, ""))
        } else {
            cleaned.split_once('.').unwrap_or((&cleaned, ""))
        };
        if !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("use digits and at most one decimal point, e.g. 4.99"));
        }
        let whole = thousands(whole).ok_or_else(|| {
            if exponent == 0 && (whole.contains('.') || whole.contains(',')) {
                err(&format!(
                    "{currency} has no decimals; write a whole number (e.g. 50000 or 50,000)"
                ))
            } else {
                err("use digits, with , between groups of three (e.g. 1,234.50)")
            }
        })?;
        if whole.is_empty() && fraction.is_empty() {
            return Err(err("use digits and at most one decimal point, e.g. 4.99"));
        }
        if fraction.len() > exponent as usize {
            let kept = &fraction[..exponent as usize];
            let whole = if whole.is_empty() { "0" } else { &whole };
            return Err(err(&format!(
                "{currency} has {exponent} decimal place(s); round it, e.g. {whole}.{kept}"
            )));
        }
        let too_large = || err("it is too large (at most 9223372036854775807 minor units)");
        let scale = 10_i64.pow(exponent);
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| too_large())?
        };
        let mut frac_units: i64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| too_large())?
        };
        for _ in fraction.len()..exponent as usize {
            frac_units *= 10;
        }
        let minor = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(frac_units))
            .ok_or_else(too_large)?;
        Self::new(minor, currency)
    }

    #[must_use]
    pub fn minor_units(self) -> i64 {
        self.minor_units
    }

    #[must_use]
    pub fn currency(self) -> Currency {
        self.currency
    }
}

impl fmt::Display for Money {
    /// `4.99 USD`, `50000 VND`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exponent = self.currency.exponent();
        if exponent == 0 {
            return write!(f, "{} {}", self.minor_units, self.currency);
        }
        let scale = 10_i64.pow(exponent);
        write!(
            f,
            "{}.{:0width$} {}",
            self.minor_units / scale,
            self.minor_units % scale,
            self.currency,
            width = exponent as usize
        )
    }
}

/// The digits of a whole amount written with optional thousands separators (`,` or `.`,
/// one kind throughout) between groups of three: `1,234,567` → `1234567`. `None` for
/// anything else (`1,23`, `12,,345`, `1,234.567`, a sign).
fn thousands(text: &str) -> Option<String> {
    let separator = text.bytes().find(|b| *b == b',' || *b == b'.');
    let Some(separator) = separator else {
        return text
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.to_owned());
    };
    let mut groups = text.split(char::from(separator));
    let first = groups.next()?;
    if first.is_empty() || first.len() > 3 || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits = first.to_owned();
    for group in groups {
        if group.len() != 3 || !group.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.push_str(group);
    }
    Some(digits)
}

/// How a paid role is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Billing {
    Monthly,
    Yearly,
    /// Paid once, kept for good.
    OneTime,
    /// A pass of this many days (bank transfers); a second payment extends it.
    Days(NonZeroU32),
}

impl Billing {
    /// Parses `monthly`, `yearly`, `one-time` (or `once`), `30d`, `30 days`, `days:30`.
    ///
    /// # Errors
    /// Any other text, or a day count of zero or above 3660.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let t = text.trim().to_ascii_lowercase();
        let err = || {
            ValidationError::new(
                "billing",
                format!(
                    "{text:?} is not a billing period (use monthly, yearly, one-time, or a number of days such as 30d)"
                ),
            )
        };
        match t.as_str() {
            "monthly" | "month" => return Ok(Self::Monthly),
            "yearly" | "year" | "annual" => return Ok(Self::Yearly),
            "one-time" | "one_time" | "onetime" | "once" | "lifetime" => return Ok(Self::OneTime),
            _ => {}
        }
        let digits = t
            .strip_prefix("days:")
            .or_else(|| t.strip_suffix("days"))
            .or_else(|| t.strip_suffix("day"))
            .or_else(|| t.strip_suffix('d'))
            .ok_or_else(err)?
            .trim();
        let days: u32 = digits.parse().map_err(|_| err())?;
        match NonZeroU32::new(days) {
            Some(days) if days.get() <= 3660 => Ok(Self::Days(days)),
            _ => Err(ValidationError::new(
                "billing",
                format!("{days} days is out of range (1 to 3660)"),
            )),
        }
    }

    /// The stored form: `monthly`, `yearly`, `one-time`, `days:30`.
    #[must_use]
    pub fn to_db(self) -> String {
        match self {
            Self::Monthly => "monthly".into(),
            Self::Yearly => "yearly".into(),
            Self::OneTime => "one-time".into(),
            Self::Days(n) => format!("days:{n}"),
        }
    }

    /// Length of a pass in milliseconds, for `Days`.
    #[must_use]
    pub fn pass_length_ms(self) -> Option<i64> {
        match self {
            Self::Days(n) => Some(i64::from(n.get()) * 86_400_000),
            _ => None,
        }
    }
}

impl fmt::Display for Billing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Monthly => f.write_str("monthly"),
            Self::Yearly => f.write_str("yearly"),
            Self::OneTime => f.write_str("one-time"),
            Self::Days(n) => write!(f, "{n} days"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("usd").expect("valid")
    }
    fn vnd() -> Currency {
        Currency::parse("VND").expect("valid")
    }

    #[test]
    fn prices_parse_into_exact_minor_units() {
        let cases = [
            ("4.99", usd(), 499),
            ("5", usd(), 500),
            ("5.5", usd(), 550),
            ("0.01", usd(), 1),
            (".5", usd(), 50),
            ("1,234.50", usd(), 123_450),
            ("4,99", usd(), 499),
            ("4.99 USD", usd(), 499),
            ("50000", vnd(), 50_000),
            ("50,000", vnd(), 50_000),
            ("50.000", vnd(), 50_000),
            ("1 000 000", vnd(), 1_000_000),
        ];
        for (text, currency, minor) in cases {
            let money = Money::parse_major(text, currency).expect(text);
            assert_eq!(money.minor_units(), minor, "{text}");
        }
        assert_eq!(
            Money::parse_major("1.234", Currency::parse("KWD").expect("kwd"))
                .expect("3 decimals")
                .minor_units(),
            1234
        );
    }

    #[test]
    fn bad_prices_say_what_is_wrong() {
        let too_precise = Money::parse_major("4.999", usd()).expect_err("3 decimals in USD");
        assert!(
            too_precise
                .to_string()
                .contains("2 decimal place(s); round it, e.g. 4.99"),
            "{too_precise}"
        );
        let negative = Money::parse_major("-1", usd()).expect_err("negative");
        assert!(negative.to_string().contains("negative"), "{negative}");
        for junk in ["", "abc", "1.2.3", "4.9x", "99999999999999999999"] {
            assert!(Money::parse_major(junk, usd()).is_err(), "{junk:?}");
        }
        assert!(Currency::parse("US").is_err());
        assert!(Currency::parse("U$D").is_err());
    }

    #[test]
    fn an_amount_with_decimals_is_refused_in_a_currency_without_them() {
        // Once read as 4999 and 505 dong: the owner meant 49.99 or 50.5 of something.
        for lie in [
            "49.99", "50.5", "49,99", "50,5", "1.0", "12.34.56", "1,2345",
        ] {
            let err = Money::parse_major(lie, vnd()).expect_err(lie);
            assert_eq!(err.field, "price");
            assert!(err.message.contains("VND has no decimals"), "{lie}: {err}");
        }
        let err = parse_price_err("49.99 VND monthly");
        assert!(err.contains("VND has no decimals"), "{err}");
        // Thousands separators stay what they are.
        for (text, minor) in [
            ("50.000", 50_000),
            ("1.234.567", 1_234_567),
            ("50,000", 50_000),
        ] {
            assert_eq!(
                Money::parse_major(text, vnd()).expect(text).minor_units(),
                minor
            );
        }
        assert_eq!(
            Money::parse_major("1.5", Currency::parse("JPY").expect("yen")).map_err(|e| e.field),
            Err("price")
        );
    }

    fn parse_price_err(text: &str) -> String {
        crate::shop::parse_price(text).expect_err(text)
    }

    #[test]
    fn thousands_separators_must_group_by_three() {
        for lie in [
            "1,2,3.45",
            "12,34.00",
            "1,,234",
            ",123",
            "1234,567.00",
            "1,234,56.00",
        ] {
            assert!(Money::parse_major(lie, usd()).is_err(), "{lie}");
        }
        assert_eq!(
            Money::parse_major("1,234,567.89", usd())
                .expect("grouped")
                .minor_units(),
            123_456_789
        );
    }

    #[test]
    fn amounts_beyond_i64_minor_units_are_refused() {
        // i64::MAX minor units is the largest amount.
        assert_eq!(
            Money::parse_major("92233720368547758.07", usd())
                .expect("max")
                .minor_units(),
            i64::MAX
        );
        assert_eq!(
            Money::parse_major("9223372036854775807", vnd())
                .expect("max")
                .minor_units(),
            i64::MAX
        );
        for (text, currency) in [
            ("92233720368547758.08", usd()),
            ("92233720368547759", usd()),
            ("9223372036854775808", vnd()),
            ("9,223,372,036,854,775,808", vnd()),
            ("99999999999999999999999999", vnd()),
        ] {
            let err = Money::parse_major(text, currency).expect_err(text);
            assert!(err.message.contains("too large"), "{text}: {err}");
        }
        let err = parse_price_err("9223372036854775808 VND");
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn only_iso_4217_currencies_are_accepted_with_their_minor_units() {
        for (code, exponent) in [
            ("USD", 2),
            ("eur", 2),
            ("VND", 0),
            ("JPY", 0),
            ("KWD", 3),
            ("CLF", 4),
        ] {
            assert_eq!(
                Currency::parse(code).expect(code).exponent(),
                exponent,
                "{code}"
            );
        }
        // Three letters are not enough: an unknown code has no known number of decimals.
        for bad in ["XYZ", "ABC", "USDT", "EURO", "U D", "", "\u{0}US", "ÜSD"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?}");
        }
        // Every table entry is three upper-case letters, listed once.
        let mut seen = std::collections::BTreeSet::new();
        for (_, codes) in ISO_4217 {
            for code in codes {
                assert!(code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()));
                assert!(seen.insert(*code), "{code} listed twice");
            }
        }
    }

    #[test]
    fn money_displays_in_major_units() {
        assert_eq!(Money::new(499, usd()).expect("ok").to_string(), "4.99 USD");
        assert_eq!(Money::new(5, usd()).expect("ok").to_string(), "0.05 USD");
        assert_eq!(
            Money::new(50_000, vnd()).expect("ok").to_string(),
            "50000 VND"
        );
        assert!(Money::new(-1, usd()).is_err());
    }

    #[test]
    fn billing_periods_parse_and_round_trip_through_storage() {
        for (text, want) in [
            ("monthly", Billing::Monthly),
            ("Yearly", Billing::Yearly),
            ("one-time", Billing::OneTime),
            ("30d", Billing::Days(NonZeroU32::new(30).expect("nz"))),
            ("7 days", Billing::Days(NonZeroU32::new(7).expect("nz"))),
            ("days:90", Billing::Days(NonZeroU32::new(90).expect("nz"))),
        ] {
            let billing = Billing::parse(text).expect(text);
            assert_eq!(billing, want, "{text}");
            assert_eq!(Billing::parse(&billing.to_db()).expect("db form"), billing);
        }
        for bad in ["weekly", "0d", "-3d", "99999d", ""] {
            assert!(Billing::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Billing::Days(NonZeroU32::new(30).expect("nz")).pass_length_ms(),
            Some(30 * 86_400_000)
        );
    }
}
