//! Tests against the fixtures in `fixtures/` (event payloads in Stripe's published shapes,
//! and `vectors.json`: `Stripe-Signature` headers made and checked with Stripe's own Python
//! library by `fixtures/make_vectors.py`), and the API calls through a mock host.

use docobo_plugin_sdk::{
    Billing, Capabilities, CheckoutRequest, DisputeStatus, EventKind, HttpRequest,
    ManageLinkRequest, MockHost, Money, ProductSpec, ProviderError, ProviderEvent,
    SubscriptionStatus, TestDeliveryRequest, WebhookError,
};
use serde_json::{Value, json};

use crate::{api, events, handle_webhook_with, info, verify};

const VECTORS: &str = include_str!("../fixtures/vectors.json");
const SECRET: &str = "whsec_docoboFixtureSigningSecretNotRealStripe01";
const T: i64 = 1_767_225_600;
const GUILD: &str = "112233445566778899";
const USER: &str = "998877665544332211";
const ROLE: &str = "556677889900112233";

fn vectors() -> Vec<Value> {
    let v: Value = serde_json::from_str(VECTORS).unwrap();
    assert_eq!(
        v["stripe_python_version"].as_str().map(str::is_empty),
        Some(false)
    );
    v["vectors"].as_array().unwrap().clone()
}

fn header_pairs(v: &Value) -> Vec<(String, String)> {
    v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (verify::HEADER.to_string(), h.as_str().unwrap().to_string()))
        .collect()
}

fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn full_config() -> Vec<(String, String)> {
    config(&[
        ("secret_key", "sk_test_51FixtureKeyNotReal"),
        ("webhook_secret", SECRET),
    ])
}

/// The valid vector for an event fixture file.
fn vector_for(file: &str) -> Value {
    vectors()
        .into_iter()
        .find(|v| v["note"] == format!("events/{file}"))
        .unwrap_or_else(|| panic!("no vector for {file}"))
}

/// Delivers a fixture with its Stripe-made header through `handle_webhook`.
fn deliver_with(host: &MockHost, file: &str) -> Result<ProviderEvent, WebhookError> {
    let v = vector_for(file);
    let mut events = handle_webhook_with(
        host,
        &full_config(),
        &header_pairs(&v),
        v["body"].as_str().unwrap().as_bytes(),
    )?;
    assert_eq!(events.len(), 1);
    Ok(events.remove(0))
}

fn deliver(file: &str) -> ProviderEvent {
    let host = MockHost::new(T * 1000 + 2_000);
    let e = deliver_with(&host, file).unwrap();
    assert!(host.requests.borrow().is_empty(), "{file} made a request");
    e
}

#[test]
fn stripe_library_vectors() {
    let vectors = vectors();
    assert!(vectors.len() >= 30, "{}", vectors.len());
    for v in &vectors {
        let name = v["name"].as_str().unwrap();
        let result = verify::verify(
            v["secret"].as_str().unwrap(),
            &header_pairs(v),
            v["body"].as_str().unwrap().as_bytes(),
            v["now"].as_i64().unwrap() * 1000,
        );
        assert_eq!(
            result.is_ok(),
            v["expect_valid"].as_bool().unwrap(),
            "{name}: {result:?}"
        );
        match (v["expect_error"].as_str(), &result) {
            (Some("bad-signature"), Err(WebhookError::BadSignature(_)))
            | (Some("stale-timestamp"), Err(WebhookError::StaleTimestamp(_)))
            | (None, Ok(_)) => {}
            (want, got) => panic!("{name}: want {want:?}, got {got:?}"),
        }
        if let Ok(t) = result {
            assert_eq!(t, v["timestamp"].as_i64().unwrap(), "{name}");
        }
    }
}

#[test]
fn our_signer_matches_stripes_generator_byte_for_byte() {
    let mut compared = 0;
    for v in vectors().iter().filter(|v| {
        v["name"].as_str().unwrap().starts_with("valid ")
            || v["name"].as_str().unwrap().starts_with("stale")
    }) {
        let header = verify::sign(
            v["secret"].as_str().unwrap(),
            v["timestamp"].as_i64().unwrap(),
            v["body"].as_str().unwrap().as_bytes(),
        )
        .unwrap();
        assert_eq!(header, v["headers"][0].as_str().unwrap(), "{}", v["name"]);
        compared += 1;
    }
    assert!(compared >= 18, "{compared}");
}

#[test]
fn tampered_wrong_secret_and_stale_through_handle_webhook() {
    let v = vector_for("checkout.session.completed.subscription.json");
    let body = v["body"].as_str().unwrap();
    let h = header_pairs(&v);
    let host = MockHost::new(T * 1000);
    let tampered = body.replace("sub_1QvipSub", "sub_1QvipSuc");
    assert!(matches!(
        handle_webhook_with(&host, &full_config(), &h, tampered.as_bytes()),
        Err(WebhookError::BadSignature(_))
    ));
    let wrong = config(&[("webhook_secret", "whsec_someone_else")]);
    assert!(matches!(
        handle_webhook_with(&host, &wrong, &h, body.as_bytes()),
        Err(WebhookError::BadSignature(_))
    ));
    let late = MockHost::new(T * 1000 + 300_001);
    assert!(matches!(
        handle_webhook_with(&late, &full_config(), &h, body.as_bytes()),
        Err(WebhookError::StaleTimestamp(_))
    ));
    assert!(matches!(
        handle_webhook_with(&host, &config(&[]), &h, body.as_bytes()),
        Err(WebhookError::Misconfigured(_))
    ));
    // Header names come lower case from the host, but any case is read.
    let upper = vec![("Stripe-Signature".to_string(), h[0].1.clone())];
    assert!(handle_webhook_with(&host, &full_config(), &upper, body.as_bytes()).is_ok());
}

