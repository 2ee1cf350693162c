//! `POST /webhooks/{provider}/{webhook_key}` and `POST /webhooks/{provider}`.
//!
//! Durable first, then a fast reply: the provider's plugin verifies and normalizes the raw
//! bytes; one SQLite transaction records the delivery and applies its events; commit; reply
//! 2xx; wake the role-sync worker. Roles are never changed inside the request.
//!
//! | what | reply |
//! |---|---|
//! | applied, duplicate, stale, ignored, refused, rejected event | 2xx (the plugin's ack body) |
//! | bad signature, stale timestamp | 403, and a `docobo::security` log line |
//! | unknown provider or webhook key | 404 |
//! | body over 1 MiB | 413 |
//! | verified but unreadable | 400, recorded |
//! | plugin crash/timeout, database error, bad stored credentials | 500: the provider retries |

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use salvo::http::ParseError;
use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::protect::Client;
use super::{HttpState, MAX_BODY_BYTES};
use crate::db::guilds;
use crate::domain::{GuildId, ProviderId};
use crate::ingest::{self, Scope};
use crate::providers::{PluginConfig, ProviderError, WebhookRejection, api};

pub struct Webhook {
    pub state: Arc<HttpState>,
}

/// A reply: status and JSON body.
struct Reply {
    status: StatusCode,
    body: serde_json::Value,
    outcome: &'static str,
}

impl Reply {
    fn error(status: StatusCode, outcome: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": message.into() }),
            outcome,
        }
    }
}

#[handler]
impl Webhook {
    async fn handle(&self, req: &mut Request, depot: &mut Depot, res: &mut Response) {
        let started = Instant::now();
        let provider = req.param::<String>("provider").unwrap_or_default();
        let reply = self.process(req, depot, &provider).await;
        let elapsed = started.elapsed();
        self.state.metrics.webhook(&provider, reply.outcome);
        self.state
            .metrics
            .webhook_ack_seconds
            .observe(elapsed.as_secs_f64());
        res.status_code(reply.status);
        if reply.body.is_null() {
            // An empty JSON object, not an empty body: salvo warns about a 2xx without a
            // content type, which would be a warning per delivery.
            res.render(Text::Json("{}"));
            return;
        }
        res.render(Json(reply.body));
    }
}

