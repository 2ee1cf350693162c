//! SePay (sepay.vn) payment provider for Docobo: Vietnamese bank transfers.
//!
//! A member gets a payment code (`DCB` + 8 characters) and a VietQR image; SePay watches the
//! merchant's bank account and POSTs every transaction to the webhook. A transfer in to the
//! configured account whose memo carries a payment code becomes a `payment` event; the host
//! finds the member and role from the code. See `docs/providers.md` §3.
//!
//! * [`verify`]: API-key or HMAC authentication of a delivery;
//! * [`transfer`]: parsing and normalizing transactions (webhook and API shapes);
//! * [`checkout`]: payment codes, QR URL and instructions;
//! * [`api`]: token validation and polling through the v1 user API;
//! * [`test_delivery`]: the owner's test purchase (plugin API 0.2 `test-delivery`).
//!
//! Of what plugin API 0.2 adds, only `test-delivery` applies: a bank transfer has no
//! subscription to pause or trial, no plan, refund or dispute that SePay reports, no
//! customer account page, and no list of subscribers.

pub mod api;
pub mod checkout;
pub mod test_delivery;
pub mod transfer;
pub mod verify;

use docobo_plugin_sdk::{
    Capabilities, Checkout, CheckoutRequest, Config, ConfigField, Headers, PluginInfo, PollResult,
    Provider, ProviderError, ProviderEvent, SignedDelivery, TestDeliveryRequest, WasmHost,
    WebhookError, config_get, config_or, now_ms,
};

/// The default API base (v1 user API).
pub const DEFAULT_API_URL: &str = "https://my.sepay.vn";
/// The default payment-code prefix.
pub const DEFAULT_PREFIX: &str = "DCB";

/// The plugin.
#[derive(Debug)]
pub struct Sepay;

/// The plugin configuration, read from the host's key/value pairs.
#[derive(Debug)]
pub struct Settings<'a> {
    /// `webhook_api_key`.
    pub webhook_api_key: Option<&'a str>,
    /// `hmac_secret`.
    pub hmac_secret: Option<&'a str>,
    /// `account_number` (required).
    pub account_number: &'a str,
    /// `bank` (required for checkouts).
    pub bank: &'a str,
    /// `account_name`.
    pub account_name: Option<&'a str>,
    /// `payment_prefix`, 2–5 ASCII letters.
    pub prefix: &'a str,
    /// `api_token`.
    pub api_token: Option<&'a str>,
    /// `api_url` without a trailing slash.
    pub api_url: &'a str,
}

impl<'a> Settings<'a> {
    /// Reads and checks the configuration; the error names the field, never a value.
    pub fn from_config(config: &'a [(String, String)]) -> Result<Self, String> {
        let account_number = config_get(config, "account_number")
            .ok_or("the setting `account_number` is missing")?;
        let prefix = config_or(config, "payment_prefix", DEFAULT_PREFIX);
        if !(2..=5).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err("payment_prefix must be 2 to 5 letters (A–Z)".into());
        }
        let api_url = config_or(config, "api_url", DEFAULT_API_URL).trim_end_matches('/');
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err("api_url must start with https://".into());
        }
        Ok(Self {
            webhook_api_key: config_get(config, "webhook_api_key"),
            hmac_secret: config_get(config, "hmac_secret"),
            account_number,
            bank: config_get(config, "bank").unwrap_or(""),
            account_name: config_get(config, "account_name"),
            prefix,
            api_token: config_get(config, "api_token"),
            api_url,
        })
    }

    /// How webhooks are authenticated: HMAC when `hmac_secret` is set, else the API key.
    pub fn auth(&self) -> Result<verify::Auth<'a>, String> {
        match (self.hmac_secret, self.webhook_api_key) {
            (Some(secret), _) => Ok(verify::Auth::Hmac(secret)),
            (None, Some(key)) => Ok(verify::Auth::ApiKey(key)),
            (None, None) => Err("the setting `webhook_api_key` is missing".into()),
        }
    }

    /// What transfers are checked against.
    #[must_use]
    pub fn expect(&self) -> transfer::Expect<'a> {
        transfer::Expect {
            account_number: self.account_number,
            prefix: self.prefix,
        }
    }

    /// Everything a checkout needs is there.
    pub fn check_complete(&self) -> Result<(), String> {
        if self.bank.is_empty() {
            return Err("the setting `bank` is missing".into());
        }
        self.auth().map(|_| ())
    }
}

