//! The owner's admin actions, one service for every edge: `/admin` in Discord today, the web
//! dashboard later, so that an action gives the same result from either. Each function takes
//! the [`Services`], the guild, who acts ([`Actor`]) and plain values, and returns a value
//! ([`Done`], [`lookup::Lookup`], [`transfer::Export`]); no Discord types.
//!
//! Every action is recorded in the audit trail (a `webhook_events` row of provider `admin`
//! in the guild's scope, with the actor in its normalized JSON) and yields a line for the
//! guild's log channel ([`Done::log`]), which the edge posts.
//!
//! - grant, extend, revoke: here;
//! - [`enforcement`]: pause and resume the removal of roles in the guild;
//! - [`lookup`]: a member's history; forget: delete a member's personal data;
//! - [`transfer`]: export and import (a file, or the provider's subscriber list).
//!
//! "Tier": a guild sells paid roles today; a tier is named by its role ([`TierId`]), so that
//! it can become a tier id when tiers exist.

pub mod enforcement;
pub mod lookup;
pub mod tiers;
pub mod transfer;

use rusqlite::Connection;
use serde_json::json;

use crate::db::admin::{self as rows, ADMIN_PROVIDER, AuditRecord};
use crate::db::{DbError, guilds, paid_roles, subscriptions};
use crate::domain::{
    GuildId, ProviderId, RoleId, Scope, StatusChange, SubscriptionState, SubscriptionStatus,
    UnixMillis, UserId,
};
use crate::services::Services;
use crate::subscriptions::{CreateSubscription, StatusUpdate, SubscriptionError};

pub use lookup::{Lookup, forget, lookup};
pub use transfer::{Export, ImportReport, export, import_file, import_from_provider};

/// A tier, named by its paid role for now.
pub type TierId = RoleId;

/// The most days one grant or extension gives (ten years).
pub const MAX_DAYS: u32 = 3650;
/// The longest revocation reason kept.
pub const MAX_REASON: usize = 400;

const DAY_MS: i64 = 86_400_000;

/// Who acts, and through which edge (`discord`, `web`): recorded with every action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    /// The Discord user who acts; `None` for the operator, who logs in to the dashboard with
    /// the admin token and has no Discord identity there.
    pub user: Option<UserId>,
    pub via: &'static str,
}

impl Actor {
    /// The operator, on the dashboard.
    pub const OPERATOR: Self = Self {
        user: None,
        via: "web",
    };

    /// A member with Manage Server, through `/admin`.
    #[must_use]
    pub const fn discord(user: UserId) -> Self {
        Self {
            user: Some(user),
            via: "discord",
        }
    }

    /// A member with Manage Server, on the dashboard (the session of their `/dashboard` link).
    #[must_use]
    pub const fn web(user: UserId) -> Self {
        Self {
            user: Some(user),
            via: "web",
        }
    }

    /// What the audit trail records as `actor_id`: the Discord user id, or `operator`.
    #[must_use]
    pub fn id(&self) -> String {
        self.user
            .map_or_else(|| "operator".to_owned(), |u| u.to_string())
    }
}

/// How texts name the actor: a mention, or "The operator" (texts start with it).
impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.user {
            Some(user) => write!(f, "<@{user}>"),
            None => f.write_str("The operator"),
        }
    }
}

/// What an action did: the answer for the person who acted, and the log-channel line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub reply: String,
    pub log: String,
}

