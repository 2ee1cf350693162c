//! Per-call sandbox limits and the store state that enforces them.

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// Limits applied to every plugin call. The defaults follow docs/wasm.md §4: generous for a
/// signature check (≈200 k fuel, ≈10 µs), tight enough that a runaway plugin costs little.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Fuel (≈ wasm instructions) per call.
    pub fuel: u64,
    /// Wall-clock budget for wasm execution, enforced by epoch interruption.
    pub deadline: Duration,
    /// Linear memory per instance.
    pub memory_bytes: usize,
    /// Whole call, including time spent in `http-fetch`.
    pub call_timeout: Duration,
    /// `http-fetch` calls per plugin call.
    pub fetch_calls: u32,
    /// Largest `http-fetch` response body.
    pub fetch_response_bytes: usize,
    /// Largest `http-fetch` request body.
    pub fetch_request_bytes: usize,
    /// Timeout of one `http-fetch`.
    pub fetch_timeout: Duration,
    /// Bytes of plugin log output per call.
    pub log_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 50_000_000,
            deadline: Duration::from_secs(2),
            memory_bytes: 16 << 20,
            call_timeout: Duration::from_secs(15),
            fetch_calls: 4,
            fetch_response_bytes: 1 << 20,
            fetch_request_bytes: 256 << 10,
            fetch_timeout: Duration::from_secs(10),
            log_bytes: 4 << 10,
        }
    }
}

/// The epoch tick: how often the engine's epoch advances.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Caps a store's memory and remembers whether the cap was hit, so that the trap that
/// follows (the guest's allocator aborts) is reported as out-of-memory.
#[derive(Debug)]
pub struct MemoryCap {
    pub max_bytes: usize,
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}
