//! The Stripe plugin through the real host: `docobo_stripe.wasm` (built only against the SDK)
//! dropped into `plugins.dir`, deliveries signed by Stripe's own Python library (the committed
//! `plugins/stripe/fixtures/vectors.json`, see `make_vectors.py`) posted to the real webhook
//! server, roles moved at the fake Discord, and the plugin's Stripe API lookups (which
//! subscription a refunded or disputed payment paid) answered by a loopback fake API.
//!
//! Each story runs on its own app (the vectors share their ids: one checkout, one
//! subscription `sub_1QvipSub`, one lifetime purchase `pi_3QvipLifetime`), on a clock fixed
//! at the vectors' `now` (they are signed at 2026-01-01T00:00:00Z, 300 s tolerance).

use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use docobo::clock::Clock;
use docobo::db::subscriptions::Subscription;
use docobo::domain::{Billing, GuildId, ProviderId, RoleId, SubscriptionStatus, UserId};
use docobo::providers::{API_VERSION, PluginSource};
use docobo_testkit::discord::{FakeDiscord, RoleSpec};
use serde_json::{Value, json};

use crate::app::{TestApp, test_app};
use crate::bot::{BUYER, GUILD, WAIT};
use crate::fake_api::FakeApi;

/// The role in the vectors' checkout metadata.
const ROLE: u64 = 556_677_889_900_112_233;
/// The secret the vectors are signed with (`make_vectors.py`'s `SECRET`).
const WEBHOOK_SECRET: &str = "whsec_docoboFixtureSigningSecretNotRealStripe01";
const SECRET_KEY: &str = "sk_test_docoboE2eNotARealKey";
/// The vectors' signing time (`make_vectors.py`'s `T`), unix seconds.
const T: i64 = 1_767_225_600;
const SUBSCRIPTION: &str = "sub_1QvipSub";
const LIFETIME: &str = "pi_3QvipLifetime";
const MONTHLY_PRICE: &str = "price_1QvipMonthly";
const LIFETIME_PRICE: &str = "price_1QvipLifetime";
/// The price the plan-change vector moves the subscription to.
const YEARLY_PRICE: &str = "price_1QvipYearly";
/// The yearly tier's own role, a role both tiers give, and a trial role.
const YEARLY_ROLE: u64 = 3200;
const SHARED: u64 = 3201;
const TRIAL: u64 = 3202;

fn guild() -> GuildId {
    GuildId::new(GUILD).expect("guild")
}

fn stripe_wasm() -> std::path::PathBuf {
    docobo::providers::built_plugin("docobo_stripe")
}

fn vectors_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/stripe/fixtures/vectors.json")
}

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(vectors_file()).expect("vectors.json");
    let file: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(file["stripe_python_version"], "16.1.0");
    file["vectors"].as_array().expect("vectors").clone()
}

/// The vector named `name` (`valid <fixture>.json` for each event fixture).
fn vector(name: &str) -> Value {
    vectors()
        .into_iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name:?}"))
}

fn valid(fixture: &str) -> Value {
    vector(&format!("valid {fixture}.json"))
}

/// One app selling [`ROLE`] through the Stripe plugin from `plugins.dir`.
struct Shop {
    app: TestApp,
    discord: Arc<FakeDiscord>,
    api: FakeApi,
    path: String,
}

