//! `Stripe-Signature` verification, as Stripe documents it ("Verify webhook signatures
//! manually") and as its libraries implement it (`stripe.WebhookSignature.verify_header`).
//!
//! * The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=<hex>]`. Several `v1` appear
//!   while a webhook secret is being rolled (one per live secret): the delivery is genuine
//!   if **any** `v1` matches. `v0` (an old test scheme) and unknown schemes are ignored.
//! * The signed payload is `"{t}.{raw body}"`; the MAC is HMAC-SHA256 keyed with the UTF-8
//!   bytes of the **whole** secret string, `whsec_` included (not a decoding of it).
//! * Tolerance: 300 seconds between `t` and the host clock, both ways (Stripe's libraries
//!   only refuse old timestamps; a future one beyond five minutes means a wrong clock
//!   here or a forged `t`, so it is refused too).
//!
//! A header sent on several lines (a proxy folding or repeating it) is read line by line:
//! each line is its own `t` with its own signatures, and the delivery verifies when one
//! line does; its `t` is then the one checked for staleness. A line naming two different
//! `t` values is ambiguous and is skipped.

use docobo_plugin_sdk::{WebhookError, ct_eq, header_values};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::form::{hex, unhex};

/// The header carrying the signatures (the host passes header names in lower case).
pub const HEADER: &str = "stripe-signature";

/// Accepted difference between `t` and the host clock.
pub const TOLERANCE_MS: i64 = 300_000;

/// At most this many `v1` signatures are checked per delivery, over all lines.
pub const MAX_SIGNATURES: usize = 16;

/// One header line, parsed.
#[derive(Debug, Default)]
struct Line<'a> {
    /// The `t` value as sent (it is signed as text).
    t: Option<&'a str>,
    /// True when the line had two different `t` values.
    ambiguous: bool,
    /// The `v1` values.
    v1: Vec<&'a str>,
}

fn parse_line(value: &str) -> Line<'_> {
    let mut line = Line::default();
    for item in value.split(',') {
        let Some((scheme, v)) = item.trim().split_once('=') else {
            continue;
        };
        match scheme.trim() {
            "t" => match line.t {
                Some(prev) if prev != v.trim() => line.ambiguous = true,
                _ => line.t = Some(v.trim()),
            },
            "v1" => line.v1.push(v.trim()),
            // v0 and schemes Stripe may add later carry nothing we can check.
            _ => {}
        }
    }
    line
}

/// HMAC-SHA256 of `"{t}.{body}"` keyed with `secret`'s bytes.
fn mac(secret: &str, t: &str, body: &[u8]) -> Result<Vec<u8>, WebhookError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| {
        WebhookError::Misconfigured("the Stripe webhook signing secret is unusable".into())
    })?;
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// The `Stripe-Signature` header value Stripe would send for `body` signed at `t` (unix
/// seconds) with `secret`: `t=<t>,v1=<hex>`. Used by `test-delivery` and the tests.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> Result<String, WebhookError> {
    let t = t.to_string();
    Ok(format!("t={t},v1={}", hex(&mac(secret, &t, body)?)))
}

