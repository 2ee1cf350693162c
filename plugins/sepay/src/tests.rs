//! Tests against the shared fixture (`tests/fixtures/webhooks/sepay-transfer-in.json` in this repository)
//! and the API through a mock host.

use docobo_plugin_sdk::{
    Billing, CheckoutRequest, EventKind, MockHost, Money, ProviderError, SubscriptionStatus,
    WebhookError,
};
use serde_json::{Value, json};

use crate::{Settings, api, checkout, handle_webhook_at, verify};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/webhooks/sepay-transfer-in.json"
);

fn fixture() -> String {
    std::fs::read_to_string(FIXTURE).unwrap_or_else(|e| {
        panic!("missing fixture {FIXTURE}: {e} (tests/fixtures/webhooks in this repository)")
    })
}

/// Removes the whitespace outside strings, keeping the key order (the body of the derived
/// HMAC vector in providers.md §3.2 is the fixture minified in file order).
fn minify(json: &str) -> String {
    let mut out = String::new();
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

const KEY: &str = "test-api-key-123";
const NOW: i64 = 1_767_225_660_000; // one minute after the transfer

fn base_config() -> Vec<(String, String)> {
    config(&[
        ("webhook_api_key", KEY),
        ("account_number", "0359123456"),
        ("bank", "MBBank"),
    ])
}

fn apikey(key: &str) -> Vec<(String, String)> {
    config(&[("authorization", &format!("Apikey {key}"))])
}

#[test]
fn fixture_transfer_in_maps_to_a_payment() {
    let body = fixture();
    let events = handle_webhook_at(&base_config(), &apikey(KEY), body.as_bytes(), NOW).unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.event_id, "123456");
    assert_eq!(e.event_type, "transfer.in");
    assert_eq!(e.kind, EventKind::Payment);
    assert_eq!(e.status, Some(SubscriptionStatus::Active));
    assert_eq!(e.payment_code.as_deref(), Some("DCB12345"));
    assert_eq!(
        e.amount,
        Some(Money {
            minor_units: 50_000,
            currency: "VND".into()
        })
    );
    // "2026-01-01 07:00:00" in Vietnam = 2026-01-01T00:00:00Z.
    assert_eq!(e.occurred_at, 1_767_225_600_000);
    assert_eq!(e.guild_id, None);
    assert_eq!(e.user_id, None);
    assert_eq!(e.role_id, None);
    assert_eq!(e.subscription_id, None);
    assert_eq!(e.period_end, None);
}

#[test]
fn fixture_every_documented_field_is_read() {
    let t = crate::transfer::Transfer::from_webhook(fixture().as_bytes()).unwrap();
    assert_eq!(
        t,
        crate::transfer::Transfer {
            id: "123456".into(),
            gateway: Some("MBBank".into()),
            transaction_date: Some("2026-01-01 07:00:00".into()),
            account_number: Some("0359123456".into()),
            sub_account: None,
            code: Some("DCB12345".into()),
            content: "DCB12345 chuyen tien".into(),
            incoming: true,
            amount: 50_000,
            accumulated: Some(0),
            reference_code: Some("FT26001123456".into()),
            description: Some("BankAPINotify DCB12345 chuyen tien".into()),
        }
    );
}

#[test]
fn api_key_is_required_and_checked() {
    let body = fixture();
    for headers in [
        apikey("wrong"),
        config(&[("authorization", "Bearer test-api-key-123")]),
        config(&[]),
    ] {
        let err = handle_webhook_at(&base_config(), &headers, body.as_bytes(), NOW).unwrap_err();
        assert!(matches!(err, WebhookError::BadSignature(_)), "{err:?}");
        assert!(!format!("{err:?}").contains(KEY));
    }
    // SePay's own package tolerates "Bearer Apikey …"; so do we.
    let lenient = config(&[("Authorization", "Bearer Apikey test-api-key-123")]);
    assert!(handle_webhook_at(&base_config(), &lenient, body.as_bytes(), NOW).is_ok());
    // No key configured at all.
    let cfg = config(&[("account_number", "0359123456"), ("bank", "MBBank")]);
    assert!(matches!(
        handle_webhook_at(&cfg, &apikey(KEY), body.as_bytes(), NOW),
        Err(WebhookError::Misconfigured(_))
    ));
}

