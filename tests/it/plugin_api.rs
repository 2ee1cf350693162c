//! Plugin API versions end to end: the Polar and SePay components exactly as Docobo 0.1
//! shipped them (built against the frozen `provider@0.1.0`), dropped into `plugins.dir` as a
//! community plugin would be, serve real signed deliveries through the 0.1 adapter; and the
//! meanings 0.2 adds (pause, trial, partial refund) move roles at the fake Discord.

use std::path::PathBuf;
use std::time::Duration;

use docobo::domain::{Billing, GuildId, ProviderId, RoleId, SubscriptionStatus, UserId};
use docobo::providers::{API_VERSION, PluginSource};
use docobo_testkit::webhooks::{SepayTransfer, sepay_request};
use serde_json::{Value, json};

use crate::app::{TestApp, test_app};
use crate::bot::{
    BUYER, DAY_MS, GUILD, POLAR_SECRET, PRODUCT, SUPPORTER, WAIT, deliver_polar, fake_discord,
    polar_event, the_subscription, wait_for_subscription,
};

fn old_plugin(name: &str) -> PathBuf {
    docobo_testkit::fixtures::dir()
        .join("plugins")
        .join(format!("{name}-0.1.0.wasm"))
}

fn guild() -> GuildId {
    GuildId::new(GUILD).expect("guild")
}

