//! The dashboard in a real browser: Debian's chromium driven by playwright-core
//! (`tests/browser/dashboard.mjs`) against the real server and the fake Discord. It logs in
//! through the link from a `/dashboard` interaction, on a phone-sized screen and by keyboard,
//! sees a purchase arrive live, comps a member (the role PUT at the fake Discord), exports,
//! forgets the member and imports the file back, and writes screenshots of each page to
//! `target/screenshots/dashboard/`.
//!
//! Needs `chromium` (or `CHROMIUM_BIN`), `node` and `npm ci --prefix tests/browser`; without
//! them the test says so and passes, except under CI (`CI` set), where it fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use docobo_testkit::app::TestApp;
use docobo_testkit::discord::FakeDiscord;
use serde_json::{Value, json};

use crate::bot::{
    GUILD, MEMBER, OWNER, PRODUCT, SUPPORTER, WAIT, buy, deliver_polar, fake_discord, now_ms,
    role_puts, start_app,
};
use crate::dashboard::{login_link, polar_shop};
use crate::dashboard_member::subscriptions_of;

/// How long the browser may take between two lines (a cold chromium start is slow).
const BROWSER_WAIT: Duration = Duration::from_secs(90);

/// A member other than the fixture's.
const SECOND_MEMBER: u64 = 4_242_424_242;

/// A Polar purchase of Supporter by `user`.
async fn buy_as(app: &TestApp, path: &str, id: &str, user: u64) {
    let mut body: Value = serde_json::from_slice(&crate::bot::polar_event(
        "subscription.active",
        "active",
        false,
        now_ms(),
    ))
    .expect("json");
    body["data"]["id"] = json!(format!("sub_{user}"));
    body["data"]["product_id"] = json!(PRODUCT);
    body["data"]["metadata"]["docobo_user_id"] = json!(user.to_string());
    body["data"]["customer"]["external_id"] = json!(user.to_string());
    let body = serde_json::to_vec(&body).expect("json");
    let response = deliver_polar(app, path, id, &body).await;
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
}

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

/// `tests/browser/dashboard.mjs` running: its `STEP` lines, answered on its stdin, then the
/// JSON line of what it saw.
struct Script {
    child: Child,
    stdin: ChildStdin,
    lines: tokio::sync::mpsc::UnboundedReceiver<std::io::Result<String>>,
    stderr: std::thread::JoinHandle<String>,
    last: String,
}

impl Script {
    fn start(dir: &Path, chromium: &Path, base: &str, link: &str, shots: &Path) -> Self {
        let mut child = Command::new("node")
            .arg(dir.join("dashboard.mjs"))
            .args([base, &format!("/dashboard/login?link={link}")])
            .arg(shots)
            .arg(MEMBER.to_string())
            .env("CHROMIUM_BIN", chromium)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().expect("stdin");
        // The script's lines, read on a thread of their own.
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            stderr.read_to_string(&mut text).ok();
            text
        });
        Self {
            child,
            stdin,
            lines,
            stderr,
            last: String::new(),
        }
    }

    /// The next step the script asks for; `None` once it has finished.
    async fn next_step(&mut self) -> Option<String> {
        loop {
            let Ok(line) = tokio::time::timeout(BROWSER_WAIT, self.lines.recv()).await else {
                self.child.kill().ok();
                panic!(
                    "the browser test said nothing for {BROWSER_WAIT:?}; last: {}",
                    self.last
                );
            };
            let text = line?.expect("stdout reads");
            match text.strip_prefix("STEP ") {
                Some(step) => return Some(step.to_owned()),
                None => self.last = text,
            }
        }
    }

    fn answer(&mut self, text: &str) {
        writeln!(self.stdin, "{text}").expect("stdin");
    }

    /// Waits for the script to exit; what it saw.
    async fn finish(self) -> Value {
        let Self {
            mut child,
            stderr,
            last,
            ..
        } = self;
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("node exits");
        let stderr = stderr.join().expect("join");
        assert!(status.success(), "{stderr}\n{last}");
        serde_json::from_str(last.trim()).expect("one JSON line")
    }
}

