//! The `docobo` binary, run as a user would: real processes, real files, real signals.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_docobo");

/// A `docobo` command in `dir`, with a clean environment apart from the given variables.
pub(crate) fn docobo(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn example_config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docobo.example.toml")
}

/// Starts `docobo serve`, waits for its "listening" log line and returns the child and the
/// address it listens on.
pub(crate) fn start_server(
    dir: &Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let mut child = docobo(dir, env)
        .args(args)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn docobo serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "server did not log 'listening'; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let entry: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        for key in ["level", "time", "msg", "target"] {
            assert!(entry.get(key).is_some(), "log line lacks {key}: {line}");
        }
        if entry["msg"] == "listening" {
            let addr = entry["addr"].as_str().expect("addr field").to_owned();
            return (child, addr, rx);
        }
    }
}

pub(crate) fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

pub(crate) fn wait_with_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("docobo did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn serve_with_the_example_config_answers_health_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = example_config();
    let discord = docobo_testkit::FakeDiscord::builder()
        .token("test-token-not-a-secret-elsewhere")
        .start()
        .await
        .expect("fake Discord");
    let (mut child, addr, logs) = start_server(
        dir.path(),
        &[
            ("DOCOBO_DISCORD__TOKEN", "test-token-not-a-secret-elsewhere"),
            ("DOCOBO_DISCORD__API_URL", discord.rest_url()),
            ("DOCOBO_SERVER__PORT", "0"),
            ("DOCOBO_SERVER__BIND", "127.0.0.1"),
        ],
        &["--config", config.to_str().expect("utf-8 path")],
    );
    let addr = addr.replace("0.0.0.0", "127.0.0.1");
    let response = reqwest::get(format!("http://{addr}/health"))
        .await
        .expect("GET /health");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        body["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{body}"
    );
    // The database was created where the example says, relative to the working directory.
    assert!(dir.path().join("data/docobo.db").exists());
    // The bot reached (the fake) Discord and registered its commands.
    discord
        .wait_for_command(None, "setup", Duration::from_secs(20))
        .await
        .expect("commands registered");
    // `docobo health` (Docker's HEALTHCHECK) agrees.
    let health_url = format!("http://{addr}/health");
    let env = [("DOCOBO_DISCORD__TOKEN", "test-token-not-a-secret-elsewhere")];
    let check = docobo(dir.path(), &env)
        .args(["health", "--url", &health_url])
        .output()
        .expect("docobo health");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("\"database\":\"ok\""));

    sigterm(&child);
    let status = wait_with_timeout(&mut child, Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    let check = docobo(dir.path(), &env)
        .args(["health", "--url", &health_url])
        .output()
        .expect("docobo health");
    assert!(!check.status.success(), "a stopped server is not healthy");
    assert!(String::from_utf8_lossy(&check.stderr).contains("cannot reach"));
    let rest: Vec<String> = logs.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("\"msg\":\"stopped\"")),
        "{rest:?}"
    );
    // The token never reaches the logs.
    assert!(
        !rest
            .iter()
            .any(|l| l.contains("test-token-not-a-secret-elsewhere"))
    );
}

#[test]
fn check_config_reports_every_problem_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("docobo.toml"),
        "[server]\nport = 70000\n[log]\nformat = \"xml\"\n",
    )
    .expect("write");
    let out = docobo(dir.path(), &[("DOCOBO_DATABASE__BUSY_TIMEOUT_MS", "soon")])
        .arg("check-config")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "4 problems",
        "server.port",
        "log.format",
        "database.busy_timeout_ms",
        "discord.token",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }

    let ok = docobo(dir.path(), &[("DOCOBO_DISCORD__TOKEN", "t")])
        .args(["--config", example_config().to_str().expect("utf-8")])
        .arg("check-config")
        .output()
        .expect("run");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("configuration OK"));

    let missing = docobo(dir.path(), &[("DOCOBO_DISCORD__TOKEN", "t")])
        .args(["--config", "does-not-exist.toml", "check-config"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("cannot read the configuration file")
    );
}