#[test]
fn derived_hmac_vector() {
    // providers.md §3.2 (derived, unofficial): secret, timestamp, minified fixture body.
    let secret = "whsec_a7c3b4e5f6a7b8c9d0e1f2a3b4c5d6e7";
    let body = minify(&fixture());
    assert!(
        body.starts_with(
            r#"{"id":123456,"gateway":"MBBank","transactionDate":"2026-01-01 07:00:00""#
        )
    );
    let expected = "sha256=33133a2756cedf1916e02f8367ce0dc5f1aeb4270cc352c7001ff400e1a0fd65";
    assert_eq!(
        verify::hmac_signature(secret, "1767225600", body.as_bytes()).unwrap(),
        expected
    );
    let mut cfg = base_config();
    cfg.push(("hmac_secret".into(), secret.into()));
    let headers = config(&[
        ("x-sepay-signature", expected),
        ("x-sepay-timestamp", "1767225600"),
    ]);
    let events = handle_webhook_at(&cfg, &headers, body.as_bytes(), 1_767_225_600_000).unwrap();
    assert_eq!(events[0].kind, EventKind::Payment);
    // HMAC replaces the API key: an Apikey header alone is not enough.
    assert!(matches!(
        handle_webhook_at(&cfg, &apikey(KEY), body.as_bytes(), 1_767_225_600_000),
        Err(WebhookError::BadSignature(_))
    ));
    // Tampered body, and a stale timestamp.
    let tampered = body.replace("50000", "500000");
    assert!(matches!(
        handle_webhook_at(&cfg, &headers, tampered.as_bytes(), 1_767_225_600_000),
        Err(WebhookError::BadSignature(_))
    ));
    assert!(matches!(
        handle_webhook_at(&cfg, &headers, body.as_bytes(), 1_767_225_600_000 + 301_000),
        Err(WebhookError::StaleTimestamp(_))
    ));
}

fn variant(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_str(&fixture()).unwrap();
    edit(&mut v);
    v.to_string().into_bytes()
}

#[test]
fn transfers_that_do_not_count_are_ignored() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("out", variant(|v| v["transferType"] = json!("out"))),
        (
            "other account",
            variant(|v| v["accountNumber"] = json!("111222333")),
        ),
        (
            "no code",
            variant(|v| {
                v["code"] = Value::Null;
                v["content"] = json!("chuyen tien");
            }),
        ),
        (
            "another shop's code",
            variant(|v| {
                v["code"] = json!("DH4455");
                v["content"] = json!("DH4455");
            }),
        ),
    ];
    for (name, body) in cases {
        let events = handle_webhook_at(&base_config(), &apikey(KEY), &body, NOW).unwrap();
        assert_eq!(events.len(), 1, "{name}");
        assert_eq!(events[0].kind, EventKind::Ignored, "{name}");
        assert_eq!(events[0].event_id, "123456", "{name}");
        assert_eq!(events[0].payment_code, None, "{name}");
        assert_eq!(events[0].status, None, "{name}");
    }
}

#[test]
fn code_found_in_content_when_sepay_found_none() {
    let body = variant(|v| {
        v["code"] = Value::Null;
        v["content"] = json!("NGUYEN VAN A chuyen tien dcb7k3m9pqr");
    });
    let cfg = base_config();
    let events = handle_webhook_at(&cfg, &apikey(KEY), &body, NOW).unwrap();
    assert_eq!(events[0].kind, EventKind::Payment);
    assert_eq!(events[0].payment_code.as_deref(), Some("DCB7K3M9PQR"));
    // A custom prefix.
    let mut cfg = base_config();
    cfg.push(("payment_prefix".into(), "vip".into()));
    let body = variant(|v| {
        v["code"] = Value::Null;
        v["content"] = json!("VIPABCDEFGH");
    });
    let events = handle_webhook_at(&cfg, &apikey(KEY), &body, NOW).unwrap();
    assert_eq!(events[0].payment_code.as_deref(), Some("VIPABCDEFGH"));
}

#[test]
fn verified_junk_is_malformed() {
    for body in [&b"id=1&transferType=in"[..], b"{}", b"[1,2]"] {
        assert!(matches!(
            handle_webhook_at(&base_config(), &apikey(KEY), body, NOW),
            Err(WebhookError::Malformed(_))
        ));
    }
}

#[test]
fn settings_validation() {
    let s = |pairs: &[(&str, &str)]| {
        let mut c = base_config();
        c.extend(config(pairs));
        Settings::from_config(&c).map(|s| (s.prefix.to_string(), s.api_url.to_string()))
    };
    assert_eq!(
        s(&[]).unwrap(),
        ("DCB".into(), "https://my.sepay.vn".into())
    );
    assert_eq!(
        s(&[
            ("api_url", "http://127.0.0.1:1/"),
            ("payment_prefix", "Vip")
        ])
        .unwrap(),
        ("Vip".into(), "http://127.0.0.1:1".into())
    );
    for bad in [
        [("payment_prefix", "D")],
        [("payment_prefix", "DCB1")],
        [("payment_prefix", "TOOLONG")],
        [("api_url", "my.sepay.vn")],
    ] {
        assert!(s(&bad).is_err(), "{bad:?}");
    }
    assert!(Settings::from_config(&config(&[("bank", "MBBank")])).is_err());
}

