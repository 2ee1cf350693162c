//! Docobo's integration tests: one binary, one module per capability.

mod app;
mod bot;
mod claims;
mod cli;
mod fake_api;
mod helpers;
mod liveness;
mod providers;
mod service;
mod store;
mod webhooks;