/// Waits until the buyer does (or does not) hold the Supporter role at the fake Discord.
async fn wait_for_role(discord: &docobo_testkit::FakeDiscord, held: bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let roles = discord.member_roles(GUILD, BUYER).expect("member");
        if roles.contains(&SUPPORTER) == held {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the buyer's roles stayed {roles:?} (wanted Supporter held: {held})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An app whose `polar` plugin is the one in `plugins.dir` (`file`, or the built-in), with the
/// Supporter role for sale through [`PRODUCT`]. Returns the webhook path.
async fn polar_shop(
    file: Option<PathBuf>,
) -> (TestApp, std::sync::Arc<docobo_testkit::FakeDiscord>, String) {
    let discord = fake_discord().await;
    let mut builder = test_app().discord(discord.clone());
    if let Some(file) = file {
        builder = builder.plugin("polar.wasm", file);
    }
    let app = builder.start().await;
    let key = app
        .add_guild(
            guild(),
            "polar",
            &[
                ("webhook_secret", POLAR_SECRET),
                ("access_token", "polar_oat_x"),
            ],
        )
        .await;
    app.add_paid_role(
        guild(),
        RoleId::new(SUPPORTER).expect("role"),
        (500, "USD"),
        Billing::Monthly,
        Some(PRODUCT),
    )
    .await;
    (app, discord, format!("/webhooks/polar/{key}"))
}

/// What `/join` leaves behind for a bank transfer: a pending checkout waiting for `code`.
async fn pending_checkout(app: &TestApp, paid_role: i64, code: &'static str) {
    app.db
        .call(move |conn| {
            docobo::db::members::upsert(conn, guild(), UserId::new(BUYER).expect("user"), None)?;
            docobo::db::subscriptions::insert(
                conn,
                &docobo::db::subscriptions::NewSubscription {
                    guild_id: guild(),
                    user_id: UserId::new(BUYER).expect("user"),
                    paid_role_id: paid_role,
                    provider: ProviderId::parse("sepay").expect("id"),
                    scope: docobo::domain::Scope::Guild(guild()),
                    external_id: None,
                    state: docobo::domain::SubscriptionState {
                        status: SubscriptionStatus::Pending,
                        period_end: None,
                        last_event_at: None,
                    },
                    payment_code: Some(code.into()),
                },
            )
        })
        .await
        .expect("pending checkout");
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[tokio::test]
async fn the_polar_plugin_built_against_0_1_0_serves_signed_webhooks_from_the_plugins_folder() {
    let (app, discord, path) = polar_shop(Some(old_plugin("polar"))).await;
    let info = app.services.providers.plugin("polar").expect("loaded");
    assert_eq!(info.api_version, "0.1.0");
    assert_ne!(info.api_version, API_VERSION);
    assert!(
        matches!(&info.source, PluginSource::File(p) if p.ends_with("polar.wasm")),
        "the file replaces the built-in: {:?}",
        info.source
    );
    assert_eq!(info.capabilities.names(), Vec::<&str>::new());
    assert!(app.services.providers.failures().is_empty());

    let t0 = now_ms();
    let response = deliver_polar(
        &app,
        &path,
        "msg_old_active",
        &polar_event("subscription.active", "active", false, t0),
    )
    .await;
    assert_eq!(response.status(), 202);
    wait_for_role(&discord, true).await;
    let sub = the_subscription(&app).await;
    assert_eq!(sub.state.status, SubscriptionStatus::Active);
    assert_eq!(sub.user_id, UserId::new(BUYER).expect("user"));

    // A tampered delivery is refused by the old plugin's own verification.
    let mut tampered = polar_event("subscription.revoked", "canceled", false, t0 + 500);
    let signed = docobo_testkit::webhooks::PolarKey::utf8(POLAR_SECRET)
        .delivery_now("msg_old_tampered", tampered.clone());
    tampered.extend_from_slice(b" ");
    let response = app
        .client
        .post(app.url(&path))
        .headers({
            let mut h = reqwest::header::HeaderMap::new();
            for (k, v) in signed.headers() {
                h.insert(k, v.parse().expect("header"));
            }
            h
        })
        .body(tampered)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 403);
    assert_eq!(
        the_subscription(&app).await.state.status,
        SubscriptionStatus::Active
    );

    // Revoked: the role goes.
    let response = deliver_polar(
        &app,
        &path,
        "msg_old_revoke",
        &polar_event("subscription.revoked", "canceled", false, t0 + 1000),
    )
    .await;
    assert_eq!(response.status(), 202);
    wait_for_role(&discord, false).await;
    assert_eq!(
        the_subscription(&app).await.state.status,
        SubscriptionStatus::Revoked
    );
    // A 0.1 plugin has none of the optional calls: the host answers without calling it.
    let err = app
        .services
        .providers
        .list_subscribers("polar", &Vec::new(), None)
        .await
        .expect_err("unsupported");
    assert!(err.to_string().contains("not supported"), "{err}");
    assert!(err.to_string().contains("0.1.0"), "{err}");
}

#[tokio::test]
async fn the_sepay_plugin_built_against_0_1_0_activates_a_pass_from_the_plugins_folder() {
    const KEY: &str = "sepay-old-key";
    let discord = fake_discord().await;
    let app = test_app()
        .discord(discord.clone())
        .plugin("sepay-0.1.0.wasm", old_plugin("sepay"))
        .start()
        .await;
    let info = app.services.providers.plugin("sepay").expect("loaded");
    assert_eq!(info.api_version, "0.1.0");
    let (path, paid_role) = app
        .add_sepay_pass(guild(), RoleId::new(SUPPORTER).expect("role"), KEY)
        .await;
    pending_checkout(&app, paid_role, "DCB12345").await;
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::fixed(jiff::tz::offset(7)))
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    let body = SepayTransfer::fixture()
        .id(91)
        .amount(50_000)
        .date(&today)
        .body();
    let response = sepay_request(&app.client, &app.url(&path), KEY, body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"success": true})
    );
    wait_for_role(&discord, true).await;
    // The wrong API key is refused by the old plugin.
    let response = sepay_request(&app.client, &app.url(&path), "wrong", body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 403);
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_events WHERE outcome = 'applied'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_paused_polar_subscription_loses_the_role_and_gets_it_back_on_resume() {
    let (app, discord, path) = polar_shop(None).await;
    assert_eq!(
        app.services
            .providers
            .plugin("polar")
            .expect("polar")
            .api_version,
        API_VERSION
    );
    let t0 = now_ms();
    let send = |id: &'static str, body: Vec<u8>| {
        let app = &app;
        let path = path.clone();
        async move { deliver_polar(app, &path, id, &body).await }
    };
    assert_eq!(
        send(
            "m1",
            polar_event("subscription.active", "active", false, t0)
        )
        .await
        .status(),
        202
    );
    wait_for_role(&discord, true).await;
    assert_eq!(
        send(
            "m2",
            polar_event("subscription.paused", "paused", false, t0 + 1000)
        )
        .await
        .status(),
        202
    );
    wait_for_role(&discord, false).await;
    assert_eq!(
        the_subscription(&app).await.state.status,
        SubscriptionStatus::Paused
    );
    assert_eq!(
        send(
            "m3",
            polar_event("subscription.resumed", "active", false, t0 + 2000)
        )
        .await
        .status(),
        202
    );
    wait_for_role(&discord, true).await;
    wait_for_subscription(&app, |s| s.state.status == SubscriptionStatus::Active).await;
}

