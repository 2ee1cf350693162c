//! The roster service: what Discord tells Docobo about its guilds and members (a guild the
//! bot is in, a member who joined or left, a role change that may fix a permission problem),
//! recorded so that role sync does the rest. The gateway handler only translates events into
//! these calls.

use crate::db::{DbError, guilds, members, subscriptions};
use crate::domain::{GuildId, UserId};
use crate::services::Services;

/// Records a guild the bot is in (its name and owner, for notices). A guild the bot had
/// left is served again: every one of its subscriptions is synced now (what changed while
/// the bot was away, expiries included, is caught up with).
///
/// # Errors
/// A database error.
pub async fn guild_seen(
    services: &Services,
    guild: GuildId,
    name: Option<String>,
    owner: Option<UserId>,
) -> Result<(), DbError> {
    let now = services.now();
    let resumed = services
        .db
        .call(move |conn| {
            let was_left = guilds::upsert_seen(conn, guild, name.as_deref(), owner)?;
            if was_left {
                subscriptions::mark_guild_due(conn, guild, now)?;
            }
            Ok(was_left)
        })
        .await?;
    if resumed {
        tracing::info!(
            guild = guild.get(),
            "the bot is back in the guild: its poll, sweep and role syncs resume"
        );
        services.sync.wake();
    }
    Ok(())
}

/// The bot left the guild or was removed from it: it is marked left, so that its poll,
/// sweep, role syncs and notices stop (Discord would refuse them all). Its data stays, and
/// re-adding the bot resumes it.
///
/// # Errors
/// A database error.
pub async fn guild_left(services: &Services, guild: GuildId) -> Result<bool, DbError> {
    let now = services.now();
    let left = services
        .db
        .call(move |conn| guilds::mark_left(conn, guild, now))
        .await?;
    if left {
        tracing::info!(
            guild = guild.get(),
            "the bot was removed from the guild: its poll, sweep and role syncs stop until it is added again; its data is kept"
        );
    }
    Ok(left)
}

/// After a change at Discord that may fix a permission problem (a role moved, the bot got
/// Manage Roles): the guild's failed role syncs are retried now.
///
/// # Errors
/// A database error.
pub async fn retry_failed(services: &Services, guild: GuildId) -> Result<usize, DbError> {
    let now = services.now();
    let due = services
        .db
        .call(move |conn| subscriptions::mark_failed_due(conn, Some(guild), now))
        .await?;
    if due > 0 {
        services.sync.wake();
    }
    Ok(due)
}

/// A member joined (`present`) or left a guild: their paid roles are applied again (or
/// recorded as not applied). Members Docobo never knew are ignored.
///
/// # Errors
/// A database error.
pub async fn member_moved(
    services: &Services,
    guild: GuildId,
    user: UserId,
    present: bool,
) -> Result<usize, DbError> {
    let now = services.now();
    let due = services
        .db
        .call(move |conn| {
            if members::in_guild(conn, guild, user)?.is_none() {
                return Ok(0);
            }
            members::set_in_guild(conn, guild, user, present)?;
            subscriptions::mark_member_due(conn, guild, user, None, Some(false), now)
        })
        .await?;
    if due > 0 {
        services.sync.wake();
    }
    Ok(due)
}
