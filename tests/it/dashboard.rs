//! The web dashboard over real HTTP: the login link from `/dashboard` at the fake Discord,
//! the operator's admin token, sessions, CSRF, and every refusal.

use docobo::clock::Clock;
use docobo::domain::{Billing, GuildId, RoleId};
use docobo_testkit::app::TestApp;
use docobo_testkit::discord::SlashCommand;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};

use crate::bot::{
    GUILD, MEMBER, OWNER, POLAR_SECRET, PRODUCT, PUBLIC_URL, SUPPORTER, WAIT, buy, fake_discord,
    now_ms, start_app, start_app_at,
};

const OTHER_GUILD: u64 = 2_000;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A Polar shop selling Supporter in `environment`; returns the webhook path.
pub(crate) async fn polar_shop(app: &TestApp, environment: &str) -> String {
    let guild = GuildId::new(GUILD).expect("guild");
    let key = app
        .add_guild(
            guild,
            "polar",
            &[
                ("access_token", "polar_oat_dashboard"),
                ("webhook_secret", POLAR_SECRET),
                ("environment", environment),
            ],
        )
        .await;
    app.add_paid_role(
        guild,
        RoleId::new(SUPPORTER).expect("role"),
        (499, "USD"),
        Billing::Monthly,
        Some(PRODUCT),
    )
    .await;
    format!("/webhooks/polar/{key}")
}

