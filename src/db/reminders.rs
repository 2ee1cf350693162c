//! The reminders' rows (`crate::reminders`): which subscriptions are due a reminder, the
//! claim written before one is sent, the mark written after, and the members' choice.

use rusqlite::{Connection, params};

use super::DbError;
use super::subscriptions::{self, Subscription};
use crate::domain::{GuildId, UnixMillis, UserId};

/// Why a member is reminded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bank-transfer pass ends soon: pay again to extend it.
    PassEnding,
    /// A subscription that will not renew (cancelled at its period's end) ends soon.
    Ending,
    /// A card payment failed (past due): fix the card before the grace period ends.
    PastDue,
}

impl Kind {
    /// The audit trail's name (`reminder.<name>`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PassEnding => "pass_ending",
            Self::Ending => "ending",
            Self::PastDue => "past_due",
        }
    }
}

/// A reminder to send: the subscription, why, and its key (see [`claim_due`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub sub: Subscription,
    pub kind: Kind,
    pub key: String,
}

/// Every ending entitlement (`?1` now, `?2` now + the reminder window) and failed payment
/// whose member wants reminders and is in the guild. Complimentary access (provider `admin`)
/// is the owner's to end, and test purchases (`/doctor`'s, minutes long) are the owner's own:
/// neither is reminded.
const CANDIDATES: &str = "
    SELECT s.id, s.reminder_key, s.reminder_sent_at FROM subscriptions s
    JOIN members m ON m.guild_id = s.guild_id AND m.user_id = s.user_id
    WHERE s.period_end > ?1 AND s.period_end <= ?2
      AND (s.status = 'canceled'
           OR (s.status = 'active' AND (s.payment_code IS NOT NULL OR s.cancel_at_period_end = 1)))
      AND s.provider <> 'admin' AND s.test = 0 AND m.reminders = 1 AND m.in_guild = 1
    UNION ALL
    SELECT s.id, s.reminder_key, s.reminder_sent_at FROM subscriptions s
    JOIN members m ON m.guild_id = s.guild_id AND m.user_id = s.user_id
    WHERE s.status = 'past_due' AND s.period_end IS NOT NULL
      AND s.provider <> 'admin' AND s.test = 0 AND m.reminders = 1 AND m.in_guild = 1";

/// The reminders to send now, each claimed: its key is written (with no sent time) before it
/// is returned, in this transaction. A subscription whose current reminder was claimed and
/// never marked sent (Docobo stopped, or Discord failed, in between) is returned again with
/// the same key; one marked sent is not. The key names the end it is about
/// (`end:<period_end>`, `past_due:<period_end>`), so a renewal, which moves the end, gets a
/// reminder of its own next time. A member who holds the role past this end through
/// another subscription is not reminded. Run it in a write transaction.
///
/// # Errors
/// A database error.
pub fn claim_due(
    conn: &Connection,
    now: UnixMillis,
    window_ms: i64,
    limit: usize,
) -> Result<Vec<Due>, DbError> {
    let mut stmt = conn.prepare_cached(CANDIDATES)?;
    let found = stmt
        .query_map(params![now, now.saturating_add(window_ms)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut due = Vec::new();
    for (id, claimed, sent_at) in found {
        if due.len() >= limit {
            break;
        }
        let Some(sub) = subscriptions::by_id(conn, id)? else {
            continue;
        };
        let Some(end) = sub.state.period_end else {
            continue;
        };
        let (kind, key) = match sub.state.status {
            crate::domain::SubscriptionStatus::PastDue => {
                (Kind::PastDue, format!("past_due:{end}"))
            }
            _ if sub.payment_code.is_some() => (Kind::PassEnding, format!("end:{end}")),
            _ => (Kind::Ending, format!("end:{end}")),
        };
        let already = claimed.as_deref() == Some(key.as_str());
        if already && sent_at.is_some() {
            continue;
        }
        let holding =
            subscriptions::for_holding(conn, sub.guild_id, sub.user_id, sub.paid_role_id)?;
        if holding
            .iter()
            .any(|other| other.id != sub.id && other.is_entitled(end.saturating_add(1), 0))
        {
            continue;
        }
        if !already {
            conn.prepare_cached(
                "UPDATE subscriptions SET reminder_key = ?2, reminder_sent_at = NULL WHERE id = ?1",
            )?
            .execute(params![id, key])?;
        }
        due.push(Due { sub, kind, key });
    }
    Ok(due)
}

/// Records that the reminder `key` of subscription `id` went out (or cannot ever: the
/// member's DMs are closed). Returns `false` if the subscription has moved on to another
/// reminder meanwhile.
///
/// # Errors
/// A database error.
pub fn mark_sent(conn: &Connection, id: i64, key: &str, at: UnixMillis) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "UPDATE subscriptions SET reminder_sent_at = ?3 WHERE id = ?1 AND reminder_key = ?2",
        )?
        .execute(params![id, key, at])?
        == 1)
}

/// Turns a member's reminders in a guild on or off. Returns whether they are a known member.
///
/// # Errors
/// A database error.
pub fn set_wanted(
    conn: &Connection,
    guild: GuildId,
    user: UserId,
    wanted: bool,
) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "UPDATE members SET reminders = ?3,
                 updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
             WHERE guild_id = ?1 AND user_id = ?2",
        )?
        .execute(params![guild.as_i64(), user.as_i64(), wanted])?
        == 1)
}
