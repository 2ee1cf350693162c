//! Standard Webhooks verification as Polar uses it (`docs/providers.md` §1.2, §2).
//!
//! Signed content: `"{webhook-id}.{webhook-timestamp}.{raw body}"`, HMAC-SHA256, sent as
//! `webhook-signature: v1,<base64> [v1,<base64> …]`. Polar has two live key derivations,
//! so both candidate keys are tried, the standard one first and the next only when it
//! matches nothing (a genuine delivery costs one HMAC):
//!
//! * `K2` = the strict standard base64 decoding of the secret after the `whsec_` prefix
//!   (standard endpoints, every secret Polar generates since 2026-09-08), when it decodes
//!   to a non-empty key. A legacy secret never decodes strictly (43 characters, no
//!   padding) and a `polar_whs_…` secret is not base64, so they only have `K1`;
//! * `K1` = the UTF-8 bytes of the whole secret string (legacy endpoints: `whsec_…` created
//!   before 2026-09-08, and the older `polar_whs_…` secrets).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use docobo_plugin_sdk::{WebhookError, ct_eq, header_values};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Accepted difference between the `webhook-timestamp` and the host clock.
pub const TOLERANCE_MS: i64 = 300_000;

/// At most this many signatures in one header are checked.
const MAX_SIGNATURES: usize = 16;

/// What a verified delivery carries besides its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `webhook-id` header: the delivery's idempotency key.
    pub id: String,
    /// The `webhook-timestamp` header, unix seconds.
    pub timestamp: i64,
}

/// The candidate HMAC keys for `secret`, the standard derivation first (see the module
/// docs). Errors when the secret is empty or is only the `whsec_` prefix.
pub fn signing_keys(secret: &str) -> Result<Vec<Vec<u8>>, WebhookError> {
    let remainder = secret.strip_prefix("whsec_").unwrap_or(secret);
    if secret.is_empty() || remainder.is_empty() {
        return Err(WebhookError::Misconfigured(
            "the Polar webhook secret is empty".into(),
        ));
    }
    let mut keys = Vec::with_capacity(2);
    if let Ok(decoded) = STANDARD.decode(remainder)
        && !decoded.is_empty()
        && decoded != secret.as_bytes()
    {
        keys.push(decoded);
    }
    keys.push(secret.as_bytes().to_vec());
    Ok(keys)
}

/// The one value of header `name`: sent on several lines, they must all agree (the id and
/// timestamp are signed: two different ones are two different deliveries).
fn required<'a>(headers: &'a [(String, String)], name: &'a str) -> Result<&'a str, WebhookError> {
    let mut values = header_values(headers, name);
    match values.next() {
        Some(v) if !v.is_empty() => {
            if values.any(|other| other != v) {
                return Err(WebhookError::BadSignature(format!(
                    "the {name} header is sent more than once with different values"
                )));
            }
            Ok(v)
        }
        _ => Err(WebhookError::BadSignature(format!(
            "the {name} header is missing"
        ))),
    }
}

