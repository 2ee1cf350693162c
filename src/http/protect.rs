//! Protection layers: client IP, rate limit, security headers, timeout, access log.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use salvo::http::StatusCode;
use salvo::prelude::*;
use secrecy::{ExposeSecret as _, SecretString};

use super::HttpState;

/// The protection settings, as configured (`[server]`).
#[derive(Debug, Clone)]
pub struct ProtectionSettings {
    /// Requests per minute per client IP; 0: off.
    pub per_minute: u32,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub request_timeout: Duration,
    /// How long a webhook's body may take to arrive.
    pub body_timeout: Duration,
    /// Refused signatures per minute per webhook URL, and per client IP; 0: off.
    pub bad_signatures_per_url: u32,
    pub bad_signatures_per_ip: u32,
    /// `GET /metrics` needs it as a bearer token when set.
    pub metrics_token: Option<SecretString>,
}

impl ProtectionSettings {
    /// The settings with every limit but the timeouts off (tests).
    #[must_use]
    pub fn unlimited(request_timeout: Duration) -> Self {
        Self {
            per_minute: 0,
            trusted_proxies: Vec::new(),
            request_timeout,
            body_timeout: request_timeout,
            bad_signatures_per_url: 0,
            bad_signatures_per_ip: 0,
            metrics_token: None,
        }
    }
}

/// The protection settings and the rate limiters' state.
pub struct Protection {
    /// `None` when the limit is off.
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trusted_proxies: Vec<ipnet::IpNet>,
    pub request_timeout: Duration,
    pub body_timeout: Duration,
    /// Budgets for refused signatures.
    pub failures: FailureBudget,
    metrics_token: Option<SecretString>,
    /// Requests seen, to prune the limiter's memory now and then.
    seen: AtomicU64,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("rate_limited", &self.limiter.is_some())
            .field("trusted_proxies", &self.trusted_proxies)
            .field("request_timeout", &self.request_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("metrics_token", &self.metrics_token.is_some())
            .finish_non_exhaustive()
    }
}

impl Protection {
    #[must_use]
    pub fn new(settings: ProtectionSettings) -> Self {
        Self {
            limiter: NonZeroU32::new(settings.per_minute)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            trusted_proxies: settings.trusted_proxies,
            request_timeout: settings.request_timeout,
            body_timeout: settings.body_timeout,
            failures: FailureBudget::new(
                settings.bad_signatures_per_url,
                settings.bad_signatures_per_ip,
            ),
            metrics_token: settings.metrics_token,
            seen: AtomicU64::new(0),
        }
    }

    /// Whether `/metrics` needs a token: only then does it show the shop's figures (guild
    /// and role ids, revenue), which are not for anyone who can reach the server.
    #[must_use]
    pub fn metrics_private(&self) -> bool {
        self.metrics_token.is_some()
    }

    /// Whether `authorization` (the header's value) may read `/metrics`.
    #[must_use]
    pub fn metrics_allowed(&self, authorization: Option<&[u8]>) -> bool {
        let Some(token) = &self.metrics_token else {
            return true;
        };
        let expected = format!("Bearer {}", token.expose_secret());
        authorization.is_some_and(|given| ct_eq(given, expected.as_bytes()))
    }

    /// The client's address: the connecting peer, or, when the peer is a trusted proxy, the
    /// right-most address in `X-Forwarded-For` that is not itself a trusted proxy.
    #[must_use]
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let Some(header) = forwarded_for else {
            return Some(peer);
        };
        let mut client = peer;
        for hop in header.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                // Junk in the chain: stop at the last address we could trust.
                break;
            };
            client = ip;
            if !self.is_trusted(ip) {
                break;
            }
        }
        Some(client)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// `Err(wait)` when `ip` is over its limit.
    fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.seen.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            limiter.retain_recent();
        }
        limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The client IP, as found by [`ClientIp`], in the depot.
#[derive(Debug, Clone, Copy)]
pub struct Client(pub Option<IpAddr>);

