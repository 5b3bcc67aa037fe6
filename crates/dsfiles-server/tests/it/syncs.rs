//! Syncs through the API, against the simulator and the real pipeline.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dsfiles_server::api::{JobRecord, JobState};
use dsfiles_sim::{Fault, FaultPlan, SimConfig, Target};
use serde_json::json;

use crate::support::{
    Dirs, TestServer, assert_terminal, config, core_pipeline, fetch_options, pipeline_for, sim,
    small, stored_data, stored_files, verify,
};

#[tokio::test]
async fn a_full_sync_through_the_api_stores_every_file_and_streams_its_progress() {
    let sim = sim(small()).await;
    let dirs = Dirs::new();
    let server = TestServer::start(config(&dirs), pipeline_for(&sim)).await;
    let dest = dirs.dest("full");
    let job = server
        .start_sync(json!({"demarche": sim.demarche(), "dest": dest}))
        .await;
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.dest, dest);

    let events = server.follow(&job.id).await;
    // The first event is the job's status; the last its terminal status.
    assert_eq!(
        events.first().map(|(name, _)| name.as_str()),
        Some("status")
    );
    let kinds: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "progress")
        .filter_map(|(_, v)| v["type"].as_str())
        .collect();
    assert!(kinds.contains(&"file_stored"), "{kinds:?}");
    assert!(kinds.contains(&"finished"), "{kinds:?}");
    let record: JobRecord =
        serde_json::from_value(events.last().expect("events").1.clone()).expect("record");
    assert_terminal(&record, JobState::Succeeded);

    let expected = sim.expected_files(false, false);
    assert_eq!(record.counters.files_stored, expected.len() as u64);
    assert_eq!(record.counters.files_failed, 0);
    assert_eq!(
        record.counters.bytes_stored,
        expected.iter().map(|f| f.served_size).sum::<u64>()
    );
    assert!(record.started_at.is_some() && record.finished_at.is_some());
    assert_eq!(stored_files(Path::new(&dest)).len(), expected.len());
    let data = stored_data(Path::new(&dest));
    assert_eq!(data.len(), sim.dossier_numbers().len(), "{data:?}");

    // A late subscriber gets the final status and the stream ends.
    let late = server.follow(&job.id).await;
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].1["state"], "succeeded");

    // A second run moves nothing.
    let again = server
        .start_sync(json!({"demarche": sim.demarche(), "dest": dest}))
        .await;
    let again = server.finish(&again.id).await;
    assert_terminal(&again, JobState::Succeeded);
    assert_eq!(again.counters.files_stored, 0);
    assert_eq!(again.counters.bytes_downloaded, 0);

    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let stored = format!("dsfiles_files_stored_total {}", expected.len());
    assert!(
        metrics.lines().any(|l| l == stored),
        "missing `{stored}` in\n{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "dsfiles_syncs_finished_total{state=\"succeeded\"} 2"),
        "{metrics}"
    );
    server.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn cancelling_a_running_sync_ends_it_cancelled_and_consistent() {
    // Every download waits long enough for the cancellation to land mid-run.
    let faults = FaultPlan::new().with(Fault::SlowFile { delay_ms: 30_000 }, Target::Always, None);
    let sim = sim(SimConfig { faults, ..small() }).await;
    let dirs = Dirs::new();
    let server = TestServer::start(config(&dirs), pipeline_for(&sim)).await;
    let dest = dirs.dest("cancel");
    let job = server
        .start_sync(json!({"demarche": sim.demarche(), "dest": dest}))
        .await;

    // Wait (on the SSE stream) until a download has started, then cancel.
    let body = server.events_until(&job.id, "\"file_started\"").await;
    let started = Instant::now();
    let response = server
        .delete(&format!("/v1/syncs/{}", job.id))
        .send()
        .await
        .expect("cancel");
    assert_eq!(response.status(), 202);
    let asked: JobRecord = response.json().await.expect("record");
    assert!(asked.cancel_requested);
    let done = server.finish(&job.id).await;
    assert_terminal(&done, JobState::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "cancellation took {:?}",
        started.elapsed()
    );
    assert_eq!(done.counters.files_stored, 0);
    // Nothing partial at a final path.
    assert_eq!(stored_files(Path::new(&dest)), Vec::<String>::new());
    drop(body);

    // Without the fault, the next run completes.
    sim.set_faults(FaultPlan::new());
    let again = server
        .start_sync(json!({"demarche": sim.demarche(), "dest": dest}))
        .await;
    assert_terminal(&server.finish(&again.id).await, JobState::Succeeded);
    assert_eq!(
        stored_files(Path::new(&dest)).len(),
        sim.expected_files(false, false).len()
    );
    server.stop().await;
    sim.shutdown().await;
}

