//! A member's page and the admin actions on the web, over real HTTP: the same actions from
//! `/admin` at the fake Discord and from the dashboard give the same rows, role changes and
//! audit records; export on the web is `/admin export`'s file, and importing it restores
//! what forget deleted; and every refusal (no session, another server, no CSRF token, a bad
//! id, bad days).

use docobo::clock::Clock;
use docobo::domain::{Billing, GuildId, RoleId};
use docobo_testkit::FakeDiscord;
use docobo_testkit::app::TestApp;
use docobo_testkit::discord::SlashCommand;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::bot::{
    BUYER, DAY_MS, GUILD, LOG_CHANNEL, MEMBER, OWNER, PRODUCT, PUBLIC_URL, SUPPORTER, WAIT, buy,
    fake_discord, now_ms, polar_api, role_puts, start_app, start_app_at, wait_for_message,
};
use crate::dashboard::login_link;
use crate::fake_api::FakeApi;

const OTHER_GUILD: u64 = 2_000;
const BOUNDARY: &str = "docobo-test-boundary-7f3a";

fn guild() -> GuildId {
    GuildId::new(GUILD).expect("guild")
}

/// A Polar shop (its API the fake `api`) with a log channel, selling Supporter. Returns the
/// webhook path.
async fn shop(app: &TestApp, api: &FakeApi) -> String {
    let path = crate::admin::connect_polar(app, api).await;
    app.add_paid_role(
        guild(),
        RoleId::new(SUPPORTER).expect("role"),
        (500, "USD"),
        Billing::Monthly,
        Some(PRODUCT),
    )
    .await;
    path
}

/// A dashboard session in the browser's place: its cookie and CSRF token.
struct Web<'a> {
    app: &'a TestApp,
    cookie: String,
    csrf: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a CSRF field") + marker.len();
    page[start..].chars().take_while(|c| *c != '"').collect()
}

impl<'a> Web<'a> {
    /// Logs in with `form` (a link or the admin token) and reads the CSRF token.
    async fn login(app: &'a TestApp, form: &[(&str, &str)]) -> Self {
        let login = client()
            .post(app.url("/dashboard/login"))
            .form(form)
            .send()
            .await
            .expect("send");
        assert_eq!(login.status(), StatusCode::SEE_OTHER);
        let cookie = login
            .headers()
            .get(SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_owned();
        let mut web = Self {
            app,
            cookie,
            csrf: String::new(),
        };
        let page = web.get(&format!("/dashboard/guilds/{GUILD}")).await;
        web.csrf = csrf_of(&page.text().await.expect("body"));
        web
    }

    /// The owner's session, from the link `/dashboard` gives them.
    async fn owner(app: &'a TestApp, discord: &FakeDiscord) -> Self {
        let link = login_link(discord, OWNER, PUBLIC_URL).await;
        Self::login(app, &[("link", &link)]).await
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        client()
            .get(self.app.url(path))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .expect("send")
    }

    async fn text(&self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        page.text().await.expect("body")
    }

    /// POSTs `form` with the session's CSRF token.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut form = form.to_vec();
        form.push(("csrf", &self.csrf));
        self.post_raw(path, &form).await
    }

    async fn post_raw(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        client()
            .post(self.app.url(path))
            .header(COOKIE, &self.cookie)
            .form(form)
            .send()
            .await
            .expect("send")
    }

    /// An action on `user`'s page: 303 back to it; returns the page it shows then.
    async fn act(&self, user: u64, action: &str, form: &[(&str, &str)]) -> String {
        let response = self.post(&member(user, action), form).await;
        let status = response.status();
        let to = location(&response);
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "{action}: {}",
            response.text().await.unwrap_or_default()
        );
        assert_eq!(to, member(user, ""));
        self.text(&to).await
    }

    /// Uploads `file` to the import form (multipart), with `csrf` if given.
    async fn import(&self, file: &[u8], csrf: Option<&str>) -> reqwest::Response {
        let mut body = Vec::new();
        if let Some(csrf) = csrf {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"docobo-export.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        client()
            .post(self.app.url(&format!("/dashboard/guilds/{GUILD}/import")))
            .header(COOKIE, &self.cookie)
            .header(
                CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
            .await
            .expect("send")
    }
}

impl Web<'_> {
    /// Sends only the head of an import whose body would be `len` bytes, and returns the
    /// server's whole answer as text.
    async fn declare_upload(&self, len: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.app.addr)
            .await
            .expect("connect");
        let head = format!(
            "POST /dashboard/guilds/{GUILD}/import HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
            self.app.addr, self.cookie
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
            .await
            .expect("the server answers without the body")
            .expect("read");
        String::from_utf8_lossy(&answer).into_owned()
    }
}

