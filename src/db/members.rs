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

/// Records whether the member is in the guild (10007 or a leave event: no; a join or a
/// successful lookup: yes). Returns whether the flag changed.
pub fn set_in_guild(
    conn: &Connection,
    guild: GuildId,
    user: UserId,
    in_guild: bool,
) -> Result<bool, DbError> {
    let changed = conn
        .prepare_cached(
            "UPDATE members SET in_guild = ?3, updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
             WHERE guild_id = ?1 AND user_id = ?2 AND in_guild <> ?3",
        )?
        .execute(params![guild.as_i64(), user.as_i64(), in_guild])?;
    Ok(changed > 0)
}

/// Whether Docobo believes the member is in the guild (`None`: unknown member).
pub fn in_guild(conn: &Connection, guild: GuildId, user: UserId) -> Result<Option<bool>, DbError> {
    use rusqlite::OptionalExtension as _;
    Ok(conn
        .prepare_cached("SELECT in_guild FROM members WHERE guild_id = ?1 AND user_id = ?2")?
        .query_row(params![guild.as_i64(), user.as_i64()], |row| row.get(0))
        .optional()?)
}

/// The member's Discord username as last seen (`None`: unknown member or never seen).
///
/// # Errors
/// A database error.
pub fn username(
    conn: &Connection,
    guild: GuildId,
    user: UserId,
) -> Result<Option<String>, DbError> {
    use rusqlite::OptionalExtension as _;
    Ok(conn
        .prepare_cached("SELECT username FROM members WHERE guild_id = ?1 AND user_id = ?2")?
        .query_row(params![guild.as_i64(), user.as_i64()], |row| row.get(0))
        .optional()?
        .flatten())
}
