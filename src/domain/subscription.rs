//! The subscription state machine and entitlement.
//!
//! ```text
//! pending → trialing → active → canceled (entitled until period end) → expired
//!                        ↑ ↓  ↑ ↓      │
//!                 past_due  paused    uncanceled (back to active)
//! any live state → revoked | refunded (not entitled, immediately)
//! ```
//!
//! A paused subscription is not entitled until it is resumed (it becomes active again); a
//! trialing one is entitled until its trial (its period) ends.
//!
//! Providers report states; Docobo derives `expired` itself when a period ends. An event
//! older than the last one applied to a subscription moves nothing (webhooks arrive out of
//! order and are retried for days).

use std::fmt;

use super::{UnixMillis, ValidationError};

/// Where a member's subscription (or pass, or one-time purchase) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionStatus {
    /// Checkout created, nothing paid yet.
    Pending,
    /// Paid and running.
    Active,
    /// Cancelled by the member: entitled until the period ends.
    Canceled,
    /// A renewal failed: entitled during the configured grace period.
    PastDue,
    /// Ended by the provider or merchant: not entitled.
    Revoked,
    /// Money returned: not entitled.
    Refunded,
    /// The period ended (derived by Docobo): not entitled.
    Expired,
    /// Paused by the member or merchant: not entitled until resumed (plugin API 0.2).
    Paused,
    /// In a free trial: entitled until the period (the trial) ends (plugin API 0.2).
    Trialing,
}

impl SubscriptionStatus {
    pub const ALL: [Self; 9] = [
        Self::Pending,
        Self::Active,
        Self::Canceled,
        Self::PastDue,
        Self::Revoked,
        Self::Refunded,
        Self::Expired,
        Self::Paused,
        Self::Trialing,
    ];

    /// The stored form.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Canceled => "canceled",
            Self::PastDue => "past_due",
            Self::Revoked => "revoked",
            Self::Refunded => "refunded",
            Self::Expired => "expired",
            Self::Paused => "paused",
            Self::Trialing => "trialing",
        }
    }

    /// # Errors
    /// Text that is not one of the stored forms.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                ValidationError::new("status", format!("{text:?} is not a subscription status"))
            })
    }

    /// Whether a provider may move a subscription from `self` to `to`.
    ///
    /// Refunded is final; revoked can only become refunded; nothing goes back to pending.
    /// Expired may come back to life: a pass bought again, or a provider reporting a newer
    /// period.
    #[must_use]
    pub fn can_become(self, to: Self) -> bool {
        match (self, to) {
            (Self::Refunded, _) => false,
            (Self::Revoked, to) => matches!(to, Self::Revoked | Self::Refunded),
            (from, Self::Pending) => from == Self::Pending,
            // `Expired` is derived by Docobo, never reported by a provider.
            (_, Self::Expired) => false,
            _ => true,
        }
    }
}

impl fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a subscription in `status`, whose paid period ends at `period_end`, entitles its
/// member to the role at `now`. `grace_ms` is how long a late renewal (`active` or
/// `past_due` past the period end) keeps the role. A trial keeps it until its end, without
/// grace (a trial that converts is reported as active); a paused subscription never does.
#[must_use]
pub fn is_entitled(
    status: SubscriptionStatus,
    period_end: Option<UnixMillis>,
    now: UnixMillis,
    grace_ms: i64,
) -> bool {
    match (status, period_end) {
        // One-time purchases have no period end; nor has a trial whose end the provider did
        // not say (until it reports the next state).
        (SubscriptionStatus::Active | SubscriptionStatus::Trialing, None) => true,
        (SubscriptionStatus::Active | SubscriptionStatus::PastDue, Some(end)) => {
            now < end.saturating_add(grace_ms)
        }
        (SubscriptionStatus::Canceled | SubscriptionStatus::Trialing, Some(end)) => now < end,
        _ => false,
    }
}

/// What Docobo knows about one subscription, as far as the state machine is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionState {
    pub status: SubscriptionStatus,
    pub period_end: Option<UnixMillis>,
    /// The provider timestamp of the newest event applied.
    pub last_event_at: Option<UnixMillis>,
}

/// A provider's report about a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    pub status: SubscriptionStatus,
    /// The new end of the paid period; `None` keeps the current one.
    pub period_end: Option<UnixMillis>,
    /// When the provider produced this state.
    pub occurred_at: UnixMillis,
}

