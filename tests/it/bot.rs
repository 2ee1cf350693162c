//! The Discord bot end to end: the loopback fake Discord (gateway + REST), the real salvo
//! webhook server, the real Polar and SePay components, a fake provider API and a real SQLite
//! file. Nothing inside Docobo is mocked.

use std::sync::Arc;
use std::time::Duration;

use docobo::clock::Clock;
use docobo::db::subscriptions;
use docobo::domain::{Billing, GuildId, RoleId, SubscriptionStatus, UserId};
use docobo_testkit::discord::{
    FakeDiscord, Fault, FaultRule, GuildSpec, MANAGE_ROLES, MemberSpec, Reply, ReplyKind, RoleSpec,
    SlashCommand,
};
use docobo_testkit::webhooks::{PolarKey, SepayTransfer, sepay_request};
use serde_json::{Value, json};

use crate::app::{TestApp, fixtures, test_app};
use crate::fake_api::FakeApi;

pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// The ids in the Polar fixture's metadata.
pub(crate) const GUILD: u64 = 112_233_445_566_778_899;
pub(crate) const BUYER: u64 = 998_877_665_544_332_211;
pub(crate) const OWNER: u64 = 4001;
pub(crate) const MEMBER: u64 = 4002;
pub(crate) const SUPPORTER: u64 = 3000;
pub(crate) const BOT_ROLE: u64 = 3001;
/// Above the bot's role: the bot cannot manage it.
pub(crate) const VIP: u64 = 3005;
pub(crate) const LOG_CHANNEL: u64 = 5000;
pub(crate) const POLAR_SECRET: &str = "polar_whs_e2e_secret";
pub(crate) const PRODUCT: &str = "prod_e2e";
pub(crate) const PUBLIC_URL: &str = "https://docobo.example.org";
pub(crate) const DAY_MS: i64 = 86_400_000;

pub(crate) fn shop() -> GuildSpec {
    GuildSpec::new(GUILD, "Shop")
        .owner(OWNER)
        .channel(LOG_CHANNEL)
        .role(RoleSpec::new(SUPPORTER, "Supporter", 1, 0))
        .role(RoleSpec::new(BOT_ROLE, "Docobo", 2, MANAGE_ROLES).managed())
        .role(RoleSpec::new(VIP, "VIP", 5, 0))
        .member(MemberSpec::new(BUYER, "buyer"))
        .member(MemberSpec::new(MEMBER, "member"))
        .member(MemberSpec::new(OWNER, "owner"))
        .bot_roles(&[BOT_ROLE])
}

pub(crate) async fn fake_discord() -> Arc<FakeDiscord> {
    Arc::new(
        FakeDiscord::builder()
            .guild(shop())
            .start()
            .await
            .expect("fake Discord"),
    )
}

/// The fake provider API answering Polar's calls.
pub(crate) async fn polar_api() -> FakeApi {
    let api = FakeApi::start().await;
    for path in [
        "/v1/checkouts/",
        "/v1/products/",
        "/v1/subscriptions/",
        "/v1/orders/",
    ] {
        api.respond(
            "GET",
            path,
            200,
            &json!({"items": [], "pagination": {"total_count": 0, "max_page": 1}}),
        );
    }
    api.respond("POST", "/v1/products/", 201, &json!({"id": PRODUCT}));
    api.respond(
        "POST",
        "/v1/checkouts/",
        201,
        &json!({"id": "co_1", "url": "https://buy.polar.sh/co_1", "expires_at": "2027-01-02T00:00:00Z"}),
    );
    api
}

/// The app, connected to `discord`, with a fast sweep and provider calls allowed to loopback.
pub(crate) async fn start_app(discord: &Arc<FakeDiscord>, extra: &[(&str, &str)]) -> TestApp {
    start_app_at(discord, extra, Clock::System).await
}

/// The settings every bot test starts from.
pub(crate) const BOT_ENV: &[(&str, &str)] = &[
    ("DOCOBO_SERVER__PUBLIC_URL", PUBLIC_URL),
    ("DOCOBO_PLUGINS__ALLOW_LOOPBACK_HTTP", "true"),
    ("DOCOBO_SUBSCRIPTIONS__SWEEP_INTERVAL_SECS", "1"),
    ("DOCOBO_SUBSCRIPTIONS__POLL_INTERVAL_SECS", "3600"),
    ("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0"),
];

