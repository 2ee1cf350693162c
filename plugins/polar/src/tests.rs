//! Tests against the shared fixtures (`tests/fixtures/webhooks/` in this repository)
//! and the API calls through a mock host.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use docobo_plugin_sdk::{
    Billing, CheckoutRequest, EventKind, MockHost, Money, ProductSpec, ProviderError,
    SubscriptionStatus, WebhookError,
};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::api::{self, PollCursor};
use crate::handle_webhook_at;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/webhooks/"
);

fn fixture(name: &str) -> String {
    let path = format!("{FIXTURES}{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("missing fixture {path}: {e} (tests/fixtures/webhooks in this repository)")
    })
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

fn headers(id: &str, ts: &str, sig: &str) -> Vec<(String, String)> {
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.into()),
        ("webhook-signature".into(), sig.into()),
    ]
}

fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// Runs every vector of a vectors file through the verifier with the clock at the vector's
/// timestamp; returns how many ran.
fn run_vectors(file: &str, body_key: &str) -> usize {
    let vectors = fixture_json(file);
    let vectors = vectors.as_array().unwrap();
    assert!(!vectors.is_empty(), "{file} has no vectors");
    for v in vectors {
        let secret = v["secret"].as_str().unwrap();
        let ts = v["timestamp"].as_i64().unwrap();
        let h = headers(
            v["msg_id"].as_str().unwrap(),
            &ts.to_string(),
            v["expected_signature"].as_str().unwrap(),
        );
        let body = v[body_key].as_str().unwrap();
        let result = crate::verify::verify(secret, &h, body.as_bytes(), ts * 1000);
        let name = v.get("name").or_else(|| v.get("note")).unwrap();
        assert_eq!(
            result.is_ok(),
            v["expect_valid"].as_bool().unwrap(),
            "{file}: {name}: {result:?}"
        );
        if let Err(e) = result {
            assert!(matches!(e, WebhookError::BadSignature(_)), "{name}: {e:?}");
        }
    }
    vectors.len()
}

#[test]
fn polar_key_derivation_vectors() {
    assert_eq!(run_vectors("polar-vectors.json", "body"), 12);
}

#[test]
fn standard_webhooks_vectors() {
    assert_eq!(run_vectors("standard-webhooks-vectors.json", "payload"), 4);
}

/// Signs `body` like Polar does for a standard (`whsec_` + base64) secret.
fn sign(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const NOW_S: i64 = 1_789_467_700;

fn deliver(body: &str, id: &str) -> Result<Vec<docobo_plugin_sdk::ProviderEvent>, WebhookError> {
    let sig = sign(SECRET, id, NOW_S, body.as_bytes());
    handle_webhook_at(
        &config(&[("webhook_secret", SECRET)]),
        &headers(id, &NOW_S.to_string(), &sig),
        body.as_bytes(),
        NOW_S * 1000 + 1_500,
    )
}

#[test]
fn fixture_subscription_active() {
    let events = deliver(&fixture("polar-subscription-active.json"), "evt-active").unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.event_id, "evt-active");
    assert_eq!(e.event_type, "subscription.active");
    assert_eq!(e.kind, EventKind::Subscription);
    assert_eq!(e.status, Some(SubscriptionStatus::Active));
    assert_eq!(
        e.subscription_id.as_deref(),
        Some("7d8f2c1e-3b4a-4c5d-9e6f-0a1b2c3d4e5f")
    );
    assert_eq!(
        e.product_id.as_deref(),
        Some("0c7d3a52-6f5e-4b1a-9a43-1f2e3d4c5b6a")
    );
    assert_eq!(e.guild_id.as_deref(), Some("112233445566778899"));
    assert_eq!(e.user_id.as_deref(), Some("998877665544332211"));
    assert_eq!(e.role_id, None);
    assert_eq!(e.payment_code, None);
    // current_period_end 2026-10-15T10:20:58.102938Z
    assert_eq!(e.period_end, Some(1_792_059_658_102));
    // modified_at 2026-09-15T10:21:07.498211Z
    assert_eq!(e.occurred_at, 1_789_467_667_498);
    assert_eq!(
        e.amount,
        Some(Money {
            minor_units: 500,
            currency: "USD".into()
        })
    );
}

