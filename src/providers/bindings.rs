//! The only `bindgen!` call: host bindings for `wit/provider@0.1.0`.
//!
//! When a new API version ships, it gets its own folder under `wit/` and its own submodule
//! here; the host implements the newest and converts older versions (see `wit/README.md`).

wasmtime::component::bindgen!({
    world: "provider-plugin",
    path: "wit/provider@0.1.0",
    imports: { default: async },
    exports: { default: async },
});

/// The API version this host implements.
pub const API_VERSION: &str = "0.1.0";

/// The plain data types of the API, under short names.
pub use self::docobo::provider::types as api;
