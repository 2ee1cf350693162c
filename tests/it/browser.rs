//! The dashboard in a real browser: Debian's chromium driven by playwright-core
//! (`tests/browser/dashboard.mjs`) against the real server and the fake Discord. It logs in
//! through the link from a `/dashboard` interaction, on a phone-sized screen and by keyboard,
//! and writes screenshots to `target/screenshots/dashboard/`.
//!
//! Needs `chromium` (or `CHROMIUM_BIN`), `node` and `npm ci --prefix tests/browser`; without
//! them the test says so and passes, except under CI (`CI` set), where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::bot::{GUILD, OWNER, buy, fake_discord, start_app};
use crate::dashboard::{login_link, polar_shop};

/// What the browser test needs, or why it cannot run here.
fn browser_setup() -> Result<(PathBuf, PathBuf), String> {
    let chromium = std::env::var_os("CHROMIUM_BIN")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !chromium.exists() {
        return Err(format!(
            "no browser at {} (apt-get install chromium, or set CHROMIUM_BIN)",
            chromium.display()
        ));
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        return Err("playwright-core is not installed (npm ci --prefix tests/browser)".into());
    }
    Ok((chromium, dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_logs_in_from_discord_and_sees_the_overview_in_a_real_browser() {
    let (chromium, dir) = match browser_setup() {
        Ok(found) => found,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("the browser test must run in CI: {why}")
        }
        Err(why) => {
            eprintln!("skipping the browser test: {why}");
            return;
        }
    };
    let discord = fake_discord().await;
    // Plain http on loopback, as the browser reaches it (the cookie is not Secure then).
    let app = start_app(
        &discord,
        &[("DOCOBO_SERVER__PUBLIC_URL", "http://127.0.0.1")],
    )
    .await;
    let webhook = polar_shop(&app, "production").await;
    buy(&app, &webhook, "evt_browser_1").await;
    let link = login_link(&discord, OWNER, "http://127.0.0.1").await;

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/dashboard");
    let base = app.url("");
    let path = format!("/dashboard/login?link={link}");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(dir.join("dashboard.mjs"))
            .args([&base, &path])
            .arg(&shots)
            .env("CHROMIUM_BIN", chromium)
            .output()
    })
    .await
    .expect("join")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    let seen: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");

    assert_eq!(seen["continueVisible"], true, "{seen}");
    assert_eq!(
        seen["focused"], "Continue",
        "the first Tab reaches Continue: {seen}"
    );
    assert_eq!(
        seen["overviewUrl"],
        format!("/dashboard/guilds/{GUILD}"),
        "{seen}"
    );
    assert_eq!(seen["heading"], "Shop", "{seen}");
    let text = seen["overviewText"].as_str().unwrap_or_default();
    assert!(text.contains("Members with access: 1"), "{seen}");
    assert!(text.contains("4.99 USD / month"), "{seen}");
    // The embedded script and stylesheet load under the page's CSP; nothing was refused.
    assert_eq!(seen["htmxLoaded"], true, "{seen}");
    assert_eq!(seen["stylesApplied"], "collapse", "{seen}");
    assert_eq!(seen["consoleErrors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["horizontalOverflow"], false, "fits a phone: {seen}");
    assert_eq!(seen["afterLogout"], "/dashboard/login", "{seen}");
    assert_eq!(seen["afterLogoutRevisit"], "/dashboard/login", "{seen}");
    for shot in ["login-link.png", "overview.png", "login.png"] {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/screenshots/dashboard")
            .join(shot);
        assert!(
            std::fs::metadata(&file).is_ok_and(|m| m.len() > 1000),
            "{}",
            file.display()
        );
    }
}
