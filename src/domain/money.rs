//! Money as integer minor units plus an ISO 4217 currency, and billing periods.
//!
//! Prices are never floats: `4.99 USD` is `Money { minor_units: 499, currency: USD }`, and
//! `50000 VND` is `50000` (the dong has no minor unit).

use std::fmt;
use std::num::NonZeroU32;

use super::ValidationError;

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// # Errors
    /// Anything but three ASCII letters (case is folded to upper).
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let bytes = text.trim().as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_alphabetic) => Ok(Self([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
                c.to_ascii_uppercase(),
            ])),
            _ => Err(ValidationError::new(
                "currency",
                format!("{text:?} is not an ISO 4217 currency code (e.g. USD, EUR, VND)"),
            )),
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        // Constructed only from ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Digits after the decimal point in this currency (ISO 4217 minor unit).
    #[must_use]
    pub fn exponent(self) -> u32 {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
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
    /// `4.99`, `5`, `50000`, `50,000` (thousands separators are accepted only as `,` groups
    /// of three when the currency has no minor unit, or as `_`/space anywhere).
    ///
    /// # Errors
    /// Not a number, negative, more decimals than the currency has, or too large.
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
        let exponent = currency.exponent();
        if exponent == 0 {
            // "50,000" or "50.000" are thousands separators for a currency without decimals.
            cleaned = cleaned.replace([',', '.'], "");
        } else if cleaned.contains(',') && !cleaned.contains('.') {
            // "4,99": a decimal comma.
            cleaned = cleaned.replace(',', ".");
        } else {
            cleaned = cleaned.replace(',', "");
        }
        if cleaned.is_empty() {
            return Err(err("it is empty"));
        }
        if cleaned.starts_with('-') {
            return Err(err("prices cannot be negative"));
        }
        let (whole, fraction) = cleaned.split_once('.').unwrap_or((&cleaned, ""));
        if whole.is_empty() && fraction.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err("use digits and at most one decimal point, e.g. 4.99"));
        }
        if fraction.len() > exponent as usize {
            return Err(err(&format!("{currency} has {exponent} decimal place(s)")));
        }
        let scale = 10_i64.pow(exponent);
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| err("it is too large"))?
        };
        let mut frac_units: i64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| err("it is too large"))?
        };
        for _ in fraction.len()..exponent as usize {
            frac_units *= 10;
        }
        let minor = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(frac_units))
            .ok_or_else(|| err("it is too large"))?;
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
            too_precise.to_string().contains("2 decimal place"),
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
