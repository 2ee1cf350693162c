//! Guilds that do not trust each other, on one instance: a delivery verified with one guild's
//! credentials (which its owner holds, and can sign anything with) reaches nothing of
//! another guild's, whatever it names; only the operator's credentials may name any guild.
//! And a duplicate delivery is a security event.

use docobo::db::subscriptions;
use docobo::domain::{
    Billing, GuildId, ProviderId, RoleId, Scope, SubscriptionState, SubscriptionStatus, UserId,
};
use docobo_testkit::webhooks::{PolarKey, SepayTransfer, sepay_request};
use serde_json::{Value, json};

use crate::app::{TestApp, fixtures, test_app};

/// The attacker's guild (its owner holds its provider keys) and the victim's.
const GUILD_A: u64 = 111_111_111_111_111_111;
const GUILD_B: u64 = 112_233_445_566_778_899;
const ROLE_A: u64 = 1_001;
const ROLE_B: u64 = 2_002;
const BUYER_B: u64 = 998_877_665_544_332_211;
const SEPAY_KEY_A: &str = "sepay-key-of-guild-a";
const SEPAY_KEY_B: &str = "sepay-key-of-guild-b";
const POLAR_SECRET_A: &str = "polar_whs_guild_a";
const POLAR_SECRET_B: &str = "polar_whs_guild_b";
const PRODUCT_B: &str = "0c7d3a52-6f5e-4b1a-9a43-1f2e3d4c5b6a";
const DAY: i64 = 86_400_000;

/// Now in Vietnam (SePay's `transactionDate`), to the second, and as unix ms.
fn vietnam_now() -> (String, i64) {
    let now = jiff::Timestamp::now();
    let ms = now.as_millisecond() / 1000 * 1000;
    let local = now.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(7)));
    (local.strftime("%Y-%m-%d %H:%M:%S").to_string(), ms)
}

fn g(id: u64) -> GuildId {
    GuildId::new(id).expect("guild")
}

/// Two SePay guilds; B has a member's pending `/join` checkout with code `DCB12345`.
async fn sepay_guilds() -> (TestApp, String, String) {
    let app = test_app().start().await;
    let mut paths = Vec::new();
    for (guild, role, key) in [
        (GUILD_A, ROLE_A, SEPAY_KEY_A),
        (GUILD_B, ROLE_B, SEPAY_KEY_B),
    ] {
        let webhook_key = app
            .add_guild(
                g(guild),
                "sepay",
                &[
                    ("webhook_api_key", key),
                    ("account_number", "0359123456"),
                    ("bank", "MBBank"),
                ],
            )
            .await;
        app.add_paid_role(
            g(guild),
            RoleId::new(role).expect("role"),
            (50_000, "VND"),
            Billing::parse("30d").expect("billing"),
            None,
        )
        .await;
        paths.push(format!("/webhooks/sepay/{webhook_key}"));
    }
    let paid_role = app
        .count("SELECT id FROM paid_roles WHERE role_id = 2002")
        .await;
    app.db
        .call(move |conn| {
            let buyer = UserId::new(BUYER_B).expect("user");
            docobo::db::members::upsert(conn, g(GUILD_B), buyer, None)?;
            subscriptions::insert(
                conn,
                &subscriptions::NewSubscription {
                    guild_id: g(GUILD_B),
                    user_id: buyer,
                    paid_role_id: paid_role,
                    provider: ProviderId::parse("sepay").expect("id"),
                    scope: Scope::Guild(g(GUILD_B)),
                    external_id: None,
                    state: SubscriptionState {
                        status: SubscriptionStatus::Pending,
                        period_end: None,
                        last_event_at: None,
                    },
                    payment_code: Some("DCB12345".into()),
                },
            )
        })
        .await
        .expect("pending checkout");
    let b = paths.pop().expect("b");
    let a = paths.pop().expect("a");
    (app, a, b)
}

