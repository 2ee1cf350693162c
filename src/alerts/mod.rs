//! The alerts service: problems that stop a payment from becoming a role, or that the
//! operator must fix, told to whoever can fix them, each with its likely cause and the fix.
//!
//! - [`Alerts::raise`] takes an [`Alert`]: a bounded [`AlertKind`] (also the metric label),
//!   a [`Target`] (a guild's staff, or the operator), the cause and the fix in plain words,
//!   and optionally a member to tell.
//! - No spam: per (target, kind) the first alert is sent at once; its repeats within
//!   `alerts.window_minutes` are only counted, and sent as one summary when the window closes
//!   (or at a graceful shutdown). A member's own message is sent every time: it is about
//!   their own money. `docobo_alerts_total{kind}` counts every alert raised.
//! - Raising never waits: it queues the message and wakes the sender ([`send`]), which posts
//!   guild alerts to the log channel (else the owner by DM) and operator alerts to the log
//!   and to `alerts.operator_webhook_url`.
//! - Guild alerts are not copied to the operator: they are the owner's to fix (their
//!   provider's secret, their roles, their members' transfers) and carry their members' ids;
//!   the operator sees how many there are by kind in the metric.
//! - [`watch`] turns streams of events into alerts: refused signatures per guild URL, the
//!   webhook error rate, providers gone quiet.
//!
//! Alert text never carries a secret (webhook secrets, API keys, the operator's URL): the
//! sources build it from ids, amounts and error kinds only.

pub mod send;
mod sources;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::domain::{GuildId, UnixMillis, UserId};
use crate::metrics::Metrics;

pub use send::AlertSender;
pub use sources::{checkout_failed, database_failed, plugin_failed};

/// What an alert is about. Bounded: it is the `kind` label of `docobo_alerts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    /// Deliveries to a webhook URL keep failing their signature check.
    WebhookSignature,
    /// A bank transfer carried a payment code no checkout has.
    TransferUnmatched,
    /// A bank transfer's amount is not the price.
    TransferWrongAmount,
    /// A bank transfer was booked after its payment code expired.
    TransferExpired,
    /// A plugin crashed, ran too long or out of memory, or its provider's API failed.
    PluginFailed,
    /// A member's checkout could not be created.
    CheckoutFailed,
    /// A role could not be given or removed: the bot lacks the permission or is below it.
    RolePermission,
    /// A paid role was deleted at Discord.
    RoleMissing,
    /// Discord failed role changes (5xx, timeouts) more than once in a row.
    RoleDiscordError,
    /// Discord answered 429.
    DiscordRateLimited,
    /// The database refused an operation.
    DatabaseError,
    /// The database cannot be written at all (disk full, read-only file system).
    DiskUnwritable,
    /// More than 5 % of webhook deliveries failed on Docobo's side.
    ErrorRate,
    /// A provider sent nothing for a long time while it has active subscriptions.
    ProviderSilent,
}

impl AlertKind {
    /// The metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebhookSignature => "webhook_signature",
            Self::TransferUnmatched => "transfer_unmatched",
            Self::TransferWrongAmount => "transfer_wrong_amount",
            Self::TransferExpired => "transfer_expired",
            Self::PluginFailed => "plugin_failed",
            Self::CheckoutFailed => "checkout_failed",
            Self::RolePermission => "role_permission",
            Self::RoleMissing => "role_missing",
            Self::RoleDiscordError => "role_discord_error",
            Self::DiscordRateLimited => "discord_rate_limited",
            Self::DatabaseError => "database_error",
            Self::DiskUnwritable => "disk_unwritable",
            Self::ErrorRate => "error_rate",
            Self::ProviderSilent => "provider_silent",
        }
    }

    /// The headline, in words.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Self::WebhookSignature => "Webhook signatures failing",
            Self::TransferUnmatched => "Bank transfer matched no checkout",
            Self::TransferWrongAmount => "Bank transfer with the wrong amount",
            Self::TransferExpired => "Bank transfer after its code expired",
            Self::PluginFailed => "Payment plugin failing",
            Self::CheckoutFailed => "Checkout could not be created",
            Self::RolePermission => "Role could not be changed",
            Self::RoleMissing => "Paid role deleted",
            Self::RoleDiscordError => "Discord failing role changes",
            Self::DiscordRateLimited => "Discord rate limit",
            Self::DatabaseError => "Database error",
            Self::DiskUnwritable => "Database cannot be written",
            Self::ErrorRate => "Webhook error rate high",
            Self::ProviderSilent => "Provider webhooks silent",
        }
    }
}

/// Who must hear of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// A guild's staff: its log channel, else its owner by DM.
    Guild(GuildId),
    /// Whoever runs Docobo: the log and `alerts.operator_webhook_url`.
    Operator,
}

