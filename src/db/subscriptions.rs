//! `subscriptions`: one member's entitlement to one paid role, and its role-sync state.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::DbError;
use crate::domain::{
    GuildId, ProviderId, Scope, SubscriptionState, SubscriptionStatus, UnixMillis, UserId,
};

/// A stored subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: i64,
    pub guild_id: GuildId,
    pub user_id: UserId,
    pub paid_role_id: i64,
    pub provider: ProviderId,
    /// Whose credentials created it: only deliveries in this scope find it by
    /// `external_id`.
    pub scope: Scope,
    pub external_id: Option<String>,
    pub state: SubscriptionState,
    pub cancel_at_period_end: bool,
    pub payment_code: Option<String>,
    /// Whether the role is on the member at Discord, as far as Docobo knows.
    pub role_applied: bool,
    /// Which roles its last sync left on the member (see [`super::tiers::applied_roles`]).
    pub applied_roles: Option<String>,
    /// Failed role-sync attempts since the last success.
    pub sync_attempts: u32,
    pub last_sync_error: Option<String>,
    /// What the log channel was last told (`status:period_end`).
    pub announced: Option<String>,
    /// Moves whenever something makes the subscription due for role sync; a sync reschedules
    /// only what it read (see [`mark_synced`]).
    pub sync_version: i64,
}

impl Subscription {
    /// The grace period that applies: none for a bank-transfer pass (it has no renewal that
    /// could be late), the configured one otherwise.
    #[must_use]
    pub fn grace_ms(&self, configured: i64) -> i64 {
        if self.payment_code.is_some() {
            0
        } else {
            configured
        }
    }

    /// Whether it entitles the member at `now`.
    #[must_use]
    pub fn is_entitled(&self, now: UnixMillis, configured_grace_ms: i64) -> bool {
        self.state
            .is_entitled(now, self.grace_ms(configured_grace_ms))
    }
}

#[cfg(test)]
impl Subscription {
    /// A stored subscription for unit tests: guild 10, user 20, paid role 1, Polar.
    pub(crate) fn example(
        status: SubscriptionStatus,
        period_end: Option<UnixMillis>,
        payment_code: Option<&str>,
    ) -> Self {
        Self {
            id: 1,
            guild_id: GuildId::new(10).expect("guild"),
            user_id: UserId::new(20).expect("user"),
            paid_role_id: 1,
            provider: ProviderId::parse("polar").expect("provider"),
            scope: Scope::Guild(GuildId::new(10).expect("guild")),
            external_id: None,
            state: SubscriptionState {
                status,
                period_end,
                last_event_at: None,
            },
            cancel_at_period_end: false,
            payment_code: payment_code.map(str::to_owned),
            role_applied: false,
            applied_roles: None,
            sync_attempts: 0,
            last_sync_error: None,
            announced: None,
            sync_version: 0,
        }
    }
}

/// A subscription to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    pub guild_id: GuildId,
    pub user_id: UserId,
    pub paid_role_id: i64,
    pub provider: ProviderId,
    /// Whose credentials created it (a guild scope must be the subscription's guild).
    pub scope: Scope,
    pub external_id: Option<String>,
    pub state: SubscriptionState,
    pub payment_code: Option<String>,
}

const COLUMNS: &str = "id, guild_id, user_id, paid_role_id, provider, external_id, status, period_end, \
                       last_event_at, cancel_at_period_end, payment_code, role_applied, \
                       sync_attempts, last_sync_error, announced, sync_version, scope, applied_roles";

fn corrupt(message: &dyn std::fmt::Display) -> DbError {
    DbError::Corrupt {
        table: "subscriptions",
        message: message.to_string(),
    }
}

