//! `test`: a provider plugin that misbehaves on demand, for the host's sandbox and
//! error-handling tests. Never install it in production.
//!
//! # Modes
//!
//! Every export reads the config key `mode` (default `ok`); `handle-webhook` also reads the
//! header `x-test-mode`, which wins over the config:
//!
//! | mode    | behaviour |
//! |---------|-----------|
//! | `ok`    | behaves (see below) |
//! | `trap`  | panics: the guest traps (`unreachable`) |
//! | `loop`  | spins forever (fuel or the epoch deadline must stop it) |
//! | `alloc` | allocates 1 MiB chunks, touching them, until allocation fails (the memory limit must stop it) |
//! | `fetch` | `http-fetch`es `GET <config url>` (`fetch_count` times, default 1) and reports the last answer (below) |
//! | `log`   | writes `log_lines` (default 1000) info lines of 100 bytes, then behaves like `ok` |
//! | `leak`  | `handle-webhook` only: reports what an earlier call left in this instance's memory (below), then leaves marks of its own |
//!
//! An unknown mode is a `misconfigured` error. `plugin-info` takes no config and always
//! answers: id `test`, hosts `["allowed.example"]`, `needs-products` and `supports-poll`
//! true, no webhook ack.
//!
//! # `ok`
//!
//! * `validate-credentials`: `Ok`.
//! * `create-product`: `test-product-{guild}-{role}`.
//! * `create-checkout`: url `https://allowed.example/checkout/{guild}/{user}/{role}`,
//!   payment code `TEST{nonce}`, `expires-at` = host now + 1 h.
//! * `poll`: no events; the next cursor is the cursor plus one (`"1"` when none, or when the
//!   cursor is not a number).
//! * `handle-webhook`: the header `x-test-secret` must equal the config `secret`
//!   (no `secret` configured → `misconfigured`; header missing or different →
//!   `bad-signature`). The body is JSON, either
//!
//!   ```json
//!   {"events": [
//!     {"event_id": "e1", "event_type": "subscription.active", "kind": "subscription",
//!      "subscription_id": "sub_1", "guild_id": "1", "user_id": "2", "role_id": "3",
//!      "product_id": "p1", "payment_code": "TEST1", "status": "active",
//!      "period_end": 1767225600000, "amount": {"minor_units": 500, "currency": "USD"},
//!      "occurred_at": 1767225600000}
//!   ]}
//!   ```
//!
//!   turned into provider-events verbatim (`event_id`, `kind` and `occurred_at` are
//!   required; `event_type` defaults to `test`; everything else is optional; `kind` is
//!   `subscription | payment | refund | ignored`; `status` is
//!   `pending | active | canceled | past-due | revoked | refunded`; ids may be strings or
//!   integers), or
//!
//!   ```json
//!   {"error": {"kind": "stale-timestamp", "message": "…"}}
//!   ```
//!
//!   which returns that webhook error (`bad-signature | stale-timestamp | malformed |
//!   misconfigured`). Anything else is `malformed`.
//!
//! # `fetch`
//!
//! The answer is reported as `"{status}\n{body as UTF-8, lossy}"`, or the host's error:
//!
//! * `create-checkout`: `url` = the config `url`, `instructions` = the answer; error →
//!   `upstream(error)`.
//! * `validate-credentials`: `Ok` on 2xx, else `upstream("{status}")`; error → `upstream`.
//! * `create-product`: the answer as the product id; error → `upstream`.
//! * `poll`: no events, next cursor = the answer; error → `upstream`.
//! * `handle-webhook`: one `ignored` event, id `fetch`, type = the answer; error →
//!   `malformed("fetch failed: {error}")`. No secret check in this mode.
//!
//! # `leak`
//!
//! The host promises every call a fresh instance: nothing one call writes may be seen by
//! the next (another guild's webhook, say). This mode checks it from the inside: it reads a
//! static (in the data segment) and a 1 MiB zeroed heap buffer (allocated in memory the
//! module grows, where the allocator trusts fresh pages to be zero), then writes marks into
//! both. It answers one `ignored` event, id `leak`, type `clean` or a list of what was
//! dirty (`static`, `heap`). No secret check in this mode.

