//! The synchronous `handle-webhook` path (issue 20): a delivery runs on a fresh instance
//! without fibers, under the same limits, and a plugin that needs more than that path offers
//! (an `http-fetch`, WASI, a long run) is rerun on fibers with the same outcome as before.

use std::time::{Duration, Instant};

use docobo::providers::{
    Clock, Limits, ProviderError, ProviderHost, WebhookPaths, WebhookRejection,
};
use docobo_testkit::webhooks::{PolarKey, polar_headers};
use serde_json::json;

use crate::fake_api::FakeApi;
use crate::providers::host;

const TEST: &str = "docobo_test_provider";

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn test_config(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut config = pairs(&[("mode", "ok"), ("secret", "s3cret")]);
    config.extend(pairs(extra));
    config
}

/// A test-provider delivery in `mode` (the `x-test-mode` header).
fn test_headers(mode: &str) -> Vec<(String, String)> {
    pairs(&[("x-test-secret", "s3cret"), ("x-test-mode", mode)])
}

fn test_body() -> Vec<u8> {
    json!({"events": [{"event_id": "evt_1", "event_type": "paid", "kind": "payment",
        "occurred_at": 1_000}]})
    .to_string()
    .into_bytes()
}

/// The webhook calls `host` made since `before`.
fn since(host: &ProviderHost, before: WebhookPaths) -> (u64, u64) {
    let now = host.webhook_paths();
    (
        now.synchronous - before.synchronous,
        now.rerun_on_fibers - before.rerun_on_fibers,
    )
}

/// An ordinary delivery still verifies on the synchronous path.
async fn next_webhook_works(host: &ProviderHost) {
    let before = host.webhook_paths();
    let events = host
        .handle_webhook("test", &test_config(&[]), &test_headers("ok"), &test_body())
        .await
        .expect("the next webhook works");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_id, "evt_1");
    assert_eq!(
        since(host, before),
        (1, 0),
        "the next one runs synchronously"
    );
}

#[tokio::test]
async fn a_polar_delivery_is_verified_synchronously_with_the_same_verdict_as_on_fibers() {
    let secret = "polar_whs_sync_path";
    let now_ms = 1_767_225_600_000;
    let host = host(Clock::fixed(now_ms), Limits::default(), &[]).await;
    let body =
        std::fs::read(docobo_testkit::fixtures::webhooks().join("polar-subscription-active.json"))
            .expect("fixture (tests/fixtures/webhooks)");
    let config = pairs(&[("webhook_secret", secret)]);
    let timestamp = now_ms / 1000;
    let signature = PolarKey::utf8(secret).sign("msg_sync", timestamp, &body);
    let headers: Vec<(String, String)> = polar_headers("msg_sync", timestamp, &signature)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();

    let before = host.webhook_paths();
    let sync = host
        .handle_webhook("polar", &config, &headers, &body)
        .await
        .expect("verifies");
    let fibers = host
        .handle_webhook_on_fibers("polar", &config, &headers, &body)
        .await
        .expect("verifies");
    assert_eq!(sync, fibers);
    assert_eq!(sync.len(), 1);
    assert_eq!(sync[0].event_id, "msg_sync");

    // Tampering is caught on the synchronous path too, with the same rejection.
    let mut tampered = body.clone();
    tampered.push(b' ');
    let refused = host
        .handle_webhook("polar", &config, &headers, &tampered)
        .await
        .expect_err("tampered");
    assert!(
        matches!(
            &refused,
            ProviderError::Webhook {
                error: WebhookRejection::BadSignature(_),
                ..
            }
        ),
        "{refused}"
    );
    assert_eq!(since(&host, before), (2, 0), "neither call needed fibers");
}

