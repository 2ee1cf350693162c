//! Applying verified provider events: durable, idempotent, ordered. The transaction half of
//! the ingest service, over one write connection.
//!
//! One delivery is one SQLite transaction. Each event is first recorded in
//! `webhook_events`; the UNIQUE `(provider, scope, external_event_id)` constraint turns a
//! repeat (a provider retry, a concurrent duplicate, a polled copy of a webhook) into a no-op.
//! Then the event moves its subscription through the state machine; an event older than the
//! last one applied is recorded as stale and moves nothing.
//!
//! Everything is bound to the delivery's credential [`Scope`]: its event ids are
//! deduplicated against that scope's only, it finds subscriptions by provider id only among
//! those its scope created, and a guild scope creates and pays only in its own guild. So a
//! guild owner, who holds the guild's own provider keys and can sign anything, reaches
//! nothing of another guild's, whatever the event's metadata names. Nothing here talks to Discord: the
//! role-sync worker is woken after the commit.
//!
//! Only ids, statuses and amounts are stored: never the raw body (it carries names and
//! emails).

mod transfer;

use rusqlite::Connection;

use crate::alerts::Alert;
use crate::db::paid_roles::PaidRole;
use crate::db::webhook_events::{self, NewWebhookEvent, Outcome};
use crate::db::{DbError, guilds, paid_roles, revenue, subscriptions as rows};
use crate::domain::{
    Claim, DisputeStatus, EventKind, GuildId, ProviderEvent, ProviderId, StatusChange,
    SubscriptionStatus, Transition, UnixMillis, UserId,
};
use crate::subscriptions::{self, CreateSubscription, StatusUpdate, SubscriptionError};

pub use crate::domain::Scope;

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventResult {
    pub event_id: String,
    /// `None` for a duplicate (already recorded; nothing changed).
    pub outcome: Option<Outcome>,
    pub detail: Option<String>,
    /// Whether a subscription changed (the role may need syncing).
    pub changed: bool,
    /// Who must hear of it though nothing changed (a refused bank transfer): raised once the
    /// delivery is committed.
    pub alert: Option<Alert>,
}

impl EventResult {
    #[must_use]
    pub fn is_duplicate(&self) -> bool {
        self.outcome.is_none()
    }
}

/// Records and applies a delivery's events. Call it inside a transaction or savepoint (as
/// [`crate::db::Db::write`] does): on an error the caller rolls everything back, so nothing
/// is half-applied.
///
/// # Errors
/// A database error.
pub fn apply_delivery(
    conn: &Connection,
    provider: &ProviderId,
    scope: Scope,
    events: &[ProviderEvent],
    now: UnixMillis,
) -> Result<Vec<EventResult>, DbError> {
    let ctx = Ctx {
        tx: conn,
        provider,
        scope,
        now,
    };
    events.iter().map(|event| ctx.apply_event(event)).collect()
}

/// What every step of one delivery shares.
struct Ctx<'a> {
    tx: &'a Connection,
    provider: &'a ProviderId,
    scope: Scope,
    now: UnixMillis,
}

/// Records a delivery that verified but could not be understood, so that its retries are
/// recognised (keyed by the body's hash) and an operator can see it.
///
/// # Errors
/// A database error.
pub fn record_malformed(
    conn: &Connection,
    provider: &ProviderId,
    scope: Scope,
    body_sha256: &str,
    message: &str,
) -> Result<bool, DbError> {
    let id = format!("malformed:{body_sha256}");
    let inserted = webhook_events::insert_if_new(
        conn,
        &NewWebhookEvent {
            provider,
            scope,
            external_event_id: &id,
            guild_id: scope.guild(),
            subscription_id: None,
            event_type: "malformed",
            event_json: "{}",
            outcome: Outcome::Rejected,
            detail: Some(message),
            test: false,
        },
    )?;
    Ok(inserted.is_some())
}

/// The decision for one event, before it is stored.
struct Decision {
    outcome: Outcome,
    detail: Option<String>,
    guild: Option<GuildId>,
    subscription: Option<i64>,
    changed: bool,
    alert: Option<Alert>,
}