/// [`start_app`] on `clock`.
pub(crate) async fn start_app_at(
    discord: &Arc<FakeDiscord>,
    extra: &[(&str, &str)],
    clock: Clock,
) -> TestApp {
    let mut env = BOT_ENV.to_vec();
    env.extend_from_slice(extra);
    start_app_with(discord, &env, clock).await
}

/// The app with exactly the settings `env`, connected to `discord`.
pub(crate) async fn start_app_with(
    discord: &Arc<FakeDiscord>,
    env: &[(&str, &str)],
    clock: Clock,
) -> TestApp {
    let app = test_app()
        .discord(Arc::clone(discord))
        .envs(env)
        .clock(clock)
        .start()
        .await;
    discord
        .wait_for_command(Some(GUILD), "setup", WAIT)
        .await
        .expect("commands registered");
    app
}

/// BUYER runs `/join` and picks Supporter; returns the interaction of the pick.
pub(crate) async fn join_and_pick(
    discord: &FakeDiscord,
) -> docobo_testkit::discord::InteractionHandle {
    let join = discord
        .run_slash_command(&SlashCommand::new(GUILD, BUYER, "join"), WAIT)
        .await
        .expect("/join answers");
    assert!(join.is_ephemeral(), "{join:?}");
    discord
        .click_component(GUILD, BUYER, &join, "join:role", &[&SUPPORTER.to_string()])
        .expect("pick role")
}

/// A signed `subscription.active` for BUYER now; asserts the 202.
pub(crate) async fn buy(app: &TestApp, path: &str, id: &str) {
    let body = polar_event("subscription.active", "active", false, now_ms());
    let response = deliver_polar(app, path, id, &body).await;
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
}

pub(crate) async fn reply(
    discord: &FakeDiscord,
    handle: &docobo_testkit::discord::InteractionHandle,
) -> Reply {
    discord.await_reply(handle, WAIT).await.expect("reply")
}

/// Runs `/setup` as the owner through every step; returns the final reply.
pub(crate) async fn run_setup(
    discord: &FakeDiscord,
    roles: &[&str],
    prices: &[(&str, &str)],
    provider: &str,
    credentials: &[(&str, &str)],
) -> Reply {
    let first = discord
        .run_slash_command(&SlashCommand::new(GUILD, OWNER, "setup"), WAIT)
        .await
        .expect("/setup answers");
    assert!(first.is_ephemeral(), "{first:?}");
    let click = discord
        .click_component(GUILD, OWNER, &first, "setup:roles", roles)
        .expect("pick roles");
    let modal = reply(discord, &click).await;
    assert_eq!(modal.modal_id(), Some("setup:prices:0"), "{modal:?}");
    let submit = discord
        .submit_modal(GUILD, OWNER, &modal, prices)
        .expect("submit prices");
    let pick = reply(discord, &submit).await;
    assert!(
        pick.custom_ids().contains(&"setup:provider".to_owned()),
        "{pick:?}"
    );
    let click = discord
        .click_component(GUILD, OWNER, &pick, "setup:provider", &[provider])
        .expect("pick provider");
    let mut modal = reply(discord, &click).await;
    // Credential fields come five per modal; the rest behind a "Next fields" button.
    loop {
        let id = modal.modal_id().expect("a credentials modal").to_owned();
        let fields: Vec<(&str, &str)> = credentials
            .iter()
            .copied()
            .filter(|(k, _)| modal.component(k).is_some())
            .collect();
        let submit = discord
            .submit_modal(GUILD, OWNER, &modal, &fields)
            .expect("submit credentials");
        let answer = reply(discord, &submit).await;
        match answer
            .custom_ids()
            .iter()
            .find(|c| c.starts_with("setup:creds:") && **c != id)
        {
            Some(next) if answer.kind != ReplyKind::EditOriginal => {
                let next = next.clone();
                let click = discord
                    .click_component(GUILD, OWNER, &answer, &next, &[])
                    .expect("next fields");
                modal = reply(discord, &click).await;
            }
            _ => return answer,
        }
    }
}