/// The plugin's description.
#[must_use]
pub fn info() -> PluginInfo {
    PluginInfo::new("sepay", "SePay (bank transfer)", env!("CARGO_PKG_VERSION"))
        .field(
            ConfigField::new(
                "webhook_api_key",
                "Webhook API key",
                "my.sepay.vn → Webhooks → your webhook: authentication \"API Key\", content \
                 type application/json. SePay sends it as `Authorization: Apikey <key>`. \
                 If the webhook uses HMAC-SHA256 instead, the HMAC secret below is checked \
                 and this key is not.",
            )
            .secret()
            .required(),
        )
        .field(
            ConfigField::new(
                "hmac_secret",
                "HMAC secret (instead of the API key)",
                "Only if the SePay webhook uses authentication \"HMAC-SHA256\": its secret key \
                 (whsec_…). Replaces the API key check. Leave empty to use the API key.",
            )
            .secret(),
        )
        .field(
            ConfigField::new(
                "account_number",
                "Bank account number",
                "The account linked to SePay that receives the transfers.",
            )
            .required(),
        )
        .field(
            ConfigField::new(
                "bank",
                "Bank short name (e.g. MBBank)",
                "The bank's short name as in https://qr.sepay.vn/banks.json, e.g. Vietcombank, \
                 MBBank, TPBank.",
            )
            .required(),
        )
        .field(ConfigField::new(
            "account_name",
            "Account holder name",
            "Shown in the payment instructions (optional).",
        ))
        .field(
            ConfigField::new(
                "payment_prefix",
                "Payment code prefix",
                "2–5 letters. In my.sepay.vn → Company settings → Payment code structure, add \
                 this prefix with a suffix of 8 characters, letters and digits.",
            )
            .default_value(DEFAULT_PREFIX),
        )
        .field(
            ConfigField::new(
                "api_token",
                "API token (optional)",
                "my.sepay.vn → Company settings → API Access. Lets Docobo check the setup and \
                 catch transfers whose webhook was lost.",
            )
            .secret(),
        )
        .field(ConfigField::new(
            "api_url",
            "API base URL (advanced)",
            "Overrides https://my.sepay.vn, e.g. for tests. Leave empty.",
        ))
        .host("my.sepay.vn")
        .supports_poll(true)
        .capability(Capabilities::TEST_DELIVERY)
        .webhook_ack(r#"{"success": true}"#)
        // VietQR transfers are in dong only.
        .currency("VND")
}

/// Authenticates and normalizes a delivery at host time `now_ms` (the testable core of
/// `handle_webhook`).
pub fn handle_webhook_at(
    config: &[(String, String)],
    headers: &[(String, String)],
    body: &[u8],
    now_ms: i64,
) -> Result<Vec<ProviderEvent>, WebhookError> {
    let settings = Settings::from_config(config).map_err(WebhookError::Misconfigured)?;
    let auth = settings.auth().map_err(WebhookError::Misconfigured)?;
    verify::verify(auth, headers, body, now_ms)?;
    let transfer = transfer::Transfer::from_webhook(body)?;
    let mut event = transfer::to_event(&transfer, settings.expect(), now_ms);
    event.test = transfer
        .reference_code
        .as_deref()
        .is_some_and(|r| r.starts_with(test_delivery::TEST_REFERENCE_PREFIX));
    Ok(vec![event])
}

fn settings(config: &[(String, String)]) -> Result<Settings<'_>, ProviderError> {
    Settings::from_config(config).map_err(ProviderError::Misconfigured)
}

impl Provider for Sepay {
    fn plugin_info() -> PluginInfo {
        info()
    }

    fn validate_credentials(config: Config) -> Result<(), ProviderError> {
        let settings = settings(&config)?;
        settings
            .check_complete()
            .map_err(ProviderError::Misconfigured)?;
        api::validate_credentials(&WasmHost, &settings)
    }

    fn create_checkout(
        config: Config,
        request: CheckoutRequest,
    ) -> Result<Checkout, ProviderError> {
        let settings = settings(&config)?;
        settings
            .check_complete()
            .map_err(ProviderError::Misconfigured)?;
        checkout::create(&settings, &request, now_ms())
    }

    fn handle_webhook(
        config: Config,
        headers: Headers,
        body: Vec<u8>,
    ) -> Result<Vec<ProviderEvent>, WebhookError> {
        handle_webhook_at(&config, &headers, &body, now_ms())
    }

    fn poll(config: Config, cursor: Option<String>) -> Result<PollResult, ProviderError> {
        api::poll(&WasmHost, &settings(&config)?, cursor.as_deref())
    }

    fn test_delivery(
        config: Config,
        request: TestDeliveryRequest,
    ) -> Result<SignedDelivery, ProviderError> {
        test_delivery::build(&settings(&config)?, &request, now_ms())
    }
}

docobo_plugin_sdk::export_provider!(Sepay);

#[cfg(test)]
mod tests;
