//! The provider plugin host: loads WASM components and calls them in a sandbox.
//!
//! Every call gets a fresh instance from a cached `InstancePre` (≈20 µs), with a fuel budget,
//! an epoch deadline, a memory cap, a stack cap and a timeout. A trap, a timeout, running out
//! of memory or a refused `http-fetch` fails that call only, as a typed [`ProviderError`];
//! the host and the other plugins carry on. Plugins see nothing but the `host` interface
//! (`http-fetch`, `log`, `now`) and an inert WASI shim.
//!
//! Built-in plugins (`polar`, `sepay`) are embedded in the binary; more `.wasm` files can be
//! dropped in `plugins.dir`. A file that does not load is reported and skipped.

mod bindings;
mod engine;
mod fetch;
mod limits;
mod state;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtx;

pub use bindings::{API_VERSION, api};
use bindings::{ProviderPlugin, ProviderPluginPre};
pub use engine::{CacheOutcome, POOL_SLOTS};
pub use fetch::{FetchPolicy, check_url, is_public};
pub use limits::Limits;
use limits::{EPOCH_TICK, MemoryCap};
pub use state::Clock;
use state::PluginState;

use crate::domain::ProviderId;

/// Plugin configuration: key/value pairs.
pub type PluginConfig = Vec<(String, String)>;

/// The built-in plugins, embedded at build time (see `build.rs`).
pub const BUILTIN: &[(&str, &[u8])] = &[
    (
        "polar",
        include_bytes!(concat!(env!("DOCOBO_PLUGINS_OUT"), "/docobo_polar.wasm")),
    ),
    (
        "sepay",
        include_bytes!(concat!(env!("DOCOBO_PLUGINS_OUT"), "/docobo_sepay.wasm")),
    ),
];

/// Where `build.rs` put the plugins it built (including the test provider and the template,
/// which are not embedded). For tests and benchmarks.
#[must_use]
pub fn built_plugin(file_stem: &str) -> PathBuf {
    Path::new(env!("DOCOBO_PLUGINS_OUT")).join(format!("{file_stem}.wasm"))
}

/// Why a plugin call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("no provider plugin named {0:?} is loaded")]
    UnknownProvider(String),
    /// The plugin refused a webhook (bad signature, stale timestamp, …).
    #[error("{provider}: {error}")]
    Webhook {
        provider: String,
        error: WebhookRejection,
    },
    /// The plugin reported an error (bad credentials, provider API down, …).
    #[error("{provider}: {error}")]
    Plugin {
        provider: String,
        error: PluginFailure,
    },
    /// The plugin trapped (a bug in the plugin, e.g. a panic).
    #[error("{provider}: the plugin crashed: {detail}")]
    Trap { provider: String, detail: String },
    /// The plugin ran out of its CPU budget or time.
    #[error("{provider}: the plugin ran too long ({limit})")]
    Timeout { provider: String, limit: String },
    /// The plugin tried to use more memory than allowed.
    #[error("{provider}: the plugin exceeded its memory limit of {limit_mib} MiB")]
    OutOfMemory { provider: String, limit_mib: usize },
}

/// A plugin's typed refusal of a webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRejection {
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("stale timestamp: {0}")]
    StaleTimestamp(String),
    #[error("malformed webhook: {0}")]
    Malformed(String),
    #[error("misconfigured: {0}")]
    Misconfigured(String),
}

/// A plugin's typed failure of a call other than `handle-webhook`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFailure {
    #[error("the provider refused the credentials: {0}")]
    InvalidCredentials(String),
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    #[error("the provider failed: {0}")]
    Upstream(String),
    #[error("not supported by this plugin: {0}")]
    Unsupported(String),
}

impl From<api::WebhookError> for WebhookRejection {
    fn from(e: api::WebhookError) -> Self {
        match e {
            api::WebhookError::BadSignature(m) => Self::BadSignature(m),
            api::WebhookError::StaleTimestamp(m) => Self::StaleTimestamp(m),
            api::WebhookError::Malformed(m) => Self::Malformed(m),
            api::WebhookError::Misconfigured(m) => Self::Misconfigured(m),
        }
    }
}

impl From<api::ProviderError> for PluginFailure {
    fn from(e: api::ProviderError) -> Self {
        match e {
            api::ProviderError::InvalidCredentials(m) => Self::InvalidCredentials(m),
            api::ProviderError::Misconfigured(m) => Self::Misconfigured(m),
            api::ProviderError::Upstream(m) => Self::Upstream(m),
            api::ProviderError::Unsupported(m) => Self::Unsupported(m),
        }
    }
}

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
    pub config_fields: Vec<api::ConfigField>,
    /// Hosts the plugin declares.
    pub hosts: Vec<String>,
    /// Hosts it may actually reach: declared ∩ `plugins.allowed_hosts`.
    pub allowed_hosts: Vec<String>,
    pub needs_products: bool,
    pub supports_poll: bool,
    pub webhook_events: Vec<String>,
    pub webhook_ack: Option<String>,
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

