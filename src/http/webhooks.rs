//! `POST /webhooks/{provider}/{webhook_key}` and `POST /webhooks/{provider}`: the HTTP edge
//! of the ingest service ([`crate::ingest`]). It reads the request, calls the service and maps
//! the one [`WebhookError`] to a status and a metrics label.
//!
//! | what | reply |
//! |---|---|
//! | applied, duplicate, stale, ignored, refused, rejected event | 2xx (the plugin's ack body) |
//! | bad signature, stale timestamp | 403, and a `docobo::security` log line |
//! | the URL's or the client's budget of refused signatures is spent | 429, unchecked |
//! | unknown provider or webhook key | 404 |
//! | body over 1 MiB | 413 |
//! | body slower than `server.body_timeout_ms` | 408 |
//! | verified but unreadable, or a field too long to store | 400, recorded |
//! | plugin crash/timeout, database error, bad stored credentials | 500: the provider retries |

use std::sync::Arc;
use std::time::{Duration, Instant};

use salvo::http::ParseError;
use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::json;

use super::protect::{Client, too_many};
use super::{HttpState, MAX_BODY_BYTES};
use crate::ingest::{Delivered, IngestError};

pub struct Webhook {
    pub state: Arc<HttpState>,
}

/// Why a delivery got no 2xx.
#[derive(Debug, thiserror::Error)]
enum WebhookError {
    #[error("the body exceeds {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("cannot read the body: {0}")]
    BadRequest(String),
    #[error("the body did not arrive within {0:?}")]
    SlowBody(Duration),
    /// Over a budget of refused signatures: wait this long.
    #[error("{1}; retry later")]
    Throttled(Duration, &'static str),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl WebhookError {
    fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::SlowBody(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Throttled(..) => StatusCode::TOO_MANY_REQUESTS,
            Self::BadRequest(_) | Self::Ingest(IngestError::Malformed(_)) => {
                StatusCode::BAD_REQUEST
            }
            Self::Ingest(IngestError::UnknownProvider(_) | IngestError::UnknownKey(_)) => {
                StatusCode::NOT_FOUND
            }
            Self::Ingest(IngestError::BadSignature { .. }) => StatusCode::FORBIDDEN,
            Self::Ingest(
                IngestError::Plugin(_) | IngestError::Store(_) | IngestError::Credentials(_),
            ) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The metrics label.
    fn outcome(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::BadRequest(_) => "bad_request",
            Self::SlowBody(_) => "slow_body",
            Self::Throttled(..) => "throttled",
            Self::Ingest(e) => match e {
                IngestError::UnknownProvider(_) => "unknown_provider",
                IngestError::UnknownKey(_) => "unknown_key",
                IngestError::BadSignature { .. } => "bad_signature",
                IngestError::Malformed(_) => "malformed",
                IngestError::Plugin(_) | IngestError::Store(_) | IngestError::Credentials(_) => {
                    "error"
                }
            },
        }
    }

    /// What the sender reads.
    fn message(&self) -> String {
        match self {
            Self::Ingest(e) => e.public_message(),
            e => e.to_string(),
        }
    }

    /// The one log line for this refusal (causes only here, never the body or a secret).
    fn log(&self, provider: &str, ip: &str) {
        match self {
            Self::Ingest(IngestError::BadSignature { scope, reason }) => {
                tracing::warn!(target: "docobo::security", event = "webhook_rejected", provider = %provider, scope = ?scope, ip = %ip, reason = %reason, "webhook signature check failed");
            }
            Self::Ingest(IngestError::Plugin(e)) => {
                tracing::error!(provider = %provider, error = %e, "webhook could not be verified");
            }
            Self::Ingest(IngestError::Store(e)) => {
                tracing::error!(provider = %provider, error = %e, "webhook not stored");
            }
            // Logged where it was found ([`crate::accounts`]); the rest are the sender's.
            _ => {}
        }
    }
}

impl Webhook {
    /// Handles a delivery to `provider` (and `key`, a guild's webhook key), as routed.
    pub async fn handle(
        &self,
        req: &mut Request,
        depot: &Depot,
        res: &mut Response,
        provider: String,
        key: Option<String>,
    ) {
        let started = Instant::now();
        let ip = Client::ip(depot);
        let (status, body, outcome) = match self.process(req, ip, &provider, key).await {
            Ok(delivered) => {
                let (status, body) = ack(&delivered);
                // Test deliveries are counted apart from real ones.
                let outcome = if delivered.test {
                    "test"
                } else {
                    delivered.outcome
                };
                (status, body, outcome)
            }
            Err(WebhookError::Throttled(wait, what)) => {
                self.count(&provider, "throttled", started);
                too_many(res, wait, &format!("{what}; retry later"));
                return;
            }
            Err(e) => {
                e.log(&provider, &Client::text(depot));
                (e.status(), json!({ "error": e.message() }), e.outcome())
            }
        };
        self.count(&provider, outcome, started);
        res.status_code(status);
        if body.is_null() {
            // An empty JSON object, not an empty body: salvo warns about a 2xx without a
            // content type, which would be a warning per delivery.
            res.render(Text::Json("{}"));
            return;
        }
        res.render(Json(body));
    }