use docobo_plugin_sdk::{
    Checkout, CheckoutRequest, Config, ConfigField, EventKind, Headers, Host, HttpRequest,
    LogLevel, Money, PluginInfo, PollResult, ProductSpec, Provider, ProviderError, ProviderEvent,
    SubscriptionStatus, WasmHost, WebhookError, config_get, config_or, ct_eq, header,
};
use serde_json::Value;

/// The plugin.
#[derive(Debug)]
pub struct TestProvider;

/// What a call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Behave.
    Ok,
    /// Panic.
    Trap,
    /// Spin forever.
    Loop,
    /// Allocate until it fails.
    Alloc,
    /// Call `http-fetch`.
    Fetch,
    /// Log a lot, then behave.
    Log,
    /// Report and leave marks in memory.
    Leak,
}

impl Mode {
    /// Parses a mode name.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "ok" => Ok(Self::Ok),
            "trap" => Ok(Self::Trap),
            "loop" => Ok(Self::Loop),
            "alloc" => Ok(Self::Alloc),
            "fetch" => Ok(Self::Fetch),
            "log" => Ok(Self::Log),
            "leak" => Ok(Self::Leak),
            other => Err(format!("unknown test mode `{other}`")),
        }
    }
}

fn config_mode(config: &[(String, String)]) -> Result<Mode, String> {
    Mode::parse(config_or(config, "mode", "ok"))
}

/// Runs the misbehaving modes; returns for `ok`, `fetch` and `log` (after logging).
fn misbehave<H: Host>(host: &H, mode: Mode, config: &[(String, String)]) {
    match mode {
        Mode::Trap => panic!("test provider: trap mode"),
        Mode::Loop => {
            let mut i = 0u64;
            loop {
                i = std::hint::black_box(i.wrapping_add(1));
            }
        }
        Mode::Alloc => {
            let mut chunks: Vec<Vec<u8>> = Vec::new();
            loop {
                chunks.push(vec![0xA5; 1 << 20]);
                std::hint::black_box(&chunks);
            }
        }
        Mode::Log => {
            let lines: u32 = config_or(config, "log_lines", "1000")
                .parse()
                .unwrap_or(1000);
            let line = "x".repeat(100);
            for _ in 0..lines {
                host.log(LogLevel::Info, &line);
            }
        }
        Mode::Ok | Mode::Fetch | Mode::Leak => {}
    }
}

/// `fetch` mode: `fetch_count` GETs of the config `url`; the last answer as
/// `"{status}\n{body}"` and its status.
pub fn fetch<H: Host>(host: &H, config: &[(String, String)]) -> Result<(u16, String), String> {
    let url = config_get(config, "url").ok_or("the setting `url` is missing")?;
    let count: u32 = config_or(config, "fetch_count", "1")
        .parse()
        .unwrap_or(1)
        .max(1);
    let mut last = (0, String::new());
    for _ in 0..count {
        let resp = host.http_fetch(&HttpRequest::get(url))?;
        last = (
            resp.status,
            format!("{}\n{}", resp.status, String::from_utf8_lossy(&resp.body)),
        );
    }
    Ok(last)
}

fn id_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        _ => None,
    }
}

fn opt_id(e: &Value, key: &str) -> Option<String> {
    e.get(key).and_then(id_value)
}

fn parse_kind(s: &str) -> Option<EventKind> {
    Some(match s {
        "subscription" => EventKind::Subscription,
        "payment" => EventKind::Payment,
        "refund" => EventKind::Refund,
        "ignored" => EventKind::Ignored,
        _ => return None,
    })
}

fn parse_status(s: &str) -> Option<SubscriptionStatus> {
    Some(match s {
        "pending" => SubscriptionStatus::Pending,
        "active" => SubscriptionStatus::Active,
        "canceled" => SubscriptionStatus::Canceled,
        "past-due" => SubscriptionStatus::PastDue,
        "revoked" => SubscriptionStatus::Revoked,
        "refunded" => SubscriptionStatus::Refunded,
        _ => return None,
    })
}

fn malformed(msg: impl Into<String>) -> WebhookError {
    WebhookError::Malformed(msg.into())
}

