use chrono::{TimeDelta, TimeZone as _};

use super::*;
use crate::api::{Counters, ScheduleEntry, Since, Trigger};
use crate::config::{AllowList, Secret};

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, h, m, 0)
        .single()
        .expect("time")
}

fn config(toml: &str) -> ServerConfig {
    let file = crate::ConfigFile::from_toml(toml).expect("parsed");
    let mut config = file.server_config().expect("interpreted");
    config.api_tokens = vec![Secret::new("t")];
    config.allow_dest = AllowList::new(["/srv/archive"]).expect("allow list");
    config
}

fn def(every: &str) -> Definition {
    let entry: ScheduleEntry = serde_json::from_value(serde_json::json!({
        "name": "nightly", "every": every, "demarche": 12, "dest": "/srv/archive/12"
    }))
    .expect("entry");
    definition(&config(""), &entry.name, &entry.request).expect("definition")
}

fn job(state: JobState, seconds: i64) -> JobRecord {
    let mut record = jobs::new_record(&def("1h").spec, Trigger::Schedule);
    record.state = state;
    record.started_at = Some(at(10, 0));
    record.finished_at = state
        .is_terminal()
        .then(|| at(10, 0) + TimeDelta::seconds(seconds));
    record.counters = Counters::default();
    record
}

#[test]
fn a_new_schedule_is_due_at_once() {
    let schedule = apply(&def("1h"), None, at(10, 0));
    assert_eq!(schedule.next_due_at, at(10, 0));
    assert_eq!(schedule.every, "1h");
    assert_eq!(schedule.dest, "/srv/archive/12");
    assert_eq!(schedule.since, Since::Auto);
    assert!(schedule.enabled);
}

#[test]
fn replacing_keeps_the_runs_and_the_tick_pulled_back_to_one_period() {
    let mut old = apply(&def("1d"), None, at(8, 0));
    old.next_due_at = at(23, 0);
    old.failures = 2;
    old.last_job = Some("j".into());
    let replaced = apply(&def("1h"), Some(old.clone()), at(10, 0));
    assert_eq!(
        replaced.next_due_at,
        at(11, 0),
        "shortened: at most one period"
    );
    assert_eq!(replaced.failures, 2);
    assert_eq!(replaced.last_job.as_deref(), Some("j"));
    assert_eq!(replaced.created_at, at(8, 0));
    assert_eq!(replaced.updated_at, at(10, 0));
    let same = apply(&def("1d"), Some(old), at(10, 0));
    assert_eq!(
        same.next_due_at,
        at(23, 0),
        "applied again: the clock is kept"
    );
}

#[test]
fn the_end_of_a_run_is_counted_once() {
    let mut schedule = apply(&def("1h"), None, at(9, 0));
    schedule.last_job = Some("j".into());
    schedule.last_state = Some(JobState::Queued);
    assert!(awaiting_end(&schedule));
    account(&mut schedule, Some(&job(JobState::Running, 0)));
    assert_eq!(schedule.last_state, Some(JobState::Running));
    assert!(awaiting_end(&schedule));
    account(&mut schedule, Some(&job(JobState::Failed, 90)));
    account(&mut schedule, Some(&job(JobState::Failed, 90)));
    assert_eq!(schedule.failures, 1);
    assert_eq!(schedule.last_duration_secs, Some(90.0));
    assert!(!awaiting_end(&schedule));

    schedule.last_state = Some(JobState::Queued);
    account(&mut schedule, Some(&job(JobState::Succeeded, 12)));
    assert_eq!(
        schedule.last_success_at,
        Some(at(10, 0) + TimeDelta::seconds(12))
    );
    assert_eq!(schedule.failures, 1);

    schedule.last_state = Some(JobState::Running);
    account(&mut schedule, None);
    assert_eq!(
        schedule.last_state, None,
        "a forgotten job is not awaited forever"
    );
}

