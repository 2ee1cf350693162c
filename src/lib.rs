//! Docobo sells paid Discord roles: a Discord bot (serenity), a webhook server (salvo) and an
//! embedded SQLite database (rusqlite + refinery) in one binary. Payment providers are WASM
//! components run in a sandbox.
//!
//! # Layout
//!
//! - [`config`]: layered configuration (defaults → `docobo.toml` → `DOCOBO_…` env → `_FILE`).
//! - [`domain`]: pure types and rules: ids, money, billing, the subscription state machine.
//! - [`db`]: the SQLite store (the only module that opens connections) and its repositories.
//! - [`subscriptions`]: `SubscriptionService`, the state machine over the store.
//! - [`http`]: the salvo server and its routes.
//! - [`discord`]: the bot (serenity): commands, role management, notices.
//! - [`sync`]: the role-sync worker that makes Discord match the database.
//! - [`app`]: wires everything and runs it until shutdown.
//! - [`cli`], [`telemetry`], [`shutdown`]: the binary's edges.
//!
//! Design: `docs/DESIGN.md` in the shared folder; the README says how to run it.

pub mod accounts;
pub mod app;
pub mod checkout;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod db;
pub mod discord;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod providers;
pub mod roster;
pub mod secrets;
pub mod services;
pub mod shop;
pub mod shutdown;
pub mod subscriptions;
pub mod sync;
pub mod telemetry;

pub use app::App;
pub use config::Config;
