//! `Services`: what every edge (the HTTP server, the bot, the role-sync worker, the CLI)
//! shares, built once in [`crate::App::build`] and cloned into each. The use cases live in
//! their own modules ([`crate::ingest`], [`crate::checkout`], [`crate::shop`],
//! [`crate::subscriptions`], [`crate::alerts`]); this is only their context.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::accounts::ProviderAccounts;
use crate::alerts::Alerts;
use crate::clock::Clock;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::providers::ProviderHost;

/// Wakes the role-sync worker after something made a holding due. A wake-up that finds
/// the worker busy is kept until it next waits (`Notify` stores one permit).
#[derive(Debug, Clone, Default)]
pub struct SyncTrigger {
    wake: Arc<Notify>,
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
    /// Problems to tell the guild's staff or the operator ([`crate::alerts`]).
    pub alerts: Alerts,
    /// How long a card subscription stays entitled after a failed renewal.
    pub grace_ms: i64,
    /// Where providers reach this server (webhook URLs), when configured.
    pub public_url: Option<String>,
    /// Dashboard login links and sessions (in memory).
    pub logins: Arc<crate::web::Logins>,
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