/// The shutdown future of `serve` fires mid-sync, with files stored and others in flight:
/// `serve` returns once the sync has stopped; the history on disk records the job `cancelled`;
/// the destination verifies (every file in the manifest intact, nothing stored outside it);
/// after a restart the history is served again and the next sync completes the work.
#[tokio::test]
async fn shutdown_mid_sync_leaves_a_cancelled_job_and_a_verifiable_destination() {
    // Every third download hangs; the others are stored before the shutdown.
    let faults = FaultPlan::new().with(
        Fault::SlowFile { delay_ms: 30_000 },
        Target::Every { every: 3 },
        None,
    );
    let sim = sim(SimConfig { faults, ..small() }).await;
    let dirs = Dirs::new();
    let dest = dirs.dest("a");
    let server = TestServer::start(config(&dirs), pipeline_for(&sim)).await;
    let running = server
        .start_sync(json!({"demarche": sim.demarche(), "dest": dest}))
        .await;
    let mut body = server.events_until(&running.id, "\"file_stored\"").await;
    let started = Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "shutdown took {:?}",
        started.elapsed()
    );
    // The open SSE stream ended with the server.
    use futures::StreamExt as _;
    while let Some(chunk) = body.next().await {
        if chunk.is_err() {
            break;
        }
    }

    // What the history says on disk, before anything reads it back.
    let file = dirs.state.join("jobs").join(format!("{}.json", running.id));
    let recorded: JobRecord =
        serde_json::from_slice(&std::fs::read(&file).expect("job file")).expect("job record");
    assert_terminal(&recorded, JobState::Cancelled);
    assert!(recorded.finished_at.is_some());
    let stored = recorded.counters.files_stored;
    let expected = sim.expected_files(false, false).len() as u64;
    assert!(
        stored >= 1 && stored < expected,
        "stored {stored} of {expected} before the shutdown"
    );
    // The manifest names exactly what is stored, intact; nothing partial or unrecorded.
    let report = verify(&dest).await;
    assert!(
        report.missing.is_empty() && report.corrupt.is_empty(),
        "{report:?}"
    );
    let data = stored_data(Path::new(&dest)).len() as u64;
    assert_eq!(report.ok, stored + data, "{report:?}");
    assert_eq!(stored_files(Path::new(&dest)).len() as u64, stored);

    sim.set_faults(FaultPlan::new());
    let server = TestServer::start(config(&dirs), pipeline_for(&sim)).await;
    assert_eq!(server.job(&running.id).await, recorded);
    let list: serde_json::Value = server
        .get("/v1/syncs")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["jobs"][0]["id"], running.id.as_str());
    // The destination is free again, and the next run stores only what is missing.
    let next = server
        .start_sync(json!({"demarche": sim.demarche(), "dest": dest}))
        .await;
    let next = server.finish(&next.id).await;
    assert_terminal(&next, JobState::Succeeded);
    assert_eq!(next.counters.files_stored, expected - stored);
    let report = verify(&dest).await;
    let data = sim.dossier_numbers().len() as u64;
    assert_eq!(stored_data(Path::new(&dest)).len() as u64, data);
    assert_eq!(
        (report.ok, report.missing.len(), report.corrupt.len()),
        (expected + data, 0, 0)
    );
    server.stop().await;
    sim.shutdown().await;
}