/// Starts a shop selling [`ROLE`] at `price` with `billing`, as the Stripe price `product`;
/// `extra` settings on top (`DOCOBO_…`).
async fn stripe_shop(
    price: (i64, &str),
    billing: Billing,
    product: &str,
    extra: &[(&str, &str)],
) -> Shop {
    let discord = Arc::new(
        FakeDiscord::builder()
            .guild(
                crate::bot::shop()
                    .role(RoleSpec::new(ROLE, "Stripe supporter", 1, 0))
                    .role(RoleSpec::new(YEARLY_ROLE, "Yearly", 1, 0))
                    .role(RoleSpec::new(SHARED, "Members' chat", 1, 0))
                    .role(RoleSpec::new(TRIAL, "Trying it out", 1, 0)),
            )
            .start()
            .await
            .expect("fake Discord"),
    );
    let api = FakeApi::start().await;
    let mut env = vec![
        ("DOCOBO_PLUGINS__ALLOW_LOOPBACK_HTTP", "true"),
        ("DOCOBO_SUBSCRIPTIONS__SWEEP_INTERVAL_SECS", "1"),
        ("DOCOBO_SUBSCRIPTIONS__POLL_INTERVAL_SECS", "3600"),
        ("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0"),
    ];
    env.extend_from_slice(extra);
    let app = test_app()
        .discord(Arc::clone(&discord))
        .plugin("docobo_stripe.wasm", stripe_wasm())
        .envs(&env)
        .clock(Clock::fixed((T + 2) * 1000))
        .start()
        .await;
    discord
        .wait_for_command(Some(GUILD), "setup", WAIT)
        .await
        .expect("commands registered");
    let key = app
        .add_guild(
            guild(),
            "stripe",
            &[
                ("secret_key", SECRET_KEY),
                ("webhook_secret", WEBHOOK_SECRET),
                ("api_url", &api.url),
            ],
        )
        .await;
    app.add_paid_role(
        guild(),
        RoleId::new(ROLE).expect("role"),
        price,
        billing,
        Some(product),
    )
    .await;
    Shop {
        app,
        discord,
        api,
        path: format!("/webhooks/stripe/{key}"),
    }
}

async fn monthly_shop() -> Shop {
    stripe_shop((500, "USD"), Billing::Monthly, MONTHLY_PRICE, &[]).await
}

impl Shop {
    /// Posts `v`'s body with its `Stripe-Signature` line(s), at the vector's `now`.
    async fn deliver(&self, v: &Value) -> reqwest::Response {
        self.app
            .services
            .clock
            .set(v["now"].as_i64().expect("now") * 1000);
        let mut request = self
            .app
            .client
            .post(self.app.url(&self.path))
            .header("content-type", "application/json; charset=utf-8")
            .header(
                "user-agent",
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            )
            .body(v["body"].as_str().expect("body").to_owned());
        // Several lines stay several lines (reqwest appends).
        for line in v["headers"].as_array().expect("headers") {
            request = request.header("stripe-signature", line.as_str().expect("line"));
        }
        request.send().await.expect("send")
    }