fn parse_event(e: &Value) -> Result<ProviderEvent, WebhookError> {
    let event_id = opt_id(e, "event_id").ok_or_else(|| malformed("an event has no event_id"))?;
    let kind = e
        .get("kind")
        .and_then(Value::as_str)
        .and_then(parse_kind)
        .ok_or_else(|| malformed("an event has no valid kind"))?;
    let occurred_at = e
        .get("occurred_at")
        .and_then(Value::as_i64)
        .ok_or_else(|| malformed("an event has no occurred_at"))?;
    let event_type = e
        .get("event_type")
        .and_then(Value::as_str)
        .unwrap_or("test");
    let mut event = ProviderEvent::new(event_id, event_type, kind, occurred_at);
    event.subscription_id = opt_id(e, "subscription_id");
    event.guild_id = opt_id(e, "guild_id");
    event.user_id = opt_id(e, "user_id");
    event.role_id = opt_id(e, "role_id");
    event.product_id = opt_id(e, "product_id");
    event.payment_code = opt_id(e, "payment_code");
    event.status = match e.get("status") {
        None | Some(Value::Null) => None,
        Some(s) => Some(
            s.as_str()
                .and_then(parse_status)
                .ok_or_else(|| malformed("an event has an invalid status"))?,
        ),
    };
    event.period_end = e.get("period_end").and_then(Value::as_i64);
    event.amount = match e.get("amount") {
        None | Some(Value::Null) => None,
        Some(a) => Some(Money {
            minor_units: a
                .get("minor_units")
                .and_then(Value::as_i64)
                .ok_or_else(|| malformed("an amount has no minor_units"))?,
            currency: a
                .get("currency")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("an amount has no currency"))?
                .to_string(),
        }),
    };
    Ok(event)
}

/// Parses an `ok`-mode webhook body (see the crate docs).
pub fn parse_body(body: &[u8]) -> Result<Vec<ProviderEvent>, WebhookError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| malformed("the body is not JSON"))?;
    if let Some(err) = v.get("error") {
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("requested by the test")
            .to_string();
        return Err(match err.get("kind").and_then(Value::as_str) {
            Some("bad-signature") => WebhookError::BadSignature(message),
            Some("stale-timestamp") => WebhookError::StaleTimestamp(message),
            Some("misconfigured") => WebhookError::Misconfigured(message),
            _ => WebhookError::Malformed(message),
        });
    }
    v.get("events")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("the body has no `events` array"))?
        .iter()
        .map(parse_event)
        .collect()
}