fn request(nonce: u64, currency: &str) -> CheckoutRequest {
    CheckoutRequest {
        guild_id: "1".into(),
        user_id: "2".into(),
        role_id: "3".into(),
        product_id: None,
        price: Money {
            minor_units: 50_000,
            currency: currency.into(),
        },
        billing: Billing::Days(30),
        success_url: None,
        nonce,
    }
}

#[test]
fn checkout_qr_and_instructions() {
    let mut cfg = base_config();
    cfg.push(("account_name".into(), "NGUYEN VAN A".into()));
    cfg.push(("bank".into(), "ignored: the first bank wins".into()));
    let settings = Settings::from_config(&cfg).unwrap();
    let c = checkout::create(&settings, &request(42, "VND"), NOW).unwrap();
    let code = c.payment_code.clone().unwrap();
    assert_eq!(code, checkout::payment_code("DCB", 42));
    assert_eq!(
        c.qr_image_url.as_deref(),
        Some(
            format!("https://qr.sepay.vn/img?acc=0359123456&bank=MBBank&amount=50000&des={code}")
                .as_str()
        )
    );
    let text = c.instructions.unwrap();
    for part in [
        "50,000 VND",
        "MBBank",
        "0359123456",
        "NGUYEN VAN A",
        code.as_str(),
        "valid for 24 hours",
        "only for exactly 50,000 VND",
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
    assert_eq!(c.expires_at, Some(NOW + 24 * 3_600_000));
    assert_eq!(c.url, None);
    // Same nonce, same code; another nonce, another code.
    let again = checkout::create(&settings, &request(42, "VND"), NOW + 5).unwrap();
    assert_eq!(again.payment_code.as_deref(), Some(code.as_str()));
    let other = checkout::create(&settings, &request(43, "VND"), NOW).unwrap();
    assert_ne!(other.payment_code.as_deref(), Some(code.as_str()));
    // The code fits the webhook's own recognition.
    assert_eq!(
        crate::transfer::find_payment_code(None, &format!("ck {code} cam on"), "DCB").as_deref(),
        Some(code.as_str())
    );
    assert!(matches!(
        checkout::create(&settings, &request(1, "USD"), NOW),
        Err(ProviderError::Misconfigured(_))
    ));
}

#[test]
fn qr_values_are_percent_encoded() {
    let cfg = config(&[
        ("webhook_api_key", KEY),
        ("account_number", "0359 123"),
        ("bank", "MB Bank&x"),
    ]);
    let settings = Settings::from_config(&cfg).unwrap();
    let c = checkout::create(&settings, &request(1, "vnd"), NOW).unwrap();
    let url = c.qr_image_url.unwrap();
    assert!(
        url.contains("acc=0359%20123&bank=MB%20Bank%26x&amount=50000&des=DCB"),
        "{url}"
    );
}

fn api_config() -> Vec<(String, String)> {
    let mut c = base_config();
    c.push(("api_token".into(), "SEPAYTOKEN".into()));
    c.push(("api_url".into(), "http://127.0.0.1:9999".into()));
    c
}

#[test]
fn validate_credentials_with_and_without_token() {
    let no_token = base_config();
    let settings = Settings::from_config(&no_token).unwrap();
    let host = MockHost::new(NOW);
    api::validate_credentials(&host, &settings).unwrap();
    assert!(host.requests.borrow().is_empty());

    let cfg = api_config();
    let settings = Settings::from_config(&cfg).unwrap();
    let host = MockHost::new(NOW).respond(200, r#"{"status":200,"error":null,"transactions":[]}"#);
    api::validate_credentials(&host, &settings).unwrap();
    let req = &host.requests.borrow()[0];
    assert_eq!(req.method, "GET");
    assert_eq!(
        req.url,
        "http://127.0.0.1:9999/userapi/transactions/list?limit=1"
    );
    assert_eq!(
        docobo_plugin_sdk::header(&req.headers, "authorization"),
        Some("Bearer SEPAYTOKEN")
    );

    for host in [
        MockHost::new(NOW).respond(401, r#"{"status":401,"error":"unauthorized"}"#),
        MockHost::new(NOW).respond(200, r#"{"status":401,"error":"unauthorized"}"#),
    ] {
        let err = api::validate_credentials(&host, &settings).unwrap_err();
        assert!(
            matches!(err, ProviderError::InvalidCredentials(_)),
            "{err:?}"
        );
        assert!(!format!("{err:?}").contains("SEPAYTOKEN"));
    }
    let host = MockHost::new(NOW).respond(500, "oops");
    assert!(matches!(
        api::validate_credentials(&host, &settings),
        Err(ProviderError::Upstream(_))
    ));
}

#[test]
fn poll_since_cursor_matches_webhook_ids() {
    let cfg = api_config();
    let settings = Settings::from_config(&cfg).unwrap();
    let list = json!({"status": 200, "error": null, "messages": {"success": true}, "transactions": [
        {"id": "123457", "account_number": "0359123456", "transaction_date": "2026-01-01 08:00:00",
         "amount_in": "70000.00", "amount_out": "0.00", "transaction_content": "DCBABCDEFGH ck",
         "code": null, "sub_account": null},
        {"id": "123456", "account_number": "0359123456", "transaction_date": "2026-01-01 07:00:00",
         "amount_in": "50000.00", "amount_out": "0.00", "transaction_content": "DCB12345 chuyen tien",
         "code": "DCB12345", "sub_account": null},
        {"id": "123458", "account_number": "0359123456", "transaction_date": "2026-01-01 09:00:00",
         "amount_in": "0.00", "amount_out": "10000.00", "transaction_content": "rut tien",
         "code": null, "sub_account": null},
        {"id": "123455", "account_number": "0359123456", "transaction_date": "2026-01-01 06:00:00",
         "amount_in": "1.00", "amount_out": "0.00", "transaction_content": "DCBAAAAAAAA", "code": null}
    ]})
    .to_string();
    let host = MockHost::new(NOW).respond(200, list);
    let result = api::poll(&host, &settings, Some("123455")).unwrap();
    let ids: Vec<&str> = result.events.iter().map(|e| e.event_id.as_str()).collect();
    // Oldest first; the outgoing one is not returned; 123455 was already seen.
    assert_eq!(ids, ["123456", "123457"]);
    assert_eq!(result.next_cursor.as_deref(), Some("123458"));
    let req = &host.requests.borrow()[0];
    assert_eq!(
        req.url,
        "http://127.0.0.1:9999/userapi/transactions/list?account_number=0359123456&limit=500&since_id=123456"
    );

    // The poll event for 123456 equals the webhook event for the same transfer.
    let webhook =
        handle_webhook_at(&base_config(), &apikey(KEY), fixture().as_bytes(), NOW).unwrap();
    let polled = &result.events[0];
    assert_eq!(polled.event_id, webhook[0].event_id);
    assert_eq!(polled.payment_code, webhook[0].payment_code);
    assert_eq!(polled.amount, webhook[0].amount);
    assert_eq!(polled.occurred_at, webhook[0].occurred_at);
    assert_eq!(polled.kind, webhook[0].kind);
}

#[test]
fn first_poll_and_empty_poll() {
    let cfg = api_config();
    let settings = Settings::from_config(&cfg).unwrap();
    let host = MockHost::new(NOW).respond(200, r#"{"status":200,"transactions":[]}"#);
    let result = api::poll(&host, &settings, None).unwrap();
    assert!(result.events.is_empty());
    assert_eq!(result.next_cursor, None);
    // Three days before 2026-01-01T00:01Z, in Vietnam time.
    assert!(
        host.requests.borrow()[0]
            .url
            .ends_with("&transaction_date_min=2025-12-29"),
        "{}",
        host.requests.borrow()[0].url
    );
    let host = MockHost::new(NOW).respond(200, r#"{"status":200,"transactions":[]}"#);
    let result = api::poll(&host, &settings, Some("77")).unwrap();
    assert_eq!(result.next_cursor.as_deref(), Some("77"));

    let no_token = base_config();
    let settings = Settings::from_config(&no_token).unwrap();
    assert!(matches!(
        api::poll(&MockHost::new(NOW), &settings, None),
        Err(ProviderError::Unsupported(_))
    ));
}

#[test]
fn plugin_info_is_consistent() {
    let info = crate::info();
    assert_eq!(info.id, "sepay");
    assert_eq!(info.hosts, ["my.sepay.vn"]);
    assert!(!info.needs_products && info.supports_poll);
    assert_eq!(info.webhook_ack.as_deref(), Some(r#"{"success": true}"#));
    let ack: Value = serde_json::from_str(info.webhook_ack.as_deref().unwrap()).unwrap();
    assert_eq!(ack, json!({"success": true}));
    let secrets: Vec<&str> = info
        .config_fields
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.key.as_str())
        .collect();
    assert_eq!(secrets, ["webhook_api_key", "hmac_secret", "api_token"]);
    assert!(
        info.config_fields
            .iter()
            .all(|f| f.label.chars().count() <= 45)
    );
}

fn test_request(code: Option<&str>) -> docobo_plugin_sdk::TestDeliveryRequest {
    docobo_plugin_sdk::TestDeliveryRequest {
        guild_id: "111".into(),
        user_id: "222".into(),
        role_id: "333".into(),
        product_id: None,
        price: Money {
            minor_units: 50_000,
            currency: "VND".into(),
        },
        billing: Billing::Days(30),
        nonce: 42,
        payment_code: code.map(str::to_string),
    }
}

#[test]
fn a_test_delivery_is_accepted_as_a_test_payment_of_the_hosts_code() {
    let cfg = base_config();
    let settings = Settings::from_config(&cfg).unwrap();
    let delivery =
        crate::test_delivery::build(&settings, &test_request(Some("DCBTEST2345")), NOW).unwrap();
    assert!(
        delivery
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == &format!("Apikey {KEY}"))
    );
    // Shaped like SePay's own notification (docs/providers.md §3.1).
    let body: Value = serde_json::from_slice(&delivery.body).unwrap();
    for key in [
        "id",
        "gateway",
        "transactionDate",
        "accountNumber",
        "subAccount",
        "code",
        "content",
        "transferType",
        "description",
        "transferAmount",
        "referenceCode",
        "accumulated",
    ] {
        assert!(body.get(key).is_some(), "{key}");
    }
    assert_eq!(body["transactionDate"], "2026-01-01 07:01:00");
    let events = handle_webhook_at(&cfg, &delivery.headers, &delivery.body, NOW).unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.kind, EventKind::Payment);
    assert_eq!(e.payment_code.as_deref(), Some("DCBTEST2345"));
    assert_eq!(e.amount.as_ref().map(|m| m.minor_units), Some(50_000));
    assert_eq!(e.status, Some(SubscriptionStatus::Active));
    assert!(e.test);
    assert_eq!(e.event_id, "9000000000000000042");

    // Signed with the configured key only: another plugin config refuses it.
    let other = config(&[
        ("webhook_api_key", "another-key"),
        ("account_number", "0359123456"),
        ("bank", "MBBank"),
    ]);
    assert!(matches!(
        handle_webhook_at(&other, &delivery.headers, &delivery.body, NOW),
        Err(WebhookError::BadSignature(_))
    ));
    // A real transfer is not a test one.
    let real = handle_webhook_at(&cfg, &apikey(KEY), fixture().as_bytes(), NOW).unwrap();
    assert!(!real[0].test);
}

#[test]
fn a_test_delivery_can_be_hmac_signed_and_needs_a_code() {
    let cfg = config(&[
        ("hmac_secret", "whsec_a7c3b4e5f6a7b8c9d0e1f2a3b4c5d6e7"),
        ("account_number", "0359123456"),
        ("bank", "MBBank"),
    ]);
    let settings = Settings::from_config(&cfg).unwrap();
    let delivery =
        crate::test_delivery::build(&settings, &test_request(Some("DCBTEST2345")), NOW).unwrap();
    assert!(
        delivery
            .headers
            .iter()
            .any(|(k, _)| k == "x-sepay-signature")
    );
    let events = handle_webhook_at(&cfg, &delivery.headers, &delivery.body, NOW).unwrap();
    assert!(events[0].test && events[0].kind == EventKind::Payment);
    assert!(matches!(
        crate::test_delivery::build(&settings, &test_request(None), NOW),
        Err(ProviderError::Misconfigured(_))
    ));
    let mut usd = test_request(Some("DCBTEST2345"));
    usd.price.currency = "USD".into();
    assert!(matches!(
        crate::test_delivery::build(&settings, &usd, NOW),
        Err(ProviderError::Misconfigured(_))
    ));
}

#[test]
fn the_plugin_takes_dong_only() {
    assert_eq!(crate::info().currencies, ["VND"]);
}

#[test]
fn the_plugin_declares_test_delivery() {
    use docobo_plugin_sdk::Capabilities;
    let info = crate::info();
    assert_eq!(
        info.capabilities & Capabilities::TEST_DELIVERY,
        Capabilities::TEST_DELIVERY
    );
}
