//! The provider plugin host: loads WASM components and calls them in a sandbox.
//!
//! Every call gets a fresh instance from a cached `InstancePre` (≈20 µs), with a fuel budget,
//! an epoch deadline, a memory cap, a stack cap and a timeout. A trap, a timeout, running out
//! of memory or a refused `http-fetch` fails that call only, as a typed [`ProviderError`];
//! the host and the other plugins carry on. Plugins see nothing but the `host` interface
//! (`http-fetch`, `log`, `now`) and an inert WASI shim.
//!
//! `handle-webhook` runs on a synchronous instance without fibers (`fast`), the other calls
//! (which may await `http-fetch`) on fibers.
//!
//! Built-in plugins (`polar`, `sepay`) are embedded in the binary; more `.wasm` files can be
//! dropped in `plugins.dir` (one with a built-in's id replaces it). A file that does not load
//! is reported and skipped.
//!
//! Plugins built against any supported API version load (`bindings::SUPPORTED_API_VERSIONS`):
//! the version is read from the component's export, and older ones are converted to the
//! newest by their adapter (`v0_1`), so everything past `versions` sees one API.

mod bindings;
mod convert;
mod engine;
mod error;
mod fast;
mod fetch;
mod limits;
mod load;
mod state;
mod types;
mod v0_1;
mod versions;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtx;

pub use bindings::{API_VERSION, SUPPORTED_API_VERSIONS};
pub use engine::{CacheOutcome, POOL_SLOTS};
pub use error::{PluginFailure, ProviderError, WebhookRejection};
pub use fast::WebhookPaths;
pub use fetch::{FetchPolicy, check_url, is_public};
pub use limits::Limits;
use limits::{EPOCH_TICK, MemoryCap};
pub use load::{BUILTIN, Inspection, built_plugin, inspect};
use state::PluginState;
pub use types::{
    Capabilities, Checkout, CheckoutRequest, ConfigField, ManageLinkRequest, Polled, ProductSpec,
    SignedDelivery, Subscriber, SubscriberPage, TestDeliveryRequest,
};

pub use crate::clock::Clock;
use crate::domain::{ProviderEvent, ProviderId};

pub use crate::domain::PluginConfig;

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    Builtin,
    File(PathBuf),
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin => f.write_str("built-in"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What a loaded plugin is and needs.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    pub id: ProviderId,
    pub name: String,
    pub version: String,
    /// The WIT API version the component was built against.
    pub api_version: String,
    pub config_fields: Vec<ConfigField>,
    /// Hosts the plugin declares.
    pub hosts: Vec<String>,
    /// Hosts it may actually reach: declared ∩ `plugins.allowed_hosts`.
    pub allowed_hosts: Vec<String>,
    pub needs_products: bool,
    pub supports_poll: bool,
    /// The optional calls it declares (none for a 0.1 plugin).
    pub capabilities: Capabilities,
    pub webhook_events: Vec<String>,
    pub webhook_ack: Option<String>,
    /// The currencies the provider takes; empty: any.
    pub currencies: Vec<crate::domain::Currency>,
    pub source: PluginSource,
    pub cache: CacheOutcome,
}

/// A plugin file that did not load.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub source: PluginSource,
    pub error: String,
}

/// How to build the host.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Extra `.wasm` plugins.
    pub plugins_dir: Option<PathBuf>,
    /// Where compiled components are cached; `None` compiles at every start.
    pub cache_dir: Option<PathBuf>,
    pub fetch: FetchPolicy,
    pub limits: Limits,
    pub clock: Clock,
    /// Load the embedded `polar` and `sepay` plugins.
    pub builtins: bool,
    /// Extra plugin files to load (tests).
    pub extra_files: Vec<PathBuf>,
}

pub(super) struct LoadedPlugin {
    info: PluginInfo,
    pre: versions::Pre,
    /// The same plugin linked for synchronous `handle-webhook` calls (`fast`); `None` when
    /// it imports something that cannot be stubbed, then every webhook runs on fibers.
    sync: Option<fast::SyncPre>,
    hosts: Arc<[String]>,
}

pub(super) struct Inner {
    engine: Engine,
    plugins: BTreeMap<String, LoadedPlugin>,
    failures: Vec<LoadFailure>,
    fetcher: fetch::Fetcher,
    limits: Limits,
    clock: Clock,
    /// One permit per instance the engine's pool holds: a call waits for a free slot
    /// instead of failing when every slot is busy.
    slots: Arc<tokio::sync::Semaphore>,
    paths: fast::PathCounts,
}