/// One problem to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub kind: AlertKind,
    pub target: Target,
    /// What happened and its likely cause, in plain words.
    pub cause: String,
    /// What to do about it.
    pub fix: String,
    /// Whom or what it was about (`<@123>`, a provider), listed in the summary. No secret.
    pub subject: Option<String>,
    /// A member to tell too, and what: sent every time, by DM.
    pub member: Option<(UserId, String)>,
}

impl Alert {
    #[must_use]
    pub fn new(
        kind: AlertKind,
        target: Target,
        cause: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            target,
            cause: cause.into(),
            fix: fix.into(),
            subject: None,
            member: None,
        }
    }

    /// Names whom or what it is about, for the summary.
    #[must_use]
    pub fn about(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Tells `member` too.
    #[must_use]
    pub fn tell_member(mut self, member: UserId, text: impl Into<String>) -> Self {
        self.member = Some((member, text.into()));
        self
    }

    /// The message for the first occurrence.
    #[must_use]
    pub fn text(&self) -> String {
        format!(
            "⚠️ **{}**: {}\n**Fix:** {}",
            self.kind.title(),
            self.cause,
            self.fix
        )
    }
}

/// A message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// To the target's staff or the operator.
    Staff {
        kind: AlertKind,
        target: Target,
        text: String,
    },
    /// To a member of `guild`, by DM.
    Member {
        guild: GuildId,
        member: UserId,
        text: String,
    },
}

/// The subjects a summary lists at most.
const SUBJECTS: usize = 10;

/// An alert's repeats since it (or its last summary) was sent.
#[derive(Debug)]
struct Window {
    opened: UnixMillis,
    closes: UnixMillis,
    repeats: u32,
    subjects: BTreeSet<String>,
    last: Alert,
}

impl Window {
    fn summary(&self, now: UnixMillis) -> String {
        let minutes = ((now - self.opened) / 60_000).max(1);
        let during = if minutes % 60 == 0 {
            let hours = minutes / 60;
            if hours == 1 {
                "the last hour".to_owned()
            } else {
                format!("the last {hours} hours")
            }
        } else {
            format!("the last {minutes} min")
        };
        let times = if self.repeats == 1 { "time" } else { "times" };
        let about = if self.subjects.is_empty() {
            String::new()
        } else {
            let listed: Vec<&str> = self.subjects.iter().map(String::as_str).collect();
            format!(" (about {})", listed.join(", "))
        };
        format!(
            "🔁 **{}** happened {} more {times} in {during}{about}. Latest: {}\n**Fix:** {}",
            self.last.kind.title(),
            self.repeats,
            self.last.cause,
            self.last.fix
        )
    }
}

#[derive(Debug, Default)]
struct State {
    outbox: VecDeque<Outgoing>,
    open: BTreeMap<(Target, AlertKind), Window>,
}

/// The alerts service. Cheap to clone; every clone shares the same windows and outbox.
#[derive(Debug, Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    clock: Clock,
    metrics: Arc<Metrics>,
    window_ms: i64,
    /// Held only to read or change the windows and the outbox, never across an `.await`.
    state: Mutex<State>,
    /// Wakes the sender when something was queued (one stored permit).
    ready: Notify,
    /// Streams that become alerts.
    watch: watch::Watch,
}

