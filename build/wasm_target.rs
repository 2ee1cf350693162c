//! The `wasm32-wasip2` target the provider plugins are built for: present, or installed with
//! rustup. Used by `build.rs`; `tests/it/build_script.rs` runs it against fake `rustc` and
//! `rustup` programs.
//!
//! `rust-toolchain.toml` lists the target, and rustup installs it with the toolchain. A
//! toolchain that was already installed may lack it: rustup adds the missing targets of a
//! toolchain file when cargo starts only with auto-install on (rustup 1.29 does; not with
//! `RUSTUP_AUTO_INSTALL=0`, nor older versions), and the README's `cargo run` would fail. So
//! when the toolchain is rustup's (cargo was started through rustup, which sets
//! `RUSTUP_TOOLCHAIN`), the build adds the target to it, as `rust-toolchain.toml` asks;
//! otherwise it stops with the fix.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target the plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// What [`ensure`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The target's standard library is in the sysroot.
    Present,
    /// It was missing, and `rustup target add` installed it into `toolchain`.
    Installed { toolchain: String },
    /// `rustc --print sysroot` did not answer: the plugin build will say what is wrong.
    Unknown,
}

/// Makes sure the target is installed for `rustc`: when it is missing and `toolchain` (the
/// value of `RUSTUP_TOOLCHAIN`) is set, runs `rustup target add` (`rustup`: the program; its
/// output goes to stderr, never to cargo's directives on stdout); `note` is told first.
///
/// # Errors
/// The target is missing and could not be installed; the message says how to fix it.
pub fn ensure(
    rustc: &OsStr,
    rustup: &OsStr,
    toolchain: Option<&str>,
    note: impl FnOnce(&str),
) -> Result<Outcome, String> {
    let Some(sysroot) = sysroot(rustc) else {
        return Ok(Outcome::Unknown);
    };
    if installed(&sysroot) {
        return Ok(Outcome::Present);
    }
    let Some(toolchain) = toolchain.filter(|t| !t.is_empty()) else {
        return Err(format!(
            "The {TARGET} target is not installed for {} (sysroot {}), and Docobo's provider plugins are built for it.\nFix: with rustup, `rustup target add {TARGET}`; with another Rust, install its {TARGET} standard library.",
            rustc.to_string_lossy(),
            sysroot.display()
        ));
    };
    note(&format!(
        "the {TARGET} target (listed in rust-toolchain.toml) is missing from the {toolchain} toolchain; installing it: rustup target add {TARGET} --toolchain {toolchain}"
    ));
    let status = Command::new(rustup)
        .args(["target", "add", TARGET, "--toolchain", toolchain])
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status();
    let fix = format!(
        "Fix: run `rustup target add {TARGET} --toolchain {toolchain}` yourself (it downloads the target's standard library from static.rust-lang.org), then build again."
    );
    match status {
        Ok(status) if status.success() && installed(&sysroot) => Ok(Outcome::Installed {
            toolchain: toolchain.to_owned(),
        }),
        Ok(status) if status.success() => Err(format!(
            "`rustup target add {TARGET} --toolchain {toolchain}` succeeded, but {} is still missing (is {} the toolchain's rustc?).\n{fix}",
            target_dir(&sysroot).display(),
            rustc.to_string_lossy()
        )),
        Ok(status) => Err(format!(
            "The {TARGET} target is not installed, and installing it failed (`rustup target add {TARGET} --toolchain {toolchain}`: {status}; its output is above; offline?).\n{fix}"
        )),
        Err(e) => Err(format!(
            "The {TARGET} target is not installed, and rustup could not be run to install it ({}: {e}).\n{fix}",
            rustup.to_string_lossy()
        )),
    }
}

fn sysroot(rustc: &OsStr) -> Option<PathBuf> {
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| !p.as_os_str().is_empty())
}

fn target_dir(sysroot: &Path) -> PathBuf {
    sysroot.join("lib/rustlib").join(TARGET)
}

fn installed(sysroot: &Path) -> bool {
    target_dir(sysroot).join("lib").is_dir()
}
