//! The wasmtime engine and the on-disk cache of compiled components.
//!
//! One engine per process, with a small pooling allocator ([`POOL_SLOTS`] instances) and a
//! small memory reservation: Raspberry Pi kernels (39-bit address spaces) cannot reserve
//! wasmtime's defaults (4 GiB per memory, ≈4 TiB for the pool; docs/wasm.md §5).
//!
//! Compiling a component takes 50–150 ms (seconds on a Pi), loading a compiled one from disk
//! takes microseconds, so compiled artifacts are cached under
//! `<sha256 of the wasm>-<engine compatibility hash>.cwasm`. Loading a compiled artifact
//! trusts it completely, so only files this process wrote, in a folder only this user can
//! write, are ever loaded.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::limits::EPOCH_TICK;
use crate::domain::hex;

/// Plugin instances that can be alive at once. Each call holds one from instantiation until
/// its store is dropped; further calls wait for a free slot (see `ProviderHost`).
pub const POOL_SLOTS: u32 = 32;

/// With `PAGEMAP_SCAN`: how much of a slot's written memory is reset in place (and stays
/// resident) instead of being handed back to the kernel. A page once written is reset at
/// every later call in that slot, so this bounds both the per-call reset (512 KiB of memcpy
/// is ≈ 15–25 µs) and what stays resident: at most 16 MiB for all [`POOL_SLOTS`] slots, a
/// few MiB for the built-in plugins, which write far less per call (the stack pages they
/// use, part of the data segment, a heap of some ten KiB). Beyond it, pages are
/// decommitted as before.
const KEEP_RESIDENT_SCANNED: usize = 512 << 10;

/// Per-slot address space reserved for a linear memory (at least 64 MiB, more if the plugin
/// memory limit is larger).
fn memory_reservation(memory_limit: usize) -> usize {
    memory_limit.max(64 << 20).next_multiple_of(64 << 10)
}

/// Builds the engine: with a small pooling allocator when the system lets it reserve the
/// pool, else with the on-demand allocator (and a warning).
///
/// The pool avoids what an on-demand instance costs at every call: mapping and unmapping
/// its linear memory and fiber stack (and the TLB shootdowns that unmapping costs in a
/// multi-threaded process), measured at two thirds of a webhook's plugin time. It reserves
/// [`POOL_SLOTS`] × 2 memories of 64 MiB (4 GiB of address space, not of memory): a
/// Raspberry Pi's 39-bit address space (512 GiB) has room; wasmtime's default pool (≈4 TiB)
/// would not (docs/wasm.md §5).
///
/// # Errors
/// wasmtime refuses the configuration (it does not on supported platforms).
pub fn engine(memory_limit: usize) -> wasmtime::Result<(Engine, bool)> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_SLOTS)
        // Room for components built by other toolchains (adapter shims, fix-up modules).
        .total_core_instances(POOL_SLOTS * 16)
        .max_core_instances_per_component(16)
        .total_memories(POOL_SLOTS * 2)
        .max_memories_per_component(2)
        .total_tables(POOL_SLOTS * 16)
        .max_tables_per_component(16)
        .total_stacks(POOL_SLOTS)
        .max_memory_size(memory_reservation(memory_limit))
        .table_keep_resident(16 << 10);
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        // Linux ≥ 6.7 says which pages calls in this slot wrote: only those are reset
        // (copied back from the image or zeroed) and stay resident, up to
        // KEEP_RESIDENT_SCANNED; the rest is never touched. A Rust plugin's memory starts
        // with a 1 MiB stack of which a call writes a few pages, so this replaces an
        // madvise of most of the memory per call, the page faults that refill it and the
        // TLB shootdowns (other threads' CPUs interrupted) that the madvise costs.
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT_SCANNED);
    } else {
        // Reset the first pages of a returned memory with memset instead of madvise:
        // cheaper for the small heaps plugins use.
        pool.linear_memory_keep_resident(256 << 10);
    }
    let mut config = base_config(memory_limit);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&config) {
        Ok(engine) => Ok((engine, true)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot reserve the plugin instance pool; using on-demand instances (slower webhooks, same limits)");
            Engine::new(&base_config(memory_limit)).map(|engine| (engine, false))
        }
    }
}

fn base_config(memory_limit: usize) -> Config {
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(512 << 10)
        // Small reservations: explicit bounds checks instead of 4 GiB guard regions.
        .memory_reservation(memory_reservation(memory_limit) as u64)
        .memory_guard_size(64 << 10)
        .memory_reservation_for_growth(1 << 20);
    config
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a small thread that ends when the
/// engine is dropped.
pub fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("docobo-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the plugin deadline thread; plugin calls are limited by fuel only");
    }
}