/// `CorePipeline::with_fetch_options` reaches the downloads: with a 300 ms read timeout, the
/// download the file host holds for 30 s is abandoned and retried, so the sync ends quickly.
/// The retry and DS's 429 show in the job and in `/metrics`.
#[tokio::test]
async fn download_settings_reach_the_pipeline_and_retries_show_in_metrics() {
    let faults = FaultPlan::new()
        .with(
            Fault::SlowFile { delay_ms: 30_000 },
            Target::Always,
            Some(1),
        )
        .with(
            Fault::RateLimited {
                reset_in_secs: 1,
                retry_after: false,
            },
            Target::Always,
            Some(1),
        );
    let sim = sim(SimConfig { faults, ..small() }).await;
    let dirs = Dirs::new();
    let pipeline = core_pipeline(&sim).with_fetch_options(dsfiles_core::FetchOptions {
        read_timeout: Duration::from_millis(300),
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
        ..fetch_options(&sim)
    });
    let server = TestServer::start(config(&dirs), Arc::new(pipeline)).await;
    let started = Instant::now();
    let job = server
        .start_sync(json!({"demarche": sim.demarche(), "dest": dirs.dest("t")}))
        .await;
    let done = server.finish(&job.id).await;
    assert_terminal(&done, JobState::Succeeded);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(done.counters.retries >= 1, "{:?}", done.counters);
    assert_eq!(
        done.counters.files_stored,
        sim.expected_files(false, false).len() as u64
    );
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no `{name}` in\n{metrics}"))
    };
    assert_eq!(value("dsfiles_ds_rate_limited_total"), 1);
    assert!(value("dsfiles_ds_retries_total") >= 1);
    assert!(value("dsfiles_ds_api_calls_total") >= 2);
    assert_eq!(
        value("dsfiles_download_retries_total"),
        done.counters.retries
    );
    assert_eq!(
        value("dsfiles_files_stored_total"),
        done.counters.files_stored
    );
    assert_eq!(
        value("dsfiles_bytes_stored_total"),
        done.counters.bytes_stored
    );
    assert_eq!(value("dsfiles_files_failed_total"), 0);
    server.stop().await;
    sim.shutdown().await;
}

/// 2,000 status reads from 50 concurrent clients while a sync runs: no errors; the p99
/// latency is printed and written to `target/server-load.txt`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_under_load_during_a_sync() {
    let faults = FaultPlan::new().with(Fault::SlowFile { delay_ms: 50 }, Target::Always, None);
    let sim = sim(SimConfig {
        dossiers: 30,
        faults,
        ..small()
    })
    .await;
    let dirs = Dirs::new();
    let server = TestServer::start(config(&dirs), pipeline_for(&sim)).await;
    let job = server
        .start_sync(json!({"demarche": sim.demarche(), "dest": dirs.dest("load")}))
        .await;

    const CLIENTS: usize = 50;
    const READS: usize = 2000;
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let http = server.http.clone();
        let url = server.url(&format!("/v1/syncs/{}", job.id));
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(READS / CLIENTS);
            let mut errors = 0usize;
            for _ in 0..READS / CLIENTS {
                let start = Instant::now();
                let ok = match http
                    .get(&url)
                    .bearer_auth(crate::support::TOKEN)
                    .send()
                    .await
                {
                    Ok(response) => {
                        response.status() == 200 && response.json::<JobRecord>().await.is_ok()
                    }
                    Err(_) => false,
                };
                latencies.push(start.elapsed());
                errors += usize::from(!ok);
            }
            (client, latencies, errors)
        });
    }
    let mut latencies = Vec::with_capacity(READS);
    let mut errors = 0;
    while let Some(done) = tasks.join_next().await {
        let (_, l, e) = done.expect("client task");
        latencies.extend(l);
        errors += e;
    }
    let during = server.job(&job.id).await;
    let finished = server.finish(&job.id).await;
    assert_terminal(&finished, JobState::Succeeded);
    assert_eq!(errors, 0);
    assert_eq!(latencies.len(), READS);
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    let line = format!(
        "server load: {READS} GET /v1/syncs/{{id}} from {CLIENTS} clients during a sync (state at the end of the reads: {}), 0 errors, p50 {:?}, p99 {:?}, max {:?}\n",
        during.state.as_str(),
        pct(0.50),
        pct(0.99),
        latencies[latencies.len() - 1],
    );
    #[allow(
        clippy::print_stdout,
        reason = "the benchmark result is the test's output"
    )]
    {
        print!("{line}");
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/server-load.txt");
    // `target/` is absent when the build goes elsewhere (`CARGO_TARGET_DIR`).
    std::fs::create_dir_all(target.parent().expect("a parent")).expect("create target/");
    std::fs::write(&target, &line).expect("write target/server-load.txt");
    server.stop().await;
    sim.shutdown().await;
}

