//! Fault injection for the fake's REST API: per-route rules that answer with a Discord error,
//! a 429 with `retry_after` and the rate-limit headers, a delay, or a dropped connection.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::payloads::ApiError;

/// What to do to a matching request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer with this status and Discord error body instead of handling the request.
    Error(ApiError),
    /// Answer 429 with `{"message", "retry_after", "global"}`, `Retry-After` and the
    /// `X-RateLimit-*` headers.
    RateLimited {
        /// Seconds, as Discord sends it (a float).
        retry_after: f64,
        global: bool,
    },
    /// Wait, then handle the request normally (or apply the next matching rule).
    Delay(Duration),
    /// Close the TCP connection without answering.
    DropConnection,
}

impl Fault {
    /// An error reply: `status` with `{"message": message, "code": code}`.
    #[must_use]
    pub fn error(status: u16, code: i64, message: &str) -> Self {
        Self::Error(ApiError::new(status, code, message))
    }

    /// A per-route (`user` scope) 429.
    #[must_use]
    pub fn rate_limited(retry_after_secs: f64) -> Self {
        Self::RateLimited {
            retry_after: retry_after_secs,
            global: false,
        }
    }

    #[must_use]
    pub fn delay(duration: Duration) -> Self {
        Self::Delay(duration)
    }

    #[must_use]
    pub fn drop_connection() -> Self {
        Self::DropConnection
    }
}

/// A fault bound to requests matching a method and a path pattern.
///
/// The pattern is a path below `/api/v10` whose segments are literal, `*` or an `OpenAPI`-style
/// `{name}` (both match any one segment): `/guilds/*/members/{user_id}/roles/*`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    method: Option<String>,
    pattern: Vec<String>,
    pub(crate) fault: Fault,
    /// How many more requests this rule applies to; `None` is forever.
    remaining: Option<u32>,
}

impl FaultRule {
    /// `method` is an HTTP method or `*` for any. Applies to every matching request until
    /// limited with [`FaultRule::times`].
    #[must_use]
    pub fn new(method: &str, path_pattern: &str, fault: Fault) -> Self {
        Self {
            method: (method != "*").then(|| method.to_ascii_uppercase()),
            pattern: split(path_pattern),
            fault,
            remaining: None,
        }
    }

    /// Applies to the next `n` matching requests only.
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    /// Applies to the next matching request only.
    #[must_use]
    pub fn once(self) -> Self {
        self.times(1)
    }

    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        if self.remaining == Some(0) {
            return false;
        }
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        let parts = split(path);
        parts.len() == self.pattern.len()
            && self
                .pattern
                .iter()
                .zip(&parts)
                .all(|(p, s)| p == "*" || (p.starts_with('{') && p.ends_with('}')) || p == s)
    }

    /// Uses up one application of the rule.
    pub(crate) fn consume(&mut self) {
        if let Some(n) = &mut self.remaining {
            *n = n.saturating_sub(1);
        }
    }

    pub(crate) fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }
}

fn split(path: &str) -> Vec<String> {
    path.trim_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect()
}

/// The status, headers and body of a 429 as Discord sends it.
pub(crate) fn rate_limit_response(
    retry_after: f64,
    global: bool,
) -> (u16, Vec<(String, String)>, serde_json::Value) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let scope = if global { "global" } else { "user" };
    let mut headers = vec![
        ("Retry-After".to_owned(), format!("{}", retry_after.ceil())),
        ("X-RateLimit-Limit".to_owned(), "10".to_owned()),
        ("X-RateLimit-Remaining".to_owned(), "0".to_owned()),
        (
            "X-RateLimit-Reset".to_owned(),
            format!("{:.3}", now + retry_after),
        ),
        (
            "X-RateLimit-Reset-After".to_owned(),
            format!("{retry_after:.3}"),
        ),
        ("X-RateLimit-Bucket".to_owned(), "fake-bucket".to_owned()),
        ("X-RateLimit-Scope".to_owned(), scope.to_owned()),
    ];
    if global {
        headers.push(("X-RateLimit-Global".to_owned(), "true".to_owned()));
    }
    let body = json!({
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": global,
    });
    (429, headers, body)
}

#[cfg(test)]
mod tests {
    use super::{Fault, FaultRule};

    #[test]
    fn patterns_match_one_segment_per_wildcard() {
        let rule = FaultRule::new(
            "PUT",
            "/guilds/*/members/{user_id}/roles/*",
            Fault::drop_connection(),
        );
        assert!(rule.matches("PUT", "/guilds/1/members/2/roles/3"));
        assert!(!rule.matches("DELETE", "/guilds/1/members/2/roles/3"));
        assert!(!rule.matches("PUT", "/guilds/1/members/2"));
        let any = FaultRule::new("*", "/gateway", Fault::drop_connection()).once();
        assert!(any.matches("GET", "/gateway"));
    }

    #[test]
    fn limited_rules_run_out() {
        let mut rule = FaultRule::new("GET", "/users/@me", Fault::rate_limited(1.0)).times(2);
        rule.consume();
        assert!(rule.matches("GET", "/users/@me"));
        rule.consume();
        assert!(rule.exhausted());
        assert!(!rule.matches("GET", "/users/@me"));
    }
}
