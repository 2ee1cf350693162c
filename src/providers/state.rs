//! What a plugin instance can reach: the store state behind the host imports.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::api::{HttpRequest, HttpResponse, LogLevel};
use super::bindings::docobo::provider::{host, types};
use super::fetch::{FetchCaps, Fetcher};
use super::limits::MemoryCap;
use crate::clock::Clock;

/// Per-call store state. Dropped with the store at the end of the call.
pub struct PluginState {
    /// Inert WASI for std guests: no files, sockets, environment or arguments; stdout and
    /// stderr are discarded.
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) memory: MemoryCap,
    pub(super) plugin: Arc<str>,
    /// Hosts this plugin may reach (declared ∩ allowed).
    pub(super) hosts: Arc<[String]>,
    pub(super) fetcher: Fetcher,
    pub(super) fetch_caps: FetchCaps,
    pub(super) fetches_left: u32,
    pub(super) clock: Clock,
    pub(super) log_left: usize,
    /// Epoch ticks this call has seen (its deadline is counted in ticks).
    pub(super) ticks: u64,
    /// On the synchronous webhook path (`fast`), log lines wait here until the call is
    /// known to finish there: a call rerun on fibers logs again, so nothing is logged twice.
    pub(super) held_logs: Option<Vec<(LogLevel, String)>>,
}

impl PluginState {
    /// A plugin's `log` call: at most `log_bytes` per call, cut at a character boundary.
    pub(super) fn log(&mut self, level: LogLevel, msg: String) {
        if self.log_left == 0 {
            return;
        }
        let mut msg = msg;
        if msg.len() > self.log_left {
            let mut cut = self.log_left;
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            msg.truncate(cut);
            msg.push('…');
        }
        self.log_left = self.log_left.saturating_sub(msg.len());
        match &mut self.held_logs {
            Some(held) => held.push((level, msg)),
            None => emit(&self.plugin, level, &msg),
        }
    }

    /// Logs what [`PluginState::held_logs`] holds.
    pub(super) fn release_logs(&mut self) {
        for (level, msg) in self.held_logs.take().unwrap_or_default() {
            emit(&self.plugin, level, &msg);
        }
    }
}

fn emit(plugin: &str, level: LogLevel, msg: &str) {
    match level {
        LogLevel::Debug => tracing::debug!(target: "docobo::plugin", plugin, "{msg}"),
        LogLevel::Info => tracing::info!(target: "docobo::plugin", plugin, "{msg}"),
        LogLevel::Warn => tracing::warn!(target: "docobo::plugin", plugin, "{msg}"),
        LogLevel::Error => tracing::error!(target: "docobo::plugin", plugin, "{msg}"),
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for PluginState {}

impl host::Host for PluginState {
    async fn http_fetch(&mut self, req: HttpRequest) -> Result<HttpResponse, String> {
        if self.fetches_left == 0 {
            tracing::warn!(plugin = %self.plugin, "plugin exceeded its http-fetch calls for one call");
            return Err("too many http-fetch calls in one plugin call".into());
        }
        self.fetches_left -= 1;
        let method = req.method.clone();
        // Log the host and path only: query strings can carry tokens.
        let target = url::Url::parse(&req.url).map_or_else(
            |_| "<invalid url>".to_owned(),
            |u| format!("{}{}", u.host_str().unwrap_or_default(), u.path()),
        );
        let result = self.fetcher.fetch(&self.hosts, req, self.fetch_caps).await;
        match &result {
            Ok(response) => {
                tracing::debug!(plugin = %self.plugin, %method, %target, status = response.status, "plugin http-fetch");
            }
            Err(error) => {
                tracing::warn!(plugin = %self.plugin, %method, %target, %error, "plugin http-fetch refused or failed");
            }
        }
        result
    }

    async fn log(&mut self, level: LogLevel, msg: String) {
        PluginState::log(self, level, msg);
    }

    async fn now(&mut self) -> i64 {
        self.clock.now_ms()
    }
}