async fn b_checkout(app: &TestApp) -> subscriptions::Subscription {
    app.db
        .call(|conn| subscriptions::by_payment_code(conn, "DCB12345"))
        .await
        .expect("read")
        .expect("exists")
}

/// The attack of issue 17: SePay's event id is its sequential transaction id, so guild A's
/// owner, with A's own API key, posts correctly authenticated transfers with ids B's bank
/// will use next. B's real transfers with those ids must still pay B's checkout.
#[tokio::test]
async fn a_guild_cannot_pre_claim_another_guilds_sepay_transaction_ids() {
    let (app, path_a, path_b) = sepay_guilds().await;
    let (now, _) = vietnam_now();
    for id in 5_000..5_005 {
        let fake = SepayTransfer::fixture()
            .id(id)
            .date(&now)
            .amount(1_000)
            .code("DCBAAAAA")
            .body();
        let response = sepay_request(&app.client, &app.url(&path_a), SEPAY_KEY_A, fake)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "A's own deliveries verify");
    }
    // B's member pays: SePay's next transaction id is one A claimed.
    let (date, paid_at) = vietnam_now();
    let real = SepayTransfer::fixture()
        .id(5_002)
        .amount(50_000)
        .date(&date)
        .body();
    let response = sepay_request(&app.client, &app.url(&path_b), SEPAY_KEY_B, real)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let sub = b_checkout(&app).await;
    assert_eq!(
        sub.state.status,
        SubscriptionStatus::Active,
        "B's payment was dropped as a duplicate of A's delivery"
    );
    assert_eq!(sub.state.period_end, Some(paid_at + 30 * DAY));
    // Each guild's events are recorded in its own scope.
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_events WHERE scope = '111111111111111111'")
            .await,
        5
    );
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_events WHERE scope = '112233445566778899'")
            .await,
        1
    );
}

/// A's owner sends B's payment code (it is on B's members' QR codes) to A's URL, with A's
/// key: B's checkout is not paid by it, and B's own payment later still is.
#[tokio::test]
async fn a_guild_cannot_pay_or_spoil_another_guilds_payment_code() {
    let (app, path_a, path_b) = sepay_guilds().await;
    let (date, _) = vietnam_now();
    let forged = SepayTransfer::fixture()
        .id(77)
        .amount(50_000)
        .date(&date)
        .body();
    let response = sepay_request(&app.client, &app.url(&path_a), SEPAY_KEY_A, forged)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(
        b_checkout(&app).await.state.status,
        SubscriptionStatus::Pending
    );
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_events WHERE outcome = 'rejected' AND detail = 'payment code belongs to another guild' AND scope = '111111111111111111' AND subscription_id IS NULL AND guild_id = 111111111111111111")
            .await,
        1
    );
    // B's real transfer, with the same transaction id, pays B's checkout.
    let real = SepayTransfer::fixture()
        .id(77)
        .amount(50_000)
        .date(&date)
        .body();
    sepay_request(&app.client, &app.url(&path_b), SEPAY_KEY_B, real)
        .send()
        .await
        .expect("send");
    assert_eq!(
        b_checkout(&app).await.state.status,
        SubscriptionStatus::Active
    );
}

/// The `subscription.active` fixture (it names guild B, buyer B and B's product) with its
/// subscription id, status and modification time replaced, and its metadata's role.
fn polar_body(kind: &str, subscription: &str, status: &str, modified_at: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(fixtures().join("polar-subscription-active.json"))
        .expect("fixture");
    let mut value: Value = serde_json::from_str(&text).expect("json");
    value["type"] = json!(kind);
    value["data"]["id"] = json!(subscription);
    value["data"]["status"] = json!(status);
    value["data"]["modified_at"] = json!(modified_at);
    value["data"]["current_period_end"] = json!("2030-01-15T10:20:58Z");
    value["data"]["metadata"]["docobo_role_id"] = json!(ROLE_B.to_string());
    serde_json::to_vec(&value).expect("json")
}