#[tokio::test]
async fn a_polar_trial_grants_the_role_until_it_ends() {
    let (app, discord, path) = polar_shop(None).await;
    let t0 = now_ms();
    let mut trial: Value =
        serde_json::from_slice(&polar_event("subscription.created", "trialing", false, t0))
            .expect("json");
    trial["data"]["trial_start"] = json!(
        jiff::Timestamp::from_millisecond(t0)
            .expect("t")
            .to_string()
    );
    trial["data"]["trial_end"] = json!(
        jiff::Timestamp::from_millisecond(t0 + 7 * DAY_MS)
            .expect("t")
            .to_string()
    );
    let response = deliver_polar(
        &app,
        &path,
        "m_trial",
        &serde_json::to_vec(&trial).expect("json"),
    )
    .await;
    assert_eq!(response.status(), 202);
    wait_for_role(&discord, true).await;
    assert_eq!(
        the_subscription(&app).await.state.status,
        SubscriptionStatus::Trialing
    );
}

/// `order.refunded` for the subscription order: `refunded` of `total` cents, Polar's status.
fn polar_refund(at: i64, refunded: i64, status: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(crate::app::fixtures().join("polar-order-paid.json"))
        .expect("fixture");
    let mut value: Value = serde_json::from_str(&text).expect("json");
    value["type"] = json!("order.refunded");
    value["data"]["subscription_id"] = json!("sub_e2e");
    value["data"]["billing_reason"] = json!("subscription_cycle");
    value["data"]["status"] = json!(status);
    value["data"]["total_amount"] = json!(500);
    value["data"]["refunded_amount"] = json!(refunded);
    value["data"]["modified_at"] = json!(
        jiff::Timestamp::from_millisecond(at)
            .expect("t")
            .to_string()
    );
    serde_json::to_vec(&value).expect("json")
}

#[tokio::test]
async fn a_partial_polar_refund_keeps_the_role_and_a_full_one_removes_it() {
    let (app, discord, path) = polar_shop(None).await;
    let t0 = now_ms();
    deliver_polar(
        &app,
        &path,
        "m_buy",
        &polar_event("subscription.active", "active", false, t0),
    )
    .await;
    wait_for_role(&discord, true).await;
    let revenue = "SELECT coalesce(SUM(minor_units), 0) FROM revenue_months WHERE currency = 'USD'";
    let paid = app.count(revenue).await;
    assert!(paid > 0, "the purchase counts as revenue");
    let response = deliver_polar(
        &app,
        &path,
        "m_part",
        &polar_refund(t0 + 1000, 200, "partially_refunded"),
    )
    .await;
    assert_eq!(response.status(), 202);
    // Access is kept, but the money went back: the overview's revenue says so.
    assert_eq!(app.count(revenue).await, paid - 200);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM webhook_events WHERE outcome = 'ignored' AND detail LIKE 'partial refund of 200 USD%' AND subscription_id IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(
        the_subscription(&app).await.state.status,
        SubscriptionStatus::Active
    );
    assert!(
        discord
            .member_roles(GUILD, BUYER)
            .expect("member")
            .contains(&SUPPORTER)
    );
    deliver_polar(
        &app,
        &path,
        "m_full",
        &polar_refund(t0 + 2000, 500, "refunded"),
    )
    .await;
    wait_for_role(&discord, false).await;
    assert_eq!(
        the_subscription(&app).await.state.status,
        SubscriptionStatus::Refunded
    );
}

/// Issue 21, item 6: a tier whose owner chose `/admin policy … partial_refund:revoke` loses
/// access on a partial refund, as on a full one; the choice is in the audit trail.
#[tokio::test]
async fn a_partial_refund_ends_access_when_the_tiers_policy_says_so() {
    use docobo_testkit::discord::SlashCommand;
    let (app, discord, path) = polar_shop(None).await;
    let policy = SlashCommand::new(GUILD, crate::bot::OWNER, "admin")
        .subcommand("policy")
        .option("tier", SUPPORTER.to_string())
        .option("partial_refund", "revoke");
    let reply = discord
        .run_slash_command(&policy, crate::bot::WAIT)
        .await
        .expect("/admin policy answers");
    assert!(
        reply
            .content()
            .is_some_and(|t| t.contains("ends the member's access")),
        "{reply:?}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_events WHERE event_type = 'admin.policy'")
            .await,
        1
    );
    let t0 = now_ms();
    deliver_polar(
        &app,
        &path,
        "m_pol_buy",
        &polar_event("subscription.active", "active", false, t0),
    )
    .await;
    wait_for_role(&discord, true).await;
    let response = deliver_polar(
        &app,
        &path,
        "m_pol_part",
        &polar_refund(t0 + 1000, 200, "partially_refunded"),
    )
    .await;
    assert_eq!(response.status(), 202);
    wait_for_role(&discord, false).await;
    assert_eq!(
        the_subscription(&app).await.state.status,
        SubscriptionStatus::Refunded
    );
}

