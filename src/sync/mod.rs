//! The role-sync worker: makes Discord agree with the database (level-triggered, so a
//! missed wake-up, a crash or a restart only delays convergence).
//!
//! - Work is what `subscriptions.next_sync_at` says is due. The services set it and wake
//!   the worker ([`crate::services::SyncTrigger`]); a successful sync schedules the next check
//!   at the moment an entitlement ends, so expiries need no separate timer.
//! - Per holding (member × paid role) the desired state is "some subscription entitles the
//!   member"; the role is granted or revoked when that differs from what was applied
//!   (`holding`).
//! - Failures are typed: a permission problem tells the owner what to fix and is retried
//!   (and again as soon as a role changes at Discord); a member who left is re-granted when
//!   they come back; API errors are retried with exponential backoff and jitter.
//! - The drift sweep ([`sweep`]) and the provider poll ([`crate::ingest::poll`]) run in tasks
//!   of their own and only mark work due, so neither holds up a grant.
//!
//! The worker talks to Discord only through [`RoleManager`] and [`Notifier`].

mod holding;
pub mod sweep;

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::db::DbError;
use crate::db::{guilds, subscriptions};
use crate::discord::{Notifier, RoleManager};
use crate::domain::{GuildId, UserId};
use crate::services::Services;

pub use sweep::Sweeper;

/// Holdings synced at once (role calls to different members run concurrently).
const CONCURRENCY: usize = 8;
/// Due subscriptions read per batch.
const BATCH: u32 = 256;
/// First retry delay after an API error; doubles per attempt.
const RETRY_BASE: Duration = Duration::from_millis(500);
/// Longest delay between retries.
const RETRY_MAX: Duration = Duration::from_hours(1);
/// Longest delay between passes while the database refuses to record syncs.
const DB_RETRY_MAX: Duration = Duration::from_mins(1);

/// The role-sync worker.
#[derive(Debug, Clone)]
pub struct RoleSync {
    services: Services,
    roles: RoleManager,
    notifier: Notifier,
}

/// What one pass over the due holdings did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// A full batch was due: more may be due right away.
    pub more: bool,
    /// Holdings whose sync failed on a database error (they stay due).
    pub failed: usize,
}

/// One member × one paid role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Holding {
    guild: GuildId,
    user: UserId,
    paid_role: i64,
}

impl RoleSync {
    #[must_use]
    pub fn new(services: Services, roles: RoleManager, notifier: Notifier) -> Self {
        Self {
            services,
            roles,
            notifier,
        }
    }

    /// Runs until `shutdown`, which also ends a pass midway: a holding whose Discord call
    /// is still unanswered stays due and is synced again at the next start (every change is
    /// idempotent at Discord, and recorded only once it is made).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failed_passes: u32 = 0;
        loop {
            let pass = tokio::select! {
                () = shutdown.cancelled() => return,
                pass = self.process_due() => pass,
            };
            let pass = match pass {
                Ok(pass) => pass,
                Err(e) => {
                    tracing::error!(error = %e, "role sync: database error");
                    crate::alerts::database_failed(&self.services, &e);
                    Pass {
                        more: false,
                        failed: 1,
                    }
                }
            };
            // A holding whose sync could not be recorded is still due; retrying it at once
            // would repeat its Discord calls and log lines in a loop while the database
            // refuses (a full disk). Back off instead, as for Discord's own errors.
            failed_passes = if pass.failed > 0 {
                failed_passes + 1
            } else {
                0
            };
            if pass.more && failed_passes == 0 {
                continue;
            }
            // Nothing due: sleep until the next due time (at most an hour: a clock that
            // jumps is caught up with then), or a wake-up.
            let mut wake = Instant::now() + RETRY_MAX;
            if failed_passes > 0 {
                let retry = holding::backoff(failed_passes - 1, false).min(DB_RETRY_MAX);
                wake = wake.min(Instant::now() + retry);
            } else if let Ok(Some(due)) = self.services.db.read(subscriptions::next_due_at).await {
                let wait = u64::try_from(due - self.services.now()).unwrap_or(0);
                wake = wake.min(Instant::now() + Duration::from_millis(wait));
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.services.sync.woken() => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Syncs every holding that is due.
    ///
    /// # Errors
    /// The due list could not be read.
    pub async fn process_due(&self) -> Result<Pass, DbError> {
        let now = self.services.now();
        let (due, left) = self
            .services
            .db
            .read(move |conn| {
                let due = subscriptions::due(conn, now, BATCH)?;
                let left = if due.is_empty() {
                    BTreeSet::new()
                } else {
                    guilds::left(conn)?
                };
                Ok((due, left))
            })
            .await?;
        let full = due.len() == BATCH as usize;
        // A guild the bot has left: Discord would refuse every call and the owner would be
        // told about each. Its syncs stop until the bot is added again.
        let (parked, due): (Vec<_>, Vec<_>) =
            due.into_iter().partition(|s| left.contains(&s.guild_id));
        if !parked.is_empty() {
            self.services
                .db
                .write(move |conn| subscriptions::park(conn, &parked))
                .await?;
        }
        let mut holdings: Vec<Holding> = due
            .iter()
            .map(|s| Holding {
                guild: s.guild_id,
                user: s.user_id,
                paid_role: s.paid_role_id,
            })
            .collect();
        holdings.sort_unstable();
        holdings.dedup();
        let failed = std::sync::atomic::AtomicUsize::new(0);
        futures_util::stream::iter(holdings)
            .for_each_concurrent(CONCURRENCY, |h| {
                let failed = &failed;
                async move {
                    if let Err(e) = self.sync_holding(h).await {
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        crate::alerts::database_failed(&self.services, &e);
                        tracing::error!(guild = h.guild.get(), user = h.user.get(), error = %e, "role sync failed");
                    }
                }
            })
            .await;
        Ok(Pass {
            more: full,
            failed: failed.into_inner(),
        })
    }
}