#[tokio::test]
async fn an_endless_webhook_is_stopped_by_the_deadline_and_the_next_call_works() {
    // Unlimited fuel: the wall-clock deadline must stop it, past the synchronous slice.
    let limits = Limits {
        fuel: u64::MAX,
        deadline: Duration::from_millis(300),
        ..Limits::default()
    };
    let host = host(Clock::System, limits, &[TEST]).await;
    let before = host.webhook_paths();
    let started = Instant::now();
    let err = host
        .handle_webhook(
            "test",
            &test_config(&[]),
            &test_headers("loop"),
            &test_body(),
        )
        .await
        .expect_err("loop");
    let took = started.elapsed();
    assert!(
        matches!(&err, ProviderError::Timeout { limit, .. } if limit.contains("deadline")),
        "{err}"
    );
    // The rerun gets what is left of the deadline, not a fresh one.
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(
        since(&host, before),
        (0, 1),
        "moved to fibers at its slice's end"
    );
    next_webhook_works(&host).await;

    // A deadline shorter than the slice interrupts the synchronous call itself.
    let limits = Limits {
        fuel: u64::MAX,
        deadline: Duration::from_millis(10),
        ..Limits::default()
    };
    let host = self::host(Clock::System, limits, &[TEST]).await;
    let before = host.webhook_paths();
    let err = host
        .handle_webhook(
            "test",
            &test_config(&[]),
            &test_headers("loop"),
            &test_body(),
        )
        .await
        .expect_err("loop");
    assert!(
        matches!(&err, ProviderError::Timeout { limit, .. } if limit.contains("deadline")),
        "{err}"
    );
    assert_eq!(since(&host, before), (1, 0), "trapped without fibers");
    next_webhook_works(&host).await;

    // With the default fuel, the CPU budget stops it (on whichever path it is by then). The
    // deadline is set far off: on a loaded machine the default 2 s can pass before the fuel
    // is spent, and then the deadline, not the fuel, is what this would test.
    let limits = Limits {
        deadline: Duration::from_mins(1),
        ..Limits::default()
    };
    let host = self::host(Clock::System, limits, &[TEST]).await;
    let err = host
        .handle_webhook(
            "test",
            &test_config(&[]),
            &test_headers("loop"),
            &test_body(),
        )
        .await
        .expect_err("loop");
    assert!(
        matches!(&err, ProviderError::Timeout { limit, .. } if limit.contains("fuel")),
        "{err}"
    );
    next_webhook_works(&host).await;
}

#[tokio::test]
async fn a_webhook_trap_or_memory_blow_up_fails_only_that_call() {
    let limits = Limits {
        memory_bytes: 8 << 20,
        ..Limits::default()
    };
    let host = host(Clock::System, limits, &[TEST]).await;
    let err = host
        .handle_webhook(
            "test",
            &test_config(&[]),
            &test_headers("alloc"),
            &test_body(),
        )
        .await
        .expect_err("alloc");
    assert!(
        matches!(err, ProviderError::OutOfMemory { limit_mib: 8, .. }),
        "{err}"
    );
    next_webhook_works(&host).await;

    // A panic writes its message through WASI, which only the fiber path serves: it is
    // rerun there and reported as the trap it is.
    let before = host.webhook_paths();
    let err = host
        .handle_webhook(
            "test",
            &test_config(&[]),
            &test_headers("trap"),
            &test_body(),
        )
        .await
        .expect_err("trap");
    assert!(
        matches!(&err, ProviderError::Trap { detail, .. } if !detail.contains("asynchronous")),
        "{err}"
    );
    assert_eq!(since(&host, before), (0, 1));
    next_webhook_works(&host).await;
}

#[tokio::test]
async fn a_webhook_that_fetches_is_rerun_on_fibers_and_reaches_the_fake_api() {
    let host = host(Clock::System, Limits::default(), &[TEST]).await;
    let fake = FakeApi::start().await;
    fake.respond("GET", "/lookup", 200, &json!({"found": true}));
    let url = format!("{}/lookup", fake.url);
    let before = host.webhook_paths();
    let events = host
        .handle_webhook(
            "test",
            &test_config(&[("url", &url)]),
            &test_headers("fetch"),
            &test_body(),
        )
        .await
        .expect("fetched");
    assert_eq!(events.len(), 1);
    assert!(events[0].event_type.contains("200"), "{events:?}");
    assert_eq!(
        fake.requests().len(),
        1,
        "fetched once: the rerun, not twice"
    );
    assert_eq!(since(&host, before), (0, 1));

    // A disallowed host is still refused, on the fiber path's checks.
    let err = host
        .handle_webhook(
            "test",
            &test_config(&[("url", "https://not-declared.example/x")]),
            &test_headers("fetch"),
            &test_body(),
        )
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ProviderError::Webhook { error: WebhookRejection::Malformed(m), .. } if m.contains("not allowed")),
        "{err}"
    );
    next_webhook_works(&host).await;
}