#[test]
fn fixture_subscription_revoked() {
    let events = deliver(&fixture("polar-subscription-revoked.json"), "evt-revoked").unwrap();
    let e = &events[0];
    assert_eq!(e.kind, EventKind::Subscription);
    assert_eq!(e.status, Some(SubscriptionStatus::Revoked));
    assert_eq!(
        e.subscription_id.as_deref(),
        Some("7d8f2c1e-3b4a-4c5d-9e6f-0a1b2c3d4e5f")
    );
    assert_eq!(e.user_id.as_deref(), Some("998877665544332211"));
    // modified_at 2026-10-15T10:20:58.990000Z
    assert_eq!(e.occurred_at, 1_792_059_658_990);
}

#[test]
fn fixture_order_paid() {
    let events = deliver(&fixture("polar-order-paid.json"), "evt-order").unwrap();
    let e = &events[0];
    assert_eq!(e.event_type, "order.paid");
    assert_eq!(e.kind, EventKind::Payment);
    assert_eq!(e.status, Some(SubscriptionStatus::Active));
    assert_eq!(
        e.subscription_id.as_deref(),
        Some("e4d3c2b1-a098-4765-8432-10fedcba9876")
    );
    assert_eq!(
        e.product_id.as_deref(),
        Some("6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d")
    );
    assert_eq!(e.guild_id.as_deref(), Some("112233445566778899"));
    assert_eq!(e.user_id.as_deref(), Some("998877665544332211"));
    assert_eq!(e.period_end, None);
    assert_eq!(e.occurred_at, 1_789_467_667_390);
    assert_eq!(
        e.amount,
        Some(Money {
            minor_units: 1500,
            currency: "USD".into()
        })
    );
}

#[test]
fn newer_payload_shape_maps_the_same() {
    let mut body = fixture_json("polar-subscription-active.json");
    body["api_version"] = json!("2026-04");
    body["data"]["units"] = json!(1);
    body["data"]["product"]["is_deletable"] = json!(false);
    body["data"]["some_future_field"] = json!({"x": [1, 2]});
    // Numbers instead of strings in metadata (allowed by Polar), above 2^53.
    body["data"]["metadata"]["docobo_role_id"] = json!(1_234_567_890_123_456_789u64);
    let text = body.to_string();
    let new = deliver(&text, "evt").unwrap();
    let old = deliver(&fixture("polar-subscription-active.json"), "evt").unwrap();
    assert_eq!(new[0].role_id.as_deref(), Some("1234567890123456789"));
    let mut new0 = new[0].clone();
    new0.role_id = None;
    assert_eq!(new0, old[0]);
}

#[test]
fn tampered_fixture_is_refused_and_stale_is_reported() {
    let body = fixture("polar-subscription-active.json");
    let sig = sign(SECRET, "evt", NOW_S, body.as_bytes());
    let tampered = body.replace("\"active\"", "\"past_due\"");
    let cfg = config(&[("webhook_secret", SECRET)]);
    let h = headers("evt", &NOW_S.to_string(), &sig);
    assert!(matches!(
        handle_webhook_at(&cfg, &h, tampered.as_bytes(), NOW_S * 1000),
        Err(WebhookError::BadSignature(_))
    ));
    assert!(matches!(
        handle_webhook_at(&cfg, &h, body.as_bytes(), NOW_S * 1000 + 301_000),
        Err(WebhookError::StaleTimestamp(_))
    ));
    assert!(matches!(
        handle_webhook_at(&config(&[]), &h, body.as_bytes(), NOW_S * 1000),
        Err(WebhookError::Misconfigured(_))
    ));
    assert!(matches!(
        handle_webhook_at(
            &config(&[("webhook_secret", " ")]),
            &h,
            body.as_bytes(),
            NOW_S * 1000
        ),
        Err(WebhookError::Misconfigured(_))
    ));
}

