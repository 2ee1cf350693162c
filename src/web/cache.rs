//! The overview's summary, kept per guild between renders.
//!
//! Counting who has access and what began and ended each week reads every subscription of
//! the guild: ≈ 150 ms of one core at 100 000 subscriptions (BENCHMARKS.md, "Dashboard").
//! Doing that on every render made the page slow and took a core from the webhook path
//! while an owner watched. So the summary is computed once and kept:
//!
//! - it is **fresh** while no holding changed since its computation began (the change
//!   counter, [`crate::services::SyncTrigger::generation`], moves on every delivery that
//!   recorded something and every holding another service changed) and it is younger than
//!   [`MAX_AGE`] (access ends with time, and the weekly counts move);
//! - a page given a stale summary starts one refresh and waits for it up to [`PAGE_WAIT`]
//!   (not at all if the last one took longer): a small guild's summary is always fresh by
//!   then; a big one shows the kept summary, with its time, and the live stream brings the
//!   new one when it is ready;
//! - the live stream waits for a summary computed after the delivery it announces, so the
//!   page it tells to fetch again sees the purchase;
//! - refreshes are **paced**: one at a time per guild, each starting at least
//!   `max(`[`MIN_GAP`]`, `[`PACE`]` × the last one's duration)` after the last began, so
//!   keeping a dashboard open costs at most a tenth of a core whatever the delivery rate.
//!
//! A refresh runs in its own task: a page that stops waiting does not cancel it.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::db::DbError;

/// A summary older than this is refreshed even if nothing changed.
pub const MAX_AGE: Duration = Duration::from_secs(30);
/// The shortest time between the starts of two refreshes of one guild's summary.
pub const MIN_GAP: Duration = Duration::from_secs(1);
/// A refresh starts no sooner than this many times the last one's duration after it.
pub const PACE: u32 = 10;
/// How long a page waits for a refresh before it shows the kept summary.
pub const PAGE_WAIT: Duration = Duration::from_millis(40);

/// A kept value and when it was computed.
#[derive(Debug)]
pub struct Kept<T> {
    pub value: T,
    /// Wall-clock time (unix ms) its computation began, for the page to say.
    pub at_ms: i64,
}

#[derive(Debug)]
struct State<T> {
    kept: Option<Arc<Kept<T>>>,
    /// The change counter when the kept value's computation began.
    generation: u64,
    /// When the last computation began, and how long it took.
    began: Option<Instant>,
    took: Duration,
    /// Computations finished (each success or failure adds one).
    finished: u64,
    /// The last computation's error, if it failed.
    error: Option<Arc<DbError>>,
    /// Whether a refresh task runs.
    running: bool,
}

impl<T> Default for State<T> {
    fn default() -> Self {
        Self {
            kept: None,
            generation: 0,
            began: None,
            took: Duration::ZERO,
            finished: 0,
            error: None,
            running: false,
        }
    }
}

impl<T> State<T> {
    /// The kept value, if nothing changed since its computation began and it is younger
    /// than [`MAX_AGE`] by the monotonic clock and by the service's clock (`now_ms`: a
    /// clock moved forward, as tests do, ages it too).
    fn fresh(&self, generation: u64, now: Instant, now_ms: i64) -> Option<Arc<Kept<T>>> {
        let kept = self.kept.as_ref()?;
        let began = self.began?;
        let max_ms = i64::try_from(MAX_AGE.as_millis()).unwrap_or(i64::MAX);
        (self.error.is_none()
            && self.generation >= generation
            && now.saturating_duration_since(began) < MAX_AGE
            && now_ms.saturating_sub(kept.at_ms) < max_ms)
            .then(|| Arc::clone(kept))
    }

    /// When the next refresh may begin.
    fn next_start(&self) -> Option<Instant> {
        let gap = self.took.saturating_mul(PACE).max(MIN_GAP);
        self.began.map(|began| began + gap)
    }
}

type Slot<T> = Arc<watch::Sender<State<T>>>;

