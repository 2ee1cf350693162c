//! A first run, as a new operator meets it (issue 18, "First run"): the invite link, which
//! commands need the bot token, `DOCOBO_` variables that are not settings, and logs without
//! build paths. The real binary, against the loopback fake Discord.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use docobo_testkit::FakeDiscord;

use crate::cli::{docobo, sigterm, wait_with_timeout};

const TOKEN: &str = "first-run-token-not-a-secret-elsewhere";
/// Not the bot user's id (1000), so that the link can only have it from Discord's answer.
const APPLICATION: u64 = 424_242_424_242;
/// Manage Roles, View Channel, Send Messages.
const PERMISSIONS: u64 = (1 << 28) | (1 << 10) | (1 << 11);

fn invite_url() -> String {
    format!(
        "https://discord.com/oauth2/authorize?client_id={APPLICATION}&scope=bot%20applications.commands&permissions={PERMISSIONS}"
    )
}

async fn fake_discord() -> FakeDiscord {
    FakeDiscord::builder()
        .token(TOKEN)
        .application_id(APPLICATION)
        .start()
        .await
        .expect("fake Discord")
}

/// Runs `cmd` off the runtime, so that the fake Discord keeps answering meanwhile.
async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run docobo"))
        .await
        .expect("join")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn docobo_invite_prints_the_link_for_the_application_discord_names() {
    let discord = fake_discord().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("DOCOBO_DISCORD__TOKEN", TOKEN),
        ("DOCOBO_DISCORD__API_URL", discord.rest_url()),
    ];
    let mut cmd = docobo(dir.path(), &env);
    cmd.arg("invite");
    let out = output(cmd).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        stdout.lines().next(),
        Some(invite_url().as_str()),
        "{stdout}"
    );
    assert!(
        stdout.contains("View Channel, Send Messages, Manage Roles"),
        "{stdout}"
    );
    // It asked the (fake) Discord, with the token.
    let asked: Vec<_> = discord
        .requests()
        .into_iter()
        .filter(|r| r.path == "/oauth2/applications/@me")
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].method, "GET");
    assert_eq!(asked[0].status, Some(200));
    assert_eq!(
        asked[0].header("authorization"),
        Some(format!("Bot {TOKEN}").as_str())
    );
    // It made nothing, and touched no database.
    assert_eq!(discord.requests().len(), 1);
    assert!(!dir.path().join("data").exists());
    discord.assert_payloads_parse();

    // A token Discord refuses: the fix, not a stack of errors.
    let mut cmd = docobo(
        dir.path(),
        &[
            ("DOCOBO_DISCORD__TOKEN", "a-wrong-token"),
            ("DOCOBO_DISCORD__API_URL", discord.rest_url()),
        ],
    );
    cmd.arg("invite");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Discord refused the bot token"), "{stderr}");
    assert!(stderr.contains("Reset Token"), "{stderr}");
    assert!(out.stdout.is_empty());

    // No token: a configuration problem (exit 2), saying which commands need it.
    let mut cmd = docobo(
        dir.path(),
        &[("DOCOBO_DISCORD__API_URL", discord.rest_url())],
    );
    cmd.arg("invite");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("discord.token: is required to talk to Discord"),
        "{stderr}"
    );
    assert!(stderr.contains("docobo invite"), "{stderr}");
}

/// Stops `child` (SIGTERM) and returns every line it printed, as JSON.
fn lines_until_stopped(
    mut child: std::process::Child,
    lines: &std::sync::mpsc::Receiver<String>,
) -> Vec<serde_json::Value> {
    sigterm(&child);
    let status = wait_with_timeout(&mut child, Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    lines
        .iter()
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test]
async fn serve_logs_the_invite_link_once_and_no_log_line_carries_a_build_path() {
    let discord = fake_discord().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = docobo(
        dir.path(),
        &[
            ("DOCOBO_DISCORD__TOKEN", TOKEN),
            ("DOCOBO_DISCORD__API_URL", discord.rest_url()),
            ("DOCOBO_SERVER__PORT", "0"),
            ("DOCOBO_SERVER__BIND", "127.0.0.1"),
            // The gateway's WebSocket crates log with `log` (bridged by tracing-log), and
            // tokio-tungstenite's traces put `file!()`, an absolute build path, in the message.
            (
                "DOCOBO_LOG__LEVEL",
                "info,tungstenite=trace,tokio_tungstenite=trace",
            ),
        ],
    )
    .arg("serve")
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("spawn docobo serve");
    // Every line from the first, in a thread, so that the pipe never fills.
    let stdout = child.stdout.take().expect("stdout");
    let (tx, logs) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    discord
        .wait_for_command(None, "setup", Duration::from_mins(1))
        .await
        .expect("commands registered");
    // Past READY: its log line is out (the commands are registered after it).
    let lines = lines_until_stopped(child, &logs);

    let invites: Vec<_> = lines
        .iter()
        .filter(|l| l["url"].as_str().is_some_and(|u| u.contains("oauth2")))
        .collect();
    assert_eq!(invites.len(), 1, "{invites:?}");
    let invite = invites[0];
    assert_eq!(invite["url"], invite_url());
    assert_eq!(invite["level"], "info");
    assert_eq!(invite["scopes"], "bot applications.commands");
    assert_eq!(
        invite["permissions"],
        "View Channel, Send Messages, Manage Roles"
    );
    assert!(
        invite["msg"]
            .as_str()
            .is_some_and(|m| m.contains("to add the bot to a server, open this link")),
        "{invite}"
    );
    // The id came from READY (the fake's application), without asking for it.
    assert_eq!(
        discord
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/oauth2"))
            .count(),
        0
    );

    // Bridged `log` records are there, under their own crates' targets…
    let bridged = lines
        .iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("tungstenite") || t.starts_with("tokio_tungstenite"))
        })
        .count();
    assert!(bridged > 0, "no bridged log record to check");
    // …and no line carries a path of the machine that built the binary.
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    for line in &lines {
        let object = line.as_object().expect("object");
        assert!(
            !object.keys().any(|k| k.starts_with("log.")),
            "a log.* field: {line}"
        );
        assert_ne!(line["target"], "log", "{line}");
        let shown = line.to_string();
        for path in ["/registry/src/", "/.cargo/", "/rustc/", manifest_dir] {
            assert!(!shown.contains(path), "{path:?} in {shown}");
        }
    }
}

