//! What the README promises and nothing else tested: `/help`, guild registration, `/health`'s
//! fields and its 503, the owner's DM when there is no log channel, a Polar refund through to
//! the role's removal, and the provider poll end to end (Docobo down while the provider
//! sent; the poll applies what it missed once; its cursor survives a restart).

use std::time::Duration;

use docobo::db::guilds;
use docobo::domain::{Billing, GuildId, RoleId};
use docobo_testkit::discord::{GuildSpec, SlashCommand};
use serde_json::{Value, json};

use crate::app::{TestApp, fixtures, test_app};
use crate::bot::{
    BUYER, DAY_MS, GUILD, LOG_CHANNEL, MEMBER, OWNER, POLAR_SECRET, PRODUCT, SUPPORTER, VIP, WAIT,
    buy, deliver_polar, fake_discord, iso, messages_in, now_ms, polar_api, role_puts, seed_polar,
    start_app, the_subscription, wait_for_subscription,
};
use crate::helpers::health;

/// Polls until `check` holds (up to [`WAIT`]).
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_tells_members_how_to_buy_and_admins_how_to_set_up() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;
    let member = discord
        .run_slash_command(&SlashCommand::new(GUILD, MEMBER, "help"), WAIT)
        .await
        .expect("answered");
    assert!(member.is_ephemeral(), "{member:?}");
    let text = member.content().expect("text");
    assert!(text.contains("/join") && text.contains("/status"), "{text}");
    assert!(
        !text.contains("/setup"),
        "members are not shown the admin part: {text}"
    );
    let owner = discord
        .run_slash_command(&SlashCommand::new(GUILD, OWNER, "help"), WAIT)
        .await
        .expect("answered");
    let text = owner.content().expect("text");
    assert!(
        text.contains("For admins") && text.contains("/setup"),
        "{text}"
    );
    app.stop().await;
}

/// The guild's row once the bot has recorded its name (READY names only the id; the
/// guild's `GUILD_CREATE` brings the name and the owner).
async fn named_guild(app: &TestApp, guild: GuildId) -> guilds::Guild {
    let db = app.db.clone();
    eventually("the guild is registered with its name", async || {
        db.read(move |conn| guilds::get(conn, guild))
            .await
            .expect("read")
            .filter(|g| !g.name.is_empty())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guilds_the_bot_is_in_are_registered_with_their_name_and_owner() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;
    let guild = GuildId::new(GUILD).expect("guild");
    let seen = named_guild(&app, guild).await;
    assert_eq!(seen.name, "Shop");
    assert_eq!(seen.owner_id.map(docobo::domain::Id::get), Some(OWNER));
    assert!(seen.provider.is_none(), "registered, not set up");
    // A guild that adds the bot while it runs.
    let later = 7_777_u64;
    discord
        .join_guild(&GuildSpec::new(later, "Later").owner(OWNER))
        .expect("join");
    let later_id = GuildId::new(later).expect("guild");
    let added = named_guild(&app, later_id).await;
    assert_eq!(added.name, "Later");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_the_gateway_and_the_plugins_and_is_503_when_discord_refuses_the_bot() {
    let discord = fake_discord().await;
    // A file in the plugins folder that is not a component: reported, not fatal.
    let junk = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(junk.path(), b"not wasm").expect("write");
    let app = test_app()
        .discord(std::sync::Arc::clone(&discord))
        .plugin("broken.wasm", junk.path())
        .start()
        .await;
    let (status, body) = eventually("the gateway connects", async || {
        let (status, body) = health(&app).await;
        (body["gateway"] == "connected").then_some((status, body))
    })
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["plugins"], json!(["polar", "sepay"]));
    assert_eq!(body["plugins_failed"], 1);
    app.stop().await;

    // Discord refuses the token (close code 4004): only a person can fix that.
    let refused = test_app()
        .discord(std::sync::Arc::clone(&discord))
        .env("DOCOBO_DISCORD__TOKEN", "not-the-bot-token")
        .start()
        .await;
    let (status, body) = eventually("the gateway fails", async || {
        let (status, body) = health(&refused).await;
        (body["gateway"] == "failed").then_some((status, body))
    })
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["database"], "ok", "the webhook side still works");
    refused.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_log_channel_the_owner_is_told_by_direct_message() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;
    let path = seed_polar(&app, VIP).await;
    let named = named_guild(&app, GuildId::new(GUILD).expect("guild")).await;
    assert_eq!(named.name, "Shop");
    // seed_polar sets a log channel: take it away again.
    app.db
        .call(|conn| {
            conn.execute("UPDATE guilds SET log_channel_id = NULL", [])?;
            Ok(())
        })
        .await
        .expect("no log channel");
    // VIP is above Docobo's role: the grant cannot happen, and the owner must act.
    buy(&app, &path, "msg_dm").await;
    let dm = discord.wait_for_dm(OWNER, WAIT).await.expect("a DM");
    let text = dm.message["content"].as_str().unwrap_or_default();
    assert!(text.contains("drag Docobo's role above @VIP"), "{text}");
    assert!(text.contains("Shop"), "the DM names the server: {text}");
    assert!(messages_in(&discord, LOG_CHANNEL).is_empty());
    app.stop().await;
}

/// Polar's `order.refunded` for the Supporter subscription BUYER bought.
fn polar_refund(at: i64) -> Vec<u8> {
    let text = std::fs::read_to_string(fixtures().join("polar-order-paid.json")).expect("fixture");
    let mut value: Value = serde_json::from_str(&text).expect("json");
    value["type"] = json!("order.refunded");
    value["timestamp"] = json!(iso(at));
    value["data"]["subscription_id"] = json!("sub_e2e");
    value["data"]["billing_reason"] = json!("subscription_cycle");
    value["data"]["status"] = json!("refunded");
    value["data"]["refunded_amount"] = json!(499);
    value["data"]["modified_at"] = json!(iso(at));
    serde_json::to_vec(&value).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polar_refund_removes_the_role() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;
    let path = seed_polar(&app, SUPPORTER).await;
    buy(&app, &path, "msg_bought").await;
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("granted");
    let response = deliver_polar(&app, &path, "msg_refund", &polar_refund(now_ms() + 1_000)).await;
    assert_eq!(response.status(), 202);
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, false, WAIT)
        .await
        .expect("the refund removes the role");
    assert_eq!(
        the_subscription(&app).await.state.status,
        docobo::domain::SubscriptionStatus::Refunded
    );
    eventually("the refund is announced", async || {
        messages_in(&discord, LOG_CHANNEL)
            .into_iter()
            .find(|m| m.contains("refunded"))
    })
    .await;
    app.stop().await;
}

