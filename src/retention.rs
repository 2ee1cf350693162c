//! Retention: the database does not grow for ever on an SD card.
//!
//! Every few hours (and once shortly after start) the pruner deletes, in small windows:
//! 1. deliveries (`webhook_events`) older than `database.keep_days`, except those of a
//!    subscription that has not ended that long ago (a refund or a dispute may still need
//!    them: the amounts and the provider's ids are there);
//! 2. subscriptions that ended more than `keep_days` ago, and checkouts never paid;
//! 3. members with no subscription left, a day after they were last seen.
//!
//! Each window is one small job on the group-commit writer, so deliveries queued behind it
//! wait at most for one window (measured in `cargo bench --bench retention`), and the pruner
//! sleeps between windows so that they go first. `keep_days = 0` turns pruning off.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::db::{Db, DbError, retention};

/// Rows looked at per window.
pub const WINDOW_ROWS: u32 = 500;

/// The pause between two windows, during which deliveries have the writer.
const BETWEEN_WINDOWS: Duration = Duration::from_millis(5);

/// How long a member with no subscription is kept after they were last seen.
const IDLE_MEMBER_MS: i64 = 24 * 3600 * 1000;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// What a pass deleted, and the longest a window held the writer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub events: u64,
    pub subscriptions: u64,
    pub members: u64,
    pub windows: u64,
    pub longest_window: Duration,
}

/// Prunes the database of one app.
#[derive(Debug, Clone)]
pub struct Pruner {
    db: Db,
    clock: Clock,
    keep_days: u32,
    window_rows: u32,
}

impl Pruner {
    #[must_use]
    pub fn new(db: Db, clock: Clock, keep_days: u32) -> Self {
        Self {
            db,
            clock,
            keep_days,
            window_rows: WINDOW_ROWS,
        }
    }

    /// The same pruner with another window size (benchmarks compare them).
    #[must_use]
    pub fn window_rows(mut self, rows: u32) -> Self {
        self.window_rows = rows.max(1);
        self
    }

    /// Prunes `after_start` after start, then every `every`, until `shutdown`.
    pub async fn run(self, after_start: Duration, every: Duration, shutdown: CancellationToken) {
        if self.keep_days == 0 {
            return;
        }
        let mut wait = after_start;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = every;
            tokio::select! {
                () = shutdown.cancelled() => return,
                pass = self.prune() => match pass {
                    Ok(report) if report.events + report.subscriptions + report.members > 0 => {
                        tracing::info!(
                            events = report.events,
                            subscriptions = report.subscriptions,
                            members = report.members,
                            longest_window_ms = report.longest_window.as_secs_f64() * 1e3,
                            "pruned what is past database.keep_days"
                        );
                    }
                    Ok(_) => {}
                    // Nothing is lost by a pass that does not finish; the next one goes on.
                    Err(e) => tracing::warn!(error = %e, "pruning stopped early; retrying at the next pass"),
                },
            }
        }
    }

    /// One whole pass (see the module docs).
    ///
    /// # Errors
    /// A database error; what was deleted before it stays deleted.
    pub async fn prune(&self) -> Result<PruneReport, DbError> {
        let now = self.clock.now_ms();
        let cutoff = now.saturating_sub(i64::from(self.keep_days).saturating_mul(DAY_MS));
        let mut report = PruneReport::default();
        report.events = self
            .each_window(&mut report, move |conn, after, rows| {
                retention::prune_events(conn, after, rows, cutoff)
            })
            .await?;
        report.subscriptions = self
            .each_window(&mut report, move |conn, after, rows| {
                retention::prune_subscriptions(conn, after, rows, cutoff)
            })
            .await?;
        let idle_since = now.saturating_sub(IDLE_MEMBER_MS);
        report.members = self
            .each_window(&mut report, move |conn, after, rows| {
                retention::prune_members(conn, after, rows, idle_since)
            })
            .await?;
        Ok(report)
    }

    /// Runs `window` from the start of its table to its end, one writer job per window;
    /// returns the rows deleted.
    async fn each_window<F>(&self, report: &mut PruneReport, window: F) -> Result<u64, DbError>
    where
        F: Fn(&rusqlite::Connection, i64, u32) -> Result<retention::Window, DbError>
            + Clone
            + Send
            + 'static,
    {
        let (mut after, mut deleted, rows) = (0, 0, self.window_rows);
        loop {
            let window = window.clone();
            let (done, held) = self
                .db
                .write(move |conn| {
                    let started = Instant::now();
                    let done = window(conn, after, rows)?;
                    Ok((done, started.elapsed()))
                })
                .await?;
            report.windows += 1;
            report.longest_window = report.longest_window.max(held);
            deleted += done.deleted;
            match done.next {
                Some(next) => after = next,
                None => return Ok(deleted),
            }
            tokio::time::sleep(BETWEEN_WINDOWS).await;
        }
    }
}
