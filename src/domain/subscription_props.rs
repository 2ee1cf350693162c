//! Property tests of the subscription state machine (proptest): whatever order providers'
//! reports arrive in, retried or replayed, mixed with pass payments and the clock running
//! out, a refunded, revoked or expired subscription is not entitled, and the newest
//! provider timestamp decides the state.

use proptest::prelude::*;

use super::SubscriptionStatus::{
    self, Active, Canceled, Expired, PastDue, Paused, Pending, Refunded, Revoked, Trialing,
};
use super::{StatusChange, SubscriptionState, Transition, is_entitled};

const DAY: i64 = 86_400_000;
const GRACE: i64 = 3 * DAY;

/// One thing that can happen to a subscription.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// A provider's report.
    Report(StatusChange),
    /// A bank transfer paying a pass of `length` days.
    Pass { paid_at: i64, length: i64 },
    /// The clock reaches `now` (role sync ends what has run out).
    Clock { now: i64 },
}

/// Statuses a provider reports (never `expired`, which Docobo derives, but the state machine
/// must refuse it all the same).
fn status() -> impl Strategy<Value = SubscriptionStatus> {
    prop::sample::select(SubscriptionStatus::ALL.to_vec())
}

/// Instants within a few weeks, so that periods, grace and events overlap.
fn instant() -> impl Strategy<Value = i64> {
    0..40 * DAY
}

fn change() -> impl Strategy<Value = StatusChange> {
    change_of(status())
}

fn change_of(
    status: impl Strategy<Value = SubscriptionStatus>,
) -> impl Strategy<Value = StatusChange> {
    (status, prop::option::of(instant()), instant()).prop_map(|(status, period_end, at)| {
        StatusChange {
            status,
            period_end,
            occurred_at: at,
        }
    })
}

/// What providers report about a running subscription (no `pending`, no `expired`), so
/// that most oldest-first sequences are ones the state machine allows.
fn reported() -> impl Strategy<Value = SubscriptionStatus> {
    prop::sample::select(vec![
        Active, Active, Canceled, PastDue, Revoked, Refunded, Paused, Trialing,
    ])
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => change().prop_map(Step::Report),
        1 => (instant(), 1..60_i64).prop_map(|(paid_at, days)| Step::Pass { paid_at, length: days * DAY }),
        2 => instant().prop_map(|now| Step::Clock { now }),
    ]
}

fn initial() -> impl Strategy<Value = SubscriptionState> {
    (
        status(),
        prop::option::of(instant()),
        prop::option::of(instant()),
    )
        .prop_map(|(status, period_end, last_event_at)| SubscriptionState {
            status,
            period_end,
            last_event_at,
        })
}