/// Where a component came from this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded a compiled artifact from the cache.
    Hit,
    /// Compiled, and wrote the artifact to the cache.
    Compiled,
    /// Compiled; no cache configured or the cache is unusable.
    Uncached,
}

/// Compiles `wasm`, or loads it from `cache_dir`.
///
/// # Errors
/// The bytes are not a valid component.
pub fn load_component(
    engine: &Engine,
    wasm: &[u8],
    cache_dir: Option<&Path>,
) -> wasmtime::Result<(Component, CacheOutcome)> {
    let Some(dir) = cache_dir.and_then(|d| usable_cache_dir(d).ok()) else {
        return Ok((Component::new(engine, wasm)?, CacheOutcome::Uncached));
    };
    let path = dir.join(cache_key(engine, wasm));
    if owned_by_us(&path, &dir) {
        match load_cached(engine, &path) {
            Ok(component) => return Ok((component, CacheOutcome::Hit)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unusable compiled plugin; recompiling");
            }
        }
    }
    let compiled = engine.precompile_component(wasm)?;
    // Load what we just compiled instead of compiling a second time.
    let component = load_fresh(engine, &compiled)?;
    match write_atomically(&dir, &path, &compiled) {
        Ok(()) => Ok((component, CacheOutcome::Compiled)),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the plugin cache; plugins will be recompiled at every start");
            Ok((component, CacheOutcome::Uncached))
        }
    }
}

/// Loads a compiled artifact this process (or an earlier run as the same user) wrote.
///
/// The file is read into memory rather than mapped: a mapped file that something truncates
/// later would crash the process (SIGBUS), and reading ~300 KB costs well under a millisecond.
#[allow(unsafe_code)]
fn load_cached(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    let bytes = std::fs::read(path)?;
    // SAFETY: `deserialize` trusts the bytes to be wasmtime's own output for this engine.
    // They are: the file's name is derived from the wasm's SHA-256 and this engine's
    // compatibility hash, it lives in a folder that only this user can write
    // (`usable_cache_dir`), it is a regular file owned by this user and not writable by
    // others (`owned_by_us`), and it was written by `write_atomically` (a complete file
    // renamed into place, never a partial one). wasmtime still checks the header, version
    // and engine settings and returns an error on a mismatch, which makes us recompile.
    unsafe { Component::deserialize(engine, &bytes) }
}

/// Loads bytes that `engine.precompile_component` returned a moment ago in this process.
#[allow(unsafe_code)]
fn load_fresh(engine: &Engine, compiled: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `compiled` is the output of this very engine's `precompile_component`, still in
    // our memory: exactly what `deserialize` requires. Nothing else could have written it.
    unsafe { Component::deserialize(engine, compiled) }
}

/// `<sha256(wasm)>-<compatibility hash>.cwasm`.
fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let wasm_hash = hex(&Sha256::digest(wasm));
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let compat = hex(&hasher.0.finalize()[..8]);
    format!("{wasm_hash}-{compat}.cwasm")
}

/// A stable `Hasher` (std's `DefaultHasher` may change between Rust releases).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(bytes)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Creates the cache folder (mode 0700) and checks that only this user can write it.
fn usable_cache_dir(dir: &Path) -> std::io::Result<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let meta = std::fs::metadata(dir)?;
        let uid = our_uid(dir)?;
        if meta.uid() != uid || meta.permissions().mode() & 0o022 != 0 {
            tracing::warn!(dir = %dir.display(), "the plugin cache folder is writable by other users or owned by another user; not using it (fix: chmod 700 and chown it to the user running Docobo)");
            return Err(std::io::Error::other("unsafe cache folder"));
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    Ok(dir.to_owned())
}

/// The uid this process creates files with, found by creating one.
#[cfg(unix)]
fn our_uid(dir: &Path) -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile_in(dir)?;
    let uid = probe.1.metadata()?.uid();
    let _ = std::fs::remove_file(&probe.0);
    Ok(uid)
}

fn owned_by_us(path: &Path, dir: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (Ok(meta), Ok(uid)) = (std::fs::symlink_metadata(path), our_uid(dir)) else {
            return false;
        };
        meta.file_type().is_file() && meta.uid() == uid && meta.permissions().mode() & 0o022 == 0
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        path.is_file()
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!(".tmp-{}-{n}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&path)?;
    Ok((path, file))
}

/// Writes `bytes` to a temporary file in `dir`, then renames it to `path`.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (tmp, mut file) = tempfile_in(dir)?;
    let result = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
