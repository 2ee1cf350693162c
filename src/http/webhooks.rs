//! `POST /webhooks/{provider}/{webhook_key}` and `POST /webhooks/{provider}`: the HTTP edge
//! of the ingest service ([`crate::ingest`]). It reads the request, calls the service and maps
//! the one [`WebhookError`] to a status and a metrics label.
//!
//! | what | reply |
//! |---|---|
//! | applied, duplicate, stale, ignored, refused, rejected event | 2xx (the plugin's ack body) |
//! | bad signature, stale timestamp | 403, and a `docobo::security` log line |
//! | unknown provider or webhook key | 404 |
//! | body over 1 MiB | 413 |
//! | verified but unreadable | 400, recorded |
//! | plugin crash/timeout, database error, bad stored credentials | 500: the provider retries |

use std::sync::Arc;
use std::time::Instant;

use salvo::http::ParseError;
use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::json;

use super::protect::Client;
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
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl WebhookError {
    fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
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

#[handler]
impl Webhook {
    async fn handle(&self, req: &mut Request, depot: &mut Depot, res: &mut Response) {
        let started = Instant::now();
        let provider = req.param::<String>("provider").unwrap_or_default();
        let (status, body, outcome) = match self.process(req, &provider).await {
            Ok(delivered) => {
                let (status, body) = ack(&delivered);
                (status, body, delivered.outcome)
            }
            Err(e) => {
                e.log(&provider, &Client::text(depot));
                (e.status(), json!({ "error": e.message() }), e.outcome())
            }
        };
        self.state.services.metrics.webhook(&provider, outcome);
        self.state
            .services
            .metrics
            .webhook_ack_seconds
            .observe(started.elapsed().as_secs_f64());
        res.status_code(status);
        if body.is_null() {
            // An empty JSON object, not an empty body: salvo warns about a 2xx without a
            // content type, which would be a warning per delivery.
            res.render(Text::Json("{}"));
            return;
        }
        res.render(Json(body));
    }
}

impl Webhook {
    async fn process(&self, req: &mut Request, provider: &str) -> Result<Delivered, WebhookError> {
        let ingest = &self.state.ingest;
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
        let key = req.param::<String>("webhook_key");
        let source = ingest.resolve(provider, key.as_deref()).await?;
        let body = match req.payload_with_max_size(MAX_BODY_BYTES).await {
            Ok(body) => body.clone(),
            Err(ParseError::PayloadTooLarge) => return Err(WebhookError::TooLarge),
            Err(e) => return Err(WebhookError::BadRequest(e.to_string())),
        };
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned()))
            })
            .collect();
        Ok(ingest.deliver(source, &headers, &body).await?)
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
