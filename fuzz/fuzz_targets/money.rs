//! Money and billing parsing: a price as an owner types it in `/setup` (`parse_price`),
//! amounts in a currency's major units, currency codes and billing periods. What parses
//! must mean what was typed: it prints back to text that parses to the same value.

#![no_main]

use docobo::domain::{Billing, Currency, Money};
use docobo::shop::parse_price;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((price, billing)) = parse_price(text) {
        assert!(price.minor_units() > 0, "{text:?}");
        // What the modal pre-fills next time parses back to the same price.
        let shown = format!("{price} {billing}");
        assert_eq!(
            parse_price(&shown),
            Ok((price, billing)),
            "{text:?} -> {shown:?}"
        );
    }
    for code in ["USD", "VND", "KWD", "EUR"] {
        let Ok(currency) = Currency::parse(code) else {
            unreachable!("{code} is a currency")
        };
        if let Ok(money) = Money::parse_major(text, currency) {
            assert!(money.minor_units() >= 0);
            let shown = money.to_string();
            assert_eq!(Money::parse_major(&shown, currency), Ok(money), "{text:?}");
        }
    }
    if let Ok(currency) = Currency::parse(text) {
        assert_eq!(Currency::parse(currency.as_str()), Ok(currency));
    }
    if let Ok(billing) = Billing::parse(text) {
        assert_eq!(Billing::parse(&billing.to_db()), Ok(billing), "{text:?}");
        assert_eq!(
            Billing::parse(&billing.to_string()),
            Ok(billing),
            "{text:?}"
        );
    }
});
