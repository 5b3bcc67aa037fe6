use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use tokio::sync::Semaphore;

use super::*;
use crate::pipeline::{DsStats, PagedFile};

/// Each sync plans one file, then waits for a permit (success) or cancellation.
#[derive(Debug)]
struct Gated {
    permits: Semaphore,
}

#[async_trait::async_trait]
impl Pipeline for Gated {
    async fn sync(
        &self,
        spec: SyncSpec,
        progress: Arc<dyn SyncProgress>,
        cancel: CancellationToken,
    ) -> Result<SyncOutcome, PipelineError> {
        progress.record(
            ProgressUpdate::FilePlanned { bytes: 10 },
            &serde_json::json!({"type": "file_planned", "bytes": 10}),
        );
        tokio::select! {
            () = cancel.cancelled() => Ok(SyncOutcome { counters: progress.counters(), cancelled: true, ..SyncOutcome::default() }),
            permit = self.permits.acquire() => {
                permit.map_err(|e| PipelineError::new(PipelineErrorKind::Internal, e.to_string()))?.forget();
                if spec.demarche == 666 {
                    return Err(PipelineError::new(PipelineErrorKind::Access, "DS refused démarche `666`"));
                }
                progress.record(ProgressUpdate::FileStored { bytes: 10 }, &serde_json::json!({"type": "file_stored"}));
                Ok(SyncOutcome { counters: progress.counters(), ..SyncOutcome::default() })
            }
        }
    }

    fn list_files(
        &self,
        _: u64,
        _: Option<DateTime<Utc>>,
        _: Option<String>,
        _: CancellationToken,
    ) -> BoxStream<'static, Result<PagedFile, PipelineError>> {
        Box::pin(futures::stream::empty())
    }

    fn ds_stats(&self) -> DsStats {
        DsStats::default()
    }

    async fn check_lease(
        &self,
        _: &SyncSpec,
    ) -> Result<Option<crate::api::DestinationBusy>, PipelineError> {
        Ok(None)
    }
}

struct Fixture {
    manager: JobManager,
    pipeline: Arc<Gated>,
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
}

fn fixture(max_running: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    fixture_in(dir, path, max_running)
}

fn fixture_in(keep: tempfile::TempDir, dir: std::path::PathBuf, max_running: usize) -> Fixture {
    let pipeline = Arc::new(Gated {
        permits: Semaphore::new(0),
    });
    let (store, history) = Store::open(&dir, 100).expect("store");
    let manager = JobManager::new(
        pipeline.clone(),
        store,
        history,
        Arc::new(Metrics::default()),
        Capacity {
            max_running,
            max_queued: 3,
            sync_jobs: 4,
            history_limit: 100,
        },
    );
    Fixture {
        manager,
        pipeline,
        _dir: keep,
        dir,
    }
}

fn spec(demarche: u64, dest: &str) -> SyncSpec {
    SyncSpec {
        demarche,
        dest: dest.into(),
        since: Since::Auto,
        include: Vec::new(),
        dossiers: Vec::new(),
        jobs: 4,
        break_lease: false,
        layout: None,
        data_layout: None,
        no_data: None,
        seda: None,
    }
}

/// Waits (on the job's own events, no sleeping) until job `id` is in `state`.
async fn wait_for(manager: &JobManager, id: &str, state: JobState) -> JobRecord {
    let job = manager.get(id).expect("job exists");
    let (mut record, mut events) = job.subscribe();
    while record.state != state {
        assert!(
            !record.state.is_terminal(),
            "job `{id}` ended `{:?}` instead of `{state:?}`",
            record.state
        );
        match events.recv().await {
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => record = job.snapshot(),
            Err(broadcast::error::RecvError::Closed) => panic!("job `{id}` events closed"),
        }
    }
    record
}

fn state_of(manager: &JobManager, id: &str) -> JobState {
    manager.get(id).expect("job exists").snapshot().state
}

#[tokio::test]
async fn concurrency_is_bounded_and_the_queue_drains_in_order() {
    let f = fixture(1);
    let a = f.manager.submit(spec(1, "/d/a"), Trigger::Api).expect("a");
    let b = f.manager.submit(spec(2, "/d/b"), Trigger::Api).expect("b");
    wait_for(&f.manager, &a.id, JobState::Running).await;
    assert_eq!(state_of(&f.manager, &b.id), JobState::Queued);
    f.pipeline.permits.add_permits(1);
    let done = wait_for(&f.manager, &a.id, JobState::Succeeded).await;
    assert_eq!(done.counters.files_planned, 1);
    assert_eq!(done.counters.files_stored, 1);
    assert_eq!(done.counters.bytes_stored, 10);
    wait_for(&f.manager, &b.id, JobState::Running).await;
    f.pipeline.permits.add_permits(1);
    wait_for(&f.manager, &b.id, JobState::Succeeded).await;
    assert_eq!(f.manager.count_by_state(), [0, 0, 2, 0, 0]);
    f.manager.shutdown().await;
}

