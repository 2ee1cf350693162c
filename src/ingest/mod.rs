//! The ingest service: a provider's events arrive (a webhook delivery, or a poll that finds
//! what a webhook missed) and are recorded and applied durably, once.
//!
//! - [`Ingest::resolve`] decides whose credentials verify a delivery and whose data it may
//!   touch (its [`Scope`]), before the body is read; recently resolved webhook keys are cached.
//! - [`Ingest::deliver`] runs the provider's plugin on the raw bytes (once more when cached
//!   credentials are refused and the stored ones differ: a `/setup` may just have rotated
//!   them; a forgery costs one run), refuses events with fields too long to store, applies
//!   the events in one transaction ([`apply`]), and wakes role sync.
//! - [`poll`]: the provider poll, on its own schedule.
//! - [`watch`]: who waits for a guild's next delivery (`/setup`'s "Verify now").
//!
//! Nothing here knows HTTP: the edge maps [`IngestError`] to a status once.

pub mod apply;
mod keys;
pub mod poll;
pub mod watch;

use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};

pub use apply::{EventResult, Scope, apply_delivery, record_malformed};
use keys::KeyCache;

use crate::db::{DbError, guilds};
use crate::domain::{ProviderEvent, ProviderId};
use crate::providers::{PluginConfig, ProviderError, WebhookRejection};
use crate::services::Services;

/// Why a delivery was not applied. [`IngestError::public_message`] is what the sender may
/// read; `Display` is the cause, for the log.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no provider named {0:?}")]
    UnknownProvider(String),
    /// No such webhook URL, or it names no usable credentials.
    #[error("{0}")]
    UnknownKey(String),
    /// The signature or its timestamp did not verify.
    #[error("{reason}")]
    BadSignature { scope: Scope, reason: String },
    /// Verified but unreadable (recorded, so its retries are recognised).
    #[error("malformed webhook: {0}")]
    Malformed(String),
    /// The plugin failed (a crash, a timeout, bad configuration): the provider must retry.
    #[error(transparent)]
    Plugin(ProviderError),
    /// The database refused: the provider must retry.
    #[error(transparent)]
    Store(DbError),
    /// The guild's stored credentials cannot be opened.
    #[error(transparent)]
    Credentials(#[from] crate::accounts::CredentialsUnavailable),
}

impl IngestError {
    /// The text the sender of the delivery may see (no cause, no secret).
    #[must_use]
    pub fn public_message(&self) -> String {
        match self {
            Self::UnknownProvider(_) | Self::UnknownKey(_) | Self::Malformed(_) => self.to_string(),
            Self::BadSignature { .. } => "signature verification failed".into(),
            Self::Plugin(_) => "the webhook could not be processed; retry later".into(),
            Self::Store(_) => "internal error; retry later".into(),
            Self::Credentials(_) => "credentials unavailable; retry later".into(),
        }
    }
}

/// A delivery's provider and credentials, resolved before its body is read.
pub struct Source {
    provider: ProviderId,
    key: Option<String>,
    scope: Scope,
    config: PluginConfig,
    /// Whether `config` came from the key cache.
    cached: bool,
}

impl Source {
    /// The guild whose webhook URL the delivery came to (`None`: the operator's URL).
    #[must_use]
    pub fn guild(&self) -> Option<crate::domain::GuildId> {
        match self.scope {
            Scope::Guild(guild) => Some(guild),
            Scope::Operator => None,
        }
    }
}

impl std::fmt::Debug for Source {
    // Never the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("provider", &self.provider)
            .field("scope", &self.scope)
            .field("cached", &self.cached)
            .finish_non_exhaustive()
    }
}

/// What a delivery did.
#[derive(Debug)]
pub struct Delivered {
    /// The outcome of the last new event (`duplicate` when every event was known,
    /// `ignored` when there were none): the metrics label.
    pub outcome: &'static str,
    /// The success body the provider expects, if any (JSON).
    pub ack: Option<String>,
    pub results: Vec<EventResult>,
    /// Every event came from a provider's test mode or an owner's test purchase: counted
    /// apart from real deliveries.
    pub test: bool,
    /// Each event's type, in the order of `results`; gathered only while someone watches
    /// the deliveries ([`watch::DeliveryWatch::watched`]), else empty.
    pub event_types: Vec<String>,
}

/// The ingest service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ingest {
    services: Services,
    keys: Arc<KeyCache>,
}

impl Ingest {
    #[must_use]
    pub fn new(services: Services) -> Self {
        Self {
            services,
            keys: Arc::default(),
        }
    }

