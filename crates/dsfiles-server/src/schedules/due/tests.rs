use chrono::TimeZone as _;

use super::*;

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, h, m, s)
        .single()
        .expect("valid time")
}

fn every(text: &str) -> Every {
    Every::parse(text).expect(text)
}

/// One row: period, next tick, now, previous run active → action, next tick, missed ticks.
fn check(
    period: &str,
    next_due: DateTime<Utc>,
    now: DateTime<Utc>,
    active: bool,
    expected: (Action, DateTime<Utc>, u64),
) {
    let decision = decide(every(period), next_due, now, active);
    let (action, next, missed) = expected;
    assert_eq!(
        decision,
        Decision {
            action,
            next_due: next,
            missed
        },
        "every {period}, due {next_due}, now {now}, active {active}"
    );
}

#[test]
fn before_the_tick_it_waits() {
    check(
        "15m",
        at(10, 15, 0),
        at(10, 14, 59),
        false,
        (Action::Wait, at(10, 15, 0), 0),
    );
    check(
        "15m",
        at(10, 15, 0),
        at(10, 0, 0),
        true,
        (Action::Wait, at(10, 15, 0), 0),
    );
}

#[test]
fn at_the_tick_it_starts_and_plans_the_next_on_the_grid() {
    check(
        "15m",
        at(10, 15, 0),
        at(10, 15, 0),
        false,
        (Action::Start, at(10, 30, 0), 0),
    );
    // A late scheduler (a slow loop) keeps the phase: 10:30, not 10:31:07.
    check(
        "15m",
        at(10, 15, 0),
        at(10, 16, 7),
        false,
        (Action::Start, at(10, 30, 0), 0),
    );
}

#[test]
fn missed_ticks_collapse_into_one_run() {
    // Down from 10:00 to 13:07: one run now, three ticks missed, the phase kept.
    check(
        "1h",
        at(10, 5, 0),
        at(13, 7, 0),
        false,
        (Action::Start, at(14, 5, 0), 3),
    );
    check(
        "90s",
        at(10, 0, 0),
        at(10, 30, 0),
        false,
        (Action::Start, at(10, 31, 30), 20),
    );
    // Exactly on a later grid point: that point counts as run now, the next one is after it.
    check(
        "1h",
        at(10, 0, 0),
        at(12, 0, 0),
        false,
        (Action::Start, at(13, 0, 0), 2),
    );
}

#[test]
fn a_tick_while_the_previous_run_is_active_is_skipped() {
    check(
        "5s",
        at(10, 0, 0),
        at(10, 0, 1),
        true,
        (Action::Skip, at(10, 0, 5), 0),
    );
    check(
        "1h",
        at(10, 5, 0),
        at(13, 7, 0),
        true,
        (Action::Skip, at(14, 5, 0), 3),
    );
}

#[test]
fn a_tick_further_than_one_period_ahead_is_pulled_back() {
    // The clock went back an hour, or `every` went from 1d to 15m.
    check(
        "15m",
        at(12, 0, 0),
        at(10, 0, 0),
        false,
        (Action::Wait, at(10, 15, 0), 0),
    );
    check(
        "1d",
        at(12, 0, 0),
        at(10, 0, 0),
        false,
        (Action::Wait, at(12, 0, 0), 0),
    );
}

#[test]
fn years_of_downtime_do_not_overflow() {
    let long_ago = Utc
        .with_ymd_and_hms(1970, 1, 1, 0, 0, 0)
        .single()
        .expect("epoch");
    let decision = decide(every("5s"), long_ago, at(10, 0, 3), false);
    assert_eq!(decision.action, Action::Start);
    assert_eq!(decision.next_due, at(10, 0, 5));
    assert!(decision.missed > 1_000_000);
}

#[test]
fn every_parses_units_and_writes_the_largest_exact_one() {
    let cases = [
        ("5s", 5, "5s"),
        ("90s", 90, "90s"),
        ("120s", 120, "2m"),
        ("15m", 900, "15m"),
        ("1h", 3_600, "1h"),
        ("36h", 129_600, "36h"),
        ("48h", 172_800, "2d"),
        ("1d", 86_400, "1d"),
        ("9999d", 9_999 * 86_400, "9999d"),
        ("9999s", 9_999, "9999s"),
    ];
    for (text, secs, shown) in cases {
        let parsed = every(text);
        assert_eq!(parsed.duration(), Duration::from_secs(secs), "{text}");
        assert_eq!(parsed.to_string(), shown, "{text}");
    }
}

#[test]
fn every_refuses_what_it_cannot_read_or_is_out_of_range() {
    let cases = [
        ("", "1 to 4 digits followed by"),
        ("15", "1 to 4 digits followed by"),
        ("m", "1 to 4 digits followed by"),
        ("1.5h", "1 to 4 digits followed by"),
        ("-1h", "1 to 4 digits followed by"),
        ("+1h", "1 to 4 digits followed by"),
        ("15 m", "1 to 4 digits followed by"),
        ("1w", "1 to 4 digits followed by"),
        ("15M", "1 to 4 digits followed by"),
        ("ém", "1 to 4 digits followed by"),
        ("05m", "1 to 4 digits followed by"),
        ("0m", "1 to 4 digits followed by"),
        ("10000d", "1 to 4 digits followed by"),
        ("18446744073709551615d", "1 to 4 digits followed by"),
        ("4s", "at least `5s`, got `4s`"),
        ("1s", "at least `5s`"),
    ];
    let pattern = regex::Regex::new(EVERY_PATTERN).expect("pattern");
    for (text, _) in cases {
        assert!(!pattern.is_match(text), "the pattern refuses {text:?} too");
    }
    for text in ["5s", "10s", "9999s", "1m", "9999d", "36h"] {
        assert!(pattern.is_match(text), "the pattern accepts {text:?}");
        Every::parse(text).expect(text);
    }
    for (text, expected) in cases {
        let err = Every::parse(text).expect_err(text);
        assert!(err.contains(expected), "{text}: {err}");
    }
}
