//! `example`: a minimal Docobo payment-provider plugin to copy. See README.md.
//!
//! The imaginary provider "Example Pay" has:
//!
//! * an API at `https://api.example.com` with a bearer token:
//!   `GET /v1/me` (token check) and `POST /v1/checkouts` → `{"url": "...", "expires_at": ms}`;
//! * webhooks that carry a shared secret in the `x-example-secret` header and a JSON body
//!   `{"id": "evt_1", "type": "payment.succeeded", "payment_id": "pay_1",
//!     "metadata": {"guild_id": "…", "user_id": "…", "role_id": "…"},
//!     "amount": 500, "currency": "usd", "created_at": 1767225600000}`.
//!
//! Structure worth keeping in a real plugin: the logic is in plain functions that take a
//! [`Host`] (or `now`), so `cargo test` can run them with a
//! [`docobo_plugin_sdk::MockHost`]; the [`Provider`] impl at the bottom is only glue.

use docobo_plugin_sdk::{
    Checkout, CheckoutRequest, Config, ConfigField, EventKind, Headers, Host, HttpRequest, Money,
    PluginInfo, Provider, ProviderError, ProviderEvent, SubscriptionStatus, WasmHost, WebhookError,
    config_or, config_require, ct_eq, header, now_ms,
};
use serde_json::{Value, json};

/// The plugin. A unit struct: plugins keep no state between calls.
#[derive(Debug)]
pub struct Example;

/// The default API base.
const DEFAULT_API_URL: &str = "https://api.example.com";

fn info() -> PluginInfo {
    PluginInfo::new("example", "Example Pay", env!("CARGO_PKG_VERSION"))
        // Secrets are stored encrypted by Docobo and never shown again.
        .field(
            ConfigField::new("api_token", "API token", "Example Pay → Settings → API")
                .secret()
                .required()
                // Which account the token reaches: a new token or URL means new products.
                .identifies_account(),
        )
        .field(
            ConfigField::new(
                "webhook_secret",
                "Webhook secret",
                "Example Pay → Settings → Webhooks: the shared secret",
            )
            .secret()
            .required(),
        )
        .field(
            ConfigField::new(
                "api_url",
                "API base URL (advanced)",
                "For tests; leave empty",
            )
            .default_value(DEFAULT_API_URL)
            .identifies_account(),
        )
        // Every host the plugin calls; the operator must allow them too.
        .host("api.example.com")
        .webhook_event("payment.succeeded")
        // The currencies Example Pay takes; /setup refuses prices in others. None: any.
        .currency("USD")
        .currency("EUR")
}

/// Turns a provider error answer into a [`ProviderError`]. Never put the token in it.
fn send<H: Host>(host: &H, req: &HttpRequest) -> Result<Value, ProviderError> {
    let resp = host
        .http_fetch(req)
        .map_err(|e| ProviderError::Upstream(format!("Example Pay could not be reached: {e}")))?;
    match resp.status {
        401 | 403 => Err(ProviderError::InvalidCredentials(
            "Example Pay rejected the API token".into(),
        )),
        s if resp.is_success() => serde_json::from_slice(&resp.body)
            .map_err(|_| ProviderError::Upstream(format!("Example Pay answered {s} without JSON"))),
        s => Err(ProviderError::Upstream(format!(
            "Example Pay answered {s}: {}",
            resp.text_snippet(200)
        ))),
    }
}

fn api(config: &[(String, String)]) -> Result<(&str, String), ProviderError> {
    let token = config_require(config, "api_token").map_err(ProviderError::Misconfigured)?;
    let base = config_or(config, "api_url", DEFAULT_API_URL).trim_end_matches('/');
    Ok((token, base.to_string()))
}

/// `validate-credentials`: one cheap authenticated call.
pub fn validate<H: Host>(host: &H, config: &[(String, String)]) -> Result<(), ProviderError> {
    let (token, base) = api(config)?;
    send(
        host,
        &HttpRequest::get(format!("{base}/v1/me")).bearer(token),
    )
    .map(|_| ())
}

/// `create-checkout`: ask the provider for a hosted checkout page, carrying the Discord ids
/// as metadata so the webhook can give them back.
pub fn checkout<H: Host>(
    host: &H,
    config: &[(String, String)],
    request: &CheckoutRequest,
) -> Result<Checkout, ProviderError> {
    let (token, base) = api(config)?;
    let body = json!({
        "amount": request.price.minor_units,
        "currency": request.price.currency.to_ascii_lowercase(),
        "success_url": request.success_url,
        "metadata": {
            "guild_id": request.guild_id,
            "user_id": request.user_id,
            "role_id": request.role_id,
        },
    });
    let req = HttpRequest::post(format!("{base}/v1/checkouts"))
        .bearer(token)
        .json(body.to_string());
    let resp = send(host, &req)?;
    let url = resp
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::Upstream("the checkout has no url".into()))?;
    Ok(Checkout {
        url: Some(url.to_string()),
        expires_at: resp.get("expires_at").and_then(Value::as_i64),
        ..Checkout::default()
    })
}