    /// Whose credentials verify a delivery to `provider` (and `key`, a guild's webhook key;
    /// `None` for the operator's URL).
    ///
    /// # Errors
    /// An unknown provider or key, or credentials that cannot be read.
    pub async fn resolve(&self, provider: &str, key: Option<&str>) -> Result<Source, IngestError> {
        let Some(plugin) = self.services.providers.plugin(provider) else {
            return Err(IngestError::UnknownProvider(provider.to_owned()));
        };
        self.credentials(plugin.id.clone(), key.map(str::to_owned), true)
            .await
    }

    /// Verifies, records and applies a delivery; wakes role sync when a subscription changed.
    ///
    /// # Errors
    /// See [`IngestError`].
    pub async fn deliver(
        &self,
        source: Source,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Delivered, IngestError> {
        let mut source = source;
        let mut verified = self.run_plugin(&source, headers, body).await;
        let credentials_refused = matches!(
            &verified,
            Err(ProviderError::Webhook {
                error: WebhookRejection::BadSignature(_) | WebhookRejection::Misconfigured(_),
                ..
            })
        );
        if source.cached && credentials_refused {
            // The credentials may have changed in the last second (a /setup that rotated
            // the secret): try once more with what is stored now, but only if it differs
            // from what was just refused, so that a forgery costs one plugin run, not two.
            let stored = self
                .credentials(source.provider.clone(), source.key.clone(), false)
                .await?;
            if stored.config != source.config {
                source = stored;
                verified = self.run_plugin(&source, headers, body).await;
            }
        }
        match verified {
            Ok(events) => match events.iter().try_for_each(ProviderEvent::check_lengths) {
                Ok(()) => self.store(&source, events).await,
                Err(too_long) => Err(self.malformed(&source, body, too_long.to_string()).await),
            },
            Err(ProviderError::Webhook {
                error: WebhookRejection::BadSignature(why) | WebhookRejection::StaleTimestamp(why),
                ..
            }) => {
                let provider = source.provider.as_str();
                let name = self
                    .services
                    .providers
                    .plugin(provider)
                    .map_or(provider, |p| p.name.as_str());
                self.services
                    .alerts
                    .bad_signature(provider, name, source.scope);
                Err(IngestError::BadSignature {
                    scope: source.scope,
                    reason: why,
                })
            }
            Err(ProviderError::Webhook {
                error: WebhookRejection::Malformed(why),
                ..
            }) => Err(self.malformed(&source, body, why).await),
            Err(e) => {
                crate::alerts::plugin_failed(
                    &self.services,
                    source.provider.as_str(),
                    "handle-webhook",
                    source.scope,
                    &e,
                );
                Err(IngestError::Plugin(e))
            }
        }
    }

    /// Counts and reports a database error; the error to return.
    fn store_error(&self, e: DbError) -> IngestError {
        self.services.metrics.db_errors.inc();
        crate::alerts::database_failed(&self.services, &e);
        IngestError::Store(e)
    }

    /// Runs the plugin's `handle-webhook`, timing it.
    async fn run_plugin(
        &self,
        source: &Source,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Vec<ProviderEvent>, ProviderError> {
        let provider = source.provider.as_str();
        let started = Instant::now();
        let verified = self
            .services
            .providers
            .handle_webhook(provider, &source.config, headers, body)
            .await;
        self.services.metrics.plugin_call(
            provider,
            "handle-webhook",
            started.elapsed().as_secs_f64(),
        );
        verified
    }

    /// Records a verified but unreadable delivery (its retries are recognised by the body's
    /// hash); the error to return.
    async fn malformed(&self, source: &Source, body: &[u8], why: String) -> IngestError {
        let digest = hex(&Sha256::digest(body));
        let (message, provider, scope) = (why.clone(), source.provider.clone(), source.scope);
        let recorded = self
            .services
            .db
            .write(move |conn| record_malformed(conn, &provider, scope, &digest, &message))
            .await;
        match recorded {
            Err(e) => return self.store_error(e),
            Ok(false) => {
                tracing::warn!(
                    target: "docobo::security",
                    event = "webhook_replay",
                    provider = %source.provider,
                    scope = %source.scope.key(),
                    "webhook replay: this unreadable delivery was already recorded for these credentials"
                );
                self.services
                    .metrics
                    .webhook_replay(source.provider.as_str());
            }
            Ok(true) => {}
        }
        tracing::warn!(provider = %source.provider, reason = %why, "verified webhook could not be understood");
        IngestError::Malformed(why)
    }

    /// Records and applies the events in one transaction, then wakes role sync.
    async fn store(
        &self,
        source: &Source,
        events: Vec<ProviderEvent>,
    ) -> Result<Delivered, IngestError> {
        let services = &self.services;
        let (provider, scope, now) = (source.provider.clone(), source.scope, services.now());
        let test = !events.is_empty() && events.iter().all(|e| e.test);
        let event_types = if services.deliveries.watched() {
            events.iter().map(|e| e.event_type.clone()).collect()
        } else {
            Vec::new()
        };
        let started = Instant::now();
        let applied = services
            .db
            .write(move |conn| apply_delivery(conn, &provider, scope, &events, now))
            .await;
        services
            .metrics
            .webhook_store_seconds
            .observe(started.elapsed().as_secs_f64());
        let results = applied.map_err(|e| self.store_error(e))?;
        let outcome = log_results(&source.provider, source.scope, &results);
        let replayed = results.iter().filter(|r| r.is_duplicate()).count();
        if replayed > 0 {
            services.metrics.webhook_replay(source.provider.as_str());
        }
        if results.iter().any(|r| r.changed) {
            services.sync.wake();
        }
        for alert in results.iter().filter_map(|r| r.alert.clone()) {
            services.alerts.raise(alert);
        }
        let ack = services
            .providers
            .plugin(source.provider.as_str())
            .and_then(|p| p.webhook_ack.clone());
        Ok(Delivered {
            outcome,
            ack,
            results,
            test,
            event_types,
        })
    }

    /// The credentials that verify a delivery, whose events it may touch, and whether they
    /// came from the key cache (`use_cache`) rather than the database.
    async fn credentials(
        &self,
        provider: ProviderId,
        key: Option<String>,
        use_cache: bool,
    ) -> Result<Source, IngestError> {
        let services = &self.services;
        let Some(key) = key else {
            return services
                .accounts
                .operator(provider.as_str())
                .map(|config| Source {
                    config: config.clone(),
                    provider: provider.clone(),
                    key: None,
                    scope: Scope::Operator,
                    cached: false,
                })
                .ok_or_else(|| {
                    IngestError::UnknownKey(format!(
                        "no operator-level credentials for {provider}; use the URL that /setup printed"
                    ))
                });
        };
        if use_cache {
            if let Some((guild, config)) = self.keys.get(&key, &provider) {
                return Ok(Source {
                    provider,
                    key: Some(key),
                    scope: Scope::Guild(guild),
                    config,
                    cached: true,
                });
            }
        } else {
            // Bypassing the cache means its entry is in doubt: a key that no longer
            // resolves must not be served from it either.
            self.keys.forget(&key);
        }
        let lookup = key.clone();
        let guild = services
            .db
            .read(move |conn| guilds::by_webhook_key(conn, &lookup))
            .await
            .map_err(|e| self.store_error(e))?;
        let Some(guild) = guild.filter(|g| g.provider.as_ref() == Some(&provider)) else {
            return Err(IngestError::UnknownKey(
                "unknown webhook URL; use the URL that /setup printed".into(),
            ));
        };
        let Some((_, config)) = services.accounts.for_guild(&guild)? else {
            return Err(IngestError::UnknownKey(
                "this guild has not connected a provider; run /setup".into(),
            ));
        };
        self.keys.put(key.clone(), &provider, guild.id, &config);
        Ok(Source {
            provider,
            key: Some(key),
            scope: Scope::Guild(guild.id),
            config,
            cached: false,
        })
    }
}

/// Logs each event's outcome; returns the delivery's metrics label. An event already
/// recorded in the scope is a replay: a provider's retry, or someone who holds the
/// credentials sending it again. It is a security event (`docobo::security`), logged with
/// its ids only, never the body or a secret.
fn log_results(provider: &ProviderId, scope: Scope, results: &[EventResult]) -> &'static str {
    let mut outcome = if results.is_empty() {
        "ignored"
    } else {
        "duplicate"
    };
    for result in results {
        let Some(o) = result.outcome else {
            tracing::warn!(
                target: "docobo::security",
                event = "webhook_replay",
                provider = %provider,
                scope = %scope.key(),
                event_id = %result.event_id,
                "webhook replay: this event was already recorded for these credentials; nothing changed"
            );
            continue;
        };
        outcome = o.as_str();
        tracing::info!(
            provider = %provider,
            event_id = %result.event_id,
            outcome = o.as_str(),
            detail = result.detail.as_deref().unwrap_or(""),
            "webhook event"
        );
    }
    outcome
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