pub(crate) fn polar_credentials(api: &FakeApi) -> Vec<(&'static str, String)> {
    vec![
        ("cred:access_token", "polar_oat_e2e_token".to_owned()),
        ("cred:webhook_secret", POLAR_SECRET.to_owned()),
        ("cred:environment", "sandbox".to_owned()),
        (
            "cred:manage_url",
            "https://sandbox.polar.sh/shop/portal".to_owned(),
        ),
        ("cred:api_url", api.url.clone()),
    ]
}

pub(crate) async fn setup_polar(discord: &FakeDiscord, api: &FakeApi) -> Reply {
    let creds = polar_credentials(api);
    let creds: Vec<(&str, &str)> = creds.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_setup(
        discord,
        &[&SUPPORTER.to_string()],
        &[(&format!("price:{SUPPORTER}"), "4.99 USD monthly")],
        "polar",
        &creds,
    )
    .await
}

pub(crate) fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .expect("time")
        .to_string()
}

pub(crate) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// A Polar subscription event for BUYER's Supporter purchase, produced at `at` (ms).
pub(crate) fn polar_event(kind: &str, status: &str, cancel: bool, at: i64) -> Vec<u8> {
    let text = std::fs::read_to_string(fixtures().join("polar-subscription-active.json"))
        .expect("fixture");
    let mut value: Value = serde_json::from_str(&text).expect("json");
    value["type"] = json!(kind);
    value["timestamp"] = json!(iso(at));
    value["data"]["id"] = json!("sub_e2e");
    value["data"]["status"] = json!(status);
    value["data"]["cancel_at_period_end"] = json!(cancel);
    value["data"]["modified_at"] = json!(iso(at));
    value["data"]["current_period_start"] = json!(iso(at - DAY_MS));
    value["data"]["current_period_end"] = json!(iso(at + 30 * DAY_MS));
    value["data"]["product_id"] = json!(PRODUCT);
    if status == "canceled" || status == "revoked" {
        value["data"]["ended_at"] = json!(iso(at));
    }
    serde_json::to_vec(&value).expect("json")
}

pub(crate) async fn deliver_polar(
    app: &TestApp,
    path: &str,
    id: &str,
    body: &[u8],
) -> reqwest::Response {
    PolarKey::utf8(POLAR_SECRET)
        .delivery_now(id, body.to_vec())
        .request(&app.client, &app.url(path))
        .send()
        .await
        .expect("send")
}

/// The webhook path `/setup` printed.
pub(crate) fn webhook_path(done: &Reply, provider: &str) -> String {
    let content = done.content().expect("a message");
    let start = content
        .find(&format!("{PUBLIC_URL}/webhooks/{provider}/"))
        .unwrap_or_else(|| panic!("no webhook URL in {content}"));
    let url: String = content[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '`')
        .collect();
    url.trim_start_matches(PUBLIC_URL).to_owned()
}

pub(crate) fn role_puts(discord: &FakeDiscord, user: u64, role: u64) -> usize {
    let path = format!("/guilds/{GUILD}/members/{user}/roles/{role}");
    discord
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path == path && r.status == Some(204))
        .count()
}

pub(crate) fn messages_in(discord: &FakeDiscord, channel: u64) -> Vec<String> {
    discord
        .sent_messages()
        .iter()
        .filter(|m| m.channel_id == channel)
        .filter_map(|m| m.message["content"].as_str().map(str::to_owned))
        .collect()
}

