//! # docobo-plugin-sdk
//!
//! The guest side of Docobo's payment-provider plugins. A provider is a WASM component
//! (`wasm32-wasip2`) that implements the WIT contract in `wit/provider@0.2.0/provider.wit`;
//! Docobo (the host) loads it with wasmtime, passes it its configuration on every call, and
//! gives it exactly three capabilities: [`http_fetch`] (to the hosts the plugin declared and
//! the operator allowed), [`log`] and [`now_ms`].
//!
//! This crate hides the generated bindings. A plugin:
//!
//! 1. implements [`Provider`] on a unit struct (only `plugin_info`, `validate_credentials`,
//!    `create_checkout` and `handle_webhook` are required; `create_product`, `poll` and
//!    the optional calls of API 0.2 (`manage_link`, `list_subscribers`, `test_delivery`)
//!    default to [`ProviderError::Unsupported`]; declare the optional ones you implement with
//!    [`PluginInfo::capability`], since the host calls only what is declared);
//! 2. calls [`export_provider!`] once with that struct;
//! 3. is built as a `cdylib` with `cargo build --release --target wasm32-wasip2`.
//!
//! ```no_run
//! use docobo_plugin_sdk::{
//!     Checkout, CheckoutRequest, Config, ConfigField, EventKind, Headers, PluginInfo,
//!     Provider, ProviderError, ProviderEvent, WebhookError, config_require, header,
//! };
//!
//! struct Example;
//!
//! impl Provider for Example {
//!     fn plugin_info() -> PluginInfo {
//!         PluginInfo::new("example", "Example", env!("CARGO_PKG_VERSION"))
//!             .field(ConfigField::new("secret", "Shared secret", "Any long random string").secret().required())
//!     }
//!
//!     fn validate_credentials(config: Config) -> Result<(), ProviderError> {
//!         config_require(&config, "secret").map(|_| ()).map_err(ProviderError::Misconfigured)
//!     }
//!
//!     fn create_checkout(_config: Config, _request: CheckoutRequest) -> Result<Checkout, ProviderError> {
//!         Ok(Checkout::default())
//!     }
//!
//!     fn handle_webhook(config: Config, headers: Headers, _body: Vec<u8>) -> Result<Vec<ProviderEvent>, WebhookError> {
//!         let secret = config_require(&config, "secret").map_err(WebhookError::Misconfigured)?;
//!         if !docobo_plugin_sdk::ct_eq(header(&headers, "x-secret").unwrap_or("").as_bytes(), secret.as_bytes()) {
//!             return Err(WebhookError::BadSignature("wrong x-secret".into()));
//!         }
//!         Ok(vec![ProviderEvent::new("id", "example.ping", EventKind::Ignored, docobo_plugin_sdk::now_ms())])
//!     }
//! }
//!
//! docobo_plugin_sdk::export_provider!(Example);
//! # fn main() {}
//! ```
//!
//! ## Rules a provider must follow
//!
//! * **Stateless.** Every call gets a fresh instance; everything it needs is in `config` and
//!   the arguments. Don't cache across calls.
//! * **Verify before parsing.** `handle_webhook` must check the signature over the raw body
//!   bytes first; nothing unverified may come out as an event.
//! * **No secrets in logs or errors.** Error strings are shown to server owners and logged.
//! * **No panics on input.** A panic traps the instance; the host answers 500 and the provider
//!   retries. Return an error instead (`unwrap` is only fine on values no input can reach).
//! * **Use the host clock.** [`now_ms`] (tests fix it), never `std::time`.
//! * **Only ids, no personal data** in [`ProviderEvent`]s.
//!
//! ## Testing without a host
//!
//! Keep the logic in functions that take a [`Host`] (or plain values such as `now`), and call
//! them from the [`Provider`] impl with [`WasmHost`]. Native unit tests
//! (`cargo test`) can then pass a [`MockHost`] that fixes
//! the clock and answers `http_fetch` with canned responses. The generated import stubs panic
//! when called natively, so only the glue may call [`http_fetch`], [`log`] and [`now_ms`]
//! directly.

#![warn(missing_docs)]

#[doc(hidden)]
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod __bindings {
    wit_bindgen::generate!({
        world: "provider-plugin",
        path: "../../wit/provider@0.2.0",
        pub_export_macro: true,
        default_bindings_module: "docobo_plugin_sdk::__bindings",
        export_macro_name: "__export_provider_plugin",
        additional_derives: [PartialEq],
    });
}

mod helpers;
mod host;
pub mod time;
pub mod url;

pub use helpers::{config_get, config_or, config_require, ct_eq, header, header_values};
pub use host::{Host, MockHost, WasmHost, http_fetch, log, now_ms};

/// Plain data shared with the host (generated from the WIT `types` interface).
pub use __bindings::docobo::provider::types::{
    Billing, Capabilities, Checkout, CheckoutRequest, Config, ConfigField, DisputeStatus,
    EventKind, HttpRequest, HttpResponse, LogLevel, ManageLinkRequest, Money, PluginInfo,
    PollResult, ProductSpec, ProviderError, ProviderEvent, Refund, SignedDelivery, Subscriber,
    SubscriberPage, SubscriptionStatus, TestDeliveryRequest, WebhookError,
};

