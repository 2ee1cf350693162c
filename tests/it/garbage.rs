//! What garbage costs: made-up paths and providers, forged signatures, oversized and repeated
//! headers, slow clients and pipelined requests, each against the real server on
//! 127.0.0.1:0 (raw TCP where an HTTP client would tidy the attack away) and the real Polar
//! component.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use docobo::domain::{Billing, GuildId, RoleId};
use docobo_testkit::webhooks::{PolarKey, polar_headers};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::app::{TestApp, TestAppBuilder, fixtures, test_app};

const GUILD: u64 = 223_344_556_677_889_900;
const OTHER_GUILD: u64 = 334_455_667_788_990_011;
const PRODUCT: &str = "0c7d3a52-6f5e-4b1a-9a43-1f2e3d4c5b6a";
const SECRET: &str = "polar_whs_garbage_test_secret";

fn guild(n: u64) -> GuildId {
    GuildId::new(n).expect("guild")
}

/// An app whose guild `GUILD` sells a role through Polar; its webhook path.
async fn polar_app(builder: TestAppBuilder) -> (TestApp, String) {
    let app = builder.start().await;
    let path = add_shop(&app, GUILD).await;
    (app, path)
}

async fn add_shop(app: &TestApp, id: u64) -> String {
    let key = app
        .add_guild(
            guild(id),
            "polar",
            &[("webhook_secret", SECRET), ("access_token", "polar_oat_x")],
        )
        .await;
    app.add_paid_role(
        guild(id),
        RoleId::new(555).expect("role"),
        (499, "USD"),
        Billing::Monthly,
        Some(PRODUCT),
    )
    .await;
    format!("/webhooks/polar/{key}")
}

/// The `subscription.active` fixture for subscription `id`.
fn body(id: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(fixtures().join("polar-subscription-active.json"))
        .expect("fixture");
    let mut value: Value = serde_json::from_str(&text).expect("json");
    value["data"]["id"] = json!(id);
    value["data"]["current_period_end"] = json!("2030-01-15T10:20:58Z");
    serde_json::to_vec(&value).expect("json")
}

async fn deliver(app: &TestApp, path: &str, key: &[u8], id: &str) -> reqwest::Response {
    PolarKey::raw(key)
        .delivery_now(id, body(id))
        .request(&app.client, &app.url(path))
        .send()
        .await
        .expect("send")
}

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text")
}

/// How many times the plugin's `handle-webhook` ran, from `/metrics`.
async fn plugin_runs(app: &TestApp) -> u64 {
    let text = metrics(app).await;
    text.lines()
        .find_map(|l| {
            l.strip_prefix(
                "docobo_plugin_call_seconds_count{provider=\"polar\",call=\"handle-webhook\"} ",
            )
        })
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

/// Writes `request` on a fresh connection as one write, then reads until the server closes
/// it (or 10 s pass); returns what was read.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status codes of every response in `text`, in order.
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// A signed Polar delivery to `path` as raw bytes (`Connection: close`).
fn raw_delivery(path: &str, id: &str, key: &[u8]) -> Vec<u8> {
    let delivery = PolarKey::raw(key).delivery_now(id, body(id));
    let mut head = format!("POST {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (name, value) in delivery.headers() {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let _ = write!(head, "content-length: {}\r\n\r\n", delivery.body.len());
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&delivery.body);
    bytes
}

#[tokio::test]
async fn two_hundred_made_up_provider_names_add_no_metrics_series() {
    let app = test_app()
        .env("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0")
        .start()
        .await;
    let before = metrics(&app).await.lines().count();
    for i in 0..200 {
        let response = app
            .client
            .post(app.url(&format!("/webhooks/made-up-{i}/key")))
            .body("{}")
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 404);
    }
    let text = metrics(&app).await;
    assert!(!text.contains("made-up"), "{text}");
    assert!(
        text.contains(
            r#"docobo_webhooks_total{provider="unknown",outcome="unknown_provider"} 200"#
        ),
        "{text}"
    );
    // One new series (the counter above), whatever the names were.
    assert!(
        text.lines().count() <= before + 4,
        "{} lines before, {} after",
        before,
        text.lines().count()
    );
}

#[tokio::test]
async fn a_forged_signature_runs_the_plugin_once_and_a_rotated_secret_still_works_at_once() {
    let (app, path) = polar_app(test_app()).await;
    // Five forgeries in a burst: the first resolves the key from the database, the rest
    // from the key cache, whose credentials are refused and found unchanged.
    for i in 0..5 {
        let response = deliver(&app, &path, b"not the secret", &format!("forged-{i}")).await;
        assert_eq!(response.status(), 403);
    }
    assert_eq!(plugin_runs(&app).await, 5, "one plugin run per forgery");
    // The owner rotates the secret while the cache still holds the old one: the first
    // delivery signed with the new one is accepted (two runs: cached, then stored).
    app.add_guild(
        guild(GUILD),
        "polar",
        &[
            ("webhook_secret", "polar_whs_rotated"),
            ("access_token", "x"),
        ],
    )
    .await;
    let response = deliver(&app, &path, b"polar_whs_rotated", "after-rotation").await;
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(plugin_runs(&app).await, 7);
}

