//! The owner's test purchase: their cheapest role, bought through the real path and marked
//! `test`, taken back after `doctor.test_purchase_minutes`.

use sha2::{Digest as _, Sha256};

use super::{Doctor, TestMode};
use crate::checkout::{self, CheckoutError, Offer};
use crate::db::{self, DbError, guilds, paid_roles};
use crate::domain::{GuildId, PluginConfig, RoleId, UnixMillis, UserId};
use crate::providers::{PluginInfo, ProviderError, SignedDelivery, TestDeliveryRequest};

/// What a test purchase did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestPurchase {
    /// The test payment was delivered and applied: the role is being given, until `until`.
    Granted {
        role: RoleId,
        role_name: String,
        until: UnixMillis,
    },
    /// A sandbox checkout to pay (no real money); the role follows its webhook.
    Checkout {
        role: RoleId,
        role_name: String,
        url: String,
    },
}

/// Why no test purchase was made. `Display` is what the owner reads (with the fix).
#[derive(Debug, thiserror::Error)]
pub enum TestPurchaseError {
    #[error("{0}")]
    Unavailable(String),
    #[error(
        "you already hold @{0}, so a test purchase would change nothing. Test with a role you do not hold, or from another account with Manage Server"
    )]
    AlreadyHeld(String),
    #[error("the checkout could not be started: {}", .0.user_message())]
    Checkout(#[from] CheckoutError),
    #[error("the provider plugin could not make a test payment: {0}")]
    Plugin(#[from] ProviderError),
    #[error(
        "Docobo's own webhook URL answered {status} to the test payment ({message}). Fix: /doctor's other checks and the log say why"
    )]
    Refused { status: u16, message: String },
    #[error(
        "Docobo could not reach its own webhook URL ({0}). Fix: check that the server is running"
    )]
    Unreachable(String),
    #[error(
        "the test payment was accepted but gave no subscription. Fix: check the role's price and the log"
    )]
    NotApplied,
    #[error("Docobo's database failed ({0})")]
    Store(#[from] DbError),
}

/// How `plugin`, with this connection's settings, makes a test purchase.
pub(super) fn test_mode(plugin: &PluginInfo, config: &PluginConfig) -> TestMode {
    if plugin.capabilities.test_delivery {
        return TestMode::Delivery;
    }
    let sandbox = config
        .iter()
        .any(|(k, v)| k == "environment" && v.eq_ignore_ascii_case("sandbox"));
    if sandbox {
        return TestMode::Sandbox;
    }
    TestMode::Unavailable(format!(
        "{} cannot make test payments on a live account. Fix: connect the provider's sandbox (for Polar: environment = sandbox with a sandbox token) in /setup to test",
        plugin.name
    ))
}

impl Doctor {
    /// Buys `guild`'s cheapest role for `user` as a test (see the module docs).
    ///
    /// # Errors
    /// [`TestPurchaseError`], which says what to fix.
    pub async fn test_purchase(
        &self,
        guild: GuildId,
        user: UserId,
        username: &str,
    ) -> Result<TestPurchase, TestPurchaseError> {
        let services = &self.services;
        let (saved, roles) = services
            .db
            .read(move |conn| {
                Ok((
                    guilds::get(conn, guild)?,
                    paid_roles::for_sale(conn, guild)?,
                ))
            })
            .await?;
        let not_set_up = || {
            TestPurchaseError::Unavailable(
                "this server sells no role yet. Fix: run /setup first".into(),
            )
        };
        let saved = saved.ok_or_else(not_set_up)?;
        let cheapest = roles
            .iter()
            .min_by_key(|r| r.price.minor_units())
            .ok_or_else(not_set_up)?;
        let Some((provider, config)) = services
            .accounts
            .for_guild(&saved)
            .map_err(CheckoutError::from)?
        else {
            return Err(not_set_up());
        };
        let plugin = services
            .providers
            .plugin(provider.as_str())
            .ok_or(CheckoutError::ProviderUnavailable(provider.clone()))?;
        let mode = test_mode(plugin, &config);
        if let TestMode::Unavailable(why) = &mode {
            return Err(TestPurchaseError::Unavailable(why.clone()));
        }
        let role = cheapest.role_id;
        let paid = match checkout::offer(services, guild, user, role).await? {
            Offer::Buy { paid, .. } => paid,
            Offer::AlreadyHeld { .. } => {
                return Err(TestPurchaseError::AlreadyHeld(cheapest.name.clone()));
            }
            Offer::NotForSale => return Err(not_set_up()),
        };
        let started = checkout::start(services, &saved, &paid, user, username).await?;
        if mode == TestMode::Sandbox {
            let url = started.checkout.url.ok_or_else(|| {
                TestPurchaseError::Unavailable(format!(
                    "{} gave no checkout page to pay",
                    plugin.name
                ))
            })?;
            return Ok(TestPurchase::Checkout {
                role,
                role_name: paid.name,
                url,
            });
        }
        let request = TestDeliveryRequest {
            guild,
            user,
            role,
            product_id: paid.product_ref.clone(),
            price: paid.price,
            billing: paid.billing,
            nonce: nonce(&saved.webhook_key, user, services.now()),
            payment_code: started.checkout.payment_code.clone(),
        };
        let delivery = services
            .providers
            .test_delivery(provider.as_str(), &config, &request)
            .await?;
        self.post(
            &format!("/webhooks/{provider}/{}", saved.webhook_key),
            delivery,
        )
        .await?;
        let until = self.end_at(guild, user, paid.id).await?;
        tracing::info!(
            guild = guild.get(),
            user = user.get(),
            role = role.get(),
            until,
            "test purchase made"
        );
        Ok(TestPurchase::Granted {
            role,
            role_name: paid.name,
            until,
        })
    }

    /// Posts the signed delivery to Docobo's own webhook route.
    async fn post(&self, path: &str, delivery: SignedDelivery) -> Result<(), TestPurchaseError> {
        let mut request = self
            .client
            .post(format!("{}{path}", self.webhook_base))
            .body(delivery.body);
        for (name, value) in delivery.headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| TestPurchaseError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        Err(TestPurchaseError::Refused {
            status: status.as_u16(),
            message: body
                .get("error")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no reason given")
                .to_owned(),
        })
    }

    /// Gives the test subscription the delivery made its end, and wakes role sync.
    async fn end_at(
        &self,
        guild: GuildId,
        user: UserId,
        paid_role: i64,
    ) -> Result<UnixMillis, TestPurchaseError> {
        let (minutes, now) = (self.test_minutes, self.services.now());
        let ended = self
            .services
            .db
            .write(move |conn| {
                let Some((id, _)) = db::doctor::test_purchase(conn, guild, user, paid_role)? else {
                    return Ok(None);
                };
                db::doctor::end_test_purchases(conn, minutes, now, Some((id, now)))?;
                let end = db::doctor::test_purchase(conn, guild, user, paid_role)?;
                // An older test purchase, long over, is not this one.
                Ok(end.and_then(|(_, end)| end).filter(|end| *end > now))
            })
            .await?;
        self.services.sync.wake();
        ended.ok_or(TestPurchaseError::NotApplied)
    }
}

/// Unique per purchase (the provider's test event and payment ids derive from it), and not
/// guessable without the guild's webhook key.
fn nonce(webhook_key: &str, user: UserId, now: UnixMillis) -> u64 {
    let digest = Sha256::new()
        .chain_update(b"doctor-test")
        .chain_update(webhook_key.as_bytes())
        .chain_update(user.get().to_be_bytes())
        .chain_update(now.to_be_bytes())
        .finalize();
    let mut bytes = [0_u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}