/// The version of the WIT contract (`docobo:provider@0.2.0`) this SDK implements.
pub const API_VERSION: &str = "0.2.0";

/// Request headers as the host passes them: `(name, value)` pairs, names in lower case, one
/// pair per header line (a repeated header comes as several pairs: see [`header_values`]).
pub type Headers = Vec<(String, String)>;

/// A payment provider. Mirrors the exports of the `provider` WIT interface.
///
/// All methods are associated functions: a plugin has no state between calls.
pub trait Provider {
    /// What the plugin is and what it needs; read once when the plugin is loaded.
    fn plugin_info() -> PluginInfo;

    /// Checks the credentials with a cheap authenticated call to the provider.
    fn validate_credentials(config: Config) -> Result<(), ProviderError>;

    /// Creates the provider-side product for a paid role and returns its id.
    /// Only plugins with `needs_products = true` implement it.
    fn create_product(config: Config, spec: ProductSpec) -> Result<String, ProviderError> {
        let _ = (config, spec);
        Err(ProviderError::Unsupported(
            "this provider does not create products".into(),
        ))
    }

    /// Starts a payment: a hosted checkout URL, or a QR code and payment code.
    fn create_checkout(config: Config, request: CheckoutRequest)
    -> Result<Checkout, ProviderError>;

    /// Verifies a webhook delivery (raw body bytes) and turns it into events.
    fn handle_webhook(
        config: Config,
        headers: Headers,
        body: Vec<u8>,
    ) -> Result<Vec<ProviderEvent>, WebhookError>;

    /// Lists events since `cursor`, to catch missed webhooks.
    /// Only plugins with `supports_poll = true` implement it.
    fn poll(config: Config, cursor: Option<String>) -> Result<PollResult, ProviderError> {
        let _ = (config, cursor);
        Err(ProviderError::Unsupported(
            "this provider does not support polling".into(),
        ))
    }

    /// A short-lived https page where this customer manages or cancels their subscription.
    /// Declare [`Capabilities::MANAGE_LINK`] in [`Provider::plugin_info`] when implemented.
    fn manage_link(config: Config, request: ManageLinkRequest) -> Result<String, ProviderError> {
        let _ = (config, request);
        Err(ProviderError::Unsupported(
            "this provider has no customer manage page".into(),
        ))
    }

    /// One page of the provider's current subscribers, for import. Declare
    /// [`Capabilities::LIST_SUBSCRIBERS`] when implemented.
    fn list_subscribers(
        config: Config,
        cursor: Option<String>,
    ) -> Result<SubscriberPage, ProviderError> {
        let _ = (config, cursor);
        Err(ProviderError::Unsupported(
            "this provider cannot list its subscribers".into(),
        ))
    }

    /// A delivery signed as the provider would sign it, which [`Provider::handle_webhook`]
    /// accepts and turns into events with `test = true`. Declare
    /// [`Capabilities::TEST_DELIVERY`] when implemented.
    fn test_delivery(
        config: Config,
        request: TestDeliveryRequest,
    ) -> Result<SignedDelivery, ProviderError> {
        let _ = (config, request);
        Err(ProviderError::Unsupported(
            "this provider cannot sign a test delivery".into(),
        ))
    }
}

impl<T: Provider> __bindings::exports::docobo::provider::provider::Guest for T {
    fn plugin_info() -> PluginInfo {
        <T as Provider>::plugin_info()
    }
    fn validate_credentials(config: Config) -> Result<(), ProviderError> {
        <T as Provider>::validate_credentials(config)
    }
    fn create_product(config: Config, spec: ProductSpec) -> Result<String, ProviderError> {
        <T as Provider>::create_product(config, spec)
    }
    fn create_checkout(
        config: Config,
        request: CheckoutRequest,
    ) -> Result<Checkout, ProviderError> {
        <T as Provider>::create_checkout(config, request)
    }
    fn handle_webhook(
        config: Config,
        headers: Headers,
        body: Vec<u8>,
    ) -> Result<Vec<ProviderEvent>, WebhookError> {
        <T as Provider>::handle_webhook(config, headers, body)
    }
    fn poll(config: Config, cursor: Option<String>) -> Result<PollResult, ProviderError> {
        <T as Provider>::poll(config, cursor)
    }
    fn manage_link(config: Config, request: ManageLinkRequest) -> Result<String, ProviderError> {
        <T as Provider>::manage_link(config, request)
    }
    fn list_subscribers(
        config: Config,
        cursor: Option<String>,
    ) -> Result<SubscriberPage, ProviderError> {
        <T as Provider>::list_subscribers(config, cursor)
    }
    fn test_delivery(
        config: Config,
        request: TestDeliveryRequest,
    ) -> Result<SignedDelivery, ProviderError> {
        <T as Provider>::test_delivery(config, request)
    }
}

/// Exports a [`Provider`] implementation as the component's `provider` interface.
///
/// Call it once, at the crate root of a `cdylib` plugin: `export_provider!(MyProvider);`.
/// It expands to nothing on non-wasm targets, so native unit tests build.
#[macro_export]
macro_rules! export_provider {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::__export_provider_plugin_impl!($ty with_types_in $crate::__bindings);
    };
}
