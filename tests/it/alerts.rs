//! Alerts (issue 18, item 2), end to end: each silent failure is told, with its cause and
//! the fix, to whoever can fix it — the guild's log channel (else the owner by DM), the
//! member, or the operator's Discord webhook — once, and then summarised. The real app and
//! bot against the fake Discord (which plays the operator's incoming webhook too), the real
//! Polar and test components, a fake Polar API, a real SQLite file.

use std::sync::Arc;
use std::time::Duration;

use docobo::clock::Clock;
use docobo::domain::{Billing, GuildId, RoleId};
use docobo_testkit::discord::{FakeDiscord, Fault, FaultRule};
use docobo_testkit::webhooks::PolarKey;
use serde_json::json;

use crate::app::TestApp;
use crate::bot::{
    self, BUYER, GUILD, LOG_CHANNEL, POLAR_SECRET, PRODUCT, SUPPORTER, WAIT, buy, messages_in,
    now_ms, polar_event, seed_polar, wait_for_message,
};
use crate::fake_api::FakeApi;

/// The operator's incoming webhook at the fake Discord.
const HOOK: u64 = 7_700_000_000_000_000_001;
const HOOK_TOKEN: &str = "operator-hook-token-e2e";
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// The app against `discord`, its operator alerts going to the fake's incoming webhook.
async fn start(discord: &Arc<FakeDiscord>, extra: &[(&str, &str)], clock: Clock) -> TestApp {
    let url = discord.incoming_webhook(HOOK, HOOK_TOKEN);
    let mut env = vec![("DOCOBO_ALERTS__OPERATOR_WEBHOOK_URL", url.as_str())];
    env.extend_from_slice(extra);
    bot::start_app_at(discord, &env, clock).await
}

/// What the operator's webhook got so far.
fn operator_messages(discord: &FakeDiscord) -> Vec<String> {
    discord
        .webhook_executions(HOOK)
        .iter()
        .filter_map(|b| b["content"].as_str().map(str::to_owned))
        .collect()
}

