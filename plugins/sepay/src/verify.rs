//! Webhook authentication (`docs/providers.md` §3.2).
//!
//! A SePay webhook uses one authentication type. Docobo supports two:
//!
//! * **API key** (the default): `Authorization: Apikey <key>`. Lenient like SePay's own
//!   Laravel package: `Apikey ` may appear anywhere in the header (e.g. after `Bearer `)
//!   and the key ends at a `,`.
//! * **HMAC-SHA256**, when `hmac_secret` is configured: `X-SePay-Signature: sha256=<hex>`
//!   over `"{X-SePay-Timestamp}.{raw body}"` with the UTF-8 bytes of the secret as the key,
//!   and the timestamp within five minutes. This scheme is **unverified** against a real
//!   delivery (providers.md §3.2, §5): the API key is the safer choice until it is.
//!
//! When `hmac_secret` is set, the HMAC check replaces the API-key check (SePay sends one
//! or the other, never both).

use std::fmt::Write as _;

use docobo_plugin_sdk::{WebhookError, ct_eq, header};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Accepted difference between `X-SePay-Timestamp` and the host clock.
pub const TOLERANCE_MS: i64 = 300_000;

/// How a webhook is authenticated.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// `Authorization: Apikey <key>`.
    ApiKey(&'a str),
    /// `X-SePay-Signature` / `X-SePay-Timestamp`.
    Hmac(&'a str),
}

/// The key from an `Authorization` header: the text after `Apikey ` (case-insensitive,
/// anywhere in the header) up to a `,`.
#[must_use]
pub fn api_key_from_header(value: &str) -> Option<&str> {
    let lower = value.to_ascii_lowercase();
    let at = lower.find("apikey ")?;
    let rest = value.get(at + "apikey ".len()..)?;
    let key = rest.split(',').next().unwrap_or("").trim();
    (!key.is_empty()).then_some(key)
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// The `sha256=<hex>` signature of `"{timestamp}.{body}"` under `secret`.
pub fn hmac_signature(secret: &str, timestamp: &str, body: &[u8]) -> Result<String, WebhookError> {
    let mut out = String::from("sha256=");
    for b in hmac_tag(secret, timestamp, body)? {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    Ok(out)
}

fn hmac_tag(secret: &str, timestamp: &str, body: &[u8]) -> Result<Vec<u8>, WebhookError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| WebhookError::Misconfigured("the SePay HMAC secret is unusable".into()))?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Authenticates a delivery.
pub fn verify(
    auth: Auth<'_>,
    headers: &[(String, String)],
    body: &[u8],
    now_ms: i64,
) -> Result<(), WebhookError> {
    match auth {
        Auth::ApiKey(expected) => {
            let sent = header(headers, "authorization")
                .and_then(api_key_from_header)
                .ok_or_else(|| {
                    WebhookError::BadSignature(
                        "no `Authorization: Apikey …` header (set the SePay webhook's \
                         authentication to API Key)"
                            .into(),
                    )
                })?;
            if ct_eq(sent.as_bytes(), expected.as_bytes()) {
                Ok(())
            } else {
                Err(WebhookError::BadSignature("wrong SePay API key".into()))
            }
        }
        Auth::Hmac(secret) => {
            let signature = header(headers, "x-sepay-signature")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    WebhookError::BadSignature("the X-SePay-Signature header is missing".into())
                })?;
            let timestamp = header(headers, "x-sepay-timestamp")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    WebhookError::BadSignature("the X-SePay-Timestamp header is missing".into())
                })?;
            let ts: i64 = timestamp.parse().map_err(|_| {
                WebhookError::BadSignature("the X-SePay-Timestamp is not a number".into())
            })?;
            let hex = signature.strip_prefix("sha256=").unwrap_or(signature);
            let sent = hex_decode(&hex.to_ascii_lowercase()).unwrap_or_default();
            if !ct_eq(&hmac_tag(secret, timestamp, body)?, &sent) {
                return Err(WebhookError::BadSignature(
                    "the X-SePay-Signature does not match the HMAC secret".into(),
                ));
            }
            let sent_ms = ts.checked_mul(1000).unwrap_or(i64::MAX);
            if now_ms.abs_diff(sent_ms) > TOLERANCE_MS.unsigned_abs() {
                return Err(WebhookError::StaleTimestamp(format!(
                    "X-SePay-Timestamp {ts} is more than 5 minutes away from the server clock"
                )));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn api_key_header_forms() {
        assert_eq!(api_key_from_header("Apikey abc123"), Some("abc123"));
        assert_eq!(api_key_from_header("apikey abc123"), Some("abc123"));
        assert_eq!(api_key_from_header("Bearer Apikey abc123"), Some("abc123"));
        assert_eq!(api_key_from_header("Apikey abc123, other"), Some("abc123"));
        assert_eq!(api_key_from_header("Bearer abc123"), None);
        assert_eq!(api_key_from_header("Apikey "), None);
        assert_eq!(api_key_from_header("Apikeyabc"), None);
    }

    #[test]
    fn api_key_check() {
        let ok = verify(
            Auth::ApiKey("k3y"),
            &h(&[("authorization", "Apikey k3y")]),
            b"{}",
            0,
        );
        assert!(ok.is_ok());
        for headers in [
            h(&[("authorization", "Apikey k3Y")]),
            h(&[("authorization", "Apikey k3y2")]),
            h(&[("authorization", "Bearer k3y")]),
            h(&[]),
        ] {
            let err = verify(Auth::ApiKey("k3y"), &headers, b"{}", 0).unwrap_err();
            assert!(matches!(err, WebhookError::BadSignature(_)), "{headers:?}");
            assert!(!format!("{err:?}").contains("k3y"), "{err:?}");
        }
    }

    #[test]
    fn hmac_check() {
        let secret = "whsec_test";
        let sig = hmac_signature(secret, "1767225600", b"{\"id\":1}").unwrap();
        let good = h(&[
            ("x-sepay-signature", &sig),
            ("x-sepay-timestamp", "1767225600"),
        ]);
        let now = 1_767_225_600_000;
        assert!(verify(Auth::Hmac(secret), &good, b"{\"id\":1}", now).is_ok());
        // Upper-case hex is accepted too.
        let upper = h(&[
            (
                "x-sepay-signature",
                &format!("sha256={}", sig[7..].to_ascii_uppercase()),
            ),
            ("x-sepay-timestamp", "1767225600"),
        ]);
        assert!(verify(Auth::Hmac(secret), &upper, b"{\"id\":1}", now).is_ok());
        assert!(matches!(
            verify(Auth::Hmac(secret), &good, b"{\"id\":2}", now),
            Err(WebhookError::BadSignature(_))
        ));
        assert!(matches!(
            verify(Auth::Hmac(secret), &good, b"{\"id\":1}", now + 300_001),
            Err(WebhookError::StaleTimestamp(_))
        ));
        assert!(matches!(
            verify(
                Auth::Hmac(secret),
                &h(&[("x-sepay-signature", &sig)]),
                b"{\"id\":1}",
                now
            ),
            Err(WebhookError::BadSignature(_))
        ));
        let bad = h(&[
            ("x-sepay-signature", "sha256=zz"),
            ("x-sepay-timestamp", "1767225600"),
        ]);
        assert!(matches!(
            verify(Auth::Hmac(secret), &bad, b"{\"id\":1}", now),
            Err(WebhookError::BadSignature(_))
        ));
    }
}