/// `/dashboard/guilds/GUILD/members/{user}[/{action}]`.
fn member(user: u64, action: &str) -> String {
    let page = format!("/dashboard/guilds/{GUILD}/members/{user}");
    if action.is_empty() {
        page
    } else {
        format!("{page}/{action}")
    }
}

/// `user` runs `/admin <sub>` with `options`; returns the visible answer.
async fn slash_admin(
    discord: &FakeDiscord,
    sub: &str,
    options: &[(&str, Value)],
) -> docobo_testkit::discord::Reply {
    let mut command = SlashCommand::new(GUILD, OWNER, "admin").subcommand(sub);
    for (name, value) in options {
        command = command.option(name, value.clone());
    }
    let reply = discord
        .run_slash_command(&command, WAIT)
        .await
        .expect("/admin answers");
    assert!(reply.is_ephemeral(), "{reply:?}");
    reply
}

/// What a member's subscriptions are, without who they are: (provider, status, end,
/// cancel at period end), oldest first.
pub(crate) async fn subscriptions_of(
    app: &TestApp,
    user: u64,
) -> Vec<(String, String, Option<i64>, bool)> {
    app.db
        .call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT provider, status, period_end, cancel_at_period_end FROM subscriptions
                 WHERE user_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([user as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .expect("subscriptions")
}

/// The audit records about a member, without who acted, through which edge, when, or whom
/// (the member's mention in the detail is replaced): (type, event, detail), oldest first.
async fn audit_of(app: &TestApp, user: u64) -> Vec<(String, String, String)> {
    app.db
        .call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT event_type,
                        json_remove(event, '$.actor_id', '$.via', '$.user_id', '$.occurred_at'),
                        detail
                 FROM webhook_events
                 WHERE provider = 'admin' AND json_extract(event, '$.user_id') = ?1
                 ORDER BY id",
            )?;
            let rows = stmt.query_map([user.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?))
            })?;
            Ok(rows
                .map(|r| r.map(|(t, e, d)| (t, e, d.replace(&format!("<@{user}>"), "<@M>"))))
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .expect("audit")
}

/// (actor, edge) of every admin record, oldest first.
async fn actors(app: &TestApp) -> Vec<(String, String, String)> {
    app.db
        .call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT event_type, json_extract(event, '$.actor_id'), json_extract(event, '$.via')
                 FROM webhook_events WHERE provider = 'admin' ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .expect("actors")
}

/// MEMBER (through `/admin`) and BUYER (through the web) are in the same state, and the
/// records say the same, apart from who they are and who acted.
async fn assert_same(app: &TestApp, step: &str) {
    let (discord_side, web_side) = (
        subscriptions_of(app, MEMBER).await,
        subscriptions_of(app, BUYER).await,
    );
    assert!(!discord_side.is_empty(), "{step}");
    assert_eq!(discord_side, web_side, "{step}: subscriptions");
    assert_eq!(
        audit_of(app, MEMBER).await,
        audit_of(app, BUYER).await,
        "{step}: audit records"
    );
}