impl Client {
    /// The client IP that [`ClientIp`] stored, if any.
    #[must_use]
    pub fn ip(depot: &Depot) -> Option<IpAddr> {
        depot.get_typed::<Self>().ok().and_then(|c| c.0)
    }

    /// The client IP as text for logs (empty when unknown).
    #[must_use]
    pub fn text(depot: &Depot) -> String {
        Self::ip(depot).map(|ip| ip.to_string()).unwrap_or_default()
    }
}

pub struct ClientIp {
    pub state: Arc<HttpState>,
}

#[handler]
#[allow(clippy::unused_async, reason = "salvo handlers are async")]
impl ClientIp {
    async fn handle(&self, req: &mut Request, depot: &mut Depot) {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let ip = self
            .state
            .protection
            .client_ip(req.remote_addr().ip(), forwarded);
        depot.insert_typed(Client(ip));
    }
}

/// Refuses the request with 429 when its client is over the per-IP rate limit; whether it
/// did.
pub fn rate_limited(state: &HttpState, depot: &Depot, res: &mut Response) -> bool {
    let Some(ip) = Client::ip(depot) else {
        return false;
    };
    let Err(wait) = state.protection.check(ip) else {
        return false;
    };
    state.services.metrics.rate_limited.inc();
    too_many(
        res,
        wait,
        "too many requests from this address; retry later",
    );
    true
}

/// A 429 with `Retry-After` (whole seconds, at least 1) and `message`.
pub fn too_many(res: &mut Response, wait: Duration, message: &str) {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    res.status_code(StatusCode::TOO_MANY_REQUESTS);
    res.add_header("retry-after", seconds.max(1).to_string(), true)
        .ok();
    res.render(Json(serde_json::json!({ "error": message })));
}

/// Where a refused signature is counted: the webhook URL it was sent to and the client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Blocked {
    Url(String),
    Ip(IpAddr),
}

/// Budgets for deliveries refused for their signature, per webhook URL and per client IP
/// (IPv6 per /64, what one host usually gets). A refusal spends one cell of each (governor's
/// GCRA); the refusal that finds a budget empty blocks it until the limiter would allow the
/// next one, and a blocked URL or IP gets 429 before its body is read or the plugin runs.
/// Only URLs that resolved are counted, so the maps are bounded by the guilds and by the
/// clients that failed within the last minute (both are pruned as they grow).
pub struct FailureBudget {
    urls: Option<DefaultKeyedRateLimiter<String>>,
    ips: Option<DefaultKeyedRateLimiter<IpAddr>>,
    blocked: std::sync::Mutex<std::collections::HashMap<Blocked, Instant>>,
}

impl std::fmt::Debug for FailureBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureBudget")
            .field("per_url", &self.urls.is_some())
            .field("per_ip", &self.ips.is_some())
            .finish_non_exhaustive()
    }
}

/// Above this many blocked entries, expired ones are dropped (and limiters pruned).
const PRUNE_ABOVE: usize = 4096;

impl FailureBudget {
    fn new(per_url: u32, per_ip: u32) -> Self {
        Self {
            urls: NonZeroU32::new(per_url).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            ips: NonZeroU32::new(per_ip).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            blocked: std::sync::Mutex::default(),
        }
    }

    fn keys(url: &str, ip: Option<IpAddr>) -> impl Iterator<Item = Blocked> {
        std::iter::once(Blocked::Url(url.to_owned())).chain(ip.map(|ip| Blocked::Ip(host(ip))))
    }

    /// `Err((wait, what))` when `url` or `ip` is blocked.
    ///
    /// # Errors
    /// Over budget: how long to wait and what is blocked, for the sender.
    pub fn check(&self, url: &str, ip: Option<IpAddr>) -> Result<(), (Duration, &'static str)> {
        let blocked = self
            .blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        for key in Self::keys(url, ip) {
            if let Some(until) = blocked.get(&key).filter(|until| **until > now) {
                let what = match key {
                    Blocked::Url(_) => "too many failed signature checks for this webhook URL",
                    Blocked::Ip(_) => "too many failed signature checks from this address",
                };
                return Err((*until - now, what));
            }
        }
        Ok(())
    }

