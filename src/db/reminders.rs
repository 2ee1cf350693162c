//! The reminders' rows (`crate::reminders`): which subscriptions are due a reminder, the
//! claim written before one is sent, the mark written after, and the members' choice.

use rusqlite::{Connection, params};

use super::DbError;
use super::subscriptions::{self, Subscription};
use crate::domain::{GuildId, UnixMillis, UserId};

/// Why a member is reminded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
/// not yet reminded of its current end (so the writer never reads what was sent already),
/// whose member wants reminders and is in the guild, in a guild the bot is still in (one it
/// left is not served: see `guilds.left_at`). Complimentary access (provider `admin`)
/// is the owner's to end, and test purchases (`/doctor`'s, minutes long) are the owner's own:
/// neither is reminded.
const CANDIDATES: &str = "
    SELECT s.id, s.reminder_key, s.reminder_sent_at FROM subscriptions s
    JOIN members m ON m.guild_id = s.guild_id AND m.user_id = s.user_id
    JOIN guilds g ON g.guild_id = s.guild_id AND g.left_at IS NULL
    WHERE s.period_end > ?1 AND s.period_end <= ?2
      AND (s.status = 'canceled'
           OR (s.status = 'active' AND (s.payment_code IS NOT NULL OR s.cancel_at_period_end = 1)))
      AND s.provider <> 'admin' AND s.test = 0 AND m.reminders = 1 AND m.in_guild = 1
      AND (s.reminder_sent_at IS NULL OR s.reminder_key IS NOT 'end:' || s.period_end)
    UNION ALL
    SELECT s.id, s.reminder_key, s.reminder_sent_at FROM subscriptions s
    JOIN members m ON m.guild_id = s.guild_id AND m.user_id = s.user_id
    JOIN guilds g ON g.guild_id = s.guild_id AND g.left_at IS NULL
    WHERE s.status = 'past_due' AND s.period_end IS NOT NULL
      AND s.provider <> 'admin' AND s.test = 0 AND m.reminders = 1 AND m.in_guild = 1
      AND (s.reminder_sent_at IS NULL OR s.reminder_key IS NOT 'past_due:' || s.period_end)";

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

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::db::open_connection;

    const HOUR: i64 = 3_600_000;
    const NOW: i64 = 1_800_000_000_000;

    /// A database as today's main leaves it (V10): a SePay pass ending in two days, a Polar
    /// subscription renewing in 20 days, one cancelled at its end in a day, a past-due one, a
    /// complimentary access ending tomorrow, and each holding's role given.
    fn v10_database(dir: &std::path::Path) -> Connection {
        let mut conn =
            open_connection(&dir.join("v10.db"), std::time::Duration::from_secs(5)).expect("open");
        crate::db::migrate_to(&mut conn, 10).expect("migrate to V10");
        conn.execute_batch(&format!(
            "INSERT INTO guilds (guild_id, webhook_key) VALUES (1, 'k1');
             INSERT INTO paid_roles (id, guild_id, role_id, price_minor, currency, billing) VALUES
                 (1, 1, 10, 50000, 'VND', 'days:30'), (2, 1, 20, 499, 'USD', 'monthly');
             INSERT INTO members (guild_id, user_id) VALUES (1, 100), (1, 101), (1, 102), (1, 103), (1, 104);
             INSERT INTO subscriptions (id, guild_id, user_id, paid_role_id, provider, scope,
                     external_id, status, period_end, cancel_at_period_end, payment_code,
                     role_applied) VALUES
                 (1, 1, 100, 1, 'sepay', '1', 'tx1', 'active', {pass}, 0, 'DCB1', 1),
                 (2, 1, 101, 2, 'polar', '1', 'sub2', 'active', {renews}, 0, NULL, 1),
                 (3, 1, 102, 2, 'polar', '1', 'sub3', 'active', {cancelled}, 1, NULL, 1),
                 (4, 1, 103, 2, 'polar', '1', 'sub4', 'past_due', {due}, 0, NULL, 1),
                 (5, 1, 104, 2, 'admin', '1', 'comp-1', 'active', {comp}, 0, NULL, 1);",
            pass = NOW + 48 * HOUR,
            renews = NOW + 480 * HOUR,
            cancelled = NOW + 24 * HOUR,
            due = NOW - HOUR,
            comp = NOW + 24 * HOUR,
        ))
        .expect("V10 rows");
        conn
    }

    fn holdings(conn: &Connection) -> Vec<(i64, i64, i64, String, Option<i64>, bool)> {
        conn.prepare(
            "SELECT id, user_id, paid_role_id, status, period_end, role_applied
             FROM subscriptions ORDER BY id",
        )
        .expect("prepare")
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
    }

    #[test]
    fn v11_keeps_every_holding_and_gives_everyone_reminders_and_the_keep_policy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = v10_database(dir.path());
        let before = holdings(&conn);
        crate::db::migrate(&mut conn).expect("migrate to V11");
        assert_eq!(holdings(&conn), before);
        let wanted: i64 = conn
            .query_row(
                "SELECT count(*) FROM members WHERE reminders = 1",
                [],
                |r| r.get(0),
            )
            .expect("members");
        assert_eq!(wanted, 5);
        let keep: i64 = conn
            .query_row(
                "SELECT count(*) FROM paid_roles WHERE partial_refund = 'keep'",
                [],
                |r| r.get(0),
            )
            .expect("roles");
        assert_eq!(keep, 2);
    }

    #[test]
    fn what_is_due_is_claimed_once_sent_once_and_a_new_end_is_due_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = v10_database(dir.path());
        crate::db::migrate(&mut conn).expect("migrate");
        let due = |conn: &Connection| {
            claim_due(conn, NOW, 72 * HOUR, 100)
                .expect("claim")
                .into_iter()
                .map(|d| (d.sub.id, d.kind, d.key))
                .collect::<std::collections::BTreeSet<_>>()
        };
        let first = due(&conn);
        assert_eq!(
            first,
            [
                (1, Kind::PassEnding, format!("end:{}", NOW + 48 * HOUR)),
                (3, Kind::Ending, format!("end:{}", NOW + 24 * HOUR)),
                (4, Kind::PastDue, format!("past_due:{}", NOW - HOUR)),
            ]
            .into_iter()
            .collect(),
            "not the renewing one, not the complimentary access"
        );
        // Claimed and not marked sent (Docobo stopped): due again, with the same key.
        assert_eq!(due(&conn), first);
        for (id, _, key) in &first {
            assert!(mark_sent(&conn, *id, key, NOW).expect("mark"));
        }
        assert!(due(&conn).is_empty(), "sent once");
        // The pass is renewed: its new end is due in its own time, not now.
        conn.execute(
            "UPDATE subscriptions SET period_end = period_end + 720 * 3600000 WHERE id = 1",
            [],
        )
        .expect("renew");
        assert!(due(&conn).is_empty());
        let later = claim_due(&conn, NOW + 720 * HOUR, 72 * HOUR, 100).expect("claim");
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].key, format!("end:{}", NOW + 768 * HOUR));
        // A member who stopped reminders gets none.
        conn.execute(
            "UPDATE subscriptions SET period_end = period_end + 720 * 3600000 WHERE id = 1",
            [],
        )
        .expect("renew");
        assert!(
            set_wanted(
                &conn,
                GuildId::new(1).expect("g"),
                UserId::new(100).expect("u"),
                false
            )
            .expect("off")
        );
        assert!(
            claim_due(&conn, NOW + 1440 * HOUR, 72 * HOUR, 100)
                .expect("claim")
                .is_empty()
        );
    }

    #[test]
    fn nothing_is_reminded_in_a_guild_the_bot_has_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = v10_database(dir.path());
        crate::db::migrate(&mut conn).expect("migrate");
        let guild = GuildId::new(1).expect("g");
        assert!(crate::db::guilds::mark_left(&conn, guild, NOW).expect("left"));
        assert!(
            claim_due(&conn, NOW, 72 * HOUR, 100)
                .expect("claim")
                .is_empty()
        );
        conn.execute("UPDATE guilds SET left_at = NULL", [])
            .expect("back");
        assert_eq!(
            claim_due(&conn, NOW, 72 * HOUR, 100).expect("claim").len(),
            3
        );
    }
}