/// The result of applying a [`StatusChange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The subscription moves to this state.
    Applied(SubscriptionState),
    /// The event is older than the last one applied: recorded, nothing moves.
    Stale { last_event_at: UnixMillis },
    /// The state machine forbids this move (e.g. refunded → active).
    Refused {
        from: SubscriptionStatus,
        to: SubscriptionStatus,
    },
}

impl SubscriptionState {
    /// Applies a provider report.
    #[must_use]
    pub fn apply(self, change: StatusChange) -> Transition {
        if let Some(last) = self.last_event_at
            && change.occurred_at < last
        {
            return Transition::Stale {
                last_event_at: last,
            };
        }
        if !self.status.can_become(change.status) {
            return Transition::Refused {
                from: self.status,
                to: change.status,
            };
        }
        Transition::Applied(Self {
            status: change.status,
            period_end: change.period_end.or(self.period_end),
            last_event_at: Some(
                self.last_event_at
                    .map_or(change.occurred_at, |last| last.max(change.occurred_at)),
            ),
        })
    }

    /// A payment for a pass of `length_ms` arrived at `paid_at`: the pass becomes active and
    /// runs from the later of now and the current end (a second payment extends it).
    #[must_use]
    pub fn extend_pass(self, paid_at: UnixMillis, length_ms: i64) -> Transition {
        if !self.status.can_become(SubscriptionStatus::Active) {
            return Transition::Refused {
                from: self.status,
                to: SubscriptionStatus::Active,
            };
        }
        let running_until = match (self.status, self.period_end) {
            (SubscriptionStatus::Active, Some(end)) if end > paid_at => end,
            _ => paid_at,
        };
        Transition::Applied(Self {
            status: SubscriptionStatus::Active,
            period_end: Some(running_until.saturating_add(length_ms)),
            last_event_at: Some(self.last_event_at.map_or(paid_at, |l| l.max(paid_at))),
        })
    }

    /// The state after the clock reaches `now`: a live subscription whose entitlement has
    /// run out becomes `expired`. `None` when nothing changes.
    #[must_use]
    pub fn expire(self, now: UnixMillis, grace_ms: i64) -> Option<Self> {
        // Paused is not live here: it is already without the role, and it may resume.
        let live = matches!(
            self.status,
            SubscriptionStatus::Active
                | SubscriptionStatus::Canceled
                | SubscriptionStatus::PastDue
                | SubscriptionStatus::Trialing
        );
        (live
            && self.period_end.is_some()
            && !is_entitled(self.status, self.period_end, now, grace_ms))
        .then_some(Self {
            status: SubscriptionStatus::Expired,
            ..self
        })
    }