#[allow(clippy::too_many_lines, reason = "one end-to-end story, step by step")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_from_slash_admin_and_from_the_web_gives_the_same_result() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    let token = "docobo_admin_member_token_0123456789";
    let hash = docobo::web::auth::hash_token(token);
    // One fixed clock: both edges compute the same end dates.
    let t0 = now_ms();
    let settings = [("DOCOBO_DASHBOARD__ADMIN_TOKEN_HASH", hash.as_str())];
    let app = start_app_at(&discord, &settings, Clock::fixed(t0)).await;
    shop(&app, &api).await;
    let web = Web::owner(&app, &discord).await;

    // Grant for 7 days: MEMBER from Discord, BUYER from the web.
    let supporter = SUPPORTER.to_string();
    slash_admin(
        &discord,
        "grant",
        &[
            ("member", json!(MEMBER.to_string())),
            ("tier", json!(supporter)),
            ("days", json!(7)),
        ],
    )
    .await;
    let page = web
        .act(BUYER, "grant", &[("tier", &supporter), ("days", "7")])
        .await;
    assert!(page.contains("Done:") && page.contains("Granted"), "{page}");
    for user in [MEMBER, BUYER] {
        discord
            .wait_for_member_role(GUILD, user, SUPPORTER, true, WAIT)
            .await
            .expect("role PUT");
        assert_eq!(role_puts(&discord, user, SUPPORTER), 1, "{user}");
    }
    assert_same(&app, "grant").await;
    assert_eq!(
        subscriptions_of(&app, BUYER).await[0].2,
        Some(t0 + 7 * DAY_MS)
    );
    // Both logged as the owner's doing.
    for user in [MEMBER, BUYER] {
        let line = format!("<@{OWNER}> granted <@{user}> complimentary <@&{SUPPORTER}>");
        wait_for_message(&discord, LOG_CHANNEL, &line).await;
    }
    // The page shows the role given and the history, newest first; the notice shows once.
    let page = wait_for_page(&web, &member(BUYER, ""), "in sync: given").await;
    assert!(page.contains("admin.grant"), "{page}");
    assert!(!page.contains("Done:"), "the notice showed once: {page}");

    // Extend by 3 days, then revoke with a reason.
    slash_admin(
        &discord,
        "extend",
        &[("member", json!(MEMBER.to_string())), ("days", json!(3))],
    )
    .await;
    let page = web.act(BUYER, "extend", &[("days", "3")]).await;
    assert!(page.contains("Extended"), "{page}");
    assert_same(&app, "extend").await;
    assert_eq!(
        subscriptions_of(&app, BUYER).await[0].2,
        Some(t0 + 10 * DAY_MS)
    );
    slash_admin(
        &discord,
        "revoke",
        &[
            ("member", json!(MEMBER.to_string())),
            ("reason", json!("left the team")),
        ],
    )
    .await;
    let page = web
        .act(BUYER, "revoke", &[("reason", "left the team")])
        .await;
    assert!(page.contains("Revoked"), "{page}");
    for user in [MEMBER, BUYER] {
        discord
            .wait_for_member_role(GUILD, user, SUPPORTER, false, WAIT)
            .await
            .expect("role DELETE");
    }
    assert_same(&app, "revoke").await;
    let page = web.text(&member(BUYER, "")).await;
    assert!(page.contains("revoked"), "{page}");

    // Each record says who acted and through which edge.
    let owner = OWNER.to_string();
    let expected: Vec<(String, String, String)> = ["grant", "extend", "revoke"]
        .iter()
        .flat_map(|a| {
            [
                (format!("admin.{a}"), owner.clone(), "discord".to_owned()),
                (format!("admin.{a}"), owner.clone(), "web".to_owned()),
            ]
        })
        .collect();
    assert_eq!(actors(&app).await, expected);

    // The operator acts as "operator".
    let operator = Web::login(&app, &[("token", token)]).await;
    let page = operator
        .act(
            MEMBER,
            "grant",
            &[("tier", &supporter), ("lifetime", "yes")],
        )
        .await;
    assert!(page.contains("for good"), "{page}");
    let last = actors(&app).await.pop().expect("a record");
    assert_eq!(
        last,
        ("admin.grant".into(), "operator".into(), "web".into())
    );
    wait_for_message(
        &discord,
        LOG_CHANNEL,
        &format!("The operator granted <@{MEMBER}>"),
    )
    .await;
}

/// Reloads `path` until it contains `needle` (role sync records its result a moment after
/// Discord answers).
async fn wait_for_page(web: &Web<'_>, path: &str, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = web.text(path).await;
        if page.contains(needle) {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {needle:?} in {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The export's lines as JSON, the header's time left out.
fn lines(file: &[u8]) -> Vec<Value> {
    String::from_utf8(file.to_vec())
        .expect("utf-8")
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("a JSON line");
            if let Some(header) = v.as_object_mut() {
                header.remove("exported_at");
            }
            v
        })
        .collect()
}

/// Subscriptions as comparable text (who, what, until when).
async fn snapshot(app: &TestApp) -> String {
    app.db
        .call(|conn| {
            Ok(conn
                .query_row(
                    "SELECT group_concat(user_id || ':' || provider || ':' || status || ':' ||
                        coalesce(period_end, 0), '|')
                 FROM (SELECT * FROM subscriptions ORDER BY user_id, provider)",
                    [],
                    |r| r.get::<_, Option<String>>(0),
                )?
                .unwrap_or_default())
        })
        .await
        .expect("snapshot")
}