pub(crate) async fn wait_for_message(discord: &FakeDiscord, channel: u64, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(m) = messages_in(discord, channel)
            .into_iter()
            .find(|m| m.contains(needle))
        {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no message containing {needle:?} in channel {channel}: {:?}",
            messages_in(discord, channel)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn the_subscription(app: &TestApp) -> subscriptions::Subscription {
    let provider = docobo::domain::ProviderId::parse("polar").expect("id");
    app.db
        .call(move |conn| crate::helpers::subscription_any_scope(conn, &provider, "sub_e2e"))
        .await
        .expect("read")
        .expect("exists")
}

/// Waits (up to [`WAIT`]) until the subscription satisfies `done`; fails with its last state.
pub(crate) async fn wait_for_subscription(
    app: &TestApp,
    done: impl Fn(&subscriptions::Subscription) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sub = the_subscription(app).await;
        if done(&sub) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{sub:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[allow(clippy::too_many_lines, reason = "one end-to-end story, step by step")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polar_setup_join_and_webhooks_grant_keep_and_revoke_the_role() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    let app = start_app(&discord, &[]).await;

    // The owner sets up Polar.
    let done = setup_polar(&discord, &api).await;
    let text = done.content().expect("text");
    assert!(text.contains("Saved"), "{text}");
    assert!(
        text.contains("subscription.revoked"),
        "the events to enable: {text}"
    );
    assert!(
        !text.contains("polar_oat_e2e_token") && !text.contains(POLAR_SECRET),
        "{text}"
    );
    let path = webhook_path(&done, "polar");
    // Polar was asked to validate the token and create the product, with the token.
    let calls = api.requests();
    assert!(calls.iter().any(|r| r.method == "GET"), "{calls:?}");
    assert!(
        calls
            .iter()
            .any(|r| r.method == "POST" && r.path == "/v1/products/")
    );
    assert!(
        calls
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer polar_oat_e2e_token"))
    );
    // The credentials are stored encrypted.
    let stored: Vec<u8> = app
        .db
        .call(|conn| Ok(conn.query_row("SELECT credentials FROM guilds", [], |r| r.get(0))?))
        .await
        .expect("read");
    assert!(!String::from_utf8_lossy(&stored).contains("polar_oat_e2e_token"));

    // The owner picks a log channel.
    let pick = discord
        .click_component(
            GUILD,
            OWNER,
            &done,
            "setup:log",
            &[&LOG_CHANNEL.to_string()],
        )
        .expect("log channel");
    let confirmed = reply(&discord, &pick).await;
    assert!(
        confirmed
            .content()
            .expect("text")
            .contains(&LOG_CHANNEL.to_string())
    );

    // A member runs /join and gets a Polar checkout link.
    let pick = join_and_pick(&discord).await;
    let checkout = reply(&discord, &pick).await;
    let button = checkout.body.to_string();
    assert!(button.contains("https://buy.polar.sh/co_1"), "{button}");
    let sent = api
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/v1/checkouts/")
        .expect("checkout created");
    assert_eq!(sent.json()["metadata"]["docobo_user_id"], BUYER.to_string());

    // Polar's webhook: the subscription is active; the role appears at Discord.
    let t0 = now_ms();
    let response = deliver_polar(
        &app,
        &path,
        "msg_active",
        &polar_event("subscription.active", "active", false, t0),
    )
    .await;
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("role granted");
    let line = wait_for_message(&discord, LOG_CHANNEL, "bought").await;
    assert!(line.contains(&BUYER.to_string()), "{line}");
    let put = discord
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT" && r.path.ends_with(&format!("/roles/{SUPPORTER}")))
        .expect("PUT");
    assert!(put.audit_log_reason().is_some_and(|r| r.contains("Docobo")));

    // /join again: already entitled. /status shows it.
    let pick = join_and_pick(&discord).await;
    let already = reply(&discord, &pick).await;
    assert!(
        already.content().expect("text").contains("already have"),
        "{already:?}"
    );
    let status = discord
        .run_slash_command(&SlashCommand::new(GUILD, BUYER, "status"), WAIT)
        .await
        .expect("/status");
    let text = status.content().expect("text");
    assert!(text.contains("active, renews"), "{text}");
    assert!(
        text.contains("Manage or cancel your subscription: https://sandbox.polar.sh/shop/portal"),
        "{text}"
    );
    assert!(status.is_ephemeral());

    // Cancelled at period end: the role stays.
    let response = deliver_polar(
        &app,
        &path,
        "msg_cancel",
        &polar_event("subscription.canceled", "active", true, t0 + 1000),
    )
    .await;
    assert_eq!(response.status(), 202);
    wait_for_message(&discord, LOG_CHANNEL, "cancelled").await;
    assert_eq!(
        the_subscription(&app).await.state.status,
        SubscriptionStatus::Canceled
    );
    assert!(
        discord
            .member_roles(GUILD, BUYER)
            .expect("member")
            .contains(&SUPPORTER)
    );

    // Revoked: the role goes.
    let response = deliver_polar(
        &app,
        &path,
        "msg_revoke",
        &polar_event("subscription.revoked", "canceled", false, t0 + 2000),
    )
    .await;
    assert_eq!(response.status(), 202);
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, false, WAIT)
        .await
        .expect("role removed");
    wait_for_message(&discord, LOG_CHANNEL, "revoked").await;
    assert_eq!(role_puts(&discord, BUYER, SUPPORTER), 1);

    discord.assert_no_schema_violations();
    discord.assert_payloads_parse();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_is_refused_without_manage_server_and_for_roles_the_bot_cannot_manage() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;

    let refused = discord
        .run_slash_command(&SlashCommand::new(GUILD, MEMBER, "setup"), WAIT)
        .await
        .expect("answered");
    assert!(refused.is_ephemeral());
    assert!(
        refused.content().expect("text").contains("Manage Server"),
        "{refused:?}"
    );
    assert!(refused.custom_ids().is_empty());

    let first = discord
        .run_slash_command(&SlashCommand::new(GUILD, OWNER, "setup"), WAIT)
        .await
        .expect("answered");
    for (role, why) in [
        (VIP, "drag Docobo's role above"),
        (BOT_ROLE, "managed by an integration"),
        (GUILD, "@everyone"),
    ] {
        let click = discord
            .click_component(GUILD, OWNER, &first, "setup:roles", &[&role.to_string()])
            .expect("pick");
        let answer = discord.await_reply(&click, WAIT).await.unwrap_or_else(|e| {
            panic!(
                "role {role}: {e}; violations: {:?}; last requests: {:?}",
                discord.take_schema_violations(),
                discord
                    .requests()
                    .iter()
                    .rev()
                    .take(3)
                    .map(|r| (&r.method, &r.path, r.status, &r.response))
                    .collect::<Vec<_>>()
            )
        });
        assert_eq!(answer.kind, ReplyKind::UpdateMessage, "{answer:?}");
        let text = answer.content().expect("text");
        assert!(text.contains(why), "{role}: {text}");
    }
    // Bad prices are explained and can be fixed.
    let click = discord
        .click_component(
            GUILD,
            OWNER,
            &first,
            "setup:roles",
            &[&SUPPORTER.to_string()],
        )
        .expect("pick");
    let modal = reply(&discord, &click).await;
    let submit = discord
        .submit_modal(
            GUILD,
            OWNER,
            &modal,
            &[(&format!("price:{SUPPORTER}"), "4,99 dollars")],
        )
        .expect("submit");
    let answer = reply(&discord, &submit).await;
    let text = answer.content().expect("text");
    assert!(text.contains("4,99 dollars"), "{text}");
    assert!(answer.custom_ids().contains(&"setup:prices:0".to_owned()));
    let retry = discord
        .click_component(GUILD, OWNER, &answer, "setup:prices:0", &[])
        .expect("fix");
    let modal = reply(&discord, &retry).await;
    assert_eq!(modal.modal_id(), Some("setup:prices:0"));
    // Nothing was saved along the way.
    assert_eq!(app.count("SELECT count(*) FROM paid_roles").await, 0);
    discord.assert_no_schema_violations();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_the_provider_refuses_are_explained_and_nothing_is_saved() {
    let discord = fake_discord().await;
    let api = FakeApi::start().await;
    for path in [
        "/v1/checkouts/",
        "/v1/products/",
        "/v1/subscriptions/",
        "/v1/orders/",
    ] {
        api.respond("GET", path, 401, &json!({"error": "invalid_token"}));
    }
    let app = start_app(&discord, &[]).await;
    let done = setup_polar(&discord, &api).await;
    let text = done.content().expect("text");
    assert!(text.contains("did not accept"), "{text}");
    assert!(text.contains("Nothing was saved"), "{text}");
    assert!(!text.contains("polar_oat_e2e_token"));
    assert_eq!(app.count("SELECT count(*) FROM paid_roles").await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM guilds WHERE credentials IS NOT NULL")
            .await,
        0
    );
    app.stop().await;
}

/// A SePay transfer in the format of the fixture, carrying `code`, dated now (Vietnam time).
pub(crate) fn sepay_transfer(id: i64, code: &str, amount: i64) -> Vec<u8> {
    let vn = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(7)));
    SepayTransfer::fixture()
        .id(id)
        .code(code)
        .amount(amount)
        .date(&vn.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .body()
}

#[allow(clippy::too_many_lines, reason = "one end-to-end story, step by step")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sepay_setup_join_and_a_transfer_grant_a_pass_whose_end_removes_the_role() {
    let discord = fake_discord().await;
    // The app's clock, stopped at the start: the test moves it to the end of the pass.
    let app = start_app_at(&discord, &[], Clock::fixed(now_ms())).await;
    let done = run_setup(
        &discord,
        &[&SUPPORTER.to_string()],
        &[(&format!("price:{SUPPORTER}"), "50000 VND 30 days")],
        "sepay",
        &[
            ("cred:webhook_api_key", "sepay-e2e-key"),
            ("cred:account_number", "0359123456"),
            ("cred:bank", "MBBank"),
        ],
    )
    .await;
    assert!(done.content().expect("text").contains("Saved"), "{done:?}");
    let path = webhook_path(&done, "sepay");

    // /join shows a VietQR with the amount and a payment code.
    let pick = join_and_pick(&discord).await;
    let checkout = reply(&discord, &pick).await;
    let embed = &checkout.body["embeds"][0];
    assert!(
        embed["image"]["url"]
            .as_str()
            .is_some_and(|u| u.contains("qr.sepay.vn")),
        "{embed}"
    );
    let code_field = embed["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| {
            f["name"]
                .as_str()
                .is_some_and(|n| n.contains("payment code"))
        })
        .expect("code field");
    let code = code_field["value"]
        .as_str()
        .expect("code")
        .trim_matches('`')
        .to_owned();
    assert!(code.starts_with("DCB"), "{code}");

    // /join again shows the same code.
    let pick = join_and_pick(&discord).await;
    assert!(
        reply(&discord, &pick)
            .await
            .body
            .to_string()
            .contains(&code)
    );
    assert_eq!(app.count("SELECT count(*) FROM subscriptions").await, 1);

    // The transfer arrives: a 30-day pass, and the role.
    let response = sepay_request(
        &app.client,
        &app.url(&path),
        "sepay-e2e-key",
        sepay_transfer(9001, &code, 50_000),
    )
    .send()
    .await
    .expect("send");
    assert_eq!(response.status(), 200);
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("role granted");
    let sub = app
        .db
        .call(move |conn| subscriptions::by_payment_code(conn, &code))
        .await
        .expect("read")
        .expect("sub");
    let end = sub.state.period_end.expect("pass end");
    assert!((end - now_ms() - 30 * DAY_MS).abs() < 60_000, "{end}");

    // Thirty days later: the app's clock moves past the end of the pass.
    app.advance(end - app.services.now() + 1);
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, false, WAIT)
        .await
        .expect("role removed at the end of the pass");
    let id = sub.id;
    let ended = app
        .db
        .call(move |conn| {
            Ok(conn.query_row(
                "SELECT status FROM subscriptions WHERE id = ?1",
                [id],
                |r| r.get::<_, String>(0),
            )?)
        })
        .await
        .expect("status");
    assert_eq!(ended, "expired");
    discord.assert_no_schema_violations();
    app.stop().await;
}