#[test]
fn verified_junk_is_malformed() {
    let host = MockHost::new(T * 1000);
    for body in [
        "not json".to_string(),
        "[]".into(),
        json!({"type": "invoice.paid"}).to_string(),
        json!({"id": "evt_1", "type": "invoice.paid"}).to_string(),
        json!({"id": "evt_1", "type": "customer.subscription.updated", "data": {"object": {"status": "active"}}}).to_string(),
        json!({"id": "evt_1", "type": "checkout.session.completed", "data": {"object": {"id": "cs", "mode": "subscription", "payment_status": "paid"}}}).to_string(),
    ] {
        let h = vec![(
            verify::HEADER.to_string(),
            verify::sign(SECRET, T, body.as_bytes()).unwrap(),
        )];
        assert!(
            matches!(
                handle_webhook_with(&host, &full_config(), &h, body.as_bytes()),
                Err(WebhookError::Malformed(_))
            ),
            "{body}"
        );
    }
}

fn assert_ids(e: &ProviderEvent) {
    assert_eq!(e.guild_id.as_deref(), Some(GUILD), "{}", e.event_id);
    assert_eq!(e.user_id.as_deref(), Some(USER), "{}", e.event_id);
    assert_eq!(e.role_id.as_deref(), Some(ROLE), "{}", e.event_id);
}

/// For comparing with the events' `Option<Money>` fields.
#[allow(clippy::unnecessary_wraps)]
fn usd(minor_units: i64) -> Option<Money> {
    Some(Money {
        minor_units,
        currency: "USD".into(),
    })
}

#[test]
fn checkout_session_completed_subscription() {
    let e = deliver("checkout.session.completed.subscription.json");
    assert_eq!(e.event_id, "evt_1QvipCheckoutSub");
    assert_eq!(e.event_type, "checkout.session.completed");
    assert_eq!(e.kind, EventKind::Subscription);
    assert_eq!(e.status, Some(SubscriptionStatus::Active));
    assert_eq!(e.subscription_id.as_deref(), Some("sub_1QvipSub"));
    assert_eq!(e.product_id.as_deref(), Some("price_1QvipMonthly"));
    assert_eq!(e.customer_id.as_deref(), Some("cus_RvipCustomer"));
    assert_ids(&e);
    assert_eq!(e.amount, usd(500));
    assert_eq!(e.period_end, None);
    assert_eq!(e.occurred_at, (T - 5) * 1000);
    assert!(e.test);
}

#[test]
fn checkout_session_completed_payment() {
    let e = deliver("checkout.session.completed.payment.json");
    assert_eq!(e.kind, EventKind::Payment);
    assert_eq!(e.status, Some(SubscriptionStatus::Active));
    // A one-time purchase is its PaymentIntent: the charge and disputes name it too.
    assert_eq!(e.subscription_id.as_deref(), Some("pi_3QvipLifetime"));
    assert_eq!(e.product_id.as_deref(), Some("price_1QvipLifetime"));
    assert_eq!(e.customer_id.as_deref(), Some("cus_RvipBuyer"));
    assert_ids(&e);
    assert_eq!(
        e.amount,
        Some(Money {
            minor_units: 1500,
            currency: "EUR".into()
        })
    );
}

#[test]
fn subscription_created_trialing_legacy_period_end() {
    let e = deliver("customer.subscription.created.trialing.legacy.json");
    assert_eq!(e.kind, EventKind::Subscription);
    assert_eq!(e.status, Some(SubscriptionStatus::Trialing));
    assert_eq!(e.subscription_id.as_deref(), Some("sub_1QvipSub"));
    // 2024-06-20 shape: current_period_end on the subscription (the trial's end).
    assert_eq!(e.period_end, Some((T - 60 + 7 * 86_400) * 1000));
    assert_eq!(e.product_id.as_deref(), Some("price_1QvipMonthly"));
    assert_ids(&e);
    assert_eq!(e.amount, usd(500));
}

#[test]
fn subscription_updated_plan_change() {
    let e = deliver("customer.subscription.updated.plan_change.json");
    assert_eq!(e.kind, EventKind::PlanChange);
    assert_eq!(e.product_id.as_deref(), Some("price_1QvipYearly"));
    assert_eq!(e.previous_product_id.as_deref(), Some("price_1QvipMonthly"));
    assert_eq!(e.status, Some(SubscriptionStatus::Active));
    // 2025-03-31.basil shape: current_period_end on the items.
    assert_eq!(e.period_end, Some((T - 60 + 31_536_000) * 1000));
    assert_eq!(e.amount, usd(5000));
    assert_ids(&e);
}

#[test]
fn subscription_updated_statuses() {
    let e = deliver("customer.subscription.updated.cancel_at_period_end.json");
    assert_eq!(e.kind, EventKind::Subscription);
    assert_eq!(e.status, Some(SubscriptionStatus::Canceled));
    assert_eq!(e.period_end, Some((T - 60 + 2_678_400) * 1000));
    let e = deliver("customer.subscription.updated.past_due.json");
    assert_eq!(e.status, Some(SubscriptionStatus::PastDue));
    let e = deliver("customer.subscription.paused.json");
    assert_eq!(e.event_type, "customer.subscription.paused");
    assert_eq!(e.status, Some(SubscriptionStatus::Paused));
    let e = deliver("customer.subscription.deleted.json");
    assert_eq!(e.status, Some(SubscriptionStatus::Revoked));
    assert!(!e.test, "livemode: true");
    assert_eq!(e.occurred_at, (T - 1) * 1000);
}

