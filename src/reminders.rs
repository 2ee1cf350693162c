//! Reminders before access ends (issue 21, item 5): a direct message to the member a
//! configurable time before their pass (or a subscription that will not renew) ends, and at
//! once when a card payment fails, with what they need to keep the role:
//!
//! - a bank-transfer pass: the QR code of a transfer that extends it from its current end
//!   (the checkout `/join` would show, with the pass's own payment code and its amount);
//! - a cancelled card subscription, or a failed card payment: the provider's page where the
//!   member resumes it or fixes the card (the plugin's `manage-link`, else the page the owner
//!   gave in `/setup`).
//!
//! Every message has a button to stop reminders for that server (and one to turn them back
//! on, in the answer). Each reminder is sent once: it is claimed in the database before it
//! goes out and marked sent after, with a Discord nonce made from it (`enforce_nonce`), so a
//! restart in between sends it again and Discord drops the copy if the first had arrived.
//! Each sent reminder, or one that could not be delivered (DMs closed), is an entry in the
//! audit trail of the guild. Complimentary access is not reminded.

use std::time::Duration;

use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use crate::db::admin::{self as audit, AuditRecord};
use crate::db::reminders::{self as rows, Due, Kind};
use crate::db::{DbError, guilds, members, paid_roles};
use crate::discord::{Notifier, RemindError, ReminderMessage};
use crate::providers::ManageLinkRequest;
use crate::services::Services;

/// How many reminders one pass sends at most (the rest wait for the next pass).
const BATCH: usize = 100;

/// The reminder sender. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Reminders {
    services: Services,
    notifier: Notifier,
    /// How long before an end its member is reminded; zero: never.
    window_ms: i64,
}

impl Reminders {
    #[must_use]
    pub fn new(services: Services, notifier: Notifier, hours: u32) -> Self {
        Self {
            services,
            notifier,
            window_ms: i64::from(hours) * 3_600_000,
        }
    }

