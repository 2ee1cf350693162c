//! The provider poll: asks each provider that supports it for events whose webhook never
//! arrived (Docobo was down, the network dropped it), and applies them exactly as a delivery
//! would be (the same transaction; an event already delivered is a duplicate).
//!
//! Guild cursors are stored in `guilds.settings` (`poll_cursor`), so a restart continues where
//! the last poll stopped; operator-level cursors live in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Scope, apply_delivery};
use crate::db::guilds;
use crate::domain::ProviderId;
use crate::providers::PluginConfig;
use crate::services::Services;

/// The longest poll cursor kept for the next poll, in bytes.
const MAX_CURSOR_BYTES: usize = 1024;

/// The poller. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Poller {
    services: Services,
    /// Operator-level poll cursors.
    operator_cursors: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Poller {
    #[must_use]
    pub fn new(services: Services) -> Self {
        Self {
            services,
            operator_cursors: Arc::default(),
        }
    }

    /// Polls every `interval` (the first time soon after start) until `shutdown`. Its own
    /// task: a slow provider never holds up a role grant.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        let mut next = tokio::time::Instant::now() + Duration::from_secs(5).min(interval);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(next) => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.poll_all() => {}
            }
            next = tokio::time::Instant::now() + interval;
        }
    }

    /// Asks each provider once for events whose webhook never arrived.
    pub async fn poll_all(&self) {
        let services = &self.services;
        let guilds = match services.db.read(guilds::with_provider).await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "poll: database error");
                return;
            }
        };
        let mut changed = false;
        for guild in guilds {
            let Some(provider) = &guild.provider else {
                continue;
            };
            if !self.supports_poll(provider.as_str()) {
                continue;
            }
            let Ok(Some((provider, config))) = services.accounts.for_guild(&guild) else {
                tracing::warn!(
                    guild = guild.id.get(),
                    "poll: cannot open the guild's credentials"
                );
                continue;
            };
            let id = guild.id;
            let cursor = services
                .db
                .read(move |conn| guilds::setting(conn, id, "poll_cursor"))
                .await
                .ok()
                .flatten();
            match self
                .poll_one(&provider, &config, cursor, Scope::Guild(id))
                .await
            {
                Ok((next, any)) => {
                    changed |= any;
                    if let Some(next) = next {
                        let _ = services
                            .db
                            .call(move |conn| guilds::set_setting(conn, id, "poll_cursor", &next))
                            .await;
                    }
                }
                Err(e) => {
                    tracing::warn!(guild = id.get(), provider = %provider, error = %e, "poll failed");
                }
            }
        }
        for (provider, config) in services.accounts.operators() {
            let Ok(id) = ProviderId::parse(provider) else {
                continue;
            };
            if !self.supports_poll(provider) {
                continue;
            }
            let cursor = self
                .operator_cursors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(provider)
                .cloned();
            match self.poll_one(&id, config, cursor, Scope::Operator).await {
                Ok((next, any)) => {
                    changed |= any;
                    if let Some(next) = next {
                        self.operator_cursors
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(provider.to_owned(), next);
                    }
                }
                Err(e) => tracing::warn!(provider = %provider, error = %e, "poll failed"),
            }
        }
        if changed {
            services.sync.wake();
        }
    }

    fn supports_poll(&self, provider: &str) -> bool {
        self.services
            .providers
            .plugin(provider)
            .is_some_and(|p| p.supports_poll)
    }

    async fn poll_one(
        &self,
        provider: &ProviderId,
        config: &PluginConfig,
        cursor: Option<String>,
        scope: Scope,
    ) -> anyhow::Result<(Option<String>, bool)> {
        let services = &self.services;
        let result = services
            .providers
            .poll(provider.as_str(), config, cursor.as_deref())
            .await
            .inspect_err(|e| {
                crate::alerts::plugin_failed(services, provider.as_str(), "poll", scope, e);
            })?;
        if let Some(cursor) = &result.next_cursor {
            crate::domain::check_length("next_cursor", cursor, MAX_CURSOR_BYTES)?;
        }
        // An event with a field too long to store is left out (and logged), not the poll.
        let mut events = result.events;
        events.retain(|event| match event.check_lengths() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(provider = %provider, error = %e, "polled event refused");
                false
            }
        });
        if events.is_empty() {
            return Ok((result.next_cursor, false));
        }
        let (provider_id, now) = (provider.clone(), services.now());
        let outcomes = services
            .db
            .write(move |conn| apply_delivery(conn, &provider_id, scope, &events, now))
            .await?;
        for alert in outcomes.iter().filter_map(|o| o.alert.clone()) {
            services.alerts.raise(alert);
        }
        let applied = outcomes.iter().filter(|o| o.changed).count();
        if applied > 0 {
            tracing::info!(provider = %provider, applied, "poll found events a webhook missed");
        }
        Ok((result.next_cursor, applied > 0))
    }
}