#[allow(clippy::too_many_lines, reason = "one end-to-end story, step by step")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_on_the_web_is_slash_admin_s_and_importing_it_restores_what_forget_deleted() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    let app = start_app(&discord, &[]).await;
    let path = shop(&app, &api).await;
    buy(&app, &path, "msg_web_export_buy").await;
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("bought");
    let web = Web::owner(&app, &discord).await;
    let supporter = SUPPORTER.to_string();
    web.act(MEMBER, "grant", &[("tier", &supporter), ("days", "10")])
        .await;

    // The same file from both edges.
    let reply = slash_admin(&discord, "export", &[]).await;
    let from_discord = discord
        .attachment_bytes(&reply.body["attachments"][0])
        .expect("file sent");
    let download = web.get(&format!("/dashboard/guilds/{GUILD}/export")).await;
    assert_eq!(download.status(), StatusCode::OK);
    let disposition = download
        .headers()
        .get(CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(
        disposition,
        format!("attachment; filename=\"docobo-export-{GUILD}.jsonl\"")
    );
    let from_web = download.bytes().await.expect("body").to_vec();
    assert_eq!(lines(&from_web), lines(&from_discord));
    assert_eq!(lines(&from_web).len(), 4, "header, tier, two entitlements");
    wait_for_message(&discord, LOG_CHANNEL, &format!("<@{OWNER}> exported")).await;
    let before = snapshot(&app).await;

    // Forget asks first: the first POST deletes nothing and leads to the confirmation.
    let unconfirmed = web.post(&member(BUYER, "forget"), &[]).await;
    assert_eq!(unconfirmed.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&unconfirmed), member(BUYER, "forget"));
    assert_eq!(snapshot(&app).await, before);
    let confirm = web.text(&member(BUYER, "forget")).await;
    assert!(
        confirm.contains("Yes, delete their personal data"),
        "{confirm}"
    );
    for user in [BUYER, MEMBER] {
        let page = web.act(user, "forget", &[("confirm", "yes")]).await;
        assert!(page.contains("Deleted"), "{page}");
        discord
            .wait_for_member_role(GUILD, user, SUPPORTER, false, WAIT)
            .await
            .expect("role removed");
    }
    assert_eq!(app.count("SELECT count(*) FROM subscriptions").await, 0);

    // Importing the web's file brings both back, roles too; twice changes nothing.
    let imported = web.import(&from_web, Some(&web.csrf)).await;
    assert_eq!(imported.status(), StatusCode::OK);
    let report = imported.text().await.expect("body");
    assert!(
        report.contains("2 new, 0 lengthened, 0 unchanged, 0 skipped; 0 tier(s) added"),
        "{report}"
    );
    assert_eq!(snapshot(&app).await, before);
    for user in [BUYER, MEMBER] {
        discord
            .wait_for_member_role(GUILD, user, SUPPORTER, true, WAIT)
            .await
            .expect("role back");
    }
    wait_for_message(&discord, LOG_CHANNEL, &format!("<@{OWNER}> imported")).await;
    let again = web.import(&from_web, Some(&web.csrf)).await;
    let report = again.text().await.expect("body");
    assert!(
        report.contains("0 new, 0 lengthened, 2 unchanged"),
        "{report}"
    );

    // A revoke is the owner's word: importing does not undo it.
    web.act(MEMBER, "revoke", &[]).await;
    let revoked = snapshot(&app).await;
    let report = web
        .import(&from_web, Some(&web.csrf))
        .await
        .text()
        .await
        .expect("body");
    assert!(report.contains("2 unchanged"), "{report}");
    assert_eq!(snapshot(&app).await, revoked);

    // The provider's own list, through the button (the fake Polar lists nobody).
    let page = web.text(&format!("/dashboard/guilds/{GUILD}/import")).await;
    assert!(page.contains("Import polar"), "{page}");
    let listed = web
        .post(
            &format!("/dashboard/guilds/{GUILD}/import"),
            &[("source", "provider")],
        )
        .await;
    assert_eq!(listed.status(), StatusCode::OK);
    let report = listed.text().await.expect("body");
    assert!(
        report.contains("Imported from the provider: 0 new"),
        "{report}"
    );
    assert!(
        api.requests()
            .iter()
            .any(|r| r.path == "/v1/subscriptions/")
    );

    // Not a Docobo file: 400 with the reason, nothing imported.
    let bad = web.import(b"{\"hello\":1}\n", Some(&web.csrf)).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.expect("body").contains("line 1"));
    assert_eq!(snapshot(&app).await, revoked);
}