/// Verifies a delivery against `secret` at host time `now_ms`; returns the verified `t`
/// (unix seconds).
///
/// Errors: empty secret → `misconfigured`; no header, no `t`, no `v1`, or no matching
/// signature → `bad-signature`; a matching signature whose `t` is more than five minutes
/// away from `now_ms` → `stale-timestamp`.
pub fn verify(
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now_ms: i64,
) -> Result<i64, WebhookError> {
    if secret.is_empty() {
        return Err(WebhookError::Misconfigured(
            "the Stripe webhook signing secret is empty".into(),
        ));
    }
    let lines: Vec<Line<'_>> = header_values(headers, HEADER)
        .filter(|v| !v.is_empty())
        .map(parse_line)
        .collect();
    if lines.is_empty() {
        return Err(WebhookError::BadSignature(
            "the Stripe-Signature header is missing".into(),
        ));
    }
    if lines.iter().all(|l| l.t.is_none()) {
        return Err(WebhookError::BadSignature(
            "the Stripe-Signature header has no timestamp (t=)".into(),
        ));
    }
    if lines.iter().all(|l| l.v1.is_empty()) {
        return Err(WebhookError::BadSignature(
            "the Stripe-Signature header has no v1 signature".into(),
        ));
    }

    let mut checked = 0usize;
    let mut verified_t: Option<i64> = None;
    for line in &lines {
        let Some(t_text) = line.t.filter(|_| !line.ambiguous) else {
            continue;
        };
        // Stripe sends decimal seconds; anything else cannot be a Stripe timestamp.
        let Ok(t) = t_text.parse::<i64>() else {
            continue;
        };
        let expected = mac(secret, t_text, body)?;
        let mut line_ok = false;
        for sig in &line.v1 {
            if checked == MAX_SIGNATURES {
                break;
            }
            checked += 1;
            // A wrong length or non-hex value simply does not match.
            let candidate = unhex(sig).unwrap_or_default();
            // Every comparison is evaluated: no early exit on a match.
            line_ok |= ct_eq(&expected, &candidate);
        }
        if line_ok && verified_t.is_none() {
            verified_t = Some(t);
        }
    }
    let Some(t) = verified_t else {
        return Err(WebhookError::BadSignature(
            "no v1 signature in Stripe-Signature matched the webhook signing secret".into(),
        ));
    };
    let sent_ms = t.checked_mul(1000).unwrap_or(i64::MAX);
    if now_ms.abs_diff(sent_ms) > TOLERANCE_MS.unsigned_abs() {
        return Err(WebhookError::StaleTimestamp(format!(
            "the Stripe-Signature timestamp {t} is more than 5 minutes away from the server clock"
        )));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret_for_unit_tests_only";
    const T: i64 = 1_767_225_600;
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;

    fn h(values: &[&str]) -> Vec<(String, String)> {
        values
            .iter()
            .map(|v| (HEADER.to_string(), (*v).to_string()))
            .collect()
    }

    fn good() -> String {
        sign(SECRET, T, BODY).unwrap()
    }

    fn v1_of(header: &str) -> String {
        header.split_once(",v1=").unwrap().1.to_string()
    }

    #[test]
    fn sign_then_verify() {
        assert_eq!(verify(SECRET, &h(&[&good()]), BODY, T * 1000), Ok(T));
    }

    #[test]
    fn any_v1_with_v0_and_unknown_schemes_ignored() {
        let sig = v1_of(&good());
        let header = format!(
            "t={T},v0={sig},v1={},v1={sig},v2=zz,junk,v1=",
            "0".repeat(64)
        );
        assert_eq!(verify(SECRET, &h(&[&header]), BODY, T * 1000), Ok(T));
        // The right MAC under v0 only is not accepted.
        let v0_only = format!("t={T},v0={sig}");
        assert!(matches!(
            verify(SECRET, &h(&[&v0_only]), BODY, T * 1000),
            Err(WebhookError::BadSignature(_))
        ));
        // Upper-case hex decodes to the same bytes.
        let upper = format!("t={T},v1={}", sig.to_ascii_uppercase());
        assert!(verify(SECRET, &h(&[&upper]), BODY, T * 1000).is_ok());
    }

    #[test]
    fn several_header_lines() {
        let stale_line = format!("t={T},v1={}", "ab".repeat(32));
        assert!(verify(SECRET, &h(&[&stale_line, &good()]), BODY, T * 1000).is_ok());
        // A line with two different t values is skipped even if one would verify.
        let ambiguous = format!("t=1,t={T},v1={}", v1_of(&good()));
        assert!(matches!(
            verify(SECRET, &h(&[&ambiguous]), BODY, T * 1000),
            Err(WebhookError::BadSignature(_))
        ));
        // The cap counts over every line.
        let many = format!("t={T},{}", vec!["v1=00"; MAX_SIGNATURES].join(","));
        assert!(matches!(
            verify(SECRET, &h(&[&many, &good()]), BODY, T * 1000),
            Err(WebhookError::BadSignature(_))
        ));
    }

    #[test]
    fn refusals() {
        let cases: [(&[&str], &str); 5] = [
            (&[], "missing"),
            (&[""], "missing"),
            (&["v1=00"], "timestamp"),
            (&["t=1767225600"], "no v1"),
            (&["t=soon,v1=00"], "matched"),
        ];
        for (values, want) in cases {
            match verify(SECRET, &h(values), BODY, T * 1000) {
                Err(WebhookError::BadSignature(msg)) => assert!(msg.contains(want), "{msg}"),
                other => panic!("{values:?}: {other:?}"),
            }
        }
        assert!(matches!(
            verify("", &h(&[&good()]), BODY, T * 1000),
            Err(WebhookError::Misconfigured(_))
        ));
        // Truncated signature.
        let truncated = &good()[..good().len() - 2];
        assert!(matches!(
            verify(SECRET, &h(&[truncated]), BODY, T * 1000),
            Err(WebhookError::BadSignature(_))
        ));
    }

    #[test]
    fn tolerance_both_ways_and_bad_signature_first() {
        let g = h(&[&good()]);
        assert!(verify(SECRET, &g, BODY, T * 1000 + 300_000).is_ok());
        assert!(verify(SECRET, &g, BODY, T * 1000 - 300_000).is_ok());
        for now in [T * 1000 + 300_001, T * 1000 - 300_001] {
            assert!(matches!(
                verify(SECRET, &g, BODY, now),
                Err(WebhookError::StaleTimestamp(_))
            ));
        }
        let wrong = h(&[&format!("t={T},v1={}", "00".repeat(32))]);
        assert!(matches!(
            verify(SECRET, &wrong, BODY, 0),
            Err(WebhookError::BadSignature(_))
        ));
    }

    #[test]
    fn errors_never_contain_the_secret() {
        let errs = [
            verify(SECRET, &h(&["t=1,v1=00"]), BODY, 0),
            verify(SECRET, &h(&[&good()]), BODY, 0),
        ];
        for e in errs {
            let text = format!("{:?}", e.unwrap_err());
            assert!(!text.contains("test_secret"), "{text}");
        }
    }
}
