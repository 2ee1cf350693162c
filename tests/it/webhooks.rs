//! The webhook server end to end: the real salvo server on 127.0.0.1:0, a real SQLite file,
//! the real Polar and SePay components.

use docobo::db::subscriptions;
use docobo::domain::{Billing, GuildId, ProviderId, RoleId, SubscriptionStatus, UserId};
use docobo_testkit::webhooks::{PolarKey, SepayTransfer, sepay_request};
use serde_json::{Value, json};

use crate::app::{TestApp, fixtures, test_app};

const GUILD: u64 = 112_233_445_566_778_899;
const USER: u64 = 998_877_665_544_332_211;
const PRODUCT: &str = "0c7d3a52-6f5e-4b1a-9a43-1f2e3d4c5b6a";
const SECRET: &str = "polar_whs_webhook_test_secret";

fn guild() -> GuildId {
    GuildId::new(GUILD).expect("guild")
}

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A Polar delivery of `body`, signed with `key` now.
fn polar_request(
    app: &TestApp,
    path: &str,
    key: &[u8],
    id: &str,
    body: &[u8],
) -> reqwest::RequestBuilder {
    PolarKey::raw(key)
        .delivery_now(id, body.to_vec())
        .request(&app.client, &app.url(path))
}

/// Sends a Polar delivery (see [`polar_request`]).
async fn deliver(
    app: &TestApp,
    path: &str,
    key: &[u8],
    id: &str,
    body: &[u8],
) -> reqwest::Response {
    polar_request(app, path, key, id, body)
        .send()
        .await
        .expect("send")
}

/// The `subscription.active` fixture with its subscription id, status and modification time
/// replaced.
fn polar_body(
    kind: &str,
    subscription: &str,
    status: &str,
    cancel: bool,
    modified_at: &str,
) -> Vec<u8> {
    let text = std::fs::read_to_string(fixtures().join("polar-subscription-active.json"))
        .expect("fixture");
    let mut value: Value = serde_json::from_str(&text).expect("json");
    value["type"] = json!(kind);
    value["data"]["id"] = json!(subscription);
    value["data"]["status"] = json!(status);
    value["data"]["cancel_at_period_end"] = json!(cancel);
    value["data"]["modified_at"] = json!(modified_at);
    // A period that has not ended (the role-sync worker expires ended ones).
    value["data"]["current_period_end"] = json!("2030-01-15T10:20:58Z");
    serde_json::to_vec(&value).expect("json")
}

async fn polar_app() -> (TestApp, String) {
    let app = test_app().start().await;
    let key = app
        .add_guild(
            guild(),
            "polar",
            &[("webhook_secret", SECRET), ("access_token", "polar_oat_x")],
        )
        .await;
    app.add_paid_role(
        guild(),
        RoleId::new(555).expect("role"),
        (499, "USD"),
        Billing::Monthly,
        Some(PRODUCT),
    )
    .await;
    (app, format!("/webhooks/polar/{key}"))
}

async fn subscription(
    app: &TestApp,
    provider: &str,
    external: &'static str,
) -> Option<subscriptions::Subscription> {
    let provider = ProviderId::parse(provider).expect("provider");
    app.db
        .call(move |conn| crate::helpers::subscription_any_scope(conn, &provider, external))
        .await
        .expect("read")
}

