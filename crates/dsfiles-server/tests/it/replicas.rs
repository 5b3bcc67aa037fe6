//! Two replicas (two services in this process) on one PostgreSQL database
//! (`DSFILES_TEST_DATABASE_URL`, exported by `cargo xtask test`; each test gets a fresh
//! database), with the real pipeline against the simulator: the replica that does not run a
//! job shows it, streams it and cancels it; a replica that stops hands its job to the other.
//! Without the variable the tests print a skip notice; under `CI=true` they fail.

use std::time::Duration;

use dsfiles_server::api::{JobRecord, JobState};
use dsfiles_server::{DatabaseSettings, Secret};
use dsfiles_sim::{Fault, FaultPlan, SimConfig, SimHandle, Target};
use serde_json::json;
use sqlx::Executor as _;

use crate::support::{Dirs, TestServer, assert_terminal, config, pipeline_for, sim, small};

const DATABASE_VAR: &str = "DSFILES_TEST_DATABASE_URL";

/// A new empty database on the test server, or `None` (skipped) without one.
#[expect(clippy::print_stderr, reason = "the skip notice is the point")]
pub(crate) async fn fresh_database() -> Option<String> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(admin) = std::env::var(DATABASE_VAR).ok().filter(|v| !v.is_empty()) else {
        let message = format!("{DATABASE_VAR} is not set (run `cargo xtask test`)");
        assert!(!ci, "{message}");
        eprintln!("SKIPPED: {message}");
        return None;
    };
    let name = format!("dsfiles_it_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin).await.expect("test database");
    pool.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create database");
    pool.close().await;
    let mut url = url::Url::parse(&admin).expect("database URL");
    url.set_path(&name);
    Some(url.to_string())
}

/// The messages of job `id`'s history, oldest first.
async fn history(database: &str, id: &str) -> Vec<String> {
    let pool = sqlx::PgPool::connect(database).await.expect("database");
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT e->>'message' FROM dsfiles_jobs, jsonb_array_elements(history) WITH ORDINALITY AS h(e, n) WHERE id = $1 ORDER BY n",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .expect("history");
    rows.into_iter().map(|(m,)| m).collect()
}

/// Replica `id` on `database`, writing under `dirs`, with a 2-second lease.
pub(crate) async fn replica(sim: &SimHandle, dirs: &Dirs, database: &str, id: &str) -> TestServer {
    let mut config = config(dirs);
    config.database = Some(DatabaseSettings {
        url: Secret::new(database),
        replica_id: id.into(),
        lease: Duration::from_secs(2),
    });
    TestServer::open(config, pipeline_for(sim)).await
}

/// Each download waits `delay_ms`: a sync of a few seconds.
async fn slow_sim(delay_ms: u64) -> SimHandle {
    let faults = FaultPlan::new().with(Fault::SlowFile { delay_ms }, Target::Always, None);
    sim(SimConfig { faults, ..small() }).await
}

/// The job's terminal record, as the SSE stream of `server` ends with it.
async fn follow_to_the_end(server: &TestServer, id: &str) -> (Vec<String>, JobRecord) {
    let events = server.follow(id).await;
    let names = events.iter().map(|(name, _)| name.clone()).collect();
    let last = events.last().expect("events").1.clone();
    (names, serde_json::from_value(last).expect("job record"))
}

/// The replica id running job `id`, once it runs (read through `server`).
async fn runner_of(server: &TestServer, id: &str) -> String {
    drop(server.events_until(id, "\"state\":\"running\"").await);
    let record = server.job(id).await;
    record.runner.expect("a running job names its runner")
}

#[tokio::test]
async fn the_other_replica_shows_streams_and_cancels_a_job() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let sim = slow_sim(500).await;
    let dirs = Dirs::new();
    let a = replica(&sim, &dirs, &database, "a").await;
    let b = replica(&sim, &dirs, &database, "b").await;
    let job = b
        .start_sync(json!({"demarche": sim.demarche(), "dest": dirs.dest("x")}))
        .await;
    let (runner, other) = match runner_of(&a, &job.id).await.as_str() {
        "a" => (&a, &b),
        _ => (&b, &a),
    };
    let (names, done) = follow_to_the_end(other, &job.id).await;
    assert_terminal(&done, JobState::Succeeded);
    assert!(names.iter().all(|n| n == "status"), "{names:?}");
    assert!(names.len() >= 3, "progress shows while it runs: {names:?}");
    let expected = sim.expected_files(false, false).len() as u64;
    assert_eq!(done.counters.files_stored, expected);
    assert_eq!(runner.job(&job.id).await, other.job(&job.id).await);

    // A cancel asked on the replica that does not run the job stops it.
    let second = a
        .start_sync(json!({"demarche": sim.demarche(), "dest": dirs.dest("y"), "since": "full"}))
        .await;
    let other = match runner_of(&a, &second.id).await.as_str() {
        "a" => &b,
        _ => &a,
    };
    let response = other
        .delete(&format!("/v1/syncs/{}", second.id))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), 202);
    let (_, cancelled) = follow_to_the_end(other, &second.id).await;
    assert_eq!(cancelled.state, JobState::Cancelled, "{cancelled:?}");
    assert!(cancelled.cancel_requested);
}