/// `docobo ARGS` in `dir` with `env` (and no token unless given).
fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    docobo(dir, env).args(args).output().expect("run docobo")
}

fn assert_ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {:?}\n{}",
        out.status,
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("discord.token"), "{what}");
    text(&out.stdout)
}

#[test]
fn commands_that_do_not_talk_to_discord_need_no_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    // No token anywhere: not in the environment, and no docobo.toml.
    let env: &[(&str, &str)] = &[];

    let out = run(p, env, &["migrate"]);
    assert!(assert_ok(&out, "migrate").contains("migration(s) applied"));

    let out = run(p, env, &["backup", "copy.db"]);
    assert!(assert_ok(&out, "backup").contains("backup written to copy.db"));

    let out = run(p, env, &["restore", "copy.db"]);
    assert!(assert_ok(&out, "restore").contains("restored copy.db"));

    let out = run(p, env, &["plugin", "list"]);
    let listed = assert_ok(&out, "plugin list");
    assert!(listed.contains("polar — Polar"), "{listed}");
    assert!(listed.contains("sepay — SePay"), "{listed}");

    // forget-guild and health run and give their own answers, not a token problem.
    let out = run(p, env, &["forget-guild", "123456789012345678"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Docobo has no guild"), "{stderr}");
    assert!(!stderr.contains("discord.token"), "{stderr}");

    let out = run(p, env, &["health", "--url", "http://127.0.0.1:9/health"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot reach"), "{stderr}");
    assert!(!stderr.contains("discord.token"), "{stderr}");

    // The other sections are still checked by every command.
    let out = run(p, &[("DOCOBO_SERVER__PORT", "eighty")], &["plugin", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the configuration has 1 problem:"),
        "{stderr}"
    );
    assert!(stderr.contains("server.port"), "{stderr}");

    // The commands that talk to Discord, and check-config (what serve reads), need it.
    for args in [&["serve"][..], &["invite"], &["check-config"]] {
        let out = run(p, env, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("the configuration has 1 problem:"),
            "{stderr}"
        );
        assert!(
            stderr.contains("discord.token: is required to talk to Discord"),
            "{stderr}"
        );
        assert!(
            stderr.contains("the other commands run without it"),
            "{stderr}"
        );
    }
    // check-config without a token still checks every other section.
    let out = run(
        p,
        &[
            ("DOCOBO_SERVER__PORT", "eighty"),
            ("DOCOBO_LOG__FORMAT", "xml"),
        ],
        &["check-config"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    for want in ["3 problems", "server.port", "log.format", "discord.token"] {
        assert!(stderr.contains(want), "{want:?} not in {stderr}");
    }
    // With a token from a file, as systemd and Docker give it.
    std::fs::write(p.join("token"), "t\n").expect("write");
    let out = run(
        p,
        &[("DOCOBO_DISCORD__TOKEN_FILE", "token")],
        &["check-config"],
    );
    assert!(assert_ok(&out, "check-config").contains("configuration OK"));
}

#[test]
fn docobo_variables_that_are_not_settings_are_ignored_and_misspelt_settings_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let theirs = [
        ("DOCOBO_DISCORD__TOKEN", "t"),
        ("DOCOBO_BIN", "/usr/local/bin/docobo"),
        ("DOCOBO_PLUGINS_OUT", "/tmp/plugins"),
        ("DOCOBO_TEST_MOUNTS", "1"),
        ("DOCOBO_BENCH_PHASE_SECONDS", "30"),
    ];
    let out = run(p, &theirs, &["check-config"]);
    assert!(assert_ok(&out, "check-config").contains("configuration OK"));
    let out = run(p, &theirs[1..], &["migrate"]);
    assert_ok(&out, "migrate");

    for (name, right) in [
        ("DOCOBO_SERVER__PROT", "DOCOBO_SERVER__PORT"),
        ("DOCOBO_SERVER_PORT", "DOCOBO_SERVER__PORT"),
    ] {
        for command in ["check-config", "migrate"] {
            let out = run(
                p,
                &[("DOCOBO_DISCORD__TOKEN", "t"), (name, "8080")],
                &[command],
            );
            assert_eq!(out.status.code(), Some(2), "{name} {command}");
            let stderr = text(&out.stderr);
            assert!(stderr.contains(&format!("from env {name}")), "{stderr}");
            assert!(
                stderr.contains(&format!("Did you mean {right}?")),
                "{stderr}"
            );
        }
    }
}
