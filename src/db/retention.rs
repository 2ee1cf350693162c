//! What Docobo forgets: the batches of the pruner (`crate::retention`).
//!
//! Each function looks at one window of at most `limit` rows, in rowid order after `after`
//! (rowids grow with time, and a window by rowid is a range read, no index needed), deletes
//! what in it may go, and says where the next window starts. A window is small so that the
//! writer, which runs it inside a group-commit batch, is never held long.
//!
//! A subscription has *ended* when it can never be entitled again without a new event and
//! Docobo no longer holds its role at Discord: revoked, refunded or expired, or cancelled
//! with its period over, and `role_applied = 0`. It ended at its last change or its period
//! end, whichever is later.

use rusqlite::{Connection, OptionalExtension as _, params};

use super::DbError;

/// What one window did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Rows deleted.
    pub deleted: u64,
    /// Where the next window starts; `None` when this one was the last.
    pub next: Option<i64>,
}

impl Window {
    /// The table has no rows after the window's start: the pass is over.
    const PAST_THE_END: Self = Self {
        deleted: 0,
        next: None,
    };
}

/// The SQL condition "subscription `s` ended before `?cutoff`" (see the module docs).
const ENDED_BEFORE: &str = "s.role_applied = 0
     AND (s.status IN ('revoked', 'refunded', 'expired')
          OR (s.status = 'canceled' AND coalesce(s.period_end, 0) < :cutoff))
     AND max(s.updated_at, coalesce(s.period_end, 0)) < :cutoff";

/// The window of `table` after `after`: its last rowid, and whether it holds a row whose
/// time column is at or past `cutoff` (for a table in time order, the last window).
fn window(
    conn: &Connection,
    table: &str,
    time: &str,
    after: i64,
    limit: u32,
    cutoff: i64,
) -> Result<Option<(i64, bool)>, DbError> {
    let sql = format!(
        "SELECT max(rowid), max({time} >= ?3) FROM
            (SELECT rowid, {time} FROM {table} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2)"
    );
    let found: Option<(Option<i64>, Option<bool>)> = conn
        .prepare_cached(&sql)?
        .query_row(params![after, limit, cutoff], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(match found {
        Some((Some(last), past)) => Some((last, past.unwrap_or(false))),
        _ => None,
    })
}

/// Deletes the deliveries received before `cutoff` in the window, except those of a
/// subscription that has not ended before `cutoff` (a refund or a dispute may still need
/// them). The table is in time order, so the pass stops at the first window that reaches
/// `cutoff`.
///
/// # Errors
/// A database error.
pub fn prune_events(
    conn: &Connection,
    after: i64,
    limit: u32,
    cutoff: i64,
) -> Result<Window, DbError> {
    let Some((last, reached_cutoff)) =
        window(conn, "webhook_events", "received_at", after, limit, cutoff)?
    else {
        return Ok(Window::PAST_THE_END);
    };
    let sql = format!(
        "DELETE FROM webhook_events
         WHERE id > :after AND id <= :last AND received_at < :cutoff
           AND (subscription_id IS NULL
                OR EXISTS (SELECT 1 FROM subscriptions s
                           WHERE s.id = webhook_events.subscription_id AND {ENDED_BEFORE}))"
    );
    let deleted = conn
        .prepare_cached(&sql)?
        .execute(rusqlite::named_params! {
            ":after": after, ":last": last, ":cutoff": cutoff,
        })?;
    Ok(Window {
        deleted: u64::try_from(deleted).unwrap_or(u64::MAX),
        next: (!reached_cutoff).then_some(last),
    })
}

/// Deletes, in the window, the subscriptions that ended before `cutoff` and the checkouts
/// created before it and never paid. Their deliveries, if any are left, lose the link
/// (`ON DELETE SET NULL`) and go by their age.
///
/// # Errors
/// A database error.
pub fn prune_subscriptions(
    conn: &Connection,
    after: i64,
    limit: u32,
    cutoff: i64,
) -> Result<Window, DbError> {
    // Not in time order (a row changes after it is made): every window is looked at.
    let Some((last, _)) = window(conn, "subscriptions", "created_at", after, limit, cutoff)? else {
        return Ok(Window::PAST_THE_END);
    };
    let sql = format!(
        "DELETE FROM subscriptions AS s
         WHERE s.id > :after AND s.id <= :last
           AND (({ENDED_BEFORE})
                OR (s.status = 'pending' AND s.role_applied = 0 AND s.created_at < :cutoff))"
    );
    let deleted = conn
        .prepare_cached(&sql)?
        .execute(rusqlite::named_params! {
            ":after": after, ":last": last, ":cutoff": cutoff,
        })?;
    Ok(Window {
        deleted: u64::try_from(deleted).unwrap_or(u64::MAX),
        next: Some(last),
    })
}

/// Deletes, in the window, the members with no subscription left who were last seen before
/// `idle_since`: nothing is sold to them, and an id and a name are personal data kept for
/// no purpose.
///
/// # Errors
/// A database error.
pub fn prune_members(
    conn: &Connection,
    after: i64,
    limit: u32,
    idle_since: i64,
) -> Result<Window, DbError> {
    let Some((last, _)) = window(conn, "members", "updated_at", after, limit, idle_since)? else {
        return Ok(Window::PAST_THE_END);
    };
    let deleted = conn
        .prepare_cached(
            "DELETE FROM members AS m
             WHERE m.rowid > ?1 AND m.rowid <= ?2 AND m.updated_at < ?3
               AND NOT EXISTS (SELECT 1 FROM subscriptions s
                               WHERE s.guild_id = m.guild_id AND s.user_id = m.user_id)",
        )?
        .execute(params![after, last, idle_since])?;
    Ok(Window {
        deleted: u64::try_from(deleted).unwrap_or(u64::MAX),
        next: Some(last),
    })
}