fn tag(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Result<Vec<u8>, WebhookError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|_| WebhookError::Misconfigured("the Polar webhook secret is unusable".into()))?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Verifies a delivery against `secret` at host time `now_ms`.
///
/// Errors: empty secret → `misconfigured`; a missing header, a non-numeric timestamp or no
/// matching signature → `bad-signature`; a valid signature whose timestamp is more than
/// five minutes away from `now_ms` → `stale-timestamp`.
pub fn verify(
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now_ms: i64,
) -> Result<Verified, WebhookError> {
    let keys = signing_keys(secret)?;
    let id = required(headers, "webhook-id")?;
    let timestamp_text = required(headers, "webhook-timestamp")?;
    // Signatures may come on several header lines (a proxy, or a sender listing a new and
    // an old key): every line counts, up to MAX_SIGNATURES entries in all.
    if header_values(headers, "webhook-signature").all(str::is_empty) {
        return Err(WebhookError::BadSignature(
            "the webhook-signature header is missing".into(),
        ));
    }
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| WebhookError::BadSignature("the webhook-timestamp is not a number".into()))?;

    let candidates: Vec<Vec<u8>> = header_values(headers, "webhook-signature")
        .flat_map(str::split_ascii_whitespace)
        .take(MAX_SIGNATURES)
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    let mut matched = false;
    for key in &keys {
        let expected = tag(key, id, timestamp_text, body)?;
        for candidate in &candidates {
            // Evaluate every comparison against this key: no early exit on a match.
            matched |= ct_eq(&expected, candidate);
        }
        // Which derivation matched a genuine delivery tells nothing about the secret.
        if matched {
            break;
        }
    }
    if !matched {
        return Err(WebhookError::BadSignature(
            "no webhook-signature matched the webhook secret".into(),
        ));
    }

    let sent_ms = timestamp.checked_mul(1000).unwrap_or(i64::MAX);
    if now_ms.abs_diff(sent_ms) > TOLERANCE_MS.unsigned_abs() {
        return Err(WebhookError::StaleTimestamp(format!(
            "webhook-timestamp {timestamp} is more than 5 minutes away from the server clock"
        )));
    }
    Ok(Verified {
        id: id.to_string(),
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_C: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const ID: &str = "b0a5a8e9-5a34-4c1b-9d8e-6f1f3c2a7d10";
    const TS: i64 = 1_767_225_600;
    const BODY: &str = r#"{"type":"subscription.active","timestamp":"2026-01-01T00:00:00Z","data":{"id":"3f0e6c1e-2b9a-4f7e-8d1c-5a6b7c8d9e0f"}}"#;
    const SIG_C: &str = "v1,QjIekjCx/bM4hEuZ/jJJZ5fayCTQbr040Nloxe6H/0M=";

    fn headers(id: &str, ts: &str, sig: &str) -> Vec<(String, String)> {
        vec![
            ("webhook-id".into(), id.into()),
            ("webhook-timestamp".into(), ts.into()),
            ("webhook-signature".into(), sig.into()),
        ]
    }

    fn check(h: &[(String, String)], now_ms: i64) -> Result<Verified, WebhookError> {
        verify(SECRET_C, h, BODY.as_bytes(), now_ms)
    }

    #[test]
    fn key_derivations() {
        let keys = signing_keys(SECRET_C).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0], (0u8..32).collect::<Vec<_>>(), "standard first");
        assert_eq!(keys[1], SECRET_C.as_bytes());
        // Legacy whsec_ secret: 43 characters after the prefix, not strict base64.
        assert_eq!(
            signing_keys("whsec_ovyN6cPrTv56AApvzCaJno08SSmGJmgbWilb33N2JuK")
                .unwrap()
                .len(),
            1
        );
        // polar_whs_ secret: no whsec_ prefix and not base64.
        assert_eq!(
            signing_keys("polar_whs_ovyN6cPrTv56AApvzCaJno08SSmGJmgbWilb33N2JuK")
                .unwrap()
                .len(),
            1
        );
        assert!(matches!(
            signing_keys(""),
            Err(WebhookError::Misconfigured(_))
        ));
        assert!(matches!(
            signing_keys("whsec_"),
            Err(WebhookError::Misconfigured(_))
        ));
    }

    #[test]
    fn accepts_valid_and_reports_id() {
        let v = check(&headers(ID, "1767225600", SIG_C), TS * 1000).unwrap();
        assert_eq!(v.id, ID);
        assert_eq!(v.timestamp, TS);
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let h = vec![
            ("Webhook-Id".into(), ID.into()),
            ("WEBHOOK-TIMESTAMP".into(), "1767225600".into()),
            ("Webhook-Signature".into(), SIG_C.into()),
        ];
        assert!(check(&h, TS * 1000).is_ok());
    }

    #[test]
    fn any_of_several_signatures() {
        let sig = format!("v1a,abcd v1,AAAA v1,{} {SIG_C}", "x".repeat(44));
        assert!(check(&headers(ID, "1767225600", &sig), TS * 1000).is_ok());
        let sig = "v1,AAAA v2,QjIekjCx/bM4hEuZ/jJJZ5fayCTQbr040Nloxe6H/0M=";
        assert!(matches!(
            check(&headers(ID, "1767225600", sig), TS * 1000),
            Err(WebhookError::BadSignature(_))
        ));
    }

    #[test]
    fn partial_or_truncated_signature_fails() {
        for sig in [
            "v1,",
            "v1",
            "v1,QjIekjCx/bM4hEuZ/jJJZ5fayCTQbr040Nloxe6H",
            "QjIekjCx/bM4hEuZ/jJJZ5fayCTQbr040Nloxe6H/0M=",
            "v1,QjIekjCx/bM4hEuZ/jJJZ5fayCTQbr040Nloxe6H/0M",
        ] {
            assert!(
                matches!(
                    check(&headers(ID, "1767225600", sig), TS * 1000),
                    Err(WebhookError::BadSignature(_))
                ),
                "{sig}"
            );
        }
    }

    #[test]
    fn a_valid_signature_on_any_line_of_a_repeated_header_verifies() {
        let stale = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let mut h = headers(ID, "1767225600", stale);
        h.push(("Webhook-Signature".into(), format!("v2,x {SIG_C}")));
        assert!(check(&h, TS * 1000).is_ok());
        // Every line counts towards the cap on entries checked.
        let mut capped = headers(ID, "1767225600", &[stale; MAX_SIGNATURES].join(" "));
        capped.push(("webhook-signature".into(), SIG_C.into()));
        assert!(matches!(
            check(&capped, TS * 1000),
            Err(WebhookError::BadSignature(_))
        ));
        // Two different ids (or timestamps) are ambiguous: refused, even if one verifies.
        let mut two_ids = headers(ID, "1767225600", SIG_C);
        two_ids.push(("webhook-id".into(), "other".into()));
        match check(&two_ids, TS * 1000) {
            Err(WebhookError::BadSignature(msg)) => {
                assert!(msg.contains("more than once"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        let mut same_id_twice = headers(ID, "1767225600", SIG_C);
        same_id_twice.push(("webhook-id".into(), ID.into()));
        assert!(check(&same_id_twice, TS * 1000).is_ok());
    }

    #[test]
    fn missing_headers() {
        for skip in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let h: Vec<_> = headers(ID, "1767225600", SIG_C)
                .into_iter()
                .filter(|(k, _)| k != skip)
                .collect();
            match check(&h, TS * 1000) {
                Err(WebhookError::BadSignature(msg)) => assert!(msg.contains(skip), "{msg}"),
                other => panic!("{skip}: {other:?}"),
            }
        }
        assert!(matches!(
            check(&headers(ID, "soon", SIG_C), TS * 1000),
            Err(WebhookError::BadSignature(_))
        ));
    }

    #[test]
    fn tolerance_is_five_minutes_both_ways() {
        let h = headers(ID, "1767225600", SIG_C);
        assert!(check(&h, TS * 1000 + 300_000).is_ok());
        assert!(check(&h, TS * 1000 - 300_000).is_ok());
        assert!(matches!(
            check(&h, TS * 1000 + 300_001),
            Err(WebhookError::StaleTimestamp(_))
        ));
        assert!(matches!(
            check(&h, TS * 1000 - 300_001),
            Err(WebhookError::StaleTimestamp(_))
        ));
    }

    #[test]
    fn bad_signature_wins_over_stale() {
        let h = headers(ID, "1767225600", "v1,AAAA");
        assert!(matches!(check(&h, 0), Err(WebhookError::BadSignature(_))));
    }

    #[test]
    fn errors_do_not_contain_the_secret() {
        let errs = [
            check(&headers(ID, "1767225600", "v1,AAAA"), TS * 1000),
            check(&headers(ID, "1767225600", SIG_C), 0),
        ];
        for e in errs {
            let text = format!("{:?}", e.unwrap_err());
            assert!(
                !text.contains("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"),
                "{text}"
            );
        }
    }
}