    /// Sends what is due at start (a restart sends what it had claimed) and then every
    /// `interval`, until `shutdown`. Does nothing when reminders are turned off.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        if self.window_ms == 0 {
            return;
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                sent = self.send_due() => match sent {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(reminders = n, "reminders sent"),
                    Err(e) => tracing::error!(error = %e, "reminders: database error"),
                },
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// One pass: claims the reminders due now and sends them. Returns how many went out.
    ///
    /// # Errors
    /// A database error (what was claimed and not sent goes out on the next pass).
    pub async fn send_due(&self) -> Result<usize, DbError> {
        let now = self.services.now();
        let window = self.window_ms;
        let due = self
            .services
            .db
            .write(move |conn| rows::claim_due(conn, now, window, BATCH))
            .await?;
        let mut sent = 0;
        for reminder in due {
            if self.send(reminder).await? {
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// Sends one reminder and records it. `false` when Discord failed (it stays claimed and
    /// unsent, for the next pass) or the member cannot be messaged (recorded, not retried).
    async fn send(&self, due: Due) -> Result<bool, DbError> {
        let Due { sub, kind, key } = due;
        let (guild_id, user, paid_role) = (sub.guild_id, sub.user_id, sub.paid_role_id);
        let found = self
            .services
            .db
            .read(move |conn| {
                Ok((
                    guilds::get(conn, guild_id)?,
                    paid_roles::by_id(conn, paid_role)?,
                    members::username(conn, guild_id, user)?,
                ))
            })
            .await?;
        let (Some(guild), Some(role)) = (found.0, found.1) else {
            return Ok(false);
        };
        let username = found.2.unwrap_or_default();
        let end = sub.state.period_end.unwrap_or(0);
        let mut message = ReminderMessage {
            kind,
            guild: guild.clone(),
            paid: role.clone(),
            ends_at: if kind == Kind::PastDue {
                end.saturating_add(sub.grace_ms(self.services.grace_ms))
            } else {
                end
            },
            renewal: None,
            manage_url: None,
        };
        match kind {
            Kind::PassEnding => {
                match crate::checkout::start(&self.services, &guild, &role, user, &username).await {
                    Ok(started) => message.renewal = Some(started),
                    Err(e) => {
                        tracing::warn!(guild = guild_id.get(), user = user.get(), error = %e, "reminder without a renewal QR code");
                    }
                }
            }
            Kind::Ending | Kind::PastDue => {
                message.manage_url = self.manage_url(&guild, &sub).await;
            }
        }
        let delivered = match self
            .notifier
            .remind(user, &message, &nonce(sub.id, &key))
            .await
        {
            Ok(()) => true,
            Err(RemindError::Closed) => false,
            Err(RemindError::Failed(e)) => {
                tracing::warn!(guild = guild_id.get(), user = user.get(), error = %e, "reminder not sent; retried on the next pass");
                return Ok(false);
            }
        };
        let now = self.services.now();
        let role_id = role.role_id;
        let sub_id = sub.id;
        self.services
            .db
            .write(move |conn| {
                if !rows::mark_sent(conn, sub_id, &key, now)? {
                    return Ok(());
                }
                let detail = if delivered {
                    format!("Reminded <@{user}> that <@&{role_id}> ends <t:{}:f>", end.div_euclid(1000))
                } else {
                    format!("Could not remind <@{user}> that <@&{role_id}> ends: their direct messages are closed")
                };
                let event = json!({
                    "kind": "reminder",
                    "reminder": kind.as_str(),
                    "actor_id": "docobo",
                    "user_id": user.to_string(),
                    "role_id": role_id.to_string(),
                    "period_end": end,
                    "delivered": delivered,
                    "occurred_at": now,
                });
                audit::audit(
                    conn,
                    &AuditRecord {
                        guild: guild_id,
                        event_type: &format!("reminder.{}", kind.as_str()),
                        event_json: &event.to_string(),
                        subscription_id: Some(sub_id),
                        detail: &detail,
                    },
                )
            })
            .await?;
        Ok(delivered)
    }

    /// Where the member resumes the subscription or fixes the card: the provider's page for
    /// this customer (`manage-link`), else the page the owner gave in `/setup`.
    async fn manage_url(
        &self,
        guild: &guilds::Guild,
        sub: &crate::db::subscriptions::Subscription,
    ) -> Option<String> {
        let (provider, config) = self.services.accounts.for_guild(guild).ok()??;
        if provider != sub.provider {
            return None;
        }
        let supports = self
            .services
            .providers
            .plugin(provider.as_str())
            .is_some_and(|p| p.capabilities.manage_link);
        if let (true, Some(subscription_id)) = (supports, sub.external_id.clone()) {
            let id = sub.id;
            let customer_id = self
                .services
                .db
                .read(move |conn| crate::db::webhook_events::customer_of(conn, id))
                .await
                .ok()
                .flatten();
            let request = ManageLinkRequest {
                customer_id,
                subscription_id,
                guild: guild.id,
                user: sub.user_id,
                return_url: None,
            };
            match self
                .services
                .providers
                .manage_link(provider.as_str(), &config, &request)
                .await
            {
                Ok(url) if url.starts_with("https://") => return Some(url),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(guild = guild.id.get(), error = %e, "no manage link for a reminder");
                }
            }
        }
        crate::accounts::owner_manage_url(&config)
    }
}

/// The Discord nonce of one reminder (at most 25 characters): the same for every attempt.
fn nonce(subscription: i64, key: &str) -> String {
    let digest = Sha256::new()
        .chain_update(subscription.to_be_bytes())
        .chain_update(key.as_bytes())
        .finalize();
    crate::domain::hex(&digest[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reminders_nonce_fits_discord_and_names_one_reminder() {
        let a = nonce(1, "end:1000");
        assert_eq!(a.len(), 24);
        assert_eq!(a, nonce(1, "end:1000"));
        assert_ne!(a, nonce(1, "end:2000"));
        assert_ne!(a, nonce(2, "end:1000"));
    }
}