/// A live plugin instance. Its fields drop in order: the store (which returns the pooled
/// slot) before the permit that lets the next call take it.
struct Slot {
    store: Store<PluginState>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// The loaded plugins. Cheap to clone.
#[derive(Clone)]
pub struct ProviderHost {
    inner: Arc<Inner>,
}

impl fmt::Debug for ProviderHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderHost")
            .field("plugins", &self.inner.plugins.keys().collect::<Vec<_>>())
            .field("failures", &self.inner.failures.len())
            .finish_non_exhaustive()
    }
}

/// One sandboxed call: a fresh instance, the export called under the call timeout, and the
/// outcome typed by [`ProviderHost::finish`]. Evaluates to the export's own `Result`, in the
/// newest API's types (`versions::Instance` converts older plugins').
macro_rules! call {
    ($host:ident, $provider:ident, |$plugin:ident, $store:ident| $call:expr) => {
        call!(
            $host,
            $provider,
            Budget::full(&$host.inner.limits),
            |$plugin, $store| $call
        )
    };
    ($host:ident, $provider:ident, $budget:expr, |$plugin:ident, $store:ident| $call:expr) => {{
        let (mut slot, instance) = $host.instantiate($provider, $budget).await?;
        let outcome = {
            let $plugin = &instance;
            let $store = &mut slot.store;
            tokio::time::timeout($host.inner.limits.call_timeout, $call).await
        };
        $host.finish($provider, &slot.store, outcome)?
    }};
}