impl Webhook {
    async fn process(&self, req: &mut Request, depot: &Depot, provider: &str) -> Reply {
        let Some(plugin) = self.state.providers.plugin(provider) else {
            return Reply::error(
                StatusCode::NOT_FOUND,
                "unknown_provider",
                format!("no provider named {provider:?}"),
            );
        };
        let provider_id = plugin.id.clone();
        let ack = plugin.webhook_ack.clone();
        // Refuse oversized bodies before reading them.
        let declared = req
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return too_large();
        }
        let (mut scope, config, cached) = match self.credentials(req, &provider_id, true).await {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let body = match req.payload_with_max_size(MAX_BODY_BYTES).await {
            Ok(body) => body.clone(),
            Err(ParseError::PayloadTooLarge) => return too_large(),
            Err(e) => {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("cannot read the body: {e}"),
                );
            }
        };
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned()))
            })
            .collect();
        let ip = Client::text(depot);
        let mut verified = self
            .run_plugin(&provider_id, &config, &headers, &body)
            .await;
        let credentials_refused = matches!(
            &verified,
            Err(ProviderError::Webhook {
                error: WebhookRejection::BadSignature(_) | WebhookRejection::Misconfigured(_),
                ..
            })
        );
        if cached && credentials_refused {
            // The credentials may have changed in the last second (a /setup that rotated
            // the secret): try once more with what is stored now.
            let (fresh_scope, fresh, _) = match self.credentials(req, &provider_id, false).await {
                Ok(found) => found,
                Err(reply) => return reply,
            };
            scope = fresh_scope;
            verified = self.run_plugin(&provider_id, &fresh, &headers, &body).await;
        }
        match verified {
            Ok(events) => self.store(&provider_id, scope, events, ack).await,
            Err(error) => self.refuse(&provider_id, scope, error, &body, &ip).await,
        }
    }

    /// Runs the plugin's `handle-webhook`, timing it.
    async fn run_plugin(
        &self,
        provider: &ProviderId,
        config: &PluginConfig,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Vec<api::ProviderEvent>, ProviderError> {
        let state = &self.state;
        let started = Instant::now();
        let verified = state
            .providers
            .handle_webhook(provider.as_str(), config, headers, body)
            .await;
        state.metrics.plugin_call(
            provider.as_str(),
            "handle-webhook",
            started.elapsed().as_secs_f64(),
        );
        verified
    }

    /// Maps the plugin's refusal to a reply.
    async fn refuse(
        &self,
        provider: &ProviderId,
        scope: Scope,
        error: ProviderError,
        body: &[u8],
        ip: &str,
    ) -> Reply {
        match error {
            ProviderError::Webhook {
                error: WebhookRejection::BadSignature(why) | WebhookRejection::StaleTimestamp(why),
                ..
            } => {
                tracing::warn!(target: "docobo::security", event = "webhook_rejected", provider = %provider, scope = ?scope, ip = %ip, reason = %why, "webhook signature check failed");
                Reply::error(
                    StatusCode::FORBIDDEN,
                    "bad_signature",
                    "signature verification failed",
                )
            }
            ProviderError::Webhook {
                error: WebhookRejection::Malformed(why),
                ..
            } => self.malformed(provider, scope, body, why).await,
            e => {
                // Misconfigured credentials, a crash or a timeout in the plugin: the
                // provider must retry once it is fixed.
                tracing::error!(provider = %provider, error = %e, "webhook could not be verified");
                Reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "error",
                    "the webhook could not be processed; retry later",
                )
            }
        }
    }

    /// Records a verified but unreadable delivery (its retries are recognised by the body's
    /// hash) and refuses it.
    async fn malformed(
        &self,
        provider: &ProviderId,
        scope: Scope,
        body: &[u8],
        why: String,
    ) -> Reply {
        let digest = hex(&Sha256::digest(body));
        let message = why.clone();
        let pid = provider.clone();
        let recorded = self
            .state
            .db
            .write(move |conn| ingest::record_malformed(conn, &pid, scope, &digest, &message))
            .await;
        if let Err(e) = recorded {
            self.state.metrics.db_errors.inc();
            tracing::error!(provider = %provider, error = %e, "cannot record a malformed webhook");
            return Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "error",
                "internal error; retry later",
            );
        }
        tracing::warn!(provider = %provider, reason = %why, "verified webhook could not be understood");
        Reply::error(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("malformed webhook: {why}"),
        )
    }

    /// Records and applies the events in one transaction, then wakes role sync.
    async fn store(
        &self,
        provider: &ProviderId,
        scope: Scope,
        events: Vec<api::ProviderEvent>,
        ack: Option<String>,
    ) -> Reply {
        let state = &self.state;
        let pid = provider.clone();
        let started = Instant::now();
        let applied = state
            .db
            .write(move |conn| ingest::apply_delivery(conn, &pid, scope, &events))
            .await;
        state
            .metrics
            .webhook_store_seconds
            .observe(started.elapsed().as_secs_f64());
        let results = match applied {
            Ok(results) => results,
            Err(e) => {
                state.metrics.db_errors.inc();
                tracing::error!(provider = %provider, error = %e, "webhook not stored");
                return Reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "error",
                    "internal error; retry later",
                );
            }
        };
        let mut changed = false;
        let mut outcome = if results.is_empty() {
            "ignored"
        } else {
            "duplicate"
        };
        for result in &results {
            changed |= result.changed;
            if let Some(o) = result.outcome {
                outcome = o.as_str();
            }
            tracing::info!(
                provider = %provider,
                event_id = %result.event_id,
                outcome = result.outcome.map_or("duplicate", |o| o.as_str()),
                detail = result.detail.as_deref().unwrap_or(""),
                "webhook event"
            );
        }
        if changed {
            state.role_sync.notify_one();
        }
        match ack {
            Some(body) => Reply {
                status: StatusCode::OK,
                body: serde_json::from_str(&body).unwrap_or_else(|_| json!({})),
                outcome,
            },
            None => Reply {
                status: StatusCode::ACCEPTED,
                body: serde_json::Value::Null,
                outcome,
            },
        }
    }

    /// The credentials that verify this delivery, whose events it may touch, and whether
    /// they came from the [`KeyCache`] (`use_cache`) rather than the database.
    async fn credentials(
        &self,
        req: &Request,
        provider: &ProviderId,
        use_cache: bool,
    ) -> Result<(Scope, PluginConfig, bool), Reply> {
        let state = &self.state;
        let Some(key) = req.param::<String>("webhook_key") else {
            return state
                .operator_credentials
                .get(provider.as_str())
                .map(|config| (Scope::Operator, config.clone(), false))
                .ok_or_else(|| {
                    Reply::error(
                        StatusCode::NOT_FOUND,
                        "unknown_key",
                        format!("no operator-level credentials for {provider}; use the URL that /setup printed"),
                    )
                });
        };
        if use_cache {
            if let Some((scope, config)) = state.keys.get(&key, provider) {
                return Ok((scope, config, true));
            }
        } else {
            // Bypassing the cache means its entry is in doubt: a key that no longer
            // resolves must not be served from it either.
            state.keys.forget(&key);
        }
        let lookup = key.clone();
        let guild = state
            .db
            .read(move |conn| guilds::by_webhook_key(conn, &lookup))
            .await;
        let guild = match guild {
            Ok(Some(guild)) if guild.provider.as_ref() == Some(provider) => guild,
            Ok(_) => {
                return Err(Reply::error(
                    StatusCode::NOT_FOUND,
                    "unknown_key",
                    "unknown webhook URL; use the URL that /setup printed",
                ));
            }
            Err(e) => {
                state.metrics.db_errors.inc();
                tracing::error!(error = %e, "cannot look up a webhook key");
                return Err(Reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "error",
                    "internal error; retry later",
                ));
            }
        };
        let Some(blob) = guild.credentials.as_deref() else {
            return Err(Reply::error(
                StatusCode::NOT_FOUND,
                "unknown_key",
                "this guild has not connected a provider; run /setup",
            ));
        };
        match state.credentials.open(guild.id, blob) {
            Ok(config) => {
                state.keys.put(key, provider, guild.id, &config);
                Ok((Scope::Guild(guild.id), config, false))
            }
            Err(e) => {
                tracing::error!(guild = %guild.id, error = %e, "stored provider credentials cannot be opened");
                Err(Reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "error",
                    "credentials unavailable; retry later",
                ))
            }
        }
    }
}

