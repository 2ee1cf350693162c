//! The plugin host with the real components built from `plugins/`: signature vectors, the
//! SePay payload, outbound calls to a fake provider API, and the sandbox limits.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use docobo::domain::{
    Billing, Currency, EventKind, GuildId, Money, ProviderEvent, RoleId, SubscriptionStatus, UserId,
};
use docobo::providers::{
    CacheOutcome, Clock, FetchPolicy, HostOptions, Limits, POOL_SLOTS, PluginFailure,
    ProviderError, ProviderHost, WebhookRejection, built_plugin,
};
use docobo::providers::{CheckoutRequest, ProductSpec};
use docobo_testkit::webhooks::{PolarKey, polar_headers, sepay_headers};
use serde_json::{Value, json};

use crate::app::shared_cache;
use crate::fake_api::FakeApi;

fn fixtures() -> PathBuf {
    docobo_testkit::fixtures::webhooks()
}

fn fixture_json(name: &str) -> Value {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} must exist (tests/fixtures/webhooks): {e}",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("fixture JSON")
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).expect("fixture")
}

pub async fn host(clock: Clock, limits: Limits, extra: &[&str]) -> ProviderHost {
    ProviderHost::load(HostOptions {
        cache_dir: Some(shared_cache()),
        fetch: FetchPolicy {
            allowed_hosts: vec![
                "api.polar.sh".into(),
                "my.sepay.vn".into(),
                "allowed.example".into(),
            ],
            allow_loopback_http: true,
        },
        limits,
        clock,
        builtins: true,
        extra_files: extra.iter().map(|name| built_plugin(name)).collect(),
        ..HostOptions::default()
    })
    .await
    .expect("host loads")
}

fn cfg(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Header pairs as the plugin host takes them.
fn owned<const N: usize>(headers: [(&str, String); N]) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

fn standard_headers(id: &str, timestamp: i64, signature: &str) -> Vec<(String, String)> {
    owned(polar_headers(id, timestamp, signature))
}

fn is_signature_problem(e: &ProviderError) -> bool {
    matches!(
        e,
        ProviderError::Webhook {
            error: WebhookRejection::BadSignature(_) | WebhookRejection::StaleTimestamp(_),
            ..
        }
    )
}

#[tokio::test]
async fn the_builtin_plugins_load_with_their_declared_needs() {
    let host = host(Clock::System, Limits::default(), &[]).await;
    assert!(host.failures().is_empty(), "{:?}", host.failures());
    let polar = host.plugin("polar").expect("polar");
    assert_eq!(polar.api_version, "0.2.0");
    assert!(polar.capabilities.manage_link && polar.capabilities.list_subscribers);
    assert!(polar.needs_products && polar.supports_poll);
    assert_eq!(polar.allowed_hosts, ["api.polar.sh"], "declared ∩ allowed");
    let secrets: Vec<&str> = polar
        .config_fields
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.key.as_str())
        .collect();
    assert_eq!(secrets, ["access_token", "webhook_secret"]);
    let sepay = host.plugin("sepay").expect("sepay");
    assert_eq!(
        sepay
            .webhook_ack
            .as_deref()
            .map(|a| serde_json::from_str::<Value>(a).expect("json")),
        Some(json!({"success": true}))
    );
}

