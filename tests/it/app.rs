//! The app under test: the testkit's [`TestApp`] (the real `App` on 127.0.0.1:0 with a real
//! SQLite file in a folder of its own), with the compile cache this run shares.

use std::path::{Path, PathBuf};

pub use docobo_testkit::app::{TestApp, TestAppBuilder};

/// The plugin compile cache shared by every app and host in the run, so that each component
/// is compiled once.
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

/// [`TestApp::builder`] with the run's shared compile cache.
pub fn test_app() -> TestAppBuilder {
    TestApp::builder().plugin_cache(shared_cache())
}

pub fn fixtures() -> PathBuf {
    docobo_testkit::fixtures::webhooks()
}