/// Values kept per key (a guild), refreshed as described in the module docs. Cheap to clone.
#[derive(Debug)]
pub struct Cache<K, T> {
    slots: Arc<Mutex<HashMap<K, Slot<T>>>>,
}

impl<K, T> Clone for Cache<K, T> {
    fn clone(&self) -> Self {
        Self {
            slots: Arc::clone(&self.slots),
        }
    }
}

impl<K, T> Default for Cache<K, T> {
    fn default() -> Self {
        Self {
            slots: Arc::default(),
        }
    }
}

/// How a refresh gets the change counter and computes the value.
pub trait Source<T>: Send + Sync + 'static {
    /// The change counter now.
    fn generation(&self) -> u64;
    /// Wall-clock time now (unix ms).
    fn now_ms(&self) -> i64;
    /// Computes the value.
    fn compute(&self) -> impl Future<Output = Result<T, DbError>> + Send;
}

impl<K, T> Cache<K, T>
where
    K: Hash + Eq + Copy + Send + 'static,
    T: Send + Sync + 'static,
{
    fn slot(&self, key: K) -> Slot<T> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            slots
                .entry(key)
                .or_insert_with(|| Arc::new(watch::Sender::new(State::default()))),
        )
    }

    /// Drops what is kept for `key` (a guild Docobo does not know).
    pub fn forget(&self, key: K) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }

    /// For a page: the kept value when it is fresh; else one computed now if that takes
    /// under [`PAGE_WAIT`] (or if nothing is kept yet); else the kept one, while the
    /// refresh goes on. A page does not wait at all when the last computation took longer
    /// than [`PAGE_WAIT`].
    ///
    /// # Errors
    /// The refresh failed (the error is shared by everyone who waited for it).
    pub async fn page<S: Source<T>>(
        &self,
        key: K,
        source: S,
    ) -> Result<Arc<Kept<T>>, Arc<DbError>> {
        let slot = self.slot(key);
        // Subscribed first: a refresh that ends goes again while someone waits (`refresh`).
        let rx = slot.subscribe();
        let generation = source.generation();
        let (kept, finished, took) = {
            let state = rx.borrow();
            if let Some(fresh) = state.fresh(generation, Instant::now(), source.now_ms()) {
                return Ok(fresh);
            }
            (state.kept.clone(), state.finished, state.took)
        };
        refresh(&slot, source);
        let waited = wait(rx, generation, finished);
        match kept {
            None => waited.await,
            // The last count took longer than a page waits: this one will too.
            Some(kept) if took > PAGE_WAIT => Ok(kept),
            Some(kept) => tokio::time::timeout(PAGE_WAIT, waited)
                .await
                .unwrap_or(Ok(kept)),
        }
    }

    /// For the live stream: waits for a value computed from a change counter of at least
    /// `generation` (refreshing it at the paced rate if need be).
    ///
    /// # Errors
    /// The refresh failed.
    pub async fn at_least<S: Source<T>>(
        &self,
        key: K,
        generation: u64,
        source: S,
    ) -> Result<Arc<Kept<T>>, Arc<DbError>> {
        let slot = self.slot(key);
        let rx = slot.subscribe();
        let finished = {
            let state = rx.borrow();
            if let Some(fresh) = state.fresh(generation, Instant::now(), source.now_ms()) {
                return Ok(fresh);
            }
            state.finished
        };
        refresh(&slot, source);
        wait(rx, generation, finished).await
    }
}

/// Resolves when a computation finished after `finished` others did and either failed or
/// saw a change counter of at least `generation`.
async fn wait<T>(
    mut rx: watch::Receiver<State<T>>,
    generation: u64,
    finished: u64,
) -> Result<Arc<Kept<T>>, Arc<DbError>> {
    let state = rx
        .wait_for(|s| s.finished > finished && (s.error.is_some() || s.generation >= generation))
        .await
        // The sender lives in the slot, which the caller holds: it cannot be dropped.
        .map_err(|_| Arc::new(DbError::Conflict("the summary cache closed".to_owned())))?;
    match (&state.error, &state.kept) {
        (Some(error), _) => Err(Arc::clone(error)),
        (None, Some(kept)) => Ok(Arc::clone(kept)),
        (None, None) => Err(Arc::new(DbError::Conflict(
            "the summary was not computed".to_owned(),
        ))),
    }
}