#[tokio::test]
async fn one_writer_per_destination() {
    let f = fixture(4);
    let a = f.manager.submit(spec(1, "/d/a"), Trigger::Api).expect("a");
    match f.manager.submit(spec(1, "/d/a"), Trigger::Api) {
        Err(SubmitError::Conflict(existing)) => assert_eq!(existing.id, a.id),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Another destination of the same démarche is fine.
    f.manager
        .submit(spec(1, "/d/other"), Trigger::Api)
        .expect("other dest");
    f.manager.shutdown().await;
}

#[tokio::test]
async fn webhook_dossiers_coalesce_into_one_follow_up() {
    let f = fixture(4);
    let first = f
        .manager
        .enqueue_dossiers(7, "/d/w", &[1, 2])
        .expect("first");
    wait_for(&f.manager, &first.id, JobState::Running).await;
    // Running: a follow-up is queued, and waits although there is room to run it.
    let follow = f
        .manager
        .enqueue_dossiers(7, "/d/w", &[2, 3])
        .expect("follow-up");
    assert_ne!(follow.id, first.id);
    let merged = f
        .manager
        .enqueue_dossiers(7, "/d/w", &[3, 4])
        .expect("merged");
    assert_eq!(merged.id, follow.id);
    assert_eq!(merged.dossiers, [2, 3, 4]);
    assert_eq!(state_of(&f.manager, &follow.id), JobState::Queued);
    f.pipeline.permits.add_permits(1);
    wait_for(&f.manager, &first.id, JobState::Succeeded).await;
    let running = wait_for(&f.manager, &follow.id, JobState::Running).await;
    assert_eq!(running.dossiers, [2, 3, 4]);
    assert_eq!(running.trigger, Trigger::Webhook);
    f.manager.shutdown().await;
}

#[tokio::test]
async fn the_queue_is_bounded_but_webhook_jobs_coalesce_past_it() {
    let f = fixture(1);
    let running = f.manager.submit(spec(1, "/d/r"), Trigger::Api).expect("r");
    wait_for(&f.manager, &running.id, JobState::Running).await;
    for n in 2..=4 {
        f.manager
            .submit(spec(n, &format!("/d/{n}")), Trigger::Api)
            .expect("room in the queue");
    }
    assert!(matches!(
        f.manager.submit(spec(5, "/d/5"), Trigger::Api),
        Err(SubmitError::QueueFull { max_queued: 3 })
    ));
    // A webhook job is configured, not sent: it queues, then later deliveries join it.
    let hook = f
        .manager
        .enqueue_dossiers(7, "/d/w", &[1])
        .expect("webhook");
    let again = f.manager.enqueue_dossiers(7, "/d/w", &[2]).expect("again");
    assert_eq!(again.id, hook.id);
    // Cancelling a queued job makes room again.
    f.manager.cancel(&hook.id).expect("cancel");
    let queued = f.manager.recent(1, Some(JobState::Queued), None);
    let oldest = queued.first().expect("queued jobs");
    f.manager.cancel(&oldest.id).expect("cancel");
    f.manager
        .submit(spec(5, "/d/5"), Trigger::Api)
        .expect("room again");
    f.manager.shutdown().await;
}

#[tokio::test]
async fn cancelling_queued_and_running_jobs() {
    let f = fixture(1);
    let a = f.manager.submit(spec(1, "/d/a"), Trigger::Api).expect("a");
    let b = f.manager.submit(spec(2, "/d/b"), Trigger::Api).expect("b");
    wait_for(&f.manager, &a.id, JobState::Running).await;
    let cancelled = f.manager.cancel(&b.id).expect("cancel queued");
    assert_eq!(cancelled.state, JobState::Cancelled);
    let asked = f.manager.cancel(&a.id).expect("cancel running");
    assert!(asked.cancel_requested);
    let done = wait_for(&f.manager, &a.id, JobState::Cancelled).await;
    assert!(done.finished_at.is_some());
    assert!(matches!(
        f.manager.cancel(&a.id),
        Err(CancelError::Finished(_))
    ));
    assert!(matches!(
        f.manager.cancel("nope"),
        Err(CancelError::NotFound)
    ));
    f.manager.shutdown().await;
}

#[tokio::test]
async fn run_level_errors_fail_the_job_with_their_kind() {
    let f = fixture(1);
    let a = f
        .manager
        .submit(spec(666, "/d/a"), Trigger::Api)
        .expect("a");
    f.pipeline.permits.add_permits(1);
    let done = wait_for(&f.manager, &a.id, JobState::Failed).await;
    let error = done.error.expect("error recorded");
    assert_eq!(error.code, "ds_access_refused");
    assert!(error.message.contains("`666`"), "{}", error.message);
    f.manager.shutdown().await;
}

#[tokio::test]
async fn shutdown_cancels_everything_and_history_survives_a_restart() {
    let f = fixture(1);
    let a = f.manager.submit(spec(1, "/d/a"), Trigger::Api).expect("a");
    let b = f.manager.submit(spec(2, "/d/b"), Trigger::Api).expect("b");
    wait_for(&f.manager, &a.id, JobState::Running).await;
    f.manager.shutdown().await;
    assert!(matches!(
        f.manager.submit(spec(3, "/d/c"), Trigger::Api),
        Err(SubmitError::ShuttingDown)
    ));

    let Fixture { _dir, dir, .. } = f;
    let again = fixture_in(_dir, dir, 1);
    let history = again.manager.recent(10, None, None);
    let states: Vec<(String, JobState)> = history.iter().map(|r| (r.id.clone(), r.state)).collect();
    assert_eq!(
        states,
        [
            (b.id.clone(), JobState::Cancelled),
            (a.id.clone(), JobState::Cancelled)
        ]
    );
    again.manager.shutdown().await;
}

#[tokio::test]
async fn jobs_left_running_by_a_crash_come_back_interrupted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let jobs_dir = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs_dir).expect("mkdir");
    let mut record = JobRecord {
        id: "0b6f3f1e-0000-4000-8000-000000000001".into(),
        kind: crate::api::JobKind::Sync,
        state: JobState::Running,
        demarche: 1,
        dest: "/d/a".into(),
        since: Since::Full,
        include: Vec::new(),
        dossiers: vec![5],
        layout: None,
        data_layout: None,
        no_data: None,
        trigger: Trigger::Api,
        schedule: None,
        created_at: Utc::now(),
        started_at: Some(Utc::now()),
        finished_at: None,
        cancel_requested: false,
        runner: None,
        history: Vec::new(),
        counters: Counters::default(),
        failures: Vec::new(),
        error: None,
        seda: None,
    };
    std::fs::write(
        jobs_dir.join(format!("{}.json", record.id)),
        serde_json::to_vec(&record).expect("json"),
    )
    .expect("write");
    std::fs::write(jobs_dir.join("garbage.json"), b"{not json").expect("write");
    let path = dir.path().to_path_buf();
    let f = fixture_in(dir, path, 1);
    let loaded = f.manager.recent(10, None, None);
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].state, JobState::Failed);
    assert_eq!(
        loaded[0].error.as_ref().map(|e| e.code.as_str()),
        Some("interrupted")
    );
    f.manager.shutdown().await;
    // The recovery itself was written back.
    let text = std::fs::read_to_string(f.dir.join("jobs").join(format!("{}.json", record.id)))
        .expect("read");
    record = serde_json::from_str(&text).expect("parse");
    assert_eq!(record.state, JobState::Failed);
}

/// A failed run's error: its failed files first; with none, what made it incomplete.
#[test]
fn a_failed_runs_error_names_files_or_else_its_first_warning() {
    let missing = "`not_found`: dossier `12` not found, skipped".to_owned();
    let cases: [(u64, Vec<String>, &str, String); 4] = [
        (
            3,
            vec![],
            "files_failed",
            "`3` files could not be stored".into(),
        ),
        (
            2,
            vec![missing.clone()],
            "files_failed",
            "`2` files could not be stored".into(),
        ),
        (
            0,
            vec![missing.clone()],
            "incomplete",
            format!("the run is incomplete: {missing}"),
        ),
        (
            0,
            vec![missing.clone(), "b".into(), "c".into()],
            "incomplete",
            format!("the run is incomplete: {missing} (and `2` more warnings)"),
        ),
    ];
    for (failed, warnings, code, message) in cases {
        let mut record = new_record(&spec(1, "/d"), Trigger::Api);
        record.counters.files_failed = failed;
        let error = unsuccessful(&record, &warnings);
        assert_eq!((error.code.as_str(), error.message), (code, message));
    }
}
