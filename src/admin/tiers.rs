//! `tier`: what a tier gives and what its end does (issue 21, items 1, 4 and 6). A paid role
//! `/setup` sells is a tier; here the owner adds roles it gives besides its own, a trial
//! role given on top while trialing, and whether the end of access kicks the member.
//!
//! Every change makes the tier's holdings due, so role sync gives the new roles to the
//! members who hold the tier (and takes away a role taken out of it, unless another tier
//! they hold gives it) within seconds.

use rusqlite::Connection;
use serde_json::json;

use super::{Actor, AdminError, Done, audit, not_sold};
use crate::db::tiers::{self, Tier};
use crate::db::{DbError, paid_roles, subscriptions};
use crate::domain::{GuildId, RoleId, UnixMillis};
use crate::services::Services;

/// The most roles one tier gives (its own included): a sync makes one Discord call per role.
pub const MAX_ROLES: usize = 10;

/// What `/admin tier` changes; all `None`/`false` shows the tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierEdit {
    pub add_role: Option<RoleId>,
    pub remove_role: Option<RoleId>,
    /// `Some(None)` clears the trial role.
    pub trial_role: Option<Option<RoleId>>,
    /// `Some(true)`: kick when access ends; `Some(false)`: remove the roles.
    pub kick: Option<bool>,
}

impl TierEdit {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `tier`: applies `edit` to the tier sold as `tier` (or describes it), then makes its
/// holdings due.
///
/// # Errors
/// [`AdminError::Refused`] for a role the guild does not sell or an edit that cannot be.
pub async fn edit(
    services: &Services,
    guild: GuildId,
    actor: Actor,
    tier: RoleId,
    edit: TierEdit,
) -> Result<Done, AdminError> {
    let now = services.now();
    let done = services
        .db
        .write(move |conn| edit_in(conn, guild, actor, tier, edit, now))
        .await??;
    services.sync.wake();
    Ok(done)
}

fn edit_in(
    conn: &Connection,
    guild: GuildId,
    actor: Actor,
    role: RoleId,
    edit: TierEdit,
    now: UnixMillis,
) -> Result<Result<Done, AdminError>, DbError> {
    let Some(paid) = paid_roles::get(conn, guild, role)? else {
        return Ok(Err(not_sold(role)));
    };
    let Some(before) = tiers::get(conn, paid.id)? else {
        return Ok(Err(not_sold(role)));
    };
    if edit.is_empty() {
        return Ok(Ok(Done {
            reply: describe(&before),
            log: String::new(),
        }));
    }
    let everyone = RoleId::new(guild.get()).ok();
    for r in [edit.add_role, edit.trial_role.flatten()]
        .into_iter()
        .flatten()
    {
        if Some(r) == everyone {
            return Ok(Err(AdminError::refused(
                "@everyone cannot be given: pick a role members do not all have.",
            )));
        }
    }
    if let Some(add) = edit.add_role {
        if add == before.role || before.extra.contains(&add) {
            return Ok(Err(AdminError::refused(format!(
                "<@&{role}> already gives <@&{add}>."
            ))));
        }
        if before.roles().len() >= MAX_ROLES {
            return Ok(Err(AdminError::refused(format!(
                "<@&{role}> gives {MAX_ROLES} roles already, the most a tier can. Fix: take one out first (`remove_role`)."
            ))));
        }
        tiers::add_role(conn, paid.id, add)?;
    }
    if let Some(remove) = edit.remove_role {
        if remove == before.role {
            return Ok(Err(AdminError::refused(format!(
                "<@&{role}> is the tier's own role and cannot be taken out of it. To stop selling the tier, run /setup and leave the role out (members keep it)."
            ))));
        }
        if !tiers::remove_role(conn, paid.id, remove)? {
            return Ok(Err(AdminError::refused(format!(
                "<@&{role}> does not give <@&{remove}>: nothing to take out."
            ))));
        }
    }
    if let Some(trial) = edit.trial_role {
        if trial.is_some_and(|t| before.roles().contains(&t) || edit.add_role == Some(t)) {
            return Ok(Err(AdminError::refused(
                "The trial role must be a role the tier does not give already (it is taken away when the trial ends).",
            )));
        }
        tiers::set_trial_role(conn, paid.id, trial)?;
    }
    if let Some(kick) = edit.kick {
        tiers::set_kick(conn, paid.id, kick)?;
    }
    let Some(after) = tiers::get(conn, paid.id)? else {
        return Ok(Err(not_sold(role)));
    };
    let holders = subscriptions::mark_tier_due(conn, paid.id, now)?;
    let text = format!("{actor} changed the tier <@&{role}>: {}", summary(&after));
    audit(
        conn,
        guild,
        actor,
        "tier",
        None,
        None,
        &json!({
            "role_id": role.to_string(),
            "roles": after.roles().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "trial_role_id": after.trial_role.map(|r| r.to_string()),
            "on_end": if after.kick { "kick" } else { "remove" },
        }),
        &text,
    )?;
    Ok(Ok(Done {
        reply: format!(
            "{}\nDocobo is updating the roles of the {holders} subscription(s) of this tier now.",
            describe(&after)
        ),
        log: format!("🎚️ {text}"),
    }))
}

fn mentions(roles: impl IntoIterator<Item = RoleId>) -> String {
    roles
        .into_iter()
        .map(|r| format!("<@&{r}>"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary(tier: &Tier) -> String {
    format!(
        "gives {}; trial role {}; when access ends: {}",
        mentions(tier.roles()),
        tier.trial_role
            .map_or_else(|| "none".to_owned(), |r| format!("<@&{r}>")),
        if tier.kick {
            "kick the member"
        } else {
            "remove the roles"
        }
    )
}

fn describe(tier: &Tier) -> String {
    format!(
        "The tier <@&{}> {}.\nChange it with `/admin tier` and `add_role`, `remove_role`, `trial_role` (or `no_trial_role`) and `on_end`.",
        tier.role,
        summary(tier)
    )
}
