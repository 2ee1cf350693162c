//! The checkout service: a member asks to buy a paid role (`/join` today, the dashboard
//! later). It decides whether they may, asks the guild's provider for a checkout, and for a
//! bank transfer reserves the payment code as a pending subscription (through
//! [`crate::subscriptions`], the one writer), so the transfer can be matched.

use sha2::{Digest as _, Sha256};

use crate::db::DbError;
use crate::db::guilds::{self, Guild};
use crate::db::paid_roles::{self, PaidRole};
use crate::db::subscriptions::{self as rows, Subscription};
use crate::domain::{GuildId, ProviderId, RoleId, Scope, SubscriptionStatus, UnixMillis, UserId};
use crate::providers::{Checkout, CheckoutRequest, ProviderError};
use crate::services::Services;
use crate::subscriptions::{self, CreateSubscription, SubscriptionError};

/// How many payment codes are tried before giving up (each taken code means a collision).
const CODE_ATTEMPTS: u8 = 5;

/// What a member asking for a role may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// The role is not for sale here.
    NotForSale,
    /// The member holds it already (one of their subscriptions entitles them).
    AlreadyHeld {
        status: SubscriptionStatus,
        period_end: Option<UnixMillis>,
    },
    /// They may buy it.
    Buy { guild: Box<Guild>, paid: PaidRole },
}