#[allow(clippy::too_many_lines, reason = "one end-to-end story, step by step")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_pages_and_actions_are_refused_without_a_session_a_token_or_good_input() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    let app = start_app(&discord, &[]).await;
    shop(&app, &api).await;
    let web = Web::owner(&app, &discord).await;
    let supporter = SUPPORTER.to_string();
    let grant = [("tier", supporter.as_str()), ("days", "7")];
    let export = format!("/dashboard/guilds/{GUILD}/export");
    let import = format!("/dashboard/guilds/{GUILD}/import");

    // No session: pages send to the login page, actions are refused.
    let nobody = Web {
        app: &app,
        cookie: "docobo_session=none".into(),
        csrf: web.csrf.clone(),
    };
    for path in [member(MEMBER, ""), member(MEMBER, "forget"), export.clone()] {
        let page = nobody.get(&path).await;
        assert_eq!(page.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&page), "/dashboard/login");
    }
    for path in [
        member(MEMBER, "grant"),
        member(MEMBER, "forget"),
        import.clone(),
    ] {
        let refused = nobody.post(&path, &grant).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{path}");
    }

    // Another server: refused to this session, page and action alike.
    let other = |path: &str| path.replacen(&GUILD.to_string(), &OTHER_GUILD.to_string(), 1);
    for path in [member(MEMBER, ""), export.clone(), import.clone()] {
        assert_eq!(
            web.get(&other(&path)).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    for path in [member(MEMBER, "grant"), import.clone()] {
        let refused = web.post(&other(&path), &grant).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{path}");
    }

    // Without the CSRF token, with a wrong one, or from another site.
    let missing = web.post_raw(&member(MEMBER, "grant"), &grant).await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert!(
        missing
            .text()
            .await
            .expect("body")
            .contains("security token")
    );
    let mut wrong = grant.to_vec();
    wrong.push(("csrf", "0000"));
    let wrong = web.post_raw(&member(MEMBER, "grant"), &wrong).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let mut with_token = grant.to_vec();
    with_token.push(("csrf", &web.csrf));
    let cross_site = client()
        .post(app.url(&member(MEMBER, "grant")))
        .header(COOKIE, &web.cookie)
        .header("origin", "https://evil.example")
        .form(&with_token)
        .send()
        .await
        .expect("send");
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    let upload = web.import(b"{}", None).await;
    assert_eq!(upload.status(), StatusCode::FORBIDDEN);

    // Not a Discord user id: 404, page and action.
    for user in ["abc", "0", "04002", "18446744073709551616"] {
        let path = format!("/dashboard/guilds/{GUILD}/members/{user}");
        assert_eq!(
            web.get(&path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
        let action = web.post(&format!("{path}/grant"), &grant).await;
        assert_eq!(action.status(), StatusCode::NOT_FOUND, "{path}");
    }

    // Bad days: 400, saying what to fix.
    for (action, form, says) in [
        (
            "grant",
            vec![("tier", supporter.as_str()), ("days", "0")],
            "1 to 3650",
        ),
        (
            "grant",
            vec![("tier", supporter.as_str()), ("days", "3651")],
            "1 to 3650",
        ),
        (
            "grant",
            vec![("tier", supporter.as_str()), ("days", "a week")],
            "1 to 3650",
        ),
        ("grant", vec![("tier", supporter.as_str())], "tick Lifetime"),
        ("grant", vec![("days", "7")], "Pick the paid role"),
        ("extend", vec![], "number of days"),
        ("extend", vec![("days", "-1")], "1 to 3650"),
    ] {
        let response = web.post(&member(MEMBER, action), &form).await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{action} {form:?}"
        );
        let page = response.text().await.expect("body");
        assert!(page.contains(says), "{action} {form:?}: {page}");
    }
    // Nothing happened.
    assert_eq!(app.count("SELECT count(*) FROM subscriptions").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM webhook_events").await, 0);

    // The service's own refusal is a result, shown on the page.
    let page = web.act(MEMBER, "extend", &[("days", "3")]).await;
    assert!(
        page.contains("Not done:") && page.contains("no complimentary access"),
        "{page}"
    );
    // A file over the limit: 413 before any of the body is read. The request only declares
    // its size (a client that wrote all 9 MiB could meet the closed connection mid-write).
    let too_big = web.declare_upload(9 << 20).await;
    assert!(too_big.starts_with("HTTP/1.1 413"), "{too_big}");
    assert!(too_big.contains("8 MiB"), "{too_big}");

    // The members list links each row to the member's page.
    web.act(MEMBER, "grant", &grant).await;
    let list = web
        .text(&format!("/dashboard/guilds/{GUILD}/members"))
        .await;
    assert!(
        list.contains(&format!("href=\"{}\"", member(MEMBER, ""))),
        "{list}"
    );
}