impl Decision {
    /// The decision a state-machine step on a stored subscription leads to.
    fn from_update(update: StatusUpdate, sub: &rows::Subscription) -> Self {
        let mut decision = match update {
            StatusUpdate::Applied { from, to } => Self {
                outcome: Outcome::Applied,
                detail: Some(format!("{from} -> {to}")),
                guild: None,
                subscription: None,
                changed: true,
                alert: None,
            },
            StatusUpdate::Stale { last_event_at } => Self::new(
                Outcome::Stale,
                format!("older than the last event applied ({last_event_at})"),
            ),
            StatusUpdate::Refused { from, to } => {
                Self::new(Outcome::Refused, format!("{from} cannot become {to}"))
            }
        };
        decision.guild = Some(sub.guild_id);
        decision.subscription = Some(sub.id);
        decision
    }

    /// This decision, about `sub`.
    fn about(mut self, sub: &rows::Subscription) -> Self {
        self.guild = Some(sub.guild_id);
        self.subscription = Some(sub.id);
        self
    }

    fn new(outcome: Outcome, detail: impl Into<String>) -> Self {
        Self {
            outcome,
            detail: Some(detail.into()),
            guild: None,
            subscription: None,
            changed: false,
            alert: None,
        }
    }
}

impl Ctx<'_> {
    fn apply_event(&self, event: &ProviderEvent) -> Result<EventResult, DbError> {
        // The writer thread serializes every write, so "not recorded yet" cannot change
        // before the INSERT below; should it ever, the INSERT's UNIQUE violation rolls this
        // delivery back whole and the provider retries (and then meets a duplicate).
        // Deciding before inserting writes the event row once instead of insert-then-update.
        if webhook_events::exists(self.tx, self.provider, self.scope, &event.event_id)? {
            return Ok(EventResult {
                event_id: event.event_id.clone(),
                outcome: None,
                detail: None,
                changed: false,
                alert: None,
            });
        }
        let decision = self.decide(event)?;
        let recorded = webhook_events::insert_if_new(
            self.tx,
            &NewWebhookEvent {
                provider: self.provider,
                scope: self.scope,
                external_event_id: &event.event_id,
                guild_id: decision.guild.or(self.scope.guild()),
                subscription_id: decision.subscription,
                event_type: &event.event_type,
                event_json: &event.normalized_json(),
                outcome: decision.outcome,
                detail: decision.detail.as_deref(),
                test: event.test,
            },
        )?;
        if recorded.is_none() {
            return Err(DbError::Conflict(format!(
                "webhook event {} was recorded by another write first",
                event.event_id
            )));
        }
        // A partial refund moves nothing (access is kept), but its money is returned.
        let earned = match decision.outcome {
            Outcome::Applied => true,
            Outcome::Ignored => {
                matches!(event.kind, EventKind::Refund) && decision.subscription.is_some()
            }
            _ => false,
        };
        if earned
            && !event.test
            && let Some(guild) = decision.guild.or(self.scope.guild())
        {
            self.count_revenue(event, guild, decision.subscription)?;
        }
        Ok(EventResult {
            event_id: event.event_id.clone(),
            outcome: Some(decision.outcome),
            detail: decision.detail,
            changed: decision.changed,
            alert: decision.alert,
        })
    }

    /// Adds what an applied `event` earned to the guild's revenue: a payment, a refund
    /// (taken off, in the refund's currency), or a subscription event that starts a later
    /// paid period than was counted for `sub` (a renewal; Stripe's `invoice.paid` and its
    /// `customer.subscription.updated` carry the same period and count once).
    fn count_revenue(
        &self,
        event: &ProviderEvent,
        guild: GuildId,
        sub: Option<i64>,
    ) -> Result<(), DbError> {
        let earned = match event.kind {
            EventKind::Payment => event.amount.as_ref().map(|a| (a.minor_units, a)),
            EventKind::Refund => event
                .refund
                .as_ref()
                .map(|r| &r.amount)
                .or(event.amount.as_ref())
                .map(|a| (a.minor_units.saturating_neg(), a)),
            EventKind::Subscription | EventKind::PlanChange => {
                let period = match (event.status, event.period_end, sub) {
                    (Some(SubscriptionStatus::Active), Some(end), Some(id)) => Some((id, end)),
                    _ => None,
                };
                match period {
                    Some((id, end)) if revenue::new_period(self.tx, id, end)? => {
                        event.amount.as_ref().map(|a| (a.minor_units, a))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some((minor_units, amount)) = earned {
            revenue::add(self.tx, guild, &amount.currency, self.now, minor_units)?;
        }
        Ok(())
    }

    fn decide(&self, event: &ProviderEvent) -> Result<Decision, DbError> {
        match event.kind {
            EventKind::Ignored => Ok(Decision::new(
                Outcome::Ignored,
                "event type not used by Docobo",
            )),
            EventKind::Subscription => {
                let Some(status) = event.status else {
                    return Ok(Decision::new(
                        Outcome::Rejected,
                        "subscription event without a status",
                    ));
                };
                if self.moved_to_another_tier(event)? {
                    return self.apply_plan_change(event);
                }
                self.apply_status(event, status, event.period_end)
            }
            // A partial refund keeps access, unless the tier's policy (`/admin policy`) says
            // it ends it; a full one, or one that does not say (0.1 plugins), ends it.
            EventKind::Refund
                if event.refund.as_ref().is_some_and(|r| r.partial)
                    && !self.partial_refund_revokes(event)? =>
            {
                let r = event.refund.as_ref().map_or_else(String::new, |r| {
                    format!("{} {}", r.amount.minor_units, r.amount.currency)
                });
                self.note(event, format!("partial refund of {r}: access kept"))
            }
            EventKind::Refund => self.apply_status(event, SubscriptionStatus::Refunded, None),
            EventKind::Dispute => match event.dispute {
                // The money is held, not gone: access is kept until the dispute is decided.
                Some(DisputeStatus::Opened) => self.note(event, "dispute opened: access kept"),
                Some(DisputeStatus::Won) => self.note(event, "dispute won: nothing changes"),
                // Decided for the buyer: the money is gone, as for a full refund.
                Some(DisputeStatus::Lost) => {
                    self.apply_status(event, SubscriptionStatus::Refunded, None)
                }
                None => Ok(Decision::new(
                    Outcome::Rejected,
                    "dispute event without a dispute status",
                )),
            },
            EventKind::PlanChange => self.apply_plan_change(event),
            EventKind::Payment => match &event.payment_code {
                Some(code) => self.apply_transfer(event, code),
                // A one-time purchase: active for good.
                None => self.apply_status(event, SubscriptionStatus::Active, None),
            },
        }
    }

    /// Whether the tier of the subscription `event` is about ends access on a partial refund.
    fn partial_refund_revokes(&self, event: &ProviderEvent) -> Result<bool, DbError> {
        let Some(external_id) = event.subscription_id.as_deref() else {
            return Ok(false);
        };
        match rows::by_external_id(self.tx, self.provider, self.scope, external_id)? {
            Some(sub) => paid_roles::partial_refund_revokes(self.tx, sub.paid_role_id),
            None => Ok(false),
        }
    }

    /// Records an event that changes nothing, tied to its subscription when Docobo knows it.
    fn note(&self, event: &ProviderEvent, why: impl Into<String>) -> Result<Decision, DbError> {
        let mut decision = Decision::new(Outcome::Ignored, why);
        if let Some(external_id) = event.subscription_id.as_deref()
            && let Some(sub) =
                rows::by_external_id(self.tx, self.provider, self.scope, external_id)?
        {
            decision.guild = Some(sub.guild_id);
            decision.subscription = Some(sub.id);
        }
        Ok(decision)
    }

    /// Whether a subscription event names the product of another tier than the stored
    /// subscription's: the member changed plan at the provider. Polar says so only this way
    /// (`subscription.updated` with the new `product_id`; its plugin sends no plan-change).
    fn moved_to_another_tier(&self, event: &ProviderEvent) -> Result<bool, DbError> {
        let (Some(external_id), Some(product)) = (
            event.subscription_id.as_deref(),
            event.product_id.as_deref(),
        ) else {
            return Ok(false);
        };
        let Some(sub) = rows::by_external_id(self.tx, self.provider, self.scope, external_id)?
        else {
            return Ok(false);
        };
        Ok(paid_roles::by_product_ref(self.tx, sub.guild_id, product)?
            .is_some_and(|tier| tier.id != sub.paid_role_id))
    }

    /// A subscription moved to another product. Its role follows the new product's paid
    /// role when the guild sells one: the old subscription row ends (the worker takes the
    /// old role away) and a new one, under the same provider id, holds the new role. An
    /// unknown product keeps the role. A status or period the event carries is applied too.
    fn apply_plan_change(&self, event: &ProviderEvent) -> Result<Decision, DbError> {
        let Some(external_id) = event.subscription_id.as_deref() else {
            return Ok(Decision::new(
                Outcome::Rejected,
                "plan change without a subscription id",
            ));
        };
        let Some(sub) = rows::by_external_id(self.tx, self.provider, self.scope, external_id)?
        else {
            // Not known yet: a new subscription, on the new product's role.
            return match event.status {
                Some(status) => self.apply_status(event, status, event.period_end),
                None => Ok(Decision::new(
                    Outcome::Ignored,
                    "plan change of a subscription Docobo does not know",
                )),
            };
        };
        let target = match event.product_id.as_deref() {
            Some(product) => paid_roles::by_product_ref(self.tx, sub.guild_id, product)?,
            None => None,
        };
        let Some(target) = target.filter(|role| role.id != sub.paid_role_id) else {
            // Same role (or a product the guild does not sell): only the state moves.
            let product = event.product_id.as_deref().unwrap_or("?");
            let mut decision = match event.status {
                Some(status) => self.apply_status(event, status, event.period_end)?,
                None => Decision {
                    detail: None,
                    ..Decision::new(Outcome::Ignored, "")
                },
            };
            decision.detail = Some(format!(
                "plan change to product {product}: role unchanged{}",
                decision
                    .detail
                    .map(|d| format!("; {d}"))
                    .unwrap_or_default()
            ));
            return Ok(decision.about(&sub));
        };
        if let Some(last) = sub.state.last_event_at
            && event.occurred_at < last
        {
            return Ok(Decision::new(
                Outcome::Stale,
                format!("older than the last event applied ({last})"),
            )
            .about(&sub));
        }
        let status = event.status.unwrap_or(sub.state.status);
        if !sub.state.status.can_become(status) {
            return Ok(Decision::new(
                Outcome::Refused,
                format!("{} cannot become {status}", sub.state.status),
            )
            .about(&sub));
        }
        let was_test = rows::is_test(self.tx, sub.id)?;
        rows::end_for_plan_change(self.tx, sub.id, event.occurred_at, self.now)?;
        let data = CreateSubscription {
            guild_id: sub.guild_id,
            user_id: sub.user_id,
            role_id: target.role_id,
            provider: self.provider.clone(),
            scope: sub.scope,
            external_id: Some(external_id.to_owned()),
            payment_code: None,
            status,
            period_end: event.period_end.or(sub.state.period_end),
            occurred_at: Some(event.occurred_at),
            username: None,
        };
        match subscriptions::create_for(self.tx, &target, &data, self.now) {
            Ok(created) => {
                if was_test || event.test {
                    rows::set_test(self.tx, created.id)?;
                }
                revenue::carry_paid_through(self.tx, sub.id, created.id)?;
                Ok(Decision {
                    outcome: Outcome::Applied,
                    detail: Some(format!(
                        "plan change: role {} -> {}, {status}",
                        paid_roles::by_id(self.tx, sub.paid_role_id)?
                            .map_or_else(|| "?".to_owned(), |r| r.role_id.to_string()),
                        target.role_id
                    )),
                    guild: Some(sub.guild_id),
                    subscription: Some(created.id),
                    changed: true,
                    alert: None,
                })
            }
            Err(SubscriptionError::Validation(e)) => Err(DbError::Conflict(format!(
                "plan change of subscription {} refused after its old row ended: {e}",
                sub.id
            ))),
            Err(SubscriptionError::Duplicate(what)) => Err(DbError::Conflict(format!(
                "subscription {what} was created by another write first"
            ))),
            Err(SubscriptionError::Db(e)) => Err(e),
        }
    }

    /// Records a state-machine step on a stored subscription.
    fn store_transition(
        &self,
        sub: &rows::Subscription,
        transition: Transition,
    ) -> Result<Decision, DbError> {
        let update = subscriptions::record(self.tx, sub, transition, self.now)?;
        Ok(Decision::from_update(update, sub))
    }

    fn apply_status(
        &self,
        event: &ProviderEvent,
        status: SubscriptionStatus,
        period_end: Option<UnixMillis>,
    ) -> Result<Decision, DbError> {
        let Some(external_id) = event.subscription_id.as_deref() else {
            return Ok(Decision::new(
                Outcome::Rejected,
                "event without a subscription id",
            ));
        };
        let change = StatusChange {
            status,
            period_end,
            occurred_at: event.occurred_at,
        };
        // Only this scope's subscriptions: another guild's with the same provider id is
        // another account's, never found from here.
        if let Some(sub) = rows::by_external_id(self.tx, self.provider, self.scope, external_id)? {
            let update = subscriptions::change_status(self.tx, &sub, change, self.now)?;
            return Ok(Decision::from_update(update, &sub));
        }
        if matches!(status, SubscriptionStatus::Refunded) && event.guild.is_none() {
            return Ok(Decision::new(
                Outcome::Ignored,
                "refund of a purchase Docobo does not know",
            ));
        }
        // A new subscription: who bought which role comes from the checkout metadata.
        let (guild, user, role) = match self.resolve_target(event)? {
            Ok(target) => target,
            Err(decision) => return Ok(decision),
        };
        let data = CreateSubscription {
            guild_id: guild,
            user_id: user,
            role_id: role.role_id,
            provider: self.provider.clone(),
            scope: self.scope,
            external_id: Some(external_id.to_owned()),
            payment_code: None,
            status,
            period_end,
            occurred_at: Some(event.occurred_at),
            username: None,
        };
        match subscriptions::create_for(self.tx, &role, &data, self.now) {
            Ok(created) => {
                if event.test {
                    rows::set_test(self.tx, created.id)?;
                }
                Ok(Decision {
                    outcome: Outcome::Applied,
                    detail: Some(format!(
                        "new subscription, {status}{}",
                        if event.test { " (test)" } else { "" }
                    )),
                    guild: Some(guild),
                    subscription: Some(created.id),
                    changed: true,
                    alert: None,
                })
            }
            Err(SubscriptionError::Validation(e)) => {
                let mut decision = Decision::new(Outcome::Rejected, e.to_string());
                decision.guild = Some(guild);
                Ok(decision)
            }
            // Looked up just above on the one writer: a duplicate means another write got
            // there first. Roll the delivery back; the provider's retry meets the row.
            Err(SubscriptionError::Duplicate(what)) => Err(DbError::Conflict(format!(
                "subscription {what} was created by another write first"
            ))),
            Err(SubscriptionError::Db(e)) => Err(e),
        }
    }

    /// Finds the guild, member and paid role a new subscription is for.
    fn resolve_target(
        &self,
        event: &ProviderEvent,
    ) -> Result<Result<(GuildId, UserId, PaidRole), Decision>, DbError> {
        let reject = |why: String| Ok(Err(Decision::new(Outcome::Rejected, why)));
        if !event.has_checkout_metadata() {
            // Not from a Docobo checkout (the merchant sells other things too).
            return Ok(Err(Decision::new(
                Outcome::Ignored,
                "no Docobo checkout metadata",
            )));
        }
        let claimed = match &event.guild {
            Some(Claim {
                id: Ok(claimed), ..
            }) => Some(*claimed),
            Some(Claim { id: Err(e), .. }) => {
                return reject(format!("bad guild id in metadata: {e}"));
            }
            None => None,
        };
        let guild = match (self.scope, claimed) {
            (Scope::Guild(g), Some(claimed)) if claimed != g => {
                return reject(format!(
                    "event names guild {claimed} but came to guild {g}'s webhook URL"
                ));
            }
            (Scope::Guild(g), _) | (Scope::Operator, Some(g)) => g,
            (Scope::Operator, None) => return reject("event names no guild".into()),
        };
        if guilds::get(self.tx, guild)?.is_none() {
            return reject(format!("guild {guild} is not set up in Docobo"));
        }
        let user = match &event.user {
            Some(Claim { id: Ok(user), .. }) => *user,
            Some(Claim { id: Err(e), .. }) => {
                return reject(format!("bad user id in metadata: {e}"));
            }
            None => return reject("event names no Discord user".into()),
        };
        let paid_role = match (&event.role, event.product_id.as_deref()) {
            (Some(Claim { id: Ok(role), .. }), _) => paid_roles::get(self.tx, guild, *role)?,
            (Some(Claim { id: Err(e), .. }), _) => {
                return reject(format!("bad role id in metadata: {e}"));
            }
            (None, Some(product)) => paid_roles::by_product_ref(self.tx, guild, product)?,
            (None, None) => None,
        };
        let Some(paid_role) = paid_role else {
            return reject(format!(
                "no paid role in guild {guild} matches role {:?} / product {:?}",
                event.role.as_ref().map(|c| c.raw.as_str()),
                event.product_id
            ));
        };
        Ok(Ok((guild, user, paid_role)))
    }
}