#[test]
fn migrate_then_backup_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("DOCOBO_DISCORD__TOKEN", "t"),
        ("DOCOBO_DATABASE__PATH", "db/docobo.db"),
    ];
    let first = docobo(dir.path(), &env)
        .arg("migrate")
        .output()
        .expect("migrate");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("12 migration(s) applied"));
    let second = docobo(dir.path(), &env)
        .arg("migrate")
        .output()
        .expect("migrate again");
    assert!(String::from_utf8_lossy(&second.stdout).contains("0 migration(s) applied"));

    let backup = docobo(dir.path(), &env)
        .args(["backup", "copy.db"])
        .output()
        .expect("backup");
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let copy = rusqlite::Connection::open(dir.path().join("copy.db")).expect("open copy");
    let tables: i64 = copy
        .query_row("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('guilds','members','paid_roles','subscriptions','webhook_events')", [], |r| r.get(0))
        .expect("tables");
    assert_eq!(tables, 5);

    let again = docobo(dir.path(), &env)
        .args(["backup", "copy.db"])
        .output()
        .expect("backup again");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn version_is_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = docobo(dir.path(), &[])
        .arg("--version")
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("docobo {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn hash_token_makes_a_token_whose_hash_the_config_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = docobo(dir.path(), &[])
        .arg("hash-token")
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let token = text
        .split_whitespace()
        .find(|w| w.starts_with("docobo_admin_"))
        .expect("a token")
        .to_owned();
    let hash = text
        .split('"')
        .nth(1)
        .expect("the hash in quotes")
        .to_owned();
    assert_eq!(hash, docobo::web::auth::hash_token(&token));

    // The same hash from the token on stdin.
    let mut child = docobo(dir.path(), &[])
        .args(["hash-token", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run");
    std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        format!("{token}\n").as_bytes(),
    )
    .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hash);

    // The config takes the hash, and refuses the token itself with the fix.
    let ok = docobo(dir.path(), &[("DOCOBO_DASHBOARD__ADMIN_TOKEN_HASH", &hash)])
        .arg("migrate")
        .output()
        .expect("run");
    assert!(ok.status.success(), "{ok:?}");
    let bad = docobo(
        dir.path(),
        &[("DOCOBO_DASHBOARD__ADMIN_TOKEN_HASH", &token)],
    )
    .arg("migrate")
    .output()
    .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("dashboard.admin_token_hash") && err.contains("hash-token"),
        "{err}"
    );
    assert!(!err.contains(&token), "the token is not echoed: {err}");
}

#[test]
fn plugin_inspect_describes_a_component_without_any_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = docobo::providers::built_plugin("docobo_test_provider");
    let out = docobo(dir.path(), &[])
        .args(["plugin", "inspect"])
        .arg(&wasm)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("loads"), "{stdout}");
    assert!(
        stdout.starts_with(&format!("{} (", wasm.display())),
        "{stdout}"
    );
    assert!(stdout.contains("test — "), "{stdout}");
    assert!(stdout.contains("plugin API:   0.2.0"), "{stdout}");
    // Declared, but not in the default allow-list.
    assert!(
        stdout.contains("hosts:        allowed.example (allowed: none)"),
        "{stdout}"
    );

    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"definitely not wasm").expect("write");
    let out = docobo(dir.path(), &[])
        .args(["plugin", "inspect"])
        .arg(&junk)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not load: not a valid WebAssembly component"),
        "{stderr}"
    );
}

#[test]
fn plugin_list_shows_builtins_extra_plugins_and_failures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("extra");
    std::fs::create_dir(&plugins).expect("mkdir");
    std::fs::copy(
        docobo::providers::built_plugin("docobo_template"),
        plugins.join("example.wasm"),
    )
    .expect("copy");
    std::fs::write(plugins.join("broken.wasm"), b"\0asm\x01\0\0\0").expect("write");
    let out = docobo(
        dir.path(),
        &[
            ("DOCOBO_DISCORD__TOKEN", "t"),
            ("DOCOBO_PLUGINS__DIR", "extra"),
        ],
    )
    .args(["plugin", "list"])
    .output()
    .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for want in [
        "polar — Polar",
        "sepay — SePay",
        "example — ",
        "source:       built-in",
        "NOT LOADED",
        "broken.wasm",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    assert!(
        stdout.contains("access_token") && stdout.contains("(secret)"),
        "{stdout}"
    );
}
