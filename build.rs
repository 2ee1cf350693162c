//! Builds the provider plugins in `plugins/` (a separate cargo workspace targeting
//! `wasm32-wasip2`) so that a plain `cargo build` or `cargo test` has them. The built-in
//! `polar` and `sepay` components are embedded in the binary; the test provider, the
//! template and Stripe (a plugin that ships as a `.wasm` for `plugins.dir`) are exposed to
//! tests through `DOCOBO_PLUGINS_OUT`.
//!
//! The plugins get their own target directory (`target/plugins`), so the host's and the
//! guests' artifacts never mix and guest builds stay incremental across host profiles.
//!
//! The `wasm32-wasip2` target is installed first if rustup can (`build/wasm_target.rs`): a
//! pinned toolchain that was already installed may lack it.

#[path = "build/wasm_target.rs"]
mod wasm_target;

use std::path::PathBuf;
use std::process::Command;

use wasm_target::TARGET;

const PACKAGES: &[&str] = &[
    "docobo-polar",
    "docobo-sepay",
    "docobo-test-provider",
    "docobo-template",
    "docobo-stripe",
];
const ARTIFACTS: &[&str] = &[
    "docobo_polar.wasm",
    "docobo_sepay.wasm",
    "docobo_test_provider.wasm",
    "docobo_template.wasm",
    "docobo_stripe.wasm",
];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let plugins = manifest_dir.join("plugins");
    for watched in [
        "Cargo.toml",
        "Cargo.lock",
        "sdk",
        "polar",
        "sepay",
        "template",
        "test-provider",
        "stripe",
    ] {
        println!("cargo:rerun-if-changed={}", plugins.join(watched).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("wit").display()
    );
    // `refinery::embed_migrations!` reads this folder at compile time; cargo would not
    // notice a new migration file without being told.
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("migrations").display()
    );

    let out_dir = PathBuf::from(env("OUT_DIR"));
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| manifest_dir.join("target"), PathBuf::from)
        .join("plugins");

    ensure_wasm_target();

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(&target_dir);
    for package in PACKAGES {
        cmd.args(["-p", package]);
    }
    // The outer build's flags are for the host, not for wasm guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| {
        panic!("cannot run cargo to build the provider plugins: {e}");
    });
    assert!(
        status.success(),
        "building the provider plugins in plugins/ failed (see the errors above). \
         Try it directly: cd plugins && cargo build --release --target {TARGET}"
    );

    let built = target_dir.join(TARGET).join("release");
    for artifact in ARTIFACTS {
        let from = built.join(artifact);
        let to = out_dir.join(artifact);
        std::fs::copy(&from, &to)
            .unwrap_or_else(|e| panic!("the plugin build did not produce {}: {e}", from.display()));
    }
    println!("cargo:rustc-env=DOCOBO_PLUGINS_OUT={}", out_dir.display());
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo did not set {name}"))
}

/// Installs the wasm target when rustup can (see `build/wasm_target.rs`); fails early, with
/// the fix, when it is missing and cannot be installed.
fn ensure_wasm_target() {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").ok();
    match wasm_target::ensure(&rustc, "rustup".as_ref(), toolchain.as_deref(), |note| {
        println!("cargo:warning={note}");
    }) {
        Ok(wasm_target::Outcome::Installed { toolchain }) => {
            println!("cargo:warning=installed the {TARGET} target into the {toolchain} toolchain");
        }
        Ok(wasm_target::Outcome::Present | wasm_target::Outcome::Unknown) => {}
        Err(fix) => panic!("\n\n{fix}\n"),
    }
}