#[tokio::test]
async fn no_spelling_of_a_webhook_url_puts_its_key_in_the_log() {
    let (app, path) = polar_app(test_app()).await;
    let key = path.rsplit('/').next().expect("key").to_owned();
    let encoded = key.bytes().fold(String::new(), |mut s, b| {
        let _ = write!(s, "%{b:02X}");
        s
    });
    let (logs, _guard) = crate::helpers::Captured::at(tracing::Level::INFO);
    for spelling in [
        format!("/webhooks/polar/{key}"),
        format!("//webhooks/polar/{key}"),
        format!("/webhooks//polar/{key}"),
        format!("/webhooks/polar/{key}/"),
        format!("/webhooks/./polar/{key}"),
        format!("/webhooks/x/../polar/{key}"),
        format!("/%77ebhooks/polar/{encoded}"),
        format!("///webhooks/polar//{key}//"),
    ] {
        let reply = raw(
            app.addr,
            &raw_delivery(&spelling, "spelled", b"not the secret"),
        )
        .await;
        // Routed to the guild's handler (checked and refused), not lost as a 404.
        assert_eq!(statuses(&reply), [403], "{spelling}: {reply}");
    }
    let text = logs.text();
    assert!(
        text.matches("docobo::access").count() >= 8,
        "no access log lines:\n{text}"
    );
    assert!(text.contains("/webhooks/polar/***"), "{text}");
    for private in [
        key.as_str(),
        encoded.as_str(),
        &encoded.to_ascii_lowercase(),
    ] {
        assert!(!text.contains(private), "the log holds the key:\n{text}");
    }
}

#[tokio::test]
async fn a_signed_oversized_webhook_id_is_refused_and_not_stored() {
    let (app, path) = polar_app(test_app()).await;
    // 200 000 characters do not fit in a request head.
    let response = deliver(&app, &path, SECRET.as_bytes(), &"i".repeat(200_000)).await;
    assert_eq!(response.status(), 431);
    // 5 000 do, and verify, and are refused before storage with the reason.
    let response = deliver(&app, &path, SECRET.as_bytes(), &"i".repeat(5_000)).await;
    assert_eq!(response.status(), 400);
    let reason = response.text().await.expect("text");
    assert!(
        reason.contains("event_id") && reason.contains("at most 255"),
        "{reason}"
    );
    let longest = app
        .count("SELECT coalesce(max(length(external_event_id)), 0) FROM webhook_events")
        .await;
    assert!(longest <= 255, "a {longest}-byte id was stored");
    assert_eq!(app.count("SELECT count(*) FROM subscriptions").await, 0);
}

#[tokio::test]
async fn a_valid_signature_on_a_second_signature_line_is_accepted() {
    let (app, path) = polar_app(test_app()).await;
    let delivery = PolarKey::raw(SECRET.as_bytes()).delivery_now("two-lines", body("two-lines"));
    let stale = PolarKey::raw(b"last month's secret").sign("two-lines", delivery.timestamp, b"x");
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in polar_headers(&delivery.id, delivery.timestamp, &stale) {
        headers.append(name, value.parse().expect("value"));
    }
    headers.append(
        "webhook-signature",
        delivery.signature.parse().expect("value"),
    );
    let response = app
        .client
        .post(app.url(&path))
        .headers(headers)
        .body(delivery.body.clone())
        .send()
        .await
        .expect("send");
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_events WHERE external_event_id = 'two-lines'")
            .await,
        1
    );
}

/// `n` header lines `x-h{i}: v`.
fn header_lines(n: usize) -> String {
    (0..n).fold(String::new(), |mut s, i| {
        let _ = write!(s, "x-h{i}: v\r\n");
        s
    })
}

#[tokio::test]
async fn a_64_kib_header_or_65_headers_are_431() {
    let app = test_app().start().await;
    let big = format!(
        "GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(64 << 10)
    );
    assert_eq!(statuses(&raw(app.addr, big.as_bytes()).await), [431]);
    let many = header_lines(65);
    let many = format!("GET /health HTTP/1.1\r\nhost: x\r\n{many}connection: close\r\n\r\n");
    assert_eq!(statuses(&raw(app.addr, many.as_bytes()).await), [431]);
    // Within the limits, served.
    let fine = header_lines(60);
    let fine = format!("GET /health HTTP/1.1\r\nhost: x\r\n{fine}connection: close\r\n\r\n");
    assert_eq!(statuses(&raw(app.addr, fine.as_bytes()).await), [200]);
}