/// Like [`polar_body`], naming guild A instead (A's own checkout).
fn polar_body_for_a(subscription: &str, modified_at: &str) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(&polar_body(
        "subscription.active",
        subscription,
        "active",
        modified_at,
    ))
    .expect("json");
    value["data"]["metadata"]["docobo_guild_id"] = json!(GUILD_A.to_string());
    value["data"]["metadata"]["docobo_role_id"] = json!(ROLE_A.to_string());
    serde_json::to_vec(&value).expect("json")
}

async fn polar_guilds() -> (TestApp, String, String) {
    let app = test_app()
        .envs(&[(
            "DOCOBO_PROVIDERS__POLAR__WEBHOOK_SECRET",
            "polar_whs_operator",
        )])
        .start()
        .await;
    let mut paths = Vec::new();
    for (guild, role, secret, product) in [
        (GUILD_A, ROLE_A, POLAR_SECRET_A, None),
        (GUILD_B, ROLE_B, POLAR_SECRET_B, Some(PRODUCT_B)),
    ] {
        let key = app
            .add_guild(
                g(guild),
                "polar",
                &[("webhook_secret", secret), ("access_token", "polar_oat_x")],
            )
            .await;
        app.add_paid_role(
            g(guild),
            RoleId::new(role).expect("role"),
            (499, "USD"),
            Billing::Monthly,
            product,
        )
        .await;
        paths.push(format!("/webhooks/polar/{key}"));
    }
    let b = paths.pop().expect("b");
    let a = paths.pop().expect("a");
    (app, a, b)
}

async fn polar(app: &TestApp, path: &str, secret: &str, id: &str, body: Vec<u8>) -> u16 {
    PolarKey::raw(secret.as_bytes())
        .delivery_now(id, body)
        .request(&app.client, &app.url(path))
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

async fn subs_in(app: &TestApp, guild: u64, external: &'static str) -> Vec<(String, String)> {
    app.db
        .call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT scope, status FROM subscriptions WHERE guild_id = ?1 AND external_id = ?2 ORDER BY id",
            )?;
            let rows = stmt.query_map(rusqlite::params![guild.cast_signed(), external], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .expect("read")
}

/// Everything A's owner can sign with A's Polar secret, naming B's guild, role, product and
/// subscription, or reusing ids B's deliveries carry: B is left untouched, and B's own
/// deliveries (and the operator's) still apply.
#[tokio::test]
async fn a_guilds_deliveries_naming_another_guild_leave_it_untouched() {
    let (app, path_a, path_b) = polar_guilds().await;

    // A claims the subscription id and the delivery id B's next purchase will carry (Polar's
    // are unguessable, but nothing may rest on that), on A's own guild and on B's.
    assert_eq!(
        polar(
            &app,
            &path_a,
            POLAR_SECRET_A,
            "msg-b1",
            polar_body_for_a("sub-b", "2026-09-15T10:00:00Z")
        )
        .await,
        202
    );
    // A names B's guild and role: refused, nothing created in B.
    assert_eq!(
        polar(
            &app,
            &path_a,
            POLAR_SECRET_A,
            "msg-a2",
            polar_body(
                "subscription.active",
                "sub-new",
                "active",
                "2026-09-15T10:00:00Z"
            )
        )
        .await,
        202
    );
    assert!(subs_in(&app, GUILD_B, "sub-new").await.is_empty());
    // B's member buys: the same subscription id and delivery id, at B's URL.
    assert_eq!(
        polar(
            &app,
            &path_b,
            POLAR_SECRET_B,
            "msg-b1",
            polar_body(
                "subscription.active",
                "sub-b",
                "active",
                "2026-09-15T11:00:00Z"
            )
        )
        .await,
        202
    );
    assert_eq!(
        subs_in(&app, GUILD_B, "sub-b").await,
        [("112233445566778899".to_owned(), "active".to_owned())],
        "B's purchase was dropped or refused because of A's deliveries"
    );

    // A revokes "sub-b" (naming B's guild and role): only A's own "sub-b" can move.
    assert_eq!(
        polar(
            &app,
            &path_a,
            POLAR_SECRET_A,
            "msg-a3",
            polar_body(
                "subscription.revoked",
                "sub-b",
                "revoked",
                "2026-09-16T10:00:00Z"
            )
        )
        .await,
        202
    );
    assert_eq!(
        subs_in(&app, GUILD_B, "sub-b").await,
        [("112233445566778899".to_owned(), "active".to_owned())]
    );
    assert_eq!(
        subs_in(&app, GUILD_A, "sub-b").await,
        [("111111111111111111".to_owned(), "revoked".to_owned())]
    );

    // The operator's credentials may name any guild: "sub-op" in B, with a delivery id B
    // and A both used, is applied.
    assert_eq!(
        polar(
            &app,
            "/webhooks/polar",
            "polar_whs_operator",
            "msg-b1",
            polar_body(
                "subscription.active",
                "sub-op",
                "active",
                "2026-09-15T10:00:00Z"
            )
        )
        .await,
        202
    );
    assert_eq!(
        subs_in(&app, GUILD_B, "sub-op").await,
        [("operator".to_owned(), "active".to_owned())]
    );
    // Nothing A sent was recorded against B.
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_events WHERE scope = '111111111111111111' AND (guild_id IS NOT 111111111111111111 OR subscription_id IN (SELECT id FROM subscriptions WHERE guild_id = 112233445566778899))")
            .await,
        0
    );
}

