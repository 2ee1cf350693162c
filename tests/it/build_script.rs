//! The build script's handling of the `wasm32-wasip2` target (`build/wasm_target.rs`, which
//! `build.rs` includes), run against fake `rustc` and `rustup` programs that say where a
//! sysroot is and record what they are asked. `scripts/fresh-toolchain.sh` runs the same path
//! with the real toolchain and cargo.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

#[path = "../../build/wasm_target.rs"]
mod wasm_target;

use wasm_target::{Outcome, TARGET, ensure};

/// A toolchain in a temporary folder: its sysroot, a `rustc` printing it, and a `rustup`
/// that logs its arguments and then runs the shell lines `rustup_then(sysroot)` gives.
struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new(with_target: bool, rustup_then: impl FnOnce(&Path) -> String) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sysroot = dir.path().join("sysroot");
        std::fs::create_dir_all(sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu/lib"))
            .expect("mkdir");
        if with_target {
            std::fs::create_dir_all(sysroot.join("lib/rustlib").join(TARGET).join("lib"))
                .expect("mkdir");
        }
        let fake = Self { dir };
        fake.script(
            "rustc",
            &format!(
                "[ \"$1 $2\" = '--print sysroot' ] || exit 64\necho '{}'",
                sysroot.display()
            ),
        );
        fake.script(
            "rustup",
            &format!(
                "echo \"$@\" >> '{}'\necho 'info: downloading component'\n{}",
                fake.calls_file().display(),
                rustup_then(&sysroot)
            ),
        );
        fake
    }

    fn script(&self, name: &str, body: &str) {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn calls_file(&self) -> PathBuf {
        self.path("rustup-calls")
    }

    /// What the fake rustup was asked, one call a line.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.calls_file())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn ensure(&self, toolchain: Option<&str>) -> (Result<Outcome, String>, Vec<String>) {
        let mut notes = Vec::new();
        let result = ensure(
            self.path("rustc").as_os_str(),
            self.path("rustup").as_os_str(),
            toolchain,
            |n| notes.push(n.to_owned()),
        );
        (result, notes)
    }
}

fn installs_into(sysroot: &Path) -> String {
    format!("mkdir -p '{}/lib/rustlib/{TARGET}/lib'", sysroot.display())
}

const TOOLCHAIN: &str = "1.95.0-x86_64-unknown-linux-gnu";

#[test]
fn a_present_target_asks_rustup_nothing() {
    let fake = Fake::new(true, |_| "exit 1".into());
    let (result, notes) = fake.ensure(Some(TOOLCHAIN));
    assert_eq!(result, Ok(Outcome::Present));
    assert!(notes.is_empty());
    assert!(fake.calls().is_empty());
}

#[test]
fn a_missing_target_is_added_to_the_toolchain_cargo_runs_with() {
    // The fake rustup installs it the way rustup does: into the toolchain's sysroot.
    let fake = Fake::new(false, installs_into);
    let (result, notes) = fake.ensure(Some(TOOLCHAIN));
    assert_eq!(
        result,
        Ok(Outcome::Installed {
            toolchain: TOOLCHAIN.to_owned()
        })
    );
    assert_eq!(
        fake.calls(),
        [format!("target add {TARGET} --toolchain {TOOLCHAIN}")]
    );
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("installing it: rustup target add wasm32-wasip2 --toolchain 1.95.0"),
        "{notes:?}"
    );
    assert!(notes[0].contains("rust-toolchain.toml"), "{notes:?}");
    // Once there, it is left alone.
    assert_eq!(fake.ensure(Some(TOOLCHAIN)).0, Ok(Outcome::Present));
    assert_eq!(fake.calls().len(), 1);
}

#[test]
fn rustup_failing_to_install_it_stops_the_build_with_the_fix() {
    let fake = Fake::new(false, |_| {
        "echo 'error: could not download file' >&2\nexit 1".into()
    });
    let (result, _) = fake.ensure(Some(TOOLCHAIN));
    let message = result.expect_err("not installed");
    assert!(message.contains("installing it failed"), "{message}");
    assert!(
        message.contains("Fix: run `rustup target add wasm32-wasip2 --toolchain 1.95.0-x86_64-unknown-linux-gnu` yourself"),
        "{message}"
    );
    assert_eq!(fake.calls().len(), 1);
}

#[test]
fn rustup_claiming_success_without_installing_it_is_not_believed() {
    let fake = Fake::new(false, |_| "exit 0".into());
    let message = fake.ensure(Some(TOOLCHAIN)).0.expect_err("still missing");
    assert!(message.contains("succeeded, but"), "{message}");
    assert!(message.contains("is still missing"), "{message}");
}

#[test]
fn without_rustup_the_build_says_how_to_get_the_target() {
    let fake = Fake::new(false, |_| "exit 1".into());
    for toolchain in [None, Some("")] {
        let message = fake.ensure(toolchain).0.expect_err("not installed");
        assert!(message.contains("is not installed"), "{message}");
        assert!(
            message.contains("rustup target add wasm32-wasip2"),
            "{message}"
        );
        assert!(message.contains("standard library"), "{message}");
    }
    assert!(
        fake.calls().is_empty(),
        "rustup is not run when cargo was not started by it"
    );

    let missing = Fake::new(false, installs_into);
    std::fs::remove_file(missing.path("rustup")).expect("rm");
    let message = missing.ensure(Some(TOOLCHAIN)).0.expect_err("no rustup");
    assert!(message.contains("rustup could not be run"), "{message}");
}

#[test]
fn a_rustc_that_cannot_say_its_sysroot_leaves_it_to_the_plugin_build() {
    let fake = Fake::new(false, |_| "exit 1".into());
    fake.script("rustc", "exit 1");
    assert_eq!(fake.ensure(Some(TOOLCHAIN)).0, Ok(Outcome::Unknown));
    assert!(fake.calls().is_empty());
}