#[tokio::test]
async fn a_stopping_replica_hands_its_job_to_the_other() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let sim = slow_sim(500).await;
    let dirs = Dirs::new();
    let a = replica(&sim, &dirs, &database, "a").await;
    let b = replica(&sim, &dirs, &database, "b").await;
    let job = a
        .start_sync(json!({"demarche": sim.demarche(), "dest": dirs.dest("x")}))
        .await;
    let runner = runner_of(&a, &job.id).await;
    let (stopping, staying, other_id) = if runner == "a" {
        (a, b, "b")
    } else {
        (b, a, "a")
    };
    drop(stopping.events_until(&job.id, "\"file_stored\"").await);
    stopping.stop().await;
    let (_, done) = follow_to_the_end(&staying, &job.id).await;
    assert_terminal(&done, JobState::Succeeded);
    assert_eq!(done.runner.as_deref(), Some(other_id));
    let history = history(&database, &job.id).await;
    let runner_id = if other_id == "a" { "b" } else { "a" };
    let said = [
        format!("released by {runner_id} at shutdown"),
        format!("resumed by {other_id} after {runner_id}'s lease expired"),
        format!("succeeded on {other_id}"),
    ];
    assert!(history.ends_with(&said), "{history:?}");
    let expected = sim.expected_files(false, false).len();
    let c = done.counters;
    assert!(
        c.files_skipped >= 1,
        "the resumed run skips what was stored: {c:?}"
    );
    assert_eq!(
        (c.files_stored + c.files_skipped) as usize,
        expected,
        "{c:?}"
    );
    assert_eq!(
        crate::support::stored_files(std::path::Path::new(&dirs.dest("x"))).len(),
        expected
    );
}

/// Runs `sql` on the test server's admin database.
async fn admin(sql: &str) {
    let admin = std::env::var(DATABASE_VAR).expect("database");
    let pool = sqlx::PgPool::connect(&admin).await.expect("admin");
    pool.execute(sql).await.expect(sql);
    pool.close().await;
}

/// The replica's database goes away mid-run: no renewal succeeds, so the replica stops the
/// job itself after one lease (another replica could have claimed it by then), without
/// waiting for the database to say so; back, the job is claimed again and completes.
#[tokio::test]
async fn a_replica_cut_off_from_the_database_stops_its_job_after_one_lease() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let name = url::Url::parse(&database).expect("url").path()[1..].to_owned();
    let sim = slow_sim(1000).await;
    let dirs = Dirs::new();
    let a = replica(&sim, &dirs, &database, "a").await;
    let job = a
        .start_sync(json!({"demarche": sim.demarche(), "dest": dirs.dest("x")}))
        .await;
    while a.job(&job.id).await.counters.files_stored == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
    admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;
    let cut = std::time::Instant::now();
    // While the job runs here, `GET` answers from memory; once it stopped, from the database,
    // which is gone: 503.
    loop {
        let status = a
            .get(&format!("/v1/syncs/{}", job.id))
            .send()
            .await
            .expect("GET")
            .status();
        if status == 503 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            cut.elapsed() < Duration::from_secs(30),
            "the job kept running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped_after = cut.elapsed();
    assert!(stopped_after < Duration::from_secs(6), "{stopped_after:?}");
    let stored = crate::support::stored_files(std::path::Path::new(&dirs.dest("x"))).len();
    let expected = sim.expected_files(false, false).len();
    assert!(stored < expected, "stopped mid-run: {stored} of {expected}");

    admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    let (_, done) = follow_to_the_end(&a, &job.id).await;
    assert_terminal(&done, JobState::Succeeded);
    let messages: Vec<&str> = done.history.iter().map(|e| e.message.as_str()).collect();
    assert!(
        messages.contains(&"resumed by a after a's lease expired"),
        "{messages:?}"
    );
}