impl Alerts {
    /// `window_ms`: how long repeats are only counted (`alerts.window_minutes`).
    #[must_use]
    pub fn new(clock: Clock, metrics: Arc<Metrics>, settings: &watch::Settings) -> Self {
        let now = clock.now_ms();
        Self {
            inner: Arc::new(Inner {
                window_ms: settings.window_ms,
                watch: watch::Watch::new(settings, now),
                clock,
                metrics,
                state: Mutex::default(),
                ready: Notify::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Raises an alert: counted always, sent now unless the same one was sent within the
    /// window (then summarised when it closes). Never waits.
    pub fn raise(&self, alert: Alert) {
        let now = self.inner.clock.now_ms();
        self.inner.metrics.alert(alert.kind.as_str());
        let mut state = self.state();
        if let (Target::Guild(guild), Some((member, text))) = (alert.target, &alert.member) {
            state.outbox.push_back(Outgoing::Member {
                guild,
                member: *member,
                text: text.clone(),
            });
        }
        let key = (alert.target, alert.kind);
        match state.open.get_mut(&key) {
            Some(window) if now < window.closes => {
                window.repeats = window.repeats.saturating_add(1);
                if let Some(subject) = &alert.subject
                    && window.subjects.len() < SUBJECTS
                {
                    window.subjects.insert(subject.clone());
                }
                window.last = alert;
            }
            _ => {
                state.outbox.push_back(Outgoing::Staff {
                    kind: alert.kind,
                    target: alert.target,
                    text: alert.text(),
                });
                state.open.insert(
                    key,
                    Window {
                        opened: now,
                        closes: now + self.inner.window_ms,
                        repeats: 0,
                        subjects: BTreeSet::new(),
                        last: alert,
                    },
                );
            }
        }
        drop(state);
        self.inner.ready.notify_one();
    }

    /// Closes the windows that are due (all of them when `all`, at shutdown): a window with
    /// repeats queues its summary and opens again (a problem that goes on is summarised once
    /// a window); one without is dropped, so the next alert of its kind is sent at once.
    pub fn close_windows(&self, all: bool) {
        let now = self.inner.clock.now_ms();
        let window_ms = self.inner.window_ms;
        let mut state = self.state();
        let State { outbox, open } = &mut *state;
        open.retain(|(target, kind), window| {
            if !all && now < window.closes {
                return true;
            }
            if window.repeats == 0 {
                return false;
            }
            outbox.push_back(Outgoing::Staff {
                kind: *kind,
                target: *target,
                text: window.summary(now),
            });
            window.opened = now;
            window.closes = now + window_ms;
            window.repeats = 0;
            window.subjects.clear();
            true
        });
    }

    /// Whether a window with repeats is open (the sender then checks the clock often).
    #[must_use]
    pub fn summaries_pending(&self) -> bool {
        self.state().open.values().any(|w| w.repeats > 0)
    }

    /// The messages queued since the last call.
    #[must_use]
    pub fn take_outbox(&self) -> Vec<Outgoing> {
        self.state().outbox.drain(..).collect()
    }

    /// Resolves when something was queued, or [`Alerts::wake`] was called.
    pub async fn ready(&self) {
        self.inner.ready.notified().await;
    }

    /// Makes the sender look at the clock now (a test that moved it).
    pub fn wake(&self) {
        self.inner.ready.notify_one();
    }

    pub(crate) fn now(&self) -> UnixMillis {
        self.inner.clock.now_ms()
    }

    pub(crate) fn watch(&self) -> &watch::Watch {
        &self.inner.watch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerts(clock: &Clock) -> Alerts {
        Alerts::new(
            clock.clone(),
            Metrics::new(),
            &watch::Settings {
                window_ms: 3_600_000,
                ..watch::Settings::default()
            },
        )
    }

    fn staff(out: &[Outgoing]) -> Vec<String> {
        out.iter()
            .filter_map(|o| match o {
                Outgoing::Staff { text, .. } => Some(text.clone()),
                Outgoing::Member { .. } => None,
            })
            .collect()
    }

    #[test]
    fn the_first_alert_is_sent_and_its_repeats_are_summarised_when_the_window_closes() {
        let clock = Clock::fixed(0);
        let a = alerts(&clock);
        let guild = Target::Guild(GuildId::new(1).expect("guild"));
        let alert = |who: &str| {
            Alert::new(AlertKind::RolePermission, guild, "cause", "fix").about(who.to_owned())
        };
        a.raise(alert("<@1>"));
        assert_eq!(staff(&a.take_outbox()).len(), 1);
        for who in ["<@2>", "<@3>", "<@2>"] {
            a.raise(alert(who));
        }
        // Another kind, or another target, is its own alert.
        a.raise(Alert::new(
            AlertKind::RolePermission,
            Target::Operator,
            "c",
            "f",
        ));
        a.raise(Alert::new(AlertKind::CheckoutFailed, guild, "c", "f"));
        assert_eq!(staff(&a.take_outbox()).len(), 2);
        a.close_windows(false);
        assert!(a.take_outbox().is_empty(), "the window is still open");
        assert!(a.summaries_pending());

        clock.advance(3_600_000);
        a.close_windows(false);
        let sent = staff(&a.take_outbox());
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(
            sent[0].contains("happened 3 more times in the last hour (about <@2>, <@3>)"),
            "{}",
            sent[0]
        );
        // Quiet for a whole window: the next one is sent at once again.
        clock.advance(3_600_000);
        a.close_windows(false);
        assert!(a.take_outbox().is_empty());
        a.raise(alert("<@4>"));
        assert!(staff(&a.take_outbox())[0].starts_with("⚠️"));
    }

    #[test]
    fn a_member_is_told_every_time_and_shutdown_flushes_the_summaries() {
        let clock = Clock::fixed(0);
        let a = alerts(&clock);
        let guild = GuildId::new(1).expect("guild");
        let user = UserId::new(2).expect("user");
        for _ in 0..2 {
            a.raise(
                Alert::new(
                    AlertKind::TransferWrongAmount,
                    Target::Guild(guild),
                    "c",
                    "f",
                )
                .tell_member(user, "pay exactly"),
            );
        }
        let out = a.take_outbox();
        let to_member = out
            .iter()
            .filter(|o| matches!(o, Outgoing::Member { .. }))
            .count();
        assert_eq!((to_member, staff(&out).len()), (2, 1));
        clock.advance(20 * 60_000);
        a.close_windows(true);
        let sent = staff(&a.take_outbox());
        assert!(
            sent[0].contains("1 more time in the last 20 min"),
            "{sent:?}"
        );
    }
}