impl ProviderHost {
    /// Every loaded plugin, by id.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginInfo> {
        self.inner.plugins.values().map(|p| &p.info)
    }

    /// The plugin with this id.
    #[must_use]
    pub fn plugin(&self, id: &str) -> Option<&PluginInfo> {
        self.inner.plugins.get(id).map(|p| &p.info)
    }

    /// Plugin files that did not load.
    #[must_use]
    pub fn failures(&self) -> &[LoadFailure] {
        &self.inner.failures
    }

    /// The clock plugins see.
    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Verifies and normalizes a webhook delivery.
    ///
    /// # Errors
    /// [`ProviderError::Webhook`] when the plugin refuses it; the sandbox errors otherwise.
    pub async fn handle_webhook(
        &self,
        provider: &str,
        config: &PluginConfig,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Vec<ProviderEvent>, ProviderError> {
        let verified = match self.webhook_sync(provider, config, headers, body).await? {
            fast::Outcome::Done(verified) => verified,
            fast::Outcome::Rerun(budget) => call!(self, provider, budget, |plugin, store| plugin
                .handle_webhook(store, config, headers, body)),
        };
        webhook_outcome(provider, verified)
    }

    /// [`ProviderHost::handle_webhook`] on the fiber path only, as every webhook ran before
    /// the synchronous path (`fast`): for benchmarks.
    ///
    /// # Errors
    /// As [`ProviderHost::handle_webhook`].
    #[doc(hidden)]
    pub async fn handle_webhook_on_fibers(
        &self,
        provider: &str,
        config: &PluginConfig,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Vec<ProviderEvent>, ProviderError> {
        let verified = call!(self, provider, |plugin, store| plugin
            .handle_webhook(store, config, headers, body));
        webhook_outcome(provider, verified)
    }

    /// Checks credentials with the provider.
    ///
    /// # Errors
    /// [`ProviderError::Plugin`] with the plugin's reason; the sandbox errors otherwise.
    pub async fn validate_credentials(
        &self,
        provider: &str,
        config: &PluginConfig,
    ) -> Result<(), ProviderError> {
        call!(self, provider, |plugin, store| plugin
            .validate_credentials(store, config))
        .map_err(|e| plugin_failure(provider, e))
    }

    /// Creates the provider-side product for a paid role.
    ///
    /// # Errors
    /// As [`ProviderHost::validate_credentials`].
    pub async fn create_product(
        &self,
        provider: &str,
        config: &PluginConfig,
        spec: &ProductSpec,
    ) -> Result<String, ProviderError> {
        let spec = convert::product_spec(spec);
        call!(self, provider, |plugin, store| plugin
            .create_product(store, config, &spec))
        .map_err(|e| plugin_failure(provider, e))
    }

    /// Creates a checkout for a member.
    ///
    /// # Errors
    /// As [`ProviderHost::validate_credentials`].
    pub async fn create_checkout(
        &self,
        provider: &str,
        config: &PluginConfig,
        request: &CheckoutRequest,
    ) -> Result<Checkout, ProviderError> {
        let request = convert::checkout_request(request);
        call!(self, provider, |plugin, store| plugin
            .create_checkout(store, config, &request))
        .map(convert::checkout)
        .map_err(|e| plugin_failure(provider, e))
    }

    /// Lists events since `cursor`.
    ///
    /// # Errors
    /// As [`ProviderHost::validate_credentials`].
    pub async fn poll(
        &self,
        provider: &str,
        config: &PluginConfig,
        cursor: Option<&str>,
    ) -> Result<Polled, ProviderError> {
        call!(self, provider, |plugin, store| plugin
            .poll(store, config, cursor))
        .map(convert::polled)
        .map_err(|e| plugin_failure(provider, e))
    }

    /// A short-lived page where this customer manages or cancels their subscription.
    ///
    /// # Errors
    /// [`PluginFailure::Unsupported`] without calling the plugin when it does not declare
    /// `manage-link` (every 0.1 plugin); otherwise as [`ProviderHost::validate_credentials`].
    pub async fn manage_link(
        &self,
        provider: &str,
        config: &PluginConfig,
        request: &ManageLinkRequest,
    ) -> Result<String, ProviderError> {
        self.require(provider, |c| c.manage_link, "manage-link")?;
        let request = convert::manage_link_request(request);
        call!(self, provider, |plugin, store| plugin
            .manage_link(store, config, &request))
        .map_err(|e| plugin_failure(provider, e))
    }

    /// One page of the provider's current subscribers, from `cursor` (`None`: the first).
    ///
    /// # Errors
    /// As [`ProviderHost::manage_link`], for `list-subscribers`.
    pub async fn list_subscribers(
        &self,
        provider: &str,
        config: &PluginConfig,
        cursor: Option<&str>,
    ) -> Result<SubscriberPage, ProviderError> {
        self.require(provider, |c| c.list_subscribers, "list-subscribers")?;
        call!(self, provider, |plugin, store| plugin
            .list_subscribers(store, config, cursor))
        .map(convert::subscriber_page)
        .map_err(|e| plugin_failure(provider, e))
    }

    /// A delivery signed as the provider would sign it with `config`, for an owner's test
    /// purchase: pass it to [`ProviderHost::handle_webhook`] (its events carry `test`).
    ///
    /// # Errors
    /// As [`ProviderHost::manage_link`], for `test-delivery`.
    pub async fn test_delivery(
        &self,
        provider: &str,
        config: &PluginConfig,
        request: &TestDeliveryRequest,
    ) -> Result<SignedDelivery, ProviderError> {
        self.require(provider, |c| c.test_delivery, "test-delivery")?;
        let request = convert::test_delivery_request(request);
        call!(self, provider, |plugin, store| plugin
            .test_delivery(store, config, &request))
        .map(convert::signed_delivery)
        .map_err(|e| plugin_failure(provider, e))
    }

    /// `Err(Unsupported)` unless the plugin declares the optional call `name`.
    fn require(
        &self,
        provider: &str,
        declared: impl FnOnce(Capabilities) -> bool,
        name: &str,
    ) -> Result<(), ProviderError> {
        let info = self
            .plugin(provider)
            .ok_or_else(|| ProviderError::UnknownProvider(provider.to_owned()))?;
        if declared(info.capabilities) {
            return Ok(());
        }
        Err(ProviderError::Plugin {
            provider: provider.to_owned(),
            error: PluginFailure::Unsupported(format!(
                "the plugin (API {}) does not offer {name}",
                info.api_version
            )),
        })
    }

    fn loaded(&self, provider: &str) -> Result<&LoadedPlugin, ProviderError> {
        self.inner
            .plugins
            .get(provider)
            .ok_or_else(|| ProviderError::UnknownProvider(provider.to_owned()))
    }

    /// A permit for one pooled instance, once one is free.
    async fn permit(
        &self,
        provider: &str,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, ProviderError> {
        let timeout = self.inner.limits.call_timeout;
        tokio::time::timeout(timeout, Arc::clone(&self.inner.slots).acquire_owned())
            .await
            .map_err(|_| ProviderError::Timeout {
                provider: provider.to_owned(),
                limit: format!("{timeout:?} waiting for a free plugin instance"),
            })?
            .map_err(|_| ProviderError::Trap {
                provider: provider.to_owned(),
                detail: "the plugin host is shutting down".into(),
            })
    }

    /// A fresh, limited instance of a plugin, once a slot is free.
    async fn instantiate(
        &self,
        provider: &str,
        budget: Budget,
    ) -> Result<(Slot, versions::Instance), ProviderError> {
        let plugin = self.loaded(provider)?;
        let timeout = self.inner.limits.call_timeout;
        let mut slot = Slot {
            _permit: self.permit(provider).await?,
            store: new_store(&self.inner, provider, Arc::clone(&plugin.hosts), budget),
        };
        let outcome =
            tokio::time::timeout(timeout, plugin.pre.instantiate_async(&mut slot.store)).await;
        let bindings = self.finish(provider, &slot.store, outcome)?;
        Ok((slot, bindings))
    }

    /// Turns what wasmtime and the timeout said into a typed error.
    fn finish<T>(
        &self,
        provider: &str,
        store: &Store<PluginState>,
        outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, ProviderError> {
        let error = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Err(_) => ProviderError::Timeout {
                provider: provider.to_owned(),
                limit: format!("{:?} per call", self.inner.limits.call_timeout),
            },
            Ok(Err(e)) => classify(provider, store, &e, &self.inner.limits),
        };
        tracing::warn!(plugin = provider, error = %error, "plugin call failed");
        Err(error)
    }
}

fn webhook_outcome(
    provider: &str,
    verified: Result<Vec<bindings::api::ProviderEvent>, bindings::api::WebhookError>,
) -> Result<Vec<ProviderEvent>, ProviderError> {
    verified
        .map(convert::events)
        .map_err(|e| ProviderError::Webhook {
            provider: provider.to_owned(),
            error: e.into(),
        })
}

fn plugin_failure(provider: &str, e: bindings::api::ProviderError) -> ProviderError {
    ProviderError::Plugin {
        provider: provider.to_owned(),
        error: e.into(),
    }
}

fn classify(
    provider: &str,
    store: &Store<PluginState>,
    error: &wasmtime::Error,
    limits: &Limits,
) -> ProviderError {
    let provider = provider.to_owned();
    if store.data().memory.exceeded {
        return ProviderError::OutOfMemory {
            provider,
            limit_mib: limits.memory_bytes >> 20,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => ProviderError::Timeout {
            provider,
            limit: format!("CPU budget of {} fuel", limits.fuel),
        },
        Some(Trap::Interrupt) => ProviderError::Timeout {
            provider,
            limit: format!("deadline of {:?}", limits.deadline),
        },
        _ => ProviderError::Trap {
            provider,
            detail: first_line(&error.to_string()),
        },
    }
}

pub(super) fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

/// What a call may spend: all of [`Limits`] for a new call, what is left of them for a
/// webhook rerun on fibers (`fast`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    fuel: u64,
    ticks_used: u64,
    /// A synchronous call (`fast`): moved to fibers at its slice's end instead of yielding.
    sync: bool,
}

impl Budget {
    fn full(limits: &Limits) -> Self {
        Self {
            fuel: limits.fuel,
            ticks_used: 0,
            sync: false,
        }
    }
}

pub(super) fn new_store(
    inner: &Inner,
    provider: &str,
    hosts: Arc<[String]>,
    budget: Budget,
) -> Store<PluginState> {
    let limits = &inner.limits;
    let state = PluginState {
        wasi: WasiCtx::builder().build(),
        table: ResourceTable::new(),
        memory: MemoryCap {
            max_bytes: limits.memory_bytes,
            exceeded: false,
        },
        plugin: Arc::from(provider),
        hosts,
        fetcher: inner.fetcher.clone(),
        fetch_caps: fetch::FetchCaps {
            request_bytes: limits.fetch_request_bytes,
            response_bytes: limits.fetch_response_bytes,
            timeout: limits.fetch_timeout,
        },
        fetches_left: limits.fetch_calls,
        clock: inner.clock.clone(),
        log_left: limits.log_bytes,
        ticks: budget.ticks_used,
        held_logs: budget.sync.then(Vec::new),
    };
    let mut store = Store::new(&inner.engine, state);
    store.limiter(|s| &mut s.memory);
    // Cannot fail: fuel is enabled on the engine.
    let _ = store.set_fuel(budget.fuel);
    // Yield to tokio at every tick (a busy plugin never pins a worker) and interrupt once
    // the deadline's worth of ticks has passed; a synchronous call cannot yield, so it is
    // stopped at its slice's end and rerun on fibers (`fast`). Set before instantiating: a
    // deadline of 0 would trap at once.
    let max_ticks = u64::try_from(limits.deadline.as_millis() / EPOCH_TICK.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut cx| {
        let state = cx.data_mut();
        state.ticks += 1;
        Ok(if state.ticks >= max_ticks {
            UpdateDeadline::Interrupt
        } else if !budget.sync {
            UpdateDeadline::Yield(1)
        } else if state.ticks >= fast::SYNC_SLICE_TICKS {
            return Err(wasmtime::Error::new(fast::NeedsFibers::Slice));
        } else {
            UpdateDeadline::Continue(1)
        })
    });
    store
}