/// `handle-webhook` against any host.
pub fn handle_webhook_with<H: Host>(
    host: &H,
    config: &[(String, String)],
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Vec<ProviderEvent>, WebhookError> {
    let mode = match header(headers, "x-test-mode") {
        Some(m) => Mode::parse(m),
        None => config_mode(config),
    }
    .map_err(WebhookError::Misconfigured)?;
    misbehave(host, mode, config);
    if mode == Mode::Leak {
        return Ok(vec![ProviderEvent::new(
            "leak",
            leftovers(),
            EventKind::Ignored,
            host.now_ms(),
        )]);
    }
    if mode == Mode::Fetch {
        let (_, answer) = fetch(host, config)
            .map_err(|e| WebhookError::Malformed(format!("fetch failed: {e}")))?;
        return Ok(vec![ProviderEvent::new(
            "fetch",
            answer,
            EventKind::Ignored,
            host.now_ms(),
        )]);
    }
    let secret = config_get(config, "secret")
        .ok_or_else(|| WebhookError::Misconfigured("the setting `secret` is missing".into()))?;
    let sent = header(headers, "x-test-secret").unwrap_or("");
    if !ct_eq(sent.as_bytes(), secret.as_bytes()) {
        return Err(WebhookError::BadSignature(
            "x-test-secret is missing or wrong".into(),
        ));
    }
    parse_body(body)
}

/// Marks a call leaves behind for the next one to find (see `leak` mode).
static MARK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// `leak` mode: what an earlier call left in memory (`clean` when nothing), then marks.
fn leftovers() -> String {
    use std::sync::atomic::Ordering;
    let mut dirty = Vec::new();
    if MARK.swap(0xA5A5, Ordering::Relaxed) != 0 {
        dirty.push("static");
    }
    // Zeroed by the allocator only where it cannot trust the pages to be fresh.
    let mut heap = vec![0u8; 1 << 20];
    if heap.iter().any(|&b| b != 0) {
        dirty.push("heap");
    }
    heap.fill(0xA5);
    std::hint::black_box(&heap);
    if dirty.is_empty() {
        "clean".to_owned()
    } else {
        dirty.join(",")
    }
}

fn prepare<H: Host>(host: &H, config: &[(String, String)]) -> Result<Mode, ProviderError> {
    let mode = config_mode(config).map_err(ProviderError::Misconfigured)?;
    misbehave(host, mode, config);
    Ok(mode)
}

fn upstream(e: String) -> ProviderError {
    ProviderError::Upstream(e)
}

/// `create-checkout` against any host.
pub fn create_checkout_with<H: Host>(
    host: &H,
    config: &[(String, String)],
    request: &CheckoutRequest,
) -> Result<Checkout, ProviderError> {
    if prepare(host, config)? == Mode::Fetch {
        let (_, answer) = fetch(host, config).map_err(upstream)?;
        return Ok(Checkout {
            url: config_get(config, "url").map(str::to_string),
            instructions: Some(answer),
            ..Checkout::default()
        });
    }
    Ok(Checkout {
        url: Some(format!(
            "https://allowed.example/checkout/{}/{}/{}",
            request.guild_id, request.user_id, request.role_id
        )),
        payment_code: Some(format!("TEST{}", request.nonce)),
        expires_at: Some(host.now_ms().saturating_add(3_600_000)),
        ..Checkout::default()
    })
}

/// `validate-credentials` against any host.
pub fn validate_with<H: Host>(host: &H, config: &[(String, String)]) -> Result<(), ProviderError> {
    if prepare(host, config)? == Mode::Fetch {
        let (status, _) = fetch(host, config).map_err(upstream)?;
        if !(200..300).contains(&status) {
            return Err(ProviderError::Upstream(status.to_string()));
        }
    }
    Ok(())
}

/// `create-product` against any host.
pub fn create_product_with<H: Host>(
    host: &H,
    config: &[(String, String)],
    spec: &ProductSpec,
) -> Result<String, ProviderError> {
    if prepare(host, config)? == Mode::Fetch {
        return fetch(host, config).map(|(_, a)| a).map_err(upstream);
    }
    Ok(format!("test-product-{}-{}", spec.guild_id, spec.role_id))
}

/// `poll` against any host.
pub fn poll_with<H: Host>(
    host: &H,
    config: &[(String, String)],
    cursor: Option<&str>,
) -> Result<PollResult, ProviderError> {
    if prepare(host, config)? == Mode::Fetch {
        let (_, answer) = fetch(host, config).map_err(upstream)?;
        return Ok(PollResult {
            events: Vec::new(),
            next_cursor: Some(answer),
        });
    }
    let next = cursor
        .and_then(|c| c.parse::<u64>().ok())
        .map_or(1, |c| c.saturating_add(1));
    Ok(PollResult {
        events: Vec::new(),
        next_cursor: Some(next.to_string()),
    })
}

/// The plugin's description.
#[must_use]
pub fn info() -> PluginInfo {
    PluginInfo::new(
        "test",
        "Test provider (misbehaves on demand)",
        env!("CARGO_PKG_VERSION"),
    )
    .field(
        ConfigField::new("mode", "Mode", "ok, trap, loop, alloc, fetch or log").default_value("ok"),
    )
    .field(ConfigField::new("secret", "Shared secret", "Expected in x-test-secret").secret())
    .field(ConfigField::new(
        "url",
        "Fetch URL",
        "What the fetch mode requests",
    ))
    .field(
        ConfigField::new(
            "fetch_count",
            "Fetches per call",
            "How many times fetch mode fetches",
        )
        .default_value("1"),
    )
    .field(
        ConfigField::new("log_lines", "Log lines", "How many lines log mode writes")
            .default_value("1000"),
    )
    .host("allowed.example")
    .needs_products(true)
    .supports_poll(true)
    .webhook_event("test.event")
}

impl Provider for TestProvider {
    fn plugin_info() -> PluginInfo {
        info()
    }

    fn validate_credentials(config: Config) -> Result<(), ProviderError> {
        validate_with(&WasmHost, &config)
    }

    fn create_product(config: Config, spec: ProductSpec) -> Result<String, ProviderError> {
        create_product_with(&WasmHost, &config, &spec)
    }

    fn create_checkout(
        config: Config,
        request: CheckoutRequest,
    ) -> Result<Checkout, ProviderError> {
        create_checkout_with(&WasmHost, &config, &request)
    }

    fn handle_webhook(
        config: Config,
        headers: Headers,
        body: Vec<u8>,
    ) -> Result<Vec<ProviderEvent>, WebhookError> {
        handle_webhook_with(&WasmHost, &config, &headers, &body)
    }

    fn poll(config: Config, cursor: Option<String>) -> Result<PollResult, ProviderError> {
        poll_with(&WasmHost, &config, cursor.as_deref())
    }
}

docobo_plugin_sdk::export_provider!(TestProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use docobo_plugin_sdk::{Billing, MockHost};
    use serde_json::json;

    fn cfg(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn leak_mode_finds_the_mark_a_previous_call_left() {
        // Natively both calls share one memory, as two calls on a reused instance would.
        let first = leftovers();
        let second = leftovers();
        assert!(first == "clean" || first == "static", "{first}");
        assert!(second.contains("static"), "{second}");
    }

    #[test]
    fn ok_webhook_events_verbatim() {
        let body = json!({"events": [
            {"event_id": "e1", "event_type": "subscription.active", "kind": "subscription",
             "subscription_id": "sub_1", "guild_id": "1", "user_id": 2, "role_id": "3",
             "status": "past-due", "period_end": 10, "amount": {"minor_units": 500, "currency": "USD"},
             "occurred_at": 5},
            {"event_id": "e2", "kind": "ignored", "occurred_at": 6}
        ]});
        let host = MockHost::new(0);
        let headers = cfg(&[("x-test-secret", "s3")]);
        let events = handle_webhook_with(
            &host,
            &cfg(&[("secret", "s3")]),
            &headers,
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(events.len(), 2);
        let e = &events[0];
        assert_eq!(e.event_type, "subscription.active");
        assert_eq!(e.kind, EventKind::Subscription);
        assert_eq!(e.user_id.as_deref(), Some("2"));
        assert_eq!(e.status, Some(SubscriptionStatus::PastDue));
        assert_eq!(
            e.amount,
            Some(Money {
                minor_units: 500,
                currency: "USD".into()
            })
        );
        assert_eq!((e.period_end, e.occurred_at), (Some(10), 5));
        assert_eq!(events[1].event_type, "test");
        assert_eq!(events[1].status, None);
    }

    #[test]
    fn ok_webhook_secret_and_errors() {
        let host = MockHost::new(0);
        let body = br#"{"events":[]}"#;
        let good = cfg(&[("secret", "s3")]);
        assert!(matches!(
            handle_webhook_with(&host, &good, &cfg(&[("x-test-secret", "nope")]), body),
            Err(WebhookError::BadSignature(_))
        ));
        assert!(matches!(
            handle_webhook_with(&host, &good, &[], body),
            Err(WebhookError::BadSignature(_))
        ));
        assert!(matches!(
            handle_webhook_with(&host, &cfg(&[]), &cfg(&[("x-test-secret", "s3")]), body),
            Err(WebhookError::Misconfigured(_))
        ));
        let h = cfg(&[("x-test-secret", "s3")]);
        let m = || "m".to_string();
        for (kind, want) in [
            ("stale-timestamp", WebhookError::StaleTimestamp(m())),
            ("bad-signature", WebhookError::BadSignature(m())),
            ("misconfigured", WebhookError::Misconfigured(m())),
            ("malformed", WebhookError::Malformed(m())),
        ] {
            let body = json!({"error": {"kind": kind, "message": "m"}}).to_string();
            let err = handle_webhook_with(&host, &good, &h, body.as_bytes()).unwrap_err();
            assert_eq!(err, want);
        }
        for bad in [
            &b"nope"[..],
            b"{}",
            br#"{"events":[{"kind":"payment","occurred_at":1}]}"#,
        ] {
            assert!(matches!(
                handle_webhook_with(&host, &good, &h, bad),
                Err(WebhookError::Malformed(_))
            ));
        }
        // Header mode wins over config; unknown mode is misconfigured.
        let unknown = cfg(&[("x-test-mode", "dance"), ("x-test-secret", "s3")]);
        assert!(matches!(
            handle_webhook_with(&host, &good, &unknown, body),
            Err(WebhookError::Misconfigured(_))
        ));
    }

    #[test]
    fn fetch_mode_reports_answer_or_error() {
        let config = cfg(&[("mode", "fetch"), ("url", "https://allowed.example/x")]);
        let request = CheckoutRequest {
            guild_id: "1".into(),
            user_id: "2".into(),
            role_id: "3".into(),
            product_id: None,
            price: Money {
                minor_units: 1,
                currency: "USD".into(),
            },
            billing: Billing::OneTime,
            success_url: None,
            nonce: 9,
        };
        let host = MockHost::new(0).respond(418, "teapot");
        let c = create_checkout_with(&host, &config, &request).unwrap();
        assert_eq!(c.url.as_deref(), Some("https://allowed.example/x"));
        assert_eq!(c.instructions.as_deref(), Some("418\nteapot"));
        assert_eq!(host.requests.borrow()[0].url, "https://allowed.example/x");

        let host = MockHost::new(0).fail("host not allowed: evil.example");
        match create_checkout_with(&host, &config, &request) {
            Err(ProviderError::Upstream(e)) => assert_eq!(e, "host not allowed: evil.example"),
            other => panic!("{other:?}"),
        }
        let host = MockHost::new(0).respond(500, "");
        assert!(matches!(
            validate_with(&host, &config),
            Err(ProviderError::Upstream(_))
        ));

        let mut three = config.clone();
        three.push(("fetch_count".into(), "3".into()));
        let host = MockHost::new(0)
            .respond(200, "a")
            .respond(200, "b")
            .respond(201, "c");
        assert_eq!(
            poll_with(&host, &three, None)
                .unwrap()
                .next_cursor
                .as_deref(),
            Some("201\nc")
        );
        assert_eq!(host.requests.borrow().len(), 3);

        // Header-selected fetch mode in a webhook.
        let host = MockHost::new(7).respond(200, "hi");
        let events = handle_webhook_with(
            &host,
            &cfg(&[("url", "https://allowed.example/")]),
            &cfg(&[("x-test-mode", "fetch")]),
            b"",
        )
        .unwrap();
        assert_eq!(
            (events[0].event_id.as_str(), events[0].event_type.as_str()),
            ("fetch", "200\nhi")
        );
    }

    #[test]
    fn ok_mode_other_exports() {
        let host = MockHost::new(1000);
        let ok = cfg(&[]);
        assert_eq!(
            poll_with(&host, &ok, Some("41"))
                .unwrap()
                .next_cursor
                .as_deref(),
            Some("42")
        );
        assert_eq!(
            poll_with(&host, &ok, None).unwrap().next_cursor.as_deref(),
            Some("1")
        );
        let spec = ProductSpec {
            guild_id: "1".into(),
            role_id: "3".into(),
            name: "n".into(),
            price: Money {
                minor_units: 1,
                currency: "USD".into(),
            },
            billing: Billing::Monthly,
            trial_days: None,
        };
        assert_eq!(
            create_product_with(&host, &ok, &spec).unwrap(),
            "test-product-1-3"
        );
        assert!(validate_with(&host, &ok).is_ok());
        assert!(matches!(
            validate_with(&host, &cfg(&[("mode", "nope")])),
            Err(ProviderError::Misconfigured(_))
        ));
        let logged = MockHost::new(0);
        validate_with(&logged, &cfg(&[("mode", "log"), ("log_lines", "3")])).unwrap();
        assert_eq!(logged.logs.borrow().len(), 3);
        assert_eq!(info().hosts, ["allowed.example"]);
        assert_eq!(info().id, "test");
    }
}
