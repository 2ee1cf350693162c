//! Streams that become alerts: signatures refused at one webhook URL, the webhook error
//! rate, and providers that went quiet. Each keeps a little state in memory (a restart
//! starts it over) and raises an [`Alert`] when its threshold is crossed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use super::{Alert, AlertKind, Alerts, Target};
use crate::domain::{Scope, UnixMillis};

/// The error-rate window: 15 minutes in one-minute buckets.
pub const RATE_WINDOW_MS: i64 = 15 * MINUTE;
/// Above this share of deliveries failing on Docobo's side, the operator is told.
pub const RATE_THRESHOLD: f64 = 0.05;
/// Fewer deliveries than this in the window say nothing about a rate (one failure of two is
/// the failure's own alert, not a rate).
pub const RATE_MIN_DELIVERIES: u64 = 20;

const MINUTE: i64 = 60_000;

/// The alert settings (`[alerts]`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub window_ms: i64,
    /// Refused signatures at one guild URL within the window before its staff are told.
    pub bad_signatures: u32,
    /// No verified delivery from a provider for this long, while it has active card
    /// subscriptions, tells the operator; 0: off.
    pub silence_ms: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            window_ms: 60 * MINUTE,
            bad_signatures: 3,
            silence_ms: 48 * 60 * MINUTE,
        }
    }
}

impl Settings {
    #[must_use]
    pub fn from_config(config: &crate::config::AlertsConfig) -> Self {
        Self {
            window_ms: i64::from(config.window_minutes) * MINUTE,
            bad_signatures: config.bad_signatures,
            silence_ms: i64::from(config.provider_silence_hours) * 60 * MINUTE,
        }
    }
}

/// The streams' state.
#[derive(Debug)]
pub struct Watch {
    settings: Settings,
    /// Refusal times per (scope, provider), within the window.
    refusals: Mutex<BTreeMap<(String, String), VecDeque<UnixMillis>>>,
    /// Per minute: (deliveries, failed on Docobo's side).
    rate: Mutex<VecDeque<(i64, u64, u64)>>,
    /// When each provider last sent a verified delivery (start-up counts as one).
    last_delivery: Mutex<BTreeMap<String, UnixMillis>>,
    started: UnixMillis,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watch {
    pub(super) fn new(settings: &Settings, now: UnixMillis) -> Self {
        Self {
            settings: settings.clone(),
            refusals: Mutex::default(),
            rate: Mutex::default(),
            last_delivery: Mutex::default(),
            started: now,
        }
    }

    /// Records a delivery in the error-rate window; `Some(rate)` when it is now over the
    /// threshold.
    fn count(&self, now: UnixMillis, failed: bool) -> Option<(u64, u64)> {
        let minute = now.div_euclid(MINUTE);
        let mut rate = lock(&self.rate);
        match rate.back_mut() {
            Some((m, total, errors)) if *m == minute => {
                *total += 1;
                *errors += u64::from(failed);
            }
            _ => rate.push_back((minute, 1, u64::from(failed))),
        }
        let oldest = minute - RATE_WINDOW_MS / MINUTE + 1;
        while rate.front().is_some_and(|(m, _, _)| *m < oldest) {
            rate.pop_front();
        }
        let (total, errors) = rate
            .iter()
            .fold((0, 0), |(t, e), (_, total, errors)| (t + total, e + errors));
        #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let over = total >= RATE_MIN_DELIVERIES && errors as f64 > total as f64 * RATE_THRESHOLD;
        (failed && over).then_some((errors, total))
    }
}

impl Alerts {
    /// A delivery to `provider`'s webhook URL in `scope` was refused for its signature (or a
    /// stale timestamp). `name` is the provider's display name.
    pub fn bad_signature(&self, provider: &str, name: &str, scope: Scope) {
        let now = self.now();
        let watch = self.watch();
        let window = watch.settings.window_ms;
        let count = {
            let mut refusals = lock(&watch.refusals);
            let times = refusals
                .entry((scope.key(), provider.to_owned()))
                .or_default();
            times.push_back(now);
            while times.front().is_some_and(|t| *t <= now - window) {
                times.pop_front();
            }
            times.len()
        };
        if count < watch.settings.bad_signatures as usize {
            return;
        }
        let minutes = window / MINUTE;
        let (target, fix) = match scope {
            Scope::Guild(guild) => (
                Target::Guild(guild),
                format!(
                    "open {name}'s webhook settings for this server's endpoint, copy the signing \
                     secret it shows, and paste it into /setup (the webhook secret field). \
                     Deliveries refused meanwhile are retried by {name}."
                ),
            ),
            Scope::Operator => (
                Target::Operator,
                format!(
                    "copy the webhook secret {name} shows for the operator's endpoint into \
                     [providers.{provider}] of docobo.toml (or its DOCOBO_PROVIDERS__… variable) \
                     and restart Docobo."
                ),
            ),
        };
        self.raise(
            Alert::new(
                AlertKind::WebhookSignature,
                target,
                format!(
                    "{count} deliveries from {name} to this server's webhook URL failed the \
                     signature check in the last {minutes} min. Likely cause: the secret in \
                     /setup does not match the one {name} shows (it was rotated, or mistyped)."
                ),
                fix,
            )
            .about(name.to_owned()),
        );
    }

