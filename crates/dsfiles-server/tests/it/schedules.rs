//! Schedules on the embedded store: a schedule every few seconds starts its runs, never two at
//! once (a tick during a run is skipped, and says so), lists them under `?schedule=`, shows
//! them in `/metrics`; a restart after downtime runs a missed schedule once; the API checks
//! names, periods and sync options as `POST /v1/syncs` does.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dsfiles_server::api::{JobList, JobRecord, JobState, Schedule, ScheduleEntry, Trigger};
use serde_json::{Value, json};

use crate::support::{Dirs, Gated, TestServer, config, error_code, eventually};

async fn put(server: &TestServer, name: &str, body: Value) -> reqwest::Response {
    server
        .http
        .put(server.url(&format!("/v1/schedules/{name}")))
        .bearer_auth(crate::support::TOKEN)
        .json(&body)
        .send()
        .await
        .expect("PUT schedule")
}

async fn schedule(server: &TestServer, name: &str) -> Schedule {
    let response = server
        .get(&format!("/v1/schedules/{name}"))
        .send()
        .await
        .expect("GET schedule");
    assert_eq!(response.status(), 200);
    response.json().await.expect("schedule")
}

/// The runs of schedule `name`, newest first.
async fn runs(server: &TestServer, name: &str) -> Vec<JobRecord> {
    let response = server
        .get(&format!("/v1/syncs?schedule={name}"))
        .send()
        .await
        .expect("GET syncs");
    assert_eq!(response.status(), 200);
    response.json::<JobList>().await.expect("jobs").jobs
}

/// Waits until schedule `name` has `n` runs, the newest in `state`; returns them.
async fn runs_until(server: &TestServer, name: &str, n: usize, state: JobState) -> Vec<JobRecord> {
    eventually(
        &format!("{n} runs of `{name}`, the last {state:?}"),
        Duration::from_secs(15),
        || async {
            let runs = runs(server, name).await;
            (runs.len() == n && runs[0].state == state).then_some(runs)
        },
    )
    .await
}