/// Why a checkout could not be started. [`CheckoutError::user_message`] is for the member;
/// `Display` is the cause, for the log.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("the guild has no payment provider")]
    NoProvider,
    #[error(transparent)]
    Credentials(#[from] crate::accounts::CredentialsUnavailable),
    #[error("provider {0} is not loaded")]
    ProviderUnavailable(ProviderId),
    #[error(transparent)]
    Plugin(#[from] ProviderError),
    #[error("cannot store the payment code: {0}")]
    Store(#[from] DbError),
    #[error("every payment code tried was taken")]
    NoFreeCode,
    /// The role stopped being for sale between the offer and the checkout.
    #[error("the role is no longer for sale: {0}")]
    NotForSale(crate::domain::ValidationError),
}

impl CheckoutError {
    /// What the member is told (never a secret or an internal cause).
    #[must_use]
    pub fn user_message(&self) -> String {
        match self {
            Self::NoProvider => "this server has no payment provider".into(),
            Self::Credentials(_) => {
                "the server's payment settings cannot be read (the operator can see why in the log)"
                    .into()
            }
            Self::ProviderUnavailable(_) => "the payment provider is not available".into(),
            Self::Plugin(e) => e.to_string(),
            Self::Store(_) => "Docobo's database failed".into(),
            Self::NoFreeCode => "no free payment code could be found".into(),
            Self::NotForSale(_) => "this role is no longer for sale; run /join again".into(),
        }
    }
}

/// A checkout the member can pay.
#[derive(Debug, Clone)]
pub struct Started {
    /// The provider's display name.
    pub provider_name: String,
    pub checkout: Checkout,
}

/// What `user` may do about `role` in `guild`.
///
/// # Errors
/// A database error.
pub async fn offer(
    services: &Services,
    guild: GuildId,
    user: UserId,
    role: RoleId,
) -> Result<Offer, DbError> {
    let found = services
        .db
        .read(move |conn| {
            let Some(paid) = paid_roles::get(conn, guild, role)? else {
                return Ok(None);
            };
            let holding = rows::for_holding(conn, guild, user, paid.id)?;
            Ok(guilds::get(conn, guild)?.map(|g| (g, paid, holding)))
        })
        .await?;
    let Some((saved, paid, holding)) = found else {
        return Ok(Offer::NotForSale);
    };
    Ok(decide(
        saved,
        paid,
        &holding,
        services.now(),
        services.grace_ms,
    ))
}

/// The pure decision behind [`offer`].
#[must_use]
pub fn decide(
    guild: Guild,
    paid: PaidRole,
    holding: &[Subscription],
    now: UnixMillis,
    grace_ms: i64,
) -> Offer {
    if let Some(current) = holding.iter().find(|s| s.is_entitled(now, grace_ms)) {
        return Offer::AlreadyHeld {
            status: current.state.status,
            period_end: current.state.period_end,
        };
    }
    Offer::Buy {
        guild: Box::new(guild),
        paid,
    }
}

/// Creates the checkout through the guild's provider; for a bank transfer, reserves its code.
/// A failure is also told to the guild's staff (and to the operator when it is theirs to
/// fix): a member who could not pay is a sale lost.
///
/// # Errors
/// See [`CheckoutError`].
pub async fn start(
    services: &Services,
    guild: &Guild,
    paid: &PaidRole,
    user: UserId,
    username: &str,
) -> Result<Started, CheckoutError> {
    let started = create(services, guild, paid, user, username).await;
    if let Err(e) = &started {
        let provider = guild.provider.as_ref().map(ProviderId::as_str);
        crate::alerts::checkout_failed(services, guild.id, provider, e);
    }
    started
}

async fn create(
    services: &Services,
    guild: &Guild,
    paid: &PaidRole,
    user: UserId,
    username: &str,
) -> Result<Started, CheckoutError> {
    let Some((provider, config)) = services.accounts.for_guild(guild)? else {
        return Err(CheckoutError::NoProvider);
    };
    let Some(plugin) = services.providers.plugin(provider.as_str()) else {
        return Err(CheckoutError::ProviderUnavailable(provider));
    };
    for attempt in 0..CODE_ATTEMPTS {
        let request = CheckoutRequest {
            guild: guild.id,
            user,
            role: paid.role_id,
            product_id: paid.product_ref.clone(),
            price: paid.price,
            billing: paid.billing,
            success_url: None,
            nonce: nonce(&guild.webhook_key, user, paid.id, attempt),
        };
        let checkout = services
            .providers
            .create_checkout(provider.as_str(), &config, &request)
            .await?;
        if let Some(code) = checkout.payment_code.clone() {
            // A bank transfer: remember the code so the payment can be matched.
            let reserved = reserve_code(
                services,
                paid.id,
                checkout.expires_at,
                CreateSubscription {
                    guild_id: guild.id,
                    user_id: user,
                    role_id: paid.role_id,
                    provider: provider.clone(),
                    // Made with the guild's own credentials: its transfers arrive at the
                    // guild's webhook URL.
                    scope: Scope::Guild(guild.id),
                    external_id: None,
                    payment_code: Some(code),
                    status: SubscriptionStatus::Pending,
                    period_end: None,
                    occurred_at: None,
                    username: Some(username.to_owned()),
                },
            )
            .await?;
            if !reserved {
                continue;
            }
        }
        tracing::info!(guild = guild.id.get(), user = user.get(), role = paid.role_id.get(), provider = %provider, "checkout created");
        return Ok(Started {
            provider_name: plugin.name.clone(),
            checkout,
        });
    }
    Err(CheckoutError::NoFreeCode)
}

/// Deterministic per member, role and attempt, unguessable without the guild's webhook key:
/// `/join` run twice shows the same payment code.
fn nonce(webhook_key: &str, user: UserId, paid_role: i64, attempt: u8) -> u64 {
    let digest = Sha256::new()
        .chain_update(webhook_key.as_bytes())
        .chain_update(user.get().to_be_bytes())
        .chain_update(paid_role.to_be_bytes())
        .chain_update([attempt])
        .finalize();
    let mut bytes = [0_u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// Records a pending subscription carrying the code, or finds this member's own. `false`
/// when the code belongs to someone else (or to an ended pass): try another. A pending
/// checkout's code is valid until `valid_until` (the provider's `expires_at`; a `/join`
/// again renews it): a transfer booked later does not activate it.
async fn reserve_code(
    services: &Services,
    paid_role: i64,
    valid_until: Option<UnixMillis>,
    pending: CreateSubscription,
) -> Result<bool, CheckoutError> {
    let now = services.now();
    // One transaction on the writer: the member row and the pending subscription together.
    let reserved = services.db.write(move |conn| {
        let Some(code) = pending.payment_code.as_deref() else {
            return Ok(Ok(false));
        };
        if let Some(existing) = rows::by_payment_code(conn, code)? {
            let mine = code_is_mine(&existing, &pending, paid_role);
            if mine && existing.state.status == SubscriptionStatus::Pending {
                rows::set_payment_code_valid_until(conn, existing.id, valid_until)?;
            }
            return Ok(Ok(mine));
        }
        match subscriptions::create(conn, &pending, now) {
            Ok(created) => {
                rows::set_payment_code_valid_until(conn, created.id, valid_until)?;
                Ok(Ok(true))
            }
            // A code the plugin made that Docobo would not store: try another.
            Err(SubscriptionError::Validation(e)) if e.field == "payment_code" => {
                tracing::warn!(error = %e, "a plugin returned an unusable payment code");
                Ok(Ok(false))
            }
            // Anything else (the role was taken off sale meanwhile): no retry helps.
            Err(SubscriptionError::Validation(e)) => Ok(Err(CheckoutError::NotForSale(e))),
            Err(SubscriptionError::Duplicate(_)) => Ok(Ok(false)),
            Err(SubscriptionError::Db(e)) => Err(e),
        }
    });
    reserved.await?
}

/// Whether an existing subscription with the code is this member's own, still usable one.
fn code_is_mine(existing: &Subscription, pending: &CreateSubscription, paid_role: i64) -> bool {
    let mine = existing.guild_id == pending.guild_id
        && existing.user_id == pending.user_id
        && existing.paid_role_id == paid_role;
    let live = matches!(
        existing.state.status,
        SubscriptionStatus::Pending | SubscriptionStatus::Active
    );
    mine && live
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Billing, Currency, Money};

    fn guild() -> Guild {
        Guild {
            id: GuildId::new(10).expect("guild"),
            name: "g".into(),
            owner_id: None,
            provider: Some(ProviderId::parse("sepay").expect("provider")),
            credentials: Some(vec![1]),
            webhook_key: "k".into(),
            log_channel_id: None,
        }
    }

    fn paid() -> PaidRole {
        PaidRole {
            id: 3,
            guild_id: GuildId::new(10).expect("guild"),
            role_id: RoleId::new(2).expect("role"),
            name: "Gold".into(),
            price: Money::new(50_000, Currency::parse("VND").expect("VND")).expect("price"),
            billing: Billing::Monthly,
            product_ref: None,
        }
    }

    #[test]
    fn join_decides_by_entitlement_at_the_clock_and_the_grace_period() {
        use SubscriptionStatus::{Active, Canceled, PastDue, Pending};
        let decide_at = |holding: &[Subscription], now| decide(guild(), paid(), holding, now, 100);
        assert!(matches!(decide_at(&[], 1_000), Offer::Buy { .. }));
        // A pending transfer does not count as holding the role: they may pay it.
        assert!(matches!(
            decide_at(&[Subscription::example(Pending, None, Some("DCB1"))], 1_000),
            Offer::Buy { .. }
        ));
        assert_eq!(
            decide_at(&[Subscription::example(Canceled, Some(5_000), None)], 1_000),
            Offer::AlreadyHeld {
                status: Canceled,
                period_end: Some(5_000)
            }
        );
        // A card subscription past due stays held during the grace period, a pass does not.
        assert!(matches!(
            decide_at(&[Subscription::example(PastDue, Some(900), None)], 950),
            Offer::AlreadyHeld { .. }
        ));
        assert!(matches!(
            decide_at(
                &[Subscription::example(Active, Some(900), Some("DCB1"))],
                950
            ),
            Offer::Buy { .. }
        ));
    }

    #[test]
    fn only_the_members_own_live_reservation_reuses_a_code() {
        let pending = CreateSubscription {
            guild_id: GuildId::new(10).expect("guild"),
            user_id: UserId::new(20).expect("user"),
            role_id: RoleId::new(2).expect("role"),
            provider: ProviderId::parse("sepay").expect("provider"),
            scope: Scope::Guild(GuildId::new(10).expect("guild")),
            external_id: None,
            payment_code: Some("DCB1".into()),
            status: SubscriptionStatus::Pending,
            period_end: None,
            occurred_at: None,
            username: None,
        };
        let mine = Subscription::example(SubscriptionStatus::Pending, None, Some("DCB1"));
        assert!(code_is_mine(&mine, &pending, 1));
        assert!(!code_is_mine(&mine, &pending, 4), "another paid role");
        let mut other = mine.clone();
        other.user_id = UserId::new(6).expect("user");
        assert!(!code_is_mine(&other, &pending, 1), "another member");
        let ended = Subscription::example(SubscriptionStatus::Expired, Some(1), Some("DCB1"));
        assert!(!code_is_mine(&ended, &pending, 1), "an ended pass");
    }
}