/// A Docobo subscription in Polar's list, for `user`'s Supporter role.
fn listed_subscription(id: &str, user: u64, modified: i64) -> Value {
    json!({
        "id": id, "status": "active", "cancel_at_period_end": false,
        "created_at": iso(modified - DAY_MS), "modified_at": iso(modified),
        "current_period_start": iso(modified - DAY_MS),
        "current_period_end": iso(modified + 30 * DAY_MS),
        "amount": 499, "currency": "usd", "product_id": PRODUCT,
        "metadata": {"docobo_guild_id": GUILD.to_string(), "docobo_user_id": user.to_string(),
                     "docobo_role_id": SUPPORTER.to_string()},
    })
}

/// A paid one-time order in Polar's list, for MEMBER's Supporter role.
fn listed_order(created: i64) -> Value {
    json!({
        "id": "ord_e2e", "status": "paid", "paid": true, "billing_reason": "purchase",
        "created_at": iso(created), "modified_at": iso(created),
        "total_amount": 2000, "currency": "usd", "product_id": PRODUCT,
        "subscription_id": null,
        "metadata": {"docobo_guild_id": GUILD.to_string(), "docobo_user_id": MEMBER.to_string(),
                     "docobo_role_id": SUPPORTER.to_string()},
    })
}

fn page(items: &[Value]) -> Value {
    json!({"items": items, "pagination": {"total_count": items.len(), "max_page": 1}})
}

async fn poll_cursor(app: &TestApp) -> Option<String> {
    let guild = GuildId::new(GUILD).expect("guild");
    app.db
        .read(move |conn| guilds::setting(conn, guild, "poll_cursor"))
        .await
        .expect("read")
}

/// Waits until the provider's subscription list has been read `n` more times.
async fn polls(api: &crate::fake_api::FakeApi, n: usize) {
    let reads = || {
        api.requests()
            .iter()
            .filter(|r| r.path == "/v1/subscriptions/")
            .count()
    };
    let target = reads() + n;
    eventually("the provider is polled", async || {
        (reads() >= target).then_some(())
    })
    .await;
}

async fn polled_events(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM webhook_events WHERE external_event_id LIKE 'poll:%'")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_applies_what_webhooks_missed_while_docobo_was_down_once_across_restarts() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    // Docobo runs, set up for Polar, polling every second; nothing is bought yet.
    let app = start_app(
        &discord,
        &[("DOCOBO_SUBSCRIPTIONS__POLL_INTERVAL_SECS", "1")],
    )
    .await;
    let guild = GuildId::new(GUILD).expect("guild");
    app.add_guild(
        guild,
        "polar",
        &[
            ("access_token", "polar_oat_e2e_token"),
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
    polls(&api, 2).await;
    eventually("the first cursor is stored", async || {
        poll_cursor(&app).await
    })
    .await;
    let stopped = app.stop().await;

    // While it is down, BUYER subscribes and MEMBER buys once: both webhooks are lost.
    let subscribed = now_ms() - 60_000;
    api.respond(
        "GET",
        "/v1/subscriptions/",
        200,
        &page(&[listed_subscription("sub_e2e", BUYER, subscribed)]),
    );
    api.respond(
        "GET",
        "/v1/orders/",
        200,
        &page(&[listed_order(now_ms() - 30_000)]),
    );

    // Back up: the poll finds both and the roles follow.
    let app = stopped.start().await;
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("the missed subscription is granted");
    discord
        .wait_for_member_role(GUILD, MEMBER, SUPPORTER, true, WAIT)
        .await
        .expect("the missed one-time order is granted");
    wait_for_subscription(&app, |s| s.role_applied).await;
    assert_eq!(
        polled_events(&app).await,
        2,
        "one event per missed delivery"
    );

    // Restarted, it continues from its stored cursor: a subscription modified a day ago is
    // older than the cursor (a lost cursor would look back three days and apply it), and
    // the two already applied are recognised, not applied again.
    api.respond(
        "GET",
        "/v1/subscriptions/",
        200,
        &page(&[
            listed_subscription("sub_e2e", BUYER, subscribed),
            listed_subscription("sub_old", OWNER, now_ms() - DAY_MS),
        ]),
    );
    let app = app.restart().await;
    polls(&api, 3).await;
    assert_eq!(
        app.count("SELECT count(*) FROM subscriptions WHERE external_id = 'sub_old'")
            .await,
        0,
        "the stored cursor was used"
    );
    assert_eq!(
        polled_events(&app).await,
        2,
        "polled again: nothing applied twice"
    );
    assert_eq!(app.count("SELECT count(*) FROM subscriptions").await, 2);
    assert_eq!(role_puts(&discord, BUYER, SUPPORTER), 1);
    assert_eq!(role_puts(&discord, MEMBER, SUPPORTER), 1);
    app.stop().await;
}
