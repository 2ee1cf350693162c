//! What the dashboard's pages show, read from the store (no HTTP or template types here, so
//! that other edges can reuse it).

use std::collections::{BTreeMap, BTreeSet};

use crate::db::{DbError, guilds, paid_roles, subscriptions};
use crate::discord::ui::price_text;
use crate::domain::{GuildId, UserId};
use crate::services::Services;

/// One guild in the operator's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuildLine {
    pub id: u64,
    pub name: String,
    pub provider: String,
    /// Members entitled to at least one paid role now (test purchases left out).
    pub active: usize,
}

/// One paid role on a guild's overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleLine {
    pub name: String,
    pub price: String,
    pub for_sale: bool,
    pub active: usize,
}

/// A guild's overview page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    pub id: u64,
    pub name: String,
    pub provider: String,
    pub active: usize,
    pub roles: Vec<RoleLine>,
}

/// Members entitled now, per paid role row id and overall.
fn entitled(
    subs: &[subscriptions::Subscription],
    now: i64,
    grace_ms: i64,
) -> (BTreeMap<i64, BTreeSet<UserId>>, BTreeSet<UserId>) {
    let mut per_role: BTreeMap<i64, BTreeSet<UserId>> = BTreeMap::new();
    let mut all = BTreeSet::new();
    for sub in subs.iter().filter(|s| s.is_entitled(now, grace_ms)) {
        per_role
            .entry(sub.paid_role_id)
            .or_default()
            .insert(sub.user_id);
        all.insert(sub.user_id);
    }
    (per_role, all)
}

fn provider_name(guild: &guilds::Guild) -> String {
    guild
        .provider
        .as_ref()
        .map_or_else(|| "none yet".to_owned(), |p| p.as_str().to_owned())
}

/// The guild's overview, or `None` for a guild Docobo does not know.
///
/// # Errors
/// The store cannot be read.
pub async fn overview(services: &Services, guild: GuildId) -> Result<Option<Overview>, DbError> {
    let now = services.now();
    let grace = services.grace_ms;
    services
        .db
        .read(move |conn| {
            let Some(row) = guilds::get(conn, guild)? else {
                return Ok(None);
            };
            let subs = subscriptions::for_guild(conn, guild)?;
            let (per_role, all) = entitled(&subs, now, grace);
            let on_sale: BTreeSet<i64> = paid_roles::for_sale(conn, guild)?
                .into_iter()
                .map(|r| r.id)
                .collect();
            let roles = paid_roles::all(conn, guild)?
                .into_iter()
                .map(|r| RoleLine {
                    price: price_text(r.price, r.billing),
                    for_sale: on_sale.contains(&r.id),
                    active: per_role.get(&r.id).map_or(0, BTreeSet::len),
                    name: if r.name.is_empty() {
                        format!("role {}", r.role_id.get())
                    } else {
                        r.name
                    },
                })
                .collect();
            Ok(Some(Overview {
                id: row.id.get(),
                provider: provider_name(&row),
                name: row.name,
                active: all.len(),
                roles,
            }))
        })
        .await
}

/// Every guild, for the operator.
///
/// # Errors
/// The store cannot be read.
pub async fn guilds(services: &Services) -> Result<Vec<GuildLine>, DbError> {
    let now = services.now();
    let grace = services.grace_ms;
    services
        .db
        .read(move |conn| {
            guilds::all(conn)?
                .into_iter()
                .map(|g| {
                    let subs = subscriptions::for_guild(conn, g.id)?;
                    let (_, all) = entitled(&subs, now, grace);
                    Ok(GuildLine {
                        id: g.id.get(),
                        provider: provider_name(&g),
                        name: g.name,
                        active: all.len(),
                    })
                })
                .collect()
        })
        .await
}

/// The guild's name, for the login page.
///
/// # Errors
/// The store cannot be read.
pub async fn guild_name(services: &Services, guild: GuildId) -> Result<Option<String>, DbError> {
    services
        .db
        .read(move |conn| Ok(guilds::get(conn, guild)?.map(|g| g.name)))
        .await
}
