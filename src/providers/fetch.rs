//! `http-fetch` for plugins: the only way out of the sandbox.
//!
//! A request goes out only if its host is declared by the plugin AND allowed by the operator
//! (`plugins.allowed_hosts`), over https, to a public address. Loopback over plain http is
//! possible only with the `plugins.allow_loopback_http` test setting. Redirects are followed
//! only within the same host; bodies, calls and time are capped. Host names are resolved by a
//! resolver that refuses private, loopback, link-local and metadata addresses, so DNS cannot
//! point an allowed name at the inside of the network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::bindings::api::{HttpRequest, HttpResponse};

/// The operator's side of the outbound policy.
#[derive(Debug, Clone, Default)]
pub struct FetchPolicy {
    /// Hosts the operator allows plugins to reach (each plugin also has to declare them).
    pub allowed_hosts: Vec<String>,
    /// Allow plain http to `127.0.0.1`, `::1` and `localhost` (for tests against local fakes).
    pub allow_loopback_http: bool,
}

impl FetchPolicy {
    /// The hosts a plugin may reach: those it declares that the operator allows.
    #[must_use]
    pub fn effective_hosts(&self, declared: &[String]) -> Vec<String> {
        declared
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .filter(|h| self.allowed_hosts.iter().any(|a| a.eq_ignore_ascii_case(h)))
            .collect()
    }
}

/// Sends plugin requests.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<FetchPolicy>,
}

/// Caps for one request.
#[derive(Debug, Clone, Copy)]
pub struct FetchCaps {
    pub request_bytes: usize,
    pub response_bytes: usize,
    pub timeout: Duration,
}

