//! `guilds`: one row per Discord server Docobo serves.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{DbError, id_from};
use crate::domain::{ChannelId, GuildId, ProviderId, UserId};

/// A Discord server and its Docobo settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guild {
    pub id: GuildId,
    pub name: String,
    pub owner_id: Option<UserId>,
    pub provider: Option<ProviderId>,
    /// AEAD ciphertext of the provider credentials; opaque here.
    pub credentials: Option<Vec<u8>>,
    pub webhook_key: String,
    pub log_channel_id: Option<ChannelId>,
}

const COLUMNS: &str =
    "guild_id, name, owner_id, provider, credentials, webhook_key, log_channel_id";

type RawRow = (
    i64,
    String,
    Option<i64>,
    Option<String>,
    Option<Vec<u8>>,
    String,
    Option<i64>,
);

fn from_row(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

fn to_guild(
    (id, name, owner, provider, credentials, webhook_key, log_channel): RawRow,
) -> Result<Guild, DbError> {
    Ok(Guild {
        id: id_from("guilds", id)?,
        name,
        owner_id: owner.map(|o| id_from("guilds", o)).transpose()?,
        provider: provider
            .map(|p| {
                ProviderId::parse(&p).map_err(|e| DbError::Corrupt {
                    table: "guilds",
                    message: e.to_string(),
                })
            })
            .transpose()?,
        credentials,
        webhook_key,
        log_channel_id: log_channel.map(|c| id_from("guilds", c)).transpose()?,
    })
}

/// Every guild, by name (the operator's dashboard).
pub fn all(conn: &Connection) -> Result<Vec<Guild>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM guilds ORDER BY name, guild_id"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    rows.map(|r| to_guild(r?)).collect()
}

/// Inserts a new guild.
///
/// # Errors
/// A duplicate guild id or webhook key ([`DbError::is_unique_violation`]).
pub fn insert(conn: &Connection, guild: &Guild) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO guilds (guild_id, name, owner_id, provider, credentials, webhook_key, log_channel_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(params![
            guild.id.as_i64(),
            guild.name,
            guild.owner_id.map(UserId::as_i64),
            guild.provider.as_ref().map(ProviderId::as_str),
            guild.credentials,
            guild.webhook_key,
            guild.log_channel_id.map(ChannelId::as_i64),
        ],
    )?;
    Ok(())
}

/// The guild with this id.
pub fn get(conn: &Connection, id: GuildId) -> Result<Option<Guild>, DbError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM guilds WHERE guild_id = ?1"))?
        .query_row([id.as_i64()], from_row)
        .optional()?
        .map(to_guild)
        .transpose()
}

/// The guild whose webhook URL ends in `key`.
pub fn by_webhook_key(conn: &Connection, key: &str) -> Result<Option<Guild>, DbError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM guilds WHERE webhook_key = ?1"
    ))?
    .query_row([key], from_row)
    .optional()?
    .map(to_guild)
    .transpose()
}

/// Stores the provider a guild chose in `/setup` and its sealed credentials.
///
/// # Errors
/// The guild is unknown.
pub fn set_provider(
    conn: &Connection,
    id: GuildId,
    provider: &ProviderId,
    credentials: &[u8],
) -> Result<(), DbError> {
    let changed = conn
        .prepare_cached(
            "UPDATE guilds SET provider = ?2, credentials = ?3,
             updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
         WHERE guild_id = ?1",
        )?
        .execute(params![id.as_i64(), provider.as_str(), credentials])?;
    if changed == 0 {
        return Err(DbError::Sqlite(rusqlite::Error::QueryReturnedNoRows));
    }
    Ok(())
}

/// Records a guild the bot is in (from READY or `GUILD_CREATE`), keeping its settings; a new
/// guild gets a fresh random webhook key. A guild the bot had left is in it again: returns
/// whether it had been marked left (its role syncs must resume).
pub fn upsert_seen(
    conn: &Connection,
    id: GuildId,
    name: Option<&str>,
    owner: Option<UserId>,
) -> Result<bool, DbError> {
    let was_left: bool = conn
        .prepare_cached("SELECT left_at IS NOT NULL FROM guilds WHERE guild_id = ?1")?
        .query_row([id.as_i64()], |r| r.get(0))
        .optional()?
        .unwrap_or(false);
    conn.prepare_cached(
        "INSERT INTO guilds (guild_id, name, owner_id, webhook_key) VALUES (?1, coalesce(?2, ''), ?3, ?4)
         ON CONFLICT (guild_id) DO UPDATE SET
             name = coalesce(?2, name),
             owner_id = coalesce(?3, owner_id),
             left_at = NULL,
             updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)",
    )?
    .execute(params![
        id.as_i64(),
        name,
        owner.map(UserId::as_i64),
        new_webhook_key(),
    ])?;
    Ok(was_left)
}

/// Records that the bot left the guild or was removed from it (`GUILD_DELETE` without
/// `unavailable`) at `now`: its poll, sweep and role syncs stop, its data stays. Returns
/// whether it was in the guild until now.
pub fn mark_left(conn: &Connection, id: GuildId, now: i64) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "UPDATE guilds SET left_at = ?2, updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
             WHERE guild_id = ?1 AND left_at IS NULL",
        )?
        .execute(params![id.as_i64(), now])?
        == 1)
}

