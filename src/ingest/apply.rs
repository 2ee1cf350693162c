//! Applying verified provider events to subscriptions: durable, idempotent, ordered.
//!
//! One delivery is one SQLite transaction. Each event is first recorded in
//! `webhook_events`; the UNIQUE `(provider, external_event_id)` constraint turns a repeat
//! (a provider retry, a concurrent duplicate, a polled copy of a webhook) into a no-op. Then
//! the event moves its subscription through the state machine; an event older than the last
//! one applied is recorded as stale and moves nothing. Nothing here talks to Discord: the
//! role-sync worker is woken after the commit.
//!
//! Only ids, statuses and amounts are stored: never the raw body (it carries names and
//! emails).

use rusqlite::Connection;
use serde_json::json;

use crate::db::webhook_events::{self, NewWebhookEvent, Outcome};
use crate::db::{DbError, guilds, members, paid_roles, subscriptions};
use crate::domain::{
    Billing, GuildId, ProviderId, RoleId, StatusChange, SubscriptionState, SubscriptionStatus,
    Transition, UnixMillis, UserId,
};
use crate::providers::api;

/// Where a delivery came in, which decides whose credentials verified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `/webhooks/{provider}/{webhook_key}`: verified with this guild's credentials; its
    /// events may only touch this guild.
    Guild(GuildId),
    /// `/webhooks/{provider}`: verified with the operator's credentials; the guild comes
    /// from each event.
    Operator,
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventResult {
    pub event_id: String,
    /// `None` for a duplicate (already recorded; nothing changed).
    pub outcome: Option<Outcome>,
    pub detail: Option<String>,
    /// Whether a subscription changed (the role may need syncing).
    pub changed: bool,
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
    events: &[api::ProviderEvent],
) -> Result<Vec<EventResult>, DbError> {
    events
        .iter()
        .map(|event| apply_event(conn, provider, scope, event))
        .collect()
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
    let guild = match scope {
        Scope::Guild(g) => Some(g),
        Scope::Operator => None,
    };
    let inserted = webhook_events::insert_if_new(
        conn,
        &NewWebhookEvent {
            provider,
            external_event_id: &id,
            guild_id: guild,
            subscription_id: None,
            event_type: "malformed",
            event_json: "{}",
            outcome: Outcome::Rejected,
            detail: Some(message),
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
}

impl Decision {
    fn new(outcome: Outcome, detail: impl Into<String>) -> Self {
        Self {
            outcome,
            detail: Some(detail.into()),
            guild: None,
            subscription: None,
            changed: false,
        }
    }
}

fn apply_event(
    tx: &Connection,
    provider: &ProviderId,
    scope: Scope,
    event: &api::ProviderEvent,
) -> Result<EventResult, DbError> {
    // The writer thread serializes every write, so "not recorded yet" cannot change
    // before the INSERT below; should it ever, the INSERT's UNIQUE violation rolls this
    // delivery back whole and the provider retries (and then meets a duplicate).
    // Deciding before inserting writes the event row once instead of insert-then-update.
    if webhook_events::exists(tx, provider, &event.event_id)? {
        return Ok(EventResult {
            event_id: event.event_id.clone(),
            outcome: None,
            detail: None,
            changed: false,
        });
    }
    let decision = decide(tx, provider, scope, event)?;
    let recorded = webhook_events::insert_if_new(
        tx,
        &NewWebhookEvent {
            provider,
            external_event_id: &event.event_id,
            guild_id: decision.guild,
            subscription_id: decision.subscription,
            event_type: &event.event_type,
            event_json: &normalized_json(event),
            outcome: decision.outcome,
            detail: decision.detail.as_deref(),
        },
    )?;
    if recorded.is_none() {
        return Err(DbError::Conflict(format!(
            "webhook event {} was recorded by another write first",
            event.event_id
        )));
    }
    Ok(EventResult {
        event_id: event.event_id.clone(),
        outcome: Some(decision.outcome),
        detail: decision.detail,
        changed: decision.changed,
    })
}

fn decide(
    tx: &Connection,
    provider: &ProviderId,
    scope: Scope,
    event: &api::ProviderEvent,
) -> Result<Decision, DbError> {
    match event.kind {
        api::EventKind::Ignored => Ok(Decision::new(
            Outcome::Ignored,
            "event type not used by Docobo",
        )),
        api::EventKind::Subscription => {
            let Some(status) = event.status.map(status_from) else {
                return Ok(Decision::new(
                    Outcome::Rejected,
                    "subscription event without a status",
                ));
            };
            apply_status(tx, provider, scope, event, status, event.period_end)
        }
        api::EventKind::Refund => apply_status(
            tx,
            provider,
            scope,
            event,
            SubscriptionStatus::Refunded,
            None,
        ),
        api::EventKind::Payment => match &event.payment_code {
            Some(code) => apply_transfer(tx, scope, event, code),
            // A one-time purchase: active for good.
            None => apply_status(tx, provider, scope, event, SubscriptionStatus::Active, None),
        },
    }
}

fn status_from(status: api::SubscriptionStatus) -> SubscriptionStatus {
    match status {
        api::SubscriptionStatus::Pending => SubscriptionStatus::Pending,
        api::SubscriptionStatus::Active => SubscriptionStatus::Active,
        api::SubscriptionStatus::Canceled => SubscriptionStatus::Canceled,
        api::SubscriptionStatus::PastDue => SubscriptionStatus::PastDue,
        api::SubscriptionStatus::Revoked => SubscriptionStatus::Revoked,
        api::SubscriptionStatus::Refunded => SubscriptionStatus::Refunded,
    }
}

/// The outcome of a state-machine step on a stored subscription.
fn store_transition(
    tx: &Connection,
    sub: &subscriptions::Subscription,
    transition: Transition,
) -> Result<Decision, DbError> {
    let mut decision = match transition {
        Transition::Applied(next) => {
            subscriptions::set_state(
                tx,
                sub.id,
                next,
                next.status == SubscriptionStatus::Canceled,
                crate::db::now_ms(),
            )?;
            Decision {
                outcome: Outcome::Applied,
                detail: Some(format!("{} -> {}", sub.state.status, next.status)),
                guild: None,
                subscription: None,
                changed: true,
            }
        }
        Transition::Stale { last_event_at } => Decision::new(
            Outcome::Stale,
            format!("older than the last event applied ({last_event_at})"),
        ),
        Transition::Refused { from, to } => {
            Decision::new(Outcome::Refused, format!("{from} cannot become {to}"))
        }
    };
    decision.guild = Some(sub.guild_id);
    decision.subscription = Some(sub.id);
    Ok(decision)
}

fn apply_status(
    tx: &Connection,
    provider: &ProviderId,
    scope: Scope,
    event: &api::ProviderEvent,
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
    if let Some(sub) = subscriptions::by_external_id(tx, provider, external_id)? {
        if let Scope::Guild(g) = scope
            && sub.guild_id != g
        {
            return Ok(Decision::new(
                Outcome::Rejected,
                format!(
                    "subscription belongs to guild {}, not to this webhook's guild {g}",
                    sub.guild_id
                ),
            ));
        }
        return store_transition(tx, &sub, sub.state.apply(change));
    }
    if matches!(status, SubscriptionStatus::Refunded) && event.guild_id.is_none() {
        return Ok(Decision::new(
            Outcome::Ignored,
            "refund of a purchase Docobo does not know",
        ));
    }
    // A new subscription: who bought which role comes from the checkout metadata.
    let target = match resolve_target(tx, scope, event)? {
        Ok(target) => target,
        Err(decision) => return Ok(decision),
    };
    members::upsert(tx, target.guild, target.user, None)?;
    let created = subscriptions::insert(
        tx,
        &subscriptions::NewSubscription {
            guild_id: target.guild,
            user_id: target.user,
            paid_role_id: target.paid_role,
            provider: provider.clone(),
            external_id: Some(external_id.to_owned()),
            state: SubscriptionState {
                status,
                period_end,
                last_event_at: Some(event.occurred_at),
            },
            payment_code: None,
        },
    )?;
    Ok(Decision {
        outcome: Outcome::Applied,
        detail: Some(format!("new subscription, {status}")),
        guild: Some(target.guild),
        subscription: Some(created.id),
        changed: true,
    })
}

struct Target {
    guild: GuildId,
    user: UserId,
    paid_role: i64,
}

/// Finds the guild, member and paid role a new subscription is for.
fn resolve_target(
    tx: &Connection,
    scope: Scope,
    event: &api::ProviderEvent,
) -> Result<Result<Target, Decision>, DbError> {
    let reject = |why: String| Ok(Err(Decision::new(Outcome::Rejected, why)));
    if event.guild_id.is_none() && event.user_id.is_none() && event.role_id.is_none() {
        // Not from a Docobo checkout (the merchant sells other things too).
        return Ok(Err(Decision::new(
            Outcome::Ignored,
            "no Docobo checkout metadata",
        )));
    }
    let claimed = match event.guild_id.as_deref().map(GuildId::parse) {
        Some(Ok(claimed)) => Some(claimed),
        Some(Err(e)) => return reject(format!("bad guild id in metadata: {e}")),
        None => None,
    };
    let guild = match (scope, claimed) {
        (Scope::Guild(g), Some(claimed)) if claimed != g => {
            return reject(format!(
                "event names guild {claimed} but came to guild {g}'s webhook URL"
            ));
        }
        (Scope::Guild(g), _) | (Scope::Operator, Some(g)) => g,
        (Scope::Operator, None) => return reject("event names no guild".into()),
    };
    if guilds::get(tx, guild)?.is_none() {
        return reject(format!("guild {guild} is not set up in Docobo"));
    }
    let user = match event.user_id.as_deref().map(UserId::parse) {
        Some(Ok(user)) => user,
        Some(Err(e)) => return reject(format!("bad user id in metadata: {e}")),
        None => return reject("event names no Discord user".into()),
    };
    let paid_role = match (event.role_id.as_deref(), event.product_id.as_deref()) {
        (Some(role), _) => match RoleId::parse(role) {
            Ok(role) => paid_roles::get(tx, guild, role)?,
            Err(e) => return reject(format!("bad role id in metadata: {e}")),
        },
        (None, Some(product)) => paid_roles::by_product_ref(tx, guild, product)?,
        (None, None) => None,
    };
    let Some(paid_role) = paid_role else {
        return reject(format!(
            "no paid role in guild {guild} matches role {:?} / product {:?}",
            event.role_id, event.product_id
        ));
    };
    Ok(Ok(Target {
        guild,
        user,
        paid_role: paid_role.id,
    }))
}

const DAY: i64 = 86_400_000;

/// A bank transfer carrying a payment code from a `/join` checkout.
fn apply_transfer(
    tx: &Connection,
    scope: Scope,
    event: &api::ProviderEvent,
    code: &str,
) -> Result<Decision, DbError> {
    let Some(sub) = subscriptions::by_payment_code(tx, code)? else {
        return Ok(Decision::new(
            Outcome::Rejected,
            format!("no checkout has payment code {code}"),
        ));
    };
    if let Scope::Guild(g) = scope
        && sub.guild_id != g
    {
        return Ok(Decision::new(
            Outcome::Rejected,
            "payment code belongs to another guild",
        ));
    }
    let Some(role) = paid_roles::by_id(tx, sub.paid_role_id)? else {
        return Ok(Decision::new(
            Outcome::Rejected,
            "the paid role no longer exists",
        ));
    };
    let paid = event.amount.as_ref();
    let enough = paid.is_some_and(|m| {
        m.currency
            .eq_ignore_ascii_case(role.price.currency().as_str())
            && m.minor_units >= role.price.minor_units()
    });
    if !enough {
        let received = paid.map_or_else(
            || "no amount".to_owned(),
            |m| format!("{} {}", m.minor_units, m.currency),
        );
        let mut decision = Decision::new(
            Outcome::Rejected,
            format!(
                "underpayment: received {received}, the price is {}",
                role.price
            ),
        );
        decision.guild = Some(sub.guild_id);
        decision.subscription = Some(sub.id);
        return Ok(decision);
    }
    let transition = match role.billing {
        Billing::Days(_) => sub.state.extend_pass(
            event.occurred_at,
            role.billing.pass_length_ms().unwrap_or(30 * DAY),
        ),
        Billing::Monthly => sub.state.extend_pass(event.occurred_at, 30 * DAY),
        Billing::Yearly => sub.state.extend_pass(event.occurred_at, 365 * DAY),
        Billing::OneTime => sub.state.apply(StatusChange {
            status: SubscriptionStatus::Active,
            period_end: None,
            occurred_at: event.occurred_at,
        }),
    };
    store_transition(tx, &sub, transition)
}

/// The normalized event as stored: ids, kinds, statuses, amounts; nothing personal.
fn normalized_json(event: &api::ProviderEvent) -> String {
    let kind = match event.kind {
        api::EventKind::Subscription => "subscription",
        api::EventKind::Payment => "payment",
        api::EventKind::Refund => "refund",
        api::EventKind::Ignored => "ignored",
    };
    json!({
        "kind": kind,
        "subscription_id": event.subscription_id,
        "guild_id": event.guild_id,
        "user_id": event.user_id,
        "role_id": event.role_id,
        "product_id": event.product_id,
        "payment_code": event.payment_code,
        "status": event.status.map(|s| status_from(s).as_str()),
        "period_end": event.period_end,
        "amount": event.amount.as_ref().map(|m| json!({"minor_units": m.minor_units, "currency": m.currency})),
        "occurred_at": event.occurred_at,
    })
    .to_string()
}
