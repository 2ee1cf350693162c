//! The SePay plugin's transfer parsing, natively (with libFuzzer's coverage of it): a
//! webhook body through `handle_webhook_at` (authenticated, so the parser is reached), the
//! same bytes as a transactions-API item, and the payment-code search in a memo.

#![no_main]

use a_sepay::transfer::{CODE_LEN, Expect, Transfer, find_payment_code, to_event};
use libfuzzer_sys::fuzz_target;

const NOW_MS: i64 = 1_767_225_600_000;
const EXPECT: Expect<'static> = Expect {
    account_number: "0359123456",
    prefix: "DCB",
};

fn config() -> Vec<(String, String)> {
    [
        ("webhook_api_key", "k"),
        ("account_number", EXPECT.account_number),
        ("bank", "MBBank"),
        ("payment_prefix", EXPECT.prefix),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// What every payment event must satisfy.
fn check(event: &a_plugin_sdk::ProviderEvent) {
    if event.kind == a_plugin_sdk::EventKind::Payment {
        let code = event
            .payment_code
            .as_deref()
            .expect("a payment carries its code");
        assert!(code.starts_with(EXPECT.prefix), "{code}");
        assert!(code.len() > EXPECT.prefix.len(), "{code}");
        assert!(
            code.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
            "{code}"
        );
        let amount = event.amount.as_ref().expect("a payment carries its amount");
        assert!(amount.minor_units > 0, "{amount:?}");
        assert_eq!(amount.currency, "VND");
    }
    assert!(!event.event_id.is_empty());
}

fuzz_target!(|data: &[u8]| {
    let headers = vec![("authorization".to_owned(), "Apikey k".to_owned())];
    if let Ok(events) = a_sepay::handle_webhook_at(&config(), &headers, data, NOW_MS) {
        assert_eq!(events.len(), 1);
        events.iter().for_each(check);
        // Parsing is deterministic: the same body gives the same event.
        let again = a_sepay::handle_webhook_at(&config(), &headers, data, NOW_MS)
            .expect("verified once, verifies again");
        assert_eq!(events, again);
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data)
        && let Some(transfer) = Transfer::from_api(&value)
    {
        check(&to_event(&transfer, EXPECT, NOW_MS));
    }
    let memo = String::from_utf8_lossy(data);
    if let Some(code) = find_payment_code(None, &memo, "dcb") {
        assert_eq!(code.len(), "DCB".len() + CODE_LEN, "{code}");
        assert!(code.starts_with("DCB"));
        assert!(
            memo.to_ascii_uppercase().contains(&code),
            "{code} not in {memo:?}"
        );
    }
});
