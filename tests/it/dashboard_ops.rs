//! The dashboard's operations pages over real HTTP (issue 19): failed role syncs and their
//! retry through the real role-sync worker against the fake Discord, recent deliveries from
//! the real webhook route, plugins, backups (taken, listed, downloaded, opened with SQLite)
//! and health; and every refusal (no session, another server, a server's session on the
//! operator's pages, a POST without its CSRF token, names that try to leave the folder).

use docobo::domain::{GuildId, ProviderId, Scope};
use docobo_testkit::app::TestApp;
use docobo_testkit::discord::{FakeDiscord, Fault, FaultRule};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_DISPOSITION, COOKIE, LOCATION, SET_COOKIE};

use crate::bot::{
    BUYER, GUILD, OWNER, PUBLIC_URL, SUPPORTER, buy, fake_discord, role_puts, start_app,
    wait_for_subscription,
};
use crate::dashboard::{login_link, polar_shop};

const OTHER_GUILD: u64 = 2_000;
const ADMIN_TOKEN: &str = "docobo_admin_ops_token_0123456789abcdef";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = client().get(app.url(path));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.expect("send")
}

async fn text(app: &TestApp, path: &str, cookie: &str) -> String {
    let response = get(app, path, Some(cookie)).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.text().await.expect("body")
}

async fn post(
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut request = client().post(app.url(path)).form(form);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.expect("send")
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn cookie_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a CSRF field") + marker.len();
    page[start..].chars().take_while(|c| *c != '"').collect()
}

/// The owner's session for GUILD, through the link `/dashboard` replies with.
async fn owner_session(app: &TestApp, discord: &FakeDiscord) -> String {
    let link = login_link(discord, OWNER, PUBLIC_URL).await;
    let login = post(app, "/dashboard/login", &[("link", &link)], None).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    cookie_of(&login)
}

async fn operator_session(app: &TestApp) -> String {
    let login = post(app, "/dashboard/login", &[("token", ADMIN_TOKEN)], None).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    cookie_of(&login)
}

fn admin_env() -> (&'static str, String) {
    (
        "DOCOBO_DASHBOARD__ADMIN_TOKEN_HASH",
        docobo::web::auth::hash_token(ADMIN_TOKEN),
    )
}

/// The table rows of a page (`<tr><td` … up to the row's end).
fn rows_of(page: &str) -> Vec<String> {
    page.split("<tr><td")
        .skip(1)
        .map(|row| row.split("</tr>").next().unwrap_or_default().to_owned())
        .collect()
}

/// A GET with `path` sent as written (an HTTP client would resolve `%2e%2e` itself):
/// the status and the body as text.
async fn raw_get(app: &TestApp, path: &str, cookie: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let (addr, request) = (
        app.addr,
        format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        ),
    );
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.write_all(request.as_bytes()).expect("send");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read");
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, answer)
    })
    .await
    .expect("raw request")
}