/// A guild set up without `/setup` (as after the owner rearranged roles): Polar with the
/// fixture's product on `role`.
pub(crate) async fn seed_polar(app: &TestApp, role: u64) -> String {
    let guild = GuildId::new(GUILD).expect("guild");
    let key = app
        .add_guild(
            guild,
            "polar",
            &[("access_token", "x"), ("webhook_secret", POLAR_SECRET)],
        )
        .await;
    app.add_paid_role(
        guild,
        RoleId::new(role).expect("role"),
        (499, "USD"),
        Billing::Monthly,
        Some(PRODUCT),
    )
    .await;
    app.db
        .call(move |conn| {
            conn.execute(
                "UPDATE guilds SET log_channel_id = ?1, owner_id = ?2",
                [LOG_CHANNEL as i64, OWNER as i64],
            )?;
            Ok(())
        })
        .await
        .expect("log channel");
    format!("/webhooks/polar/{key}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_duplicate_webhooks_grants_once() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;
    let path = seed_polar(&app, SUPPORTER).await;
    let body = polar_event("subscription.active", "active", false, now_ms());
    let sends = (0..40).map(|_| deliver_polar(&app, &path, "msg_storm", &body));
    for response in futures_util::future::join_all(sends).await {
        assert_eq!(response.status(), 202);
    }
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("granted");
    // Let the worker and a sweep run; still one PUT.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(role_puts(&discord, BUYER, SUPPORTER), 1);
    assert_eq!(app.count("SELECT count(*) FROM webhook_events").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hierarchy_problem_is_reported_and_the_role_lands_once_it_is_fixed() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;
    // VIP is above Docobo's role.
    let path = seed_polar(&app, VIP).await;
    buy(&app, &path, "msg_vip").await;
    let notice = wait_for_message(&discord, LOG_CHANNEL, "drag Docobo's role above @VIP").await;
    assert!(notice.contains("could not give"), "{notice}");
    // Checked before calling Discord: no 403 was collected.
    assert!(
        !discord.requests().iter().any(|r| r.status == Some(403)),
        "a PUT that had to fail was sent"
    );
    let sub = the_subscription(&app).await;
    assert!(!sub.role_applied);
    // Reported once, not on every retry.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let notices = messages_in(&discord, LOG_CHANNEL)
        .iter()
        .filter(|m| m.contains("@VIP"))
        .count();
    assert_eq!(notices, 1);

    // The owner drags Docobo's role above VIP.
    discord.move_role(GUILD, BOT_ROLE, 9).expect("move");
    discord
        .wait_for_member_role(GUILD, BUYER, VIP, true, WAIT)
        .await
        .expect("granted after the fix");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_failing_for_a_while_only_delays_the_grant() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;
    let path = seed_polar(&app, SUPPORTER).await;
    let pattern = "/guilds/*/members/*/roles/*";
    discord.inject_fault(
        FaultRule::new(
            "PUT",
            pattern,
            Fault::error(500, 0, "Internal Server Error"),
        )
        .times(2),
    );
    discord.inject_fault(FaultRule::new("PUT", pattern, Fault::rate_limited(0.2)).once());
    buy(&app, &path, "msg_flaky").await;
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("granted in the end");
    let attempts: Vec<Option<u16>> = discord
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/roles/"))
        .map(|r| r.status)
        .collect();
    assert_eq!(attempts, [Some(500), Some(500), Some(429), Some(204)]);
    // The worker records the success just after Discord saw the PUT.
    wait_for_subscription(&app, |sub| {
        sub.role_applied && sub.last_sync_error.is_none()
    })
    .await;
    app.stop().await;
}

/// The app with Polar on Supporter and no sweep during the test (only webhooks and the
/// worker's own retries act); returns it and the webhook path.
async fn start_without_sweep(discord: &Arc<FakeDiscord>) -> (TestApp, String) {
    let app = start_app(
        discord,
        &[("DOCOBO_SUBSCRIPTIONS__SWEEP_INTERVAL_SECS", "3600")],
    )
    .await;
    let path = seed_polar(&app, SUPPORTER).await;
    (app, path)
}

/// A revocation that lands while the grant is on its way to Discord is not lost: the
/// role comes off right after the grant lands, not at the next sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_that_lands_during_the_grant_is_applied_after_it() {
    let discord = fake_discord().await;
    // Only the revocation's own wake-up can remove the role.
    let (app, path) = start_without_sweep(&discord).await;
    discord.inject_fault(
        FaultRule::new(
            "PUT",
            "/guilds/*/members/*/roles/*",
            Fault::delay(Duration::from_secs(3)),
        )
        .once(),
    );
    let bought_at = now_ms();
    buy(&app, &path, "msg_buy_slow").await;
    // The grant is held at Discord (the worker sends it as soon as the purchase is
    // committed); meanwhile the subscription is revoked.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        role_puts(&discord, BUYER, SUPPORTER),
        0,
        "the grant is still held"
    );
    let body = polar_event("subscription.revoked", "revoked", false, bought_at + 1000);
    let response = deliver_polar(&app, &path, "msg_revoke_fast", &body).await;
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    let roles = "/guilds/*/members/*/roles/*";
    discord
        .wait_for_request("PUT", roles, WAIT)
        .await
        .expect("the held grant lands");
    discord
        .wait_for_request("DELETE", roles, WAIT)
        .await
        .expect("the revocation follows it");
    assert_eq!(discord.member_roles(GUILD, BUYER), Some(Vec::new()));
    let sub = the_subscription(&app).await;
    assert_eq!(sub.state.status, SubscriptionStatus::Revoked);
    app.stop().await;
}

