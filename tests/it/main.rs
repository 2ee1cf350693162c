//! Docobo's integration tests: one binary, one module per capability.

mod cli;
mod helpers;
mod service;
mod store;