fn next_of(page: &str) -> Option<String> {
    let older = page.rfind("rel=\"next\"")?;
    let start = page[..older].rfind("href=\"")? + "href=\"".len();
    Some(page[start..].split('"').next()?.replace("&amp;", "&"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_role_sync_is_listed_and_its_retry_goes_through_the_worker_to_discord() {
    let discord = fake_discord().await;
    // No sweep during the test: only the retry may fix the sync.
    let app = start_app(
        &discord,
        &[("DOCOBO_SUBSCRIPTIONS__SWEEP_INTERVAL_SECS", "86400")],
    )
    .await;
    let webhook = polar_shop(&app, "production").await;
    discord.inject_fault(FaultRule::new(
        "PUT",
        "/guilds/*/members/*/roles/*",
        Fault::error(403, 50013, "Missing Permissions"),
    ));
    buy(&app, &webhook, "evt_ops_sync_1").await;
    wait_for_subscription(&app, |s| s.last_sync_error.is_some()).await;
    let cookie = owner_session(&app, &discord).await;
    let syncs = format!("/dashboard/guilds/{GUILD}/syncs");

    // The nav links every operations page from the overview.
    let overview = text(&app, &format!("/dashboard/guilds/{GUILD}"), &cookie).await;
    for page in ["syncs", "deliveries", "plugins"] {
        assert!(
            overview.contains(&format!("href=\"/dashboard/guilds/{GUILD}/{page}\"")),
            "{page}: {overview}"
        );
    }
    assert!(overview.contains("href=\"/dashboard/health\""));
    assert!(!overview.contains("/dashboard/backups"), "operator only");

    let page = text(&app, &syncs, &cookie).await;
    let rows = rows_of(&page);
    assert_eq!(rows.len(), 1, "{page}");
    let row = &rows[0];
    for needle in [
        &BUYER.to_string(),
        "Paid",
        "could not give @Paid",
        ">1</td>",
        "Retry",
    ] {
        assert!(row.contains(needle), "{needle:?} missing: {row}");
    }
    let csrf = csrf_of(&page);
    let one = [
        ("csrf", csrf.as_str()),
        ("user", &BUYER.to_string()),
        ("role", &paid_role(&app).await.to_string()),
    ];
    let retry = format!("{syncs}/retry");

    // Without the CSRF token: refused, nothing retried.
    let refused = post(&app, &retry, &one[1..], Some(&cookie)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(role_puts(&discord, BUYER, SUPPORTER), 0);

    // Discord still refuses: the retry reports the new failure.
    let puts_before = discord.count_requests("PUT", "/guilds/*/members/*/roles/*");
    let again = post(&app, &retry, &one, Some(&cookie)).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    let to = location(&again);
    assert!(to.contains("failed=1"), "{to}");
    assert!(discord.count_requests("PUT", "/guilds/*/members/*/roles/*") > puts_before);
    let page = text(&app, &to, &cookie).await;
    assert!(page.contains("the role sync failed again"), "{page}");
    assert!(
        rows_of(&page)[0].contains(">2</td>"),
        "two attempts: {page}"
    );

    // Discord accepts now: the retry grants the role and says so.
    discord.clear_faults();
    let fixed = post(&app, &retry, &one, Some(&cookie)).await;
    assert_eq!(fixed.status(), StatusCode::SEE_OTHER);
    let to = location(&fixed);
    assert!(to.contains("synced=1"), "{to}");
    assert_eq!(role_puts(&discord, BUYER, SUPPORTER), 1);
    assert_eq!(
        discord.member_roles(GUILD, BUYER).unwrap_or_default(),
        vec![SUPPORTER]
    );
    let page = text(&app, &to, &cookie).await;
    assert!(
        page.contains("✔ Retried: the role sync succeeded."),
        "{page}"
    );
    assert!(page.contains("No role sync is failing"), "{page}");
    assert!(rows_of(&page).is_empty());

    // Nothing left to retry; a retry that names nothing is a bad request.
    let nothing = post(&app, &retry, &one, Some(&cookie)).await;
    assert!(location(&nothing).contains("synced=0&failed=0&waiting=0"));
    let bad = post(
        &app,
        &retry,
        &[("csrf", &csrf), ("user", "x")],
        Some(&cookie),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}

async fn paid_role(app: &TestApp) -> i64 {
    app.count("SELECT id FROM paid_roles ORDER BY id LIMIT 1")
        .await
}

/// A second server Docobo knows, with Polar.
async fn add_other_guild(app: &TestApp) {
    let other = GuildId::new(OTHER_GUILD).expect("guild");
    app.add_guild(
        other,
        "polar",
        &[("access_token", "x"), ("webhook_secret", "other_secret")],
    )
    .await;
}

/// `n` deliveries recorded for `guild` as the ingest would (for paging; the real route
/// records the rest).
async fn seed_deliveries(app: &TestApp, guild: u64, n: usize, provider: &'static str) {
    use docobo::db::webhook_events::{NewWebhookEvent, Outcome, insert_if_new};
    let guild = GuildId::new(guild).expect("guild");
    app.db
        .call(move |conn| {
            let provider = ProviderId::parse(provider).expect("provider");
            for i in 0..n {
                insert_if_new(
                    conn,
                    &NewWebhookEvent {
                        provider: &provider,
                        scope: Scope::Guild(guild),
                        external_event_id: &format!("seed-{guild}-{i}"),
                        guild_id: Some(guild),
                        subscription_id: None,
                        event_type: "checkout.updated",
                        event_json: "{}",
                        outcome: Outcome::Ignored,
                        detail: Some("Jane Doe <member@example.com>"),
                        test: false,
                    },
                )?;
            }
            Ok(())
        })
        .await
        .expect("seed deliveries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_deliveries_page_by_id_newest_first_without_personal_data() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;
    let webhook = polar_shop(&app, "production").await;
    add_other_guild(&app).await;
    seed_deliveries(&app, GUILD, 60, "polar").await;
    seed_deliveries(&app, OTHER_GUILD, 3, "polar").await;
    // Admin actions share the table: they are the audit trail, not deliveries.
    seed_deliveries(&app, GUILD, 2, "admin").await;
    buy(&app, &webhook, "evt_ops_delivery_1").await;
    let cookie = owner_session(&app, &discord).await;

    let mut path = format!("/dashboard/guilds/{GUILD}/deliveries");
    let mut rows = Vec::new();
    let mut pages = Vec::new();
    loop {
        let page = text(&app, &path, &cookie).await;
        for forbidden in ["member@example.com", "Jane Doe", "sub_e2e"] {
            assert!(!page.contains(forbidden), "{forbidden} shown: {page}");
        }
        let found = rows_of(&page);
        assert!(found.len() <= 50);
        rows.extend(found);
        pages.push(path.clone());
        match next_of(&page) {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert_eq!(rows.len(), 61, "60 seeded and the purchase");
    // Newest first: the purchase, with its outcome in words.
    assert!(rows[0].contains("subscription.active"), "{}", rows[0]);
    assert!(rows[0].contains("✔ applied"), "{}", rows[0]);
    assert!(rows[1].contains("– ignored"), "{}", rows[1]);
    assert!(rows.iter().all(|r| r.contains("polar")));

    // The operator sees the same page; another server's session does not.
    let other = get(
        &app,
        &format!("/dashboard/guilds/{OTHER_GUILD}/deliveries"),
        Some(&cookie),
    )
    .await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugins_page_shows_the_server_s_provider_and_the_other_plugins() {
    let discord = fake_discord().await;
    let (name, hash) = admin_env();
    let app = start_app(&discord, &[(name, &hash)]).await;
    let webhook = polar_shop(&app, "production").await;
    buy(&app, &webhook, "evt_ops_plugins_1").await;
    let polar = app
        .services
        .providers
        .plugin("polar")
        .expect("polar loaded")
        .clone();

    let cookie = owner_session(&app, &discord).await;
    let path = format!("/dashboard/guilds/{GUILD}/plugins");
    let page = text(&app, &path, &cookie).await;
    let (own, rest) = page
        .split_once("Other loaded plugins")
        .expect("two sections");
    for needle in [
        format!("{} <span class=\"muted\">(polar)</span>", polar.name),
        format!("<dd>{}</dd>", polar.version),
        format!("<dd>{}</dd>", polar.api_version),
        "✔ loaded".to_owned(),
    ] {
        assert!(own.contains(&needle), "{needle} missing: {own}");
    }
    assert!(rest.contains("(sepay)"), "{rest}");
    assert!(!own.contains("deliveries since the start"), "operator only");

    // The operator also sees the counts since the start.
    let operator = operator_session(&app).await;
    let page = text(&app, &path, &operator).await;
    assert!(
        page.contains("1 webhook delivery since the start; no delivery failed"),
        "{page}"
    );
    app.stop().await;
}

/// `file` downloads as an attachment that SQLite opens, with the one subscription.
async fn assert_downloads_the_database(
    app: &TestApp,
    cookie: &str,
    file: &str,
    scratch: &std::path::Path,
) {
    let download = get(app, &format!("/dashboard/backups/{file}"), Some(cookie)).await;
    assert_eq!(download.status(), StatusCode::OK);
    let disposition = download
        .headers()
        .get(CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        disposition.starts_with("attachment") && disposition.contains(file),
        "{disposition}"
    );
    let bytes = download.bytes().await.expect("bytes");
    let copy = scratch.join("downloaded.db");
    std::fs::write(&copy, &bytes).expect("write");
    let conn = rusqlite::Connection::open(&copy).expect("a SQLite file");
    let subscriptions: i64 = conn
        .query_row("SELECT count(*) FROM subscriptions", [], |r| r.get(0))
        .expect("the subscriptions table");
    assert_eq!(subscriptions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_takes_lists_and_downloads_backups_that_open_as_sqlite() {
    let folder = tempfile::tempdir().expect("backup folder");
    let backups = folder.path().join("backups");
    let discord = fake_discord().await;
    let (name, hash) = admin_env();
    let dir = backups.display().to_string();
    let app = start_app(
        &discord,
        &[(name, &hash), ("DOCOBO_DATABASE__BACKUP_DIR", &dir)],
    )
    .await;
    let webhook = polar_shop(&app, "production").await;
    buy(&app, &webhook, "evt_ops_backup_1").await;
    let cookie = operator_session(&app).await;

    let page = text(&app, "/dashboard/backups", &cookie).await;
    assert!(page.contains("No backup yet"), "{page}");
    assert!(page.contains(&dir), "the folder is named: {page}");
    let csrf = csrf_of(&page);
    let refused = post(&app, "/dashboard/backups", &[], Some(&cookie)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(!backups.exists(), "nothing taken without the token");

    let taken = post(
        &app,
        "/dashboard/backups",
        &[("csrf", &csrf)],
        Some(&cookie),
    )
    .await;
    assert_eq!(taken.status(), StatusCode::SEE_OTHER);
    let to = location(&taken);
    let file = to
        .strip_prefix("/dashboard/backups?taken=")
        .expect("the new backup's name")
        .to_owned();
    assert!(
        file.starts_with("docobo-")
            && std::path::Path::new(&file).extension() == Some("db".as_ref()),
        "{file}"
    );
    let page = text(&app, &to, &cookie).await;
    assert!(page.contains(&format!("✔ Backup taken: {file}.")), "{page}");
    assert!(
        page.contains(&format!("href=\"/dashboard/backups/{file}\"")),
        "{page}"
    );
    // Two in the same second get their own names.
    let second = post(
        &app,
        "/dashboard/backups",
        &[("csrf", &csrf)],
        Some(&cookie),
    )
    .await;
    assert_eq!(second.status(), StatusCode::SEE_OTHER);
    assert_ne!(location(&second), to);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(backups.join(&file))
            .expect("backup")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "owner-only: {mode:o}");
    }

    // The download is the database, whole.
    assert_downloads_the_database(&app, &cookie, &file, folder.path()).await;

    // Names that leave the folder, point elsewhere or are not backups are refused.
    #[cfg(unix)]
    std::os::unix::fs::symlink(app.db.path(), backups.join("link.db")).expect("symlink");
    for (path, status) in [
        ("/dashboard/backups/%2e%2e", StatusCode::BAD_REQUEST),
        ("/dashboard/backups/..%2Fdocobo.db", StatusCode::BAD_REQUEST),
        (
            "/dashboard/backups/%2Fetc%2Fpasswd",
            StatusCode::BAD_REQUEST,
        ),
        ("/dashboard/backups/.hidden", StatusCode::BAD_REQUEST),
        ("/dashboard/backups/../docobo.db", StatusCode::NOT_FOUND),
        ("/dashboard/backups/missing.db", StatusCode::NOT_FOUND),
        ("/dashboard/backups/link.db", StatusCode::NOT_FOUND),
    ] {
        let (got, body) = raw_get(&app, path, &cookie).await;
        assert_eq!(got, status.as_u16(), "{path}");
        assert!(
            !body.contains("SQLite format 3"),
            "{path} served a database"
        );
    }
    let page = text(&app, "/dashboard/backups", &cookie).await;
    assert!(!page.contains("link.db"), "links are not listed: {page}");
    assert_eq!(rows_of(&page).len(), 2, "{page}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_page_says_what_slash_health_says_for_people() {
    let discord = fake_discord().await;
    let (name, hash) = admin_env();
    let app = start_app(&discord, &[(name, &hash)]).await;
    let webhook = polar_shop(&app, "production").await;
    buy(&app, &webhook, "evt_ops_health_1").await;
    // Another guild's newer delivery: the owner does not see it as theirs.
    add_other_guild(&app).await;
    seed_deliveries(&app, OTHER_GUILD, 1, "polar").await;

    let (status, health) = crate::helpers::health(&app).await;
    assert_eq!(status, 200, "{health}");
    let cookie = owner_session(&app, &discord).await;
    let page = text(&app, "/dashboard/health", &cookie).await;
    for needle in [
        "✔ Healthy",
        "<dt>Discord gateway</dt><dd>✔ connected</dd>",
        "<dt>Database</dt><dd>✔ ok</dd>",
        "✔ a write went through in",
        "✔ writable",
        "subscription.active",
        "✔ applied",
        health["version"].as_str().expect("version"),
        &format!("href=\"/dashboard/guilds/{GUILD}/syncs\""),
    ] {
        assert!(page.contains(needle), "{needle} missing: {page}");
    }
    for plugin in health["plugins"].as_array().expect("plugins") {
        assert!(page.contains(plugin.as_str().expect("id")), "{plugin}");
    }
    assert!(
        !page.contains("checkout.updated"),
        "another server's delivery"
    );
    assert!(!page.contains("docobo.db"), "the path is the operator's");

    let operator = operator_session(&app).await;
    let page = text(&app, "/dashboard/health", &operator).await;
    assert!(
        page.contains("checkout.updated"),
        "the newest of all: {page}"
    );
    assert!(page.contains("docobo.db"), "{page}");
    assert!(page.contains("/dashboard/backups"), "{page}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_pages_are_refused_without_a_session_for_another_server_or_token() {
    let discord = fake_discord().await;
    let (name, hash) = admin_env();
    let app = start_app(&discord, &[(name, &hash)]).await;
    polar_shop(&app, "production").await;
    let pages = [
        format!("/dashboard/guilds/{GUILD}/syncs"),
        format!("/dashboard/guilds/{GUILD}/deliveries"),
        format!("/dashboard/guilds/{GUILD}/plugins"),
        "/dashboard/health".to_owned(),
        "/dashboard/backups".to_owned(),
        "/dashboard/backups/docobo-20250101-000000.db".to_owned(),
    ];
    // No session: every page sends to the login page; every action is refused.
    for path in &pages {
        let response = get(&app, path, None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&response), "/dashboard/login", "{path}");
    }
    for path in [
        format!("/dashboard/guilds/{GUILD}/syncs/retry"),
        "/dashboard/backups".to_owned(),
    ] {
        let response = post(&app, &path, &[("all", "1")], None).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }

    // A server's session: not another server, not the operator's backups.
    let cookie = owner_session(&app, &discord).await;
    let page = text(&app, &pages[0], &cookie).await;
    let csrf = csrf_of(&page);
    for page in ["syncs", "deliveries", "plugins"] {
        let path = format!("/dashboard/guilds/{OTHER_GUILD}/{page}");
        let response = get(&app, &path, Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let other = post(
        &app,
        &format!("/dashboard/guilds/{OTHER_GUILD}/syncs/retry"),
        &[("csrf", &csrf), ("all", "1")],
        Some(&cookie),
    )
    .await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    for path in &pages[4..] {
        let response = get(&app, path, Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let body = response.text().await.expect("body");
        assert!(body.contains("only the operator"), "{body}");
    }
    let take = post(
        &app,
        "/dashboard/backups",
        &[("csrf", &csrf)],
        Some(&cookie),
    )
    .await;
    assert_eq!(take.status(), StatusCode::FORBIDDEN);
    // The guild's own retry without its token, or with another's.
    let retry = format!("/dashboard/guilds/{GUILD}/syncs/retry");
    for form in [vec![("all", "1")], vec![("all", "1"), ("csrf", "0000")]] {
        let response = post(&app, &retry, &form, Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    // A cross-site form is refused even with the token.
    let cross = client()
        .post(app.url(&retry))
        .header(COOKIE, &cookie)
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("all", "1")])
        .send()
        .await
        .expect("send");
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    // With its token, the guild's own retry goes through (nothing to retry here).
    let fine = post(
        &app,
        &retry,
        &[("csrf", &csrf), ("all", "1")],
        Some(&cookie),
    )
    .await;
    assert_eq!(fine.status(), StatusCode::SEE_OTHER);
    // Wrong methods.
    let wrong = client()
        .get(app.url(&retry))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    app.stop().await;
}

/// Chromium and playwright-core for the browser test, or why they are missing.
fn browser_setup() -> Result<(std::path::PathBuf, std::path::PathBuf), String> {
    let chromium = std::env::var_os("CHROMIUM_BIN")
        .map_or_else(|| "/usr/bin/chromium".into(), std::path::PathBuf::from);
    if !chromium.exists() {
        return Err(format!(
            "no browser at {} (apt-get install chromium, or set CHROMIUM_BIN)",
            chromium.display()
        ));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        return Err("playwright-core is not installed (npm ci --prefix tests/browser)".into());
    }
    Ok((chromium, dir))
}

/// Every operations page in a real browser on a phone-sized screen (`tests/browser/ops.mjs`),
/// screenshots in `target/screenshots/dashboard/`: a failed sync retried by keyboard alone
/// reaches the fake Discord, and the operator takes a backup. Skipped (and said so) where
/// chromium or playwright-core is missing, except under CI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_pages_work_in_a_real_browser_on_a_phone() {
    let (chromium, dir) = match browser_setup() {
        Ok(found) => found,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("the browser test must run in CI: {why}")
        }
        Err(why) => {
            eprintln!("skipping the operations browser test: {why}");
            return;
        }
    };
    let discord = fake_discord().await;
    let (name, hash) = admin_env();
    // Plain http on loopback, as the browser reaches it (the cookie is not Secure then).
    let app = start_app(
        &discord,
        &[
            (name, &hash),
            ("DOCOBO_SERVER__PUBLIC_URL", "http://127.0.0.1"),
            ("DOCOBO_SUBSCRIPTIONS__SWEEP_INTERVAL_SECS", "86400"),
        ],
    )
    .await;
    let webhook = polar_shop(&app, "production").await;
    discord.inject_fault(FaultRule::new(
        "PUT",
        "/guilds/*/members/*/roles/*",
        Fault::error(403, 50013, "Missing Permissions"),
    ));
    buy(&app, &webhook, "evt_ops_browser_1").await;
    wait_for_subscription(&app, |s| s.last_sync_error.is_some()).await;
    discord.clear_faults();
    let link = login_link(&discord, OWNER, "http://127.0.0.1").await;
    let login = post(&app, "/dashboard/login", &[("link", &link)], None).await;
    let owner = cookie_of(&login);
    let operator = operator_session(&app).await;
    let value = |c: &str| c.trim_start_matches("docobo_session=").to_owned();

    let shots =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/dashboard");
    let args = [
        app.url(""),
        GUILD.to_string(),
        value(&owner),
        value(&operator),
        shots.display().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(dir.join("ops.mjs"))
            .args(args)
            .env("CHROMIUM_BIN", chromium)
            .output()
    })
    .await
    .expect("join")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_browser_saw(&seen);
    assert_eq!(
        role_puts(&discord, BUYER, SUPPORTER),
        1,
        "the retry's grant"
    );
    for shot in [
        "syncs",
        "syncs-retried",
        "deliveries",
        "plugins",
        "health",
        "backups",
        "backups-taken",
    ] {
        let file = shots.join(format!("{shot}.png"));
        assert!(
            std::fs::metadata(&file).is_ok_and(|m| m.len() > 1000),
            "{}",
            file.display()
        );
    }
    app.stop().await;
}

fn assert_browser_saw(seen: &serde_json::Value) {
    assert_eq!(seen["consoleErrors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["retryFocused"], "Retry", "Tab reaches Retry: {seen}");
    let pages = seen["pages"].as_object().expect("pages");
    for (name, page) in pages {
        assert_eq!(
            page["horizontalOverflow"], false,
            "{name} fits a phone: {page}"
        );
    }
    let text = |name: &str| pages[name]["text"].as_str().unwrap_or_default().to_owned();
    assert!(
        text("syncs").contains("Missing") || text("syncs").contains("Manage Roles"),
        "{seen}"
    );
    assert!(
        text("syncs-retried").contains("✔ Retried: the role sync succeeded."),
        "{seen}"
    );
    assert!(text("deliveries").contains("✔ applied"), "{seen}");
    assert!(text("plugins").contains("✔ loaded"), "{seen}");
    assert!(text("health").contains("✔ Healthy"), "{seen}");
    assert_eq!(pages["backups-refused"]["status"], 403, "{seen}");
    assert!(
        text("backups-taken").contains("✔ Backup taken: docobo-"),
        "{seen}"
    );
    assert_eq!(pages["health-operator"]["heading"], "Health", "{seen}");
}