    /// Spends one refusal from `url`'s and `ip`'s budgets, blocking what is now over.
    pub fn record(&self, url: &str, ip: Option<IpAddr>) {
        let clock = DefaultClock::default();
        let mut over = Vec::new();
        if let Some(urls) = &self.urls
            && let Err(not_until) = urls.check_key(&url.to_owned())
        {
            over.push((
                Blocked::Url(url.to_owned()),
                not_until.wait_time_from(clock.now()),
            ));
        }
        if let (Some(ips), Some(ip)) = (&self.ips, ip)
            && let Err(not_until) = ips.check_key(&host(ip))
        {
            over.push((Blocked::Ip(host(ip)), not_until.wait_time_from(clock.now())));
        }
        if over.is_empty() {
            return;
        }
        let mut blocked = self
            .blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if blocked.len() > PRUNE_ABOVE {
            blocked.retain(|_, until| *until > now);
            if let Some(urls) = &self.urls {
                urls.retain_recent();
            }
            if let Some(ips) = &self.ips {
                ips.retain_recent();
            }
        }
        for (key, wait) in over {
            blocked.insert(key, now + wait);
        }
    }
}

/// The address a budget is kept for: an IPv6 client by its /64.
fn host(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from_bits(
                v6.to_bits() & !u128::from(u64::MAX),
            )),
        },
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// Constant-time equality (the length is not hidden).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The headers Helmet sets by default, for a JSON API.
pub struct SecurityHeaders;

#[handler]
#[allow(clippy::unused_async, reason = "salvo handlers are async")]
impl SecurityHeaders {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        ctrl.call_next(req, depot, res).await;
        // The dashboard sets its own policy (its scripts, styles and forms); everything
        // else gets none at all.
        if !res.headers().contains_key("content-security-policy") {
            res.add_header(
                "content-security-policy",
                "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                true,
            )
            .ok();
        }
        for (name, value) in [
            ("cross-origin-opener-policy", "same-origin"),
            ("cross-origin-resource-policy", "same-origin"),
            ("origin-agent-cluster", "?1"),
            ("referrer-policy", "no-referrer"),
            (
                "strict-transport-security",
                "max-age=31536000; includeSubDomains",
            ),
            ("x-content-type-options", "nosniff"),
            ("x-dns-prefetch-control", "off"),
            ("x-download-options", "noopen"),
            ("x-frame-options", "DENY"),
            ("x-permitted-cross-domain-policies", "none"),
            ("x-xss-protection", "0"),
        ] {
            res.add_header(name, value, true).ok();
        }
        res.headers_mut().remove("x-powered-by");
    }
}

/// Bounds how long a request may take.
pub struct Timeout {
    pub state: Arc<HttpState>,
}

#[handler]
#[allow(clippy::unused_async, reason = "salvo handlers are async")]
impl Timeout {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let limit = self.state.protection.request_timeout;
        if tokio::time::timeout(limit, ctrl.call_next(req, depot, res))
            .await
            .is_err()
        {
            tracing::warn!(path = %self.state.logged_path(req), "request timed out");
            res.status_code(StatusCode::SERVICE_UNAVAILABLE);
            res.render(Json(
                serde_json::json!({"error": "the request took too long; retry later"}),
            ));
            ctrl.skip_rest();
        }
    }
}

/// One structured line per request.
pub struct AccessLog {
    pub state: Arc<HttpState>,
}