#[tokio::test]
async fn a_polar_payload_signed_with_each_key_scheme_is_accepted_and_changes_the_subscription() {
    let (app, _) = polar_app().await;
    let vectors: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("polar-vectors.json")).expect("vectors"),
    )
    .expect("json");
    let schemes: Vec<&Value> = vectors
        .as_array()
        .expect("array")
        .iter()
        .filter(|v| v["kind"] == "scheme")
        .collect();
    assert_eq!(schemes.len(), 3, "schemes A, B and C");
    for scheme in schemes {
        let name = scheme["name"].as_str().expect("name");
        let secret = scheme["secret"].as_str().expect("secret");
        let key = PolarKey::from_hex(scheme["key_hex"].as_str().expect("key")).expect("hex");
        let webhook_key = app
            .add_guild(
                guild(),
                "polar",
                &[("webhook_secret", secret), ("access_token", "x")],
            )
            .await;
        let subscription_id: &'static str =
            Box::leak(format!("sub-scheme-{name}").into_boxed_str());
        let body = polar_body(
            "subscription.active",
            subscription_id,
            "active",
            false,
            "2026-09-15T10:21:07Z",
        );
        let response = deliver(
            &app,
            &format!("/webhooks/polar/{webhook_key}"),
            key.bytes(),
            &format!("msg-{name}"),
            &body,
        )
        .await;
        assert_eq!(response.status(), 202, "scheme {name}");
        let sub = subscription(&app, "polar", subscription_id)
            .await
            .expect("created");
        assert_eq!(
            sub.state.status,
            SubscriptionStatus::Active,
            "scheme {name}"
        );
        assert_eq!(sub.user_id, UserId::new(USER).expect("user"));
        assert_eq!(sub.guild_id, guild());
    }
}

#[tokio::test]
async fn twenty_concurrent_copies_of_a_delivery_make_one_event_and_one_change() {
    let (app, path) = polar_app().await;
    let body = polar_body(
        "subscription.active",
        "sub-dup",
        "active",
        false,
        "2026-09-15T10:21:07Z",
    );
    let sends =
        (0..20).map(|_| polar_request(&app, &path, SECRET.as_bytes(), "msg-dup", &body).send());
    let responses = futures_util::future::join_all(sends).await;
    for response in responses {
        assert_eq!(response.expect("send").status(), 202);
    }
    assert_eq!(app.count("SELECT count(*) FROM webhook_events").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM subscriptions").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_events WHERE outcome = 'applied'")
            .await,
        1
    );
}

#[tokio::test]
async fn an_out_of_order_update_does_not_roll_the_state_back() {
    let (app, path) = polar_app().await;
    let canceled = polar_body(
        "subscription.canceled",
        "sub-ooo",
        "active",
        true,
        "2026-09-20T00:00:00Z",
    );
    let older = polar_body(
        "subscription.updated",
        "sub-ooo",
        "active",
        false,
        "2026-09-16T00:00:00Z",
    );
    for (id, body) in [("msg-new", &canceled), ("msg-old", &older)] {
        let response = deliver(&app, &path, SECRET.as_bytes(), id, body).await;
        assert_eq!(response.status(), 202);
    }
    let sub = subscription(&app, "polar", "sub-ooo")
        .await
        .expect("exists");
    assert_eq!(
        sub.state.status,
        SubscriptionStatus::Canceled,
        "the late, older update moved nothing"
    );
    assert!(sub.cancel_at_period_end);
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_events WHERE outcome = 'stale'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_bad_signature_is_403_and_stores_nothing() {
    let (app, path) = polar_app().await;
    let body = polar_body(
        "subscription.active",
        "sub-bad",
        "active",
        false,
        "2026-09-15T10:21:07Z",
    );
    let response = deliver(&app, &path, b"the wrong key", "msg-bad", &body).await;
    assert_eq!(response.status(), 403);
    assert_eq!(app.count("SELECT count(*) FROM webhook_events").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM subscriptions").await, 0);
    // Unknown provider or key: 404.
    for wrong in [
        "/webhooks/stripe/x",
        "/webhooks/polar/not-a-key",
        "/webhooks/polar",
    ] {
        let response = deliver(&app, wrong, SECRET.as_bytes(), "msg-404", &body).await;
        assert_eq!(response.status(), 404, "{wrong}");
    }
}

#[tokio::test]
async fn a_two_megabyte_body_is_413() {
    let (app, path) = polar_app().await;
    let body = vec![b'x'; 2 << 20];
    let response = deliver(&app, &path, SECRET.as_bytes(), "msg-big", &body).await;
    assert_eq!(response.status(), 413);
    // Without a Content-Length (chunked), the cap still holds.
    let stream =
        futures_util::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 64 << 10])));
    let response = app
        .client
        .post(app.url(&path))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 413);
    assert_eq!(app.count("SELECT count(*) FROM webhook_events").await, 0);
}

