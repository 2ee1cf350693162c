//! Docobo's integration tests: one binary, one module per capability.

mod app;
mod bot;
mod claims;
mod cli;
mod fake_api;
mod helpers;
mod providers;
mod recovery;
mod service;
mod store;
mod webhooks;