struct LoadedPlugin {
    info: PluginInfo,
    pre: ProviderPluginPre<PluginState>,
    hosts: Arc<[String]>,
}

struct Inner {
    engine: Engine,
    plugins: BTreeMap<String, LoadedPlugin>,
    failures: Vec<LoadFailure>,
    fetcher: fetch::Fetcher,
    limits: Limits,
    clock: Clock,
    /// One permit per instance the engine's pool holds: a call waits for a free slot
    /// instead of failing when every slot is busy.
    slots: Arc<tokio::sync::Semaphore>,
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

/// Largest plugin file accepted.
const MAX_PLUGIN_BYTES: u64 = 8 << 20;

impl ProviderHost {
    /// Loads the built-in plugins and every `.wasm` in the plugins folder. Plugins that fail
    /// to load are logged and listed in [`ProviderHost::failures`]; they do not stop the rest.
    ///
    /// # Errors
    /// The engine or the HTTP client cannot be created, or the plugins folder is unreadable.
    pub async fn load(options: HostOptions) -> anyhow::Result<Self> {
        let (engine, pooled) = engine::engine(options.limits.memory_bytes)
            .map_err(|e| anyhow::anyhow!("cannot start wasmtime: {e}"))?;
        tracing::debug!(pooled, "plugin engine ready");
        engine::start_epoch_ticker(&engine);
        let fetcher = fetch::Fetcher::new(options.fetch.clone())?;
        let mut linker: Linker<PluginState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("cannot link WASI: {e}"))?;
        ProviderPlugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("cannot link the host API: {e}"))?;

        let mut sources: Vec<(PluginSource, Result<Vec<u8>, String>)> = Vec::new();
        if options.builtins {
            for (_, bytes) in BUILTIN {
                sources.push((PluginSource::Builtin, Ok(bytes.to_vec())));
            }
        }
        let mut files = options.extra_files.clone();
        if let Some(dir) = &options.plugins_dir {
            files.extend(wasm_files(dir)?);
        }
        for path in files {
            sources.push((PluginSource::File(path.clone()), read_plugin_file(&path)));
        }

