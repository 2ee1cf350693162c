//! `SubscriptionService`: creating subscriptions and moving them through the state machine,
//! durably. The rules live in [`crate::domain`]; this module adds the database.

use crate::db::{self, Db, DbError, members, paid_roles, subscriptions};
use crate::domain::{
    GuildId, ProviderId, RoleId, StatusChange, SubscriptionState, SubscriptionStatus, Transition,
    UnixMillis, UserId, ValidationError,
};

pub use crate::db::subscriptions::Subscription;

/// Errors from [`SubscriptionService`].
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// The request breaks a rule; the message says how to fix it.
    #[error("invalid subscription: {0}")]
    Validation(#[from] ValidationError),
    /// A subscription with this provider id or payment code exists already.
    #[error("duplicate subscription: {0}")]
    Duplicate(String),
    /// No subscription has this provider id.
    #[error("no subscription {0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A subscription as a provider knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalRef {
    pub provider: ProviderId,
    pub external_id: String,
}

impl std::fmt::Display for ExternalRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.provider, self.external_id)
    }
}

/// What to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSubscription {
    pub guild_id: GuildId,
    pub user_id: UserId,
    pub role_id: RoleId,
    pub provider: ProviderId,
    /// The provider's subscription id; may be absent for a bank-transfer checkout, which then
    /// needs a payment code.
    pub external_id: Option<String>,
    pub payment_code: Option<String>,
    pub status: SubscriptionStatus,
    pub period_end: Option<UnixMillis>,
    /// Provider timestamp of the state (out-of-order protection).
    pub occurred_at: Option<UnixMillis>,
}

/// What `update_subscription_status` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusUpdate {
    Applied {
        from: SubscriptionStatus,
        to: SubscriptionStatus,
    },
    /// Older than the last event applied: nothing moved.
    Stale,
    /// The state machine forbids the move: nothing moved.
    Refused {
        from: SubscriptionStatus,
        to: SubscriptionStatus,
    },
}

/// Creates and updates subscriptions.
#[derive(Debug, Clone)]
pub struct SubscriptionService {
    db: Db,
}

impl SubscriptionService {
    #[must_use]
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Records a new subscription for a paid role.
    ///
    /// # Errors
    /// [`SubscriptionError::Validation`] for bad input or a role that is not for sale;
    /// [`SubscriptionError::Duplicate`] when the provider id or payment code is taken.
    pub async fn create_subscription(
        &self,
        data: CreateSubscription,
    ) -> Result<Subscription, SubscriptionError> {
        validate(&data)?;
        self.db
            .call(move |conn| {
                let tx = db::write_transaction(conn)?;
                let Some(role) = paid_roles::get(&tx, data.guild_id, data.role_id)? else {
                    return Ok(Err(SubscriptionError::Validation(ValidationError::new(
                        "role",
                        format!(
                            "role {} is not for sale in guild {}. Fix: add it with /setup first",
                            data.role_id, data.guild_id
                        ),
                    ))));
                };
                members::upsert(&tx, data.guild_id, data.user_id, None)?;
                let new = subscriptions::NewSubscription {
                    guild_id: data.guild_id,
                    user_id: data.user_id,
                    paid_role_id: role.id,
                    provider: data.provider.clone(),
                    external_id: data.external_id.clone(),
                    state: SubscriptionState {
                        status: data.status,
                        period_end: data.period_end,
                        last_event_at: data.occurred_at,
                    },
                    payment_code: data.payment_code.clone(),
                };
                match subscriptions::insert(&tx, &new) {
                    Ok(created) => {
                        tx.commit()?;
                        Ok(Ok(created))
                    }
                    Err(e) if e.is_unique_violation() => {
                        let what = match (&data.external_id, &data.payment_code) {
                            (Some(ext), _) => {
                                format!("{}:{ext} or its payment code", data.provider)
                            }
                            (None, Some(code)) => format!("payment code {code}"),
                            (None, None) => data.provider.to_string(),
                        };
                        Ok(Err(SubscriptionError::Duplicate(what)))
                    }
                    Err(e) => Err(e),
                }
            })
            .await?
    }

    /// Applies a provider's report to the subscription it knows as `external`.
    ///
    /// # Errors
    /// [`SubscriptionError::NotFound`] when no such subscription exists.
    pub async fn update_subscription_status(
        &self,
        external: &ExternalRef,
        change: StatusChange,
    ) -> Result<StatusUpdate, SubscriptionError> {
        let external = external.clone();
        self.db
            .call(move |conn| {
                let tx = db::write_transaction(conn)?;
                let Some(sub) =
                    subscriptions::by_external_id(&tx, &external.provider, &external.external_id)?
                else {
                    return Ok(Err(SubscriptionError::NotFound(external.to_string())));
                };
                let outcome = match sub.state.apply(change) {
                    Transition::Applied(next) => {
                        subscriptions::set_state(
                            &tx,
                            sub.id,
                            next,
                            next.status == SubscriptionStatus::Canceled,
                            db::now_ms(),
                        )?;
                        StatusUpdate::Applied {
                            from: sub.state.status,
                            to: next.status,
                        }
                    }
                    Transition::Stale { .. } => StatusUpdate::Stale,
                    Transition::Refused { from, to } => StatusUpdate::Refused { from, to },
                };
                tx.commit()?;
                Ok(Ok(outcome))
            })
            .await?
    }
}

fn validate(data: &CreateSubscription) -> Result<(), ValidationError> {
    if let Some(ext) = &data.external_id
        && (ext.trim().is_empty() || ext.len() > 255)
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
