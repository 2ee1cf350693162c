//! `Services`: what every edge (the HTTP server, the bot, the role-sync worker, the CLI)
//! shares, built once in [`crate::App::build`] and cloned into each. The use cases live in
//! their own modules ([`crate::ingest`], [`crate::checkout`], [`crate::shop`],
//! [`crate::subscriptions`]); this is only their context.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::accounts::ProviderAccounts;
use crate::clock::Clock;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::providers::ProviderHost;

/// Wakes the role-sync worker after something made a holding due, and hands it notices to
/// send. A wake-up that finds the worker busy is kept until it next waits (`Notify` stores
/// one permit).
#[derive(Debug, Clone, Default)]
pub struct SyncTrigger {
    wake: Arc<Notify>,
    notices: Arc<std::sync::Mutex<Vec<Notice>>>,
}

/// A message about a delivery that changed nothing but that people must hear of (a bank
/// transfer that came too late or with the wrong amount): for the guild's staff (log
/// channel, else the owner by DM) and for the member. Sent by the role-sync worker once the
/// delivery is committed; not kept across a restart (the delivery is recorded as rejected,
/// with the same reason, and logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub guild: crate::domain::GuildId,
    pub member: crate::domain::UserId,
    pub staff: String,
    pub member_text: String,
}

impl SyncTrigger {
    /// Tells the worker there is work.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves at the next wake-up (or at once, if one is pending).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Queues a notice for the worker to send, and wakes it.
    pub fn notice(&self, notice: Notice) {
        self.notices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(notice);
        self.wake();
    }

    /// The notices queued since the last call.
    #[must_use]
    pub fn take_notices(&self) -> Vec<Notice> {
        std::mem::take(
            &mut *self
                .notices
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// The shared context of the services. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Services {
    pub db: Db,
    pub providers: ProviderHost,
    pub accounts: ProviderAccounts,
    pub sync: SyncTrigger,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    /// How long a card subscription stays entitled after a failed renewal.
    pub grace_ms: i64,
    /// Where providers reach this server (webhook URLs), when configured.
    pub public_url: Option<String>,
    /// Who waits for a guild's next webhook delivery (`/setup`'s "Verify now").
    pub deliveries: crate::ingest::watch::DeliveryWatch,
}

impl Services {
    /// Now, from the one clock.
    #[must_use]
    pub fn now(&self) -> crate::domain::UnixMillis {
        self.clock.now_ms()
    }
}
