//! The host imports, and a [`Host`] abstraction so plugin logic can be tested natively.

use std::cell::RefCell;
use std::collections::VecDeque;

use crate::__bindings::docobo::provider::host as imports;
use crate::{HttpRequest, HttpResponse, LogLevel};

/// Sends an HTTPS request through the host. Only the hosts the plugin declared in
/// `plugin_info` and the operator allowed are reachable; the number of calls, the response
/// size and the time are capped. The error is the host's reason, safe to show.
///
/// Traps when called outside a wasm host (native tests): use a [`Host`] there.
pub fn http_fetch(req: &HttpRequest) -> Result<HttpResponse, String> {
    imports::http_fetch(req)
}

/// Writes a line to Docobo's log. Never log secrets.
pub fn log(level: LogLevel, msg: &str) {
    imports::log(level, msg);
}

/// The host's clock, unix milliseconds.
#[must_use]
pub fn now_ms() -> i64 {
    imports::now()
}

/// What a plugin's logic needs from the host. [`WasmHost`] is the real one; [`MockHost`]
/// is for native tests.
pub trait Host {
    /// See [`http_fetch`].
    fn http_fetch(&self, req: &HttpRequest) -> Result<HttpResponse, String>;
    /// See [`log`].
    fn log(&self, level: LogLevel, msg: &str);
    /// See [`now_ms`].
    fn now_ms(&self) -> i64;
}

/// The real host imports.
#[derive(Debug, Clone, Copy, Default)]
pub struct WasmHost;

impl Host for WasmHost {
    fn http_fetch(&self, req: &HttpRequest) -> Result<HttpResponse, String> {
        http_fetch(req)
    }
    fn log(&self, level: LogLevel, msg: &str) {
        log(level, msg);
    }
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// A fake host for native tests: a fixed clock, canned responses (first in, first out)
/// and a record of every request and log line.
#[derive(Debug, Default)]
pub struct MockHost {
    /// What [`Host::now_ms`] returns.
    pub now: i64,
    /// Answers for the next `http_fetch` calls, in order. When empty, `http_fetch` fails.
    pub responses: RefCell<VecDeque<Result<HttpResponse, String>>>,
    /// Every request made, in order.
    pub requests: RefCell<Vec<HttpRequest>>,
    /// Every log line, in order.
    pub logs: RefCell<Vec<(LogLevel, String)>>,
}

impl MockHost {
    /// A host whose clock reads `now` (unix milliseconds).
    #[must_use]
    pub fn new(now: i64) -> Self {
        Self {
            now,
            ..Self::default()
        }
    }

    /// Queues a response with this status and body.
    #[must_use]
    pub fn respond(self, status: u16, body: impl Into<Vec<u8>>) -> Self {
        self.responses.borrow_mut().push_back(Ok(HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }));
        self
    }

    /// Queues a transport error.
    #[must_use]
    pub fn fail(self, error: impl Into<String>) -> Self {
        self.responses.borrow_mut().push_back(Err(error.into()));
        self
    }
}

impl Host for MockHost {
    fn http_fetch(&self, req: &HttpRequest) -> Result<HttpResponse, String> {
        self.requests.borrow_mut().push(req.clone());
        self.responses
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| Err("MockHost: no response queued".into()))
    }
    fn log(&self, level: LogLevel, msg: &str) {
        self.logs.borrow_mut().push((level, msg.to_string()));
    }
    fn now_ms(&self) -> i64 {
        self.now
    }
}