#[tokio::test]
async fn the_101st_request_in_a_minute_from_one_address_is_429_with_retry_after() {
    let app = test_app().start().await;
    for i in 0..100 {
        let response = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "request {i}");
    }
    let response = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 429);
    let retry: u64 = response
        .headers()
        .get("retry-after")
        .expect("retry-after")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    // /health is not limited.
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );
}

#[tokio::test]
async fn responses_carry_security_headers_and_metrics_count_webhooks() {
    let (app, path) = polar_app().await;
    let body = polar_body(
        "subscription.active",
        "sub-m",
        "active",
        false,
        "2026-09-15T10:21:07Z",
    );
    deliver(&app, &path, SECRET.as_bytes(), "msg-m", &body).await;
    deliver(&app, &path, b"wrong", "msg-m2", &body).await;
    let response = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("send");
    for header in [
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
        "strict-transport-security",
        "referrer-policy",
    ] {
        assert!(response.headers().contains_key(header), "{header}");
    }
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let text = response.text().await.expect("text");
    assert!(
        text.contains(r#"docobo_webhooks_total{provider="polar",outcome="applied"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"docobo_webhooks_total{provider="polar",outcome="bad_signature"} 1"#),
        "{text}"
    );
    assert!(text.contains("docobo_webhook_ack_seconds_bucket"), "{text}");
    // Two calls: the good delivery and the bad one (refused with the cached credentials, it
    // is not checked again: the stored ones are the same).
    assert!(
        text.contains(
            "docobo_plugin_call_seconds_count{provider=\"polar\",call=\"handle-webhook\"} 2"
        ),
        "{text}"
    );
    // 404s get them too.
    let missing = app.client.get(app.url("/nope")).send().await.expect("send");
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("x-content-type-options"));
}

const SEPAY_KEY: &str = "sepay-api-key";