    /// Counts the delivery. Labels are only ever a loaded provider's id (anything else is
    /// `unknown`) and one of a fixed set of outcomes, so garbage cannot grow `/metrics`.
    fn count(&self, provider: &str, outcome: &'static str, started: Instant) {
        let metrics = &self.state.services.metrics;
        let known = self.state.services.providers.plugin(provider).is_some();
        metrics.webhook(if known { provider } else { "unknown" }, outcome);
        // A delivery the plugin verified says the provider is alive; a 500 counts toward
        // the error rate.
        let verified = matches!(
            outcome,
            "applied" | "duplicate" | "ignored" | "stale" | "refused" | "rejected" | "malformed"
        );
        self.state.services.alerts.delivery(
            known.then_some(provider),
            outcome == "error",
            verified,
        );
        metrics
            .webhook_ack_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    async fn process(
        &self,
        req: &mut Request,
        ip: Option<std::net::IpAddr>,
        provider: &str,
        key: Option<String>,
    ) -> Result<Delivered, WebhookError> {
        let ingest = &self.state.ingest;
        let protection = &self.state.protection;
        if self.state.services.providers.plugin(provider).is_none() {
            return Err(IngestError::UnknownProvider(provider.to_owned()).into());
        }
        // Refuse oversized bodies before reading them.
        let declared = req
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(WebhookError::TooLarge);
        }
        let source = ingest.resolve(provider, key.as_deref()).await?;
        // The budget of refused signatures, before the body is read or the plugin runs.
        let url = budget_key(provider, key.as_deref());
        protection
            .failures
            .check(&url, ip)
            .map_err(|(wait, what)| WebhookError::Throttled(wait, what))?;
        let limit = protection.body_timeout;
        let body =
            match tokio::time::timeout(limit, req.payload_with_max_size(MAX_BODY_BYTES)).await {
                Err(_) => return Err(WebhookError::SlowBody(limit)),
                Ok(Ok(body)) => body.clone(),
                Ok(Err(ParseError::PayloadTooLarge)) => return Err(WebhookError::TooLarge),
                Ok(Err(e)) => return Err(WebhookError::BadRequest(e.to_string())),
            };
        // Every line of a repeated header is passed, in order (the plugin decides what a
        // repeat means: Polar accepts a signature on any `webhook-signature` line).
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned()))
            })
            .collect();
        let guild = source.guild();
        let delivered = ingest.deliver(source, &headers, &body).await;
        self.state.services.deliveries.publish(guild, &delivered);
        if matches!(delivered, Err(IngestError::BadSignature { .. })) {
            protection.failures.record(&url, ip);
        }
        Ok(delivered?)
    }
}

/// What a webhook URL's budget is kept under (never logged: it holds the key).
fn budget_key(provider: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("guild:{key}"),
        None => format!("operator:{provider}"),
    }
}

/// The success reply: the plugin's ack body, or an empty 202.
fn ack(delivered: &Delivered) -> (StatusCode, serde_json::Value) {
    match &delivered.ack {
        Some(body) => (
            StatusCode::OK,
            serde_json::from_str(body).unwrap_or_else(|_| json!({})),
        ),
        None => (StatusCode::ACCEPTED, serde_json::Value::Null),
    }
}