/// When the bot left the guild, if it did (and has not been re-added since).
pub fn left_at(conn: &Connection, id: GuildId) -> Result<Option<i64>, DbError> {
    Ok(conn
        .prepare_cached("SELECT left_at FROM guilds WHERE guild_id = ?1")?
        .query_row([id.as_i64()], |r| r.get::<_, Option<i64>>(0))
        .optional()?
        .flatten())
}

/// The guilds the bot has left (read through the partial index `guilds_left`).
pub fn left(conn: &Connection) -> Result<std::collections::BTreeSet<GuildId>, DbError> {
    let mut stmt = conn.prepare_cached("SELECT guild_id FROM guilds WHERE left_at IS NOT NULL")?;
    let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
    rows.map(|r| id_from("guilds", r?)).collect()
}

/// A random, URL-safe, unguessable webhook key (128 bits).
#[must_use]
pub fn new_webhook_key() -> String {
    use base64::Engine as _;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Sets (or clears) the channel that gets a line for each purchase, renewal and failure.
pub fn set_log_channel(
    conn: &Connection,
    id: GuildId,
    channel: Option<ChannelId>,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE guilds SET log_channel_id = ?2,
             updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
         WHERE guild_id = ?1",
    )?
    .execute(params![id.as_i64(), channel.map(ChannelId::as_i64)])?;
    Ok(())
}

/// Every guild the bot is in with a provider configured (for the poll schedule).
pub fn with_provider(conn: &Connection) -> Result<Vec<Guild>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM guilds
         WHERE provider IS NOT NULL AND credentials IS NOT NULL AND left_at IS NULL"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    rows.map(|r| to_guild(r?)).collect()
}

/// A value from the guild's `settings` JSON object (e.g. a provider's poll cursor).
pub fn setting(conn: &Connection, id: GuildId, key: &str) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT json_extract(settings, '$.' || ?2) FROM guilds WHERE guild_id = ?1",
        )?
        .query_row(params![id.as_i64(), key], |row| {
            row.get::<_, Option<String>>(0)
        })
        .optional()?
        .flatten())
}

/// Sets a value in the guild's `settings` JSON object.
pub fn set_setting(conn: &Connection, id: GuildId, key: &str, value: &str) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE guilds SET settings = json_set(settings, '$.' || ?2, ?3) WHERE guild_id = ?1",
    )?
    .execute(params![id.as_i64(), key, value])?;
    Ok(())
}

/// The `settings` key that holds when the owner paused enforcement (unix ms, as text).
const PAUSED_SETTING: &str = "enforcement_paused_at";

/// When the owner paused enforcement in this guild (`/admin pause`), if it is paused: while
/// it is, role sync takes no paid role away.
///
/// # Errors
/// A database error, or a stored value that is not a time.
pub fn enforcement_paused_at(conn: &Connection, id: GuildId) -> Result<Option<i64>, DbError> {
    setting(conn, id, PAUSED_SETTING)?
        .map(|at| {
            at.parse().map_err(|_| DbError::Corrupt {
                table: "guilds",
                message: format!("settings.{PAUSED_SETTING} is not a time: {at:?}"),
            })
        })
        .transpose()
}

/// Pauses enforcement from `at`, or (with `None`) resumes it.
///
/// # Errors
/// A database error.
pub fn set_enforcement_paused(
    conn: &Connection,
    id: GuildId,
    at: Option<i64>,
) -> Result<(), DbError> {
    if let Some(at) = at {
        return set_setting(conn, id, PAUSED_SETTING, &at.to_string());
    }
    conn.prepare_cached(
        "UPDATE guilds SET settings = json_remove(settings, '$.' || ?2) WHERE guild_id = ?1",
    )?
    .execute(params![id.as_i64(), PAUSED_SETTING])?;
    Ok(())
}

/// What [`forget`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgotten {
    /// No such guild.
    Unknown,
    /// The bot is in the guild (not marked left): nothing was deleted.
    StillIn,
    /// Deleted, with this many subscriptions and delivery records.
    Deleted { subscriptions: usize, events: usize },
}

/// Deletes everything kept for a guild the bot has left: its deliveries (those recorded for
/// it, in its credential scope, or of its subscriptions), subscriptions, members, paid roles
/// and the guild row with its credentials. Run it in a transaction.
///
/// # Errors
/// A database error.
pub fn forget(conn: &Connection, id: GuildId) -> Result<Forgotten, DbError> {
    let Some(left) = conn
        .prepare_cached("SELECT left_at IS NOT NULL FROM guilds WHERE guild_id = ?1")?
        .query_row([id.as_i64()], |r| r.get::<_, bool>(0))
        .optional()?
    else {
        return Ok(Forgotten::Unknown);
    };
    if !left {
        return Ok(Forgotten::StillIn);
    }
    let guild = id.as_i64();
    let events = conn.execute(
        "DELETE FROM webhook_events WHERE guild_id = ?1 OR scope = ?2
             OR subscription_id IN (SELECT id FROM subscriptions WHERE guild_id = ?1)",
        params![guild, crate::domain::Scope::Guild(id).key()],
    )?;
    let subscriptions = conn.execute("DELETE FROM subscriptions WHERE guild_id = ?1", [guild])?;
    conn.execute("DELETE FROM members WHERE guild_id = ?1", [guild])?;
    conn.execute("DELETE FROM paid_roles WHERE guild_id = ?1", [guild])?;
    conn.execute("DELETE FROM guilds WHERE guild_id = ?1", [guild])?;
    Ok(Forgotten::Deleted {
        subscriptions,
        events,
    })
}
