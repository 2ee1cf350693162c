//! `members`: a Discord user in a guild (id and last-seen username, nothing more).

use rusqlite::{Connection, params};

use super::DbError;
use crate::domain::{GuildId, UserId};

/// Records a member, updating the username when one is given.
pub fn upsert(
    conn: &Connection,
    guild: GuildId,
    user: UserId,
    username: Option<&str>,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO members (guild_id, user_id, username) VALUES (?1, ?2, ?3)
         ON CONFLICT (guild_id, user_id) DO UPDATE SET
             username = coalesce(excluded.username, username),
             updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)",
    )?
    .execute(params![guild.as_i64(), user.as_i64(), username])?;
    Ok(())
}

/// Inserts a member that must not exist yet.
///
/// # Errors
/// The member exists ([`DbError::is_unique_violation`]).
pub fn insert(
    conn: &Connection,
    guild: GuildId,
    user: UserId,
    username: Option<&str>,
) -> Result<(), DbError> {
    conn.prepare_cached("INSERT INTO members (guild_id, user_id, username) VALUES (?1, ?2, ?3)")?
        .execute(params![guild.as_i64(), user.as_i64(), username])?;
    Ok(())
}
