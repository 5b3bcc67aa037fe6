//! An injectable clock, so tests can move time forward to expire signed URLs.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

/// The simulator's notion of "now": real time plus an offset, or a fixed instant.
///
/// Cloning shares the clock: advancing one clone advances them all.
#[derive(Clone, Debug, Default)]
pub struct SimClock {
    inner: Arc<Mutex<ClockState>>,
}

#[derive(Debug, Default)]
struct ClockState {
    fixed: Option<DateTime<Utc>>,
    offset: chrono::Duration,
}

impl SimClock {
    /// A clock following real time (the default).
    pub fn real() -> SimClock {
        SimClock::default()
    }

    /// A clock frozen at `at` until it is advanced or set.
    pub fn fixed(at: DateTime<Utc>) -> SimClock {
        let clock = SimClock::default();
        clock.set(at);
        clock
    }

    pub fn now(&self) -> DateTime<Utc> {
        let state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match state.fixed {
            Some(at) => at + state.offset,
            None => Utc::now() + state.offset,
        }
    }

    /// Freezes the clock at `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        let mut state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        state.fixed = Some(at);
        state.offset = chrono::Duration::zero();
    }

    /// Moves the clock forward by `by` (whether real or frozen).
    pub fn advance(&self, by: std::time::Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        state.offset = state
            .offset
            .checked_add(&by)
            .unwrap_or(chrono::Duration::MAX);
    }
}
