//! The shop service: a guild's offer (the roles for sale and their prices) and its provider
//! credentials, saved as one step. `/setup` is one edge that calls it; the dashboard and
//! `/admin` will be others. Everything is checked first (the credentials live with the
//! provider, products created where the provider needs them); then one transaction stores it.

use std::collections::BTreeMap;

use crate::db::paid_roles::{self, NewPaidRole, PaidRole};
use crate::db::{self, DbError, guilds};
use crate::domain::{Billing, Currency, GuildId, Money, ProviderId, RoleId};
use crate::providers::{PluginConfig, PluginInfo, ProductSpec};
use crate::services::Services;

/// What an owner asked for.
#[derive(Clone, Default)]
pub struct ShopDraft {
    /// The provider's id.
    pub provider: String,
    /// The roles for sale, with their names.
    pub roles: Vec<(RoleId, String)>,
    /// The typed price of each role, in order (`4.99 USD monthly`).
    pub prices: Vec<String>,
    /// Credential fields typed (empty or absent: keep the saved value, else the default).
    pub credentials: BTreeMap<String, String>,
}

impl std::fmt::Debug for ShopDraft {
    // Never the credentials' values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopDraft")
            .field("provider", &self.provider)
            .field("roles", &self.roles)
            .field("prices", &self.prices)
            .field("credentials", &self.credentials.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What was saved.
#[derive(Debug, Clone)]
pub struct SavedShop {
    pub provider: ProviderId,
    /// The provider's display name.
    pub provider_name: String,
    pub roles: Vec<NewPaidRole>,
    /// `/webhooks/{provider}/{key}`: the path to paste at the provider, after `public_url`.
    pub webhook_path: String,
    /// Provider event names the owner must enable.
    pub webhook_events: Vec<String>,
}

/// Why nothing was saved. The `Display` text is for the owner; it says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    #[error("{0}")]
    Refused(String),
    #[error("Docobo's database failed ({0}).")]
    Store(#[from] DbError),
}

/// Validates everything with the provider, then stores it in one transaction.
///
/// # Errors
/// [`ShopError::Refused`] with the owner's fix; [`ShopError::Store`].
pub async fn save(
    services: &Services,
    guild: GuildId,
    draft: &ShopDraft,
) -> Result<SavedShop, ShopError> {
    let refuse = |text: String| ShopError::Refused(text);
    let plugin = services
        .providers
        .plugin(&draft.provider)
        .ok_or_else(|| {
            refuse(format!(
                "The provider {} is not loaded any more. Run /setup again.",
                draft.provider
            ))
        })?
        .clone();
    let provider = plugin.id.clone();
    let (existing, saved_roles) = services
        .db
        .read(move |conn| Ok((guilds::get(conn, guild)?, paid_roles::all(conn, guild)?)))
        .await?;
    let same_provider = existing.as_ref().and_then(|g| g.provider.as_ref()) == Some(&provider);
    let saved_config: PluginConfig = existing
        .as_ref()
        .filter(|_| same_provider)
        .and_then(|g| services.accounts.for_guild(g).ok().flatten())
        .map(|(_, config)| config)
        .unwrap_or_default();
    let config = credentials(&plugin, draft, &saved_config)?;
    if let Err(e) = services
        .providers
        .validate_credentials(provider.as_str(), &config)
        .await
    {
        return Err(refuse(format!(
            "{} did not accept these credentials: {e}. Check them at the provider and try again.",
            plugin.name
        )));
    }
    let roles = priced_roles(
        services,
        guild,
        draft,
        &plugin,
        &config,
        if same_provider { &saved_roles } else { &[] },
    )
    .await?;
    let sealed = services.accounts.seal(guild, &config);
    let stored_provider = provider.clone();
    let stored = roles.clone();
    let key = services
        .db
        .call(move |conn| {
            let tx = db::write_transaction(conn)?;
            guilds::upsert_seen(&tx, guild, None, None)?;
            guilds::set_provider(&tx, guild, &stored_provider, &sealed)?;
            for role in &stored {
                paid_roles::upsert(&tx, role)?;
            }
            let keep: Vec<RoleId> = stored.iter().map(|r| r.role_id).collect();
            paid_roles::retire_others(&tx, guild, &keep)?;
            let key = guilds::get(&tx, guild)?
                .map(|g| g.webhook_key)
                .unwrap_or_default();
            tx.commit()?;
            Ok(key)
        })
        .await?;
    Ok(SavedShop {
        webhook_path: format!("/webhooks/{provider}/{key}"),
        provider,
        provider_name: plugin.name.clone(),
        roles,
        webhook_events: plugin.webhook_events.clone(),
    })
}

/// Each credential field: what the owner typed, else the saved value, else the default.
fn credentials(
    plugin: &PluginInfo,
    draft: &ShopDraft,
    saved_config: &PluginConfig,
) -> Result<PluginConfig, ShopError> {
    let mut config = PluginConfig::new();
    let mut missing = Vec::new();
    for field in &plugin.config_fields {
        let typed = draft
            .credentials
            .get(&field.key)
            .filter(|v| !v.is_empty())
            .cloned();
        let saved = saved_config
            .iter()
            .find(|(k, _)| *k == field.key)
            .map(|(_, v)| v.clone());
        match typed.or(saved).or_else(|| field.default_value.clone()) {
            Some(value) => config.push((field.key.clone(), value)),
            None if field.required => missing.push(field.label.clone()),
            None => {}
        }
    }
    if !missing.is_empty() {
        return Err(ShopError::Refused(format!(
            "These fields are required: {}.",
            missing.join(", ")
        )));
    }
    Ok(config)
}

/// The paid roles to store, each with its provider product (kept when the provider, price
/// and billing are unchanged, else created).
async fn priced_roles(
    services: &Services,
    guild: GuildId,
    draft: &ShopDraft,
    plugin: &PluginInfo,
    config: &PluginConfig,
    saved_roles: &[PaidRole],
) -> Result<Vec<NewPaidRole>, ShopError> {
    let refuse = |text: String| ShopError::Refused(text);
    let provider = &plugin.id;
    let mut roles = Vec::new();
    for ((role, name), typed) in draft.roles.iter().zip(&draft.prices) {
        let (price, billing) = parse_price(typed).map_err(refuse)?;
        let saved = saved_roles.iter().find(|p| p.role_id == *role);
        let mut product_ref = None;
        if plugin.needs_products {
            product_ref = saved
                .filter(|p| p.price == price && p.billing == billing)
                .and_then(|p| p.product_ref.clone());
            if product_ref.is_none() {
                let spec = ProductSpec {
                    guild,
                    role: *role,
                    name: name.clone(),
                    price,
                    billing,
                    // Trials are issue 21's (tiers); no role offers one yet.
                    trial_days: None,
                };
                let created = services
                    .providers
                    .create_product(provider.as_str(), config, &spec)
                    .await
                    .map_err(|e| {
                        refuse(format!(
                            "Creating the product for <@&{role}> at {} failed: {e}.",
                            plugin.name
                        ))
                    })?;
                product_ref = Some(created);
            }
        }
        roles.push(NewPaidRole {
            guild_id: guild,
            role_id: *role,
            name: name.clone(),
            price,
            billing,
            product_ref,
        });
    }
    Ok(roles)
}

/// Parses `4.99 USD monthly`, `50000 VND 30 days`, `20 EUR one-time` (billing defaults to
/// monthly). The error says what is wrong and what to write.
pub fn parse_price(text: &str) -> Result<(Money, Billing), String> {
    let mut words = text.split_whitespace();
    let (Some(amount), Some(currency)) = (words.next(), words.next()) else {
        return Err(format!(
            "{text:?}: write the amount, the currency and the billing, e.g. 4.99 USD monthly or 50000 VND 30 days"
        ));
    };
    let currency = Currency::parse(currency).map_err(|e| format!("{text:?}: {e}"))?;
    let price = Money::parse_major(amount, currency).map_err(|e| format!("{text:?}: {e}"))?;
    if price.minor_units() == 0 {
        return Err(format!("{text:?}: the price must be more than zero"));
    }
    let rest: Vec<&str> = words.collect();
    let billing = if rest.is_empty() {
        Billing::Monthly
    } else {
        Billing::parse(&rest.join(" ")).map_err(|e| format!("{text:?}: {e}"))?
    };
    Ok((price, billing))
}
