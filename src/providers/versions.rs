//! A loaded plugin of any supported API version, behind one set of calls that take and return
//! the newest version's types. The only place that matches on the version: a new version adds
//! a variant here and an adapter module (`v0_1` is the first).

use wasmtime::Store;

use super::bindings::latest::api;
use super::bindings::{ApiVersion, latest, v0_1};
use super::state::PluginState;
use super::v0_1 as adapt_v0_1;

type Config = crate::domain::PluginConfig;
type Call<T, E> = wasmtime::Result<Result<T, E>>;

/// A type-checked, linked component, ready to instantiate per call.
#[derive(Clone)]
pub(super) enum Pre {
    V0_1(v0_1::ProviderPluginPre<PluginState>),
    V0_2(latest::ProviderPluginPre<PluginState>),
}

/// One live instance (one call's).
pub(super) enum Instance {
    V0_1(v0_1::ProviderPlugin),
    V0_2(latest::ProviderPlugin),
}

impl Pre {
    /// Checks `component` against the bindings of `version`.
    pub(super) fn new(
        version: ApiVersion,
        pre: wasmtime::component::InstancePre<PluginState>,
    ) -> wasmtime::Result<Self> {
        Ok(match version {
            ApiVersion::V0_1 => Self::V0_1(v0_1::ProviderPluginPre::new(pre)?),
            ApiVersion::V0_2 => Self::V0_2(latest::ProviderPluginPre::new(pre)?),
        })
    }

    pub(super) async fn instantiate_async(
        &self,
        store: &mut Store<PluginState>,
    ) -> wasmtime::Result<Instance> {
        Ok(match self {
            Self::V0_1(pre) => Instance::V0_1(pre.instantiate_async(store).await?),
            Self::V0_2(pre) => Instance::V0_2(pre.instantiate_async(store).await?),
        })
    }
}

/// What a call the plugin's version does not have answers, without calling the guest.
fn missing<T>(call: &str, since: &str) -> Result<T, api::ProviderError> {
    Err(api::ProviderError::Unsupported(format!(
        "{call} needs plugin API {since} or newer; this plugin was built against an older one"
    )))
}

impl Instance {
    pub(super) async fn plugin_info(
        &self,
        store: &mut Store<PluginState>,
    ) -> wasmtime::Result<api::PluginInfo> {
        match self {
            Self::V0_1(p) => Ok(adapt_v0_1::plugin_info(
                p.docobo_provider_provider().call_plugin_info(store).await?,
            )),
            Self::V0_2(p) => p.docobo_provider_provider().call_plugin_info(store).await,
        }
    }

    pub(super) async fn validate_credentials(
        &self,
        store: &mut Store<PluginState>,
        config: &Config,
    ) -> Call<(), api::ProviderError> {
        match self {
            Self::V0_1(p) => Ok(p
                .docobo_provider_provider()
                .call_validate_credentials(store, config)
                .await?
                .map_err(adapt_v0_1::provider_error)),
            Self::V0_2(p) => {
                p.docobo_provider_provider()
                    .call_validate_credentials(store, config)
                    .await
            }
        }
    }

    pub(super) async fn create_product(
        &self,
        store: &mut Store<PluginState>,
        config: &Config,
        spec: &api::ProductSpec,
    ) -> Call<String, api::ProviderError> {
        match self {
            Self::V0_1(p) => Ok(p
                .docobo_provider_provider()
                .call_create_product(store, config, &adapt_v0_1::product_spec(spec))
                .await?
                .map_err(adapt_v0_1::provider_error)),
            Self::V0_2(p) => {
                p.docobo_provider_provider()
                    .call_create_product(store, config, spec)
                    .await
            }
        }
    }

    pub(super) async fn create_checkout(
        &self,
        store: &mut Store<PluginState>,
        config: &Config,
        request: &api::CheckoutRequest,
    ) -> Call<api::Checkout, api::ProviderError> {
        match self {
            Self::V0_1(p) => Ok(p
                .docobo_provider_provider()
                .call_create_checkout(store, config, &adapt_v0_1::checkout_request(request))
                .await?
                .map(adapt_v0_1::checkout)
                .map_err(adapt_v0_1::provider_error)),
            Self::V0_2(p) => {
                p.docobo_provider_provider()
                    .call_create_checkout(store, config, request)
                    .await
            }
        }
    }

    pub(super) async fn handle_webhook(
        &self,
        store: &mut Store<PluginState>,
        config: &Config,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Call<Vec<api::ProviderEvent>, api::WebhookError> {
        match self {
            Self::V0_1(p) => Ok(p
                .docobo_provider_provider()
                .call_handle_webhook(store, config, headers, body)
                .await?
                .map(adapt_v0_1::events)
                .map_err(adapt_v0_1::webhook_error)),
            Self::V0_2(p) => {
                p.docobo_provider_provider()
                    .call_handle_webhook(store, config, headers, body)
                    .await
            }
        }
    }

    pub(super) async fn poll(
        &self,
        store: &mut Store<PluginState>,
        config: &Config,
        cursor: Option<&str>,
    ) -> Call<api::PollResult, api::ProviderError> {
        match self {
            Self::V0_1(p) => Ok(p
                .docobo_provider_provider()
                .call_poll(store, config, cursor)
                .await?
                .map(adapt_v0_1::polled)
                .map_err(adapt_v0_1::provider_error)),
            Self::V0_2(p) => {
                p.docobo_provider_provider()
                    .call_poll(store, config, cursor)
                    .await
            }
        }
    }

    pub(super) async fn manage_link(
        &self,
        store: &mut Store<PluginState>,
        config: &Config,
        request: &api::ManageLinkRequest,
    ) -> Call<String, api::ProviderError> {
        match self {
            Self::V0_1(_) => Ok(missing("manage-link", "0.2.0")),
            Self::V0_2(p) => {
                p.docobo_provider_provider()
                    .call_manage_link(store, config, request)
                    .await
            }
        }
    }

    pub(super) async fn list_subscribers(
        &self,
        store: &mut Store<PluginState>,
        config: &Config,
        cursor: Option<&str>,
    ) -> Call<api::SubscriberPage, api::ProviderError> {
        match self {
            Self::V0_1(_) => Ok(missing("list-subscribers", "0.2.0")),
            Self::V0_2(p) => {
                p.docobo_provider_provider()
                    .call_list_subscribers(store, config, cursor)
                    .await
            }
        }
    }

    pub(super) async fn test_delivery(
        &self,
        store: &mut Store<PluginState>,
        config: &Config,
        request: &api::TestDeliveryRequest,
    ) -> Call<api::SignedDelivery, api::ProviderError> {
        match self {
            Self::V0_1(_) => Ok(missing("test-delivery", "0.2.0")),
            Self::V0_2(p) => {
                p.docobo_provider_provider()
                    .call_test_delivery(store, config, request)
                    .await
            }
        }
    }
}
