//! The synchronous path for `handle-webhook`: the same fresh, limited instance per call, but
//! instantiated and called without fibers (no `instantiate_async`/`call_async`, no fiber
//! stack switch, no future polling), which is most of what a small call costs.
//!
//! A webhook is verified from what the request carries (`docs/wasm.md`): the built-in
//! plugins call nothing but `log` and `now` there. So each plugin also gets a second
//! linking, where `log` and `now` are synchronous host functions and every other import
//! (`http-fetch`, all of WASI) is a stub that stops the call with [`NeedsFibers`]. A call that
//! reaches a stub, or that is still running at its second epoch tick (10–20 ms), is dropped
//! and run again from the start on the fiber path with what is left of its fuel and deadline.
//! `handle-webhook` has no side effects but its log lines, which are held until the call is
//! known to finish here, so a rerun is invisible (but for its cost).
//!
//! Running on the caller's tokio worker is fine: a call ends, or is moved to the fiber path,
//! within two epoch ticks, the same bound the fiber path's yield at every tick gives.
//! The fuel budget, the epoch deadline (a trap when it is shorter than the slice), the memory
//! cap and the pooled, reset instance are those of every other call.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    Component, ComponentExportIndex, InstancePre, Linker, LinkerInstance, ResourceType,
};
use wasmtime::{Engine, Store};

use super::bindings::{ApiVersion, api, v0_1};
use super::state::PluginState;
use super::v0_1 as adapt_v0_1;
use super::{Budget, PluginConfig, ProviderError, ProviderHost, Slot, new_store};

/// Ticks a synchronous call may run before it is moved to the fiber path.
pub(super) const SYNC_SLICE_TICKS: u64 = 2;

/// Why a synchronous call stopped: it must be run again on the fiber path.
#[derive(Debug)]
pub(super) enum NeedsFibers {
    /// The plugin called an import the synchronous linking does not serve.
    Import(String),
    /// It ran for [`SYNC_SLICE_TICKS`] epoch ticks.
    Slice,
}

impl fmt::Display for NeedsFibers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Import(name) => write!(f, "{name} needs the asynchronous path"),
            Self::Slice => f.write_str("the call outran its synchronous time slice"),
        }
    }
}

impl std::error::Error for NeedsFibers {}

/// How many webhook calls finished on the synchronous path, and how many were rerun on
/// fibers (a plugin that fetches or uses WASI there, or runs longer than the slice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookPaths {
    pub synchronous: u64,
    pub rerun_on_fibers: u64,
}

/// The counters behind [`WebhookPaths`].
#[derive(Debug, Default)]
pub(super) struct PathCounts {
    sync: AtomicU64,
    rerun: AtomicU64,
}

/// The end of a synchronous webhook call.
pub(super) enum Outcome {
    /// It finished there: the plugin's verdict.
    Done(Verified),
    /// Run it again on fibers, with what is left.
    Rerun(Budget),
}

impl ProviderHost {
    /// How webhook calls have run so far (for tests, benchmarks and diagnostics).
    #[must_use]
    pub fn webhook_paths(&self) -> WebhookPaths {
        let counts = &self.inner.paths;
        WebhookPaths {
            synchronous: counts.sync.load(Ordering::Relaxed),
            rerun_on_fibers: counts.rerun.load(Ordering::Relaxed),
        }
    }

    /// `handle-webhook` on a fresh instance without fibers; see the module docs.
    pub(super) async fn webhook_sync(
        &self,
        provider: &str,
        config: &PluginConfig,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Outcome, ProviderError> {
        let plugin = self.loaded(provider)?;
        let limits = &self.inner.limits;
        let Some(sync) = &plugin.sync else {
            return Ok(Outcome::Rerun(Budget::full(limits)));
        };
        let budget = Budget {
            sync: true,
            ..Budget::full(limits)
        };
        let mut slot = Slot {
            _permit: self.permit(provider).await?,
            store: new_store(&self.inner, provider, Arc::clone(&plugin.hosts), budget),
        };
        let outcome = sync.handle_webhook(&mut slot.store, config, headers, body);
        let store = &mut slot.store;
        if let Err(e) = &outcome
            && !store.data().memory.exceeded
            && let Some(reason) = e.downcast_ref::<NeedsFibers>()
        {
            tracing::debug!(plugin = provider, %reason, "webhook rerun on fibers");
            self.inner.paths.rerun.fetch_add(1, Ordering::Relaxed);
            return Ok(Outcome::Rerun(Budget {
                fuel: store.get_fuel().unwrap_or(0),
                ticks_used: store.data().ticks,
                sync: false,
            }));
        }
        self.inner.paths.sync.fetch_add(1, Ordering::Relaxed);
        store.data_mut().release_logs();
        self.finish(provider, store, Ok(outcome)).map(Outcome::Done)
    }
}

/// A plugin linked for synchronous `handle-webhook` calls.
pub(super) struct SyncPre {
    pre: InstancePre<PluginState>,
    version: ApiVersion,
    handle_webhook: ComponentExportIndex,
}

type Params<'a> = (&'a [(String, String)], &'a [(String, String)], &'a [u8]);
type Verified = Result<Vec<api::ProviderEvent>, api::WebhookError>;