#[tokio::test]
async fn every_signature_vector_gives_the_expected_verdict_through_the_polar_component() {
    let clock = Clock::fixed(0);
    let host = host(clock.clone(), Limits::default(), &[]).await;
    let mut checked = 0;
    for (file, body_key) in [
        ("standard-webhooks-vectors.json", "payload"),
        ("polar-vectors.json", "body"),
    ] {
        for vector in fixture_json(file).as_array().expect("array") {
            let timestamp = vector["timestamp"].as_i64().expect("timestamp");
            clock.set(timestamp * 1000);
            let config = cfg(&[
                ("webhook_secret", vector["secret"].as_str().expect("secret")),
                ("access_token", "polar_oat_test"),
            ]);
            let headers = standard_headers(
                vector["msg_id"].as_str().expect("id"),
                timestamp,
                vector["expected_signature"].as_str().expect("signature"),
            );
            let body = vector[body_key].as_str().expect("body").as_bytes();
            let result = host.handle_webhook("polar", &config, &headers, body).await;
            let name = vector
                .get("name")
                .or(vector.get("note"))
                .cloned()
                .unwrap_or_default();
            if vector["expect_valid"].as_bool().expect("expect_valid") {
                // Verified: either events, or (for the official vectors' non-Polar payloads)
                // a "malformed" verdict reached only after the signature checked out.
                match &result {
                    Ok(_)
                    | Err(ProviderError::Webhook {
                        error: WebhookRejection::Malformed(_),
                        ..
                    }) => {}
                    Err(e) => panic!("{file} {name}: must verify, got {e}"),
                }
            } else {
                let err = result.expect_err("must not verify");
                assert!(
                    matches!(
                        err,
                        ProviderError::Webhook {
                            error: WebhookRejection::BadSignature(_),
                            ..
                        }
                    ),
                    "{file} {name}: expected a bad signature, got {err}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 16, "4 official + 12 Polar vectors");
}

#[tokio::test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: a payload and each way to break it"
)]
async fn a_real_polar_payload_is_verified_and_normalized_and_tampering_is_caught() {
    const SECRET: &str = "polar_whs_test_secret_value";
    let now = 1_767_225_600;
    let clock = Clock::fixed(now * 1000);
    let host = host(clock.clone(), Limits::default(), &[]).await;
    let config = cfg(&[
        ("webhook_secret", SECRET),
        ("access_token", "polar_oat_test"),
    ]);
    let body = fixture_bytes("polar-subscription-active.json");
    // Signed with the legacy (UTF-8 whole secret) scheme.
    let signature = PolarKey::utf8(SECRET).sign("msg_1", now, &body);

    let events = host
        .handle_webhook(
            "polar",
            &config,
            &standard_headers("msg_1", now, &signature),
            &body,
        )
        .await
        .expect("verified");
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.event_id, "msg_1");
    assert_eq!(event.event_type, "subscription.active");
    assert!(matches!(event.kind, EventKind::Subscription));
    assert!(matches!(event.status, Some(SubscriptionStatus::Active)));
    assert_eq!(
        event.guild.as_ref().map(|c| c.raw.as_str()),
        Some("112233445566778899")
    );
    assert_eq!(
        event.guild.as_ref().map(|c| c.id.clone()),
        Some(GuildId::parse("112233445566778899"))
    );
    assert_eq!(
        event.user.as_ref().map(|c| c.raw.as_str()),
        Some("998877665544332211")
    );
    assert!(event.subscription_id.is_some() && event.period_end.is_some());

    // Tampered body.
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let err = host
        .handle_webhook(
            "polar",
            &config,
            &standard_headers("msg_1", now, &signature),
            &tampered,
        )
        .await
        .expect_err("tampered");
    assert!(
        matches!(
            err,
            ProviderError::Webhook {
                error: WebhookRejection::BadSignature(_),
                ..
            }
        ),
        "{err}"
    );
    // Wrong secret.
    let wrong = cfg(&[
        ("webhook_secret", "polar_whs_another"),
        ("access_token", "x"),
    ]);
    let err = host
        .handle_webhook(
            "polar",
            &wrong,
            &standard_headers("msg_1", now, &signature),
            &body,
        )
        .await
        .expect_err("wrong secret");
    assert!(
        matches!(
            err,
            ProviderError::Webhook {
                error: WebhookRejection::BadSignature(_),
                ..
            }
        ),
        "{err}"
    );
    // Missing header.
    let mut headers = standard_headers("msg_1", now, &signature);
    headers.retain(|(k, _)| k != "webhook-signature");
    let err = host
        .handle_webhook("polar", &config, &headers, &body)
        .await
        .expect_err("missing");
    assert!(is_signature_problem(&err), "{err}");
    // Off by 301 s either way: stale, although correctly signed.
    for skew in [301, -301] {
        clock.set((now + skew) * 1000);
        let err = host
            .handle_webhook(
                "polar",
                &config,
                &standard_headers("msg_1", now, &signature),
                &body,
            )
            .await
            .expect_err("stale");
        assert!(
            matches!(
                err,
                ProviderError::Webhook {
                    error: WebhookRejection::StaleTimestamp(_),
                    ..
                }
            ),
            "{skew}: {err}"
        );
    }
    // Within tolerance: fine.
    clock.set((now + 299) * 1000);
    assert!(
        host.handle_webhook(
            "polar",
            &config,
            &standard_headers("msg_1", now, &signature),
            &body
        )
        .await
        .is_ok()
    );
    // The secret never appears in an error.
    assert!(!err.to_string().contains(SECRET));
}

fn sepay_config() -> Vec<(String, String)> {
    cfg(&[
        ("webhook_api_key", "sepay-key-123"),
        ("account_number", "0359123456"),
        ("bank", "MBBank"),
        ("payment_prefix", "DCB"),
    ])
}

#[tokio::test]
async fn the_sepay_fixture_becomes_a_payment_event_and_a_wrong_apikey_is_refused() {
    let host = host(Clock::fixed(1_767_225_600_000), Limits::default(), &[]).await;
    let body = fixture_bytes("sepay-transfer-in.json");
    let headers = owned(sepay_headers("sepay-key-123"));
    let events = host
        .handle_webhook("sepay", &sepay_config(), &headers, &body)
        .await
        .expect("verified");
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.event_id, "123456");
    assert!(matches!(event.kind, EventKind::Payment));
    assert_eq!(event.payment_code.as_deref(), Some("DCB12345"));
    let amount = event.amount.as_ref().expect("amount");
    assert_eq!(
        (amount.minor_units, amount.currency.as_str()),
        (50_000, "VND")
    );
    // 2026-01-01 07:00:00 in Vietnam (UTC+7) is 00:00:00 UTC.
    assert_eq!(event.occurred_at, 1_767_225_600_000);
    assert!(event.guild.is_none() && event.user.is_none());

    for bad in ["Apikey wrong", "Bearer sepay-key-123", ""] {
        let headers = cfg(&[("authorization", bad)]);
        let err = host
            .handle_webhook("sepay", &sepay_config(), &headers, &body)
            .await
            .expect_err(bad);
        assert!(
            matches!(
                err,
                ProviderError::Webhook {
                    error: WebhookRejection::BadSignature(_),
                    ..
                }
            ),
            "{bad}: {err}"
        );
        assert!(!err.to_string().contains("sepay-key-123"));
    }
}

