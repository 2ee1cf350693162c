//! The owner's test purchase (plugin API 0.2 `test-delivery`): SePay has no sandbox that
//! Docobo can reach, so the plugin writes the transfer notification SePay would send for a
//! payment of the checkout the host opened (its payment code, the exact price, to the
//! configured account), authenticated as the configured webhook is (API key, or HMAC), which
//! [`crate::handle_webhook_at`] then accepts like any other delivery.
//!
//! A test transfer is told apart by its bank reference, [`TEST_REFERENCE_PREFIX`], and its
//! id is far above SePay's sequential transaction ids ([`TEST_ID_BASE`]), so it can never
//! take a real transaction's id (the dedup key). Only someone holding the webhook key can
//! make one, and all it changes is that its events count as `test`.

use docobo_plugin_sdk::time::format_rfc3339_ms;
use docobo_plugin_sdk::{ProviderError, SignedDelivery, TestDeliveryRequest};
use serde_json::json;

use crate::Settings;
use crate::transfer::VIETNAM_OFFSET_MINUTES;
use crate::verify::{self, Auth};

/// The `referenceCode` of every test transfer starts with this.
pub const TEST_REFERENCE_PREFIX: &str = "DOCOBO-TEST-";
/// Test transfer ids are this plus the host's nonce below 10^18 (real SePay ids are small
/// sequential numbers).
pub const TEST_ID_BASE: u64 = 9_000_000_000_000_000_000;

/// `YYYY-MM-DD HH:MM:SS` in Vietnam time, as SePay writes `transactionDate`.
fn vietnam_time(now_ms: i64) -> String {
    let local = format_rfc3339_ms(now_ms + i64::from(VIETNAM_OFFSET_MINUTES) * 60_000);
    local.get(..19).unwrap_or_default().replacen('T', " ", 1)
}

/// The signed test delivery for `request` at host time `now_ms`.
pub fn build(
    settings: &Settings<'_>,
    request: &TestDeliveryRequest,
    now_ms: i64,
) -> Result<SignedDelivery, ProviderError> {
    let code = request
        .payment_code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            ProviderError::Misconfigured(
                "a SePay test purchase pays a checkout: the host must pass its payment code".into(),
            )
        })?;
    if !request.price.currency.eq_ignore_ascii_case("VND") || request.price.minor_units <= 0 {
        return Err(ProviderError::Misconfigured(format!(
            "SePay takes bank transfers in VND only, more than zero (not {} {})",
            request.price.minor_units, request.price.currency
        )));
    }
    let auth = settings.auth().map_err(ProviderError::Misconfigured)?;
    let id = TEST_ID_BASE + request.nonce % 1_000_000_000_000_000_000;
    let content = format!("{code} Docobo test purchase");
    let body = json!({
        "id": id,
        "gateway": settings.bank,
        "transactionDate": vietnam_time(now_ms),
        "accountNumber": settings.account_number,
        "subAccount": null,
        "code": code,
        "content": content,
        "transferType": "in",
        "description": format!("Docobo test {content}"),
        "transferAmount": request.price.minor_units,
        "referenceCode": format!("{TEST_REFERENCE_PREFIX}{}", request.nonce),
        "accumulated": 0,
    })
    .to_string()
    .into_bytes();
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    match auth {
        Auth::ApiKey(key) => headers.push(("authorization".into(), format!("Apikey {key}"))),
        Auth::Hmac(secret) => {
            let timestamp = (now_ms / 1000).to_string();
            let signature = verify::hmac_signature(secret, &timestamp, &body)
                .map_err(|e| ProviderError::Misconfigured(format!("{e:?}")))?;
            headers.push(("x-sepay-timestamp".into(), timestamp));
            headers.push(("x-sepay-signature".into(), signature));
        }
    }
    Ok(SignedDelivery { headers, body })
}

#[cfg(test)]
mod tests {
    use super::vietnam_time;

    #[test]
    fn transaction_dates_are_vietnam_local_time() {
        // 2026-01-01T00:00:00Z is 07:00 in Hanoi.
        assert_eq!(vietnam_time(1_767_225_600_000), "2026-01-01 07:00:00");
    }
}