/// The token in the link `/dashboard` replied with to `user`.
pub(crate) async fn login_link(
    discord: &docobo_testkit::discord::FakeDiscord,
    user: u64,
    public_url: &str,
) -> String {
    let reply = discord
        .run_slash_command(&SlashCommand::new(GUILD, user, "dashboard"), WAIT)
        .await
        .expect("/dashboard answers");
    assert!(reply.is_ephemeral(), "{reply:?}");
    let content = reply.content().expect("a message");
    let prefix = format!("{public_url}/dashboard/login?link=");
    let start = content
        .find(&prefix)
        .unwrap_or_else(|| panic!("no login link in {content}"))
        + prefix.len();
    content[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect()
}

async fn post_form(
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

async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = client().get(app.url(path));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.expect("send")
}

fn location(response: &reqwest::Response) -> &str {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `docobo_session=…` from a login's `Set-Cookie`, after checking its attributes.
fn session_cookie(response: &reqwest::Response, secure: bool) -> String {
    let set = response
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(set.contains(attribute), "{attribute} missing: {set}");
    }
    assert_eq!(set.contains("Secure"), secure, "{set}");
    set.split(';').next().expect("name=value").to_owned()
}

fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a CSRF field") + marker.len();
    page[start..].chars().take_while(|c| *c != '"').collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_logs_in_with_the_link_from_slash_dashboard_and_sees_only_their_server() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;
    let webhook = polar_shop(&app, "production").await;
    buy(&app, &webhook, "evt_dashboard_1").await;
    let link = login_link(&discord, OWNER, PUBLIC_URL).await;

    // The link's page asks to continue and does not spend it (chat apps fetch links to
    // preview them).
    for _ in 0..2 {
        let page = get(&app, &format!("/dashboard/login?link={link}"), None).await;
        assert_eq!(page.status(), StatusCode::OK);
        let body = page.text().await.expect("body");
        assert!(body.contains("Continue"), "{body}");
    }
    let login = post_form(&app, "/dashboard/login", &[("link", &link)], None).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&login), format!("/dashboard/guilds/{GUILD}"));
    // The public URL is https, so the cookie is Secure.
    let cookie = session_cookie(&login, true);

    let overview = get(&app, &format!("/dashboard/guilds/{GUILD}"), Some(&cookie)).await;
    assert_eq!(overview.status(), StatusCode::OK);
    let csp = overview
        .headers()
        .get(CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let body = overview.text().await.expect("body");
    assert!(body.contains("4.99 USD / month"), "{body}");
    assert!(
        body.contains(r#"Members with access: <strong id="active-count">1</strong>"#),
        "{body}"
    );

    // Another server, the operator's list: not for this session.
    let other = get(
        &app,
        &format!("/dashboard/guilds/{OTHER_GUILD}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    let home = get(&app, "/dashboard", Some(&cookie)).await;
    assert_eq!(location(&home), format!("/dashboard/guilds/{GUILD}"));

    // The link works once.
    let again = post_form(&app, "/dashboard/login", &[("link", &link)], None).await;
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    assert!(again.text().await.expect("body").contains("already used"));

    // Logging out needs the form's CSRF token, then ends the session.
    let refused = post_form(&app, "/dashboard/logout", &[], Some(&cookie)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let wrong = post_form(
        &app,
        "/dashboard/logout",
        &[("csrf", "0000")],
        Some(&cookie),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let still = get(&app, &format!("/dashboard/guilds/{GUILD}"), Some(&cookie)).await;
    assert_eq!(
        still.status(),
        StatusCode::OK,
        "a refused logout keeps the session"
    );
    let csrf = csrf_of(&still.text().await.expect("body"));
    let out = post_form(&app, "/dashboard/logout", &[("csrf", &csrf)], Some(&cookie)).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = get(&app, &format!("/dashboard/guilds/{GUILD}"), Some(&cookie)).await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&after), "/dashboard/login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_logins_are_refused_without_a_valid_session_or_link() {
    let discord = fake_discord().await;
    let clock = Clock::fixed(now_ms());
    let app = start_app_at(&discord, &[], clock).await;
    polar_shop(&app, "production").await;

    // No session: pages send to the login page, and show nothing.
    for path in ["/dashboard", &format!("/dashboard/guilds/{GUILD}")] {
        let response = get(&app, path, None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&response), "/dashboard/login");
    }
    let forged = get(&app, "/dashboard/guilds/1", Some("docobo_session=ffff")).await;
    assert_eq!(location(&forged), "/dashboard/login");

    // A member without Manage Server gets no link.
    let reply = discord
        .run_slash_command(&SlashCommand::new(GUILD, MEMBER, "dashboard"), WAIT)
        .await
        .expect("/dashboard answers");
    let text = reply.content().unwrap_or_default().to_owned();
    assert!(
        text.contains("Manage Server") && !text.contains("link="),
        "{text}"
    );

    // A link edited to another guild, and one past its ten minutes.
    let link = login_link(&discord, OWNER, PUBLIC_URL).await;
    let edited = link.replacen(&format!(".{GUILD}."), &format!(".{OTHER_GUILD}."), 1);
    assert_ne!(edited, link);
    let response = post_form(&app, "/dashboard/login", &[("link", &edited)], None).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get(SET_COOKIE).is_none());
    let from_elsewhere = client()
        .post(app.url("/dashboard/login"))
        .header("origin", "https://evil.example")
        .form(&[("link", &link)])
        .send()
        .await
        .expect("send");
    assert_eq!(
        from_elsewhere.status(),
        StatusCode::FORBIDDEN,
        "cross-site login"
    );
    app.advance(10 * 60 * 1000);
    let expired = post_form(&app, "/dashboard/login", &[("link", &link)], None).await;
    assert_eq!(expired.status(), StatusCode::FORBIDDEN);
    assert!(expired.text().await.expect("body").contains("expired"));

    // Without an admin token hash configured, the operator login is off.
    let operator = post_form(
        &app,
        "/dashboard/login",
        &[("token", "anything-at-all")],
        None,
    )
    .await;
    assert_eq!(operator.status(), StatusCode::FORBIDDEN);
    assert!(operator.text().await.expect("body").contains("hash-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_logs_in_with_the_admin_token_and_sees_every_server() {
    let token = "docobo_admin_test_token_0123456789abcdef";
    let hash = docobo::web::auth::hash_token(token);
    let discord = fake_discord().await;
    let app = start_app(&discord, &[("DOCOBO_DASHBOARD__ADMIN_TOKEN_HASH", &hash)]).await;
    // A sandbox purchase is a test purchase: it grants the role but is not counted.
    let webhook = polar_shop(&app, "sandbox").await;
    buy(&app, &webhook, "evt_dashboard_sandbox").await;

    let wrong = post_form(
        &app,
        "/dashboard/login",
        &[("token", "docobo_admin_wrong")],
        None,
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert!(wrong.headers().get(SET_COOKIE).is_none());

    let login = post_form(&app, "/dashboard/login", &[("token", token)], None).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&login), "/dashboard");
    let cookie = session_cookie(&login, true);
    let list = get(&app, "/dashboard", Some(&cookie)).await;
    assert_eq!(list.status(), StatusCode::OK);
    let body = list.text().await.expect("body");
    assert!(
        body.contains(&format!("/dashboard/guilds/{GUILD}")),
        "{body}"
    );
    assert!(body.contains("<td class=\"num\">0</td>"), "{body}");
    let overview = get(&app, &format!("/dashboard/guilds/{GUILD}"), Some(&cookie)).await;
    assert_eq!(overview.status(), StatusCode::OK);
    let body = overview.text().await.expect("body");
    assert!(
        body.contains(r#"Members with access: <strong id="active-count">0</strong>"#),
        "{body}"
    );
}

/// `n` subscriptions to `paid_role` in `guild` for users from 10 000, every third one
/// canceled (to the end of a paid period the sweep does not reach, so it stays canceled), members named `fan{i}`; plus `tests` test purchases.
pub(crate) async fn seed_subscriptions(
    app: &TestApp,
    guild: u64,
    paid_role: i64,
    n: u64,
    tests: u64,
) {
    use docobo::db::{members, subscriptions};
    use docobo::domain::{ProviderId, Scope, SubscriptionState, SubscriptionStatus, UserId};
    let guild = GuildId::new(guild).expect("guild");
    let now = now_ms();
    app.db
        .call(move |conn| {
            for i in 0..n + tests {
                let user = UserId::new(10_000 + i).expect("user");
                members::upsert(conn, guild, user, Some(&format!("fan{i}")))?;
                let (status, period_end) = if i % 3 == 2 {
                    (SubscriptionStatus::Canceled, now + 86_400_000)
                } else {
                    (SubscriptionStatus::Active, now + 86_400_000)
                };
                let sub = subscriptions::insert(
                    conn,
                    &subscriptions::NewSubscription {
                        guild_id: guild,
                        user_id: user,
                        paid_role_id: paid_role,
                        provider: ProviderId::parse("polar").expect("provider"),
                        scope: Scope::Guild(guild),
                        external_id: Some(format!("sub_seed_{i}")),
                        state: SubscriptionState {
                            status,
                            period_end: Some(period_end),
                            last_event_at: Some(now),
                        },
                        payment_code: None,
                    },
                )?;
                if i >= n {
                    subscriptions::set_test(conn, sub.id)?;
                }
            }
            Ok(())
        })
        .await
        .expect("seed");
}

fn rows_of(page: &str) -> Vec<String> {
    page.split("<tr><td>")
        .skip(1)
        .map(|row| row.split("</td>").next().unwrap_or_default().to_owned())
        .collect()
}

/// The "Older" link's URL.
fn next_of(page: &str) -> Option<String> {
    let older = page.rfind("rel=\"next\"")?;
    let start = page[..older].rfind("href=\"")? + "href=\"".len();
    Some(page[start..].split('"').next()?.replace("&amp;", "&"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_members_list_pages_filters_and_searches_within_the_session_s_server() {
    let token = "docobo_admin_members_token_0123456789";
    let hash = docobo::web::auth::hash_token(token);
    let discord = fake_discord().await;
    let app = start_app(&discord, &[("DOCOBO_DASHBOARD__ADMIN_TOKEN_HASH", &hash)]).await;
    polar_shop(&app, "production").await;
    let paid_role: i64 = app
        .count("SELECT id FROM paid_roles ORDER BY id LIMIT 1")
        .await;
    seed_subscriptions(&app, GUILD, paid_role, 120, 5).await;
    let link = login_link(&discord, OWNER, PUBLIC_URL).await;
    let login = post_form(&app, "/dashboard/login", &[("link", &link)], None).await;
    let cookie = session_cookie(&login, true);
    let list = format!("/dashboard/guilds/{GUILD}/members");

    // Keyset pages of 50, newest first, every subscription once, test purchases left out.
    let mut seen = Vec::new();
    let mut path = list.clone();
    let mut pages = 0;
    loop {
        let page = get(&app, &path, Some(&cookie)).await;
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        let body = page.text().await.expect("body");
        let rows = rows_of(&body);
        assert!(rows.len() <= 50, "{}", rows.len());
        seen.extend(rows);
        pages += 1;
        match next_of(&body) {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 120, "{seen:?}");
    assert!(seen[0].starts_with("fan119 "), "newest first: {}", seen[0]);
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 120);
    for test in 120..125 {
        let name = format!("fan{test} ");
        assert!(
            !seen.iter().any(|r| r.starts_with(&name)),
            "test purchase {name}listed"
        );
    }

    // Filters: status, and search by name prefix or exact user id; wildcards are literal.
    let canceled = get(&app, &format!("{list}?status=canceled"), Some(&cookie)).await;
    let body = canceled.text().await.expect("body");
    assert_eq!(rows_of(&body).len(), 40, "every third of 120");
    assert!(!body.contains("<td>active</td>"));
    let by_name = get(&app, &format!("{list}?q=fan11"), Some(&cookie)).await;
    let rows = rows_of(&by_name.text().await.expect("body"));
    assert_eq!(rows.len(), 11, "fan11 and fan110..fan119: {rows:?}");
    let by_id = get(&app, &format!("{list}?q=10007"), Some(&cookie)).await;
    let rows = rows_of(&by_id.text().await.expect("body"));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].starts_with("fan7 "), "{rows:?}");
    let wildcard = get(&app, &format!("{list}?q=%25"), Some(&cookie)).await;
    assert_eq!(rows_of(&wildcard.text().await.expect("body")).len(), 0);

    // Another server's list is refused to this session; the operator sees it.
    let other = get(
        &app,
        &format!("/dashboard/guilds/{OTHER_GUILD}/members"),
        Some(&cookie),
    )
    .await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    let operator = post_form(&app, "/dashboard/login", &[("token", token)], None).await;
    let operator = session_cookie(&operator, true);
    let page = get(&app, &list, Some(&operator)).await;
    assert_eq!(rows_of(&page.text().await.expect("body")).len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assets_are_served_from_the_binary() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;
    let script = get(&app, "/dashboard/assets/htmx-2.0.11.min.js", None).await;
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(
        script
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/javascript; charset=utf-8")
    );
    assert!(script.text().await.expect("body").contains("htmx"));
    let missing = get(&app, "/dashboard/assets/nope.js", None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let wrong_method = client()
        .delete(app.url("/dashboard"))
        .send()
        .await
        .expect("send");
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// Reads `stream` into `seen` until it holds `needle`.
async fn read_until(stream: &mut reqwest::Response, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in time; the stream said {seen:?}"))
            .expect("the stream reads")
            .unwrap_or_else(|| panic!("the stream ended before {needle:?}: {seen:?}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// A purchase reaches an open overview without a reload: the page's event stream says
/// `changed`, and the summary the page fetches again counts the new member and their
/// payment. The stream is refused without a session or for another server, and a shutdown
/// ends it at once (not at the drain deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_reaches_an_open_overview_through_its_event_stream() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;
    let webhook = polar_shop(&app, "production").await;
    let link = login_link(&discord, OWNER, PUBLIC_URL).await;
    let login = post_form(&app, "/dashboard/login", &[("link", &link)], None).await;
    let cookie = session_cookie(&login, true);
    let events = format!("/dashboard/guilds/{GUILD}/events");
    let summary = format!("/dashboard/guilds/{GUILD}/summary");

    let none = get(&app, &events, None).await;
    assert_eq!(none.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&none), "/dashboard/login");
    let other = get(
        &app,
        &format!("/dashboard/guilds/{OTHER_GUILD}/events"),
        Some(&cookie),
    )
    .await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);

    let page = get(&app, &format!("/dashboard/guilds/{GUILD}"), Some(&cookie))
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains(&format!(r#"data-live="{events}""#)), "{page}");
    assert!(page.contains(&format!(r#"hx-get="{summary}""#)), "{page}");
    let before = get(&app, &summary, Some(&cookie)).await;
    assert_eq!(before.status(), StatusCode::OK);
    let before = before.text().await.expect("body");
    assert!(before.contains(r#"id="active-count">0<"#), "{before}");
    assert!(
        !before.contains("<html"),
        "a fragment, not a page: {before}"
    );

    let mut stream = get(&app, &events, Some(&cookie)).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let kind = stream
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "event: live").await;
    assert!(!seen.contains("changed"), "{seen}");

    buy(&app, &webhook, "evt_live_1").await;
    read_until(&mut stream, &mut seen, "event: changed").await;
    let after = get(&app, &summary, Some(&cookie))
        .await
        .text()
        .await
        .expect("body");
    assert!(after.contains(r#"id="active-count">1<"#), "{after}");
    assert!(
        after.contains("Members with access, per paid role") && after.contains("<rect"),
        "a bar for the new member: {after}"
    );
    assert!(
        after.contains("5.00 USD"),
        "the first period's revenue (the fixture says 500 usd): {after}"
    );

    let started = std::time::Instant::now();
    let stopped = tokio::spawn(app.stop());
    let end = tokio::time::timeout(WAIT, async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(end.is_ok(), "the stream outlived the shutdown");
    let _stopped = stopped.await.expect("stop");
    assert!(
        started.elapsed() < docobo::http::DRAIN_TIMEOUT,
        "shutdown waited for the stream: {:?}",
        started.elapsed()
    );
}