#[tokio::test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: every Polar API call in turn"
)]
async fn polar_api_calls_reach_the_fake_api_with_the_token_metadata_and_product() {
    let api_server = FakeApi::start().await;
    api_server.respond(
        "POST",
        "/v1/checkouts/",
        201,
        &json!({
            "id": "co_1", "url": "https://buy.polar.sh/co_1", "expires_at": "2026-01-02T00:00:00Z"
        }),
    );
    api_server.respond("POST", "/v1/products/", 201, &json!({"id": "prod_9"}));
    for path in ["/v1/checkouts/", "/v1/products/", "/v1/subscriptions/"] {
        api_server.respond(
            "GET",
            path,
            200,
            &json!({"items": [], "pagination": {"total_count": 0, "max_page": 1}}),
        );
    }
    let host = host(Clock::System, Limits::default(), &[]).await;
    let config = cfg(&[
        ("access_token", "polar_oat_secret_token"),
        ("webhook_secret", "whsec_x"),
        ("api_url", &api_server.url),
    ]);
    host.validate_credentials("polar", &config)
        .await
        .expect("valid credentials");

    let usd = |minor| Money::new(minor, Currency::parse("USD").expect("USD")).expect("price");
    let product = host
        .create_product(
            "polar",
            &config,
            &ProductSpec {
                guild: GuildId::new(1).expect("guild"),
                role: RoleId::new(2).expect("role"),
                name: "Gold".into(),
                price: usd(499),
                billing: Billing::Monthly,
                trial_days: None,
            },
        )
        .await
        .expect("product");
    assert_eq!(product, "prod_9");

    let checkout = host
        .create_checkout(
            "polar",
            &config,
            &CheckoutRequest {
                guild: GuildId::parse("112233445566778899").expect("guild"),
                user: UserId::parse("998877665544332211").expect("user"),
                role: RoleId::new(555).expect("role"),
                product_id: Some("prod_9".into()),
                price: usd(499),
                billing: Billing::Monthly,
                success_url: None,
                nonce: 7,
            },
        )
        .await
        .expect("checkout");
    assert_eq!(checkout.url.as_deref(), Some("https://buy.polar.sh/co_1"));

    let requests = api_server.requests();
    let validation = requests
        .iter()
        .find(|r| r.method == "GET")
        .expect("validation call");
    assert_eq!(validation.query.as_deref(), Some("limit=1"), "a cheap call");
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer polar_oat_secret_token"))
    );
    let created = requests
        .iter()
        .find(|r| r.method == "POST" && r.path == "/v1/checkouts/")
        .expect("checkout sent");
    let body = created.json();
    assert_eq!(body["products"], json!(["prod_9"]));
    assert_eq!(body["external_customer_id"], "998877665544332211");
    assert_eq!(body["metadata"]["docobo_guild_id"], "112233445566778899");
    assert_eq!(body["metadata"]["docobo_user_id"], "998877665544332211");
    assert_eq!(body["metadata"]["docobo_role_id"], "555");
    let product_req = requests
        .iter()
        .find(|r| r.method == "POST" && r.path == "/v1/products/")
        .expect("product sent");
    assert_eq!(product_req.json()["recurring_interval"], "month");

    // A refused token is reported as such.
    api_server.respond(
        "GET",
        "/v1/checkouts/",
        401,
        &json!({"error": "invalid_token"}),
    );
    let err = host
        .validate_credentials("polar", &config)
        .await
        .expect_err("401");
    assert!(
        matches!(
            err,
            ProviderError::Plugin {
                error: PluginFailure::InvalidCredentials(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("polar_oat_secret_token"), "{err}");
}

#[tokio::test]
async fn a_sepay_checkout_is_a_vietqr_with_a_unique_code() {
    let host = host(Clock::fixed(1_767_225_600_000), Limits::default(), &[]).await;
    let request = |nonce| CheckoutRequest {
        guild: GuildId::new(1).expect("guild"),
        user: UserId::new(2).expect("user"),
        role: RoleId::new(3).expect("role"),
        product_id: None,
        price: Money::new(50_000, Currency::parse("VND").expect("VND")).expect("price"),
        billing: Billing::parse("30 days").expect("billing"),
        success_url: None,
        nonce,
    };
    let a = host
        .create_checkout("sepay", &sepay_config(), &request(1))
        .await
        .expect("checkout");
    let b = host
        .create_checkout("sepay", &sepay_config(), &request(2))
        .await
        .expect("checkout");
    let code = a.payment_code.clone().expect("code");
    assert!(code.starts_with("DCB"), "{code}");
    assert_ne!(a.payment_code, b.payment_code);
    let qr = url::Url::parse(a.qr_image_url.as_deref().expect("qr")).expect("url");
    assert_eq!(qr.host_str(), Some("qr.sepay.vn"));
    let query: std::collections::HashMap<_, _> = qr.query_pairs().into_owned().collect();
    assert_eq!(query.get("acc").map(String::as_str), Some("0359123456"));
    assert_eq!(query.get("bank").map(String::as_str), Some("MBBank"));
    assert_eq!(query.get("amount").map(String::as_str), Some("50000"));
    assert_eq!(query.get("des"), Some(&code));
}

#[tokio::test]
async fn the_compiled_cache_is_reused_and_an_unsafe_cache_folder_is_not_trusted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let options = || HostOptions {
        cache_dir: Some(cache.clone()),
        builtins: true,
        ..HostOptions::default()
    };
    let first = ProviderHost::load(options()).await.expect("first");
    assert!(first.plugins().all(|p| p.cache == CacheOutcome::Compiled));
    let second = ProviderHost::load(options()).await.expect("second");
    assert!(second.plugins().all(|p| p.cache == CacheOutcome::Hit));

    drop((first, second));
    // A corrupt artifact is recompiled, not loaded.
    for entry in std::fs::read_dir(&cache).expect("ls") {
        let path = entry.expect("entry").path();
        std::fs::write(&path, b"not a compiled component").expect("corrupt");
    }
    let third = ProviderHost::load(options()).await.expect("third");
    assert!(third.plugins().all(|p| p.cache == CacheOutcome::Compiled));
    assert!(third.failures().is_empty());

    // A cache folder others can write is not used at all.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let fourth = ProviderHost::load(options()).await.expect("fourth");
        assert!(fourth.plugins().all(|p| p.cache == CacheOutcome::Uncached));
    }
}

