//! Docobo's integration tests: one binary, one module per capability.

mod app;
mod authors;
mod bot;
mod build_script;
mod claims;
mod cli;
mod crash;
mod disk;
mod fake_api;
mod first_run;
mod garbage;
mod guilds;
mod helpers;
mod isolation;
mod lies;
mod liveness;
mod plugin_api;
mod powercut;
mod providers;
mod recovery;
mod retention;
mod service;
mod store;
mod stripe;
mod webhook_path;
mod webhooks;