/// `handle-webhook`: verify first (on the raw bytes), then parse. Errors tell the host how
/// to answer: `bad-signature` → 401, `malformed` → 400, and so on.
pub fn webhook(
    config: &[(String, String)],
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Vec<ProviderEvent>, WebhookError> {
    let secret = config_require(config, "webhook_secret").map_err(WebhookError::Misconfigured)?;
    let sent = header(headers, "x-example-secret").unwrap_or("");
    // Constant-time comparison: never `==` on secrets.
    if !ct_eq(sent.as_bytes(), secret.as_bytes()) {
        return Err(WebhookError::BadSignature(
            "x-example-secret is missing or wrong".into(),
        ));
    }

    let v: Value = serde_json::from_slice(body)
        .map_err(|_| WebhookError::Malformed("the body is not JSON".into()))?;
    let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let meta = |key: &str| {
        v.get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let id = text("id").ok_or_else(|| WebhookError::Malformed("no `id`".into()))?;
    let event_type = text("type").unwrap_or_default();
    let occurred_at = v
        .get("created_at")
        .and_then(Value::as_i64)
        .ok_or_else(|| WebhookError::Malformed("no `created_at`".into()))?;

    // Unknown types are still returned, as `ignored`: the host records them.
    if event_type != "payment.succeeded" {
        return Ok(vec![ProviderEvent::new(
            id,
            event_type,
            EventKind::Ignored,
            occurred_at,
        )]);
    }
    let mut event = ProviderEvent::new(id, event_type, EventKind::Payment, occurred_at);
    event.subscription_id = text("payment_id");
    event.guild_id = meta("guild_id");
    event.user_id = meta("user_id");
    event.role_id = meta("role_id");
    event.status = Some(SubscriptionStatus::Active);
    event.amount = match (v.get("amount").and_then(Value::as_i64), text("currency")) {
        (Some(minor_units), Some(currency)) => Some(Money {
            minor_units,
            currency: currency.to_ascii_uppercase(),
        }),
        _ => None,
    };
    Ok(vec![event])
}

impl Provider for Example {
    fn plugin_info() -> PluginInfo {
        info()
    }

    fn validate_credentials(config: Config) -> Result<(), ProviderError> {
        validate(&WasmHost, &config)
    }

    fn create_checkout(
        config: Config,
        request: CheckoutRequest,
    ) -> Result<Checkout, ProviderError> {
        checkout(&WasmHost, &config, &request)
    }

    fn handle_webhook(
        config: Config,
        headers: Headers,
        body: Vec<u8>,
    ) -> Result<Vec<ProviderEvent>, WebhookError> {
        // Log ids and counts, never secrets or personal data.
        let result = webhook(&config, &headers, &body);
        if let Ok(events) = &result {
            docobo_plugin_sdk::log(
                docobo_plugin_sdk::LogLevel::Debug,
                &format!("example: {} event(s) at {}", events.len(), now_ms()),
            );
        }
        result
    }

    // `create_product` and `poll` keep their defaults (`unsupported`), matching
    // `needs_products = false` and `supports_poll = false` in `info()`.
}

docobo_plugin_sdk::export_provider!(Example);

#[cfg(test)]
mod tests {
    use super::*;
    use docobo_plugin_sdk::{Billing, MockHost};

    fn config() -> Vec<(String, String)> {
        vec![
            ("api_token".into(), "tok".into()),
            ("webhook_secret".into(), "s3cret".into()),
        ]
    }

    #[test]
    fn webhook_verifies_then_maps() {
        let body = br#"{"id":"evt_1","type":"payment.succeeded","payment_id":"pay_1",
            "metadata":{"guild_id":"1","user_id":"2","role_id":"3"},
            "amount":500,"currency":"usd","created_at":1767225600000}"#;
        let good = vec![("x-example-secret".to_string(), "s3cret".to_string())];
        let events = webhook(&config(), &good, body).unwrap();
        assert_eq!(events[0].kind, EventKind::Payment);
        assert_eq!(events[0].user_id.as_deref(), Some("2"));
        assert_eq!(
            events[0].amount.as_ref().map(|m| m.currency.as_str()),
            Some("USD")
        );

        let bad = vec![("x-example-secret".to_string(), "guess".to_string())];
        assert!(matches!(
            webhook(&config(), &bad, body),
            Err(WebhookError::BadSignature(_))
        ));
        assert!(matches!(
            webhook(&config(), &good, b"{}"),
            Err(WebhookError::Malformed(_))
        ));
    }

    #[test]
    fn checkout_calls_the_api() {
        let host = MockHost::new(0).respond(
            200,
            r#"{"url":"https://pay.example.com/c/1","expires_at":5}"#,
        );
        let request = CheckoutRequest {
            guild_id: "1".into(),
            user_id: "2".into(),
            role_id: "3".into(),
            product_id: None,
            price: Money {
                minor_units: 500,
                currency: "USD".into(),
            },
            billing: Billing::OneTime,
            success_url: None,
            nonce: 0,
        };
        let c = checkout(&host, &config(), &request).unwrap();
        assert_eq!(c.url.as_deref(), Some("https://pay.example.com/c/1"));
        assert_eq!(
            host.requests.borrow()[0].url,
            "https://api.example.com/v1/checkouts"
        );

        let host = MockHost::new(0).respond(401, "");
        assert!(matches!(
            validate(&host, &config()),
            Err(ProviderError::InvalidCredentials(_))
        ));
    }
}
