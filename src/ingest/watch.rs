//! Who is waiting for a guild's next webhook delivery, and what became of it: `/setup`'s
//! "Verify now" subscribes to its guild ([`DeliveryWatch::subscribe`]); the webhook route
//! publishes each delivery's outcome to a guild URL ([`DeliveryWatch::publish`]).
//!
//! The webhook path pays for this only while someone waits: with no watcher, `publish` is
//! one atomic load. With watchers, one [`Seen`] is built and sent on one broadcast channel
//! that every watcher filters by guild (a handful of admins at most, so a channel per guild
//! would buy nothing).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::broadcast;

use super::{Delivered, IngestError};
use crate::db::webhook_events::Outcome;
use crate::domain::GuildId;

/// Deliveries buffered per watcher before the oldest are dropped (a watcher reads the first).
const BUFFER: usize = 16;

/// What became of a delivery to a guild's webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Verified and recorded: each event's type and outcome (`ignored`: a type Docobo does
    /// not use), with the detail Docobo recorded (why a transfer was rejected).
    Verified(Vec<SeenEvent>),
    /// The signature (or its timestamp) did not verify.
    BadSignature,
    /// Verified, but the body could not be understood.
    Malformed(String),
    /// Docobo could not process it (a plugin crash, the database); the provider retries.
    Failed,
}

/// One verified event of a [`Seen::Verified`] delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenEvent {
    pub event_type: String,
    /// `None`: already recorded (a replay).
    pub outcome: Option<Outcome>,
    pub detail: Option<String>,
}

impl Seen {
    fn of(delivered: &Result<Delivered, IngestError>) -> Option<Self> {
        Some(match delivered {
            Ok(d) => Self::Verified(
                d.results
                    .iter()
                    .enumerate()
                    .map(|(i, r)| SeenEvent {
                        event_type: d.event_types.get(i).cloned().unwrap_or_default(),
                        outcome: r.outcome,
                        detail: r.detail.clone(),
                    })
                    .collect(),
            ),
            Err(IngestError::BadSignature { .. }) => Self::BadSignature,
            Err(IngestError::Malformed(why)) => Self::Malformed(why.clone()),
            Err(IngestError::Plugin(_) | IngestError::Store(_) | IngestError::Credentials(_)) => {
                Self::Failed
            }
            // Not a delivery to a known guild URL: nothing to report.
            Err(IngestError::UnknownProvider(_) | IngestError::UnknownKey(_)) => return None,
        })
    }
}

/// The per-guild broadcast of delivery outcomes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DeliveryWatch {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Live [`Watcher`]s: `publish` returns at once while it is 0.
    watchers: AtomicUsize,
    tx: broadcast::Sender<(GuildId, Seen)>,
    /// How long "Verify now" waits (`server.verify_wait_secs`).
    wait: Duration,
}

impl DeliveryWatch {
    /// A watch whose watchers wait up to `wait`.
    #[must_use]
    pub fn new(wait: Duration) -> Self {
        let (tx, _) = broadcast::channel(BUFFER);
        Self {
            shared: Arc::new(Shared {
                watchers: AtomicUsize::new(0),
                tx,
                wait,
            }),
        }
    }

    /// How long a watcher waits for a delivery.
    #[must_use]
    pub fn wait(&self) -> Duration {
        self.shared.wait
    }

    /// Whether anyone waits (the webhook path gathers what it publishes only then).
    #[must_use]
    pub fn watched(&self) -> bool {
        self.shared.watchers.load(Ordering::Relaxed) > 0
    }

    /// Reports a delivery to `guild`'s webhook URL (`None`: the operator's URL) to whoever
    /// waits for that guild.
    pub fn publish(&self, guild: Option<GuildId>, delivered: &Result<Delivered, IngestError>) {
        if !self.watched() {
            return;
        }
        if let (Some(guild), Some(seen)) = (guild, Seen::of(delivered)) {
            // An error only means every watcher left meanwhile.
            let _ = self.shared.tx.send((guild, seen));
        }
    }

