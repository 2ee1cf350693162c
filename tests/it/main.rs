//! Docobo's integration tests: one binary, one module per capability.

mod app;
mod bot;
mod cli;
mod fake_api;
mod fake_discord;
mod helpers;
mod providers;
mod service;
mod store;
mod webhooks;
