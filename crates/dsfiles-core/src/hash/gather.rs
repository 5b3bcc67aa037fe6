//! When the MD5 engine hashes: now, or after waiting a little for more streams to fill its lanes.
//! A pure function of what the engine sees ([`next`]), tested from data.
//!
//! The engine hashes several times faster than a sync downloads (one core of multi-buffer MD5
//! against the network's few hundred MB/s), so hashing each batch the moment it arrives leaves
//! the lanes mostly empty: measured on the bench's 2.2 GB case, half the bytes went through a
//! kernel with one to three of its 8 or 16 lanes in use, which costs as much as filling them
//! all. Waiting for batches to pile up fills them, and costs the downloads nothing as long as a
//! batch waits no longer than its stream takes to fill the next one: until then the download is
//! not blocked (it may hold one batch in the engine and fill another, see [`super::engine`]).
//!
//! Rules, in order, over the streams in the engine ("ready": a whole block queued):
//! - none ready → sleep until a stream says something;
//! - as many ready as the kernel has lanes → hash;
//! - every stream ready (nobody else to wait for; a lone stream never waits) → hash;
//! - a ready stream is finishing (a download waits for its digest) → hash;
//! - a ready stream's oldest batch has waited its patience → hash;
//! - otherwise → wait for a message until the earliest of those deadlines.
//!
//! A stream's patience is the time between its last two batches (the time it takes to fill
//! one), at most [`MAX_PATIENCE`]; a stream's first batch gets `MAX_PATIENCE`. Why a whole
//! interval costs the download nothing: a stream holds one batch in the engine and fills the
//! next meanwhile, so a batch that waits as long as its stream took to fill the previous one is
//! hashed about when the next one is full; a stream that keeps its pace then waits at most for
//! one batch's hashing (a fraction of a millisecond), and its socket goes on receiving into the
//! kernel's buffer meanwhile. A fast stream (hundreds of MB/s: its batches come every few
//! hundred microseconds) waits microseconds; the many slower streams of a busy sync wait long
//! enough to meet.
//!
//! A finishing stream is hashed at once because its download holds one of the sync's slots
//! until the digest comes: most files of a démarche have one or two batches, and making each
//! wait for company would add up to [`MAX_PATIENCE`] to every one of them. Measured on the
//! bench's 2.2 GB case (`cargo xtask bench --serve`, 34 million blocks, about 8 streams in the
//! engine at a time): at most 2 ms and half an interval took 6.8–6.9 million rounds (4.9 lanes
//! each); a whole interval up to 6 ms 5.3–5.5 million (a finishing stream waiting like any other
//! would save 0.4 million more, about 0.05 s of CPU, for that latency): about 0.2 s less CPU,
//! no slower, peak RSS within 2 MiB.
//!
//! Correctness does not depend on any of this: whatever waits is hashed by a deadline at the
//! latest, in the order it came, and the digests are the same.

use std::time::{Duration, Instant};

/// The longest a batch waits for company.
pub(crate) const MAX_PATIENCE: Duration = Duration::from_millis(6);

/// A stream with a whole block queued, as the rule sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ready {
    /// Its download waits for the digest (`finish` was sent).
    pub finishing: bool,
    /// When its oldest queued batch has waited long enough.
    pub deadline: Instant,
}

/// What the engine does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Nothing to hash: block until a message comes.
    Sleep,
    /// Hash the ready streams now.
    Hash,
    /// Wait for a message until then, and decide again.
    WaitUntil(Instant),
}

/// The rule of the module docs: `ready` are the ready streams, `members` how many streams the
/// engine has, `lanes` how many the widest kernel takes at once.
pub(crate) fn next(ready: &[Ready], members: usize, lanes: usize, now: Instant) -> Next {
    let Some(earliest) = ready.iter().map(|r| r.deadline).min() else {
        return Next::Sleep;
    };
    let full = ready.len() >= lanes.max(1) || ready.len() >= members;
    if full || earliest <= now || ready.iter().any(|r| r.finishing) {
        Next::Hash
    } else {
        Next::WaitUntil(earliest)
    }
}

/// A stream's patience for a batch arriving at `now`, its previous one having arrived at
/// `previous` (`None`: its first).
pub(crate) fn patience(previous: Option<Instant>, now: Instant) -> Duration {
    previous.map_or(MAX_PATIENCE, |at| {
        now.saturating_duration_since(at).min(MAX_PATIENCE)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn next_follows_the_rules_in_order() {
        let t0 = Instant::now();
        let waiting = |after: u64| Ready {
            finishing: false,
            deadline: t0 + ms(after),
        };
        let finishing = Ready {
            finishing: true,
            ..waiting(5)
        };
        // (ready, members, lanes, now, expected, what)
        type Case = (Vec<Ready>, usize, usize, Instant, Next, &'static str);
        let cases: Vec<Case> = vec![
            (vec![], 0, 8, t0, Next::Sleep, "no stream"),
            (vec![], 5, 8, t0, Next::Sleep, "streams, none ready"),
            (vec![waiting(2); 8], 12, 8, t0, Next::Hash, "lanes full"),
            (
                vec![waiting(2); 9],
                12,
                8,
                t0,
                Next::Hash,
                "more than lanes",
            ),
            (
                vec![waiting(2); 3],
                3,
                16,
                t0,
                Next::Hash,
                "every stream ready",
            ),
            (vec![waiting(2)], 1, 16, t0, Next::Hash, "a lone stream"),
            (
                vec![waiting(2), finishing],
                6,
                16,
                t0,
                Next::Hash,
                "one finishing",
            ),
            (
                vec![waiting(3), waiting(1)],
                6,
                16,
                t0 + ms(1),
                Next::Hash,
                "a deadline reached",
            ),
            (
                vec![waiting(3), waiting(1)],
                6,
                16,
                t0,
                Next::WaitUntil(t0 + ms(1)),
                "wait for the earliest deadline",
            ),
            (
                vec![waiting(1)],
                2,
                1,
                t0,
                Next::Hash,
                "one lane: never waits",
            ),
            (
                vec![waiting(1)],
                2,
                0,
                t0,
                Next::Hash,
                "no lanes counts as one",
            ),
        ];
        for (ready, members, lanes, now, expected, what) in cases {
            assert_eq!(next(&ready, members, lanes, now), expected, "{what}");
        }
    }

    #[test]
    fn patience_is_the_time_between_batches_capped() {
        let t0 = Instant::now();
        let cases = [
            (None, t0, MAX_PATIENCE, "first batch"),
            (Some(t0), t0 + ms(1), ms(1), "1 ms apart"),
            (Some(t0), t0 + ms(40), MAX_PATIENCE, "slow stream: capped"),
            (Some(t0), t0, Duration::ZERO, "same instant"),
            (Some(t0 + ms(1)), t0, Duration::ZERO, "clock order reversed"),
        ];
        for (previous, now, expected, what) in cases {
            assert_eq!(patience(previous, now), expected, "{what}");
        }
    }
}
