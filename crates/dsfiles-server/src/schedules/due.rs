//! When a schedule starts a run: a pure function ([`decide`]) of the schedule's period, its
//! next planned tick, the clock and whether its previous run is still active, and the period
//! itself ([`Every`]: `90s`, `15m`, `1h`, `1d`).
//!
//! Rules, each a row of `due/tests.rs`:
//! - **Ticks lie on a grid** `next_due + k × every`: a schedule due at 10:05 every hour runs at
//!   11:05, 12:05, …, whatever a run lasts, and keeps that phase across skips and restarts.
//! - **Before `next_due`: wait.**
//! - **Due, previous run ended (or none): start one run.** The next tick is the first grid
//!   point strictly after `now`: ticks missed while the service was down (or while the
//!   scheduler could not reach its store) collapse into this one run; `missed` counts them
//!   for the log.
//! - **Due, previous run still queued or running: skip** (a schedule never overlaps itself).
//!   The next tick is, likewise, the first grid point after `now`; the caller logs the skip
//!   and counts it in the schedule's `skipped_ticks`.
//! - **A `next_due` more than one period ahead** (the clock went back, or `every` was
//!   shortened) is pulled back to `now + every`: no schedule waits longer than its period.
//!
//! `every` is 1 to 4 digits (no leading zero) and a unit, at least [`MIN_EVERY`] (5 s: tests
//! need a few seconds, and a sync reads the destination's manifest first, so shorter buys
//! nothing): exactly [`EVERY_PATTERN`], which the OpenAPI document publishes.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The shortest period accepted.
pub const MIN_EVERY: Duration = Duration::from_secs(5);
/// What [`Every::parse`] accepts, as a regular expression (so at most `9999d`, some 27 years).
pub const EVERY_PATTERN: &str = "^([5-9]s|[1-9][0-9]{1,3}s|[1-9][0-9]{0,3}[mhd])$";

/// Units of [`Every`], largest first (the canonical spelling uses the largest exact one).
const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// A schedule's period: a whole number of seconds, at least [`MIN_EVERY`], at most `9999d`,
/// written `<n><unit>` with unit `s`, `m`, `h` or `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every(Duration);

impl Every {
    /// [`MIN_EVERY`].
    pub const MIN: Every = Every(MIN_EVERY);

    /// Parses `90s`, `15m`, `1h`, `1d`; the error names the value and what is expected.
    pub fn parse(text: &str) -> Result<Every, String> {
        let shown: String = text.chars().take(32).collect();
        let expected = || {
            format!(
                "`every` must be 1 to 4 digits followed by `s`, `m`, `h` or `d` (such as `90s`, `15m`, `1h`, `1d`), got `{shown}`"
            )
        };
        let unit = text.chars().last().ok_or_else(expected)?;
        let (_, seconds) = UNITS
            .into_iter()
            .find(|(u, _)| *u == unit)
            .ok_or_else(expected)?;
        let digits = &text[..text.len() - 1];
        let well_formed = (1..=4).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !well_formed {
            return Err(expected());
        }
        let n: u64 = digits.parse().map_err(|_| expected())?;
        let total = Duration::from_secs(n * seconds);
        if total < MIN_EVERY {
            return Err(format!(
                "`every` must be at least `{}`, got `{shown}`",
                Every(MIN_EVERY)
            ));
        }
        Ok(Every(total))
    }

    pub fn duration(self) -> Duration {
        self.0
    }

    /// One period after `at` (the latest representable time, should that overflow).
    pub fn after(self, at: DateTime<Utc>) -> DateTime<Utc> {
        at.checked_add_signed(self.delta())
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    fn delta(self) -> TimeDelta {
        // At most MAX_EVERY: far inside `TimeDelta`'s range.
        TimeDelta::seconds(i64::try_from(self.0.as_secs()).unwrap_or(i64::MAX / 1000))
    }
}

impl fmt::Display for Every {
    /// The largest unit that divides the period: `90s`, `15m`, `36h`, `1d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let (unit, size) = UNITS
            .into_iter()
            .find(|(_, size)| secs.is_multiple_of(*size))
            .unwrap_or(('s', 1));
        write!(f, "{}{unit}", secs / size)
    }
}

/// What a schedule does at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Wait,
    /// Start one run now.
    Start,
    /// Due, but the previous run is still queued or running: no run for this tick.
    Skip,
}

/// [`decide`]'s answer: what to do and the schedule's next tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub next_due: DateTime<Utc>,
    /// Grid ticks that passed unrun before the one acted on (downtime), for the log.
    pub missed: u64,
}

/// The rule of this module's doc.
pub fn decide(every: Every, next_due: DateTime<Utc>, now: DateTime<Utc>, active: bool) -> Decision {
    let period = every.delta();
    if now < next_due {
        return Decision {
            action: Action::Wait,
            next_due: next_due.min(every.after(now)),
            missed: 0,
        };
    }
    let period_ms = period.num_milliseconds().max(1);
    let passed = u64::try_from((now - next_due).num_milliseconds() / period_ms).unwrap_or(0);
    let steps = i32::try_from(passed.saturating_add(1)).unwrap_or(i32::MAX);
    // `steps` periods after `next_due` is past `now`; computed without overflow even after
    // years of downtime (at worst it lands one period after `now`).
    let next = period
        .checked_mul(steps)
        .and_then(|delta| next_due.checked_add_signed(delta))
        .filter(|next| *next > now)
        .unwrap_or_else(|| every.after(now));
    Decision {
        action: if active { Action::Skip } else { Action::Start },
        next_due: next,
        missed: passed,
    }
}

#[cfg(test)]
mod tests;