#[test]
fn verified_junk_is_malformed() {
    assert!(matches!(
        deliver("{not json", "e"),
        Err(WebhookError::Malformed(_))
    ));
    assert!(matches!(
        deliver(
            r#"{"type":"subscription.updated","data":{"status":"active"}}"#,
            "e"
        ),
        Err(WebhookError::Malformed(_))
    ));
}

// ---- API ----

const TOKEN: &str = "polar_oat_SECRETTOKEN";

fn api_config() -> Vec<(String, String)> {
    config(&[
        ("access_token", TOKEN),
        ("webhook_secret", SECRET),
        ("api_url", "http://127.0.0.1:9999/"),
    ])
}

fn checkout_request(product: Option<&str>) -> CheckoutRequest {
    CheckoutRequest {
        guild_id: "111".into(),
        user_id: "222".into(),
        role_id: "333".into(),
        product_id: product.map(str::to_string),
        price: Money {
            minor_units: 500,
            currency: "USD".into(),
        },
        billing: Billing::Monthly,
        success_url: Some("https://example.com/done".into()),
        nonce: 7,
    }
}

fn header<'a>(req: &'a docobo_plugin_sdk::HttpRequest, name: &str) -> Option<&'a str> {
    docobo_plugin_sdk::header(&req.headers, name)
}

#[test]
fn base_url_from_environment_or_override() {
    let base = |pairs: &[(&str, &str)]| {
        let mut c = config(&[("access_token", "t")]);
        c.extend(config(pairs));
        api::ApiSettings::from_config(&c).map(|s| s.base)
    };
    assert_eq!(base(&[]).unwrap(), "https://api.polar.sh");
    assert_eq!(
        base(&[("environment", "sandbox")]).unwrap(),
        "https://sandbox-api.polar.sh"
    );
    assert_eq!(
        base(&[("environment", "Production")]).unwrap(),
        "https://api.polar.sh"
    );
    assert_eq!(
        base(&[
            ("environment", "sandbox"),
            ("api_url", "http://127.0.0.1:8080/v1/")
        ])
        .unwrap(),
        "http://127.0.0.1:8080"
    );
    assert!(matches!(
        base(&[("environment", "staging")]),
        Err(ProviderError::Misconfigured(_))
    ));
    assert!(matches!(
        base(&[("api_url", "ftp://x")]),
        Err(ProviderError::Misconfigured(_))
    ));
    assert!(matches!(
        api::ApiSettings::from_config(&config(&[])),
        Err(ProviderError::Misconfigured(_))
    ));
}

#[test]
fn create_checkout_request_and_response() {
    let host = MockHost::new(0).respond(
        201,
        r#"{"id":"c1","url":"https://polar.sh/checkout/polar_c_x","expires_at":"2026-01-02T00:00:00Z","status":"open"}"#,
    );
    let checkout =
        api::create_checkout(&host, &api_config(), &checkout_request(Some("prod_1"))).unwrap();
    assert_eq!(
        checkout.url.as_deref(),
        Some("https://polar.sh/checkout/polar_c_x")
    );
    assert_eq!(checkout.expires_at, Some(1_767_312_000_000));
    assert_eq!(checkout.payment_code, None);

    let requests = host.requests.borrow();
    let req = &requests[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "http://127.0.0.1:9999/v1/checkouts/");
    assert_eq!(
        header(req, "authorization"),
        Some("Bearer polar_oat_SECRETTOKEN")
    );
    assert_eq!(header(req, "content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(req.body.as_deref().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({
            "products": ["prod_1"],
            "external_customer_id": "222",
            "metadata": {"docobo_guild_id": "111", "docobo_user_id": "222", "docobo_role_id": "333"},
            "success_url": "https://example.com/done",
        })
    );
}