/// Webhook URLs resolved in the last [`KeyCache::TTL`]: a burst of deliveries to one guild
/// looks its key up and opens its credentials once, not once per request. A delivery that
/// cached credentials do not verify is tried again with the stored ones, so a `/setup` that
/// changes the secret takes effect at once; an entry lives one second, so a guild whose
/// URL stops existing stops being served within a second. Only keys that resolved are
/// kept, so the map is bounded by the number of guilds.
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, CachedKey>>,
}

struct CachedKey {
    at: Instant,
    provider: ProviderId,
    guild: GuildId,
    config: PluginConfig,
}

impl std::fmt::Debug for KeyCache {
    // Never the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache").finish_non_exhaustive()
    }
}

impl KeyCache {
    const TTL: Duration = Duration::from_secs(1);

    fn get(&self, key: &str, provider: &ProviderId) -> Option<(Scope, PluginConfig)> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = entries.get(key)?;
        (hit.at.elapsed() < Self::TTL && hit.provider == *provider)
            .then(|| (Scope::Guild(hit.guild), hit.config.clone()))
    }

    fn forget(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    fn put(&self, key: String, provider: &ProviderId, guild: GuildId, config: &PluginConfig) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, e| e.at.elapsed() < Self::TTL);
        entries.insert(
            key,
            CachedKey {
                at: Instant::now(),
                provider: provider.clone(),
                guild,
                config: config.clone(),
            },
        );
    }
}

fn too_large() -> Reply {
    Reply::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the body exceeds {MAX_BODY_BYTES} bytes"),
    )
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
