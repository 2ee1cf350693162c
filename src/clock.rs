//! The one clock. Services, the role-sync worker and the plugins (through `now`) read time
//! from a [`Clock`] handed to them at start, never from the system directly, so a test moves
//! time forward instead of editing rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::domain::UnixMillis;

/// The wall clock, or a settable one (tests).
#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    /// A settable instant, unix milliseconds, shared by every clone.
    Fixed(Arc<AtomicI64>),
}

impl Clock {
    /// A clock stopped at `unix_ms` until [`Clock::set`] or [`Clock::advance`] moves it.
    #[must_use]
    pub fn fixed(unix_ms: UnixMillis) -> Self {
        Self::Fixed(Arc::new(AtomicI64::new(unix_ms)))
    }

    /// Moves a fixed clock; no effect on the system clock.
    pub fn set(&self, unix_ms: UnixMillis) {
        if let Self::Fixed(t) = self {
            t.store(unix_ms, Ordering::Relaxed);
        }
    }

    /// Moves a fixed clock forward by `ms`; no effect on the system clock.
    pub fn advance(&self, ms: i64) {
        if let Self::Fixed(t) = self {
            t.fetch_add(ms, Ordering::Relaxed);
        }
    }

    /// Now, in unix milliseconds.
    #[must_use]
    pub fn now_ms(&self) -> UnixMillis {
        match self {
            Self::System => jiff::Timestamp::now().as_millisecond(),
            Self::Fixed(t) => t.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_moves_only_when_told_and_every_clone_sees_it() {
        let clock = Clock::fixed(1_000);
        let seen = clock.clone();
        assert_eq!(seen.now_ms(), 1_000);
        clock.advance(500);
        assert_eq!(seen.now_ms(), 1_500);
        clock.set(7);
        assert_eq!(seen.now_ms(), 7);
        assert!(Clock::System.now_ms() > 1_700_000_000_000);
    }
}
