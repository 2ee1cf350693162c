//! Polar (polar.sh) payment provider for Docobo.
//!
//! * Webhooks: Standard Webhooks signatures with both of Polar's key derivations
//!   ([`verify`]), mapped to Docobo events by [`events`].
//! * API: checkout sessions, products (with trials), token validation, subscription
//!   polling, customer-portal links and the subscriber list ([`api`]).
//! * Plugin API 0.2: sandbox deliveries are `test` events; `manage-link` and
//!   `list-subscribers` are offered. Polar has no dispute webhooks and does not say which
//!   product a subscription left, so it sends neither `dispute` nor `plan-change`.
//!
//! The logic lives in plain functions (taking a [`docobo_plugin_sdk::Host`] or `now`), so it
//! is unit-tested natively; this file is only the glue to the WIT exports.

pub mod api;
pub mod events;
pub mod verify;

use docobo_plugin_sdk::{
    Capabilities, Checkout, CheckoutRequest, Config, ConfigField, Headers, ManageLinkRequest,
    PluginInfo, PollResult, ProductSpec, Provider, ProviderError, ProviderEvent, SubscriberPage,
    WasmHost, WebhookError, config_or, config_require, now_ms,
};

/// The plugin.
#[derive(Debug)]
pub struct Polar;

/// The plugin's description (also used by the tests).
#[must_use]
pub fn info() -> PluginInfo {
    let mut info = PluginInfo::new("polar", "Polar", env!("CARGO_PKG_VERSION"))
        .field(
            ConfigField::new(
                "access_token",
                "Organization Access Token",
                "Polar dashboard → Settings → Developers → New token (polar_oat_…), with the \
                 scopes checkouts:write, products:write, subscriptions:read and \
                 customer_sessions:write (for members' manage links).",
            )
            .secret()
            .required()
            .identifies_account(),
        )
        .field(
            ConfigField::new(
                "webhook_secret",
                "Webhook secret",
                "Polar dashboard → Settings → Webhooks → your endpoint (format Raw): the \
                 signing secret (whsec_… or polar_whs_…).",
            )
            .secret()
            .required(),
        )
        .field(
            ConfigField::new(
                "environment",
                "Environment (production or sandbox)",
                "`production` for api.polar.sh, `sandbox` for sandbox-api.polar.sh (test \
                 payments; it has its own tokens, products and webhooks).",
            )
            .default_value("production")
            .identifies_account(),
        )
        .field(ConfigField::new(
            "manage_url",
            "Customer portal URL (optional)",
            "Shown by /status so members can manage or cancel: https://polar.sh/<your-org>/portal \
             (sandbox: https://sandbox.polar.sh/<your-org>/portal).",
        ))
        .field(
            ConfigField::new(
                "api_url",
                "API base URL (advanced)",
                "Overrides the base URL derived from the environment, e.g. for tests. Leave \
                 empty.",
            )
            .identifies_account(),
        )
        .host("api.polar.sh")
        .host("sandbox-api.polar.sh")
        .needs_products(true)
        .supports_poll(true)
        .capability(Capabilities::MANAGE_LINK | Capabilities::LIST_SUBSCRIBERS);
    for event in events::WEBHOOK_EVENTS {
        info = info.webhook_event(event);
    }
    info
}

/// Verifies and maps a delivery at host time `now_ms` (the testable core of
/// `handle_webhook`).
pub fn handle_webhook_at(
    config: &[(String, String)],
    headers: &[(String, String)],
    body: &[u8],
    now_ms: i64,
) -> Result<Vec<ProviderEvent>, WebhookError> {
    let secret = config_require(config, "webhook_secret").map_err(WebhookError::Misconfigured)?;
    let verified = verify::verify(secret, headers, body, now_ms)?;
    let mut events =
        events::map_webhook(&verified.id, body, verified.timestamp.saturating_mul(1000))?;
    // The sandbox is Polar's test mode: its deliveries are test events.
    if is_sandbox(config) {
        for event in &mut events {
            event.test = true;
        }
    }
    Ok(events)
}

/// Whether the configuration points at Polar's sandbox.
#[must_use]
pub fn is_sandbox(config: &[(String, String)]) -> bool {
    config_or(config, "environment", "production").eq_ignore_ascii_case("sandbox")
}

impl Provider for Polar {
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
        handle_webhook_at(&config, &headers, &body, now_ms())
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
}

docobo_plugin_sdk::export_provider!(Polar);

#[cfg(test)]
mod tests;
