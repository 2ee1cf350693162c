//! `subscriptions`: one member's entitlement to one paid role, and its role-sync state.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{DbError, id_from};
use crate::domain::{
    GuildId, ProviderId, SubscriptionState, SubscriptionStatus, UnixMillis, UserId,
};

/// A stored subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: i64,
    pub guild_id: GuildId,
    pub user_id: UserId,
    pub paid_role_id: i64,
    pub provider: ProviderId,
    pub external_id: Option<String>,
    pub state: SubscriptionState,
    pub cancel_at_period_end: bool,
    pub payment_code: Option<String>,
    /// Whether the role is on the member at Discord, as far as Docobo knows.
    pub role_applied: bool,
}

/// A subscription to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    pub guild_id: GuildId,
    pub user_id: UserId,
    pub paid_role_id: i64,
    pub provider: ProviderId,
    pub external_id: Option<String>,
    pub state: SubscriptionState,
    pub payment_code: Option<String>,
}

const COLUMNS: &str = "id, guild_id, user_id, paid_role_id, provider, external_id, status, period_end, \
                       last_event_at, cancel_at_period_end, payment_code, role_applied";

type RawRow = (
    i64,
    i64,
    i64,
    i64,
    String,
    Option<String>,
    String,
    Option<i64>,
    Option<i64>,
    bool,
    Option<String>,
    bool,
);

fn raw(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
        row.get(11)?,
    ))
}

fn corrupt(message: &dyn std::fmt::Display) -> DbError {
    DbError::Corrupt {
        table: "subscriptions",
        message: message.to_string(),
    }
}

fn to_subscription(r: RawRow) -> Result<Subscription, DbError> {
    let (
        id,
        guild,
        user,
        paid_role_id,
        provider,
        external_id,
        status,
        period_end,
        last,
        cancel,
        code,
        applied,
    ) = r;
    Ok(Subscription {
        id,
        guild_id: id_from("subscriptions", guild)?,
        user_id: id_from("subscriptions", user)?,
        paid_role_id,
        provider: ProviderId::parse(&provider).map_err(|e| corrupt(&e))?,
        external_id,
        state: SubscriptionState {
            status: SubscriptionStatus::parse(&status).map_err(|e| corrupt(&e))?,
            period_end,
            last_event_at: last,
        },
        cancel_at_period_end: cancel,
        payment_code: code,
        role_applied: applied,
    })
}

/// Records a subscription.
///
/// # Errors
/// A duplicate `(provider, external_id)` or payment code ([`DbError::is_unique_violation`]);
/// an unknown member or paid role (foreign key).
pub fn insert(conn: &Connection, new: &NewSubscription) -> Result<Subscription, DbError> {
    conn.prepare_cached(
        "INSERT INTO subscriptions
             (guild_id, user_id, paid_role_id, provider, external_id, status, period_end, last_event_at,
              payment_code, cancel_at_period_end, next_sync_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, CAST(unixepoch('subsec') * 1000 AS INTEGER))")?.execute(params![
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
        ],
    )?;
    Ok(Subscription {
        id: conn.last_insert_rowid(),
        guild_id: new.guild_id,
        user_id: new.user_id,
        paid_role_id: new.paid_role_id,
        provider: new.provider.clone(),
        external_id: new.external_id.clone(),
        state: new.state,
        cancel_at_period_end: new.state.status == SubscriptionStatus::Canceled,
        payment_code: new.payment_code.clone(),
        role_applied: false,
    })
}

/// The subscription a provider knows by `external_id`.
pub fn by_external_id(
    conn: &Connection,
    provider: &ProviderId,
    external_id: &str,
) -> Result<Option<Subscription>, DbError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE provider = ?1 AND external_id = ?2"
    ))?
    .query_row([provider.as_str(), external_id], raw)
    .optional()?
    .map(to_subscription)
    .transpose()
}

/// The subscription waiting for a bank transfer carrying `code`.
pub fn by_payment_code(conn: &Connection, code: &str) -> Result<Option<Subscription>, DbError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE payment_code = ?1"
    ))?
    .query_row([code], raw)
    .optional()?
    .map(to_subscription)
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