#[tokio::test]
async fn a_schedule_runs_every_period_skips_ticks_while_its_run_lasts_and_lists_its_runs() {
    let dirs = Dirs::new();
    let pipeline = Arc::new(Gated::default());
    let server = TestServer::start(config(&dirs), pipeline.clone()).await;
    let body = json!({"demarche": 12, "dest": dirs.dest("12"), "every": "5s", "include": ["pdf"]});
    assert_eq!(put(&server, "often", body).await.status(), 201);

    // Created due: the first run starts at once, and holds the schedule past its next tick.
    let first = runs_until(&server, "often", 1, JobState::Running).await;
    assert_eq!(first[0].trigger, Trigger::Schedule);
    assert_eq!(first[0].schedule.as_deref(), Some("often"));
    let skipped = eventually("a skipped tick", Duration::from_secs(15), || async {
        let s = schedule(&server, "often").await;
        (s.skipped_ticks >= 1).then_some(s)
    })
    .await;
    assert_eq!(
        runs(&server, "often").await.len(),
        1,
        "no second run during the first"
    );
    assert_eq!(skipped.last_job.as_deref(), Some(first[0].id.as_str()));

    pipeline.release(1);
    let second = runs_until(&server, "often", 2, JobState::Running).await;
    assert_eq!(second[1].state, JobState::Succeeded);
    assert!(second[0].created_at >= second[1].finished_at.expect("ended"));
    pipeline.release(1);
    runs_until(&server, "often", 2, JobState::Succeeded).await;
    assert_eq!(
        pipeline.max_running.load(Ordering::SeqCst),
        1,
        "never two runs at once"
    );

    let ended = eventually(
        "the second run accounted",
        Duration::from_secs(5),
        || async {
            let s = schedule(&server, "often").await;
            (s.last_state == Some(JobState::Succeeded)).then_some(s)
        },
    )
    .await;
    assert_eq!(ended.failures, 0);
    assert!(ended.last_success_at.is_some() && ended.last_duration_secs.is_some());
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    let text = metrics.text().await.expect("text");
    for line in [
        "dsfiles_schedule_failures_total{schedule=\"often\"} 0",
        "dsfiles_schedule_last_success_timestamp_seconds{schedule=\"often\"} ",
        "dsfiles_schedule_last_duration_seconds{schedule=\"often\"} ",
        "dsfiles_schedule_skipped_ticks_total{schedule=\"often\"} ",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    assert!(runs(&server, "other").await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_restart_after_downtime_runs_a_missed_schedule_once() {
    let dirs = Dirs::new();
    let entry: ScheduleEntry = serde_json::from_value(json!({
        "name": "hourly", "every": "1h", "demarche": 12, "dest": dirs.dest("12")
    }))
    .expect("entry");
    let mut config = config(&dirs);
    config.schedules = vec![entry];
    let pipeline = Arc::new(Gated::default());
    pipeline.release(100);
    let server = TestServer::start(config.clone(), pipeline.clone()).await;
    runs_until(&server, "hourly", 1, JobState::Succeeded).await;
    server.stop().await;

    // Down for five hours: five ticks missed.
    let file = dirs.state.join("schedules.json");
    let mut stored: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    let due: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(stored["schedules"][0]["next_due_at"].clone()).expect("due");
    let earlier = due - chrono::TimeDelta::hours(5);
    stored["schedules"][0]["next_due_at"] = json!(earlier);
    std::fs::write(&file, serde_json::to_vec(&stored).expect("json")).expect("write");

    let server = TestServer::start(config, pipeline.clone()).await;
    let after = runs_until(&server, "hourly", 2, JobState::Succeeded).await;
    let s = schedule(&server, "hourly").await;
    assert!(
        s.next_due_at > chrono::Utc::now(),
        "the next tick is ahead: {}",
        s.next_due_at
    );
    assert_eq!(
        (s.next_due_at - earlier).num_seconds() % 3600,
        0,
        "the phase is kept"
    );
    // A few more scheduler rounds start nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(runs(&server, "hourly").await.len(), after.len());
    server.stop().await;
}

#[tokio::test]
async fn the_api_creates_replaces_lists_and_deletes_schedules_and_names_bad_input() {
    let dirs = Dirs::new();
    let server = TestServer::start(config(&dirs), Arc::new(Gated::default())).await;
    let dest = dirs.dest("12");
    let body = json!({"demarche": 12, "dest": dest, "every": "120s", "enabled": false});
    assert_eq!(put(&server, "nightly", body.clone()).await.status(), 201);
    let mut daily = body.clone();
    daily["every"] = json!("1d");
    let replaced = put(&server, "nightly", daily).await;
    assert_eq!(replaced.status(), 200);
    let s: Schedule = replaced.json().await.expect("schedule");
    assert_eq!((s.every.as_str(), s.enabled), ("1d", false));
    let listed: Value = server
        .get("/v1/schedules")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["schedules"][0]["name"], "nightly");
    // Disabled: never runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(runs(&server, "nightly").await.is_empty());

    let cases = [
        ("Nightly", body.clone(), 422, "invalid_schedule_name"),
        ("a.b", body.clone(), 422, "invalid_schedule_name"),
        (
            "x",
            json!({"demarche": 12, "dest": dest}),
            422,
            "invalid_value",
        ),
        (
            "x",
            json!({"demarche": 12, "dest": dest, "every": "4s"}),
            422,
            "invalid_value",
        ),
        (
            "x",
            json!({"demarche": 12, "dest": dest, "every": "1w"}),
            422,
            "invalid_value",
        ),
        (
            "x",
            json!({"demarche": 0, "dest": dest, "every": "1h"}),
            422,
            "invalid_value",
        ),
        (
            "x",
            json!({"demarche": 1, "dest": dest, "every": "1h", "break_lease": true}),
            422,
            "invalid_value",
        ),
        (
            "x",
            json!({"demarche": 1, "dest": dest, "every": "1h", "evry": 1}),
            422,
            "invalid_value",
        ),
        (
            "x",
            json!({"demarche": 1, "dest": "/etc", "every": "1h"}),
            403,
            "destination_not_allowed",
        ),
    ];
    for (name, body, status, code) in cases {
        let response = put(&server, name, body.clone()).await;
        assert_eq!(error_code(response, status).await, code, "{name} {body}");
    }
    let gone = server.get("/v1/schedules/x").send().await.expect("get");
    assert_eq!(error_code(gone, 404).await, "not_found");
    let deleted = server
        .delete("/v1/schedules/nightly")
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    let again = server
        .delete("/v1/schedules/nightly")
        .send()
        .await
        .expect("delete");
    assert_eq!(error_code(again, 404).await, "not_found");
    server.stop().await;
}