/// Reads a row selected with [`COLUMNS`]. The outer error is SQLite's, the inner the domain's
/// refusal of a corrupt value.
fn raw(row: &Row<'_>) -> rusqlite::Result<Result<Subscription, DbError>> {
    let provider: String = row.get(4)?;
    let status: String = row.get(6)?;
    let guild: i64 = row.get(1)?;
    let user: i64 = row.get(2)?;
    let scope: String = row.get(16)?;
    let build = |provider: ProviderId,
                 status: SubscriptionStatus,
                 scope: Scope|
     -> rusqlite::Result<Subscription> {
        Ok(Subscription {
            id: row.get(0)?,
            guild_id: GuildId::from_i64(guild)
                .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(1, guild))?,
            user_id: UserId::from_i64(user)
                .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(2, user))?,
            paid_role_id: row.get(3)?,
            provider,
            scope,
            external_id: row.get(5)?,
            state: SubscriptionState {
                status,
                period_end: row.get(7)?,
                last_event_at: row.get(8)?,
            },
            cancel_at_period_end: row.get(9)?,
            payment_code: row.get(10)?,
            role_applied: row.get(11)?,
            applied_roles: row.get(17)?,
            sync_attempts: row.get(12)?,
            last_sync_error: row.get(13)?,
            announced: row.get(14)?,
            sync_version: row.get(15)?,
        })
    };
    let provider = match ProviderId::parse(&provider) {
        Ok(p) => p,
        Err(e) => return Ok(Err(corrupt(&e))),
    };
    let status = match SubscriptionStatus::parse(&status) {
        Ok(s) => s,
        Err(e) => return Ok(Err(corrupt(&e))),
    };
    let Some(scope) = Scope::parse(&scope) else {
        return Ok(Err(corrupt(&format_args!("unknown scope {scope:?}"))));
    };
    build(provider, status, scope).map(Ok)
}

fn many(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Subscription>, DbError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, raw)?;
    rows.map(|r| r?).collect()
}

/// Records a subscription, due for role sync at the database's clock.
///
/// # Errors
/// A duplicate `(provider, external_id)` or payment code ([`DbError::is_unique_violation`]);
/// an unknown member or paid role (foreign key).
pub fn insert(conn: &Connection, new: &NewSubscription) -> Result<Subscription, DbError> {
    insert_at(conn, new, super::now_ms())
}

/// Records a subscription, due for role sync at `now` (the services' clock).
///
/// # Errors
/// As [`insert`].
pub fn insert_at(
    conn: &Connection,
    new: &NewSubscription,
    now: UnixMillis,
) -> Result<Subscription, DbError> {
    conn.prepare_cached(
        "INSERT INTO subscriptions
             (guild_id, user_id, paid_role_id, provider, external_id, status, period_end, last_event_at,
              payment_code, cancel_at_period_end, next_sync_at, scope)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")?.execute(params![
            new.guild_id.as_i64(),
            new.user_id.as_i64(),
            new.paid_role_id,
            new.provider.as_str(),
            new.external_id,
            new.state.status.as_str(),
            new.state.period_end,
            new.state.last_event_at,
            new.payment_code,
            new.state.status == SubscriptionStatus::Canceled,
            now,
            new.scope.key(),
        ],
    )?;
    Ok(Subscription {
        id: conn.last_insert_rowid(),
        guild_id: new.guild_id,
        user_id: new.user_id,
        paid_role_id: new.paid_role_id,
        provider: new.provider.clone(),
        scope: new.scope,
        external_id: new.external_id.clone(),
        state: new.state,
        cancel_at_period_end: new.state.status == SubscriptionStatus::Canceled,
        payment_code: new.payment_code.clone(),
        role_applied: false,
        applied_roles: None,
        sync_attempts: 0,
        last_sync_error: None,
        announced: None,
        sync_version: 0,
    })
}

/// The subscription a provider knows by `external_id` in one credential scope (the same id
/// in another scope is another account's, and not found).
pub fn by_external_id(
    conn: &Connection,
    provider: &ProviderId,
    scope: Scope,
    external_id: &str,
) -> Result<Option<Subscription>, DbError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE provider = ?1 AND scope = ?2 AND external_id = ?3"
    ))?
    .query_row(
        params![provider.as_str(), scope.key(), external_id],
        raw,
    )
    .optional()?
    .transpose()
}

