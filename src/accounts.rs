//! `ProviderAccounts`: whose credentials verify a delivery or make a provider call. The only
//! place that opens the provider credentials a guild entered in `/setup` (sealed in
//! `guilds.credentials`), and that holds the operator's `[providers.<id>]` credentials.

use std::collections::BTreeMap;
use std::sync::Arc;

use secrecy::ExposeSecret as _;

use crate::config::Config;
use crate::db::guilds::Guild;
use crate::domain::PluginConfig;
use crate::domain::{GuildId, ProviderId};
use crate::secrets::{CredentialBox, SecretsError};

/// A guild's stored credentials exist but cannot be opened (the key changed, or the row is
/// damaged). The cause is logged where it is found; callers show a generic text.
#[derive(Debug, thiserror::Error)]
#[error("the stored provider credentials of guild {guild} cannot be opened: {source}")]
pub struct CredentialsUnavailable {
    pub guild: GuildId,
    #[source]
    pub source: SecretsError,
}

/// The credentials of every provider account Docobo may use. Cheap to clone.
#[derive(Clone)]
pub struct ProviderAccounts {
    sealer: CredentialBox,
    operator: Arc<BTreeMap<String, PluginConfig>>,
}

impl std::fmt::Debug for ProviderAccounts {
    // Never the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderAccounts")
            .field("operator", &self.operator.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ProviderAccounts {
    #[must_use]
    pub fn new(sealer: CredentialBox, operator: BTreeMap<String, PluginConfig>) -> Self {
        Self {
            sealer,
            operator: Arc::new(operator),
        }
    }

    /// The operator-level accounts of `config` (`[providers.<id>]`).
    #[must_use]
    pub fn from_config(config: &Config, sealer: CredentialBox) -> Self {
        let operator = config
            .providers
            .iter()
            .map(|(id, fields)| {
                let fields = fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
                    .collect();
                (id.clone(), fields)
            })
            .collect();
        Self::new(sealer, operator)
    }

    /// The provider a guild connected and its credentials; `None` when it connected none.
    ///
    /// # Errors
    /// The stored credentials cannot be opened (logged here, once).
    pub fn for_guild(
        &self,
        guild: &Guild,
    ) -> Result<Option<(ProviderId, PluginConfig)>, CredentialsUnavailable> {
        let (Some(provider), Some(blob)) = (&guild.provider, &guild.credentials) else {
            return Ok(None);
        };
        match self.sealer.open(guild.id, blob) {
            Ok(config) => Ok(Some((provider.clone(), config))),
            Err(source) => {
                tracing::error!(guild = guild.id.get(), error = %source, "stored provider credentials cannot be opened");
                Err(CredentialsUnavailable {
                    guild: guild.id,
                    source,
                })
            }
        }
    }

    /// Seals credentials for `guilds.credentials`.
    #[must_use]
    pub fn seal(&self, guild: GuildId, config: &PluginConfig) -> Vec<u8> {
        self.sealer.seal(guild, config)
    }

    /// The operator's credentials for a provider.
    #[must_use]
    pub fn operator(&self, provider: &str) -> Option<&PluginConfig> {
        self.operator.get(provider)
    }

    /// Every operator-level account.
    pub fn operators(&self) -> impl Iterator<Item = (&str, &PluginConfig)> {
        self.operator.iter().map(|(k, v)| (k.as_str(), v))
    }
}
/// The page where members manage their subscription, if the owner gave one in `/setup` (a
/// plugin's `manage_url` field; wit/README.md). Only https links without spaces count.
#[must_use]
pub fn owner_manage_url(config: &PluginConfig) -> Option<String> {
    config
        .iter()
        .find(|(k, _)| k == "manage_url")
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| v.starts_with("https://") && !v.contains(char::is_whitespace))
}