        let mut host = Inner {
            engine,
            plugins: BTreeMap::new(),
            failures: Vec::new(),
            fetcher,
            limits: options.limits.clone(),
            clock: options.clock.clone(),
            slots: Arc::new(tokio::sync::Semaphore::new(engine::POOL_SLOTS as usize)),
        };
        for (source, bytes) in sources {
            let loaded = match bytes {
                Ok(bytes) => {
                    load_one(
                        &host,
                        &linker,
                        &bytes,
                        source.clone(),
                        options.cache_dir.as_deref(),
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            match loaded {
                Ok(plugin) if host.plugins.contains_key(plugin.info.id.as_str()) => {
                    let error = format!(
                        "a plugin with id {:?} is already loaded; plugin ids must be unique (remove or rename one)",
                        plugin.info.id.as_str()
                    );
                    tracing::error!(source = %source, %error, "plugin skipped");
                    host.failures.push(LoadFailure { source, error });
                }
                Ok(plugin) => {
                    tracing::info!(
                        plugin = %plugin.info.id,
                        version = %plugin.info.version,
                        source = %plugin.info.source,
                        cache = ?plugin.info.cache,
                        hosts = ?plugin.info.allowed_hosts,
                        "plugin loaded"
                    );
                    host.plugins
                        .insert(plugin.info.id.as_str().to_owned(), plugin);
                }
                Err(error) => {
                    tracing::error!(source = %source, %error, "plugin skipped: it does not load");
                    host.failures.push(LoadFailure { source, error });
                }
            }
        }
        Ok(Self {
            inner: Arc::new(host),
        })
    }

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
    ) -> Result<Vec<api::ProviderEvent>, ProviderError> {
        let (mut slot, bindings) = self.instantiate(provider).await?;
        let call = bindings.docobo_provider_provider().call_handle_webhook(
            &mut slot.store,
            config,
            headers,
            body,
        );
        let outcome = tokio::time::timeout(self.inner.limits.call_timeout, call).await;
        self.finish(provider, &slot.store, outcome)?
            .map_err(|e| ProviderError::Webhook {
                provider: provider.to_owned(),
                error: e.into(),
            })
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
        let (mut slot, bindings) = self.instantiate(provider).await?;
        let call = bindings
            .docobo_provider_provider()
            .call_validate_credentials(&mut slot.store, config);
        let outcome = tokio::time::timeout(self.inner.limits.call_timeout, call).await;
        self.finish(provider, &slot.store, outcome)?
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
        spec: &api::ProductSpec,
    ) -> Result<String, ProviderError> {
        let (mut slot, bindings) = self.instantiate(provider).await?;
        let call =
            bindings
                .docobo_provider_provider()
                .call_create_product(&mut slot.store, config, spec);
        let outcome = tokio::time::timeout(self.inner.limits.call_timeout, call).await;
        self.finish(provider, &slot.store, outcome)?
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
        request: &api::CheckoutRequest,
    ) -> Result<api::Checkout, ProviderError> {
        let (mut slot, bindings) = self.instantiate(provider).await?;
        let call = bindings.docobo_provider_provider().call_create_checkout(
            &mut slot.store,
            config,
            request,
        );
        let outcome = tokio::time::timeout(self.inner.limits.call_timeout, call).await;
        self.finish(provider, &slot.store, outcome)?
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
    ) -> Result<api::PollResult, ProviderError> {
        let (mut slot, bindings) = self.instantiate(provider).await?;
        let call = bindings
            .docobo_provider_provider()
            .call_poll(&mut slot.store, config, cursor);
        let outcome = tokio::time::timeout(self.inner.limits.call_timeout, call).await;
        self.finish(provider, &slot.store, outcome)?
            .map_err(|e| plugin_failure(provider, e))
    }

    /// A fresh, limited instance of a plugin, once a slot is free.
    async fn instantiate(&self, provider: &str) -> Result<(Slot, ProviderPlugin), ProviderError> {
        let plugin = self
            .inner
            .plugins
            .get(provider)
            .ok_or_else(|| ProviderError::UnknownProvider(provider.to_owned()))?;
        let timeout = self.inner.limits.call_timeout;
        let permit = tokio::time::timeout(timeout, Arc::clone(&self.inner.slots).acquire_owned())
            .await
            .map_err(|_| ProviderError::Timeout {
                provider: provider.to_owned(),
                limit: format!("{timeout:?} waiting for a free plugin instance"),
            })?
            .map_err(|_| ProviderError::Trap {
                provider: provider.to_owned(),
                detail: "the plugin host is shutting down".into(),
            })?;
        let mut slot = Slot {
            store: new_store(&self.inner, provider, Arc::clone(&plugin.hosts)),
            _permit: permit,
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

fn plugin_failure(provider: &str, e: api::ProviderError) -> ProviderError {
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

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

fn new_store(inner: &Inner, provider: &str, hosts: Arc<[String]>) -> Store<PluginState> {
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
    };
    let mut store = Store::new(&inner.engine, state);
    store.limiter(|s| &mut s.memory);
    // Cannot fail: fuel is enabled on the engine.
    let _ = store.set_fuel(limits.fuel);
    // Yield to tokio at every tick (a busy plugin never pins a worker) and interrupt once
    // the deadline's worth of ticks has passed. Set before instantiating: a deadline of 0
    // would trap at once.
    let max_ticks = (limits.deadline.as_millis() / EPOCH_TICK.as_millis()).max(1);
    let mut ticks: u128 = 0;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        ticks += 1;
        Ok(if ticks >= max_ticks {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Yield(1)
        })
    });
    store
}

/// Compiles (or loads from the cache) one plugin, pre-instantiates it and reads its info.
async fn load_one(
    host: &Inner,
    linker: &Linker<PluginState>,
    bytes: &[u8],
    source: PluginSource,
    cache_dir: Option<&Path>,
) -> Result<LoadedPlugin, String> {
    let engine = host.engine.clone();
    let wasm = bytes.to_vec();
    let cache_dir = cache_dir.map(Path::to_owned);
    let (component, cache) = tokio::task::spawn_blocking(move || {
        engine::load_component(&engine, &wasm, cache_dir.as_deref())
    })
    .await
    .map_err(|e| format!("the compile task failed: {e}"))?
    .map_err(|e| {
        format!(
            "not a valid WebAssembly component: {}",
            first_line(&e.to_string())
        )
    })?;
    let api_version = exported_api_version(&host.engine, &component);
    let pre = linker
        .instantiate_pre(&component)
        .and_then(ProviderPluginPre::new)
        .map_err(|e| match &api_version {
            Some(v) if v != API_VERSION => format!(
                "built for plugin API {v}, but this Docobo supports {API_VERSION}: rebuild the plugin with a matching docobo-plugin-sdk"
            ),
            Some(_) => format!("does not fit the plugin API: {}", first_line(&e.to_string())),
            None => format!(
                "is not a Docobo provider plugin (it exports no docobo:provider/provider interface): {}",
                first_line(&e.to_string())
            ),
        })?;

    let mut store = new_store(host, "(loading)", Arc::from(Vec::new()));
    let instance = pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| format!("cannot be instantiated: {}", first_line(&e.to_string())))?;
    let raw = instance
        .docobo_provider_provider()
        .call_plugin_info(&mut store)
        .await
        .map_err(|e| format!("plugin-info failed: {}", first_line(&e.to_string())))?;
    let info = validate_info(
        raw,
        api_version.unwrap_or_else(|| API_VERSION.into()),
        source,
        cache,
        &host.fetcher,
    )?;
    Ok(LoadedPlugin {
        hosts: Arc::from(info.allowed_hosts.clone()),
        info,
        pre,
    })
}

fn validate_info(
    raw: api::PluginInfo,
    api_version: String,
    source: PluginSource,
    cache: CacheOutcome,
    fetcher: &fetch::Fetcher,
) -> Result<PluginInfo, String> {
    let id = ProviderId::parse(&raw.id).map_err(|e| format!("declares a bad id: {e}"))?;
    let mut problems = Vec::new();
    if raw.name.trim().is_empty() {
        problems.push("its name is empty".to_owned());
    }
    for field in &raw.config_fields {
        if field.key.is_empty()
            || !field
                .key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            problems.push(format!(
                "config field key {:?} is not [a-zA-Z0-9_]+",
                field.key
            ));
        }
    }
    for host in &raw.hosts {
        let ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !ok {
            problems.push(format!("declared host {host:?} is not a host name"));
        }
    }
    if let Some(ack) = &raw.webhook_ack
        && serde_json::from_str::<serde_json::Value>(ack).is_err()
    {
        problems.push("webhook-ack is not JSON".to_owned());
    }
    if !problems.is_empty() {
        return Err(format!("plugin {id} is invalid: {}", problems.join("; ")));
    }
    Ok(PluginInfo {
        allowed_hosts: fetcher.policy().effective_hosts(&raw.hosts),
        id,
        name: raw.name,
        version: raw.version,
        api_version,
        config_fields: raw.config_fields,
        hosts: raw.hosts,
        needs_products: raw.needs_products,
        supports_poll: raw.supports_poll,
        webhook_events: raw.webhook_events,
        webhook_ack: raw.webhook_ack,
        source,
        cache,
    })
}