async fn sepay_app() -> (TestApp, String) {
    let app = test_app().start().await;
    let key = app
        .add_guild(
            guild(),
            "sepay",
            &[
                ("webhook_api_key", SEPAY_KEY),
                ("account_number", "0359123456"),
                ("bank", "MBBank"),
            ],
        )
        .await;
    let paid_role = app
        .add_paid_role(
            guild(),
            RoleId::new(777).expect("role"),
            (50_000, "VND"),
            Billing::parse("30d").expect("billing"),
            None,
        )
        .await;
    // What /join leaves behind: a pending subscription waiting for code DCB12345.
    app.db
        .call(move |conn| {
            docobo::db::members::upsert(conn, guild(), UserId::new(USER).expect("user"), None)?;
            subscriptions::insert(
                conn,
                &subscriptions::NewSubscription {
                    guild_id: guild(),
                    user_id: UserId::new(USER).expect("user"),
                    paid_role_id: paid_role,
                    provider: ProviderId::parse("sepay").expect("id"),
                    scope: docobo::domain::Scope::Guild(guild()),
                    external_id: None,
                    state: docobo::domain::SubscriptionState {
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
    (app, format!("/webhooks/sepay/{key}"))
}

fn sepay_transfer(id: i64, amount: i64, date: &str) -> Vec<u8> {
    SepayTransfer::fixture()
        .id(id)
        .amount(amount)
        .date(date)
        .body()
}

async fn by_code(app: &TestApp) -> subscriptions::Subscription {
    app.db
        .call(|conn| subscriptions::by_payment_code(conn, "DCB12345"))
        .await
        .expect("read")
        .expect("exists")
}

#[tokio::test]
async fn a_sepay_transfer_activates_a_30_day_pass_and_a_second_extends_it() {
    const DAY: i64 = 86_400_000;
    let (app, path) = sepay_app().await;
    let send = |body: Vec<u8>, api_key: &'static str| {
        sepay_request(&app.client, &app.url(&path), api_key, body).send()
    };
    // Underpaid: recorded, not activated.
    let response = send(sepay_transfer(1, 10_000, "2026-11-20 07:00:00"), SEPAY_KEY)
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"success": true})
    );
    assert_eq!(
        by_code(&app).await.state.status,
        SubscriptionStatus::Pending
    );
    assert_eq!(app.count("SELECT count(*) FROM webhook_events WHERE outcome = 'rejected' AND detail LIKE 'underpayment%'").await, 1);

    // Paid: a 30-day pass from the transfer time (07:00 in Vietnam = 00:00 UTC).
    let paid_at = 1_795_132_800_000;
    let response = send(sepay_transfer(2, 50_000, "2026-11-20 07:00:00"), SEPAY_KEY)
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let sub = by_code(&app).await;
    assert_eq!(sub.state.status, SubscriptionStatus::Active);
    assert_eq!(sub.state.period_end, Some(paid_at + 30 * DAY));

    // Paid again two days later: extended from the current end, not from the payment.
    send(sepay_transfer(3, 50_000, "2026-11-22 07:00:00"), SEPAY_KEY)
        .await
        .expect("send");
    assert_eq!(
        by_code(&app).await.state.period_end,
        Some(paid_at + 60 * DAY)
    );

    // A retry of the same transaction changes nothing; a wrong key is refused.
    send(sepay_transfer(3, 50_000, "2026-11-22 07:00:00"), SEPAY_KEY)
        .await
        .expect("send");
    assert_eq!(
        by_code(&app).await.state.period_end,
        Some(paid_at + 60 * DAY)
    );
    let response = send(sepay_transfer(4, 50_000, "2026-11-23 07:00:00"), "wrong")
        .await
        .expect("send");
    assert_eq!(response.status(), 403);
    assert_eq!(app.count("SELECT count(*) FROM webhook_events").await, 3);
}

#[tokio::test]
async fn restarting_the_server_between_deliveries_loses_nothing() {
    let (app, path) = polar_app().await;
    let first = polar_body(
        "subscription.active",
        "sub-restart",
        "active",
        false,
        "2026-09-15T10:00:00Z",
    );
    let response = deliver(&app, &path, SECRET.as_bytes(), "msg-r1", &first).await;
    assert_eq!(response.status(), 202);
    // Same folder: same database and the same credential key file.
    let app = app.restart().await;
    let second = polar_body(
        "subscription.canceled",
        "sub-restart",
        "active",
        true,
        "2026-09-16T10:00:00Z",
    );
    let response = deliver(&app, &path, SECRET.as_bytes(), "msg-r2", &second).await;
    assert_eq!(response.status(), 202);
    // The first delivery, retried after the restart, is a duplicate.
    let response = deliver(&app, &path, SECRET.as_bytes(), "msg-r1", &first).await;
    assert_eq!(response.status(), 202);
    assert_eq!(app.count("SELECT count(*) FROM webhook_events").await, 2);
    let sub = subscription(&app, "polar", "sub-restart")
        .await
        .expect("exists");
    assert_eq!(sub.state.status, SubscriptionStatus::Canceled);
}

#[tokio::test]
async fn operator_level_credentials_take_the_guild_from_the_event() {
    let app = test_app()
        .env("DOCOBO_PROVIDERS__POLAR__WEBHOOK_SECRET", SECRET)
        .start()
        .await;
    // The guild exists (seen on the gateway) but never stored credentials of its own.
    app.add_guild(guild(), "polar", &[]).await;
    app.add_paid_role(
        guild(),
        RoleId::new(555).expect("role"),
        (499, "USD"),
        Billing::Monthly,
        Some(PRODUCT),
    )
    .await;
    let body = polar_body(
        "subscription.active",
        "sub-op",
        "active",
        false,
        "2026-09-15T10:21:07Z",
    );
    let response = deliver(&app, "/webhooks/polar", SECRET.as_bytes(), "msg-op", &body).await;
    assert_eq!(response.status(), 202);
    let sub = subscription(&app, "polar", "sub-op")
        .await
        .expect("created");
    assert_eq!(sub.guild_id, guild());
}

/// An accepted webhook is routine: at the default level nothing about it is a warning (a
/// warning per delivery would bury the ones that matter, at thousands a second).
#[tokio::test]
async fn an_accepted_webhook_logs_no_warning() {
    let (app, path) = polar_app().await;
    let (logs, _guard) = crate::helpers::Captured::warnings();
    let body = polar_body(
        "subscription.active",
        "sub-quiet",
        "active",
        false,
        "2026-09-15T10:21:07Z",
    );
    let response = deliver(&app, &path, SECRET.as_bytes(), "msg-quiet", &body).await;
    assert!(response.status().is_success(), "{}", response.status());
    let text = logs.text();
    assert!(text.is_empty(), "warnings for an accepted webhook:\n{text}");
}

// The error paths through the real server, with the `test` provider component (it traps,
// spins, runs out of memory or refuses on demand) and the real Polar component.

const TEST_SECRET: &str = "test-provider-secret";

/// An app with the test provider installed and a guild that uses it; returns the app and
/// the guild's webhook path.
async fn test_provider_app() -> (TestApp, String) {
    let app = test_app()
        .plugin(
            "test.wasm",
            docobo::providers::built_plugin("docobo_test_provider"),
        )
        // Short limits, so that a spinning plugin is stopped quickly.
        .envs(&[
            ("DOCOBO_PLUGINS__CPU_DEADLINE_MS", "200"),
            ("DOCOBO_PLUGINS__CALL_TIMEOUT_MS", "1000"),
        ])
        .start()
        .await;
    let key = app
        .add_guild(guild(), "test", &[("secret", TEST_SECRET)])
        .await;
    app.add_paid_role(
        guild(),
        RoleId::new(555).expect("role"),
        (499, "USD"),
        Billing::Monthly,
        None,
    )
    .await;
    (app, format!("/webhooks/test/{key}"))
}

/// One `subscription` event as the test provider understands it (see its crate docs).
fn test_event(event_id: &str, subscription: &str) -> Value {
    json!({
        "event_id": event_id,
        "event_type": "subscription.active",
        "kind": "subscription",
        "subscription_id": subscription,
        "guild_id": GUILD.to_string(),
        "user_id": USER.to_string(),
        "role_id": "555",
        "status": "active",
        "period_end": 1_893_456_000_000_i64,
        "occurred_at": now_s() * 1000,
    })
}

/// Posts `body` to the test provider's webhook URL, in `mode`, with the right secret.
async fn deliver_test(app: &TestApp, path: &str, mode: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("x-test-secret", TEST_SECRET)
        .header("x-test-mode", mode)
        .json(body)
        .send()
        .await
        .expect("send")
}

async fn error_text(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("json body");
    body["error"].as_str().expect("an error message").to_owned()
}

#[tokio::test]
async fn a_plugin_that_traps_spins_or_runs_out_of_memory_is_500_and_the_retry_applies_once() {
    let (app, path) = test_provider_app().await;
    let body = json!({ "events": [test_event("evt-retried", "sub-retried")] });
    for mode in ["trap", "loop", "alloc"] {
        let response = deliver_test(&app, &path, mode, &body).await;
        assert_eq!(response.status(), 500, "{mode}: the provider must retry");
        assert_eq!(
            error_text(response).await,
            "the webhook could not be processed; retry later",
            "{mode}"
        );
        assert_eq!(
            app.count("SELECT count(*) FROM webhook_events").await,
            0,
            "{mode}"
        );
        assert_eq!(
            app.count("SELECT count(*) FROM subscriptions").await,
            0,
            "{mode}"
        );
    }
    // The provider's retry, once the plugin behaves, is applied; a second copy is not.
    for _ in 0..2 {
        let response = deliver_test(&app, &path, "ok", &body).await;
        assert!(response.status().is_success(), "{}", response.status());
    }
    assert_eq!(app.count("SELECT count(*) FROM webhook_events").await, 1);
    let sub = subscription(&app, "test", "sub-retried")
        .await
        .expect("subscription");
    assert_eq!(sub.state.status, SubscriptionStatus::Active);
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
        metrics.contains(r#"docobo_webhooks_total{provider="test",outcome="error"} 3"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_verified_delivery_that_cannot_be_understood_is_recorded_once_and_refused_with_the_reason()
 {
    let (app, path) = test_provider_app().await;
    let junk = json!({ "not_events": true });
    for _ in 0..2 {
        let response = deliver_test(&app, &path, "ok", &junk).await;
        assert_eq!(response.status(), 400);
        let message = error_text(response).await;
        assert!(message.contains("no `events` array"), "{message}");
    }
    // Recorded for the operator, once: the retry is recognised by the body's hash.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM webhook_events WHERE event_type = 'malformed' AND outcome = 'rejected'"
        )
        .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM webhook_events").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM subscriptions").await, 0);
}