/// A database that refuses to record a sync (a full disk, say) must not make the worker
/// call Discord and post to the log channel again and again: it retries with backoff, and
/// records the sync once it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_the_database_cannot_record_is_retried_with_backoff() {
    let discord = fake_discord().await;
    let (app, path) = start_without_sweep(&discord).await;
    // Recording the role as applied fails, as on a full disk; the webhook's own write does
    // not touch that column.
    let trigger = |sql: &'static str| {
        app.db.call(move |conn| {
            conn.execute_batch(sql)?;
            Ok(())
        })
    };
    trigger(
        "CREATE TRIGGER refuse_sync BEFORE UPDATE OF role_applied ON subscriptions
         WHEN NEW.role_applied = 1 BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
    )
    .await
    .expect("trigger");
    buy(&app, &path, "msg_disk_full").await;
    discord
        .wait_for_request("PUT", "/guilds/*/members/*/roles/*", WAIT)
        .await
        .expect("granted");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let grants = role_puts(&discord, BUYER, SUPPORTER);
    assert!((1..=4).contains(&grants), "{grants} grants in 3 s");
    let bought = messages_in(&discord, LOG_CHANNEL)
        .iter()
        .filter(|m| m.contains("bought"))
        .count();
    assert!(bought <= grants, "{bought} announcements");

    // Room again: the next retry records the sync.
    trigger("DROP TRIGGER refuse_sync").await.expect("drop");
    wait_for_subscription(&app, |sub| sub.role_applied && sub.announced.is_some()).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_midway_converges() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;
    let path = seed_polar(&app, SUPPORTER).await;
    discord.inject_fault(FaultRule::new(
        "PUT",
        "/guilds/*/members/*/roles/*",
        Fault::error(503, 0, "unavailable"),
    ));
    buy(&app, &path, "msg_restart").await;
    discord
        .wait_for_request("PUT", "/guilds/*/members/*/roles/*", WAIT)
        .await
        .expect("a grant was tried");
    let stopped = app.stop().await;
    assert!(
        !discord
            .member_roles(GUILD, BUYER)
            .expect("member")
            .contains(&SUPPORTER)
    );

    // Discord recovers; Docobo starts again on the same data and finishes the job.
    discord.clear_faults();
    let app = stopped.start().await;
    discord
        .wait_for_command(Some(GUILD), "setup", WAIT)
        .await
        .expect("commands registered");
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("granted after the restart");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_puts_back_a_removed_role_and_regrants_a_member_who_returns() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;
    let path = seed_polar(&app, SUPPORTER).await;
    buy(&app, &path, "msg_drift").await;
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("granted");

    // Someone removes the paid role by hand: the sweep puts it back.
    let admin = discord.http().expect("http");
    admin
        .remove_member_role(GUILD.into(), BUYER.into(), SUPPORTER.into(), None)
        .await
        .expect("removed by hand");
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("put back");

    // An unpaid paid role given by hand is reported and left alone.
    admin
        .add_member_role(GUILD.into(), MEMBER.into(), SUPPORTER.into(), None)
        .await
        .expect("given by hand");
    app.db
        .call(|conn| {
            let g = GuildId::new(GUILD).expect("g");
            let u = UserId::new(MEMBER).expect("u");
            // Known to Docobo (ran /join once), never paid.
            docobo::db::members::upsert(conn, g, u, None)?;
            Ok(())
        })
        .await
        .expect("seed");
    wait_for_message(&discord, LOG_CHANNEL, "without a paid subscription").await;
    assert!(
        discord
            .member_roles(GUILD, MEMBER)
            .expect("member")
            .contains(&SUPPORTER)
    );

    // The buyer leaves (Discord drops their roles) and comes back: the sweep re-grants.
    discord.member_leave(GUILD, BUYER).expect("leave");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    discord
        .member_join(GUILD, MemberSpec::new(BUYER, "buyer"))
        .expect("join");
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("re-granted");
    app.stop().await;
}
