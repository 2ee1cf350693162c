//! A whole webhook delivery (raw headers and body) through the real Polar and SePay
//! components in the real sandbox (`ProviderHost::handle_webhook`, as the webhook route calls
//! it), then what Docobo does with the verified events before storing them.
//!
//! Input: one flags byte, then header lines (`name: value`), an empty line, the body.
//! Flags: bit 0 = SePay (else Polar); bit 1 = add a valid signature / API key, so that the
//! parsers behind verification are reached. Without bit 1 a delivery must never verify.
//!
//! libFuzzer sees coverage of the host side only (the guests are compiled by Cranelift at
//! run time, uninstrumented): the seeds in the corpus carry the guest paths.

#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use docobo::providers::{Clock, HostOptions, Limits, ProviderError, ProviderHost};
use hmac::{KeyInit as _, Mac as _};
use libfuzzer_sys::fuzz_target;

/// 2026-01-01T00:00:00Z, the host's fixed clock (the Polar signature window is checked
/// against it).
const NOW_MS: i64 = 1_767_225_600_000;
const POLAR_SECRET: &str = "polar_whs_fuzz_secret";
const SEPAY_KEY: &str = "sepay-fuzz-key";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    host: ProviderHost,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let host = runtime
            .block_on(ProviderHost::load(HostOptions {
                builtins: true,
                clock: Clock::fixed(NOW_MS),
                limits: Limits::default(),
                ..HostOptions::default()
            }))
            .expect("the built-in plugins load");
        Fixture { runtime, host }
    })
}

fn cfg(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Splits the input into header lines and the body.
fn split(data: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (&data[..0], data),
    };
    let headers = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect();
    (headers, body)
}

fn polar_signature(id: &str, timestamp: i64, body: &[u8]) -> String {
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(POLAR_SECRET.as_bytes()) else {
        unreachable!("HMAC-SHA256 accepts every key length")
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let sepay = flags & 1 == 1;
    let authentic = flags & 2 == 2;
    let (mut headers, body) = split(rest);
    let (provider, config) = if sepay {
        if authentic {
            headers.push(("authorization".into(), format!("Apikey {SEPAY_KEY}")));
        }
        (
            "sepay",
            cfg(&[
                ("webhook_api_key", SEPAY_KEY),
                ("account_number", "0359123456"),
                ("bank", "MBBank"),
                ("payment_prefix", "DCB"),
            ]),
        )
    } else {
        if authentic {
            let id = "msg_fuzz";
            let timestamp = NOW_MS / 1000;
            headers.retain(|(name, _)| !name.eq_ignore_ascii_case("webhook-signature"));
            headers.push(("webhook-id".into(), id.into()));
            headers.push(("webhook-timestamp".into(), timestamp.to_string()));
            headers.push((
                "webhook-signature".into(),
                polar_signature(id, timestamp, body),
            ));
        }
        (
            "polar",
            cfg(&[
                ("webhook_secret", POLAR_SECRET),
                ("access_token", "polar_oat_fuzz"),
            ]),
        )
    };
    let fixture = fixture();
    let result = fixture.runtime.block_on(
        fixture
            .host
            .handle_webhook(provider, &config, &headers, body),
    );
    match result {
        Ok(events) => {
            // Neither secret can be forged by the fuzzer: unsigned deliveries never verify.
            assert!(
                authentic,
                "{provider}: a delivery without credentials verified"
            );
            for event in &events {
                let stored = event.normalized_json();
                let parsed: serde_json::Value =
                    serde_json::from_str(&stored).expect("the stored event is JSON");
                assert!(parsed.is_object());
                assert!(!stored.contains(POLAR_SECRET) && !stored.contains(SEPAY_KEY));
            }
        }
        Err(ProviderError::Webhook { error, .. }) => {
            let text = error.to_string();
            assert!(
                !text.contains(POLAR_SECRET) && !text.contains(SEPAY_KEY),
                "{text}"
            );
        }
        // A trap, the fuel or the deadline: the sandbox did its job; the route answers 500.
        Err(_) => {}
    }
});