/// The version in the component's `docobo:provider/provider@X.Y.Z` export, if any.
fn exported_api_version(engine: &Engine, component: &Component) -> Option<String> {
    component
        .component_type()
        .exports(engine)
        .find_map(|(name, _)| {
            name.strip_prefix("docobo:provider/provider@")
                .map(str::to_owned)
        })
}

fn wasm_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!(
            "cannot read the plugins folder {}: {e}. Fix: check plugins.dir and its permissions",
            dir.display()
        ),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    files.sort();
    Ok(files)
}

fn read_plugin_file(path: &Path) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    if size > MAX_PLUGIN_BYTES {
        return Err(format!(
            "is {size} bytes; plugins may be at most {MAX_PLUGIN_BYTES} bytes"
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot read: {e}"))
}

/// What `docobo plugin inspect` reports about one file.
#[derive(Debug)]
pub struct Inspection {
    pub path: PathBuf,
    pub size: u64,
    pub result: Result<PluginInfo, String>,
}

/// Loads one plugin file on its own, to say what it is and whether it loads.
///
/// # Errors
/// The engine cannot start.
pub async fn inspect(path: &Path, fetch: FetchPolicy) -> anyhow::Result<Inspection> {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let host = ProviderHost::load(HostOptions {
        extra_files: vec![path.to_owned()],
        fetch,
        ..HostOptions::default()
    })
    .await?;
    let result = match (host.plugins().next(), host.failures().first()) {
        (Some(info), _) => Ok(info.clone()),
        (None, Some(failure)) => Err(failure.error.clone()),
        (None, None) => Err("nothing was loaded".into()),
    };
    Ok(Inspection {
        path: path.to_owned(),
        size,
        result,
    })
}

/// A price as plugins see it.
#[must_use]
pub fn api_money(money: crate::domain::Money) -> api::Money {
    api::Money {
        minor_units: money.minor_units(),
        currency: money.currency().as_str().to_owned(),
    }
}

/// A billing period as plugins see it.
#[must_use]
pub fn api_billing(billing: crate::domain::Billing) -> api::Billing {
    match billing {
        crate::domain::Billing::Monthly => api::Billing::Monthly,
        crate::domain::Billing::Yearly => api::Billing::Yearly,
        crate::domain::Billing::OneTime => api::Billing::OneTime,
        crate::domain::Billing::Days(n) => api::Billing::Days(n.get()),
    }
}