    /// A webhook delivery was answered; `failed`: on Docobo's side (a 500). `verified`: its
    /// signature held (the provider is alive). `provider` is a loaded plugin's id.
    pub fn delivery(&self, provider: Option<&str>, failed: bool, verified: bool) {
        let now = self.now();
        let watch = self.watch();
        if verified && let Some(provider) = provider {
            lock(&watch.last_delivery).insert(provider.to_owned(), now);
        }
        let Some((errors, total)) = watch.count(now, failed) else {
            return;
        };
        let percent = errors * 100 / total.max(1);
        self.raise(Alert::new(
            AlertKind::ErrorRate,
            Target::Operator,
            format!(
                "{errors} of the last {total} webhook deliveries ({percent} %) in 15 minutes \
                 failed on Docobo's side (HTTP 500; providers retry them)."
            ),
            "look at the other alerts and the log (level error) for the cause: the database, \
             the disk or a plugin. Deliveries are retried by the providers once it is fixed.",
        ));
    }

    /// Tells the operator about each provider that has `active` card subscriptions (by
    /// provider id) and sent no verified delivery for `alerts.provider_silence_hours`.
    pub fn check_silence(&self, active: &[(String, i64)]) {
        let watch = self.watch();
        let silence = watch.settings.silence_ms;
        if silence == 0 {
            return;
        }
        let now = self.now();
        for (provider, subscriptions) in active.iter().filter(|(_, n)| *n > 0) {
            let last = lock(&watch.last_delivery)
                .get(provider)
                .copied()
                .unwrap_or(watch.started)
                .max(watch.started);
            if now - last < silence {
                continue;
            }
            let hours = (now - last) / (60 * MINUTE);
            self.raise(
                Alert::new(
                    AlertKind::ProviderSilent,
                    Target::Operator,
                    format!(
                        "no verified webhook delivery from {provider} for {hours} h, while \
                         {subscriptions} of its subscriptions are active. Likely cause: the \
                         webhook endpoint was disabled or deleted at {provider}, or the public \
                         URL no longer reaches Docobo (the poll still catches up where the \
                         provider supports it)."
                    ),
                    format!(
                        "check at {provider} that the webhook endpoints are enabled and that \
                         their deliveries succeed; check server.public_url and your proxy. A \
                         small shop can be quiet this long: raise \
                         alerts.provider_silence_hours, or set it to 0."
                    ),
                )
                .about(provider.clone()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::metrics::Metrics;

    fn alerts(clock: &Clock) -> Alerts {
        Alerts::new(clock.clone(), Metrics::new(), &Settings::default())
    }

    fn kinds(a: &Alerts) -> Vec<String> {
        a.take_outbox()
            .into_iter()
            .filter_map(|o| match o {
                super::super::Outgoing::Staff { kind, .. } => Some(kind.as_str().to_owned()),
                super::super::Outgoing::Member { .. } => None,
            })
            .collect()
    }

    #[test]
    fn the_error_rate_needs_enough_deliveries_and_forgets_after_fifteen_minutes() {
        let clock = Clock::fixed(0);
        let a = alerts(&clock);
        // One failure of a handful is no rate.
        a.delivery(Some("polar"), true, false);
        assert!(kinds(&a).is_empty());
        for _ in 0..38 {
            a.delivery(Some("polar"), false, true);
        }
        // 2 of 40 is exactly 5 %: not over it.
        a.delivery(Some("polar"), true, false);
        assert!(kinds(&a).is_empty());
        a.delivery(Some("polar"), true, false);
        assert_eq!(kinds(&a), ["error_rate"]);
        // Sixteen minutes later the old deliveries are out of the window.
        clock.advance(16 * MINUTE);
        for _ in 0..30 {
            a.delivery(Some("polar"), false, true);
        }
        a.delivery(Some("polar"), true, false);
        assert!(kinds(&a).is_empty(), "1 of 31");
    }

    #[test]
    fn a_provider_is_silent_only_after_the_configured_time_since_start_or_its_last_delivery() {
        let clock = Clock::fixed(0);
        let a = alerts(&clock);
        let active = [("polar".to_owned(), 2), ("sepay".to_owned(), 0)];
        clock.advance(47 * 60 * MINUTE);
        a.check_silence(&active);
        assert!(kinds(&a).is_empty());
        a.delivery(Some("polar"), false, true);
        clock.advance(47 * 60 * MINUTE);
        a.check_silence(&active);
        assert!(kinds(&a).is_empty(), "a delivery 47 h ago");
        clock.advance(60 * MINUTE);
        a.check_silence(&active);
        assert_eq!(kinds(&a), ["provider_silent"], "sepay has none active");
    }

    #[test]
    fn refused_signatures_alert_from_the_threshold_within_the_window() {
        let clock = Clock::fixed(0);
        let a = alerts(&clock);
        let guild = Scope::Guild(crate::domain::GuildId::new(7).expect("guild"));
        a.bad_signature("polar", "Polar", guild);
        clock.advance(61 * MINUTE);
        a.bad_signature("polar", "Polar", guild);
        a.bad_signature("polar", "Polar", guild);
        assert!(kinds(&a).is_empty(), "the first fell out of the window");
        a.bad_signature("polar", "Polar", Scope::Operator);
        a.bad_signature("polar", "Polar", guild);
        assert_eq!(kinds(&a), ["webhook_signature"]);
    }
}