/// The subscription waiting for a bank transfer carrying `code` (codes are unique across
/// scopes: Docobo makes them; a delivery checks the scope of what it finds).
pub fn by_payment_code(conn: &Connection, code: &str) -> Result<Option<Subscription>, DbError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE payment_code = ?1"
    ))?
    .query_row([code], raw)
    .optional()?
    .transpose()
}

/// Stores a new state-machine state and marks the subscription due for role sync now.
pub fn set_state(
    conn: &Connection,
    id: i64,
    state: SubscriptionState,
    cancel_at_period_end: bool,
    now: UnixMillis,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE subscriptions SET status = ?2, period_end = ?3, last_event_at = ?4,
             cancel_at_period_end = ?5, sync_attempts = 0, next_sync_at = ?6,
             sync_version = sync_version + 1,
             updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        state.status.as_str(),
        state.period_end,
        state.last_event_at,
        cancel_at_period_end,
        now,
    ])?;
    Ok(())
}

/// Marks a subscription as coming from a provider's test mode or an owner's test purchase,
/// so that counts keep it apart (its role is granted all the same).
pub fn set_test(conn: &Connection, id: i64) -> Result<(), DbError> {
    conn.prepare_cached("UPDATE subscriptions SET test = 1 WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Whether a subscription is a test one (see [`set_test`]).
pub fn is_test(conn: &Connection, id: i64) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("SELECT test FROM subscriptions WHERE id = ?1")?
        .query_row([id], |r| r.get(0))?)
}

/// Ends a subscription whose provider subscription moved to another paid role (a plan
/// change): it stops being found by its provider id (which the new row takes), becomes
/// `revoked` and is due for role sync now, so the worker takes the old role away.
pub fn end_for_plan_change(
    conn: &Connection,
    id: i64,
    occurred_at: UnixMillis,
    now: UnixMillis,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE subscriptions SET external_id = NULL, status = 'revoked',
             last_event_at = max(coalesce(last_event_at, ?2), ?2),
             cancel_at_period_end = 0, sync_attempts = 0, next_sync_at = ?3,
             sync_version = sync_version + 1,
             updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
         WHERE id = ?1",
    )?
    .execute(params![id, occurred_at, now])?;
    Ok(())
}

/// Subscriptions whose role sync is due at `now`, oldest first.
pub fn due(conn: &Connection, now: UnixMillis, limit: u32) -> Result<Vec<Subscription>, DbError> {
    many(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM subscriptions WHERE next_sync_at <= ?1 ORDER BY next_sync_at LIMIT ?2"
        ),
        params![now, limit],
    )
}

/// The query behind [`next_due_at`] (public so that a test can count what it reads). The
/// `IS NOT NULL` lets SQLite answer from the first entry of the partial index
/// `subscriptions_sync_due`; without it, `min()` reads every row.
#[doc(hidden)]
pub const NEXT_DUE_AT: &str =
    "SELECT min(next_sync_at) FROM subscriptions WHERE next_sync_at IS NOT NULL";

/// When the next role sync is due, if any is scheduled.
pub fn next_due_at(conn: &Connection) -> Result<Option<UnixMillis>, DbError> {
    Ok(conn
        .prepare_cached(NEXT_DUE_AT)?
        .query_row([], |row| row.get(0))?)
}

/// A member's subscriptions in a guild, newest first.
pub fn for_member(
    conn: &Connection,
    guild: GuildId,
    user: UserId,
) -> Result<Vec<Subscription>, DbError> {
    many(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM subscriptions WHERE guild_id = ?1 AND user_id = ?2 ORDER BY id DESC"
        ),
        params![guild.as_i64(), user.as_i64()],
    )
}

/// The subscription with this id.
///
/// # Errors
/// A database error.
pub fn by_id(conn: &Connection, id: i64) -> Result<Option<Subscription>, DbError> {
    Ok(many(
        conn,
        &format!("SELECT {COLUMNS} FROM subscriptions WHERE id = ?1"),
        [id],
    )?
    .pop())
}