    /// Starts watching `guild`'s deliveries: the ones published from now on.
    #[must_use]
    pub fn subscribe(&self, guild: GuildId) -> Watcher {
        self.shared.watchers.fetch_add(1, Ordering::Relaxed);
        Watcher {
            rx: self.shared.tx.subscribe(),
            guild,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Default for DeliveryWatch {
    fn default() -> Self {
        Self::new(Duration::from_mins(10))
    }
}

/// One wait for a guild's next delivery; counted until dropped.
#[derive(Debug)]
pub struct Watcher {
    rx: broadcast::Receiver<(GuildId, Seen)>,
    guild: GuildId,
    shared: Arc<Shared>,
}

impl Watcher {
    /// The next delivery to the guild's URL; `None` if it is not there within the watch's
    /// wait.
    pub async fn next(&mut self) -> Option<Seen> {
        tokio::time::timeout(self.shared.wait, self.next_any())
            .await
            .ok()
            .flatten()
    }

    /// Waits, without the watch's time limit, for the guild's next delivery that changed
    /// something (an event applied), or for deliveries missed because this watcher fell
    /// behind (they may have). `false`: the watch is gone.
    pub async fn changed(&mut self) -> bool {
        loop {
            match self.rx.recv().await {
                Ok((guild, Seen::Verified(events)))
                    if guild == self.guild
                        && events.iter().any(|e| e.outcome == Some(Outcome::Applied)) =>
                {
                    return true;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return true,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Closed) => return false,
            }
        }
    }

    async fn next_any(&mut self) -> Option<Seen> {
        loop {
            match self.rx.recv().await {
                Ok((guild, seen)) if guild == self.guild => return Some(seen),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.shared.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guild(n: u64) -> GuildId {
        GuildId::new(n).expect("guild")
    }

    fn verified() -> Delivered {
        Delivered {
            outcome: "applied",
            ack: None,
            results: vec![],
            event_types: vec![],
            test: false,
        }
    }

    #[tokio::test]
    async fn a_watcher_hears_its_guild_only_and_is_counted_until_dropped() {
        let watch = DeliveryWatch::new(Duration::from_millis(200));
        assert!(!watch.watched());
        watch.publish(Some(guild(1)), &Ok(verified()));
        let mut watcher = watch.subscribe(guild(1));
        assert!(watch.watched());
        watch.publish(Some(guild(2)), &Ok(verified()));
        watch.publish(None, &Ok(verified()));
        watch.publish(Some(guild(1)), &Err(IngestError::UnknownKey("gone".into())));
        watch.publish(
            Some(guild(1)),
            &Err(IngestError::BadSignature {
                scope: crate::domain::Scope::Guild(guild(1)),
                reason: "no match".into(),
            }),
        );
        assert_eq!(watcher.next().await, Some(Seen::BadSignature));
        assert_eq!(watcher.next().await, None, "nothing more within the wait");
        drop(watcher);
        assert!(!watch.watched());
    }

    fn with_outcome(outcome: Option<Outcome>) -> Delivered {
        Delivered {
            results: vec![crate::ingest::apply::EventResult {
                event_id: "e".into(),
                outcome,
                detail: None,
                changed: outcome == Some(Outcome::Applied),
                alert: None,
            }],
            ..verified()
        }
    }

    #[tokio::test]
    async fn changed_wakes_for_an_applied_event_of_its_guild_or_a_lag_only() {
        let watch = DeliveryWatch::new(Duration::from_millis(50));
        let mut watcher = watch.subscribe(guild(1));
        watch.publish(Some(guild(1)), &Ok(with_outcome(None)));
        watch.publish(Some(guild(1)), &Ok(with_outcome(Some(Outcome::Stale))));
        watch.publish(Some(guild(2)), &Ok(with_outcome(Some(Outcome::Applied))));
        let quiet = tokio::time::timeout(Duration::from_millis(100), watcher.changed()).await;
        assert!(
            quiet.is_err(),
            "a replay, a stale event or another guild changes nothing"
        );
        watch.publish(Some(guild(1)), &Ok(with_outcome(Some(Outcome::Applied))));
        assert!(watcher.changed().await);
        for _ in 0..=BUFFER {
            watch.publish(Some(guild(2)), &Ok(with_outcome(Some(Outcome::Applied))));
        }
        assert!(watcher.changed().await, "fell behind: may have missed one");
    }
}
