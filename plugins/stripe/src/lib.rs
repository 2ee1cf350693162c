//! Stripe payment provider for Docobo, written only against the plugin SDK.
//!
//! * Webhooks: `Stripe-Signature` verification ([`verify`]), events mapped by [`events`].
//! * API: prices (with their product), Checkout Sessions, the Billing Portal, event polling
//!   and subscriber listing, all form-encoded ([`form`]) through the host ([`api`]).
//!
//! The logic lives in plain functions taking a [`docobo_plugin_sdk::Host`], so it is
//! unit-tested natively with a `MockHost`; this file is only the glue to the WIT exports.

pub mod api;
pub mod events;
pub mod form;
pub mod verify;

use docobo_plugin_sdk::{
    Capabilities, Checkout, CheckoutRequest, Config, ConfigField, Headers, Host, ManageLinkRequest,
    PluginInfo, PollResult, ProductSpec, Provider, ProviderError, ProviderEvent, SignedDelivery,
    SubscriberPage, TestDeliveryRequest, WasmHost, WebhookError, config_require, now_ms,
};

use crate::events::MapError;

/// The plugin.
#[derive(Debug)]
pub struct Stripe;

/// The plugin's description (also used by the tests).
#[must_use]
pub fn info() -> PluginInfo {
    let mut info = PluginInfo::new("stripe", "Stripe", env!("CARGO_PKG_VERSION"))
        .field(
            ConfigField::new(
                "secret_key",
                "Secret key (sk_… or rk_…)",
                "Stripe dashboard → Developers → API keys: the secret key (sk_test_… in test \
                 mode, sk_live_… live), or a restricted key (rk_…) with write access to \
                 Products, Prices, Checkout Sessions and Customer portal and read access to \
                 Events, Subscriptions, Invoices and Payment Intents.",
            )
            .secret()
            .required()
            .identifies_account(),
        )
        .field(
            ConfigField::new(
                "webhook_secret",
                "Webhook signing secret (whsec_…)",
                "Stripe dashboard → Developers → Webhooks → your endpoint for the Docobo URL → \
                 Signing secret (whsec_…). Test and live mode endpoints have different secrets.",
            )
            .secret()
            .required(),
        )
        .field(ConfigField::new(
            "success_url",
            "After-payment URL (optional)",
            "Where Stripe sends the member after paying. Empty: back to the Discord server \
             (https://discord.com/channels/<guild id>).",
        ))
        .field(ConfigField::new(
            "manage_return_url",
            "Billing portal return URL (optional)",
            "Where the Stripe billing portal's Return link leads. Empty: the portal's default \
             (Settings → Billing → Customer portal).",
        ))
        .field(
            ConfigField::new(
                "api_url",
                "API base URL (advanced)",
                "Overrides https://api.stripe.com, e.g. for tests. Leave empty.",
            )
            .identifies_account(),
        )
        .host("api.stripe.com")
        .needs_products(true)
        .supports_poll(true)
        .capability(
            Capabilities::MANAGE_LINK
                | Capabilities::LIST_SUBSCRIBERS
                | Capabilities::TEST_DELIVERY,
        );
    for event in events::WEBHOOK_EVENTS {
        info = info.webhook_event(event);
    }
    info
}

fn webhook_error(e: MapError) -> WebhookError {
    match e {
        MapError::Malformed(m) => WebhookError::Malformed(m),
        MapError::Misconfigured(m) => WebhookError::Misconfigured(m),
        // Verified, but not mapped yet: an error answer makes Stripe deliver it again later
        // (it retries for three days), rather than recording a refund Docobo cannot place.
        MapError::Lookup(m) => WebhookError::Malformed(format!("{m} (Stripe will retry)")),
    }
}

/// Verifies and maps a delivery (the testable core of `handle_webhook`). The host clock
/// gives the tolerance; the host's fetch answers subscription lookups for refunds and
/// disputes of subscription payments.
pub fn handle_webhook_with<H: Host>(
    host: &H,
    config: &[(String, String)],
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Vec<ProviderEvent>, WebhookError> {
    let secret = config_require(config, "webhook_secret").map_err(WebhookError::Misconfigured)?;
    let t = verify::verify(secret, headers, body, host.now_ms())?;
    let lookup = api::HostLookup::new(host, config);
    let event = events::map_body(&lookup, body, t.saturating_mul(1000)).map_err(webhook_error)?;
    Ok(vec![event])
}

impl Provider for Stripe {
    fn plugin_info() -> PluginInfo {
        info()
    }

    fn validate_credentials(config: Config) -> Result<(), ProviderError> {
        api::validate_credentials(&WasmHost, &config)
    }

    fn create_product(config: Config, spec: ProductSpec) -> Result<String, ProviderError> {
        api::create_product(&WasmHost, &config, &spec)
    }

    fn create_checkout(
        config: Config,
        request: CheckoutRequest,
    ) -> Result<Checkout, ProviderError> {
        api::create_checkout(&WasmHost, &config, &request)
    }

    fn handle_webhook(
        config: Config,
        headers: Headers,
        body: Vec<u8>,
    ) -> Result<Vec<ProviderEvent>, WebhookError> {
        handle_webhook_with(&WasmHost, &config, &headers, &body)
    }

    fn poll(config: Config, cursor: Option<String>) -> Result<PollResult, ProviderError> {
        api::poll(&WasmHost, &config, cursor.as_deref())
    }

    fn manage_link(config: Config, request: ManageLinkRequest) -> Result<String, ProviderError> {
        api::manage_link(&WasmHost, &config, &request)
    }

    fn list_subscribers(
        config: Config,
        cursor: Option<String>,
    ) -> Result<SubscriberPage, ProviderError> {
        api::list_subscribers(&WasmHost, &config, cursor.as_deref())
    }

    fn test_delivery(
        config: Config,
        request: TestDeliveryRequest,
    ) -> Result<SignedDelivery, ProviderError> {
        api::test_delivery(&config, &request, now_ms())
    }
}

docobo_plugin_sdk::export_provider!(Stripe);

#[cfg(test)]
mod tests;