/// Every subscription that gives (or gave) one member one paid role: together they decide
/// whether the member should hold it.
pub fn for_holding(
    conn: &Connection,
    guild: GuildId,
    user: UserId,
    paid_role_id: i64,
) -> Result<Vec<Subscription>, DbError> {
    many(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM subscriptions
             WHERE guild_id = ?1 AND user_id = ?2 AND paid_role_id = ?3 ORDER BY id"
        ),
        params![guild.as_i64(), user.as_i64(), paid_role_id],
    )
}

/// Whether a holding's latest subscription is a test purchase.
///
/// # Errors
/// A database error.
pub fn holding_latest_is_test(
    conn: &Connection,
    guild: GuildId,
    user: UserId,
    paid_role_id: i64,
) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT test FROM subscriptions
             WHERE guild_id = ?1 AND user_id = ?2 AND paid_role_id = ?3
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![guild.as_i64(), user.as_i64(), paid_role_id], |r| {
            r.get::<_, bool>(0)
        })
        .optional()?
        .unwrap_or(false))
}

/// Records which roles are on the member for the subscriptions a sync read (`seen`), e.g.
/// after a sync that failed midway (what it did give or take is not done again blindly).
///
/// # Errors
/// A database error.
pub fn set_applied(
    conn: &Connection,
    seen: &[Subscription],
    applied: &std::collections::BTreeSet<crate::domain::RoleId>,
) -> Result<(), DbError> {
    let mut update = conn.prepare_cached(
        "UPDATE subscriptions SET role_applied = ?2, applied_roles = ?3 WHERE id = ?1",
    )?;
    let text = (!applied.is_empty()).then(|| super::tiers::applied_text(applied));
    for sub in seen {
        update.execute(params![sub.id, !applied.is_empty(), text])?;
    }
    Ok(())
}

/// Records a successful role sync on the subscriptions it read (`seen`): the role is (or
/// is not) on the member, and the next check is at `next_sync_at` (when an entitlement
/// ends), or none. A row whose [`Subscription::sync_version`] moved since it was read keeps
/// its due time: whatever changed it while Discord was being called (a refund, the sweep)
/// wants a sync that sees the change.
pub fn mark_synced(
    conn: &Connection,
    seen: &[Subscription],
    applied: &std::collections::BTreeSet<crate::domain::RoleId>,
    next_sync_at: Option<UnixMillis>,
) -> Result<(), DbError> {
    let mut update = conn.prepare_cached(
        "UPDATE subscriptions SET role_applied = ?3, applied_roles = ?5, sync_attempts = 0,
             last_sync_error = NULL,
             next_sync_at = CASE WHEN sync_version = ?2 THEN ?4 ELSE next_sync_at END,
             updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
         WHERE id = ?1",
    )?;
    let text = (!applied.is_empty()).then(|| super::tiers::applied_text(applied));
    for sub in seen {
        update.execute(params![
            sub.id,
            sub.sync_version,
            !applied.is_empty(),
            next_sync_at,
            text
        ])?;
    }
    Ok(())
}