/// Applies one step as the services do (`subscriptions::record`, `expire_holding`).
fn run(state: SubscriptionState, step: Step) -> SubscriptionState {
    let transition = match step {
        Step::Report(change) => state.apply(change),
        Step::Pass { paid_at, length } => state.extend_pass(paid_at, length),
        Step::Clock { now } => return state.expire(now, GRACE).unwrap_or(state),
    };
    match transition {
        Transition::Applied(next) => next,
        Transition::Stale { .. } | Transition::Refused { .. } => state,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Refunded is final and never entitled; revoked is never entitled and can only become
    /// refunded; whatever comes after, in whatever order.
    #[test]
    fn refunded_and_revoked_stay_without_the_role(
        start in initial(),
        steps in prop::collection::vec(step(), 0..24),
        checks in prop::collection::vec(instant(), 1..6),
    ) {
        let mut state = start;
        for step in steps {
            let before = state;
            state = run(state, step);
            match before.status {
                Refunded => prop_assert_eq!(state.status, Refunded, "refunded moved: {:?}", step),
                Revoked => prop_assert!(
                    matches!(state.status, Revoked | Refunded),
                    "revoked became {:?} by {:?}", state.status, step
                ),
                _ => {}
            }
            if matches!(state.status, Refunded | Revoked | Expired | Pending | Paused) {
                for &now in &checks {
                    prop_assert!(!state.is_entitled(now, GRACE), "{:?} entitled at {}", state, now);
                }
            }
        }
    }

    /// Once the clock has expired a subscription, no replay or reordering of what the
    /// provider had already said (events not newer than the last one applied) brings the
    /// role back, at that time or later.
    #[test]
    fn replays_do_not_revive_an_expired_subscription(
        start in initial(),
        history in prop::collection::vec(change(), 1..12),
        replay in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
        now in instant(),
        later in 0..30 * DAY,
    ) {
        let mut state = start;
        for change in &history {
            state = run(state, Step::Report(*change));
        }
        let Some(expired) = state.expire(now, GRACE) else {
            return Ok(());
        };
        prop_assert_eq!(expired.status, Expired);
        prop_assert!(!expired.is_entitled(now, GRACE));
        let mut state = expired;
        for index in replay {
            let old = *index.get(&history);
            // Only what is older than the last event applied: a replay or a late retry.
            if state.last_event_at.is_some_and(|last| old.occurred_at < last) {
                state = run(state, Step::Report(old));
            }
            prop_assert_eq!(state, expired, "a replay moved an expired subscription");
            prop_assert!(!state.is_entitled(now + later, GRACE));
        }
    }

    /// The newest provider timestamp wins: reports with distinct timestamps, applied in any
    /// order, end in the state that applying them oldest first gives (when that order is
    /// one the state machine allows), and the newest timestamp is remembered.
    #[test]
    fn the_newest_report_wins_in_any_order(
        start in (status(), prop::option::of(instant())).prop_map(|(status, period_end)| SubscriptionState { status, period_end, last_event_at: None }),
        reports in prop::collection::vec(change_of(reported()), 1..10),
        order in any::<u64>(),
    ) {
        let mut reports = reports;
        // Distinct timestamps: two reports of the same instant have no order to respect.
        reports.sort_by_key(|c| c.occurred_at);
        reports.dedup_by_key(|c| c.occurred_at);
        let mut sorted = start;
        for change in &reports {
            match sorted.apply(*change) {
                Transition::Applied(next) => sorted = next,
                // The oldest-first order itself is not one the machine allows.
                Transition::Refused { .. } | Transition::Stale { .. } => return Ok(()),
            }
        }
        let mut shuffled = reports.clone();
        // A deterministic shuffle from the generated seed.
        let mut seed = order;
        for i in (1..shuffled.len()).rev() {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let j = usize::try_from((seed >> 33) % (i as u64 + 1)).unwrap_or(0);
            shuffled.swap(i, j);
        }
        let mut state = start;
        for change in &shuffled {
            state = run(state, Step::Report(*change));
        }
        let newest = reports.iter().map(|c| c.occurred_at).max();
        prop_assert_eq!(state.status, sorted.status, "order {:?}", shuffled);
        prop_assert_eq!(state.last_event_at, newest);
        prop_assert_eq!(sorted.last_event_at, newest);
    }

    /// Entitlement follows the rules, with the grace period only for active and past due.
    #[test]
    fn entitlement_matches_the_status_rules(
        status in status(),
        end in prop::option::of(instant()),
        now in instant(),
    ) {
        let entitled = is_entitled(status, end, now, GRACE);
        match (status, end) {
            (Active, None) => prop_assert!(entitled),
            (Active | PastDue, Some(end)) => prop_assert_eq!(entitled, now < end + GRACE),
            (Canceled | Trialing, Some(end)) => prop_assert_eq!(entitled, now < end),
            (Trialing, None) => prop_assert!(entitled),
            _ => prop_assert!(!entitled),
        }
    }

    /// A paused subscription is without the role whatever happened before, and the clock
    /// never turns it into an expired one; only a newer report (a resume) moves it.
    #[test]
    fn paused_is_not_entitled_until_a_newer_report(
        start in initial(),
        steps in prop::collection::vec(step(), 0..16),
        pause_at in instant(),
        later in prop::collection::vec(step(), 0..8),
        checks in prop::collection::vec(instant(), 1..6),
    ) {
        let mut state = start;
        for step in steps {
            state = run(state, step);
        }
        state = run(state, Step::Report(StatusChange { status: Paused, period_end: None, occurred_at: pause_at }));
        if state.status != Paused {
            return Ok(());
        }
        for step in later {
            let before = state;
            state = run(state, step);
            if state.status == Paused {
                for &now in &checks {
                    prop_assert!(!state.is_entitled(now, GRACE));
                }
            } else if before.status == Paused {
                // Only a report at or after the pause, or a pass payment, moves it.
                let moved_by_newer = match step {
                    Step::Report(c) => before.last_event_at.is_none_or(|l| c.occurred_at >= l),
                    Step::Pass { .. } => true,
                    Step::Clock { .. } => false,
                };
                prop_assert!(moved_by_newer, "{:?} moved a paused subscription to {:?}", step, state.status);
            }
        }
    }
}