/// What the script saw comping a member, exporting, forgetting them and importing the file
/// back, all from the browser.
fn assert_admin_round_trip(seen: &Value) {
    assert!(
        seen["grantNotice"]
            .as_str()
            .is_some_and(|t| t.contains("Done:")),
        "{seen}"
    );
    assert_eq!(seen["compAnswer"], "given=true puts=1 rows=1", "{seen}");
    assert!(
        seen["exportName"]
            .as_str()
            .is_some_and(|n| Path::new(n).extension().is_some_and(|e| e == "jsonl")),
        "{seen}"
    );
    assert_eq!(seen["exportHasMember"], true, "{seen}");
    assert!(
        seen["forgetNotice"]
            .as_str()
            .is_some_and(|t| t.contains("Done:")),
        "{seen}"
    );
    assert_eq!(seen["forgetAnswer"], "removed=true rows=0", "{seen}");
    assert!(
        seen["importNotice"]
            .as_str()
            .is_some_and(|t| t.contains("Done:")),
        "{seen}"
    );
    assert_eq!(
        seen["importAnswer"], "given=true puts=2 rows=1",
        "re-imported: {seen}"
    );
    assert_eq!(
        seen["horizontalOverflowAfter"], false,
        "fits a phone: {seen}"
    );
}

/// Does, outside the browser, what the script's step `step` asks for, and says what came
/// of it.
async fn act_on(step: &str, app: &TestApp, discord: &FakeDiscord, webhook: &str) -> String {
    match step {
        "purchase" => {
            buy_as(app, webhook, "evt_browser_live", SECOND_MEMBER).await;
            "done".to_owned()
        }
        // After the grant, the import: the role reaches the fake Discord.
        "comp" | "imported" => {
            let given = discord
                .wait_for_member_role(GUILD, MEMBER, SUPPORTER, true, WAIT)
                .await
                .is_ok();
            let rows = subscriptions_of(app, MEMBER).await.len();
            let puts = role_puts(discord, MEMBER, SUPPORTER);
            format!("given={given} puts={puts} rows={rows}")
        }
        // After forget: the role is taken away and the member's rows are gone.
        "forgotten" => {
            let removed = discord
                .wait_for_member_role(GUILD, MEMBER, SUPPORTER, false, WAIT)
                .await
                .is_ok();
            let rows = subscriptions_of(app, MEMBER).await.len();
            format!("removed={removed} rows={rows}")
        }
        other => panic!("unknown step {other}"),
    }
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
    let mut script = Script::start(&dir, &chromium, &app.url(""), &link, &shots);
    while let Some(step) = script.next_step().await {
        let answer = act_on(&step, &app, &discord, &webhook).await;
        script.answer(&answer);
    }
    let seen = script.finish().await;

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
    assert_eq!(seen["countBefore"], "1", "{seen}");
    assert_eq!(seen["countAfter"], "2", "the purchase arrived live: {seen}");
    assert_eq!(seen["liveNavigations"], 0, "without a reload: {seen}");
    assert!(seen["chartBars"].as_u64().unwrap_or(0) >= 3, "{seen}");
    // The embedded script and stylesheet load under the page's CSP; nothing was refused.
    assert_eq!(seen["htmxLoaded"], true, "{seen}");
    assert_eq!(seen["stylesApplied"], "collapse", "{seen}");
    assert_eq!(seen["consoleErrors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["horizontalOverflow"], false, "fits a phone: {seen}");
    assert_admin_round_trip(&seen);
    assert_eq!(seen["afterLogout"], "/dashboard/login", "{seen}");
    assert_eq!(seen["afterLogoutRevisit"], "/dashboard/login", "{seen}");
    for shot in [
        "login-link.png",
        "overview.png",
        "overview-live.png",
        "members.png",
        "member.png",
        "member-forget.png",
        "import.png",
        "import-done.png",
        "login.png",
    ] {
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