    /// Delivers `v` and expects 202 Accepted.
    async fn accepted(&self, v: &Value) {
        let response = self.deliver(v).await;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 202, "{}: {text}", v["name"]);
    }

    /// The subscription Docobo knows by Stripe's `external_id`.
    async fn subscription(&self, external_id: &'static str) -> Subscription {
        let provider = ProviderId::parse("stripe").expect("id");
        self.app
            .db
            .call(move |conn| crate::helpers::subscription_any_scope(conn, &provider, external_id))
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("no subscription {external_id}"))
    }

    async fn status(&self, external_id: &'static str) -> SubscriptionStatus {
        self.subscription(external_id).await.state.status
    }

    /// Waits until the buyer holds (or lacks) [`ROLE`] at the fake Discord.
    async fn role_held(&self, held: bool) {
        self.discord
            .wait_for_member_role(GUILD, BUYER, ROLE, held, WAIT)
            .await
            .expect("role");
    }

    /// The buyer still holds [`ROLE`] after role sync has had time to act.
    async fn role_kept(&self) {
        self.app.services.sync.wake();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            self.discord
                .member_roles(GUILD, BUYER)
                .expect("member")
                .contains(&ROLE),
            "the role was taken away"
        );
    }

    /// The detail recorded for the webhook event `evt`.
    async fn outcome(&self, evt: &'static str) -> (String, Option<String>) {
        self.app
            .db
            .call(move |conn| {
                Ok(conn.query_row(
                    "SELECT outcome, detail FROM webhook_events WHERE external_event_id = ?1",
                    [evt],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .await
            .expect("webhook event recorded")
    }
}

#[tokio::test]
async fn a_stripe_subscription_is_granted_renewed_and_falls_past_due() {
    let shop = monthly_shop().await;
    let info = shop
        .app
        .services
        .providers
        .plugin("stripe")
        .expect("loaded");
    assert_eq!(info.api_version, API_VERSION);
    assert_eq!(API_VERSION, "0.2.0");
    assert!(
        matches!(&info.source, PluginSource::File(p) if p.ends_with("docobo_stripe.wasm")),
        "{:?}",
        info.source
    );
    assert_eq!(
        info.capabilities.names(),
        ["manage-link", "list-subscribers", "test-delivery"]
    );

    // Grant: the subscription checkout completes.
    shop.accepted(&valid("checkout.session.completed.subscription"))
        .await;
    shop.role_held(true).await;
    let sub = shop.subscription(SUBSCRIPTION).await;
    assert_eq!(sub.state.status, SubscriptionStatus::Active);
    assert_eq!(sub.user_id, UserId::new(BUYER).expect("user"));
    // Stripe's test mode (`livemode: false`) makes a test subscription.
    assert_eq!(
        shop.app
            .count("SELECT count(*) FROM subscriptions WHERE test = 1")
            .await,
        1
    );

    // Renew: `invoice.paid` for the next cycle sets the new period end.
    shop.accepted(&valid("invoice.paid.renewal")).await;
    let sub = shop.subscription(SUBSCRIPTION).await;
    assert_eq!(sub.state.status, SubscriptionStatus::Active);
    assert_eq!(sub.state.period_end, Some(1_769_904_000_000));
    // The pre-2025 payload of the same renewal reads the same.
    shop.accepted(&valid("invoice.paid.renewal.legacy")).await;
    assert_eq!(
        shop.outcome("evt_1QvipInvoicePaidLegacy").await.0,
        "applied"
    );
    assert_eq!(
        shop.subscription(SUBSCRIPTION).await.state.period_end,
        Some(1_769_904_000_000)
    );
    shop.role_kept().await;

    // Payment failed: past due, still entitled during the grace period.
    let failed = valid("invoice.payment_failed");
    shop.accepted(&failed).await;
    assert_eq!(shop.status(SUBSCRIPTION).await, SubscriptionStatus::PastDue);
    shop.role_kept().await;

    // Stripe's retry of the same delivery is a duplicate: nothing more is stored.
    let events = shop.app.count("SELECT count(*) FROM webhook_events").await;
    shop.accepted(&failed).await;
    assert_eq!(
        shop.app.count("SELECT count(*) FROM webhook_events").await,
        events
    );
    // None of these needed the Stripe API.
    assert!(shop.api.requests().is_empty(), "{:?}", shop.api.requests());
}

#[tokio::test]
async fn a_stripe_cancellation_keeps_the_role_until_the_subscription_is_deleted() {
    let shop = monthly_shop().await;
    shop.accepted(&valid("checkout.session.completed.subscription"))
        .await;
    shop.role_held(true).await;

    shop.accepted(&valid("customer.subscription.updated.cancel_at_period_end"))
        .await;
    let sub = shop.subscription(SUBSCRIPTION).await;
    assert_eq!(sub.state.status, SubscriptionStatus::Canceled);
    assert_eq!(sub.state.period_end, Some(1_769_903_940_000));
    shop.role_kept().await;

    shop.accepted(&valid("customer.subscription.deleted")).await;
    shop.role_held(false).await;
    assert_eq!(shop.status(SUBSCRIPTION).await, SubscriptionStatus::Revoked);
}

/// What `GET /v1/invoice_payments?payment[payment_intent]=pi_3QvipRenewal&expand[]=data.invoice`
/// answers (API 2025-03-31): the renewal invoice, expanded, billing [`SUBSCRIPTION`].
fn invoice_payments_of_the_renewal() -> Value {
    json!({
        "object": "list",
        "url": "/v1/invoice_payments",
        "has_more": false,
        "data": [{
            "id": "inpay_1QvipRenewal",
            "object": "invoice_payment",
            "amount_paid": 500,
            "currency": "usd",
            "is_default": true,
            "livemode": false,
            "payment": {"type": "payment_intent", "payment_intent": "pi_3QvipRenewal"},
            "status": "paid",
            "invoice": {
                "id": "in_1QvipRenewal",
                "object": "invoice",
                "customer": "cus_RvipCustomer",
                "livemode": false,
                "parent": {
                    "type": "subscription_details",
                    "quote_details": null,
                    "subscription_details": {"metadata": {}, "subscription": SUBSCRIPTION}
                },
                "status": "paid"
            }
        }]
    })
}

#[tokio::test]
async fn a_full_refund_of_a_stripe_subscription_payment_revokes_it() {
    let shop = monthly_shop().await;
    shop.accepted(&valid("checkout.session.completed.subscription"))
        .await;
    shop.role_held(true).await;
    let refund = valid("charge.refunded.full.subscription");

    // Stripe cannot be asked which subscription the charge paid (the fake answers 404):
    // refused with 400, so that Stripe delivers it again; the role stays.
    let response = shop.deliver(&refund).await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.expect("body");
    assert!(text.contains("Stripe will retry"), "{text}");
    assert_eq!(shop.status(SUBSCRIPTION).await, SubscriptionStatus::Active);

    // Stripe's retry, once the lookup works, is applied.
    shop.api.respond(
        "GET",
        "/v1/invoice_payments",
        200,
        &invoice_payments_of_the_renewal(),
    );
    shop.accepted(&refund).await;
    shop.role_held(false).await;
    assert_eq!(
        shop.status(SUBSCRIPTION).await,
        SubscriptionStatus::Refunded
    );
    let lookup = shop
        .api
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/v1/invoice_payments")
        .expect("looked up");
    assert_eq!(lookup.method, "GET");
    assert_eq!(
        lookup.header("authorization"),
        Some(format!("Bearer {SECRET_KEY}").as_str())
    );
    let query = lookup.query.unwrap_or_default();
    assert!(query.contains("pi_3QvipRenewal"), "{query}");
    assert!(query.contains("data.invoice"), "{query}");
}

#[tokio::test]
async fn a_full_refund_on_a_pre_2025_api_version_finds_the_subscription_through_its_invoice() {
    let shop = monthly_shop().await;
    shop.accepted(&valid("checkout.session.completed.subscription"))
        .await;
    shop.role_held(true).await;
    shop.api.respond(
        "GET",
        "/v1/invoices/in_1QvipRenewal",
        200,
        &json!({"id": "in_1QvipRenewal", "object": "invoice", "subscription": SUBSCRIPTION,
                "customer": "cus_RvipCustomer", "livemode": false, "status": "paid"}),
    );
    shop.accepted(&valid("charge.refunded.full.subscription.legacy"))
        .await;
    shop.role_held(false).await;
    assert_eq!(
        shop.status(SUBSCRIPTION).await,
        SubscriptionStatus::Refunded
    );
}

#[tokio::test]
async fn a_partial_refund_keeps_a_stripe_purchase_and_a_lost_dispute_revokes_it() {
    let shop = stripe_shop((1500, "EUR"), Billing::OneTime, LIFETIME_PRICE, &[]).await;
    // The dispute names only the charge and its PaymentIntent: the plugin asks Stripe
    // whether an invoice (a subscription) was paid by it; none was.
    shop.api.respond(
        "GET",
        "/v1/invoice_payments",
        200,
        &json!({"object": "list", "url": "/v1/invoice_payments", "has_more": false, "data": []}),
    );
    shop.api.respond(
        "GET",
        &format!("/v1/payment_intents/{LIFETIME}"),
        200,
        &json!({"id": LIFETIME, "object": "payment_intent", "amount": 1500, "currency": "eur",
                "customer": "cus_RvipBuyer", "invoice": null, "livemode": false,
                "status": "succeeded"}),
    );

    shop.accepted(&valid("checkout.session.completed.payment"))
        .await;
    shop.role_held(true).await;
    let sub = shop.subscription(LIFETIME).await;
    assert_eq!(sub.state.status, SubscriptionStatus::Active);
    assert_eq!(sub.state.period_end, None);

    // 6.00 of 15.00 refunded (10.00 in all, 4.00 before): access is kept.
    shop.accepted(&valid("charge.refunded.partial.one_time"))
        .await;
    assert_eq!(
        shop.outcome("evt_3QvipRefundPartial").await,
        (
            "ignored".to_owned(),
            Some("partial refund of 600 EUR: access kept".to_owned())
        )
    );
    assert_eq!(shop.status(LIFETIME).await, SubscriptionStatus::Active);
    shop.role_kept().await;
    // The charge carries Docobo's metadata: no lookup was needed.
    assert!(shop.api.requests().is_empty(), "{:?}", shop.api.requests());

    // A dispute opens: the money is held, access is kept.
    shop.accepted(&valid("charge.dispute.created")).await;
    assert_eq!(
        shop.outcome("evt_1QvipDisputeOpened").await,
        (
            "ignored".to_owned(),
            Some("dispute opened: access kept".to_owned())
        )
    );
    assert_eq!(shop.status(LIFETIME).await, SubscriptionStatus::Active);
    shop.role_kept().await;
    let paths: Vec<String> = shop.api.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/v1/invoice_payments".to_owned(),
            format!("/v1/payment_intents/{LIFETIME}")
        ]
    );

    // Lost: the money is gone, as for a full refund.
    shop.accepted(&valid("charge.dispute.closed.lost")).await;
    shop.role_held(false).await;
    assert_eq!(shop.status(LIFETIME).await, SubscriptionStatus::Refunded);
}

#[tokio::test]
async fn a_won_stripe_dispute_changes_nothing() {
    let shop = stripe_shop((1500, "EUR"), Billing::OneTime, LIFETIME_PRICE, &[]).await;
    shop.api.respond(
        "GET",
        "/v1/invoice_payments",
        200,
        &json!({"object": "list", "has_more": false, "data": []}),
    );
    shop.api.respond(
        "GET",
        &format!("/v1/payment_intents/{LIFETIME}"),
        200,
        &json!({"id": LIFETIME, "object": "payment_intent", "invoice": null}),
    );
    shop.accepted(&valid("checkout.session.completed.payment"))
        .await;
    shop.role_held(true).await;
    shop.accepted(&valid("charge.dispute.created")).await;
    shop.accepted(&valid("charge.dispute.closed.won")).await;
    assert_eq!(
        shop.outcome("evt_1QvipDisputeWon").await.1.as_deref(),
        Some("dispute won: nothing changes")
    );
    assert_eq!(shop.status(LIFETIME).await, SubscriptionStatus::Active);
    shop.role_kept().await;
}

#[tokio::test]
async fn tampered_stripe_deliveries_are_refused_and_nothing_is_stored() {
    // The refused-signature budget off: every refusal here must be a checked 403, not a 429.
    let shop = stripe_shop(
        (500, "USD"),
        Billing::Monthly,
        MONTHLY_PRICE,
        &[
            ("DOCOBO_SERVER__BAD_SIGNATURES_PER_MINUTE", "0"),
            ("DOCOBO_SERVER__BAD_SIGNATURES_PER_IP_PER_MINUTE", "0"),
        ],
    )
    .await;
    let all = vectors();
    let refused: Vec<&Value> = all.iter().filter(|v| v["expect_valid"] == false).collect();
    assert!(refused.len() >= 8, "{}", refused.len());
    for v in &refused {
        assert_eq!(v["secret"], WEBHOOK_SECRET, "{}", v["name"]);
        let response = shop.deliver(v).await;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 403, "{}: {text}", v["name"]);
        assert!(text.contains("signature verification failed"), "{text}");
        assert!(!text.contains(WEBHOOK_SECRET), "{text}");
    }
    for sql in [
        "SELECT count(*) FROM webhook_events",
        "SELECT count(*) FROM subscriptions",
        "SELECT count(*) FROM members",
    ] {
        assert_eq!(shop.app.count(sql).await, 0, "{sql}");
    }
    assert!(
        !shop
            .discord
            .member_roles(GUILD, BUYER)
            .expect("member")
            .contains(&ROLE)
    );

    // The header shapes Stripe's library accepts (several v1 while a secret rolls, v0 and
    // unknown schemes beside, the header on several lines, exactly 300 s old) are accepted
    // over real HTTP: the first applies, the rest are its duplicates.
    let checkout = valid("checkout.session.completed.subscription");
    let shapes: Vec<&Value> = all
        .iter()
        .filter(|v| {
            v["expect_valid"] == true
                && v["secret"] == WEBHOOK_SECRET
                && v["body"] == checkout["body"]
        })
        .collect();
    assert!(shapes.len() >= 4, "{}", shapes.len());
    assert!(
        shapes
            .iter()
            .any(|v| v["headers"].as_array().is_some_and(|h| h.len() > 1)),
        "a vector with several header lines"
    );
    for v in shapes {
        shop.accepted(v).await;
    }
    shop.role_held(true).await;
    assert_eq!(
        shop.app
            .count("SELECT count(*) FROM webhook_events WHERE outcome = 'applied'")
            .await,
        1
    );
    assert_eq!(
        shop.app.count("SELECT count(*) FROM webhook_events").await,
        1
    );
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn plugin_inspect_and_plugin_test_read_the_built_stripe_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = stripe_wasm();
    let out = crate::cli::docobo(dir.path(), &[])
        .args(["plugin", "inspect"])
        .arg(&wasm)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout.contains("loads"), "{stdout}");
    assert!(stdout.contains("stripe — Stripe "), "{stdout}");
    assert!(stdout.contains("plugin API:   0.2.0\n"), "{stdout}");
    assert!(
        stdout.contains("optional calls: manage-link, list-subscribers, test-delivery"),
        "{stdout}"
    );
    assert!(
        stdout.contains("hosts:        api.stripe.com (allowed: none)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("products:     needed per paid role; poll: yes"),
        "{stdout}"
    );
    assert!(stdout.contains("charge.dispute.closed"), "{stdout}");

    let v = valid("checkout.session.completed.subscription");
    let body = dir.path().join("event.json");
    std::fs::write(&body, v["body"].as_str().expect("body")).expect("write");
    let header = v["headers"][0].as_str().expect("header");
    let now = (v["now"].as_i64().expect("now") * 1000).to_string();
    let test = |header: &str, now: Option<&str>| {
        let mut cmd = crate::cli::docobo(dir.path(), &[]);
        cmd.args(["plugin", "test"])
            .arg(&wasm)
            .arg("--body")
            .arg(&body)
            .args(["--header", &format!("Stripe-Signature: {header}")])
            .args(["--setting", &format!("webhook_secret={WEBHOOK_SECRET}")])
            .args(["--setting", &format!("secret_key={SECRET_KEY}")]);
        if let Some(now) = now {
            cmd.args(["--now", now]);
        }
        cmd.output().expect("run")
    };
    let out = test(header, Some(&now));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout.contains("(plugin API 0.2.0)"), "{stdout}");
    assert!(stdout.contains("verified: 1 event(s)"), "{stdout}");
    assert!(stdout.contains(r#""kind":"subscription""#), "{stdout}");
    assert!(stdout.contains(SUBSCRIPTION), "{stdout}");
    assert!(stdout.contains(&ROLE.to_string()), "{stdout}");
    assert!(!text(&out).contains(WEBHOOK_SECRET), "{}", text(&out));

    // Without --now the delivery is months old: refused as stale.
    let out = test(header, None);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("refused"), "{}", text(&out));
    assert!(text(&out).contains("stale timestamp"), "{}", text(&out));
    // A signature for another body: refused as a bad signature.
    let other = valid("invoice.paid.renewal");
    let out = test(other["headers"][0].as_str().expect("header"), Some(&now));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("refused") && text(&out).contains("bad signature"),
        "{}",
        text(&out)
    );
}

