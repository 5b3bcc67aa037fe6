use chrono::TimeZone;

use super::*;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + secs, 0).single().unwrap()
}

fn holder(host: &str) -> Holder {
    Holder {
        host: host.into(),
        pid: 42,
        replica: None,
        tool: "dsfiles 0.1.0".into(),
        process: None,
    }
}

/// A lease of `token` by `host`, taken at t(0) and expiring at `expires`.
fn lease(token: &str, host: &str, expires: i64) -> Lease {
    Lease {
        version: wire::WIRE_VERSION,
        holder: holder(host),
        token: token.into(),
        acquired_at: t(0),
        renewed_at: t(0),
        expires_at: t(expires),
    }
}

fn check(existing: Option<Lease>, now: i64, break_lease: bool, expected: Decision) {
    let decision = decide(existing.as_ref(), t(now), "mine", break_lease, false);
    assert_eq!(
        decision, expected,
        "existing {existing:?} at t+{now}s, break {break_lease}"
    );
}

fn busy(host: &str, expires: i64) -> Decision {
    Decision::Busy {
        holder: holder(host),
        since: t(0),
        expires_at: t(expires),
    }
}

fn take_over(host: &str, expired: bool) -> Decision {
    let why = if expired {
        TakeOverReason::Expired
    } else {
        TakeOverReason::Broken
    };
    Decision::TakeOver {
        holder: holder(host),
        why,
    }
}

#[test]
fn a_live_lease_of_a_gone_process_of_this_machine_is_taken_over() {
    let live = lease("theirs", "h", 120);
    let gone = |holder| Decision::TakeOver {
        holder,
        why: TakeOverReason::HolderGone,
    };
    assert_eq!(
        decide(Some(&live), t(10), "mine", false, true),
        gone(holder("h"))
    );
    assert_eq!(
        decide(Some(&live), t(10), "mine", true, true),
        gone(holder("h"))
    );
    // Expiry is said first; one's own lease is renewed whatever.
    assert_eq!(
        decide(Some(&live), t(200), "mine", false, true),
        take_over("h", true)
    );
    assert_eq!(
        decide(Some(&live), t(10), "theirs", false, true),
        Decision::Renew
    );
}

#[test]
fn no_lease_is_taken() {
    check(None, 0, false, Decision::Take);
    check(None, 0, true, Decision::Take);
}

#[test]
fn own_lease_is_renewed_even_late() {
    check(Some(lease("mine", "me", 120)), 10, false, Decision::Renew);
    check(Some(lease("mine", "me", 120)), 500, false, Decision::Renew);
    check(Some(lease("mine", "me", 120)), 10, true, Decision::Renew);
}

#[test]
fn live_foreign_lease_is_busy() {
    check(Some(lease("other", "b", 120)), 0, false, busy("b", 120));
    check(Some(lease("other", "b", 120)), 119, false, busy("b", 120));
    // Same host and pid, another run: busy as well (the token tells runs apart).
    check(Some(lease("other", "me", 120)), 10, false, busy("me", 120));
}

#[test]
fn clock_tolerance_of_fifteen_seconds() {
    // Expired by the reader's clock, but within the tolerance: still live.
    check(Some(lease("other", "b", 120)), 121, false, busy("b", 120));
    check(Some(lease("other", "b", 120)), 135, false, busy("b", 120));
    check(
        Some(lease("other", "b", 120)),
        136,
        false,
        take_over("b", true),
    );
}

#[test]
fn expired_lease_is_taken_over() {
    check(
        Some(lease("other", "b", 120)),
        3600,
        false,
        take_over("b", true),
    );
    check(
        Some(lease("other", "b", 120)),
        3600,
        true,
        take_over("b", true),
    );
}

#[test]
fn break_lease_takes_a_live_foreign_lease() {
    check(
        Some(lease("other", "b", 120)),
        10,
        true,
        take_over("b", false),
    );
}

#[test]
fn defaults() {
    let timing = LeaseTiming::default();
    assert_eq!(timing.ttl, Duration::from_secs(120));
    assert_eq!(timing.renew_every, Duration::from_secs(30));
    // A run gives up before anyone may take its lease over.
    assert!(timing.give_up_after + CLOCK_TOLERANCE < timing.ttl);
    let options = LeaseOptions::default();
    assert_eq!(options.holder.pid, std::process::id());
    assert!(!options.holder.host.is_empty());
    assert!(options.holder.tool.starts_with("dsfiles "));
    assert!(!options.break_lease);
}
