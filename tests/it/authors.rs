//! The plugin author's path, as `plugins/README.md` tells it: `docobo plugin new` in a
//! clean folder, build the component with cargo, `plugin test` it in the real sandbox,
//! `plugin install` it where `docobo serve` loads it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::cli::docobo;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `cargo` for the new crate, without what the outer `cargo test` set for the host build.
fn cargo(dir: &Path, target_dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(dir).env("CARGO_TARGET_DIR", target_dir);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_MANIFEST_DIR",
        "CARGO_PKG_NAME",
        "RUSTUP_TOOLCHAIN",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A target folder kept between runs (inside the repository's), so the new crate's
/// dependencies build once.
fn shared_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/plugin-new-test")
}

#[test]
fn a_new_plugin_builds_tests_and_installs_from_a_clean_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = docobo(dir.path(), &[])
        .args(["plugin", "new", "my-pay"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("created plugin \"my-pay\""),
        "{}",
        text(&out)
    );
    let crate_dir = dir.path().join("my-pay");
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "rust-toolchain.toml",
        "src/lib.rs",
        "fixtures/payment.json",
        "wit/provider@0.2.0/provider.wit",
        "vendor/docobo-plugin-sdk/Cargo.toml",
        "vendor/docobo-plugin-sdk/src/lib.rs",
    ] {
        assert!(crate_dir.join(file).is_file(), "plugin new wrote no {file}");
    }

    // The template's own tests pass natively, against the vendored SDK.
    let target = shared_target();
    let out = cargo(&crate_dir, &target)
        .args(["test", "--offline", "--quiet"])
        .output()
        .expect("cargo test");
    assert!(out.status.success(), "cargo test:\n{}", text(&out));
    let out = cargo(&crate_dir, &target)
        .args([
            "build",
            "--offline",
            "--release",
            "--quiet",
            "--target",
            "wasm32-wasip2",
        ])
        .output()
        .expect("cargo build");
    assert!(out.status.success(), "cargo build:\n{}", text(&out));
    let wasm = target.join("wasm32-wasip2/release/my_pay.wasm");
    assert!(wasm.is_file(), "no component at {}", wasm.display());

    // A signed delivery verifies and becomes the event Docobo would apply.
    let body = crate_dir.join("fixtures/payment.json");
    let secret = docobo::plugin_tools::EXAMPLE_SECRET;
    let test = |header_secret: &str| {
        docobo(dir.path(), &[])
            .args(["plugin", "test"])
            .arg(&wasm)
            .arg("--body")
            .arg(&body)
            .args(["--header", &format!("X-Example-Secret: {header_secret}")])
            .args(["--setting", &format!("webhook_secret={secret}")])
            .args(["--setting", "api_token=t"])
            .output()
            .expect("run")
    };
    let out = test(secret);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("my-pay 0.1.0 (plugin API 0.2.0)"),
        "{stdout}"
    );
    assert!(stdout.contains("verified: 1 event(s)"), "{stdout}");
    assert!(stdout.contains(r#""kind":"payment""#), "{stdout}");
    assert!(stdout.contains("333333333333333333"), "{stdout}");
    // A wrong secret is refused, says why, and exits non-zero; the secret is not echoed.
    let out = test("not-the-secret");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("refused: my-pay: bad signature"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains(secret), "{}", text(&out));

    install_then_list(dir.path(), &wasm);
}

/// `plugin install` of a built component into `dir/plugins`, then `plugin list` from there.
fn install_then_list(dir: &Path, wasm: &Path) {
    // Installed into plugins.dir, it is what `plugin list` (and so `serve`) loads.
    let env = [
        ("DOCOBO_DISCORD__TOKEN", "t"),
        ("DOCOBO_PLUGINS__DIR", "plugins"),
    ];
    let install = |file: &Path| {
        docobo(dir, &env)
            .args(["plugin", "install"])
            .arg(file)
            .output()
            .expect("run")
    };
    let out = install(wasm);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("installed my-pay 0.1.0"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("api.example.com which plugins.allowed_hosts does not allow"),
        "{}",
        text(&out)
    );
    assert!(dir.join("plugins/my-pay.wasm").is_file());
    let out = docobo(dir, &env)
        .args(["plugin", "list"])
        .output()
        .expect("run");
    assert!(
        text(&out).contains("my-pay — my-pay 0.1.0"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("NOT LOADED"), "{}", text(&out));
    // Installing again replaces it (an upgrade) …
    let out = install(wasm);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("replacing"), "{}", text(&out));
    // … but a second file with the same id, or a built-in's id, is refused.
    std::fs::copy(wasm, dir.join("plugins/other-name.wasm")).expect("copy");
    let out = install(wasm);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("already has a plugin \"my-pay\""),
        "{}",
        text(&out)
    );
    let out = install(&docobo::providers::built_plugin("docobo_polar"));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("which a built-in plugin has"),
        "{}",
        text(&out)
    );
}

#[test]
fn plugin_new_refuses_names_that_cannot_be_ids_and_existing_folders() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bad in [
        "My_Pay",
        "polar",
        "-x",
        "a-very-long-plugin-name-of-more-than-32",
    ] {
        let out = docobo(dir.path(), &[])
            .args(["plugin", "new", "--", bad])
            .output()
            .expect("run");
        assert!(!out.status.success(), "{bad}: {}", text(&out));
        assert!(
            text(&out).contains("Fix") || text(&out).contains("must be"),
            "{bad}: {}",
            text(&out)
        );
        assert!(!dir.path().join(bad).exists(), "{bad} was created");
    }
    std::fs::create_dir(dir.path().join("taken")).expect("mkdir");
    let out = docobo(dir.path(), &[])
        .args(["plugin", "new", "taken"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(text(&out).contains("already exists"), "{}", text(&out));
}

#[test]
fn plugin_test_says_what_is_wrong_with_its_arguments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = docobo::providers::built_plugin("docobo_template");
    std::fs::write(dir.path().join("body.json"), b"{}").expect("write");
    let out = docobo(dir.path(), &[])
        .args(["plugin", "test"])
        .arg(&wasm)
        .args(["--body", "body.json", "--header", "no-colon"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("write it as NAME:VALUE"),
        "{}",
        text(&out)
    );
    let out = docobo(dir.path(), &[])
        .args(["plugin", "test"])
        .arg(&wasm)
        .args(["--body", "missing.json"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot read --body missing.json"),
        "{}",
        text(&out)
    );
}