impl Fetcher {
    /// # Errors
    /// The TLS backend cannot be initialised.
    pub fn new(policy: FetchPolicy) -> Result<Self, reqwest::Error> {
        let allow_loopback = policy.allow_loopback_http;
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { allow_loopback }))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same_host = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.host_str() == attempt.url().host_str());
                let same_scheme = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.scheme() == attempt.url().scheme());
                if same_host && same_scheme && attempt.previous().len() < 3 {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .no_proxy()
            .user_agent(concat!("docobo/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            policy: Arc::new(policy),
        })
    }

    #[must_use]
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Checks and sends one request for a plugin allowed to reach `hosts`.
    ///
    /// # Errors
    /// A message for the plugin: why the request was refused or failed.
    pub async fn fetch(
        &self,
        hosts: &[String],
        request: HttpRequest,
        caps: FetchCaps,
    ) -> Result<HttpResponse, String> {
        let url = check_url(&request.url, hosts, self.policy.allow_loopback_http)?;
        let method = match request.method.to_ascii_uppercase().as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            "PATCH" => reqwest::Method::PATCH,
            "DELETE" => reqwest::Method::DELETE,
            other => return Err(format!("method {other} is not allowed")),
        };
        let mut builder = self
            .client
            .request(method, url.clone())
            .timeout(caps.timeout);
        for (name, value) in &request.headers {
            if name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case("content-length") {
                continue;
            }
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = request.body {
            if body.len() > caps.request_bytes {
                return Err(format!(
                    "request body of {} bytes exceeds the limit of {} bytes",
                    body.len(),
                    caps.request_bytes
                ));
            }
            builder = builder.body(body);
        }
        let response = builder.send().await.map_err(|e| describe(&e, &url))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        if response
            .content_length()
            .is_some_and(|n| n > caps.response_bytes as u64)
        {
            return Err(format!(
                "response from {} exceeds the limit of {} bytes",
                url.host_str().unwrap_or_default(),
                caps.response_bytes
            ));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| describe(&e, &url))?;
            if body.len() + chunk.len() > caps.response_bytes {
                return Err(format!(
                    "response from {} exceeds the limit of {} bytes",
                    url.host_str().unwrap_or_default(),
                    caps.response_bytes
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// A reqwest error without the URL's query (which may carry tokens).
fn describe(error: &reqwest::Error, url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    if error.is_timeout() {
        format!("request to {host} timed out")
    } else if error.is_connect() {
        format!("cannot connect to {host}: {}", root_cause(error))
    } else {
        format!("request to {host} failed: {}", root_cause(error))
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Whether `host` names this machine.
fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Checks a plugin's URL against the policy.
///
/// # Errors
/// Why the URL is refused, in words a plugin author can act on.
pub fn check_url(
    raw: &str,
    hosts: &[String],
    allow_loopback_http: bool,
) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("invalid URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URLs with credentials (user:pass@) are not allowed".into());
    }
    let host = url.host().ok_or("the URL has no host")?;
    let loopback = is_loopback_host(&host);
    if loopback {
        if allow_loopback_http && matches!(url.scheme(), "http" | "https") {
            return Ok(url);
        }
        return Err("loopback addresses are not allowed".into());
    }
    if url.scheme() != "https" {
        return Err(format!("only https is allowed (got {})", url.scheme()));
    }
    match host {
        url::Host::Ipv4(_) | url::Host::Ipv6(_) => {
            Err("IP addresses are not allowed: use a host name the plugin declares".into())
        }
        url::Host::Domain(domain) => {
            if hosts.iter().any(|h| h.eq_ignore_ascii_case(domain)) {
                Ok(url)
            } else {
                Err(format!(
                    "host {domain} is not allowed: a plugin may reach only hosts it declares \
                     and the operator lists in plugins.allowed_hosts"
                ))
            }
        }
    }
}

/// Resolves names, refusing addresses inside the network.
#[derive(Debug)]
struct GuardedResolver {
    allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| is_public(a.ip()) || (allow_loopback && a.ip().is_loopback()))
                .collect();
            if allowed.is_empty() {
                return Err(
                    format!("{host} resolves only to private or reserved addresses").into(),
                );
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether an address is on the public internet: not loopback, private, link-local (cloud
/// metadata lives at 169.254.169.254), shared (CGNAT), documentation, multicast or reserved.
#[must_use]
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) embeds an IPv4 address.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || segments[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<String> {
        vec!["api.polar.sh".into()]
    }

    #[test]
    fn declared_and_allowed_https_hosts_pass() {
        let url =
            check_url("https://api.polar.sh/v1/checkouts/?x=1", &hosts(), false).expect("allowed");
        assert_eq!(url.host_str(), Some("api.polar.sh"));
        assert!(check_url("https://API.Polar.sh/v1", &hosts(), false).is_ok());
    }

    #[test]
    fn other_hosts_plain_http_credentials_and_ip_literals_are_refused() {
        let cases = [
            ("https://evil.example/", "not allowed"),
            ("http://api.polar.sh/", "only https"),
            ("https://user:pw@api.polar.sh/", "credentials"),
            ("https://93.184.216.34/", "IP addresses"),
            ("https://[2606:4700::1111]/", "IP addresses"),
            ("ftp://api.polar.sh/", "only https"),
            ("not a url", "invalid URL"),
            ("https://api.polar.sh.evil.example/", "not allowed"),
        ];
        for (url, want) in cases {
            let err = check_url(url, &hosts(), false).expect_err(url);
            assert!(err.contains(want), "{url}: {err}");
        }
    }

    #[test]
    fn loopback_in_every_encoding_is_refused_unless_the_test_setting_allows_it() {
        for url in [
            "http://127.0.0.1:8080/",
            "https://127.0.0.1/",
            "http://localhost/",
            "http://LOCALHOST:1/",
            "http://[::1]/",
            "http://2130706433/", // 127.0.0.1 as a decimal integer
            "http://0x7f.0.0.1/", // hex octet
            "http://0177.0.0.1/", // octal octet
            "http://127.1/",      // short form
        ] {
            let err = check_url(url, &hosts(), false).expect_err(url);
            assert!(err.contains("loopback"), "{url}: {err}");
            assert!(
                check_url(url, &hosts(), true).is_ok(),
                "{url} with the test setting"
            );
        }
    }

    #[test]
    fn private_link_local_metadata_and_reserved_addresses_are_not_public() {
        for ip in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254", // cloud metadata
            "100.64.0.1",      // CGNAT
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",        // IPv4-mapped private
            "::ffff:169.254.169.254", // IPv4-mapped metadata
            "64:ff9b::a9fe:a9fe",     // NAT64 of 169.254.169.254
            "::127.0.0.1",            // IPv4-compatible
        ] {
            let addr: IpAddr = ip.parse().expect(ip);
            assert!(!is_public(addr), "{ip} should not be public");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            let addr: IpAddr = ip.parse().expect(ip);
            assert!(is_public(addr), "{ip} should be public");
        }
    }

    #[test]
    fn the_effective_allowlist_is_declared_intersect_allowed() {
        let policy = FetchPolicy {
            allowed_hosts: vec!["api.polar.sh".into(), "my.sepay.vn".into()],
            allow_loopback_http: false,
        };
        let effective =
            policy.effective_hosts(&["API.polar.sh".into(), "sandbox-api.polar.sh".into()]);
        assert_eq!(effective, vec!["api.polar.sh".to_owned()]);
    }
}