/// Whether any of the subscriptions a sync read (`seen`) changed since (its
/// [`Subscription::sync_version`] moved) or is gone.
pub fn any_moved(conn: &Connection, seen: &[Subscription]) -> Result<bool, DbError> {
    let mut version =
        conn.prepare_cached("SELECT sync_version FROM subscriptions WHERE id = ?1")?;
    for sub in seen {
        let now: Option<i64> = version.query_row([sub.id], |r| r.get(0)).optional()?;
        if now != Some(sub.sync_version) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Records a failed role sync on the subscriptions it read (`seen`), and when to retry
/// (`None`: not until something changes, e.g. the member rejoins). As in [`mark_synced`], a
/// row changed meanwhile stays due.
pub fn mark_failed(
    conn: &Connection,
    seen: &[Subscription],
    error: &str,
    next_sync_at: Option<UnixMillis>,
) -> Result<(), DbError> {
    let mut update = conn.prepare_cached(
        "UPDATE subscriptions SET sync_attempts = sync_attempts + 1, last_sync_error = ?3,
             next_sync_at = CASE WHEN sync_version = ?2 THEN ?4 ELSE next_sync_at END,
             updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
         WHERE id = ?1",
    )?;
    for sub in seen {
        update.execute(params![sub.id, sub.sync_version, error, next_sync_at])?;
    }
    Ok(())
}

/// Makes every subscription of a member due now; with `role_applied`, also records what
/// Discord was seen to have (a hand-removed role, a member who left). Returns how many.
pub fn mark_member_due(
    conn: &Connection,
    guild: GuildId,
    user: UserId,
    paid_role_id: Option<i64>,
    role_applied: Option<bool>,
    now: UnixMillis,
) -> Result<usize, DbError> {
    Ok(conn
        .prepare_cached(
            "UPDATE subscriptions SET next_sync_at = ?5, sync_attempts = 0,
                 role_applied = coalesce(?4, role_applied), sync_version = sync_version + 1
             WHERE guild_id = ?1 AND user_id = ?2 AND (?3 IS NULL OR paid_role_id = ?3)",
        )?
        .execute(params![
            guild.as_i64(),
            user.as_i64(),
            paid_role_id,
            role_applied,
            now
        ])?)
}

/// Makes every subscription of a tier due now (what it gives changed). Returns how many.
///
/// # Errors
/// A database error.
pub fn mark_tier_due(
    conn: &Connection,
    paid_role_id: i64,
    now: UnixMillis,
) -> Result<usize, DbError> {
    mark_due_where(conn, "paid_role_id = ?1", paid_role_id, now)
}

/// Makes every subscription of a guild due now (the bot is back in it). Returns how many.
pub fn mark_guild_due(
    conn: &Connection,
    guild: GuildId,
    now: UnixMillis,
) -> Result<usize, DbError> {
    mark_due_where(conn, "guild_id = ?1", guild.as_i64(), now)
}

/// Makes the subscriptions `filter` (on `?1` = `key`) selects due at `now`.
fn mark_due_where(
    conn: &Connection,
    filter: &str,
    key: i64,
    now: UnixMillis,
) -> Result<usize, DbError> {
    Ok(conn
        .prepare_cached(&format!(
            "UPDATE subscriptions SET next_sync_at = ?2, sync_attempts = 0,
                 sync_version = sync_version + 1
             WHERE {filter}"
        ))?
        .execute(params![key, now])?)
}

/// Stops the role syncs of subscriptions the worker read (`seen`) in a guild the bot has
/// left: no call to Discord can succeed there. A row changed since it was read stays due
/// (the next pass parks it); [`mark_guild_due`] resumes them all.
pub fn park(conn: &Connection, seen: &[Subscription]) -> Result<(), DbError> {
    let mut update = conn.prepare_cached(
        "UPDATE subscriptions SET next_sync_at = NULL WHERE id = ?1 AND sync_version = ?2",
    )?;
    for sub in seen {
        update.execute(params![sub.id, sub.sync_version])?;
    }
    Ok(())
}

/// Makes due now every live subscription whose paid period has ended (the sweep's safety net
/// for expiries; normally each is scheduled at its end already). Returns how many.
pub fn mark_ended_due(conn: &Connection, now: UnixMillis) -> Result<usize, DbError> {
    Ok(conn
        .prepare_cached(
            "UPDATE subscriptions SET next_sync_at = ?1, sync_version = sync_version + 1
             WHERE status IN ('active', 'canceled', 'past_due', 'trialing') AND period_end <= ?1
               AND (next_sync_at IS NULL OR next_sync_at > ?1)
               AND guild_id NOT IN (SELECT guild_id FROM guilds WHERE left_at IS NOT NULL)",
        )?
        .execute([now])?)
}

/// Every member Docobo knows (buyers, past buyers, members who started a checkout) in the
/// guilds the bot is in: what the sweep checks at Discord. Without the `GUILD_MEMBERS`
/// intent Docobo cannot list the others, so a paid role given by hand to a stranger goes
/// unnoticed.
pub fn members_to_check(conn: &Connection) -> Result<Vec<(GuildId, UserId)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT guild_id, user_id FROM members
         WHERE guild_id NOT IN (SELECT guild_id FROM guilds WHERE left_at IS NOT NULL)
         ORDER BY guild_id, user_id",
    )?;
    let rows = stmt.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))?;
    rows.map(|r| {
        let (g, u) = r?;
        Ok((
            super::id_from("subscriptions", g)?,
            super::id_from("subscriptions", u)?,
        ))
    })
    .collect()
}

