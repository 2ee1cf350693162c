//! What `/doctor` reads about a guild (its last delivery, its role syncs that failed), and
//! the end of owners' test purchases.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;
use crate::domain::{GuildId, UnixMillis};

/// The newest delivery recorded for a guild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastDelivery {
    pub provider: String,
    pub event_type: String,
    pub received_at: UnixMillis,
    /// `applied`, `rejected`, … ([`super::webhook_events::Outcome::as_str`]).
    pub outcome: String,
    pub detail: Option<String>,
    pub test: bool,
}

/// The newest delivery of `guild` (by the guild's column, or verified with its credentials).
///
/// # Errors
/// A database error.
pub fn last_delivery(conn: &Connection, guild: GuildId) -> Result<Option<LastDelivery>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT provider, event_type, received_at, outcome, detail, test FROM webhook_events
             WHERE guild_id = ?1 OR scope = ?2 ORDER BY received_at DESC, id DESC LIMIT 1",
        )?
        .query_row(params![guild.as_i64(), guild.to_string()], |r| {
            Ok(LastDelivery {
                provider: r.get(0)?,
                event_type: r.get(1)?,
                received_at: r.get(2)?,
                outcome: r.get(3)?,
                detail: r.get(4)?,
                test: r.get(5)?,
            })
        })
        .optional()?)
}

/// Role syncs of a guild that failed and wait for a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedSyncs {
    pub count: u32,
    /// The newest failure's error.
    pub last_error: Option<String>,
}

/// The guild's subscriptions whose last role sync failed.
///
/// # Errors
/// A database error.
pub fn failed_syncs(conn: &Connection, guild: GuildId) -> Result<FailedSyncs, DbError> {
    let count = conn
        .prepare_cached(
            "SELECT count(*) FROM subscriptions WHERE guild_id = ?1 AND last_sync_error IS NOT NULL",
        )?
        .query_row([guild.as_i64()], |r| r.get(0))?;
    let last_error = conn
        .prepare_cached(
            "SELECT last_sync_error FROM subscriptions
             WHERE guild_id = ?1 AND last_sync_error IS NOT NULL ORDER BY updated_at DESC LIMIT 1",
        )?
        .query_row([guild.as_i64()], |r| r.get(0))
        .optional()?;
    Ok(FailedSyncs { count, last_error })
}

/// The statuses a test purchase can be ended from.
const LIVE: &str = "('active', 'trialing', 'past_due', 'canceled')";

/// Ends test purchases `minutes` after they were paid: the test subscription `only` (the
/// one `/doctor` just bought, with the instant it was paid), or with `None` (from the
/// subscription's newest event, else its creation) every test
/// subscription (`test = 1`) of a guild's owner (a checkout paid in a provider's sandbox)
/// becomes canceled at that instant (no grace period), and due for role sync now, so the
/// worker revokes the role then. Stored in the row, so a restart keeps the end; a real
/// subscription (`test = 0`) is never touched. Returns how many rows changed.
///
/// # Errors
/// A database error.
pub fn end_test_purchases(
    conn: &Connection,
    minutes: u32,
    now: UnixMillis,
    only: Option<(i64, UnixMillis)>,
) -> Result<usize, DbError> {
    let length = i64::from(minutes) * 60_000;
    Ok(conn
        .prepare_cached(&format!(
            "UPDATE subscriptions AS s
                SET status = 'canceled', cancel_at_period_end = 1,
                    period_end = coalesce(?4, max(s.created_at, coalesce(s.last_event_at, s.created_at))) + ?1, next_sync_at = ?2,
                    sync_version = sync_version + 1,
                    updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
              WHERE s.test = 1 AND s.status IN {LIVE}
                AND ((?3 IS NOT NULL AND s.id = ?3) OR (?3 IS NULL AND s.user_id =
                     (SELECT g.owner_id FROM guilds g WHERE g.guild_id = s.guild_id)))
                AND NOT (s.status = 'canceled' AND s.period_end IS NOT NULL
                         AND s.period_end <= coalesce(?4, max(s.created_at, coalesce(s.last_event_at, s.created_at))) + ?1)"
        ))?
        .execute(params![length, now, only.map(|(id, _)| id), only.map(|(_, paid)| paid)])?)
}

/// The owner's test subscription for a paid role, newest first: `(id, period_end)`.
///
/// # Errors
/// A database error.
pub fn test_purchase(
    conn: &Connection,
    guild: GuildId,
    user: crate::domain::UserId,
    paid_role: i64,
) -> Result<Option<(i64, Option<UnixMillis>)>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, period_end FROM subscriptions
             WHERE guild_id = ?1 AND user_id = ?2 AND paid_role_id = ?3 AND test = 1
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![guild.as_i64(), user.as_i64(), paid_role], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?)
}