    /// Whether this state entitles the member at `now`.
    #[must_use]
    pub fn is_entitled(self, now: UnixMillis, grace_ms: i64) -> bool {
        is_entitled(self.status, self.period_end, now, grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::SubscriptionStatus::{
        Active, Canceled, Expired, PastDue, Paused, Pending, Refunded, Revoked, Trialing,
    };
    use super::*;

    const DAY: i64 = 86_400_000;
    const GRACE: i64 = 3 * DAY;

    fn state(
        status: SubscriptionStatus,
        period_end: Option<i64>,
        last: Option<i64>,
    ) -> SubscriptionState {
        SubscriptionState {
            status,
            period_end,
            last_event_at: last,
        }
    }

    fn change(status: SubscriptionStatus, period_end: Option<i64>, at: i64) -> StatusChange {
        StatusChange {
            status,
            period_end,
            occurred_at: at,
        }
    }

    #[test]
    fn statuses_round_trip_through_their_stored_form() {
        for s in SubscriptionStatus::ALL {
            assert_eq!(SubscriptionStatus::parse(s.as_str()), Ok(s));
        }
        assert!(SubscriptionStatus::parse("ACTIVE").is_err());
    }

    #[test]
    fn the_transition_table_allows_exactly_the_documented_moves() {
        use std::collections::HashSet;
        let mut allowed: HashSet<(SubscriptionStatus, SubscriptionStatus)> = [
            (Pending, Pending),
            (Pending, Active),
            (Pending, Canceled),
            (Pending, PastDue),
            (Pending, Revoked),
            (Pending, Refunded),
            (Active, Active),
            (Active, Canceled),
            (Active, PastDue),
            (Active, Revoked),
            (Active, Refunded),
            (Canceled, Active), // uncanceled
            (Canceled, Canceled),
            (Canceled, PastDue),
            (Canceled, Revoked),
            (Canceled, Refunded),
            (PastDue, Active),
            (PastDue, Canceled),
            (PastDue, PastDue),
            (PastDue, Revoked),
            (PastDue, Refunded),
            (Revoked, Revoked),
            (Revoked, Refunded),
            (Expired, Active),
            (Expired, Canceled),
            (Expired, PastDue),
            (Expired, Revoked),
            (Expired, Refunded),
        ]
        .into_iter()
        .collect();
        // Paused and trialing are live states like active: any live (or expired) state may
        // become them, and they may become any reported state.
        for live in [
            Pending, Active, Canceled, PastDue, Expired, Paused, Trialing,
        ] {
            allowed.insert((live, Paused));
            allowed.insert((live, Trialing));
        }
        for to in [Active, Canceled, PastDue, Revoked, Refunded] {
            allowed.insert((Paused, to));
            allowed.insert((Trialing, to));
        }
        for from in SubscriptionStatus::ALL {
            for to in SubscriptionStatus::ALL {
                let t = state(from, Some(10 * DAY), Some(1)).apply(change(to, None, 2));
                let want = allowed.contains(&(from, to));
                assert_eq!(
                    matches!(t, Transition::Applied(_)),
                    want,
                    "{from} -> {to}: {t:?}"
                );
                if !want {
                    assert_eq!(t, Transition::Refused { from, to });
                }
            }
        }
    }

    #[test]
    fn pending_becomes_active_with_the_reported_period() {
        let t = state(Pending, None, None).apply(change(Active, Some(30 * DAY), 5));
        assert_eq!(
            t,
            Transition::Applied(state(Active, Some(30 * DAY), Some(5)))
        );
    }

    #[test]
    fn an_event_older_than_the_last_applied_moves_nothing() {
        let current = state(Canceled, Some(30 * DAY), Some(1_000));
        let late_active = change(Active, Some(60 * DAY), 999);
        assert_eq!(
            current.apply(late_active),
            Transition::Stale {
                last_event_at: 1_000
            }
        );
        // The same instant is not older: applied (providers send several events per change).
        assert!(matches!(
            current.apply(change(Active, None, 1_000)),
            Transition::Applied(_)
        ));
    }

    #[test]
    fn a_report_without_a_period_end_keeps_the_current_one() {
        let t = state(Active, Some(30 * DAY), Some(1)).apply(change(Canceled, None, 2));
        assert_eq!(
            t,
            Transition::Applied(state(Canceled, Some(30 * DAY), Some(2)))
        );
    }

    #[test]
    fn uncanceled_returns_to_active() {
        let t = state(Canceled, Some(30 * DAY), Some(1)).apply(change(Active, None, 2));
        assert_eq!(
            t,
            Transition::Applied(state(Active, Some(30 * DAY), Some(2)))
        );
    }

    #[test]
    fn entitlement_follows_status_period_end_and_grace() {
        let end = 30 * DAY;
        // Active: until period end plus grace (a late renewal webhook keeps the role).
        assert!(is_entitled(Active, Some(end), end - 1, GRACE));
        assert!(is_entitled(Active, Some(end), end + GRACE - 1, GRACE));
        assert!(!is_entitled(Active, Some(end), end + GRACE, GRACE));
        // One-time purchase: forever.
        assert!(is_entitled(Active, None, i64::MAX, GRACE));
        // Canceled: exactly until period end, no grace.
        assert!(is_entitled(Canceled, Some(end), end - 1, GRACE));
        assert!(!is_entitled(Canceled, Some(end), end, GRACE));
        assert!(!is_entitled(Canceled, None, 0, GRACE));
        // Past due: during grace after the period end.
        assert!(is_entitled(PastDue, Some(end), end + GRACE - 1, GRACE));
        assert!(!is_entitled(PastDue, Some(end), end + GRACE, GRACE));
        // Trialing: until the trial ends, no grace; without an end, until the next report.
        assert!(is_entitled(Trialing, Some(end), end - 1, GRACE));
        assert!(!is_entitled(Trialing, Some(end), end, GRACE));
        assert!(is_entitled(Trialing, None, i64::MAX, GRACE));
        // Never entitled (paused: until it resumes).
        for s in [Pending, Revoked, Refunded, Expired, Paused] {
            assert!(!is_entitled(s, Some(end), 0, GRACE), "{s}");
            assert!(!is_entitled(s, None, 0, GRACE), "{s}");
        }
    }

    #[test]
    fn canceled_expires_at_period_end_and_not_before() {
        let s = state(Canceled, Some(30 * DAY), Some(1));
        assert_eq!(s.expire(30 * DAY - 1, GRACE), None);
        assert_eq!(
            s.expire(30 * DAY, GRACE),
            Some(state(Expired, Some(30 * DAY), Some(1)))
        );
    }

    #[test]
    fn active_and_past_due_expire_after_grace_and_one_time_never_does() {
        let end = 30 * DAY;
        assert_eq!(
            state(Active, Some(end), None).expire(end + GRACE - 1, GRACE),
            None
        );
        assert_eq!(
            state(Active, Some(end), None)
                .expire(end + GRACE, GRACE)
                .map(|s| s.status),
            Some(Expired)
        );
        assert_eq!(
            state(PastDue, Some(end), None)
                .expire(end + GRACE, GRACE)
                .map(|s| s.status),
            Some(Expired)
        );
        assert_eq!(state(Active, None, None).expire(i64::MAX, GRACE), None);
        // Not live: nothing to expire.
        assert_eq!(state(Revoked, Some(end), None).expire(end * 2, GRACE), None);
        assert_eq!(state(Expired, Some(end), None).expire(end * 2, GRACE), None);
    }

    #[test]
    fn a_second_pass_payment_extends_from_the_current_end() {
        let len = 30 * DAY;
        let first = match state(Pending, None, None).extend_pass(DAY, len) {
            Transition::Applied(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(first.period_end, Some(DAY + len));
        // Paid again 10 days in: runs 30 days past the current end.
        let second = match first.extend_pass(11 * DAY, len) {
            Transition::Applied(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(second.period_end, Some(DAY + 2 * len));
        // Paid again after it expired: runs 30 days from the payment.
        let expired = second.expire(100 * DAY, 0).expect("expired");
        let renewed = match expired.extend_pass(200 * DAY, len) {
            Transition::Applied(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(renewed.status, Active);
        assert_eq!(renewed.period_end, Some(200 * DAY + len));
        // A refunded pass cannot be revived by a payment.
        assert!(matches!(
            state(Refunded, None, None).extend_pass(DAY, len),
            Transition::Refused { .. }
        ));
    }
    #[test]
    fn pausing_takes_the_role_and_resuming_gives_it_back() {
        let end = 30 * DAY;
        let running = state(Active, Some(end), Some(1));
        assert!(running.is_entitled(DAY, GRACE));
        let Transition::Applied(paused) = running.apply(change(Paused, None, 2)) else {
            panic!("pause refused");
        };
        assert_eq!(paused.status, Paused);
        assert!(
            !paused.is_entitled(DAY, GRACE),
            "a paused subscription keeps the role"
        );
        // A paused subscription does not expire: it may resume.
        assert_eq!(paused.expire(end * 2, GRACE), None);
        let Transition::Applied(resumed) = paused.apply(change(Active, Some(2 * end), 3)) else {
            panic!("resume refused");
        };
        assert!(resumed.is_entitled(end + DAY, GRACE));
        // A pause reported late (older than the resume) moves nothing.
        assert!(matches!(
            resumed.apply(change(Paused, None, 2)),
            Transition::Stale { .. }
        ));
    }

    #[test]
    fn a_trial_is_entitled_until_it_ends_then_expires_or_converts() {
        let trial_end = 7 * DAY;
        let Transition::Applied(trial) =
            state(Pending, None, None).apply(change(Trialing, Some(trial_end), 1))
        else {
            panic!("trial refused");
        };
        assert!(trial.is_entitled(trial_end - 1, GRACE));
        // No grace after a trial: a trial that converts is reported as active.
        assert!(!trial.is_entitled(trial_end, GRACE));
        assert_eq!(trial.expire(trial_end - 1, GRACE), None);
        assert_eq!(
            trial.expire(trial_end, GRACE).map(|s| s.status),
            Some(Expired)
        );
        let Transition::Applied(paid) = trial.apply(change(Active, Some(37 * DAY), 2)) else {
            panic!("conversion refused");
        };
        assert!(paid.is_entitled(30 * DAY, GRACE));
    }
}
