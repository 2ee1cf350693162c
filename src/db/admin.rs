//! Queries of the owner's admin actions (`crate::admin`): a member's whole history, the
//! deletion of a member's personal data, the audit records.

use rusqlite::{Connection, params};

use super::DbError;
use super::webhook_events::{self, NewWebhookEvent, Outcome};
use crate::domain::{GuildId, ProviderId, Scope, UnixMillis, UserId};

/// The provider name of admin audit records (and of complimentary subscriptions).
pub const ADMIN_PROVIDER: &str = "admin";

/// One of a member's subscriptions, as `lookup` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySubscription {
    pub id: i64,
    pub role_id: i64,
    pub provider: String,
    pub external_id: Option<String>,
    pub status: String,
    pub period_end: Option<UnixMillis>,
    pub role_applied: bool,
    pub sync_attempts: u32,
    pub last_sync_error: Option<String>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// One recorded event about a member: a provider delivery or an admin action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEvent {
    pub received_at: UnixMillis,
    pub provider: String,
    pub event_type: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub subscription_id: Option<i64>,
}

/// A member's subscriptions (newest first) and the events recorded about them or their
/// subscriptions (newest first).
///
/// # Errors
/// A database error.
pub fn history(
    conn: &Connection,
    guild: GuildId,
    user: UserId,
) -> Result<(Vec<HistorySubscription>, Vec<HistoryEvent>), DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.id, p.role_id, s.provider, s.external_id, s.status, s.period_end,
                s.role_applied, s.sync_attempts, s.last_sync_error, s.created_at, s.updated_at
         FROM subscriptions s JOIN paid_roles p ON p.id = s.paid_role_id
         WHERE s.guild_id = ?1 AND s.user_id = ?2 ORDER BY s.created_at DESC, s.id DESC",
    )?;
    let subs = stmt
        .query_map(params![guild.as_i64(), user.as_i64()], |r| {
            Ok(HistorySubscription {
                id: r.get(0)?,
                role_id: r.get(1)?,
                provider: r.get(2)?,
                external_id: r.get(3)?,
                status: r.get(4)?,
                period_end: r.get(5)?,
                role_applied: r.get(6)?,
                sync_attempts: r.get(7)?,
                last_sync_error: r.get(8)?,
                created_at: r.get(9)?,
                updated_at: r.get(10)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT received_at, provider, event_type, outcome, detail, subscription_id
         FROM webhook_events
         WHERE {ABOUT_MEMBER}
         ORDER BY received_at DESC, id DESC"
    ))?;
    let events = stmt
        .query_map(
            params![guild.as_i64(), user.as_i64(), user.to_string()],
            |r| {
                Ok(HistoryEvent {
                    received_at: r.get(0)?,
                    provider: r.get(1)?,
                    event_type: r.get(2)?,
                    outcome: r.get(3)?,
                    detail: r.get(4)?,
                    subscription_id: r.get(5)?,
                })
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((subs, events))
}

/// The events about a member (`?1` guild, `?2` user id, `?3` the user id as text): those of
/// their subscriptions, and any of this guild (or of no guild) whose normalized event names
/// them (ids are JSON strings there) or whose detail mentions them (`<@id>`).
const ABOUT_MEMBER: &str =
    "subscription_id IN (SELECT id FROM subscriptions WHERE guild_id = ?1 AND user_id = ?2)
       OR ((guild_id = ?1 OR guild_id IS NULL)
           AND (instr(event, '\"' || ?3 || '\"') > 0
                OR instr(coalesce(detail, ''), '<@' || ?3 || '>') > 0))";

/// What [`forget_member`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ForgottenMember {
    pub subscriptions: usize,
    /// Events kept for the totals with everything that identified the member removed.
    pub events_anonymised: usize,
    pub member_rows: usize,
}

/// Deletes a member's personal data in a guild: their `members` row (username), their
/// subscriptions (provider subscription and customer ids, payment codes, role-sync state),
/// and in the events about them everything but the kind, status, amounts and dates
/// (anonymous totals stay). Run it in a transaction.
///
/// # Errors
/// A database error.
pub fn forget_member(
    conn: &Connection,
    guild: GuildId,
    user: UserId,
) -> Result<ForgottenMember, DbError> {
    let events_anonymised = conn.execute(
        &format!(
            "UPDATE webhook_events SET
                 event = json_object(
                     'kind', json_extract(event, '$.kind'),
                     'action', json_extract(event, '$.action'),
                     'status', json_extract(event, '$.status'),
                     'role_id', json_extract(event, '$.role_id'),
                     'product_id', json_extract(event, '$.product_id'),
                     'amount', json(json_extract(event, '$.amount')),
                     'refund', json(json_extract(event, '$.refund')),
                     'period_end', json_extract(event, '$.period_end'),
                     'occurred_at', json_extract(event, '$.occurred_at'),
                     'test', json_extract(event, '$.test'),
                     'forgotten', json('true')),
                 detail = NULL,
                 subscription_id = NULL
             WHERE {ABOUT_MEMBER}"
        ),
        params![guild.as_i64(), user.as_i64(), user.to_string()],
    )?;
    let subscriptions = conn.execute(
        "DELETE FROM subscriptions WHERE guild_id = ?1 AND user_id = ?2",
        params![guild.as_i64(), user.as_i64()],
    )?;
    let member_rows = conn.execute(
        "DELETE FROM members WHERE guild_id = ?1 AND user_id = ?2",
        params![guild.as_i64(), user.as_i64()],
    )?;
    Ok(ForgottenMember {
        subscriptions,
        events_anonymised,
        member_rows,
    })
}

/// An admin action to record in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord<'a> {
    pub guild: GuildId,
    /// `admin.grant`, `admin.revoke`, …
    pub event_type: &'a str,
    /// The normalized record: who did it, through which edge, what it touched.
    pub event_json: &'a str,
    pub subscription_id: Option<i64>,
    pub detail: &'a str,
}

/// Records an admin action in `webhook_events` (provider `admin`, the guild's scope, a
/// random event id), so that the trail of deliveries and of owners' actions is one table.
///
/// # Errors
/// A database error.
pub fn audit(conn: &Connection, record: &AuditRecord<'_>) -> Result<(), DbError> {
    let provider = ProviderId::parse(ADMIN_PROVIDER).map_err(|e| DbError::Corrupt {
        table: "webhook_events",
        message: e.to_string(),
    })?;
    let id = format!(
        "admin-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    webhook_events::insert_if_new(
        conn,
        &NewWebhookEvent {
            provider: &provider,
            scope: Scope::Guild(record.guild),
            external_event_id: &id,
            guild_id: Some(record.guild),
            subscription_id: record.subscription_id,
            event_type: record.event_type,
            event_json: record.event_json,
            outcome: Outcome::Applied,
            detail: Some(record.detail),
            test: false,
        },
    )?;
    Ok(())
}

/// One current entitlement, for export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    pub user_id: i64,
    pub role_id: i64,
    pub provider: String,
    pub external_id: Option<String>,
    pub payment_code: Option<String>,
    pub status: String,
    pub period_end: Option<UnixMillis>,
    pub cancel_at_period_end: bool,
    pub test: bool,
}

/// Every live subscription of a guild (the caller keeps those that entitle now), by member.
///
/// # Errors
/// A database error.
pub fn live_subscriptions(conn: &Connection, guild: GuildId) -> Result<Vec<ExportRow>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.user_id, p.role_id, s.provider, s.external_id, s.payment_code, s.status,
                s.period_end, s.cancel_at_period_end, s.test
         FROM subscriptions s JOIN paid_roles p ON p.id = s.paid_role_id
         WHERE s.guild_id = ?1 AND s.status IN ('active', 'canceled', 'past_due', 'trialing')
         ORDER BY s.user_id, p.role_id, s.id",
    )?;
    let rows = stmt
        .query_map([guild.as_i64()], |r| {
            Ok(ExportRow {
                user_id: r.get(0)?,
                role_id: r.get(1)?,
                provider: r.get(2)?,
                external_id: r.get(3)?,
                payment_code: r.get(4)?,
                status: r.get(5)?,
                period_end: r.get(6)?,
                cancel_at_period_end: r.get(7)?,
                test: r.get(8)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