#[tokio::test]
async fn a_verified_event_of_a_type_docobo_does_not_use_is_recorded_as_ignored() {
    let (app, path) = test_provider_app().await;
    let body = json!({ "events": [{
        "event_id": "evt-checkout",
        "event_type": "checkout.created",
        "kind": "ignored",
        "occurred_at": now_s() * 1000,
    }] });
    let response = deliver_test(&app, &path, "ok", &body).await;
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        app.count(
            "SELECT count(*) FROM webhook_events WHERE event_type = 'checkout.created' AND outcome = 'ignored'"
        )
        .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM subscriptions").await, 0);
}

#[tokio::test]
async fn a_stale_timestamp_is_403_with_a_security_event_that_holds_neither_secret_nor_body() {
    let (app, path) = polar_app().await;
    let (logs, _guard) = crate::helpers::Captured::warnings();
    let body = polar_body(
        "subscription.active",
        "sub-replayed",
        "active",
        false,
        "2026-09-15T10:21:07Z",
    );
    // Correctly signed, but ten minutes old: a replay.
    let replay = PolarKey::utf8(SECRET).delivery("msg-replayed", now_s() - 600, body);
    let signature = replay.signature.clone();
    let response = replay
        .request(&app.client, &app.url(&path))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 403);
    assert_eq!(app.count("SELECT count(*) FROM webhook_events").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM subscriptions").await, 0);
    let text = logs.text();
    assert!(
        text.contains("docobo::security") && text.contains("webhook_rejected"),
        "no security event:\n{text}"
    );
    let key = path.rsplit('/').next().expect("webhook key");
    for private in [
        SECRET,
        key,
        signature.as_str(),
        "sub-replayed",
        "docobo_user_id",
    ] {
        assert!(
            !text.contains(private),
            "the log holds {private:?}:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_database_error_is_500_and_leaves_nothing_half_applied() {
    let (app, path) = polar_app().await;
    // The delivery's last write (its event row) fails, after the member and the
    // subscription were written in the same transaction.
    app.db
        .call(|conn| {
            conn.execute_batch(
                "CREATE TRIGGER refuse_events BEFORE INSERT ON webhook_events
                 BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END;",
            )?;
            Ok(())
        })
        .await
        .expect("trigger");
    let body = polar_body(
        "subscription.active",
        "sub-db-error",
        "active",
        false,
        "2026-09-15T10:21:07Z",
    );
    let response = deliver(&app, &path, SECRET.as_bytes(), "msg-db-error", &body).await;
    assert_eq!(response.status(), 500);
    let message = error_text(response).await;
    assert!(
        !message.contains("disk full"),
        "the reply names the cause: {message}"
    );
    for count in [
        "SELECT count(*) FROM subscriptions",
        "SELECT count(*) FROM members",
        "SELECT count(*) FROM webhook_events",
    ] {
        assert_eq!(
            app.count(count).await,
            0,
            "{count}: part of a failed delivery kept"
        );
    }
    // The provider's retry, once the database is fixed, is applied whole.
    app.db
        .call(|conn| {
            conn.execute_batch("DROP TRIGGER refuse_events")?;
            Ok(())
        })
        .await
        .expect("drop trigger");
    let response = deliver(&app, &path, SECRET.as_bytes(), "msg-db-error", &body).await;
    assert!(response.status().is_success(), "{}", response.status());
    let sub = subscription(&app, "polar", "sub-db-error")
        .await
        .expect("subscription");
    assert_eq!(sub.state.status, SubscriptionStatus::Active);
    assert_eq!(app.count("SELECT count(*) FROM members").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM webhook_events").await, 1);
}