/// `/admin tier` as the owner; the reply describes the tier.
async fn admin_tier(discord: &FakeDiscord, options: &[(&str, String)]) {
    let options: Vec<(&str, Value)> = options.iter().map(|(k, v)| (*k, json!(v))).collect();
    let reply = crate::tiers::tier(discord, &options).await;
    assert!(
        reply.content().is_some_and(|t| t.starts_with("The tier")),
        "{reply:?}"
    );
}

/// What the buyer's roles did at the fake Discord: `(method, role)` in order.
fn role_log(discord: &FakeDiscord) -> Vec<(String, u64)> {
    let prefix = format!("/guilds/{GUILD}/members/{BUYER}/roles/");
    discord
        .requests()
        .into_iter()
        .filter_map(|r| {
            let role = r.path.strip_prefix(&prefix)?.parse().ok()?;
            Some((r.method, role))
        })
        .collect()
}

async fn roles_become(discord: &FakeDiscord, want: &[u64], lack: &[u64]) {
    crate::tiers::wait_for_roles(discord, BUYER, want, lack).await;
}

/// Issue 21, item 2: a plan change at Stripe (the monthly price to the yearly one, each
/// the price of a tier) swaps the tiers' roles, and the role both tiers give is never
/// removed and given again: the role log at the fake Discord shows no removal of it.
#[tokio::test]
async fn a_stripe_plan_change_swaps_the_tiers_roles_without_removing_the_shared_one() {
    let shop = monthly_shop().await;
    shop.app
        .add_paid_role(
            guild(),
            RoleId::new(YEARLY_ROLE).expect("role"),
            (5000, "USD"),
            Billing::Yearly,
            Some(YEARLY_PRICE),
        )
        .await;
    for tier in [ROLE, YEARLY_ROLE] {
        admin_tier(
            &shop.discord,
            &[("tier", tier.to_string()), ("add_role", SHARED.to_string())],
        )
        .await;
    }
    shop.accepted(&valid("checkout.session.completed.subscription"))
        .await;
    roles_become(&shop.discord, &[ROLE, SHARED], &[YEARLY_ROLE]).await;

    shop.accepted(&valid("customer.subscription.updated.plan_change"))
        .await;
    roles_become(&shop.discord, &[YEARLY_ROLE, SHARED], &[ROLE]).await;
    // Let role sync and the sweep (every second) look again: nothing moves.
    shop.app.services.sync.wake();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = role_log(&shop.discord);
    assert!(
        !log.iter().any(|(m, r)| m == "DELETE" && *r == SHARED),
        "the shared role was removed: {log:?}"
    );
    assert_eq!(
        log.iter()
            .filter(|(m, r)| m == "DELETE" && *r == ROLE)
            .count(),
        1,
        "{log:?}"
    );
    let roles = shop.discord.member_roles(GUILD, BUYER).expect("member");
    assert!(
        roles.contains(&SHARED) && roles.contains(&YEARLY_ROLE) && !roles.contains(&ROLE),
        "{roles:?}"
    );
    // The new row is the yearly tier's, under the same Stripe id.
    let sub = shop.subscription(SUBSCRIPTION).await;
    assert_eq!(sub.state.status, SubscriptionStatus::Active);
    assert_eq!(
        shop.app
            .count("SELECT count(*) FROM subscriptions WHERE status = 'active'")
            .await,
        1
    );
}

/// Issue 21, item 4: a Stripe trial gives the tier and its separate trial role; when the
/// trial converts (the first invoice is paid) the trial role goes and the tier stays.
#[tokio::test]
async fn a_stripe_trial_gives_the_trial_role_until_it_converts() {
    let shop = monthly_shop().await;
    admin_tier(
        &shop.discord,
        &[
            ("tier", ROLE.to_string()),
            ("trial_role", TRIAL.to_string()),
        ],
    )
    .await;
    shop.accepted(&valid("customer.subscription.created.trialing.legacy"))
        .await;
    assert_eq!(
        shop.status(SUBSCRIPTION).await,
        SubscriptionStatus::Trialing
    );
    roles_become(&shop.discord, &[ROLE, TRIAL], &[]).await;

    shop.accepted(&valid("invoice.paid.renewal")).await;
    assert_eq!(shop.status(SUBSCRIPTION).await, SubscriptionStatus::Active);
    roles_become(&shop.discord, &[ROLE], &[TRIAL]).await;
    let log = role_log(&shop.discord);
    assert!(
        !log.iter().any(|(m, r)| m == "DELETE" && *r == ROLE),
        "the tier's role was removed: {log:?}"
    );
}