#[tokio::test]
async fn a_broken_plugin_file_is_reported_and_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("junk.wasm"), b"\0asm junk").expect("write");
    std::fs::write(dir.path().join("notes.txt"), b"ignored").expect("write");
    std::fs::copy(
        built_plugin("docobo_template"),
        dir.path().join("template.wasm"),
    )
    .expect("copy");
    let host = ProviderHost::load(HostOptions {
        plugins_dir: Some(dir.path().to_owned()),
        builtins: true,
        cache_dir: Some(shared_cache()),
        ..HostOptions::default()
    })
    .await
    .expect("host");
    let ids: Vec<String> = host.plugins().map(|p| p.id.to_string()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.contains(&"polar".to_owned()) && ids.contains(&"sepay".to_owned()));
    assert_eq!(host.failures().len(), 1);
    let failure = &host.failures()[0];
    assert!(failure.source.to_string().ends_with("junk.wasm"));
    assert!(
        failure.error.contains("not a valid WebAssembly component"),
        "{}",
        failure.error
    );
}

const TEST: &str = "docobo_test_provider";

fn mode(mode: &str) -> Vec<(String, String)> {
    cfg(&[
        ("mode", mode),
        ("secret", "s3cret"),
        ("url", "https://allowed.example/ok"),
    ])
}