type Check = fn(&ProviderError) -> bool;

#[test]
fn create_checkout_errors() {
    let cfg = api_config();
    let no_product = api::create_checkout(&MockHost::new(0), &cfg, &checkout_request(None));
    assert!(matches!(no_product, Err(ProviderError::Misconfigured(_))));

    let cases: Vec<(MockHost, Check)> = vec![
        (MockHost::new(0).respond(401, "{}"), |e| {
            matches!(e, ProviderError::InvalidCredentials(_))
        }),
        (MockHost::new(0).respond(403, "{}"), |e| {
            matches!(e, ProviderError::InvalidCredentials(_))
        }),
        (
            MockHost::new(0).respond(422, r#"{"detail":[{"msg":"bad product"}]}"#),
            |e| matches!(e, ProviderError::Upstream(m) if m.contains("422") && m.contains("bad product")),
        ),
        (MockHost::new(0).respond(201, "not json"), |e| {
            matches!(e, ProviderError::Upstream(_))
        }),
        (MockHost::new(0).respond(201, "{}"), |e| {
            matches!(e, ProviderError::Upstream(_))
        }),
        (
            MockHost::new(0).fail("connection refused"),
            |e| matches!(e, ProviderError::Upstream(m) if m.contains("connection refused")),
        ),
    ];
    for (host, check) in cases {
        let err = api::create_checkout(&host, &cfg, &checkout_request(Some("p"))).unwrap_err();
        assert!(check(&err), "{err:?}");
        assert!(!format!("{err:?}").contains("SECRETTOKEN"), "{err:?}");
    }
}

#[test]
fn create_product_bodies() {
    let spec = |billing| ProductSpec {
        guild_id: "111".into(),
        role_id: "333".into(),
        name: "VIP".into(),
        price: Money {
            minor_units: 999,
            currency: "EUR".into(),
        },
        billing,
        trial_days: None,
    };
    for (billing, interval) in [
        (Billing::Monthly, json!("month")),
        (Billing::Yearly, json!("year")),
        (Billing::OneTime, Value::Null),
    ] {
        let host = MockHost::new(0).respond(201, r#"{"id":"prod_9","name":"VIP"}"#);
        let id = api::create_product(&host, &api_config(), &spec(billing)).unwrap();
        assert_eq!(id, "prod_9");
        let req = &host.requests.borrow()[0];
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "http://127.0.0.1:9999/v1/products/");
        let body: Value = serde_json::from_slice(req.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "name": "VIP",
                "recurring_interval": interval,
                "prices": [{"amount_type": "fixed", "price_amount": 999, "price_currency": "eur"}],
                "metadata": {"docobo_guild_id": "111", "docobo_role_id": "333"},
            })
        );
    }
    match api::create_product(&MockHost::new(0), &api_config(), &spec(Billing::Days(30))) {
        Err(ProviderError::Misconfigured(m)) => assert_eq!(m, "Polar does not sell 30-day passes"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn validate_credentials_calls() {
    let host = MockHost::new(0)
        .respond(200, r#"{"items":[]}"#)
        .respond(200, r#"{"items":[]}"#)
        .respond(200, r#"{"items":[]}"#);
    api::validate_credentials(&host, &api_config()).unwrap();
    let urls: Vec<String> = host
        .requests
        .borrow()
        .iter()
        .map(|r| r.url.clone())
        .collect();
    assert_eq!(
        urls,
        [
            "http://127.0.0.1:9999/v1/checkouts/?limit=1",
            "http://127.0.0.1:9999/v1/products/?limit=1",
            "http://127.0.0.1:9999/v1/subscriptions/?limit=1",
        ]
    );
    assert!(host.requests.borrow().iter().all(|r| r.method == "GET"));

    let host = MockHost::new(0).respond(401, "{}");
    assert!(matches!(
        api::validate_credentials(&host, &api_config()),
        Err(ProviderError::InvalidCredentials(_))
    ));
    let host = MockHost::new(0).respond(503, "down");
    assert!(matches!(
        api::validate_credentials(&host, &api_config()),
        Err(ProviderError::Upstream(_))
    ));
}

fn sub_item(id: &str, modified: &str, status: &str, docobo: bool) -> Value {
    let metadata = if docobo {
        json!({"docobo_guild_id": "111", "docobo_user_id": "222", "docobo_role_id": "333"})
    } else {
        json!({})
    };
    json!({"id": id, "status": status, "cancel_at_period_end": false, "modified_at": modified,
           "created_at": "2025-01-01T00:00:00Z", "current_period_end": "2026-02-01T00:00:00Z",
           "amount": 500, "currency": "usd", "product_id": "prod_1", "metadata": metadata})
}

#[test]
fn poll_sweeps_pages_and_filters() {
    let now = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let page = |items: Vec<Value>, max_page: u32| {
        json!({"items": items, "pagination": {"total_count": 5, "max_page": max_page}}).to_string()
    };
    let host = MockHost::new(now)
        .respond(
            200,
            page(
                vec![
                    sub_item("s1", "2025-12-31T23:00:00Z", "active", true),
                    sub_item("s2", "2025-12-01T00:00:00Z", "active", true), // too old
                    sub_item("s3", "2025-12-31T22:00:00Z", "active", false), // not Docobo's
                ],
                2,
            ),
        )
        .respond(
            200,
            page(
                vec![sub_item("s4", "2025-12-31T12:00:00.250Z", "canceled", true)],
                2,
            ),
        )
        .respond(
            200,
            json!({"items": [], "pagination": {"max_page": 0}}).to_string(),
        );
    let cursor = (now - 86_400_000).to_string();
    let result = api::poll(&host, &api_config(), Some(&cursor)).unwrap();
    let ids: Vec<&str> = result.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["poll:s1:1767222000000", "poll:s4:1767182400250"]);
    assert_eq!(result.events[0].status, Some(SubscriptionStatus::Active));
    assert_eq!(result.events[0].guild_id.as_deref(), Some("111"));
    assert_eq!(result.events[0].occurred_at, 1_767_222_000_000);
    assert_eq!(result.events[1].status, Some(SubscriptionStatus::Revoked));
    assert!(
        result
            .events
            .iter()
            .all(|e| e.kind == EventKind::Subscription)
    );
    // Sweep finished: restart from its start minus the overlap.
    assert_eq!(
        result.next_cursor.as_deref(),
        Some((now - api::POLL_OVERLAP_MS).to_string().as_str())
    );
    let urls: Vec<String> = host
        .requests
        .borrow()
        .iter()
        .map(|r| r.url.clone())
        .collect();
    assert_eq!(
        urls,
        [
            "http://127.0.0.1:9999/v1/subscriptions/?limit=100&page=1&sorting=-started_at",
            "http://127.0.0.1:9999/v1/subscriptions/?limit=100&page=2&sorting=-started_at",
            "http://127.0.0.1:9999/v1/orders/?limit=100&page=1&sorting=-created_at",
        ]
    );
}

fn order_item(id: &str, created: &str, reason: &str, status: &str, docobo: bool) -> Value {
    let metadata = if docobo {
        json!({"docobo_guild_id": "111", "docobo_user_id": "222", "docobo_role_id": "333"})
    } else {
        json!({})
    };
    json!({"id": id, "status": status, "billing_reason": reason, "created_at": created,
           "total_amount": 2000, "currency": "eur", "product_id": "prod_1",
           "subscription_id": null, "metadata": metadata})
}

#[test]
fn a_finished_sweep_also_catches_paid_one_time_orders() {
    let now = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let orders = json!({"items": [
        order_item("o1", "2025-12-31T20:00:00Z", "purchase", "paid", true),
        order_item("o2", "2025-12-31T20:00:00Z", "subscription_cycle", "paid", true),
        order_item("o3", "2025-12-31T20:00:00Z", "purchase", "paid", false),
        order_item("o4", "2025-12-31T20:00:00Z", "purchase", "pending", true),
        order_item("o5", "2025-11-01T00:00:00Z", "purchase", "paid", true),
    ]});
    let host = MockHost::new(now)
        .respond(
            200,
            json!({"items": [], "pagination": {"max_page": 0}}).to_string(),
        )
        .respond(200, orders.to_string());
    let cursor = (now - 86_400_000).to_string();
    let result = api::poll(&host, &api_config(), Some(&cursor)).unwrap();
    let ids: Vec<&str> = result.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(
        ids,
        ["poll:o1:paid"],
        "only Docobo's paid one-time orders since the cursor"
    );
    let event = &result.events[0];
    assert_eq!(event.kind, EventKind::Payment);
    assert_eq!(event.subscription_id.as_deref(), Some("o1"));
    assert_eq!(event.guild_id.as_deref(), Some("111"));
    assert_eq!(event.user_id.as_deref(), Some("222"));
    assert_eq!(event.status, Some(SubscriptionStatus::Active));
    // An order list that fails fails the poll: the cursor does not move past it.
    let broken = MockHost::new(now)
        .respond(
            200,
            json!({"items": [], "pagination": {"max_page": 0}}).to_string(),
        )
        .respond(500, "{}");
    assert!(api::poll(&broken, &api_config(), Some(&cursor)).is_err());
}

#[test]
fn poll_continues_a_long_sweep() {
    let now = 1_767_225_600_000;
    let mut host = MockHost::new(now);
    for _ in 0..api::POLL_MAX_PAGES {
        host = host.respond(
            200,
            json!({"items": [sub_item("s", "2025-12-31T23:00:00Z", "active", true)],
                   "pagination": {"total_count": 1000, "max_page": 10}})
            .to_string(),
        );
    }
    let result = api::poll(&host, &api_config(), None).unwrap();
    assert_eq!(result.events.len(), 3);
    let since = now - api::FIRST_POLL_LOOKBACK_MS;
    let cursor = result.next_cursor.unwrap();
    assert_eq!(cursor, format!("{since}:4:{now}"));
    assert_eq!(
        PollCursor::parse(Some(&cursor), now + 5),
        PollCursor {
            since,
            page: 4,
            sweep_start: now
        }
    );
    // Junk cursors start over.
    assert_eq!(PollCursor::parse(Some("x:y"), now).page, 1);
    assert_eq!(PollCursor::parse(Some("1:0:5"), now).since, since);
}

#[test]
fn plugin_info_is_consistent() {
    let info = crate::info();
    assert_eq!(info.id, "polar");
    assert_eq!(info.hosts, ["api.polar.sh", "sandbox-api.polar.sh"]);
    assert!(info.needs_products && info.supports_poll);
    assert_eq!(info.webhook_ack, None);
    let secret_keys: Vec<&str> = info
        .config_fields
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.key.as_str())
        .collect();
    assert_eq!(secret_keys, ["access_token", "webhook_secret"]);
    assert!(info.config_fields.iter().all(|f| f.label.len() <= 45));
    assert!(info.webhook_events.iter().any(|e| e == "order.refunded"));
    // The token, the environment and the API URL say which Polar account products live in;
    // the webhook secret does not (rotating it keeps the products).
    let account: Vec<&str> = info
        .config_fields
        .iter()
        .filter(|f| f.identifies_account)
        .map(|f| f.key.as_str())
        .collect();
    assert_eq!(account, ["access_token", "environment", "api_url"]);
    assert!(info.currencies.is_empty(), "Polar takes many currencies");
}

#[test]
fn create_product_with_a_trial() {
    let spec = |billing, trial_days| ProductSpec {
        guild_id: "111".into(),
        role_id: "333".into(),
        name: "VIP".into(),
        price: Money {
            minor_units: 999,
            currency: "EUR".into(),
        },
        billing,
        trial_days,
    };
    let host = MockHost::new(0).respond(201, r#"{"id":"prod_t"}"#);
    api::create_product(&host, &api_config(), &spec(Billing::Monthly, Some(7))).unwrap();
    let body: Value =
        serde_json::from_slice(host.requests.borrow()[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body["trial_interval"], "day");
    assert_eq!(body["trial_interval_count"], 7);
    // One-time products have no trial in Polar: the request is ignored.
    let host = MockHost::new(0).respond(201, r#"{"id":"prod_o"}"#);
    api::create_product(&host, &api_config(), &spec(Billing::Lifetime, Some(7))).unwrap();
    let body: Value =
        serde_json::from_slice(host.requests.borrow()[0].body.as_deref().unwrap()).unwrap();
    assert!(body.get("trial_interval").is_none(), "{body}");
    assert_eq!(body["recurring_interval"], Value::Null);
}

fn manage_request(customer: Option<&str>) -> docobo_plugin_sdk::ManageLinkRequest {
    docobo_plugin_sdk::ManageLinkRequest {
        customer_id: customer.map(str::to_string),
        subscription_id: "sub_1".into(),
        guild_id: "111".into(),
        user_id: "222".into(),
        return_url: Some("https://discord.com/channels/111".into()),
    }
}

/// A `CustomerSession` as Polar returns it (the `customer` object trimmed).
const CUSTOMER_SESSION: &str = r#"{"created_at":"2026-09-15T10:00:00Z","modified_at":null,
"id":"4b9f0c2e-1111-4222-8333-444455556666","token":"polar_cst_abc","expires_at":"2026-09-15T11:00:00Z",
"return_url":"https://discord.com/channels/111","customer_portal_url":"https://polar.sh/acme/portal?customer_session_token=polar_cst_abc",
"customer_id":"992fae2a-2a17-4b7a-8d9e-e287cf90131b","customer":{"id":"992fae2a-2a17-4b7a-8d9e-e287cf90131b"}}"#;

#[test]
fn manage_link_opens_a_customer_session() {
    let host = MockHost::new(0).respond(201, CUSTOMER_SESSION);
    let link = api::manage_link(
        &host,
        &api_config(),
        &manage_request(Some("992fae2a-2a17-4b7a-8d9e-e287cf90131b")),
    )
    .unwrap();
    assert_eq!(
        link,
        "https://polar.sh/acme/portal?customer_session_token=polar_cst_abc"
    );
    let requests = host.requests.borrow();
    assert_eq!(requests[0].method, "POST");
    assert_eq!(
        requests[0].url,
        "http://127.0.0.1:9999/v1/customer-sessions/"
    );
    let body: Value = serde_json::from_slice(requests[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"customer_id": "992fae2a-2a17-4b7a-8d9e-e287cf90131b",
               "return_url": "https://discord.com/channels/111"})
    );
    drop(requests);

    // Without a Polar customer id: by the external id Docobo's checkouts set.
    let host = MockHost::new(0).respond(201, CUSTOMER_SESSION);
    api::manage_link(&host, &api_config(), &manage_request(None)).unwrap();
    let body: Value =
        serde_json::from_slice(host.requests.borrow()[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body["external_customer_id"], "222");

    // A missing scope, or no portal URL in the answer, is an error.
    let host = MockHost::new(0).respond(403, "{}");
    assert!(matches!(
        api::manage_link(&host, &api_config(), &manage_request(None)),
        Err(ProviderError::InvalidCredentials(m)) if m.contains("customer_sessions:write")
    ));
    let host = MockHost::new(0).respond(201, r#"{"id":"x"}"#);
    assert!(matches!(
        api::manage_link(&host, &api_config(), &manage_request(None)),
        Err(ProviderError::Upstream(_))
    ));
}

#[test]
fn list_subscribers_pages_through_active_subscriptions() {
    let sub = fixture_json("polar-subscription-active.json")["data"].clone();
    let mut trialing = sub.clone();
    trialing["id"] = json!("sub_trial");
    trialing["status"] = json!("trialing");
    trialing["trial_end"] = json!("2026-09-22T10:20:58Z");
    let page1 = json!({"items": [sub, trialing], "pagination": {"total_count": 3, "max_page": 2}});
    let mut other = fixture_json("polar-subscription-active.json")["data"].clone();
    other["id"] = json!("sub_3");
    other["metadata"] = json!({});
    let page2 = json!({"items": [other], "pagination": {"total_count": 3, "max_page": 2}});
    let host = MockHost::new(0)
        .respond(200, page1.to_string())
        .respond(200, page2.to_string());
    let cfg = api_config();
    let first = api::list_subscribers(&host, &cfg, None).unwrap();
    assert_eq!(first.next_cursor.as_deref(), Some("2"));
    assert_eq!(first.subscribers.len(), 2);
    let s = &first.subscribers[0];
    assert_eq!(s.subscription_id, "7d8f2c1e-3b4a-4c5d-9e6f-0a1b2c3d4e5f");
    assert_eq!(s.guild_id.as_deref(), Some("112233445566778899"));
    assert_eq!(s.user_id.as_deref(), Some("998877665544332211"));
    assert_eq!(
        s.customer_id.as_deref(),
        Some("992fae2a-2a17-4b7a-8d9e-e287cf90131b")
    );
    assert_eq!(s.status, SubscriptionStatus::Active);
    assert!(!s.test);
    assert_eq!(first.subscribers[1].status, SubscriptionStatus::Trialing);
    let second = api::list_subscribers(&host, &cfg, first.next_cursor.as_deref()).unwrap();
    assert_eq!(second.next_cursor, None);
    // Not sold through Docobo: listed all the same, without Discord ids (the import decides).
    assert_eq!(second.subscribers.len(), 1);
    assert_eq!(second.subscribers[0].guild_id, None);
    let requests = host.requests.borrow();
    assert_eq!(
        requests[0].url,
        "http://127.0.0.1:9999/v1/subscriptions/?active=true&limit=100&page=1"
    );
    assert!(requests[1].url.ends_with("&page=2"));
    drop(requests);
    assert!(matches!(
        api::list_subscribers(&MockHost::new(0), &cfg, Some("zero")),
        Err(ProviderError::Misconfigured(_))
    ));
}

#[test]
fn sandbox_deliveries_are_test_events() {
    let body = fixture("polar-subscription-active.json");
    let id = "msg_sandbox";
    let sig = sign(SECRET, id, NOW_S, body.as_bytes());
    let h = headers(id, &NOW_S.to_string(), &sig);
    let live = handle_webhook_at(
        &config(&[("webhook_secret", SECRET)]),
        &h,
        body.as_bytes(),
        NOW_S * 1000,
    )
    .unwrap();
    assert!(!live[0].test);
    let sandbox = handle_webhook_at(
        &config(&[("webhook_secret", SECRET), ("environment", "sandbox")]),
        &h,
        body.as_bytes(),
        NOW_S * 1000,
    )
    .unwrap();
    assert!(sandbox[0].test);
    assert_eq!(sandbox[0].kind, EventKind::Subscription);
}

#[test]
fn the_plugin_declares_its_optional_calls() {
    use docobo_plugin_sdk::Capabilities;
    let info = crate::info();
    let has = |c: Capabilities| (info.capabilities & c) == c;
    assert!(has(Capabilities::MANAGE_LINK));
    assert!(has(Capabilities::LIST_SUBSCRIBERS));
    assert!(!has(Capabilities::TEST_DELIVERY));
    for event in ["subscription.paused", "subscription.resumed"] {
        assert!(info.webhook_events.iter().any(|e| e == event), "{event}");
    }
}