#[test]
fn invoice_paid_renews_both_shapes() {
    for file in [
        "invoice.paid.renewal.json",
        "invoice.paid.renewal.legacy.json",
    ] {
        let e = deliver(file);
        assert_eq!(e.kind, EventKind::Subscription, "{file}");
        assert_eq!(e.status, Some(SubscriptionStatus::Active), "{file}");
        assert_eq!(e.subscription_id.as_deref(), Some("sub_1QvipSub"), "{file}");
        // The new period, from the line (not the invoice's own period_end).
        assert_eq!(e.period_end, Some((T + 2_678_400) * 1000), "{file}");
        assert_eq!(
            e.product_id.as_deref(),
            Some("price_1QvipMonthly"),
            "{file}"
        );
        assert_eq!(e.amount, usd(500), "{file}");
        assert_ids(&e);
        assert_eq!(e.occurred_at, T * 1000);
    }
}

#[test]
fn invoice_payment_failed_is_past_due() {
    let e = deliver("invoice.payment_failed.json");
    assert_eq!(e.kind, EventKind::Subscription);
    assert_eq!(e.status, Some(SubscriptionStatus::PastDue));
    assert_eq!(e.subscription_id.as_deref(), Some("sub_1QvipSub"));
    assert_eq!(e.period_end, None);
}

#[test]
fn first_invoice_of_a_trial_or_a_failed_start_is_ignored() {
    let mut body: Value = serde_json::from_str(
        vector_for("invoice.paid.renewal.json")["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    body["data"]["object"]["billing_reason"] = json!("subscription_create");
    body["data"]["object"]["amount_paid"] = json!(0);
    let e = events::map_event(&events::NoLookup, &body, 0).unwrap();
    assert_eq!(e.kind, EventKind::Ignored);
    body["type"] = json!("invoice.payment_failed");
    let e = events::map_event(&events::NoLookup, &body, 0).unwrap();
    assert_eq!(e.kind, EventKind::Ignored);
    body["type"] = json!("invoice.paid");
    body["data"]["object"]["amount_paid"] = json!(500);
    let e = events::map_event(&events::NoLookup, &body, 0).unwrap();
    assert_eq!(e.status, Some(SubscriptionStatus::Active));
}

#[test]
fn partial_refund_of_a_one_time_purchase() {
    let e = deliver("charge.refunded.partial.one_time.json");
    assert_eq!(e.kind, EventKind::Refund);
    assert_eq!(e.subscription_id.as_deref(), Some("pi_3QvipLifetime"));
    let refund = e.refund.clone().unwrap();
    // amount_refunded went from 400 to 1000 of 1500: this event refunded 600, in part.
    assert!(refund.partial);
    assert_eq!(refund.amount.minor_units, 600);
    assert_eq!(refund.amount.currency, "EUR");
    assert_eq!(e.status, None);
    assert_ids(&e);
}

fn json_response(v: &Value) -> String {
    v.to_string()
}

#[test]
fn full_refund_of_a_subscription_payment_looks_up_the_subscription() {
    // 2025-03-31.basil: the charge names only its PaymentIntent.
    let invoice: Value = serde_json::from_str(
        vector_for("invoice.paid.renewal.json")["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let list = json!({"object": "list", "data": [{"id": "inpay_1", "object": "invoice_payment",
        "invoice": invoice["data"]["object"], "payment": {"type": "payment_intent",
        "payment_intent": "pi_3QvipRenewal"}}], "has_more": false});
    let host = MockHost::new(T * 1000).respond(200, json_response(&list));
    let e = deliver_with(&host, "charge.refunded.full.subscription.json").unwrap();
    assert_eq!(e.kind, EventKind::Refund);
    assert_eq!(e.subscription_id.as_deref(), Some("sub_1QvipSub"));
    assert_eq!(e.status, Some(SubscriptionStatus::Refunded));
    let refund = e.refund.unwrap();
    assert!(!refund.partial);
    assert_eq!(refund.amount.minor_units, 500);
    assert_eq!(e.customer_id.as_deref(), Some("cus_RvipCustomer"));
    let reqs = host.requests.borrow();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].url,
        "https://api.stripe.com/v1/invoice_payments?payment%5Btype%5D=payment_intent\
         &payment%5Bpayment_intent%5D=pi_3QvipRenewal&expand%5B%5D=data.invoice&limit=1"
    );
    assert_eq!(auth(&reqs[0]), Some("Bearer sk_test_51FixtureKeyNotReal"));
}