/// Two replicas (two servers of one process here, as two processes would be) share a
/// destination: while the first syncs, the second answers 409 `destination_busy` naming the
/// first as the lease's holder; with `break_lease: true` it would queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_answers_409_while_the_first_holds_the_lease() {
    let sim = sim(small()).await;
    sim.set_faults(FaultPlan::new().with(Fault::SlowFile { delay_ms: 200 }, Target::Always, None));
    let (dirs_a, dirs_b) = (Dirs::new(), Dirs::new());
    let a = TestServer::start(config(&dirs_a), pipeline_for(&sim)).await;
    let mut config_b = config(&dirs_b);
    config_b.allow_dest = config(&dirs_a).allow_dest;
    let b = TestServer::start(config_b, pipeline_for(&sim)).await;
    let dest = dirs_a.dest("shared");
    let body = json!({"demarche": sim.demarche(), "dest": dest});
    let job = a.start_sync(body.clone()).await;
    // Wait until the first replica's job holds the lease (its first file is stored).
    let lease = Path::new(&dest)
        .join(".dsfiles/demarches")
        .join(sim.demarche().to_string())
        .join("lease");
    let events = a.events_until(&job.id, "\"file_stored\"").await;
    drop(events);
    assert!(lease.exists(), "no lease while the job runs");

    let response = b.post("/v1/syncs").json(&body).send().await.expect("POST");
    assert_eq!(response.status(), 409);
    let refused: serde_json::Value = response.json().await.expect("json");
    let error = &refused["error"];
    assert_eq!(error["code"], "destination_busy", "{refused}");
    assert_eq!(error["holder"]["pid"], std::process::id(), "{refused}");
    assert!(
        error["holder"]["tool"]
            .as_str()
            .is_some_and(|t| t.starts_with("dsfiles serve "))
    );
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("pid {}", std::process::id())) && message.contains("break_lease"),
        "{message}"
    );
    assert!(
        error["since"].is_string() && error["expires_at"].is_string(),
        "{refused}"
    );

    // The first replica's own 409 is still the in-process one, naming its job.
    let response = a.post("/v1/syncs").json(&body).send().await.expect("POST");
    assert_eq!(response.status(), 409);
    let own: serde_json::Value = response.json().await.expect("json");
    assert_eq!(own["error"]["code"], "sync_in_progress", "{own}");

    sim.set_faults(FaultPlan::new());
    let done = a.finish(&job.id).await;
    assert_terminal(&done, JobState::Succeeded);
    assert!(!lease.exists(), "the lease was not released");
    // Free again: the second replica queues now.
    let second = b.start_sync(body).await;
    assert_terminal(&b.finish(&second.id).await, JobState::Succeeded);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn the_data_layout_reaches_the_pipeline_and_is_kept_with_the_job() {
    let sim = sim(small()).await;
    let dirs = Dirs::new();
    let server = TestServer::start(config(&dirs), pipeline_for(&sim)).await;
    let dest = dirs.dest("data");
    let body =
        json!({"demarche": sim.demarche(), "dest": dest, "data_layout": "data/{dossier}.json"});
    let job = server.start_sync(body).await;
    assert_eq!(job.data_layout.as_deref(), Some("data/{dossier}.json"));
    let record = server.finish(&job.id).await;
    assert_terminal(&record, JobState::Succeeded);
    assert_eq!(record.data_layout.as_deref(), Some("data/{dossier}.json"));
    let mut expected: Vec<String> = sim
        .dossier_numbers()
        .iter()
        .map(|n| format!("data/{n}.json"))
        .collect();
    expected.sort();
    let mut data: Vec<String> = stored_files(Path::new(&dest))
        .into_iter()
        .filter(|k| k.starts_with("data/"))
        .collect();
    data.sort();
    assert_eq!(data, expected);
    assert!(stored_data(Path::new(&dest)).is_empty());

    // A layout of dossier values: every file under the démarche's title.
    let dest = dirs.dest("titled");
    let body = json!({"demarche": sim.demarche(), "dest": dest, "layout": "{demarche_title}/{dossier}/{filename}"});
    let job = server.start_sync(body).await;
    assert_eq!(
        job.layout.as_deref(),
        Some("{demarche_title}/{dossier}/{filename}")
    );
    assert_terminal(&server.finish(&job.id).await, JobState::Succeeded);
    let firsts: std::collections::BTreeSet<String> = stored_files(Path::new(&dest))
        .iter()
        .filter(|k| !k.ends_with("/dossier.json"))
        .filter_map(|k| k.split('/').next().map(str::to_owned))
        .collect();
    assert_eq!(firsts.len(), 1, "{firsts:?}");
    assert!(
        firsts
            .iter()
            .all(|f| f.parse::<u64>().is_err() && f != "sans-demarche_title"),
        "{firsts:?}"
    );

    let dest = dirs.dest("none");
    let job = server
        .start_sync(json!({"demarche": sim.demarche(), "dest": dest, "no_data": true}))
        .await;
    assert_eq!(job.no_data, Some(true));
    assert_terminal(&server.finish(&job.id).await, JobState::Succeeded);
    assert!(stored_data(Path::new(&dest)).is_empty());
    server.stop().await;
    sim.shutdown().await;
}