fn checkout_request() -> CheckoutRequest {
    CheckoutRequest {
        guild: GuildId::new(1).expect("guild"),
        user: UserId::new(2).expect("user"),
        role: RoleId::new(3).expect("role"),
        product_id: None,
        price: Money::new(100, Currency::parse("USD").expect("USD")).expect("price"),
        billing: Billing::OneTime,
        success_url: None,
        nonce: 1,
    }
}

/// After every failure the same host must still serve the next call.
async fn still_works(host: &ProviderHost) {
    host.validate_credentials("test", &mode("ok"))
        .await
        .expect("the next call works");
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_deadline_and_the_host_carries_on() {
    // Unlimited fuel so that the wall-clock deadline is what stops it.
    let limits = Limits {
        fuel: u64::MAX,
        deadline: Duration::from_millis(200),
        ..Limits::default()
    };
    let host = host(Clock::System, limits, &[TEST]).await;
    let started = Instant::now();
    let err = host
        .validate_credentials("test", &mode("loop"))
        .await
        .expect_err("loop");
    assert!(
        matches!(&err, ProviderError::Timeout { limit, .. } if limit.contains("deadline")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    still_works(&host).await;

    // With the default fuel budget, the CPU budget stops it first.
    let host = self::host(Clock::System, Limits::default(), &[TEST]).await;
    let err = host
        .validate_credentials("test", &mode("loop"))
        .await
        .expect_err("loop");
    assert!(
        matches!(&err, ProviderError::Timeout { limit, .. } if limit.contains("fuel")),
        "{err}"
    );
    still_works(&host).await;
}

#[tokio::test]
async fn over_allocation_is_stopped_by_the_memory_cap() {
    let host = host(
        Clock::System,
        Limits {
            memory_bytes: 8 << 20,
            ..Limits::default()
        },
        &[TEST],
    )
    .await;
    let err = host
        .validate_credentials("test", &mode("alloc"))
        .await
        .expect_err("alloc");
    assert!(
        matches!(err, ProviderError::OutOfMemory { limit_mib: 8, .. }),
        "{err}"
    );
    still_works(&host).await;
}

#[tokio::test]
async fn a_trap_fails_only_that_call() {
    let host = host(Clock::System, Limits::default(), &[TEST]).await;
    let err = host
        .validate_credentials("test", &mode("trap"))
        .await
        .expect_err("trap");
    assert!(matches!(err, ProviderError::Trap { .. }), "{err}");
    still_works(&host).await;
    // Other plugins are unaffected too.
    assert!(host.plugin("polar").is_some());
}

#[tokio::test]
async fn a_disallowed_host_is_refused_and_an_allowed_loopback_fake_is_reached() {
    let host = host(Clock::System, Limits::default(), &[TEST]).await;
    for url in [
        "https://not-declared.example/x",
        "https://169.254.169.254/latest/meta-data",
        "http://allowed.example/plain-http",
    ] {
        let config = cfg(&[("mode", "fetch"), ("url", url)]);
        let err = host
            .create_checkout("test", &config, &checkout_request())
            .await
            .expect_err(url);
        assert!(
            matches!(&err, ProviderError::Plugin { error: PluginFailure::Upstream(m), .. } if m.contains("not allowed") || m.contains("only https")),
            "{url}: {err}"
        );
    }
    still_works(&host).await;

    let fake = FakeApi::start().await;
    fake.respond("GET", "/hello", 200, &json!({"hi": true}));
    let config = cfg(&[("mode", "fetch"), ("url", &format!("{}/hello", fake.url))]);
    let checkout = host
        .create_checkout("test", &config, &checkout_request())
        .await
        .expect("fetched");
    let text = format!("{:?} {:?}", checkout.url, checkout.instructions);
    assert!(text.contains("200"), "{text}");
    assert_eq!(fake.requests().len(), 1);
}

/// A loopback HTTP server that answers every request after `delay`, counting how many
/// requests it holds at once.
async fn slow_server(delay: Duration) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/slow", listener.local_addr().expect("addr"));
    let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let most = Arc::clone(&max);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (now, max) = (Arc::clone(&now), Arc::clone(&max));
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let held = now.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(held, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                now.fetch_sub(1, Ordering::SeqCst);
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (url, most)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_calls_than_pooled_instances_wait_for_a_slot_instead_of_failing() {
    let host = host(Clock::System, Limits::default(), &[TEST]).await;
    let (url, most) = slow_server(Duration::from_millis(300)).await;
    let config = cfg(&[("mode", "fetch"), ("url", &url)]);
    let calls = POOL_SLOTS as usize + 16;
    let request = checkout_request();
    let results = futures_util::future::join_all(
        (0..calls).map(|_| host.create_checkout("test", &config, &request)),
    )
    .await;
    for result in &results {
        let checkout = result.as_ref().expect("every call succeeds");
        let text = format!("{:?} {:?}", checkout.url, checkout.instructions);
        assert!(text.contains("200"), "{text}");
    }
    // Every slot was in use at once, and never more: the rest waited their turn.
    assert_eq!(
        most.load(std::sync::atomic::Ordering::SeqCst),
        POOL_SLOTS as usize
    );
    still_works(&host).await;
}

#[tokio::test]
async fn no_call_sees_what_an_earlier_call_left_in_memory() {
    // Instances come from a pool whose memory is reset between calls, not freshly mapped:
    // the reset must leave nothing behind, neither in the data segment nor in memory the
    // module grew, whichever slot a call lands in.
    let host = host(Clock::System, Limits::default(), &[TEST]).await;
    let config = mode("leak");
    let report = |events: Vec<ProviderEvent>| {
        assert_eq!(events.len(), 1, "{events:?}");
        events[0].event_type.clone()
    };
    for call in 0..5 {
        let events = host
            .handle_webhook("test", &config, &[], b"{}")
            .await
            .expect("leak mode answers");
        assert_eq!(report(events), "clean", "sequential call {call}");
    }
    let calls = POOL_SLOTS as usize * 2;
    let results = futures_util::future::join_all(
        (0..calls).map(|_| host.handle_webhook("test", &config, &[], b"{}")),
    )
    .await;
    for (call, result) in results.into_iter().enumerate() {
        let events = result.expect("leak mode answers");
        assert_eq!(report(events), "clean", "concurrent call {call}");
    }
}