/// A names its own guild with B's role: no paid role of A's matches, nothing is created.
#[tokio::test]
async fn a_guild_cannot_sell_another_guilds_role() {
    let (app, path_a, _path_b) = polar_guilds().await;
    let mut own_guild_b_role: Value = serde_json::from_slice(&polar_body(
        "subscription.active",
        "sub-role",
        "active",
        "2026-09-15T10:00:00Z",
    ))
    .expect("json");
    own_guild_b_role["data"]["metadata"]["docobo_guild_id"] = json!(GUILD_A.to_string());
    assert_eq!(
        polar(
            &app,
            &path_a,
            POLAR_SECRET_A,
            "msg-a4",
            serde_json::to_vec(&own_guild_b_role).expect("json")
        )
        .await,
        202
    );
    assert_eq!(
        app.count("SELECT count(*) FROM subscriptions WHERE external_id = 'sub-role'")
            .await,
        0
    );
}

/// A delivery repeated in its scope is logged under `docobo::security`, without the body or
/// a secret, and counted in `/metrics` by provider.
#[tokio::test]
async fn a_replayed_delivery_is_a_security_event_and_a_metric() {
    let (app, _path_a, path_b) = polar_guilds().await;
    let body = polar_body(
        "subscription.active",
        "sub-b",
        "active",
        "2026-09-15T11:00:00Z",
    );
    let (logs, _guard) = crate::helpers::Captured::warnings();
    for _ in 0..3 {
        assert_eq!(
            polar(&app, &path_b, POLAR_SECRET_B, "msg-replayed", body.clone()).await,
            202
        );
    }
    // A verified but unreadable delivery, sent twice: its repeat is a replay too.
    for _ in 0..2 {
        assert_eq!(
            polar(
                &app,
                &path_b,
                POLAR_SECRET_B,
                "msg-garbled",
                b"{not json".to_vec()
            )
            .await,
            400
        );
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("docobo_webhook_replays_total{provider=\"polar\"} 3"),
        "{metrics}"
    );
    let text = logs.text();
    let lines: Vec<&str> = text.lines().collect();
    let replays: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("docobo::security") && l.contains("webhook_replay"))
        .collect();
    assert_eq!(replays.len(), 3, "{lines:#?}");
    assert!(
        replays.iter().all(|l| !l.contains("not json")),
        "{replays:#?}"
    );
    for line in &replays[..2] {
        assert!(
            line.contains("msg-replayed") && line.contains("112233445566778899"),
            "{line}"
        );
        assert!(
            !line.contains(POLAR_SECRET_B) && !line.contains("customer"),
            "{line}"
        );
    }
}
