//! The roster service: what Discord tells Docobo about its guilds and members (a guild the
//! bot is in, a member who joined or left, a role change that may fix a permission problem),
//! recorded so that role sync does the rest. The gateway handler only translates events into
//! these calls.

use crate::db::{DbError, guilds, members, subscriptions};
use crate::domain::{GuildId, UserId};
use crate::services::Services;

/// Records a guild the bot is in (its name and owner, for notices).
///
/// # Errors
/// A database error.
pub async fn guild_seen(
    services: &Services,
    guild: GuildId,
    name: Option<String>,
    owner: Option<UserId>,
) -> Result<(), DbError> {
    services
        .db
        .call(move |conn| guilds::upsert_seen(conn, guild, name.as_deref(), owner))
        .await
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
