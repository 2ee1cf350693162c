//! `policy`: what a partial refund does to a tier's access (keep it, the default, or end it).
//!
//! `pause` and `resume`: the owner stops Docobo from taking any paid role away in the guild
//! (issue 21, item 6), for a migration, a provider set up wrong, or a doubt about what Docobo
//! is about to do. While paused, purchases still grant roles and every state is still
//! recorded; only removals wait. `resume` makes every holding of the guild due, so whatever
//! ended meanwhile is removed then, in one catch-up pass of the role-sync worker.

use rusqlite::Connection;
use serde_json::json;

use super::{Actor, AdminError, Done, audit};
use crate::db::{DbError, guilds, paid_roles, subscriptions};
use crate::domain::{GuildId, RoleId, UnixMillis};
use crate::services::Services;

/// `pause`: no paid role is removed in the guild until [`resume`].
///
/// # Errors
/// [`AdminError::Refused`] if the guild is not set up or is paused already.
pub async fn pause(services: &Services, guild: GuildId, actor: Actor) -> Result<Done, AdminError> {
    let now = services.now();
    services
        .db
        .write(move |conn| pause_in(conn, guild, actor, now))
        .await?
}

fn pause_in(
    conn: &Connection,
    guild: GuildId,
    actor: Actor,
    now: UnixMillis,
) -> Result<Result<Done, AdminError>, DbError> {
    if guilds::get(conn, guild)?.is_none() {
        return Ok(Err(AdminError::refused(
            "This server is not set up in Docobo yet. Fix: run /setup first.",
        )));
    }
    if let Some(since) = guilds::enforcement_paused_at(conn, guild)? {
        return Ok(Err(AdminError::refused(format!(
            "Enforcement is already paused here, since <t:{}:f>. Run /admin resume to take away what ended meanwhile.",
            since.div_euclid(1000)
        ))));
    }
    guilds::set_enforcement_paused(conn, guild, Some(now))?;
    let text = format!("{actor} paused enforcement: no paid role is removed until it resumes");
    audit(conn, guild, actor, "pause", None, None, &json!({}), &text)?;
    Ok(Ok(Done {
        reply: "Enforcement paused. Docobo removes no paid role here (ended, cancelled, refunded or disputed) until you run /admin resume; purchases still give roles, and every payment is still recorded. When you resume, whatever ended meanwhile is removed.".to_owned(),
        log: format!("⏸️ {text}"),
    }))
}

/// `resume`: enforcement again; every holding of the guild is re-checked at once.
///
/// # Errors
/// [`AdminError::Refused`] if enforcement is not paused.
pub async fn resume(services: &Services, guild: GuildId, actor: Actor) -> Result<Done, AdminError> {
    let now = services.now();
    let done = services
        .db
        .write(move |conn| resume_in(conn, guild, actor, now))
        .await??;
    services.sync.wake();
    Ok(done)
}

fn resume_in(
    conn: &Connection,
    guild: GuildId,
    actor: Actor,
    now: UnixMillis,
) -> Result<Result<Done, AdminError>, DbError> {
    let Some(since) = guilds::enforcement_paused_at(conn, guild)? else {
        return Ok(Err(AdminError::refused(
            "Enforcement is not paused here: Docobo is already removing roles when access ends.",
        )));
    };
    guilds::set_enforcement_paused(conn, guild, None)?;
    let rechecked = subscriptions::mark_guild_due(conn, guild, now)?;
    let text = format!(
        "{actor} resumed enforcement (paused since <t:{}:f>): what ended meanwhile is removed now",
        since.div_euclid(1000)
    );
    audit(
        conn,
        guild,
        actor,
        "resume",
        None,
        None,
        &json!({"paused_at": since, "rechecked": rechecked}),
        &text,
    )?;
    Ok(Ok(Done {
        reply: format!(
            "Enforcement resumed. Docobo is checking all {rechecked} subscriptions here and removes the roles whose access ended while it was paused (a few seconds on most servers)."
        ),
        log: format!("▶️ {text}"),
    }))
}

/// `policy tier partial_refund`: whether a partial refund of `tier` ends the member's access
/// (`revoke`) or keeps it (`keep`, the default). A full refund and a lost dispute always end
/// it; an opened dispute never does.
///
/// # Errors
/// [`AdminError::Refused`] for a role the guild does not sell.
pub async fn set_partial_refund(
    services: &Services,
    guild: GuildId,
    actor: Actor,
    tier: RoleId,
    revoke: bool,
) -> Result<Done, AdminError> {
    services
        .db
        .write(move |conn| {
            if !paid_roles::set_partial_refund(conn, guild, tier, revoke)? {
                return Ok(Err(super::not_sold(tier)));
            }
            let (what, does) = if revoke {
                ("revoke", "ends the member's access, as a full refund does")
            } else {
                ("keep", "keeps the member's access")
            };
            let text = format!("{actor} set <@&{tier}>'s policy: a partial refund {does}");
            audit(
                conn,
                guild,
                actor,
                "policy",
                None,
                None,
                &json!({"role_id": tier.to_string(), "partial_refund": what}),
                &text,
            )?;
            Ok(Ok(Done {
                reply: format!(
                    "From now on a partial refund of <@&{tier}> {does}. A full refund or a lost dispute always ends access; an opened dispute never does."
                ),
                log: format!("⚖️ {text}"),
            }))
        })
        .await?
}
