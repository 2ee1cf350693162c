//! The one writer of subscription state. Every path that creates a subscription or moves it
//! through the state machine comes here: a delivery or a poll (`ingest`), a member's bank
//! transfer checkout (`checkout`), an ended period (role sync). The rules live in
//! [`crate::domain`]; this module adds validation and the database.
//!
//! The functions take a `&Connection`; callers run them inside a write transaction (the
//! writer's group commit, [`crate::db::Db::write`]), so that several of them compose with the
//! caller's own writes and everything commits or nothing does.

use rusqlite::Connection;

use crate::db::paid_roles::PaidRole;
use crate::db::{DbError, members, paid_roles, subscriptions as rows};
use crate::domain::{
    GuildId, ProviderId, RoleId, Scope, StatusChange, SubscriptionState, SubscriptionStatus,
    Transition, UnixMillis, UserId, ValidationError,
};

pub use crate::db::subscriptions::Subscription;

/// Longest provider subscription id stored.
pub const MAX_EXTERNAL_ID: usize = 255;

/// Errors from creating a subscription.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// The request breaks a rule; the message says how to fix it.
    #[error("invalid subscription: {0}")]
    Validation(#[from] ValidationError),
    /// A subscription with this provider id or payment code exists already.
    #[error("duplicate subscription: {0}")]
    Duplicate(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSubscription {
    pub guild_id: GuildId,
    pub user_id: UserId,
    pub role_id: RoleId,
    pub provider: ProviderId,
    /// Whose credentials it comes from: the guild's own (a `/join` checkout, the guild's
    /// webhook URL) or the operator's. A guild scope must be `guild_id`.
    pub scope: Scope,
    /// The provider's subscription id; may be absent for a bank-transfer checkout, which then
    /// needs a payment code.
    pub external_id: Option<String>,
    pub payment_code: Option<String>,
    pub status: SubscriptionStatus,
    pub period_end: Option<UnixMillis>,
    /// Provider timestamp of the state (out-of-order protection).
    pub occurred_at: Option<UnixMillis>,
    /// The member's Discord username, when the edge knows it (a `/join`).
    pub username: Option<String>,
}

/// What a state change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusUpdate {
    Applied {
        from: SubscriptionStatus,
        to: SubscriptionStatus,
    },
    /// Older than the last event applied: nothing moved.
    Stale { last_event_at: UnixMillis },
    /// The state machine forbids the move: nothing moved.
    Refused {
        from: SubscriptionStatus,
        to: SubscriptionStatus,
    },
}

/// Records a new subscription for a role that is for sale in its guild, due for role sync
/// at `now`.
///
/// # Errors
/// [`SubscriptionError::Validation`] for bad input or a role that is not for sale;
/// [`SubscriptionError::Duplicate`] when the provider id or payment code is taken.
pub fn create(
    conn: &Connection,
    data: &CreateSubscription,
    now: UnixMillis,
) -> Result<Subscription, SubscriptionError> {
    validate(data)?;
    let Some(role) = paid_roles::get(conn, data.guild_id, data.role_id)? else {
        return Err(ValidationError::new(
            "role",
            format!(
                "role {} is not for sale in guild {}. Fix: add it with /setup first",
                data.role_id, data.guild_id
            ),
        )
        .into());
    };
    create_for(conn, &role, data, now)
}

/// [`create`] for a paid role the caller has already read (the delivery path found it by
/// role or by product).
///
/// # Errors
/// As [`create`].
pub fn create_for(
    conn: &Connection,
    role: &PaidRole,
    data: &CreateSubscription,
    now: UnixMillis,
) -> Result<Subscription, SubscriptionError> {
    validate(data)?;
    if role.guild_id != data.guild_id {
        return Err(ValidationError::new(
            "role",
            format!(
                "paid role {} belongs to guild {}, not {}",
                role.role_id, role.guild_id, data.guild_id
            ),
        )
        .into());
    }
    if let Scope::Guild(g) = data.scope
        && g != data.guild_id
    {
        return Err(ValidationError::new(
            "scope",
            format!(
                "guild {g}'s credentials cannot create a subscription in guild {}",
                data.guild_id
            ),
        )
        .into());
    }
    members::upsert(conn, data.guild_id, data.user_id, data.username.as_deref())?;
    let new = rows::NewSubscription {
        guild_id: data.guild_id,
        user_id: data.user_id,
        paid_role_id: role.id,
        provider: data.provider.clone(),
        scope: data.scope,
        external_id: data.external_id.clone(),
        state: SubscriptionState {
            status: data.status,
            period_end: data.period_end,
            last_event_at: data.occurred_at,
        },
        payment_code: data.payment_code.clone(),
    };
    rows::insert_at(conn, &new, now).map_err(|e| {
        if e.is_unique_violation() {
            let what = match (&data.external_id, &data.payment_code) {
                (Some(ext), _) => format!("{}:{ext} or its payment code", data.provider),
                (None, Some(code)) => format!("payment code {code}"),
                (None, None) => data.provider.to_string(),
            };
            SubscriptionError::Duplicate(what)
        } else {
            e.into()
        }
    })
}

/// Applies a provider's report to a stored subscription through the state machine.
///
/// # Errors
/// A database error.
pub fn change_status(
    conn: &Connection,
    sub: &Subscription,
    change: StatusChange,
    now: UnixMillis,
) -> Result<StatusUpdate, DbError> {
    record(conn, sub, sub.state.apply(change), now)
}

/// Stores the outcome of a state-machine step (a status change, or a pass extended by a
/// transfer) and makes the subscription due for role sync.
///
/// # Errors
/// A database error.
pub fn record(
    conn: &Connection,
    sub: &Subscription,
    transition: Transition,
    now: UnixMillis,
) -> Result<StatusUpdate, DbError> {
    Ok(match transition {
        Transition::Applied(next) => {
            rows::set_state(
                conn,
                sub.id,
                next,
                next.status == SubscriptionStatus::Canceled,
                now,
            )?;
            StatusUpdate::Applied {
                from: sub.state.status,
                to: next.status,
            }
        }
        Transition::Stale { last_event_at } => StatusUpdate::Stale { last_event_at },
        Transition::Refused { from, to } => StatusUpdate::Refused { from, to },
    })
}

/// Ends the subscriptions of one holding whose paid period (and grace) is over. Returns
/// whether any ended.
///
/// # Errors
/// A database error.
pub fn expire_holding(
    conn: &Connection,
    guild: GuildId,
    user: UserId,
    paid_role: i64,
    now: UnixMillis,
    configured_grace_ms: i64,
) -> Result<bool, DbError> {
    let mut any = false;
    for sub in rows::for_holding(conn, guild, user, paid_role)? {
        if let Some(expired) = sub.state.expire(now, sub.grace_ms(configured_grace_ms)) {
            rows::set_state(conn, sub.id, expired, sub.cancel_at_period_end, now)?;
            any = true;
        }
    }
    Ok(any)
}

fn validate(data: &CreateSubscription) -> Result<(), ValidationError> {
    if let Some(ext) = &data.external_id
        && (ext.trim().is_empty() || ext.len() > MAX_EXTERNAL_ID)
    {
        return Err(ValidationError::new(
            "external_id",
            "must be 1 to 255 characters (the provider's subscription id)",
        ));
    }
    if let Some(code) = &data.payment_code
        && (code.len() < 4 || code.len() > 32 || !code.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(ValidationError::new(
            "payment_code",
            format!("{code:?} must be 4 to 32 letters and digits"),
        ));
    }
    if data.external_id.is_none() && data.payment_code.is_none() {
        return Err(ValidationError::new(
            "external_id",
            "a subscription needs the provider's id or a payment code",
        ));
    }
    if data.status == SubscriptionStatus::Expired {
        return Err(ValidationError::new(
            "status",
            "a new subscription cannot start expired",
        ));
    }
    if data.period_end.is_some_and(|t| t < 0) || data.occurred_at.is_some_and(|t| t < 0) {
        return Err(ValidationError::new(
            "period_end",
            "times must be after 1970",
        ));
    }
    Ok(())
}