/// Why an action did nothing.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request cannot be done as asked; the text says why and what to do instead.
    #[error("{0}")]
    Refused(String),
    /// The provider could not be asked (its text is safe to show).
    #[error("{0}")]
    Provider(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl AdminError {
    fn refused(text: impl Into<String>) -> Self {
        Self::Refused(text.into())
    }
}

/// `grant @member tier [days]`: complimentary access (provider `admin`), for `days` or for
/// good; the role comes through role sync like a purchase.
///
/// # Errors
/// [`AdminError::Refused`] for a role the guild does not sell, bad days, or a member who
/// already has complimentary access to it.
pub async fn grant(
    services: &Services,
    guild: GuildId,
    actor: Actor,
    member: UserId,
    tier: TierId,
    days: Option<u32>,
) -> Result<Done, AdminError> {
    check_days(days)?;
    let now = services.now();
    let done = services
        .db
        .write(move |conn| grant_in(conn, guild, actor, member, tier, days, now))
        .await??;
    services.sync.wake();
    Ok(done)
}

fn grant_in(
    conn: &Connection,
    guild: GuildId,
    actor: Actor,
    member: UserId,
    tier: TierId,
    days: Option<u32>,
    now: UnixMillis,
) -> Result<Result<Done, AdminError>, DbError> {
    if guilds::get(conn, guild)?.is_none() {
        return Ok(Err(AdminError::refused(
            "This server is not set up in Docobo yet. Fix: run /setup first.",
        )));
    }
    let Some(role) = paid_roles::get(conn, guild, tier)? else {
        return Ok(Err(not_sold(tier)));
    };
    let holding = subscriptions::for_holding(conn, guild, member, role.id)?;
    if let Some(comp) = holding
        .iter()
        .find(|s| s.provider.as_str() == ADMIN_PROVIDER && s.is_entitled(now, 0))
    {
        return Ok(Err(AdminError::refused(format!(
            "<@{member}> already has complimentary <@&{tier}> {}. Use /admin extend to add days, or /admin revoke first.",
            until(comp.state.period_end)
        ))));
    }
    let period_end = days.map(|d| now + i64::from(d) * DAY_MS);
    let data = CreateSubscription {
        guild_id: guild,
        user_id: member,
        role_id: tier,
        provider: admin_provider()?,
        scope: Scope::Guild(guild),
        external_id: Some(format!("comp-{:016x}", rand::random::<u64>())),
        payment_code: None,
        status: SubscriptionStatus::Active,
        period_end,
        occurred_at: Some(now),
        username: None,
    };
    let created = match crate::subscriptions::create_for(conn, &role, &data, now) {
        Ok(created) => created,
        Err(SubscriptionError::Db(e)) => return Err(e),
        Err(e) => return Ok(Err(AdminError::refused(e.to_string()))),
    };
    // The log line below says it; role sync must not announce it as a purchase too.
    announced(conn, created.id, SubscriptionStatus::Active, period_end)?;
    let text = format!(
        "{actor} granted <@{member}> complimentary <@&{tier}> {}",
        until(period_end)
    );
    audit(
        conn,
        guild,
        actor,
        "grant",
        Some(member),
        Some(created.id),
        &json!({"role_id": tier.to_string(), "period_end": period_end, "days": days}),
        &text,
    )?;
    Ok(Ok(Done {
        reply: format!(
            "Granted <@{member}> complimentary <@&{tier}> {}. The role arrives within a few seconds.",
            until(period_end)
        ),
        log: format!("🎁 {text}"),
    }))
}

/// `extend @member days`: moves the end of the member's current complimentary access or
/// bank-transfer pass by `days` (card subscriptions renew by themselves: refused).
///
/// # Errors
/// [`AdminError::Refused`] when nothing of theirs can be extended.
pub async fn extend(
    services: &Services,
    guild: GuildId,
    actor: Actor,
    member: UserId,
    days: u32,
) -> Result<Done, AdminError> {
    check_days(Some(days))?;
    let now = services.now();
    let grace = services.grace_ms;
    let done = services
        .db
        .write(move |conn| extend_in(conn, guild, actor, member, days, now, grace))
        .await??;
    services.sync.wake();
    Ok(done)
}

fn extend_in(
    conn: &Connection,
    guild: GuildId,
    actor: Actor,
    member: UserId,
    days: u32,
    now: UnixMillis,
    grace: i64,
) -> Result<Result<Done, AdminError>, DbError> {
    let current: Vec<_> = subscriptions::for_member(conn, guild, member)?
        .into_iter()
        .filter(|s| s.is_entitled(now, grace))
        .collect();
    let (extendable, others): (Vec<_>, Vec<_>) = current
        .into_iter()
        .partition(|s| s.provider.as_str() == ADMIN_PROVIDER || s.payment_code.is_some());
    let extendable: Vec<_> = extendable
        .into_iter()
        .filter(|s| s.state.period_end.is_some())
        .collect();
    if extendable.is_empty() {
        return Ok(Err(AdminError::refused(match others.first() {
            Some(card) => format!(
                "<@{member}>'s access comes from their {} subscription, which renews by itself. To give free days on top, use /admin grant.",
                card.provider
            ),
            None => format!(
                "<@{member}> has no complimentary access or pass with an end date to extend. Use /admin grant to give access."
            ),
        })));
    }
    let mut lines = Vec::new();
    for sub in &extendable {
        let end = sub.state.period_end.unwrap_or(now) + i64::from(days) * DAY_MS;
        let state = SubscriptionState {
            status: sub.state.status,
            period_end: Some(end),
            last_event_at: Some(sub.state.last_event_at.unwrap_or(now).max(now)),
        };
        subscriptions::set_state(conn, sub.id, state, sub.cancel_at_period_end, now)?;
        announced(conn, sub.id, sub.state.status, Some(end))?;
        let role = role_of(conn, sub.paid_role_id)?;
        lines.push(format!("<@&{role}> now {}", until(Some(end))));
        let text = format!(
            "{actor} extended <@{member}>'s <@&{role}> by {days} days, {}",
            until(Some(end))
        );
        audit(
            conn,
            guild,
            actor,
            "extend",
            Some(member),
            Some(sub.id),
            &json!({"role_id": role.to_string(), "days": days, "period_end": end}),
            &text,
        )?;
    }
    let summary = lines.join(", ");
    Ok(Ok(Done {
        reply: format!("Extended <@{member}> by {days} days: {summary}."),
        log: format!("⏩ {actor} extended <@{member}> by {days} days: {summary}"),
    }))
}

/// `revoke @member [reason]`: ends every current access of the member now. A card
/// subscription stays billed at its provider until cancelled there; the reply says so.
///
/// # Errors
/// [`AdminError::Refused`] when the member has no current access.
pub async fn revoke(
    services: &Services,
    guild: GuildId,
    actor: Actor,
    member: UserId,
    reason: Option<String>,
) -> Result<Done, AdminError> {
    let reason = reason
        .map(|r| r.trim().chars().take(MAX_REASON).collect::<String>())
        .filter(|r| !r.is_empty());
    let now = services.now();
    let grace = services.grace_ms;
    let done = services
        .db
        .write(move |conn| revoke_in(conn, guild, actor, member, reason.as_deref(), now, grace))
        .await??;
    services.sync.wake();
    Ok(done)
}

fn revoke_in(
    conn: &Connection,
    guild: GuildId,
    actor: Actor,
    member: UserId,
    reason: Option<&str>,
    now: UnixMillis,
    grace: i64,
) -> Result<Result<Done, AdminError>, DbError> {
    let current: Vec<_> = subscriptions::for_member(conn, guild, member)?
        .into_iter()
        .filter(|s| s.is_entitled(now, grace))
        .collect();
    if current.is_empty() {
        return Ok(Err(AdminError::refused(format!(
            "<@{member}> has no current paid or complimentary access here: nothing to revoke."
        ))));
    }
    let mut roles = Vec::new();
    let mut billed = Vec::new();
    for sub in &current {
        let change = StatusChange {
            status: SubscriptionStatus::Revoked,
            period_end: None,
            occurred_at: sub.state.last_event_at.unwrap_or(now).max(now),
        };
        let update = crate::subscriptions::change_status(conn, sub, change, now)?;
        if !matches!(update, StatusUpdate::Applied { .. }) {
            continue;
        }
        announced(
            conn,
            sub.id,
            SubscriptionStatus::Revoked,
            sub.state.period_end,
        )?;
        let role = role_of(conn, sub.paid_role_id)?;
        roles.push(format!("<@&{role}>"));
        let card = sub.provider.as_str() != ADMIN_PROVIDER && sub.payment_code.is_none();
        if card {
            billed.push(sub.provider.to_string());
        }
        let text = format!(
            "{actor} revoked <@{member}>'s <@&{role}> ({}){}",
            sub.provider,
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        );
        audit(
            conn,
            guild,
            actor,
            "revoke",
            Some(member),
            Some(sub.id),
            &json!({"role_id": role.to_string(), "reason": reason, "provider_billing_continues": card}),
            &text,
        )?;
    }
    let why = reason.map(|r| format!(" Reason: {r}")).unwrap_or_default();
    let when = if guilds::enforcement_paused_at(conn, guild)?.is_some() {
        "enforcement is paused here, so the role stays until you run /admin resume"
    } else {
        "the role is removed within a few seconds"
    };
    let mut reply = format!("Revoked <@{member}>'s {}: {when}.{why}", roles.join(", "));
    billed.dedup();
    if !billed.is_empty() {
        use std::fmt::Write as _;
        let _ = write!(
            reply,
            "\n⚠️ Their {} subscription is still billed: Docobo removed the role, but the provider keeps charging until you cancel the subscription in its dashboard.",
            billed.join(" and ")
        );
    }
    Ok(Ok(Done {
        reply,
        log: format!(
            "⛔ {actor} revoked <@{member}>'s {}{}",
            roles.join(", "),
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        ),
    }))
}

/// Records an admin action in the audit trail (see [`rows::audit`]).
#[allow(clippy::too_many_arguments, reason = "one audit record's fields")]
fn audit(
    conn: &Connection,
    guild: GuildId,
    actor: Actor,
    action: &str,
    member: Option<UserId>,
    subscription: Option<i64>,
    extra: &serde_json::Value,
    detail: &str,
) -> Result<(), DbError> {
    let mut event = json!({
        "kind": "admin",
        "action": action,
        "actor_id": actor.id(),
        "via": actor.via,
        "user_id": member.map(|m| m.to_string()),
        "occurred_at": crate::db::now_ms(),
    });
    if let (Some(event), Some(extra)) = (event.as_object_mut(), extra.as_object()) {
        event.extend(extra.clone());
    }
    rows::audit(
        conn,
        &AuditRecord {
            guild,
            event_type: &format!("admin.{action}"),
            event_json: &event.to_string(),
            subscription_id: subscription,
            detail,
        },
    )
}

/// Records what the log channel was told (so role sync does not announce it again).
fn announced(
    conn: &Connection,
    id: i64,
    status: SubscriptionStatus,
    period_end: Option<UnixMillis>,
) -> Result<(), DbError> {
    subscriptions::set_announced(conn, id, &format!("{status}:{}", period_end.unwrap_or(0)))
}

fn role_of(conn: &Connection, paid_role: i64) -> Result<RoleId, DbError> {
    paid_roles::by_id(conn, paid_role)?
        .map(|r| r.role_id)
        .ok_or_else(|| DbError::Corrupt {
            table: "subscriptions",
            message: format!("paid role {paid_role} is missing"),
        })
}

fn admin_provider() -> Result<ProviderId, DbError> {
    ProviderId::parse(ADMIN_PROVIDER).map_err(|e| DbError::Corrupt {
        table: "subscriptions",
        message: e.to_string(),
    })
}

fn not_sold(role: RoleId) -> AdminError {
    AdminError::refused(format!(
        "<@&{role}> is not a paid role in this server. Fix: pick one of the roles /setup sells (or add it there first)."
    ))
}

fn check_days(days: Option<u32>) -> Result<(), AdminError> {
    match days {
        Some(d) if d == 0 || d > MAX_DAYS => Err(AdminError::refused(format!(
            "days must be 1 to {MAX_DAYS} (leave it out of /admin grant for lifetime access)."
        ))),
        _ => Ok(()),
    }
}

/// `until <t:…:D>` or `for good`.
fn until(end: Option<UnixMillis>) -> String {
    match end {
        Some(end) => format!("until <t:{}:D>", end.div_euclid(1000)),
        None => "for good (lifetime)".to_owned(),
    }
}
