//! Webhook URLs resolved in the last [`KeyCache::TTL`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::{GuildId, ProviderId};
use crate::providers::PluginConfig;

/// A burst of deliveries to one guild looks its key up and opens its credentials once, not
/// once per request. A delivery that cached credentials do not verify is tried again with the
/// stored ones when they differ (a `/setup` changed the secret: it takes effect at once; a
/// forgery against unchanged credentials runs the plugin once, not twice); an entry lives one
/// second, so a guild whose URL stops existing stops being served within a second. Only keys
/// that resolved are kept, so the map is bounded by the number of guilds.
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

    pub(super) fn get(&self, key: &str, provider: &ProviderId) -> Option<(GuildId, PluginConfig)> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = entries.get(key)?;
        (hit.at.elapsed() < Self::TTL && hit.provider == *provider)
            .then(|| (hit.guild, hit.config.clone()))
    }

    pub(super) fn forget(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    pub(super) fn put(
        &self,
        key: String,
        provider: &ProviderId,
        guild: GuildId,
        config: &PluginConfig,
    ) {
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