#[tokio::test]
async fn a_plan_change_moves_the_subscription_to_the_new_products_role() {
    use docobo_testkit::discord::{FakeDiscord, RoleSpec};
    const GOLD: u64 = 3002;
    let discord = std::sync::Arc::new(
        FakeDiscord::builder()
            .guild(crate::bot::shop().role(RoleSpec::new(GOLD, "Gold", 1, 0)))
            .start()
            .await
            .expect("fake Discord"),
    );
    let app = test_app().discord(discord.clone()).start().await;
    let key = app
        .add_guild(
            guild(),
            "polar",
            &[
                ("webhook_secret", POLAR_SECRET),
                ("access_token", "polar_oat_x"),
            ],
        )
        .await;
    let path = format!("/webhooks/polar/{key}");
    for (role, product) in [(SUPPORTER, PRODUCT), (GOLD, "prod_gold")] {
        app.add_paid_role(
            guild(),
            RoleId::new(role).expect("role"),
            (500, "USD"),
            Billing::Monthly,
            Some(product),
        )
        .await;
    }
    let t0 = now_ms();
    deliver_polar(
        &app,
        &path,
        "m_buy",
        &polar_event("subscription.active", "active", false, t0),
    )
    .await;
    wait_for_role(&discord, true).await;
    // Polar does not say which product a subscription left, so its plugin sends no
    // plan-change: this is what a 0.2 plugin that does (Stripe) gives the host.
    let change = docobo::domain::ProviderEvent {
        event_id: "plan-1".into(),
        event_type: "customer.subscription.updated".into(),
        kind: docobo::domain::EventKind::PlanChange,
        subscription_id: Some("sub_e2e".into()),
        guild: None,
        user: None,
        role: None,
        product_id: Some("prod_gold".into()),
        payment_code: None,
        status: Some(SubscriptionStatus::Active),
        period_end: Some(t0 + 30 * DAY_MS),
        amount: None,
        occurred_at: t0 + 1000,
        customer_id: None,
        previous_product_id: Some(PRODUCT.into()),
        refund: None,
        dispute: None,
        test: false,
    };
    let provider = ProviderId::parse("polar").expect("id");
    let scope = docobo::domain::Scope::Guild(guild());
    let results = app
        .db
        .write(move |tx| docobo::ingest::apply_delivery(tx, &provider, scope, &[change], t0))
        .await
        .expect("applied");
    assert!(results[0].changed, "{results:?}");
    assert!(
        results[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("3000 -> 3002")),
        "{results:?}"
    );
    app.services.sync.wake();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let roles = discord.member_roles(GUILD, BUYER).expect("member");
        if roles.contains(&GOLD) && !roles.contains(&SUPPORTER) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "roles {roles:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The provider id now finds the new row: later events move the Gold holding.
    let sub = the_subscription(&app).await;
    assert_eq!(sub.state.status, SubscriptionStatus::Active);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM subscriptions WHERE external_id IS NULL AND status = 'revoked'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_sepay_test_delivery_grants_the_role_and_is_stored_as_a_test() {
    const KEY: &str = "sepay-test-key";
    let discord = fake_discord().await;
    let app = test_app().discord(discord.clone()).start().await;
    let sepay = app.services.providers.plugin("sepay").expect("sepay");
    assert!(sepay.capabilities.test_delivery);
    let config: Vec<(String, String)> = [
        ("webhook_api_key", KEY),
        ("account_number", "0359123456"),
        ("bank", "MBBank"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let (path, paid_role) = app
        .add_sepay_pass(guild(), RoleId::new(SUPPORTER).expect("role"), KEY)
        .await;
    pending_checkout(&app, paid_role, "DCBTEST2345").await;
    let delivery = app
        .services
        .providers
        .test_delivery(
            "sepay",
            &config,
            &docobo::providers::TestDeliveryRequest {
                guild: guild(),
                user: UserId::new(BUYER).expect("user"),
                role: RoleId::new(SUPPORTER).expect("role"),
                product_id: None,
                price: docobo::domain::Money::new(
                    50_000,
                    docobo::domain::Currency::parse("VND").expect("VND"),
                )
                .expect("price"),
                billing: Billing::parse("30d").expect("billing"),
                nonce: 7,
                payment_code: Some("DCBTEST2345".into()),
            },
        )
        .await
        .expect("signed");
    let mut request = app.client.post(app.url(&path)).body(delivery.body);
    for (name, value) in delivery.headers {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.expect("send").status(), 200);
    wait_for_role(&discord, true).await;
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_events WHERE test = 1 AND outcome = 'applied'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_events WHERE test = 0")
            .await,
        0
    );
    // The checkout it paid is a test subscription now, kept apart in counts.
    assert_eq!(
        app.count("SELECT count(*) FROM subscriptions WHERE test = 1 AND status = 'active'")
            .await,
        1
    );
}