#[test]
fn full_refund_legacy_reads_the_charge_invoice() {
    let invoice: Value = serde_json::from_str(
        vector_for("invoice.paid.renewal.legacy.json")["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let host = MockHost::new(T * 1000).respond(200, json_response(&invoice["data"]["object"]));
    let e = deliver_with(&host, "charge.refunded.full.subscription.legacy.json").unwrap();
    assert_eq!(e.subscription_id.as_deref(), Some("sub_1QvipSub"));
    assert_eq!(
        host.requests.borrow()[0].url,
        "https://api.stripe.com/v1/invoices/in_1QvipRenewal"
    );
}

#[test]
fn a_failed_lookup_refuses_the_delivery_so_stripe_retries() {
    let host = MockHost::new(T * 1000).respond(500, r#"{"error":{"message":"oops"}}"#);
    match deliver_with(&host, "charge.refunded.full.subscription.json") {
        Err(WebhookError::Malformed(msg)) => assert!(msg.contains("retry"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // Without a secret key there is no way to look up: misconfigured.
    let v = vector_for("charge.refunded.full.subscription.json");
    let cfg = config(&[("webhook_secret", SECRET)]);
    assert!(matches!(
        handle_webhook_with(
            &MockHost::new(T * 1000),
            &cfg,
            &header_pairs(&v),
            v["body"].as_str().unwrap().as_bytes()
        ),
        Err(WebhookError::Misconfigured(_))
    ));
}

#[test]
fn disputes_opened_won_lost() {
    let cases = [
        ("charge.dispute.created.json", DisputeStatus::Opened),
        ("charge.dispute.closed.won.json", DisputeStatus::Won),
        ("charge.dispute.closed.lost.json", DisputeStatus::Lost),
    ];
    for (file, want) in cases {
        // No invoice pays this PaymentIntent (an older API version: 404 on invoice
        // payments, then the PaymentIntent without an invoice): a one-time purchase.
        let host = MockHost::new(T * 1000)
            .respond(404, r#"{"error":{"message":"Unrecognized request URL"}}"#)
            .respond(
                200,
                r#"{"id":"pi_3QvipLifetime","object":"payment_intent","invoice":null}"#,
            );
        let e = deliver_with(&host, file).unwrap();
        assert_eq!(e.kind, EventKind::Dispute, "{file}");
        assert_eq!(e.dispute, Some(want), "{file}");
        assert_eq!(e.subscription_id.as_deref(), Some("pi_3QvipLifetime"));
        assert_eq!(
            e.amount,
            Some(Money {
                minor_units: 1500,
                currency: "EUR".into()
            })
        );
        assert_eq!(host.requests.borrow().len(), 2);
    }
    // Empty invoice-payment list: also a one-time purchase (one call only... plus the
    // PaymentIntent check).
    let host = MockHost::new(T * 1000)
        .respond(200, r#"{"object":"list","data":[],"has_more":false}"#)
        .respond(
            200,
            r#"{"id":"pi_3QvipLifetime","object":"payment_intent"}"#,
        );
    let e = deliver_with(&host, "charge.dispute.created.json").unwrap();
    assert_eq!(e.subscription_id.as_deref(), Some("pi_3QvipLifetime"));
}

#[test]
fn other_events_are_ignored() {
    let e = deliver("customer.created.json");
    assert_eq!(e.kind, EventKind::Ignored);
    assert_eq!(e.event_id, "evt_1QvipCustomer");
    assert_eq!(e.event_type, "customer.created");
    assert!(e.test);
    assert_eq!(e.guild_id, None);
}

#[test]
fn events_carry_only_ids() {
    for v in vectors()
        .iter()
        .filter(|v| v["name"].as_str().unwrap().starts_with("valid "))
    {
        let file = v["note"].as_str().unwrap().trim_start_matches("events/");
        let host = MockHost::new(T * 1000)
            .respond(200, r#"{"object":"list","data":[],"has_more":false}"#)
            .respond(200, r#"{"id":"pi_x","object":"payment_intent"}"#);
        let e = deliver_with(&host, file).unwrap();
        let text = format!("{e:?}");
        assert!(!text.contains('@'), "{file}: {text}");
        assert!(!text.contains("VIP (at"), "{file}: {text}");
    }
}

fn auth(req: &HttpRequest) -> Option<&str> {
    docobo_plugin_sdk::header(&req.headers, "authorization")
}

/// The form fields of a request body, decoded.
fn form_of(req: &HttpRequest) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }
    let body = String::from_utf8(req.body.clone().unwrap()).unwrap();
    body.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (decode(k), decode(v))
        })
        .collect()
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[test]
fn validate_credentials_calls_and_errors() {
    let host = MockHost::new(0).respond(200, r#"{"object":"list","data":[]}"#);
    api::validate_credentials(&host, &full_config()).unwrap();
    let reqs = host.requests.borrow();
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].url, "https://api.stripe.com/v1/events?limit=1");
    assert_eq!(auth(&reqs[0]), Some("Bearer sk_test_51FixtureKeyNotReal"));

    let host = MockHost::new(0).respond(
        401,
        r#"{"error":{"message":"Invalid API Key provided: sk_test_****Real"}}"#,
    );
    match api::validate_credentials(&host, &full_config()) {
        Err(ProviderError::InvalidCredentials(msg)) => {
            assert!(msg.contains("secret_key"), "{msg}");
            assert!(!msg.contains("FixtureKey"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    let host = MockHost::new(0).respond(
        403,
        r#"{"error":{"message":"The provided key does not have the required permissions"}}"#,
    );
    assert!(matches!(
        api::validate_credentials(&host, &full_config()),
        Err(ProviderError::InvalidCredentials(m)) if m.contains("restricted key")
    ));
    for (key, want) in [
        ("pk_test_abc", "publishable"),
        ("whsec_abc", "webhook signing secret"),
        ("sk_test_", "must be"),
        ("hello", "must be"),
    ] {
        let cfg = config(&[("secret_key", key), ("webhook_secret", SECRET)]);
        match api::validate_credentials(&MockHost::new(0), &cfg) {
            Err(ProviderError::Misconfigured(msg)) => {
                assert!(msg.contains(want), "{key}: {msg}");
            }
            other => panic!("{key}: {other:?}"),
        }
    }
    let cfg = config(&[
        ("secret_key", "rk_live_abc"),
        ("webhook_secret", "sk_live_x"),
    ]);
    assert!(matches!(
        api::validate_credentials(&MockHost::new(0), &cfg),
        Err(ProviderError::Misconfigured(m)) if m.contains("whsec_")
    ));
    let host = MockHost::new(0).fail("connection refused");
    assert!(matches!(
        api::validate_credentials(&host, &full_config()),
        Err(ProviderError::Upstream(_))
    ));
}

fn spec(billing: Billing, trial_days: Option<u32>) -> ProductSpec {
    ProductSpec {
        guild_id: GUILD.into(),
        role_id: ROLE.into(),
        name: "VIP & Friends".into(),
        price: Money {
            minor_units: 500,
            currency: "usd".into(),
        },
        billing,
        trial_days,
    }
}

#[test]
fn create_product_makes_a_price_with_its_product() {
    let cases = [
        (Billing::Monthly, Some("month")),
        (Billing::Yearly, Some("year")),
        (Billing::OneTime, None),
        (Billing::Lifetime, None),
    ];
    for (billing, interval) in cases {
        let host = MockHost::new(0).respond(200, r#"{"id":"price_new","object":"price"}"#);
        let id = api::create_product(&host, &full_config(), &spec(billing, None)).unwrap();
        assert_eq!(id, "price_new");
        let reqs = host.requests.borrow();
        assert_eq!(reqs[0].method, "POST");
        assert_eq!(reqs[0].url, "https://api.stripe.com/v1/prices");
        assert_eq!(
            docobo_plugin_sdk::header(&reqs[0].headers, "content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let form = form_of(&reqs[0]);
        assert_eq!(field(&form, "currency"), Some("usd"));
        assert_eq!(field(&form, "unit_amount"), Some("500"));
        assert_eq!(field(&form, "recurring[interval]"), interval, "{billing:?}");
        assert_eq!(field(&form, "product_data[name]"), Some("VIP & Friends"));
        assert_eq!(
            field(&form, "product_data[metadata][docobo_guild_id]"),
            Some(GUILD)
        );
        assert_eq!(field(&form, "metadata[docobo_role_id]"), Some(ROLE));
        assert_eq!(field(&form, "metadata[docobo_trial_days]"), None);
    }
    // Trials are kept on the price for the checkout.
    let host = MockHost::new(0).respond(200, r#"{"id":"price_trial"}"#);
    api::create_product(&host, &full_config(), &spec(Billing::Monthly, Some(7))).unwrap();
    let form = form_of(&host.requests.borrow()[0]);
    assert_eq!(field(&form, "metadata[docobo_trial_days]"), Some("7"));

    for (bad, want) in [
        (spec(Billing::Days(30), None), "30-day pass"),
        (spec(Billing::OneTime, Some(7)), "trial"),
        (spec(Billing::Monthly, Some(731)), "730"),
    ] {
        match api::create_product(&MockHost::new(0), &full_config(), &bad) {
            Err(ProviderError::Misconfigured(msg)) => assert!(msg.contains(want), "{msg}"),
            other => panic!("{other:?}"),
        }
    }
    let mut free = spec(Billing::Monthly, None);
    free.price.minor_units = 0;
    assert!(api::create_product(&MockHost::new(0), &full_config(), &free).is_err());
    let host = MockHost::new(0).respond(400, r#"{"error":{"message":"Invalid currency: xyz"}}"#);
    match api::create_product(&host, &full_config(), &spec(Billing::Monthly, None)) {
        Err(ProviderError::Upstream(msg)) => assert!(msg.contains("Invalid currency"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

fn checkout_request(billing: Billing) -> CheckoutRequest {
    CheckoutRequest {
        guild_id: GUILD.into(),
        user_id: USER.into(),
        role_id: ROLE.into(),
        product_id: Some("price_1QvipMonthly".into()),
        price: Money {
            minor_units: 500,
            currency: "USD".into(),
        },
        billing,
        success_url: None,
        nonce: 0xabcd,
    }
}

#[test]
fn create_checkout_subscription_with_trial() {
    let host = MockHost::new(0)
        .respond(200, r#"{"id":"price_1QvipMonthly","type":"recurring","metadata":{"docobo_trial_days":"7"}}"#)
        .respond(200, r#"{"id":"cs_test_1","url":"https://checkout.stripe.com/c/pay/cs_test_1","expires_at":1767312000}"#);
    let checkout =
        api::create_checkout(&host, &full_config(), &checkout_request(Billing::Monthly)).unwrap();
    assert_eq!(
        checkout.url.as_deref(),
        Some("https://checkout.stripe.com/c/pay/cs_test_1")
    );
    assert_eq!(checkout.expires_at, Some(1_767_312_000_000));
    let reqs = host.requests.borrow();
    assert_eq!(
        reqs[0].url,
        "https://api.stripe.com/v1/prices/price_1QvipMonthly"
    );
    assert_eq!(reqs[1].url, "https://api.stripe.com/v1/checkout/sessions");
    assert_eq!(
        docobo_plugin_sdk::header(&reqs[1].headers, "idempotency-key"),
        Some(
            "docobo-checkout-112233445566778899-556677889900112233-998877665544332211-000000000000abcd"
        )
    );
    let form = form_of(&reqs[1]);
    assert_eq!(field(&form, "mode"), Some("subscription"));
    assert_eq!(
        field(&form, "line_items[0][price]"),
        Some("price_1QvipMonthly")
    );
    assert_eq!(field(&form, "line_items[0][quantity]"), Some("1"));
    assert_eq!(
        field(&form, "success_url"),
        Some("https://discord.com/channels/112233445566778899")
    );
    assert_eq!(
        field(&form, "client_reference_id"),
        Some("112233445566778899_556677889900112233_998877665544332211")
    );
    for prefix in ["metadata", "subscription_data[metadata]"] {
        assert_eq!(
            field(&form, &format!("{prefix}[docobo_guild_id]")),
            Some(GUILD)
        );
        assert_eq!(
            field(&form, &format!("{prefix}[docobo_user_id]")),
            Some(USER)
        );
        assert_eq!(
            field(&form, &format!("{prefix}[docobo_role_id]")),
            Some(ROLE)
        );
        assert_eq!(
            field(&form, &format!("{prefix}[docobo_price_id]")),
            Some("price_1QvipMonthly")
        );
    }
    assert_eq!(
        field(&form, "subscription_data[trial_period_days]"),
        Some("7")
    );
    assert_eq!(
        field(&form, "payment_intent_data[metadata][docobo_guild_id]"),
        None
    );
    assert_eq!(field(&form, "customer_creation"), None);
}

#[test]
fn create_checkout_one_time_and_errors() {
    let host = MockHost::new(0).respond(
        200,
        r#"{"id":"cs_test_2","url":"https://checkout.stripe.com/c/pay/cs_test_2"}"#,
    );
    let mut req = checkout_request(Billing::Lifetime);
    req.success_url = Some("https://example.org/thanks".into());
    api::create_checkout(&host, &full_config(), &req).unwrap();
    let reqs = host.requests.borrow();
    assert_eq!(reqs.len(), 1, "no price read for a one-time checkout");
    let form = form_of(&reqs[0]);
    assert_eq!(field(&form, "mode"), Some("payment"));
    assert_eq!(
        field(&form, "success_url"),
        Some("https://example.org/thanks")
    );
    assert_eq!(field(&form, "customer_creation"), Some("always"));
    assert_eq!(
        field(&form, "payment_intent_data[metadata][docobo_user_id]"),
        Some(USER)
    );
    assert_eq!(
        field(&form, "subscription_data[metadata][docobo_user_id]"),
        None
    );

    // The success_url setting is used when the request has none.
    let host = MockHost::new(0).respond(200, r#"{"url":"https://checkout.stripe.com/x"}"#);
    let mut cfg = full_config();
    cfg.push(("success_url".into(), "https://example.org/paid".into()));
    api::create_checkout(&host, &cfg, &checkout_request(Billing::OneTime)).unwrap();
    assert_eq!(
        field(&form_of(&host.requests.borrow()[0]), "success_url"),
        Some("https://example.org/paid")
    );

    let mut no_price = checkout_request(Billing::Monthly);
    no_price.product_id = None;
    assert!(matches!(
        api::create_checkout(&MockHost::new(0), &full_config(), &no_price),
        Err(ProviderError::Misconfigured(_))
    ));
    assert!(matches!(
        api::create_checkout(
            &MockHost::new(0),
            &full_config(),
            &checkout_request(Billing::Days(7))
        ),
        Err(ProviderError::Misconfigured(_))
    ));
    // A one-time price sold as a subscription.
    let host = MockHost::new(0).respond(200, r#"{"id":"price_1QvipMonthly","type":"one_time"}"#);
    assert!(matches!(
        api::create_checkout(&host, &full_config(), &checkout_request(Billing::Yearly)),
        Err(ProviderError::Misconfigured(_))
    ));
    let host = MockHost::new(0)
        .respond(200, r#"{"id":"price_1QvipMonthly","type":"recurring"}"#)
        .respond(200, r#"{"id":"cs"}"#);
    assert!(matches!(
        api::create_checkout(&host, &full_config(), &checkout_request(Billing::Monthly)),
        Err(ProviderError::Upstream(_))
    ));
}

fn event_item(id: &str, created: i64) -> Value {
    json!({"id": id, "object": "event", "api_version": "2025-03-31.basil", "created": created,
           "livemode": false, "type": "customer.subscription.updated",
           "data": {"object": {"id": "sub_1", "object": "subscription", "status": "active",
                               "metadata": {"docobo_guild_id": GUILD, "docobo_user_id": USER}}}})
}

fn page(items: &[Value], has_more: bool) -> String {
    json!({"object": "list", "data": items, "has_more": has_more, "url": "/v1/events"}).to_string()
}

#[test]
fn first_poll_reads_the_newest_page_of_three_days() {
    let now = T * 1000;
    // Newest first, as Stripe lists.
    let host = MockHost::new(now).respond(
        200,
        page(
            &[
                event_item("evt_3", T - 10),
                event_item("evt_2", T - 20),
                event_item("evt_1", T - 30),
            ],
            false,
        ),
    );
    let result = api::poll(&host, &full_config(), None).unwrap();
    let ids: Vec<&str> = result.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["evt_1", "evt_2", "evt_3"], "oldest first");
    assert_eq!(result.next_cursor.as_deref(), Some("evt_3"));
    let url = host.requests.borrow()[0].url.clone();
    assert!(
        url.starts_with(
            "https://api.stripe.com/v1/events?limit=100&types%5B%5D=checkout.session.completed&"
        ),
        "{url}"
    );
    assert!(url.contains("&types%5B%5D=charge.dispute.closed"), "{url}");
    assert!(
        url.ends_with(&format!("&created%5Bgte%5D={}", T - 3 * 86_400)),
        "{url}"
    );
    assert!(
        result
            .events
            .iter()
            .all(|e| e.test && e.kind == EventKind::Subscription)
    );

    // Nothing new: the cursor stays.
    let host = MockHost::new(now).respond(200, page(&[], false));
    let result = api::poll(&host, &full_config(), Some("evt_3")).unwrap();
    assert!(result.events.is_empty());
    assert_eq!(result.next_cursor.as_deref(), Some("evt_3"));
    assert!(
        host.requests.borrow()[0]
            .url
            .ends_with("&ending_before=evt_3")
    );
}

#[test]
fn poll_walks_forward_with_ending_before() {
    let host = MockHost::new(T * 1000)
        .respond(
            200,
            page(
                &[event_item("evt_5", T - 5), event_item("evt_4", T - 6)],
                true,
            ),
        )
        .respond(
            200,
            page(
                &[event_item("evt_7", T - 1), event_item("evt_6", T - 2)],
                true,
            ),
        );
    let result = api::poll(&host, &full_config(), Some("evt_3")).unwrap();
    let ids: Vec<&str> = result.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["evt_4", "evt_5", "evt_6", "evt_7"]);
    assert_eq!(result.next_cursor.as_deref(), Some("evt_7"));
    let reqs = host.requests.borrow();
    assert_eq!(
        reqs.len(),
        2,
        "at most {} pages per call",
        api::POLL_MAX_PAGES
    );
    assert!(reqs[0].url.ends_with("&ending_before=evt_3"));
    assert!(reqs[1].url.ends_with("&ending_before=evt_5"));
}

#[test]
fn poll_stops_at_a_failed_lookup_and_resumes_there() {
    let refund = json!({"id": "evt_r", "object": "event", "created": T, "livemode": false,
        "type": "charge.refunded", "data": {"object": {"id": "ch_1", "object": "charge",
        "amount": 500, "amount_refunded": 500, "currency": "usd", "payment_intent": "pi_1",
        "metadata": {}}}});
    let host = MockHost::new(T * 1000)
        .respond(
            200,
            page(
                &[
                    event_item("evt_9", T + 1),
                    refund,
                    event_item("evt_4", T - 6),
                ],
                false,
            ),
        )
        .fail("fetch budget exhausted");
    let result = api::poll(&host, &full_config(), Some("evt_3")).unwrap();
    let ids: Vec<&str> = result.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["evt_4"]);
    assert_eq!(result.next_cursor.as_deref(), Some("evt_4"));
    assert!(
        host.logs
            .borrow()
            .iter()
            .any(|(_, l)| l.contains("stopped at event evt_r"))
    );
}

#[test]
fn poll_restarts_when_the_cursor_is_gone() {
    let host = MockHost::new(T * 1000)
        .respond(404, r#"{"error":{"message":"No such event: 'evt_old'"}}"#)
        .respond(200, page(&[event_item("evt_1", T - 30)], false));
    let result = api::poll(&host, &full_config(), Some("evt_old")).unwrap();
    assert_eq!(result.next_cursor.as_deref(), Some("evt_1"));
    assert!(host.requests.borrow()[1].url.contains("created%5Bgte%5D="));
    let host = MockHost::new(T * 1000).respond(401, "{}");
    assert!(matches!(
        api::poll(&host, &full_config(), None),
        Err(ProviderError::InvalidCredentials(_))
    ));
}

#[test]
fn manage_link_opens_a_billing_portal_session() {
    let request = ManageLinkRequest {
        customer_id: Some("cus_RvipCustomer".into()),
        subscription_id: "sub_1QvipSub".into(),
        guild_id: GUILD.into(),
        user_id: USER.into(),
        return_url: None,
    };
    let mut cfg = full_config();
    cfg.push((
        "manage_return_url".into(),
        "https://example.org/back".into(),
    ));
    let host = MockHost::new(0).respond(
        200,
        r#"{"id":"bps_1","url":"https://billing.stripe.com/p/session/test_1"}"#,
    );
    let url = api::manage_link(&host, &cfg, &request).unwrap();
    assert_eq!(url, "https://billing.stripe.com/p/session/test_1");
    let reqs = host.requests.borrow();
    assert_eq!(
        reqs[0].url,
        "https://api.stripe.com/v1/billing_portal/sessions"
    );
    let form = form_of(&reqs[0]);
    assert_eq!(field(&form, "customer"), Some("cus_RvipCustomer"));
    assert_eq!(field(&form, "return_url"), Some("https://example.org/back"));

    // No customer id: read from the subscription.
    let mut no_customer = request.clone();
    no_customer.customer_id = None;
    let host = MockHost::new(0)
        .respond(200, r#"{"id":"sub_1QvipSub","customer":"cus_Found"}"#)
        .respond(
            200,
            r#"{"url":"https://billing.stripe.com/p/session/test_2"}"#,
        );
    api::manage_link(&host, &full_config(), &no_customer).unwrap();
    let reqs = host.requests.borrow();
    assert_eq!(
        reqs[0].url,
        "https://api.stripe.com/v1/subscriptions/sub_1QvipSub"
    );
    let form = form_of(&reqs[1]);
    assert_eq!(field(&form, "customer"), Some("cus_Found"));
    assert_eq!(field(&form, "return_url"), None);

    no_customer.subscription_id = "cs_weird".into();
    assert!(api::manage_link(&MockHost::new(0), &full_config(), &no_customer).is_err());
}

#[test]
fn list_subscribers_pages_and_filters() {
    let sub = |id: &str, status: &str, cancel: bool| {
        json!({"id": id, "object": "subscription", "status": status, "cancel_at_period_end": cancel,
               "customer": "cus_1", "livemode": true,
               "metadata": {"docobo_guild_id": GUILD, "docobo_user_id": USER, "docobo_role_id": ROLE},
               "items": {"data": [{"price": {"id": "price_1", "unit_amount": 500, "currency": "usd"},
                                   "quantity": 2, "current_period_end": T}]}})
    };
    let list = json!({"object": "list", "has_more": true, "data": [
        sub("sub_a", "active", false), sub("sub_b", "trialing", false),
        sub("sub_c", "past_due", false), sub("sub_d", "active", true),
        sub("sub_e", "incomplete", false), sub("sub_f", "paused", false),
        sub("sub_g", "unpaid", false)]});
    let host = MockHost::new(0).respond(200, list.to_string());
    let page = api::list_subscribers(&host, &full_config(), Some("sub_prev")).unwrap();
    assert_eq!(
        host.requests.borrow()[0].url,
        "https://api.stripe.com/v1/subscriptions?limit=100&starting_after=sub_prev"
    );
    let got: Vec<(&str, SubscriptionStatus)> = page
        .subscribers
        .iter()
        .map(|s| (s.subscription_id.as_str(), s.status))
        .collect();
    assert_eq!(
        got,
        [
            ("sub_a", SubscriptionStatus::Active),
            ("sub_b", SubscriptionStatus::Trialing),
            ("sub_c", SubscriptionStatus::PastDue),
            ("sub_d", SubscriptionStatus::Canceled)
        ]
    );
    let a = &page.subscribers[0];
    assert_eq!(a.guild_id.as_deref(), Some(GUILD));
    assert_eq!(a.role_id.as_deref(), Some(ROLE));
    assert_eq!(a.product_id.as_deref(), Some("price_1"));
    assert_eq!(a.period_end, Some(T * 1000));
    assert_eq!(a.amount, usd(1000));
    assert!(!a.test);
    // The cursor is the last listed id, even a filtered one.
    assert_eq!(page.next_cursor.as_deref(), Some("sub_g"));

    let host = MockHost::new(0).respond(200, r#"{"object":"list","has_more":false,"data":[]}"#);
    let page = api::list_subscribers(&host, &full_config(), None).unwrap();
    assert_eq!(page.next_cursor, None);
    assert_eq!(
        host.requests.borrow()[0].url,
        "https://api.stripe.com/v1/subscriptions?limit=100"
    );
}

#[test]
fn test_delivery_is_accepted_by_handle_webhook() {
    for (billing, kind, prefix) in [
        (
            Billing::Monthly,
            EventKind::Subscription,
            "sub_test_docobo_",
        ),
        (Billing::Lifetime, EventKind::Payment, "pi_test_docobo_"),
    ] {
        let request = TestDeliveryRequest {
            guild_id: GUILD.into(),
            user_id: USER.into(),
            role_id: ROLE.into(),
            product_id: Some("price_1QvipMonthly".into()),
            price: Money {
                minor_units: 500,
                currency: "USD".into(),
            },
            billing,
            nonce: 0x1234,
            payment_code: None,
        };
        let now = T * 1000 + 789;
        let delivery = api::test_delivery(&full_config(), &request, now).unwrap();
        let host = MockHost::new(now + 1_000);
        let events =
            handle_webhook_with(&host, &full_config(), &delivery.headers, &delivery.body).unwrap();
        let e = &events[0];
        assert_eq!(e.kind, kind);
        assert!(e.test);
        assert_eq!(e.event_id, "evt_test_docobo_0000000000001234");
        assert_eq!(
            e.subscription_id.as_deref(),
            Some(format!("{prefix}0000000000001234").as_str())
        );
        assert_ids(e);
        assert_eq!(e.product_id.as_deref(), Some("price_1QvipMonthly"));
        assert_eq!(e.status, Some(SubscriptionStatus::Active));
        assert_eq!(e.occurred_at, T * 1000);
        assert_eq!(e.amount, usd(500));
        // Signed with another secret, it is refused.
        let other = config(&[("webhook_secret", "whsec_other")]);
        assert!(handle_webhook_with(&host, &other, &delivery.headers, &delivery.body).is_err());
    }
    assert!(
        api::test_delivery(
            &config(&[]),
            &TestDeliveryRequest {
                guild_id: GUILD.into(),
                user_id: USER.into(),
                role_id: ROLE.into(),
                product_id: None,
                price: Money {
                    minor_units: 1,
                    currency: "USD".into()
                },
                billing: Billing::Monthly,
                nonce: 1,
                payment_code: None,
            },
            0
        )
        .is_err()
    );
}

#[test]
fn api_url_override() {
    let mut cfg = full_config();
    cfg.push(("api_url".into(), "http://127.0.0.1:9999/v1/".into()));
    let host = MockHost::new(0).respond(200, "{}");
    api::validate_credentials(&host, &cfg).unwrap();
    assert_eq!(
        host.requests.borrow()[0].url,
        "http://127.0.0.1:9999/v1/events?limit=1"
    );
    let mut bad = full_config();
    bad.push(("api_url".into(), "ftp://x".into()));
    assert!(api::validate_credentials(&MockHost::new(0), &bad).is_err());
}

#[test]
fn plugin_info_is_consistent() {
    let info = info();
    assert_eq!(info.id, "stripe");
    assert_eq!(info.hosts, ["api.stripe.com"]);
    assert!(info.needs_products && info.supports_poll);
    assert_eq!(
        info.capabilities,
        Capabilities::MANAGE_LINK | Capabilities::LIST_SUBSCRIBERS | Capabilities::TEST_DELIVERY
    );
    assert_eq!(info.webhook_events, events::WEBHOOK_EVENTS);
    assert_eq!(info.webhook_ack, None);
    let keys: Vec<&str> = info.config_fields.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "secret_key",
            "webhook_secret",
            "success_url",
            "manage_return_url",
            "api_url"
        ]
    );
    for f in &info.config_fields {
        assert!(f.label.chars().count() <= 45, "{}", f.label);
        assert_eq!(f.secret, f.required, "{}", f.key);
    }
}
