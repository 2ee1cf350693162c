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

use super::HttpState;

/// The protection settings and the rate limiter's state.
pub struct Protection {
    /// `None` when the limit is off.
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trusted_proxies: Vec<ipnet::IpNet>,
    pub request_timeout: Duration,
    /// Requests seen, to prune the limiter's memory now and then.
    seen: AtomicU64,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("rate_limited", &self.limiter.is_some())
            .field("trusted_proxies", &self.trusted_proxies)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl Protection {
    #[must_use]
    pub fn new(
        per_minute: u32,
        trusted_proxies: Vec<ipnet::IpNet>,
        request_timeout: Duration,
    ) -> Self {
        Self {
            limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            trusted_proxies,
            request_timeout,
            seen: AtomicU64::new(0),
        }
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

pub struct RateLimit {
    pub state: Arc<HttpState>,
}

#[handler]
#[allow(clippy::unused_async, reason = "salvo handlers are async")]
impl RateLimit {
    async fn handle(&self, depot: &mut Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
        let Some(ip) = Client::ip(depot) else {
            return;
        };
        if let Err(wait) = self.state.protection.check(ip) {
            self.state.services.metrics.rate_limited.inc();
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            res.status_code(StatusCode::TOO_MANY_REQUESTS);
            res.add_header("retry-after", seconds.max(1).to_string(), true)
                .ok();
            res.render(Json(serde_json::json!({
                "error": "too many requests from this address; retry later"
            })));
            ctrl.skip_rest();
        }
    }
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
        for (name, value) in [
            (
                "content-security-policy",
                "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
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
    pub limit: Duration,
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
        if tokio::time::timeout(self.limit, ctrl.call_next(req, depot, res))
            .await
            .is_err()
        {
            tracing::warn!(path = %redact_path(req.uri().path()), "request timed out");
            res.status_code(StatusCode::SERVICE_UNAVAILABLE);
            res.render(Json(
                serde_json::json!({"error": "the request took too long; retry later"}),
            ));
            ctrl.skip_rest();
        }
    }
}

/// One structured line per request.
pub struct AccessLog;

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
            path = %redact_path(req.uri().path()),
            status,
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            ip = %ip,
            "request"
        );
    }
}

/// The path with a webhook key replaced: the key is a credential.
#[must_use]
pub fn redact_path(path: &str) -> String {
    let mut parts: Vec<&str> = path.split('/').collect();
    // ["", "webhooks", provider, key, …]
    if parts.get(1) == Some(&"webhooks") && parts.len() > 3 {
        for part in parts.iter_mut().skip(3) {
            *part = "***";
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protection(trusted: &[&str]) -> Protection {
        Protection::new(
            100,
            trusted.iter().map(|t| t.parse().expect("net")).collect(),
            Duration::from_secs(1),
        )
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
        let off = Protection::new(0, Vec::new(), Duration::from_secs(1));
        for _ in 0..1000 {
            assert!(off.check(ip("1.1.1.1")).is_ok());
        }
    }

    #[test]
    fn webhook_keys_are_redacted_from_logged_paths() {
        assert_eq!(
            redact_path("/webhooks/polar/abc123secret"),
            "/webhooks/polar/***"
        );
        assert_eq!(redact_path("/webhooks/polar"), "/webhooks/polar");
        assert_eq!(redact_path("/health"), "/health");
    }
}