#[handler]
#[allow(clippy::unused_async, reason = "salvo handlers are async")]
impl AccessLog {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let started = Instant::now();
        ctrl.call_next(req, depot, res).await;
        let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
        let ip = Client::text(depot);
        tracing::info!(
            target: "docobo::access",
            method = %req.method(),
            path = %self.state.logged_path(req),
            status,
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            ip = %ip,
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protection(trusted: &[&str]) -> Protection {
        Protection::new(ProtectionSettings {
            per_minute: 100,
            trusted_proxies: trusted.iter().map(|t| t.parse().expect("net")).collect(),
            bad_signatures_per_url: 3,
            bad_signatures_per_ip: 5,
            metrics_token: Some(SecretString::from("s3cret")),
            ..ProtectionSettings::unlimited(Duration::from_secs(1))
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let direct = protection(&[]);
        assert_eq!(
            direct.client_ip(Some(ip("203.0.113.9")), Some("1.2.3.4")),
            Some(ip("203.0.113.9"))
        );
        let behind = protection(&["127.0.0.1/32", "10.0.0.0/8"]);
        assert_eq!(
            behind.client_ip(Some(ip("127.0.0.1")), Some("1.2.3.4")),
            Some(ip("1.2.3.4"))
        );
        // A client cannot spoof its address by prepending to the header.
        assert_eq!(
            behind.client_ip(Some(ip("127.0.0.1")), Some("6.6.6.6, 1.2.3.4, 10.0.0.5")),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(
            behind.client_ip(Some(ip("127.0.0.1")), None),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            behind.client_ip(Some(ip("127.0.0.1")), Some("junk")),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            behind.client_ip(Some(ip("::ffff:127.0.0.1")), Some("1.2.3.4")),
            Some(ip("1.2.3.4"))
        );
    }

    #[test]
    fn the_rate_limit_allows_the_quota_then_says_when_to_retry() {
        let p = protection(&[]);
        for _ in 0..100 {
            assert!(p.check(ip("1.1.1.1")).is_ok());
        }
        let wait = p.check(ip("1.1.1.1")).expect_err("101st");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            p.check(ip("2.2.2.2")).is_ok(),
            "other clients are unaffected"
        );
        let off = Protection::new(ProtectionSettings::unlimited(Duration::from_secs(1)));
        for _ in 0..1000 {
            assert!(off.check(ip("1.1.1.1")).is_ok());
        }
    }

    #[test]
    fn refused_signatures_block_their_url_and_their_address_and_nothing_else() {
        let p = protection(&[]);
        let budget = &p.failures;
        let attacker = Some(ip("203.0.113.9"));
        for _ in 0..3 {
            assert!(budget.check("key-a", attacker).is_ok());
            budget.record("key-a", attacker);
        }
        assert!(
            budget.check("key-a", attacker).is_ok(),
            "3 refusals are the budget"
        );
        budget.record("key-a", attacker);
        let (wait, what) = budget
            .check("key-a", None)
            .expect_err("the 4th blocks the URL");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(what.contains("webhook URL"), "{what}");
        assert!(
            budget.check("key-b", Some(ip("198.51.100.1"))).is_ok(),
            "other URLs go on"
        );
        // The address has spent 4 of its 5; one more on another URL blocks it everywhere.
        budget.record("key-c", attacker);
        budget.record("key-c", attacker);
        let (_, what) = budget
            .check("key-d", attacker)
            .expect_err("address blocked");
        assert!(what.contains("address"), "{what}");
        // An IPv6 client is one client per /64.
        let v6 = |s: &str| Some(ip(s));
        for _ in 0..6 {
            budget.record("key-e", v6("2001:db8:1:2::1"));
        }
        assert!(budget.check("key-f", v6("2001:db8:1:2:ffff::9")).is_err());
        assert!(budget.check("key-f", v6("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn metrics_need_the_exact_bearer_token_when_one_is_set() {
        let p = protection(&[]);
        assert!(p.metrics_allowed(Some(b"Bearer s3cret")));
        for wrong in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret ",
            b"s3cret",
            b"bearer s3cret",
        ] {
            assert!(!p.metrics_allowed(Some(wrong)));
        }
        assert!(!p.metrics_allowed(None));
        let open = Protection::new(ProtectionSettings::unlimited(Duration::from_secs(1)));
        assert!(open.metrics_allowed(None));
    }
}