#[test]
fn config_schedules_are_checked_like_api_ones_and_name_the_schedule() {
    let ok = config(
        r#"
        [[schedules]]
        name = "nightly"
        every = "1d"
        demarche = 12
        dest = "/srv/archive/12"
        include = ["pdf"]
        [[schedules]]
        name = "often"
        every = "15m"
        enabled = false
        demarche = 13
        dest = "/srv/archive/13"
        "#,
    );
    check_config(&ok).expect("valid");
    let defs = config_definitions(&ok).expect("definitions");
    assert_eq!(defs.len(), 2);
    assert!(!defs[1].enabled);

    let twice =
        "[[schedules]]\nname = \"a\"\nevery = \"1h\"\ndemarche = 1\ndest = \"/srv/archive/a\"\n";
    let err = check_config(&config(&twice.repeat(2))).expect_err("twice");
    assert!(
        err.to_string().contains("schedule `a` is defined twice"),
        "{err}"
    );

    let outside = "[[schedules]]\nname = \"x\"\nevery = \"1h\"\ndemarche = 1\ndest = \"/etc\"\n";
    let err = check_config(&config(outside)).expect_err("outside");
    assert!(err.to_string().contains("schedule `x`"), "{err}");
    assert!(err.to_string().contains("/etc"), "{err}");
}

#[test]
fn config_entries_refuse_bad_names_periods_and_keys() {
    let cases = [
        (
            "name = \"Nightly\"\nevery = \"1h\"\ndemarche = 1\ndest = \"/srv/archive/a\"",
            "schedule name `Nightly` must be",
        ),
        (
            "every = \"1h\"\ndemarche = 1\ndest = \"/srv/archive/a\"",
            "needs a `name`",
        ),
        (
            "name = \"a\"\nevery = \"1w\"\ndemarche = 1\ndest = \"/srv/archive/a\"",
            "schedule `a`: `every` must be",
        ),
        (
            "name = \"a\"\nevery = \"2s\"\ndemarche = 1\ndest = \"/srv/archive/a\"",
            "at least `5s`",
        ),
        (
            "name = \"a\"\ndemarche = 1\ndest = \"/srv/archive/a\"",
            "missing field `every`",
        ),
        (
            "name = \"a\"\nevery = \"1h\"\ndemarche = 1\ndest = \"/srv/archive/a\"\nevry = 2",
            "unknown field `evry`",
        ),
        (
            "name = \"a\"\nevery = \"1h\"\ndemarche = 0\ndest = \"/srv/archive/a\"",
            "`demarche` must be a DS number",
        ),
        (
            "name = \"a\"\nevery = \"1h\"\ndemarche = 1\ndest = \"/srv/archive/a\"\nbreak_lease = true",
            "`break_lease` cannot be scheduled",
        ),
    ];
    for (entry, expected) in cases {
        let toml = format!("[[schedules]]\n{entry}\n");
        let err = crate::ConfigFile::from_toml(&toml).expect_err(entry);
        assert!(err.to_string().contains(expected), "{entry}: {err}");
    }
}

#[test]
fn schedule_names_use_a_safe_charset() {
    for good in ["a", "0", "nightly-12", "a_b", &"a".repeat(63)] {
        check_schedule_name(good).expect(good);
    }
    for bad in [
        "",
        "-a",
        "_a",
        "A",
        "a b",
        "a/b",
        "a.b",
        "é",
        &"a".repeat(64),
        "a\n",
    ] {
        check_schedule_name(bad).expect_err(bad);
    }
}

#[test]
fn the_embedded_store_survives_a_reopen_and_refuses_an_unreadable_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalSchedules::open(dir.path()).expect("open");
    let (_, created) = store.put(&def("1h"), at(10, 0)).expect("put");
    assert!(created);
    let (_, created) = store.put(&def("1d"), at(10, 5)).expect("replace");
    assert!(!created);
    let reopened = LocalSchedules::open(dir.path()).expect("reopen");
    assert_eq!(
        reopened.get("nightly").map(|s| s.every),
        Some("1d".to_owned())
    );
    assert!(reopened.delete("nightly").expect("delete"));
    assert!(!reopened.delete("nightly").expect("delete again"));
    assert!(
        LocalSchedules::open(dir.path())
            .expect("reopen")
            .list()
            .is_empty()
    );

    std::fs::write(dir.path().join("schedules.json"), "{not json").expect("write");
    let err = LocalSchedules::open(dir.path()).expect_err("unreadable");
    assert!(err.to_string().contains("schedules.json"), "{err}");
}