#[tokio::test]
async fn a_burst_of_forgeries_on_one_url_is_429_unchecked_and_slows_no_other_url() {
    let (app, path) = polar_app(test_app()).await;
    let other = add_shop(&app, OTHER_GUILD).await;
    // The URL's budget (10 a minute) is spent by refusals; the one past it is still
    // checked (and refused)...
    for i in 0..11 {
        let response = deliver(&app, &path, b"forged", &format!("f-{i}")).await;
        assert_eq!(response.status(), 403, "forgery {i}");
    }
    let runs = plugin_runs(&app).await;
    // ...then that URL gets 429 with Retry-After, without the plugin running, even for a
    // good signature (the provider retries later).
    for id in ["f-more", "good-but-late"] {
        let key: &[u8] = if id == "f-more" {
            b"forged"
        } else {
            SECRET.as_bytes()
        };
        let response = deliver(&app, &path, key, id).await;
        assert_eq!(response.status(), 429, "{id}");
        let retry: u64 = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("retry-after");
        assert!((1..=60).contains(&retry), "{retry}");
    }
    assert_eq!(plugin_runs(&app).await, runs, "429s run no plugin");
    // Another guild's URL, from the same address, is served at once.
    let response = deliver(&app, &other, SECRET.as_bytes(), "other-guild").await;
    assert!(response.status().is_success(), "{}", response.status());
    assert!(
        metrics(&app)
            .await
            .contains(r#"docobo_webhooks_total{provider="polar",outcome="throttled"} 2"#)
    );
}

#[tokio::test]
async fn an_address_over_its_budget_of_forgeries_is_429_on_every_url() {
    let app = test_app()
        .env("DOCOBO_SERVER__BAD_SIGNATURES_PER_IP_PER_MINUTE", "3")
        .start()
        .await;
    let first = add_shop(&app, GUILD).await;
    let second = add_shop(&app, OTHER_GUILD).await;
    for (i, path) in [&first, &second, &first].into_iter().enumerate() {
        let response = deliver(&app, path, b"forged", &format!("ip-{i}")).await;
        assert_eq!(response.status(), 403);
    }
    let response = deliver(&app, &second, b"forged", "ip-3").await;
    assert_eq!(
        response.status(),
        403,
        "the 4th refusal is the one that blocks"
    );
    let response = deliver(&app, &second, SECRET.as_bytes(), "ip-4").await;
    assert_eq!(response.status(), 429);
    let text = response.text().await.expect("text");
    assert!(text.contains("this address"), "{text}");
}

#[tokio::test]
async fn a_client_trickling_its_head_or_its_body_is_cut_off_at_the_timeout() {
    let (app, path) = polar_app(test_app().envs(&[
        ("DOCOBO_SERVER__HEADER_TIMEOUT_MS", "1000"),
        ("DOCOBO_SERVER__BODY_TIMEOUT_MS", "1000"),
    ]))
    .await;
    let gap = Duration::from_millis(100);
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nx-padding: {}\r\ncontent-length: 500\r\n\r\n",
        "p".repeat(200)
    );
    // The head never finishes within the second (~300 bytes at 10 a second): closed.
    let stream = TcpStream::connect(app.addr).await.expect("connect");
    let (held, reply) = trickle(stream, request.as_bytes(), gap).await;
    eprintln!("a trickled head held the connection {held:?}: {reply:?}");
    assert!(held < Duration::from_secs(3), "held {held:?}");
    assert!(!reply.contains("HTTP/1.1 2"), "{reply}");
    // The head at once, the body a byte at a time: 408 after a second, and closed.
    let started = Instant::now();
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("head");
    let (_, reply) = trickle(stream, &[b'{'; 500], gap).await;
    let held = started.elapsed();
    eprintln!("a trickled body held the connection {held:?}: {reply:?}");
    assert_eq!(statuses(&reply), [408], "{reply}");
    assert!(held < Duration::from_secs(3), "held {held:?}");
}

/// Sends `bytes` on `stream` one every `gap`, until the server answers and closes (or 20 s
/// pass); returns how long that took and what it answered.
async fn trickle(mut stream: TcpStream, bytes: &[u8], gap: Duration) -> (Duration, String) {
    let started = Instant::now();
    let mut out = Vec::new();
    for byte in bytes {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(gap, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut out)).await;
    (started.elapsed(), String::from_utf8_lossy(&out).into())
}

#[tokio::test]
async fn pipelined_requests_in_one_write_are_all_answered_in_order() {
    let (app, path) = polar_app(test_app()).await;
    let mut requests = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
    requests.extend_from_slice(
        b"POST /webhooks/nope HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}",
    );
    requests.extend_from_slice(b"GET /nothing-here HTTP/1.1\r\nhost: x\r\n\r\n");
    // The last one (`connection: close`) ends the connection.
    requests.append(&mut raw_delivery(&path, "pipelined", b"forged"));
    let reply = raw(app.addr, &requests).await;
    assert_eq!(statuses(&reply), [200, 404, 404, 403], "{reply}");
}

#[tokio::test]
async fn metrics_need_the_bearer_token_when_one_is_set() {
    let app = test_app()
        .env("DOCOBO_SERVER__METRICS_TOKEN", "metrics-s3cret")
        .start()
        .await;
    let get = |auth: Option<&str>| {
        let mut request = app.client.get(app.url("/metrics"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };
    assert_eq!(get(None).await.expect("send").status(), 401);
    assert_eq!(get(Some("Bearer wrong")).await.expect("send").status(), 401);
    let ok = get(Some("Bearer metrics-s3cret")).await.expect("send");
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.expect("text").contains("docobo_db_errors"));
    // /health stays open.
    let health = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("send");
    assert_eq!(health.status(), 200);
}
