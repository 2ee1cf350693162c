//! `/doctor` and the test purchase end to end: the loopback fake Discord, the real server,
//! the real SePay and Polar components, a fake provider API, a real SQLite file and the
//! test clock. A healthy guild passes every check and its test purchase grants the role and
//! takes it back; a broken guild fails each check, each with its fix.

use std::sync::Arc;

use docobo::clock::Clock;
use docobo::domain::{GuildId, RoleId};
use docobo_testkit::discord::{
    ChannelOverwrite, FakeDiscord, GuildSpec, MemberSpec, Reply, RoleSpec, SlashCommand,
};
use serde_json::{Value, json};

use crate::app::{TestApp, test_app};
use crate::bot::{
    BOT_ROLE, BUYER, GUILD, LOG_CHANNEL, OWNER, POLAR_SECRET, PRODUCT, PUBLIC_URL, SUPPORTER, VIP,
    WAIT, deliver_polar, fake_discord, now_ms, polar_api, polar_event,
};
use crate::fake_api::FakeApi;

const SEND_MESSAGES: u64 = 1 << 11;
const MINUTE_MS: i64 = 60_000;

fn guild() -> GuildId {
    GuildId::new(GUILD).expect("guild")
}

/// The app on `discord` at a fixed clock, with `extra` settings over the usual test ones.
async fn start(
    discord: &Arc<FakeDiscord>,
    extra: &[(&str, &str)],
    plugin: Option<&std::path::Path>,
) -> TestApp {
    let mut env = vec![
        ("DOCOBO_PLUGINS__ALLOW_LOOPBACK_HTTP", "true"),
        ("DOCOBO_SUBSCRIPTIONS__SWEEP_INTERVAL_SECS", "1"),
        ("DOCOBO_SUBSCRIPTIONS__POLL_INTERVAL_SECS", "3600"),
        ("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0"),
    ];
    env.extend_from_slice(extra);
    let mut builder = test_app()
        .discord(Arc::clone(discord))
        .envs(&env)
        .clock(Clock::fixed(now_ms()));
    if let Some(path) = plugin {
        builder = builder.plugin("broken.wasm", path);
    }
    let app = builder.start().await;
    discord
        .wait_for_command(Some(GUILD), "doctor", WAIT)
        .await
        .expect("commands registered");
    app
}

/// Saves the log channel and the owner (as `/setup` and `GUILD_CREATE` would).
async fn log_channel_and_owner(app: &TestApp) {
    app.db
        .call(|conn| {
            conn.execute(
                "UPDATE guilds SET log_channel_id = ?1, owner_id = ?2",
                [LOG_CHANNEL as i64, OWNER as i64],
            )?;
            Ok(())
        })
        .await
        .expect("log channel");
}

/// `user` runs `/doctor`; its report.
async fn doctor(discord: &FakeDiscord, user: u64) -> Reply {
    let reply = discord
        .run_slash_command(&SlashCommand::new(GUILD, user, "doctor"), WAIT)
        .await
        .expect("/doctor answers");
    assert!(reply.is_ephemeral(), "{reply:?}");
    reply
}

/// The report's lines: (passed, name, the line and its fix).
fn checks(reply: &Reply) -> Vec<(bool, String, String)> {
    let description = reply.body["embeds"][0]["description"]
        .as_str()
        .unwrap_or_else(|| panic!("a report: {reply:?}"));
    let mut out: Vec<(bool, String, String)> = Vec::new();
    for line in description.lines() {
        if let Some(fix) = line.trim_start().strip_prefix("↳ ") {
            let last = out.last_mut().expect("a fix follows its check");
            last.2.push('\n');
            last.2.push_str(fix);
            continue;
        }
        let (ok, rest) = match line.chars().next() {
            Some('✔') => (true, &line['✔'.len_utf8()..]),
            Some('✘') => (false, &line['✘'.len_utf8()..]),
            _ => panic!("a line without ✔/✘: {line:?}"),
        };
        let name = rest
            .trim()
            .strip_prefix("**")
            .and_then(|r| r.split_once("**"))
            .map(|(n, _)| n.to_owned())
            .expect("a bold name");
        out.push((ok, name, line.to_owned()));
    }
    out
}

fn failed(report: &[(bool, String, String)]) -> Vec<&str> {
    report
        .iter()
        .filter(|(ok, ..)| !ok)
        .map(|(_, n, _)| n.as_str())
        .collect()
}