impl SyncPre {
    /// Links `component` (which exports `docobo:provider/provider@{exported}`) for the
    /// synchronous path.
    ///
    /// # Errors
    /// The component imports something that cannot be stubbed (a core module or component).
    pub(super) fn new(
        engine: &Engine,
        component: &Component,
        version: ApiVersion,
        exported: &str,
    ) -> wasmtime::Result<Self> {
        let mut linker = Linker::new(engine);
        for (name, import) in component.component_type().imports(engine) {
            define(&mut linker.root(), engine, name, &import.ty, name)?;
        }
        let interface = format!("docobo:provider/provider@{exported}");
        let handle_webhook = component
            .get_export_index(None, &interface)
            .and_then(|i| component.get_export_index(Some(&i), "handle-webhook"))
            .ok_or_else(|| wasmtime::format_err!("{interface} exports no handle-webhook"))?;
        Ok(Self {
            pre: linker.instantiate_pre(component)?,
            version,
            handle_webhook,
        })
    }

    /// Instantiates the plugin in `store` and calls `handle-webhook`, synchronously.
    pub(super) fn handle_webhook(
        &self,
        store: &mut Store<PluginState>,
        config: &[(String, String)],
        headers: &[(String, String)],
        body: &[u8],
    ) -> wasmtime::Result<Verified> {
        let instance = self.pre.instantiate(&mut *store)?;
        let params = (config, headers, body);
        Ok(match self.version {
            ApiVersion::V0_2 => {
                let func = instance
                    .get_typed_func::<Params<'_>, (Verified,)>(&mut *store, &self.handle_webhook)?;
                func.call(&mut *store, params)?.0
            }
            ApiVersion::V0_1 => {
                type Old = Result<Vec<v0_1::api::ProviderEvent>, v0_1::api::WebhookError>;
                let func = instance
                    .get_typed_func::<Params<'_>, (Old,)>(&mut *store, &self.handle_webhook)?;
                func.call(&mut *store, params)?
                    .0
                    .map(adapt_v0_1::events)
                    .map_err(adapt_v0_1::webhook_error)
            }
        })
    }
}

/// Defines import `name` (`path` for messages): `log` and `now` of the host interface for
/// real, everything else as a stub that raises [`NeedsFibers`].
fn define(
    linker: &mut LinkerInstance<'_, PluginState>,
    engine: &Engine,
    name: &str,
    item: &ComponentItem,
    path: &str,
) -> wasmtime::Result<()> {
    match item {
        ComponentItem::ComponentInstance(instance) => {
            let mut inner = linker.instance(name)?;
            let host = name
                .strip_prefix("docobo:provider/host@")
                .and_then(ApiVersion::from_export);
            if let Some(version) = host {
                define_host(&mut inner, version)?;
            }
            for (export, item) in instance.exports(engine) {
                let served = host.is_some() && matches!(export, "log" | "now");
                if !served {
                    let path = format!("{path}#{export}");
                    define(&mut inner, engine, export, &item.ty, &path)?;
                }
            }
        }
        ComponentItem::ComponentFunc(_) => {
            let path = path.to_owned();
            linker.func_new(name, move |_, _, _, _| {
                Err(wasmtime::Error::new(NeedsFibers::Import(path.clone())))
            })?;
        }
        ComponentItem::Resource(_) => {
            linker.resource(name, ResourceType::host::<()>(), |_, _| Ok(()))?;
        }
        ComponentItem::Type(_) | ComponentItem::CoreFunc(_) => {}
        ComponentItem::Module(_) | ComponentItem::Component(_) => {
            wasmtime::bail!("imports a {path} that the synchronous path cannot stub");
        }
    }
    Ok(())
}

/// The synchronous `log` and `now` of host interface `version`.
fn define_host(
    host: &mut LinkerInstance<'_, PluginState>,
    version: ApiVersion,
) -> wasmtime::Result<()> {
    match version {
        ApiVersion::V0_2 => {
            host.func_wrap("log", |mut cx, (level, msg): (api::LogLevel, String)| {
                cx.data_mut().log(level, msg);
                Ok(())
            })?;
        }
        ApiVersion::V0_1 => {
            host.func_wrap(
                "log",
                |mut cx, (level, msg): (v0_1::api::LogLevel, String)| {
                    cx.data_mut().log(adapt_v0_1::log_level(level), msg);
                    Ok(())
                },
            )?;
        }
    }
    host.func_wrap("now", |cx, (): ()| Ok((cx.data().clock.now_ms(),)))
}