/// Waits for an operator alert containing `needle`.
async fn wait_for_operator(discord: &FakeDiscord, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(m) = operator_messages(discord)
            .into_iter()
            .find(|m| m.contains(needle))
        {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no operator alert containing {needle:?}: {:?}",
            operator_messages(discord)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn count(messages: &[String], needle: &str) -> usize {
    messages.iter().filter(|m| m.contains(needle)).count()
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

/// Lets the sender run, then returns (log channel, operator) messages.
async fn settled(discord: &FakeDiscord) -> (Vec<String>, Vec<String>) {
    tokio::time::sleep(Duration::from_millis(400)).await;
    (
        messages_in(discord, LOG_CHANNEL),
        operator_messages(discord),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_failing_at_a_guilds_url_tell_its_staff_once_then_a_summary() {
    let discord = bot::fake_discord().await;
    let app = start(&discord, &[], Clock::fixed(now_ms())).await;
    let path = seed_polar(&app, SUPPORTER).await;
    let body = polar_event("subscription.active", "active", false, now_ms());
    let forge = |n: usize| {
        PolarKey::utf8("polar_whs_not_the_secret")
            .delivery_now(&format!("msg_forged_{n}"), body.clone())
            .request(&app.client, &app.url(&path))
            .send()
    };
    // Two refusals are not yet a pattern (a provider retrying once after a rotation).
    for n in 0..2 {
        assert_eq!(forge(n).await.expect("send").status(), 403);
    }
    assert_eq!(count(&settled(&discord).await.0, "Webhook signatures"), 0);
    assert_eq!(forge(2).await.expect("send").status(), 403);
    let alert = wait_for_message(&discord, LOG_CHANNEL, "Webhook signatures failing").await;
    assert!(
        alert.contains("3 deliveries from Polar")
            && alert.contains("does not match the one Polar shows")
            && alert.contains("paste it into /setup"),
        "{alert}"
    );
    let key = path.rsplit('/').next().expect("key");
    assert!(
        !alert.contains(POLAR_SECRET) && !alert.contains(key),
        "{alert}"
    );

    // More refusals within the hour: counted, not sent.
    for n in 3..5 {
        assert_eq!(forge(n).await.expect("send").status(), 403);
    }
    let (staff, operator) = settled(&discord).await;
    assert_eq!(count(&staff, "Webhook signatures"), 1, "{staff:?}");
    assert!(operator.is_empty(), "the owner's to fix: {operator:?}");
    // The window closes: one summary.
    app.advance(HOUR);
    let summary = wait_for_message(&discord, LOG_CHANNEL, "happened 2 more times").await;
    assert!(summary.contains("in the last hour"), "{summary}");
    assert!(
        metrics(&app)
            .await
            .contains(r#"docobo_alerts_total{kind="webhook_signature"} 3"#)
    );
    app.stop().await;
}

/// A guild selling Supporter through Polar, whose API is `api` (a fake).
async fn polar_shop(app: &TestApp, api: &FakeApi) {
    let guild = GuildId::new(GUILD).expect("guild");
    app.add_guild(
        guild,
        "polar",
        &[
            ("access_token", "polar_oat_alerts"),
            ("webhook_secret", POLAR_SECRET),
            ("environment", "sandbox"),
            ("api_url", &api.url),
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
    app.db
        .call(|conn| {
            conn.execute(
                "UPDATE guilds SET log_channel_id = ?1, owner_id = ?2",
                [LOG_CHANNEL.cast_signed(), bot::OWNER.cast_signed()],
            )?;
            Ok(())
        })
        .await
        .expect("log channel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_polar_cannot_create_is_told_to_the_staff_and_to_the_operator() {
    let discord = bot::fake_discord().await;
    let api = bot::polar_api().await;
    api.respond(
        "POST",
        "/v1/checkouts/",
        500,
        &json!({"detail": "Internal Server Error"}),
    );
    let app = start(&discord, &[], Clock::System).await;
    polar_shop(&app, &api).await;

    let pick = bot::join_and_pick(&discord).await;
    let answer = bot::reply(&discord, &pick).await;
    assert!(
        !answer.body.to_string().contains("buy.polar.sh"),
        "{answer:?}"
    );
    let staff = wait_for_message(&discord, LOG_CHANNEL, "Checkout could not be created").await;
    assert!(staff.contains("They could not pay"), "{staff}");
    assert!(!staff.contains("polar_oat_alerts"), "{staff}");
    let operator = wait_for_operator(&discord, "Payment plugin failing").await;
    assert!(
        operator.contains("Polar's API failed during create-checkout"),
        "{operator}"
    );
    assert!(!operator.contains("polar_oat_alerts"), "{operator}");
    app.stop().await;
}

/// An app with the test provider (which traps on demand) for guild [`GUILD`]; its path.
async fn test_provider_app(discord: &Arc<FakeDiscord>, clock: Clock) -> (TestApp, String) {
    let url = discord.incoming_webhook(HOOK, HOOK_TOKEN);
    let app = crate::app::test_app()
        .discord(Arc::clone(discord))
        .plugin(
            "test.wasm",
            docobo::providers::built_plugin("docobo_test_provider"),
        )
        .envs(&[
            ("DOCOBO_ALERTS__OPERATOR_WEBHOOK_URL", url.as_str()),
            ("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0"),
        ])
        .clock(clock)
        .start()
        .await;
    let key = app
        .add_guild(
            GuildId::new(GUILD).expect("guild"),
            "test",
            &[("secret", "s")],
        )
        .await;
    (app, format!("/webhooks/test/{key}"))
}

async fn deliver_test(app: &TestApp, path: &str, mode: &str, id: usize) -> u16 {
    let body = json!({ "events": [{
        "event_id": format!("evt-{id}"), "kind": "ignored", "occurred_at": 1_767_225_600_000_i64,
    }] });
    app.client
        .post(app.url(path))
        .header("x-test-secret", "s")
        .header("x-test-mode", mode)
        .json(&body)
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_plugin_and_an_error_rate_over_five_percent_are_told_to_the_operator() {
    let discord = bot::fake_discord().await;
    let (app, path) = test_provider_app(&discord, Clock::fixed(now_ms())).await;
    assert_eq!(deliver_test(&app, &path, "trap", 0).await, 500);
    let crashed = wait_for_operator(&discord, "Payment plugin failing").await;
    assert!(crashed.contains("the plugin crashed"), "{crashed}");
    assert!(!crashed.contains(HOOK_TOKEN), "{crashed}");
    // 1 failure of 20 is 5 %: not over it.
    for n in 1..20 {
        assert_eq!(deliver_test(&app, &path, "ok", n).await, 202);
    }
    assert_eq!(count(&settled(&discord).await.1, "error rate"), 0);
    assert_eq!(deliver_test(&app, &path, "trap", 20).await, 500);
    let rate = wait_for_operator(&discord, "Webhook error rate high").await;
    assert!(rate.contains("2 of the last 21"), "{rate}");
    let (_, operator) = settled(&discord).await;
    assert_eq!(
        operator.len(),
        2,
        "the second crash is summarised: {operator:?}"
    );

    // Past the window, the crash's repeat is summarised; the rate's window forgot.
    app.advance(HOUR);
    let summary = wait_for_operator(&discord, "happened 1 more time").await;
    assert!(summary.contains("Payment plugin failing"), "{summary}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_error_is_told_to_the_operator() {
    let discord = bot::fake_discord().await;
    let app = start(&discord, &[], Clock::System).await;
    let path = seed_polar(&app, SUPPORTER).await;
    app.db
        .call(|conn| {
            conn.execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON webhook_events
                 BEGIN SELECT RAISE(ABORT, 'constraint failed: refused by the test'); END",
            )?;
            Ok(())
        })
        .await
        .expect("trigger");
    let body = polar_event("subscription.active", "active", false, now_ms());
    let response = bot::deliver_polar(&app, &path, "msg_db", &body).await;
    assert_eq!(response.status(), 500);
    let alert = wait_for_operator(&discord, "Database error").await;
    assert!(alert.contains("refused by the test"), "{alert}");
    let (staff, _) = settled(&discord).await;
    assert_eq!(count(&staff, "Database"), 0, "{staff:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_silent_while_subscriptions_run_is_told_to_the_operator() {
    let discord = bot::fake_discord().await;
    let clock = Clock::fixed(now_ms());
    let app = start(&discord, &[], clock.clone()).await;
    let path = seed_polar(&app, SUPPORTER).await;
    buy(&app, &path, "msg_silence").await;
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("granted");
    // 47 hours of quiet is within alerts.provider_silence_hours (48).
    clock.advance(47 * HOUR);
    assert_eq!(count(&settled(&discord).await.1, "silent"), 0);
    tokio::time::sleep(Duration::from_millis(1200)).await; // a sweep
    assert!(operator_messages(&discord).is_empty());
    clock.advance(2 * HOUR);
    let alert = wait_for_operator(&discord, "Provider webhooks silent").await;
    assert!(
        alert.contains("from polar for 49 h") && alert.contains("1 of its subscriptions"),
        "{alert}"
    );
    app.stop().await;
}

/// The role PUT answers `fault` from now on (the faults before are cleared).
fn fail_puts(discord: &FakeDiscord, fault: Fault) {
    discord.clear_faults();
    discord.inject_fault(FaultRule::new("PUT", "/guilds/*/members/*/roles/*", fault));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_grant_refused_for_a_permission_or_a_deleted_role_is_told_to_the_staff() {
    let discord = bot::fake_discord().await;
    let app = start(&discord, &[], Clock::System).await;
    let path = seed_polar(&app, SUPPORTER).await;
    fail_puts(&discord, Fault::error(403, 50013, "Missing Permissions"));
    buy(&app, &path, "msg_perm").await;
    let alert = wait_for_message(&discord, LOG_CHANNEL, "Role could not be changed").await;
    assert!(
        alert.contains("lacks the Manage Roles permission")
            && alert.contains("**Fix:** Server Settings → Roles"),
        "{alert}"
    );
    // The role is deleted at Discord instead: another cause, told too (the sweep retries).
    fail_puts(&discord, Fault::error(404, 10011, "Unknown Role"));
    let alert = wait_for_message(&discord, LOG_CHANNEL, "Paid role deleted").await;
    assert!(
        alert.contains("no longer exists") && alert.contains("run /setup"),
        "{alert}"
    );
    let (staff, operator) = settled(&discord).await;
    assert_eq!(count(&staff, "Role could not be changed"), 1, "{staff:?}");
    assert!(operator.is_empty(), "{operator:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_failing_role_changes_tells_the_staff_and_rate_limits_the_operator() {
    let discord = bot::fake_discord().await;
    let app = start(&discord, &[], Clock::System).await;
    let path = seed_polar(&app, SUPPORTER).await;
    fail_puts(&discord, Fault::error(502, 0, "Bad Gateway"));
    buy(&app, &path, "msg_5xx").await;
    let alert = wait_for_message(&discord, LOG_CHANNEL, "Discord failing role changes").await;
    assert!(
        alert.contains("twice in a row") && alert.contains("HTTP 502"),
        "{alert}"
    );
    fail_puts(&discord, Fault::rate_limited(0.1));
    let limited = wait_for_operator(&discord, "Discord rate limit").await;
    assert!(limited.contains(&format!("guild {GUILD}")), "{limited}");
    // Discord answers again: the role lands.
    discord.clear_faults();
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("granted in the end");
    let (staff, _) = settled(&discord).await;
    assert_eq!(
        count(&staff, "rate limit"),
        0,
        "the operator's, not the staff's: {staff:?}"
    );
    app.stop().await;
}

#[test]
fn the_operator_webhook_url_is_a_secret_checked_without_showing_it() {
    let load = |url: &str| {
        docobo::Config::load(
            None,
            false,
            [
                ("DOCOBO_DISCORD__TOKEN".to_owned(), "t".to_owned()),
                (
                    "DOCOBO_ALERTS__OPERATOR_WEBHOOK_URL".to_owned(),
                    url.to_owned(),
                ),
            ],
        )
    };
    for bad in [
        "http://discord.example/api/webhooks/1/tok-secret",
        "discord.com/api/webhooks/1/tok-secret",
    ] {
        let error = load(bad).expect_err(bad).to_string();
        assert!(error.contains("alerts.operator_webhook_url"), "{error}");
        assert!(error.contains("https"), "{error}");
        assert!(!error.contains("tok-secret"), "{error}");
    }
    for good in [
        "https://discord.com/api/webhooks/1/hooksecret123",
        "http://127.0.0.1:9/api/webhooks/1/hooksecret123",
    ] {
        let config = load(good).expect(good);
        assert!(
            !format!("{config:?}").contains("hooksecret123"),
            "redacted in Debug"
        );
    }
}