fn line<'a>(report: &'a [(bool, String, String)], name: &str) -> &'a str {
    &report
        .iter()
        .find(|(_, n, _)| n == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {report:?}"))
        .2
}

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_guild_passes_and_its_test_purchase_grants_then_takes_the_role_back() {
    const KEY: &str = "sepay-doctor-key";
    let (discord, app) = sepay_shop(KEY).await;
    // The tier kicks when access ends: the end of a test purchase never does.
    app.db
        .call(|conn| Ok(conn.execute("UPDATE paid_roles SET on_end = 'kick'", [])?))
        .await
        .expect("kick policy");

    // Everything but the deliveries: none has arrived yet, and the fix says how.
    let first = doctor(&discord, OWNER).await;
    let report = checks(&first);
    assert_eq!(failed(&report), ["Last delivery"], "{report:#?}");
    assert!(
        line(&report, "Last delivery").contains("Fix:"),
        "{report:?}"
    );
    for name in [
        "Manage Roles",
        "Role @Supporter",
        "Log channel",
        "Provider credentials",
        "Public URL",
        "Role syncs",
        "Plugin sepay",
    ] {
        assert!(line(&report, name).starts_with('✔'), "{name}: {report:?}");
    }
    assert!(
        first.custom_ids().contains(&"doctor:test".to_owned()),
        "{first:?}"
    );

    let real = |sql| app.count(sql);
    let (subs, events) = (
        real("SELECT count(*) FROM subscriptions WHERE test = 0").await,
        real("SELECT count(*) FROM webhook_events WHERE test = 0").await,
    );
    let click = discord
        .click_component(GUILD, OWNER, &first, "doctor:test", &[])
        .expect("click");
    let bought = discord.await_reply(&click, WAIT).await.expect("reply");
    let text = bought.content().unwrap_or_default();
    assert!(text.contains("Test purchase made"), "{bought:?}");
    assert!(bought.is_ephemeral(), "{bought:?}");
    discord
        .wait_for_member_role(GUILD, OWNER, SUPPORTER, true, WAIT)
        .await
        .expect("the owner gets the role");

    // Through the real webhook path, stored as a test, and counted nowhere as a sale.
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_events WHERE test = 1 AND outcome = 'applied'")
            .await,
        1
    );
    assert_eq!(
        real("SELECT count(*) FROM subscriptions WHERE test = 0").await,
        subs
    );
    assert_eq!(
        real("SELECT count(*) FROM webhook_events WHERE test = 0").await,
        events
    );
    let metrics = metrics(&app).await;
    assert!(metrics.contains(r#"outcome="test""#), "{metrics}");
    assert!(!metrics.contains(r#"outcome="applied""#), "{metrics}");

    // Now every check passes, the last delivery being the test one.
    let second = checks(&doctor(&discord, OWNER).await);
    assert!(failed(&second).is_empty(), "{second:#?}");
    assert!(
        line(&second, "Last delivery").contains("(test)"),
        "{second:?}"
    );

    // The role goes after the configured 5 minutes (the test clock, not a sleep) and the
    // end is stored with the subscription, so it holds across a restart.
    app.advance(4 * MINUTE_MS);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        discord
            .member_roles(GUILD, OWNER)
            .expect("owner")
            .contains(&SUPPORTER),
        "taken too early"
    );
    let app = app.restart().await;
    app.advance(MINUTE_MS + 1_000);
    discord
        .wait_for_member_role(GUILD, OWNER, SUPPORTER, false, WAIT)
        .await
        .expect("the test role is taken back");
    never_kicked(&app, &discord).await;
    assert_eq!(
        real_count(&app, "SELECT count(*) FROM subscriptions WHERE test = 0").await,
        subs
    );
    discord.assert_no_schema_violations();
    app.stop().await;
}

/// Once the test purchase's end is recorded (after any kick its sync made), the owner was
/// not kicked although the tier kicks.
async fn never_kicked(app: &TestApp, discord: &FakeDiscord) {
    crate::helpers::wait_for_count(
        app,
        "SELECT count(*) FROM subscriptions WHERE test = 1 AND role_applied = 1",
        0,
    )
    .await;
    assert_eq!(
        discord.count_requests("DELETE", &format!("/guilds/{GUILD}/members/{OWNER}")),
        0,
        "the end of a test purchase kicked"
    );
}

/// A healthy SePay shop selling Supporter, with a log channel and the owner known.
async fn sepay_shop(key: &str) -> (Arc<FakeDiscord>, TestApp) {
    let discord = fake_discord().await;
    let app = start(&discord, &[("DOCOBO_SERVER__PUBLIC_URL", PUBLIC_URL)], None).await;
    app.add_sepay_pass(guild(), RoleId::new(SUPPORTER).expect("role"), key)
        .await;
    log_channel_and_owner(&app).await;
    (discord, app)
}

async fn real_count(app: &TestApp, sql: &'static str) -> i64 {
    app.count(sql).await
}

/// A broken guild (see [`a_broken_guild_fails_each_check_with_its_fix`]), what it needs kept
/// alive, and its webhook path.
struct Broken {
    discord: Arc<FakeDiscord>,
    app: TestApp,
    path: String,
    _api: FakeApi,
    _dir: tempfile::TempDir,
}

async fn broken_guild() -> Broken {
    let spec = GuildSpec::new(GUILD, "Shop")
        .owner(OWNER)
        .channel(LOG_CHANNEL)
        .role(RoleSpec::new(SUPPORTER, "Supporter", 1, 0))
        .role(RoleSpec::new(BOT_ROLE, "Docobo", 2, 0).managed())
        .role(RoleSpec::new(VIP, "VIP", 5, 0))
        .member(MemberSpec::new(BUYER, "buyer"))
        .member(MemberSpec::new(OWNER, "owner"))
        .bot_roles(&[BOT_ROLE])
        .overwrite(ChannelOverwrite::role(GUILD, 0, SEND_MESSAGES));
    let discord = Arc::new(
        FakeDiscord::builder()
            .guild(spec)
            .start()
            .await
            .expect("fake"),
    );
    let api = FakeApi::start().await;
    api.respond(
        "GET",
        "/v1/checkouts/",
        500,
        &json!({"detail": "down for maintenance"}),
    );
    let dir = tempfile::tempdir().expect("dir");
    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm not really a component").expect("write");
    let app = start(
        &discord,
        &[("DOCOBO_SERVER__PUBLIC_URL", "http://docobo.example.org")],
        Some(&broken),
    )
    .await;
    let key = app
        .add_guild(
            guild(),
            "polar",
            &[
                ("access_token", "polar_oat_x"),
                ("webhook_secret", POLAR_SECRET),
                ("api_url", &api.url),
            ],
        )
        .await;
    for (role, product) in [(SUPPORTER, PRODUCT), (VIP, "prod_vip")] {
        app.add_paid_role(
            guild(),
            RoleId::new(role).expect("role"),
            (499, "USD"),
            docobo::domain::Billing::Monthly,
            Some(product),
        )
        .await;
    }
    log_channel_and_owner(&app).await;
    Broken {
        discord,
        app,
        path: format!("/webhooks/polar/{key}"),
        _api: api,
        _dir: dir,
    }
}

/// Every check fails: no Manage Roles, a role above the bot, a log channel without Send
/// Messages, Polar's API failing, an http public URL, a refused last delivery, a failed role
/// sync, a plugin that did not load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_guild_fails_each_check_with_its_fix() {
    let Broken {
        discord, app, path, ..
    } = broken_guild().await;
    // A purchase whose role Docobo cannot give (no Manage Roles): its sync fails and waits.
    let bought = polar_event("subscription.active", "active", false, now_ms());
    assert_eq!(
        deliver_polar(&app, &path, "evt_buy", &bought)
            .await
            .status(),
        202
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while app
        .count("SELECT count(*) FROM subscriptions WHERE last_sync_error IS NOT NULL")
        .await
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sync never failed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Then a delivery for a product Docobo does not sell: rejected.
    let mut other: Value = serde_json::from_slice(&bought).expect("json");
    other["data"]["id"] = json!("sub_other");
    other["data"]["product_id"] = json!("prod_unknown");
    other["data"]["metadata"] = json!({});
    let other = serde_json::to_vec(&other).expect("json");
    assert_eq!(
        deliver_polar(&app, &path, "evt_other", &other)
            .await
            .status(),
        202
    );

    let reply = doctor(&discord, OWNER).await;
    let report = checks(&reply);
    for (name, says) in [
        ("Manage Roles", "Manage Roles"),
        ("Role @Supporter", "without Manage Roles"),
        ("Role @VIP", "not below"),
        ("Log channel", "Send Messages"),
        ("Provider credentials", "did not accept"),
        ("Public URL", "not https"),
        ("Last delivery", "rejected"),
        ("Role syncs", "1 role change(s) failed"),
        ("Plugin load", "broken.wasm"),
    ] {
        let line = line(&report, name);
        assert!(line.starts_with('✘'), "{name} passed: {report:#?}");
        assert!(line.contains(says), "{name} does not say {says:?}: {line}");
        assert!(line.contains("\nFix: "), "{name} has no fix: {line}");
    }
    assert!(
        line(&report, "Role @VIP").contains("drag Docobo"),
        "{report:?}"
    );
    // Polar on a live account has no test mode: no button, and why.
    assert!(
        !reply.custom_ids().contains(&"doctor:test".to_owned()),
        "{reply:?}"
    );
    assert!(
        reply.content().unwrap_or_default().contains("sandbox"),
        "{reply:?}"
    );
    discord.assert_no_schema_violations();
    app.stop().await;
}

/// Nothing set up, no public URL: those checks fail; a member without Manage Server is
/// refused. Then Polar in its sandbox: the test purchase is a sandbox checkout, and the
/// owner's sandbox purchase is ended after the configured minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guild_not_set_up_fails_and_a_polar_sandbox_test_purchase_ends_on_time() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    let app = start(&discord, &[], None).await;
    let refused = doctor(&discord, BUYER).await;
    assert!(
        refused
            .content()
            .unwrap_or_default()
            .contains("Manage Server"),
        "{refused:?}"
    );
    let report = checks(&doctor(&discord, OWNER).await);
    for (name, says) in [
        ("Roles for sale", "no role"),
        ("Log channel", "none is set"),
        ("Provider credentials", "no payment provider"),
        ("Public URL", "not set"),
        ("Last delivery", "no payment notification"),
    ] {
        let line = line(&report, name);
        assert!(
            line.starts_with('✘') && line.contains(says),
            "{name}: {line}"
        );
        assert!(line.contains("\nFix: "), "{name}: {line}");
    }

    let key = app
        .add_guild(
            guild(),
            "polar",
            &[
                ("access_token", "polar_oat_x"),
                ("webhook_secret", POLAR_SECRET),
                ("environment", "sandbox"),
                ("api_url", &api.url),
            ],
        )
        .await;
    app.add_paid_role(
        guild(),
        RoleId::new(SUPPORTER).expect("role"),
        (499, "USD"),
        docobo::domain::Billing::Monthly,
        Some(PRODUCT),
    )
    .await;
    log_channel_and_owner(&app).await;
    let reply = doctor(&discord, OWNER).await;
    let click = discord
        .click_component(GUILD, OWNER, &reply, "doctor:test", &[])
        .expect("click");
    let checkout = discord.await_reply(&click, WAIT).await.expect("reply");
    assert!(
        checkout
            .content()
            .unwrap_or_default()
            .contains("sandbox checkout"),
        "{checkout:?}"
    );
    let link = serde_json::to_string(&checkout.body["components"]).expect("json");
    assert!(link.contains("https://buy.polar.sh/co_1"), "{link}");

    // The owner pays in the sandbox: Polar's webhook is a test event for the owner.
    let mut paid: Value = serde_json::from_slice(&polar_event(
        "subscription.active",
        "active",
        false,
        now_ms(),
    ))
    .expect("json");
    paid["data"]["metadata"]["docobo_user_id"] = json!(OWNER.to_string());
    let paid = serde_json::to_vec(&paid).expect("json");
    let path = format!("/webhooks/polar/{key}");
    assert_eq!(
        deliver_polar(&app, &path, "evt_sandbox", &paid)
            .await
            .status(),
        202
    );
    discord
        .wait_for_member_role(GUILD, OWNER, SUPPORTER, true, WAIT)
        .await
        .expect("granted");
    assert_eq!(
        app.count("SELECT count(*) FROM subscriptions WHERE test = 0")
            .await,
        0
    );
    // Counted from the payment, as the wall clock saw it (the test clock lags it a little).
    app.advance(6 * MINUTE_MS);
    discord
        .wait_for_member_role(GUILD, OWNER, SUPPORTER, false, WAIT)
        .await
        .expect("the sandbox test purchase ends");
    app.stop().await;
}

/// Issue 21: `/doctor` checks every role a tier gives, not only its own: a role added to a
/// tier and then dragged above Docobo's (or added before the check existed) is a ✘ with the
/// fix, while the tier's own role passes.
#[tokio::test]
async fn doctor_checks_every_role_a_tier_gives() {
    const KEY: &str = "sepay-doctor-tier-key";
    let (discord, app) = sepay_shop(KEY).await;
    app.db
        .call(|conn| {
            conn.execute(
                "INSERT INTO tier_roles (paid_role_id, role_id) SELECT id, ?1 FROM paid_roles",
                [VIP as i64],
            )?;
            Ok(())
        })
        .await
        .expect("tier role");
    let report = checks(&doctor(&discord, OWNER).await);
    assert!(
        line(&report, "Role @Supporter").starts_with('✔'),
        "{report:?}"
    );
    let vip = line(&report, "Role @VIP");
    assert!(vip.starts_with('✘') && vip.contains("not below"), "{vip}");
    assert!(vip.contains("drag Docobo"), "{vip}");
}
