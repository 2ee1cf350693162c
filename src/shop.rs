//! The shop service: a guild's offer (the roles for sale and their prices) and its provider
//! credentials, saved as one step. `/setup` is one edge that calls it; the dashboard and
//! `/admin` will be others. Everything is checked first (the credentials live with the
//! provider, products created where the provider needs them); then one transaction stores it.
//!
//! Two rules come from the plugin, not from the host: the currencies the provider takes
//! ([`currency_refusal`]), and which credential fields say what account the products live in
//! (a change there creates the products again: [`account_fingerprint`]).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

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
    if let Some(problem) = currency_refusal(&plugin, &draft.roles, &draft.prices) {
        return Err(refuse(problem));
    }
    let provider = plugin.id.clone();
    let (existing, saved_roles, saved_account) = services
        .db
        .read(move |conn| {
            Ok((
                guilds::get(conn, guild)?,
                paid_roles::all(conn, guild)?,
                guilds::setting(conn, guild, ACCOUNT_SETTING)?,
            ))
        })
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
    // Products are kept only in the same account at the same provider: a sandbox product
    // does not sell in production. A guild saved before the fingerprint existed gets new ones.
    let account = account_fingerprint(&plugin, &config);
    let same_account = same_provider && saved_account.as_deref() == Some(account.as_str());
    let roles = priced_roles(
        services,
        guild,
        draft,
        &plugin,
        &config,
        if same_account { &saved_roles } else { &[] },
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
            guilds::set_setting(&tx, guild, ACCOUNT_SETTING, &account)?;
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

/// The guild setting that holds [`account_fingerprint`] of the saved credentials.
const ACCOUNT_SETTING: &str = "product_account";

/// Which account at the provider `config` reaches, as a hash: the provider's id and the
/// fields the plugin marks `identifies-account` (every field when it marks none), so that a
/// new token, environment or organization is told apart from a rotated webhook secret. Only
/// the hash is stored, never a value; the values hashed include secrets, which are long and
/// random, so the hash does not give them away.
#[must_use]
pub fn account_fingerprint(plugin: &PluginInfo, config: &PluginConfig) -> String {
    let marked = plugin.config_fields.iter().any(|f| f.identifies_account);
    let mut hash = Sha256::new();
    hash.update(b"docobo product account v1\0");
    hash.update(plugin.id.as_str().as_bytes());
    for field in &plugin.config_fields {
        if marked && !field.identifies_account {
            continue;
        }
        let value = config
            .iter()
            .find(|(k, _)| *k == field.key)
            .map_or("", |(_, v)| v.as_str());
        // Length-prefixed, so that no two configurations hash the same bytes.
        for part in [field.key.as_str(), value] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
    }
    crate::domain::hex(&hash.finalize()[..16])
}

/// The owner's fix when a price is in a currency the provider does not take (the plugin's
/// `currencies`; none listed: any); `None` when every price is fine. Prices that do not parse
/// are left to [`parse_price`]'s own message.
#[must_use]
pub fn currency_refusal(
    plugin: &PluginInfo,
    roles: &[(RoleId, String)],
    prices: &[String],
) -> Option<String> {
    if plugin.currencies.is_empty() {
        return None;
    }
    let wrong: Vec<String> = roles
        .iter()
        .zip(prices)
        .filter_map(|((role, _), typed)| {
            let (price, _) = parse_price(typed).ok()?;
            (!plugin.currencies.contains(&price.currency()))
                .then(|| format!("- <@&{role}>: {typed}"))
        })
        .collect();
    if wrong.is_empty() {
        return None;
    }
    let takes: Vec<&str> = plugin.currencies.iter().map(Currency::as_str).collect();
    let takes = match takes.as_slice() {
        [one] => format!("{one} only"),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
        [] => String::new(),
    };
    Some(format!(
        "{} takes prices in {takes}. These are not:\n{}\n\nFix: price them in {takes_short}, or pick another provider.",
        plugin.name,
        wrong.join("\n"),
        takes_short = takes.trim_end_matches(" only"),
    ))
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