/// Marks a refresh as running; if its task ends without clearing the mark (a panic), the
/// mark is cleared on drop, so that the guild's summary is not left never refreshed again.
struct Running<T> {
    slot: Slot<T>,
    armed: bool,
}

impl<T> Running<T> {
    /// The task cleared the mark itself.
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        if self.armed {
            self.slot
                .send_if_modified(|s| std::mem::replace(&mut s.running, false));
        }
    }
}

/// Starts a refresh task unless one runs. It waits for the pace, computes, and goes again
/// while someone still waits and the value is behind the change counter. Whether to go
/// again is decided under the same lock that a caller's `refresh` takes, and callers
/// subscribe before they call it: a caller either sees the task still running (and the task
/// then sees the caller waiting) or starts a new one.
fn refresh<T: Send + Sync + 'static, S: Source<T>>(slot: &Slot<T>, source: S) {
    let started = slot.send_if_modified(|s| !std::mem::replace(&mut s.running, true));
    if !started {
        return;
    }
    let mut running = Running {
        slot: Arc::clone(slot),
        armed: true,
    };
    tokio::spawn(async move {
        let slot = Arc::clone(&running.slot);
        loop {
            let next = slot.borrow().next_start();
            if let Some(next) = next {
                tokio::time::sleep_until(next).await;
            }
            let generation = source.generation();
            let at_ms = source.now_ms();
            let began = Instant::now();
            let result = source.compute().await;
            let mut again = false;
            slot.send_modify(|s| {
                // Read under the lock: a caller that read a later counter and found this
                // task running is waiting by now, so it is counted below.
                let current = source.generation();
                s.began = Some(began);
                s.took = began.elapsed();
                s.finished += 1;
                match result {
                    Ok(value) => {
                        s.kept = Some(Arc::new(Kept { value, at_ms }));
                        s.generation = generation;
                        s.error = None;
                    }
                    Err(e) => s.error = Some(Arc::new(e)),
                }
                again = s.error.is_none() && s.generation < current && slot.receiver_count() > 0;
                s.running = again;
            });
            if !again {
                running.disarm();
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A source whose computation takes `cost` (of paused tokio time) and returns how many
    /// computations ran.
    #[derive(Clone)]
    struct Counting {
        generation: Arc<AtomicU64>,
        runs: Arc<AtomicU64>,
        cost: Duration,
        fail: Arc<std::sync::atomic::AtomicBool>,
        clock_ms: Arc<std::sync::atomic::AtomicI64>,
    }

    impl Counting {
        fn new(cost: Duration) -> Self {
            Self {
                generation: Arc::default(),
                runs: Arc::default(),
                cost,
                fail: Arc::default(),
                clock_ms: Arc::default(),
            }
        }
        fn change(&self) {
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
        fn runs(&self) -> u64 {
            self.runs.load(Ordering::Relaxed)
        }
    }

    impl Source<u64> for Counting {
        fn generation(&self) -> u64 {
            self.generation.load(Ordering::Relaxed)
        }
        fn now_ms(&self) -> i64 {
            self.clock_ms.load(Ordering::Relaxed)
        }
        async fn compute(&self) -> Result<u64, DbError> {
            tokio::time::sleep(self.cost).await;
            if self.fail.load(Ordering::Relaxed) {
                return Err(DbError::Conflict("disk gone".to_owned()));
            }
            Ok(self.runs.fetch_add(1, Ordering::Relaxed) + 1)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_value_is_served_without_computing_again() {
        let cache: Cache<u8, u64> = Cache::default();
        let src = Counting::new(Duration::from_millis(5));
        assert_eq!(cache.page(1, src.clone()).await.expect("computed").value, 1);
        for _ in 0..10 {
            assert_eq!(cache.page(1, src.clone()).await.expect("computed").value, 1);
        }
        assert_eq!(src.runs(), 1);
        // Another key is its own value.
        assert_eq!(cache.page(2, src.clone()).await.expect("computed").value, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_makes_a_cheap_value_fresh_within_the_page_wait() {
        let cache: Cache<u8, u64> = Cache::default();
        let src = Counting::new(Duration::from_millis(5));
        assert_eq!(cache.page(1, src.clone()).await.expect("computed").value, 1);
        tokio::time::sleep(MIN_GAP).await;
        src.change();
        assert_eq!(cache.page(1, src.clone()).await.expect("computed").value, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expensive_refresh_shows_the_kept_value_then_the_new_one() {
        let cache: Cache<u8, u64> = Cache::default();
        let src = Counting::new(Duration::from_millis(150));
        assert_eq!(cache.page(1, src.clone()).await.expect("computed").value, 1);
        src.change();
        let begun = Instant::now();
        // The pace: the next refresh starts 1.5 s after the first began; the page does
        // not wait for it.
        assert_eq!(cache.page(1, src.clone()).await.expect("computed").value, 1);
        assert_eq!(begun.elapsed(), Duration::ZERO);
        // The live stream waits for it.
        let generation = src.generation();
        let newer = cache
            .at_least(1, generation, src.clone())
            .await
            .expect("computed");
        assert_eq!(newer.value, 2);
        assert!(begun.elapsed() >= Duration::from_millis(1350 + 150));
        assert_eq!(cache.page(1, src.clone()).await.expect("computed").value, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_are_paced_however_fast_changes_come() {
        let cache: Cache<u8, u64> = Cache::default();
        let src = Counting::new(Duration::from_millis(200));
        cache.page(1, src.clone()).await.expect("computed");
        let begun = Instant::now();
        // 100 changes a second for 20 s, a page every 100 ms and a live stream waiting.
        let live = {
            let (cache, src) = (cache.clone(), src.clone());
            tokio::spawn(async move {
                let mut seen = 0;
                while begun.elapsed() < Duration::from_secs(20) {
                    let generation = src.generation();
                    seen = cache
                        .at_least(1, generation, src.clone())
                        .await
                        .expect("computed")
                        .value;
                }
                seen
            })
        };
        while begun.elapsed() < Duration::from_secs(20) {
            for _ in 0..10 {
                src.change();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let page = Instant::now();
            cache.page(1, src.clone()).await.expect("computed");
            assert!(page.elapsed() <= PAGE_WAIT);
        }
        let seen = live.await.expect("computed");
        // One refresh per 2 s (10 × 200 ms): ten in 20 s, not 200.
        assert!((9..=12).contains(&src.runs()), "{} refreshes", src.runs());
        assert!(seen >= 9, "the live stream saw refresh {seen}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_old_value_is_refreshed_without_a_change() {
        let cache: Cache<u8, u64> = Cache::default();
        let src = Counting::new(Duration::from_millis(5));
        cache.page(1, src.clone()).await.expect("computed");
        tokio::time::sleep(MAX_AGE).await;
        assert_eq!(cache.page(1, src.clone()).await.expect("computed").value, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_value_is_old_by_the_services_clock_too() {
        let cache: Cache<u8, u64> = Cache::default();
        let src = Counting::new(Duration::from_millis(5));
        cache.page(1, src.clone()).await.expect("computed");
        tokio::time::sleep(MIN_GAP).await;
        // A test clock moved on a day: the counts of who has access may have changed.
        src.clock_ms.store(86_400_000, Ordering::Relaxed);
        assert_eq!(cache.page(1, src.clone()).await.expect("computed").value, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_refresh_is_an_error_to_the_waiter_and_is_not_kept() {
        let cache: Cache<u8, u64> = Cache::default();
        let src = Counting::new(Duration::from_millis(5));
        src.fail.store(true, Ordering::Relaxed);
        let err = cache
            .page(1, src.clone())
            .await
            .expect_err("the refresh fails");
        assert!(err.to_string().contains("disk gone"), "{err}");
        src.fail.store(false, Ordering::Relaxed);
        tokio::time::sleep(MIN_GAP).await;
        assert_eq!(cache.page(1, src.clone()).await.expect("computed").value, 1);
    }
}
