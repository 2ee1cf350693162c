//! Docobo sells paid Discord roles: a Discord bot, a webhook server (salvo) and an
//! embedded SQLite database (rusqlite + refinery) in one binary. Payment providers are WASM
//! components run in a sandbox.
//!
//! # Layout
//!
//! Three layers. **Edges** only translate: parse the input, call one service, render the
//! result. **Services** hold the rules and own the transactions, one module per use case.
//! Below them, [`domain`] (pure) and [`db`] (the only module that opens SQLite).
//!
//! Edges:
//! - [`http`]: the salvo server: `/webhooks` (→ [`ingest`]), `/health`, `/metrics`, and the
//!   owner's dashboard under `/dashboard` ([`web`]: logins, pages, embedded assets).
//! - [`discord`]: the bot: commands and gateway events (→ [`checkout`], [`shop`],
//!   [`roster`]), replies as values, [`discord::RoleManager`] and [`discord::Notifier`].
//! - [`sync`]: the role-sync worker and the drift sweep (Discord only through `RoleManager`).
//! - [`cli`], [`commands`]: the command line.
//!
//! Services (their shared context is [`services::Services`]):
//! - [`ingest`]: a provider's events arrive (a webhook delivery, or the poll) and are applied.
//! - [`checkout`]: a member starts a purchase.
//! - [`shop`]: an owner saves the offer and the provider credentials.
//! - [`roster`]: guilds and members as Discord reports them.
//! - [`subscriptions`]: the one writer of subscription state.
//! - [`accounts`]: provider credentials (the only place that opens them).
//! - [`doctor`]: a guild's health checks (`/doctor`) and the owner's test purchase.
//! - [`alerts`]: problems told to whoever can fix them, once and then summarised (its sender
//!   task posts them to Discord).
//! - [`admin`]: the owner's admin actions (grant, extend, revoke, lookup, forget, export,
//!   import), for `/admin` and the dashboard alike.
//!
//! Below: [`domain`], [`db`], [`providers`] (the wasmtime host; the WIT types stay inside),
//! [`clock`] (the one clock), [`config`], [`secrets`], [`metrics`], [`telemetry`],
//! [`shutdown`]; [`app`] wires everything and runs it until shutdown.
//!
//! Design: `docs/DESIGN.md` in the shared folder; the README says how to run it.

pub mod accounts;
pub mod admin;
pub mod alerts;
pub mod app;
pub mod checkout;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod db;
pub mod discord;
pub mod doctor;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod plugin_tools;
pub mod providers;
pub mod reminders;
pub mod retention;
pub mod roster;
pub mod secrets;
pub mod services;
pub mod shop;
pub mod shutdown;
pub mod subscriptions;
pub mod sync;
pub mod telemetry;
pub mod web;

pub use app::App;
pub use config::Config;
