//! Loading plugins: the embedded built-ins, the plugins folder, validation of what a plugin
//! declares, and `docobo plugin inspect`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::bindings::{ApiVersion, SUPPORTED_API_VERSIONS, api, latest, v0_1};
use super::fast::SyncPre;
use super::state::PluginState;
use super::versions::Pre;
use super::{
    Budget, CacheOutcome, FetchPolicy, HostOptions, Inner, LoadFailure, LoadedPlugin, PluginInfo,
    PluginSource, ProviderHost, convert, engine, fetch, first_line, new_store,
};
use crate::domain::{Currency, ProviderId};

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
        // Every supported version's `host` interface: `docobo:provider/host@0.1.0` and
        // `@0.2.0` are distinct names to the linker (0.x versions match on their minor).
        latest::ProviderPlugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| anyhow::anyhow!("cannot link the host API: {e}"))?;
        v0_1::ProviderPlugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| anyhow::anyhow!("cannot link the 0.1 host API: {e}"))?;

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
            paths: super::fast::PathCounts::default(),
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
                Ok(plugin) => host.add(plugin, source),
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
}

impl Inner {
    /// Adds a plugin that loaded, unless its id is taken. A file replaces the built-in of its
    /// id: an operator can run another build of a built-in provider (a newer one, or one kept
    /// from an older release) without rebuilding Docobo.
    fn add(&mut self, plugin: LoadedPlugin, source: PluginSource) {
        let id = plugin.info.id.as_str().to_owned();
        match self.plugins.get(&id) {
            Some(loaded)
                if loaded.info.source == PluginSource::Builtin
                    && plugin.info.source != PluginSource::Builtin =>
            {
                tracing::warn!(
                    plugin = %plugin.info.id,
                    version = %plugin.info.version,
                    api = %plugin.info.api_version,
                    source = %plugin.info.source,
                    "plugin file replaces the built-in plugin of the same id"
                );
            }
            Some(_) => {
                let error = format!(
                    "a plugin with id {id:?} is already loaded; plugin ids must be unique (remove or rename one)"
                );
                tracing::error!(source = %source, %error, "plugin skipped");
                self.failures.push(LoadFailure { source, error });
                return;
            }
            None => {
                tracing::info!(
                    plugin = %plugin.info.id,
                    version = %plugin.info.version,
                    api = %plugin.info.api_version,
                    source = %plugin.info.source,
                    cache = ?plugin.info.cache,
                    hosts = ?plugin.info.allowed_hosts,
                    "plugin loaded"
                );
            }
        }
        self.plugins.insert(id, plugin);
    }
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
    let Some(exported) = exported_api_version(&host.engine, &component) else {
        return Err(
            "is not a Docobo provider plugin (it exports no docobo:provider/provider interface)"
                .into(),
        );
    };
    let Some(version) = ApiVersion::from_export(&exported) else {
        return Err(format!(
            "built for plugin API {exported}, but this Docobo loads plugin API {}: rebuild the plugin with a docobo-plugin-sdk for one of those, or upgrade Docobo",
            SUPPORTED_API_VERSIONS.join(" and ")
        ));
    };
    let pre = linker
        .instantiate_pre(&component)
        .and_then(|pre| Pre::new(version, pre))
        .map_err(|e| {
            format!(
                "does not fit plugin API {exported}: {}",
                first_line(&e.to_string())
            )
        })?;

    let sync = SyncPre::new(&host.engine, &component, version, &exported)
        .inspect_err(|e| {
            tracing::info!(error = %first_line(&e.to_string()), "plugin webhooks will run on the asynchronous path");
        })
        .ok();
    let budget = Budget::full(&host.limits);
    let mut store = new_store(host, "(loading)", Arc::from(Vec::new()), budget);
    let instance = pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| format!("cannot be instantiated: {}", first_line(&e.to_string())))?;
    let raw = instance
        .plugin_info(&mut store)
        .await
        .map_err(|e| format!("plugin-info failed: {}", first_line(&e.to_string())))?;
    let info = validate_info(raw, exported, source, cache, &host.fetcher)?;
    Ok(LoadedPlugin {
        hosts: Arc::from(info.allowed_hosts.clone()),
        info,
        pre,
        sync,
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
    let mut currencies = Vec::new();
    for code in &raw.currencies {
        match Currency::parse(code) {
            Ok(c) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) => {
                currencies.push(c);
            }
            _ => problems.push(format!(
                "currency {code:?} is not an upper-case ISO 4217 code Docobo knows"
            )),
        }
    }
    if !problems.is_empty() {
        return Err(format!("plugin {id} is invalid: {}", problems.join("; ")));
    }
    Ok(PluginInfo {
        currencies,
        allowed_hosts: fetcher.policy().effective_hosts(&raw.hosts),
        id,
        name: raw.name,
        version: raw.version,
        api_version,
        config_fields: raw
            .config_fields
            .into_iter()
            .map(convert::config_field)
            .collect(),
        hosts: raw.hosts,
        needs_products: raw.needs_products,
        supports_poll: raw.supports_poll,
        capabilities: convert::capabilities(raw.capabilities),
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