/// Per provider, its subscriptions that are running and renew through its webhooks (not
/// bank-transfer passes, which only arrive when someone pays; not test ones).
pub fn renewing_by_provider(conn: &Connection) -> Result<Vec<(String, i64)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT provider, count(*) FROM subscriptions
         WHERE status IN ('active', 'trialing', 'past_due') AND payment_code IS NULL AND test = 0
         GROUP BY provider",
    )?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records what the log channel was told about a subscription.
pub fn set_announced(conn: &Connection, id: i64, announced: &str) -> Result<(), DbError> {
    conn.prepare_cached("UPDATE subscriptions SET announced = ?2 WHERE id = ?1")?
        .execute(params![id, announced])?;
    Ok(())
}

/// A member's unpaid bank-transfer checkout (or running pass) for a paid role: `/join` shows
/// the same payment code again instead of making a new one.
pub fn with_code_for(
    conn: &Connection,
    guild: GuildId,
    user: UserId,
    paid_role_id: i64,
) -> Result<Option<Subscription>, DbError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM subscriptions
         WHERE guild_id = ?1 AND user_id = ?2 AND paid_role_id = ?3 AND payment_code IS NOT NULL
           AND status IN ('pending', 'active')
         ORDER BY id DESC LIMIT 1"
    ))?
    .query_row(params![guild.as_i64(), user.as_i64(), paid_role_id], raw)
    .optional()?
    .transpose()
}

/// Makes every holding whose last sync failed due now (the owner may have fixed the cause),
/// in one guild or all. Returns how many subscriptions.
pub fn mark_failed_due(
    conn: &Connection,
    guild: Option<GuildId>,
    now: UnixMillis,
) -> Result<usize, DbError> {
    Ok(conn
        .prepare_cached(MARK_FAILED_DUE)?
        .execute(params![guild.map(GuildId::as_i64), now])?)
}

/// The statement behind [`mark_failed_due`] (public so that a test can count what it
/// reads): `?1` the guild or NULL for all, `?2` now.
#[doc(hidden)]
pub const MARK_FAILED_DUE: &str =
    "UPDATE subscriptions SET next_sync_at = ?2, sync_version = sync_version + 1
     WHERE last_sync_error IS NOT NULL AND (?1 IS NULL OR guild_id = ?1)
       AND (next_sync_at IS NULL OR next_sync_at > ?2)";

/// Until when the payment code of a bank-transfer checkout may be paid (`None`: no limit).
pub fn payment_code_valid_until(conn: &Connection, id: i64) -> Result<Option<UnixMillis>, DbError> {
    Ok(conn
        .prepare_cached("SELECT payment_code_valid_until FROM subscriptions WHERE id = ?1")?
        .query_row([id], |row| row.get::<_, Option<i64>>(0))
        .optional()?
        .flatten())
}

/// Sets until when the payment code of subscription `id` may be paid (a `/join` renews it).
pub fn set_payment_code_valid_until(
    conn: &Connection,
    id: i64,
    valid_until: Option<UnixMillis>,
) -> Result<(), DbError> {
    conn.prepare_cached("UPDATE subscriptions SET payment_code_valid_until = ?2 WHERE id = ?1")?
        .execute(params![id, valid_until])?;
    Ok(())
}
