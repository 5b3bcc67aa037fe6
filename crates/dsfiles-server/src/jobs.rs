//! The job manager: a queue of sync jobs run by at most `max_concurrent_syncs` owned tasks
//! (a `JoinSet`, no detached spawns), never two at once on the same démarche and destination
//! (one writer per manifest), with live counters, a broadcast of progress for SSE
//! subscribers, cancellation, and a history persisted by [`store`]. Replicas sharing a
//! PostgreSQL database use [`shared`] instead (over [`postgres`]); handlers see either through
//! [`service`].

pub mod postgres;
mod service;
mod shared;
mod store;

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::Utc;
use futures::FutureExt as _;
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::api::{
    Counters, FileFailure, JobError, JobKind, JobRecord, JobState, MAX_DOSSIERS, MAX_FAILURES_KEPT,
    Since, SyncSpec, Trigger,
};
use crate::metrics::Metrics;
use crate::pipeline::{
    Pipeline, PipelineError, PipelineErrorKind, ProgressEvent, ProgressUpdate, SyncOutcome,
    SyncProgress,
};

pub(crate) use service::{JobService, Watch};
pub(crate) use shared::{POLL_EVERY, SharedJobs, Timings};
pub(crate) use store::Store;

/// Messages buffered per SSE subscriber before it lags (it then gets a fresh status).
const EVENT_BUFFER: usize = 1024;

/// One message for SSE subscribers of a job.
#[derive(Debug, Clone)]
pub struct JobMessage {
    /// SSE event name: `progress` (a core event) or `status` (the job record).
    pub kind: &'static str,
    pub data: Arc<str>,
    /// The job reached a terminal state: nothing follows.
    pub terminal: bool,
}

/// A job in memory.
#[derive(Debug)]
pub(crate) struct Job {
    record: Mutex<JobRecord>,
    spec: Mutex<SyncSpec>,
    cancel: CancellationToken,
    events: broadcast::Sender<JobMessage>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind: keep serving it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Job {
    fn new(record: JobRecord, spec: SyncSpec) -> Arc<Job> {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Arc::new(Job {
            record: Mutex::new(record),
            spec: Mutex::new(spec),
            cancel: CancellationToken::new(),
            events,
        })
    }

    pub(crate) fn snapshot(&self) -> JobRecord {
        lock(&self.record).clone()
    }

    /// The one job at a time key: `(démarche, dest)`, or a seda job's OUT
    /// ([`crate::seda_jobs::lock_key`]).
    fn key(&self) -> (u64, String) {
        crate::seda_jobs::lock_key(&lock(&self.spec))
    }

    /// The current record and a receiver of everything after it (taken under the record lock,
    /// so that no state change falls between the two).
    pub(crate) fn subscribe(&self) -> (JobRecord, broadcast::Receiver<JobMessage>) {
        let record = lock(&self.record);
        (record.clone(), self.events.subscribe())
    }

    /// Applies `change` to the record and tells subscribers, under the record lock.
    fn update(&self, change: impl FnOnce(&mut JobRecord)) -> JobRecord {
        let mut record = lock(&self.record);
        change(&mut record);
        let snapshot = record.clone();
        if self.events.receiver_count() > 0 {
            let data: Arc<str> = serde_json::to_string(&snapshot).unwrap_or_default().into();
            // No receiver is not an error: nobody is watching.
            let _ = self.events.send(JobMessage {
                kind: "status",
                data,
                terminal: snapshot.state.is_terminal(),
            });
        }
        snapshot
    }
}

/// The [`SyncProgress`] of one job: its counters and its SSE broadcast.
#[derive(Clone, Debug)]
pub(crate) struct JobProgress {
    job: Arc<Job>,
    metrics: Arc<Metrics>,
}

impl SyncProgress for JobProgress {
    fn record(&self, update: ProgressUpdate, event: &dyn ProgressEvent) {
        {
            let mut record = lock(&self.job.record);
            let c = &mut record.counters;
            match &update {
                ProgressUpdate::None => {}
                // Sizes come from DS: a hostile `byteSizeBigInt` must not overflow a counter.
                ProgressUpdate::PageFetched { dossiers } => {
                    c.dossiers = c.dossiers.saturating_add(*dossiers);
                }
                ProgressUpdate::FilePlanned { bytes } => {
                    c.files_planned = c.files_planned.saturating_add(1);
                    c.bytes_planned = c.bytes_planned.saturating_add(*bytes);
                }
                ProgressUpdate::FileSkipped => c.files_skipped = c.files_skipped.saturating_add(1),
                ProgressUpdate::BytesWritten { n } => {
                    c.bytes_downloaded = c.bytes_downloaded.saturating_add(*n);
                }
                ProgressUpdate::FileStored { bytes } => {
                    c.files_stored = c.files_stored.saturating_add(1);
                    c.bytes_stored = c.bytes_stored.saturating_add(*bytes);
                }
                ProgressUpdate::FileFailed { key, reason } => {
                    c.files_failed += 1;
                    if record.failures.len() < MAX_FAILURES_KEPT {
                        record.failures.push(FileFailure {
                            key: key.clone(),
                            reason: reason.clone(),
                        });
                    }
                }
                ProgressUpdate::Retry => c.retries += 1,
            }
        }
        self.metrics.progress(&update);
        if self.job.events.receiver_count() > 0 {
            match event.to_json() {
                Ok(data) => {
                    let _ = self.job.events.send(JobMessage {
                        kind: "progress",
                        data: data.into(),
                        terminal: false,
                    });
                }
                Err(err) => tracing::warn!(error = %err, "cannot serialize a progress event"),
            }
        }
    }

    fn counters(&self) -> Counters {
        lock(&self.job.record).counters
    }
}

/// Why a job was not created.
#[derive(Debug)]
pub(crate) enum SubmitError {
    /// A job on the same démarche and destination is queued or running.
    Conflict(Box<JobRecord>),
    /// `max_queued` jobs already wait.
    QueueFull {
        max_queued: usize,
    },
    ShuttingDown,
    /// The job database did not answer (the message is for the log, not the client).
    Unavailable(String),
}

/// Why a job could not be cancelled.
#[derive(Debug)]
pub(crate) enum CancelError {
    NotFound,
    Finished(Box<JobRecord>),
    /// The job database did not answer (the message is for the log, not the client).
    Unavailable(String),
}

#[derive(Debug, Default)]
struct Jobs {
    by_id: HashMap<String, Arc<Job>>,
    /// Every job id, oldest first (the history order).
    order: VecDeque<String>,
    /// Queued job ids, oldest first.
    queue: VecDeque<String>,
    /// Jobs whose task runs, by (démarche, destination).
    running: HashMap<(u64, String), String>,
    shutting_down: bool,
}

/// Queues, runs, cancels and remembers sync jobs.
#[derive(Clone, Debug)]
pub(crate) struct JobManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    jobs: Mutex<Jobs>,
    tasks: Mutex<JoinSet<()>>,
    pipeline: Arc<dyn Pipeline>,
    store: Store,
    metrics: Arc<Metrics>,
    capacity: Capacity,
}

/// How many jobs the manager runs, queues and remembers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Capacity {
    /// Jobs running at once.
    pub max_running: usize,
    /// Jobs waiting; [`JobManager::submit`] refuses more (webhook jobs coalesce instead).
    pub max_queued: usize,
    /// Concurrent downloads inside each sync.
    pub sync_jobs: usize,
    /// Finished jobs kept in the history.
    pub history_limit: usize,
}

impl JobManager {
    /// A manager over the history in `store` (already loaded into `history`, oldest first).
    pub(crate) fn new(
        pipeline: Arc<dyn Pipeline>,
        store: Store,
        history: Vec<JobRecord>,
        metrics: Arc<Metrics>,
        capacity: Capacity,
    ) -> JobManager {
        let mut jobs = Jobs::default();
        for record in history {
            let spec = spec_of(&record, capacity.sync_jobs);
            jobs.order.push_back(record.id.clone());
            jobs.by_id.insert(record.id.clone(), Job::new(record, spec));
        }
        JobManager {
            inner: Arc::new(Inner {
                jobs: Mutex::new(jobs),
                tasks: Mutex::new(JoinSet::new()),
                pipeline,
                store,
                metrics,
                capacity,
            }),
        }
    }

    pub(crate) fn pipeline(&self) -> &Arc<dyn Pipeline> {
        &self.inner.pipeline
    }

    pub(crate) fn sync_jobs(&self) -> usize {
        self.inner.capacity.sync_jobs
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Job>> {
        lock(&self.inner.jobs).by_id.get(id).cloned()
    }

    /// The most recent jobs first, at most `limit`, optionally only in `state`.
    pub(crate) fn recent(
        &self,
        limit: usize,
        state: Option<JobState>,
        schedule: Option<&str>,
    ) -> Vec<JobRecord> {
        let jobs = lock(&self.inner.jobs);
        jobs.order
            .iter()
            .rev()
            .filter_map(|id| jobs.by_id.get(id))
            .map(|job| job.snapshot())
            .filter(|record| state.is_none_or(|s| record.state == s))
            .filter(|record| schedule.is_none_or(|name| record.schedule.as_deref() == Some(name)))
            .take(limit)
            .collect()
    }

    /// How many jobs are in each state (for `/metrics`), in [`JobState::ALL`] order.
    pub(crate) fn count_by_state(&self) -> [u64; 5] {
        let jobs = lock(&self.inner.jobs);
        let mut counts = [0u64; 5];
        for job in jobs.by_id.values() {
            let state = lock(&job.record).state;
            if let Some(i) = JobState::ALL.iter().position(|s| *s == state) {
                counts[i] += 1;
            }
        }
        counts
    }

    /// The job queued or running on démarche `demarche` and destination `dest`, if any.
    pub(crate) fn active(&self, demarche: u64, dest: &str) -> Option<JobRecord> {
        let jobs = lock(&self.inner.jobs);
        find_active(&jobs, &(demarche, dest.to_owned())).map(|job| job.snapshot())
    }

    /// Queues a sync unless one on the same démarche and destination is queued or running, or
    /// the queue is full.
    pub(crate) fn submit(
        &self,
        spec: SyncSpec,
        trigger: Trigger,
    ) -> Result<JobRecord, SubmitError> {
        let record = new_record(&spec, trigger);
        self.submit_record(spec, record)
    }

    /// [`JobManager::submit`] of a record made by the caller (a schedule's run names it).
    pub(crate) fn submit_record(
        &self,
        spec: SyncSpec,
        record: JobRecord,
    ) -> Result<JobRecord, SubmitError> {
        let record = {
            let mut jobs = lock(&self.inner.jobs);
            if jobs.shutting_down {
                return Err(SubmitError::ShuttingDown);
            }
            let key = (spec.demarche, spec.dest.clone());
            if let Some(existing) = find_active(&jobs, &key) {
                return Err(SubmitError::Conflict(Box::new(existing.snapshot())));
            }
            let max_queued = self.inner.capacity.max_queued;
            if jobs.queue.len() >= max_queued {
                return Err(SubmitError::QueueFull { max_queued });
            }
            self.insert(&mut jobs, spec, record)
        };
        self.dispatch();
        Ok(record)
    }

    /// Webhook path: makes sure `dossiers` of `demarche` get synced into `dest`. A queued job
    /// for the same destination absorbs them; otherwise a new job is queued (it waits for a
    /// running one on the same destination to finish: a follow-up).
    ///
    /// Not bounded by `max_queued`: webhook destinations are configured, not sent, and each
    /// has at most one queued job (later deliveries coalesce into it), so these jobs number at
    /// most the configured destinations. Refusing would only delay the sync: DS redelivers a
    /// refused batch on its own schedule (5 s, 5 min, 30 min, … and disables the webhook after
    /// 10 failures), and holds back every later event of the webhook meanwhile.
    pub(crate) fn enqueue_dossiers(
        &self,
        demarche: u64,
        dest: &str,
        dossiers: &[u64],
    ) -> Result<JobRecord, SubmitError> {
        let record = {
            let mut jobs = lock(&self.inner.jobs);
            if jobs.shutting_down {
                return Err(SubmitError::ShuttingDown);
            }
            let key = (demarche, dest.to_owned());
            let queued = jobs
                .queue
                .iter()
                .filter_map(|id| jobs.by_id.get(id))
                .find(|job| job.key() == key)
                .cloned();
            match queued {
                Some(job) => {
                    let mut spec = lock(&job.spec);
                    if !spec.dossiers.is_empty() {
                        for number in dossiers {
                            if !spec.dossiers.contains(number) {
                                spec.dossiers.push(*number);
                            }
                        }
                        if spec.dossiers.len() > MAX_DOSSIERS {
                            // Too many to name: sync the démarche incrementally instead.
                            spec.dossiers.clear();
                        }
                    }
                    let dossiers = spec.dossiers.clone();
                    drop(spec);
                    let record = job.update(|r| r.dossiers = dossiers);
                    self.inner.store.put(&record);
                    record
                }
                None => {
                    let spec =
                        webhook_spec(demarche, dest, dossiers, self.inner.capacity.sync_jobs);
                    let record = new_record(&spec, Trigger::Webhook);
                    self.insert(&mut jobs, spec, record)
                }
            }
        };
        self.dispatch();
        Ok(record)
    }

    fn insert(&self, jobs: &mut Jobs, spec: SyncSpec, record: JobRecord) -> JobRecord {
        self.inner.store.put(&record);
        jobs.order.push_back(record.id.clone());
        jobs.queue.push_back(record.id.clone());
        jobs.by_id
            .insert(record.id.clone(), Job::new(record.clone(), spec));
        self.evict(jobs);
        record
    }

    /// Forgets the oldest finished jobs beyond the history limit.
    fn evict(&self, jobs: &mut Jobs) {
        let mut excess = jobs
            .order
            .len()
            .saturating_sub(self.inner.capacity.history_limit);
        let mut kept = VecDeque::with_capacity(jobs.order.len());
        while let Some(id) = jobs.order.pop_front() {
            let finished = jobs
                .by_id
                .get(&id)
                .is_some_and(|job| lock(&job.record).state.is_terminal());
            if excess > 0 && finished {
                excess -= 1;
                jobs.by_id.remove(&id);
                self.inner.store.delete(&id);
            } else {
                kept.push_back(id);
            }
        }
        jobs.order = kept;
    }

    /// Cancels a queued job at once, or asks a running one to stop (it ends `cancelled`).
    pub(crate) fn cancel(&self, id: &str) -> Result<JobRecord, CancelError> {
        let mut jobs = lock(&self.inner.jobs);
        let job = jobs.by_id.get(id).cloned().ok_or(CancelError::NotFound)?;
        let state = lock(&job.record).state;
        match state {
            JobState::Queued => {
                jobs.queue.retain(|queued| queued != id);
                drop(jobs);
                let record = job.update(|r| {
                    r.state = JobState::Cancelled;
                    r.cancel_requested = true;
                    r.finished_at = Some(Utc::now());
                });
                self.inner.metrics.sync_finished(JobState::Cancelled);
                self.inner.store.put(&record);
                Ok(record)
            }
            JobState::Running => {
                drop(jobs);
                job.cancel.cancel();
                let record = job.update(|r| r.cancel_requested = true);
                self.inner.store.put(&record);
                Ok(record)
            }
            _ => Err(CancelError::Finished(Box::new(job.snapshot()))),
        }
    }

    /// Starts queued jobs while there is room, skipping those whose destination is busy.
    fn dispatch(&self) {
        let mut jobs = lock(&self.inner.jobs);
        while !jobs.shutting_down && jobs.running.len() < self.inner.capacity.max_running {
            let next = jobs.queue.iter().position(|id| {
                jobs.by_id
                    .get(id)
                    .is_some_and(|job| !jobs.running.contains_key(&job.key()))
            });
            let Some(position) = next else { break };
            let Some(id) = jobs.queue.remove(position) else {
                break;
            };
            let Some(job) = jobs.by_id.get(&id).cloned() else {
                continue;
            };
            jobs.running.insert(job.key(), id);
            let record = job.update(|r| {
                r.state = JobState::Running;
                r.started_at = Some(Utc::now());
            });
            self.inner.store.put(&record);
            let manager = self.clone();
            let mut tasks = lock(&self.inner.tasks);
            // Reap finished tasks so the set does not grow with the history.
            while let Some(done) = tasks.try_join_next() {
                if let Err(err) = done {
                    tracing::error!(error = %err, "a job task ended abnormally");
                }
            }
            tasks.spawn(async move { manager.run(job).await });
        }
    }

    async fn run(self, job: Arc<Job>) {
        let spec = lock(&job.spec).clone();
        let id = lock(&job.record).id.clone();
        let progress: Arc<dyn SyncProgress> = Arc::new(JobProgress {
            job: job.clone(),
            metrics: self.inner.metrics.clone(),
        });
        let span =
            tracing::info_span!("sync_job", job = %id, demarche = spec.demarche, dest = %spec.dest);
        tracing::info!(parent: &span, "sync job started");
        let key = crate::seda_jobs::lock_key(&spec);
        let run = crate::seda_jobs::run(&self.inner.pipeline, spec, progress, job.cancel.clone())
            .instrument(span.clone());
        let outcome = match AssertUnwindSafe(run).catch_unwind().await {
            Ok(outcome) => outcome,
            Err(_) => Err(PipelineError::new(
                PipelineErrorKind::Internal,
                "the sync task panicked",
            )),
        };
        let record = job.update(|r| finish(r, outcome, job.cancel.is_cancelled()));
        tracing::info!(parent: &span, state = record.state.as_str(), "sync job finished");
        self.inner.metrics.sync_finished(record.state);
        self.inner.store.put(&record);
        lock(&self.inner.jobs).running.remove(&key);
        self.dispatch();
    }

    /// Stops everything: no new job starts, queued jobs are cancelled, running ones are asked
    /// to stop, and this returns once their tasks have ended and the history is written.
    pub(crate) async fn shutdown(&self) {
        let queued: Vec<Arc<Job>> = {
            let mut jobs = lock(&self.inner.jobs);
            jobs.shutting_down = true;
            let queue = std::mem::take(&mut jobs.queue);
            for id in jobs.running.values() {
                if let Some(job) = jobs.by_id.get(id) {
                    job.cancel.cancel();
                }
            }
            queue
                .iter()
                .filter_map(|id| jobs.by_id.get(id).cloned())
                .collect()
        };
        for job in queued {
            let record = job.update(|r| {
                r.state = JobState::Cancelled;
                r.finished_at = Some(Utc::now());
                r.error = Some(JobError {
                    code: "shutdown".into(),
                    message: "the service stopped before the job started".into(),
                });
            });
            self.inner.metrics.sync_finished(JobState::Cancelled);
            self.inner.store.put(&record);
        }
        drain(&self.inner.tasks).await;
        self.inner.store.flush().await;
    }
}

fn find_active(jobs: &Jobs, key: &(u64, String)) -> Option<Arc<Job>> {
    if let Some(id) = jobs.running.get(key) {
        return jobs.by_id.get(id).cloned();
    }
    jobs.queue
        .iter()
        .filter_map(|id| jobs.by_id.get(id))
        .find(|job| job.key() == *key)
        .cloned()
}

fn spec_of(record: &JobRecord, jobs: usize) -> SyncSpec {
    SyncSpec {
        demarche: record.demarche,
        dest: record.dest.clone(),
        since: record.since,
        include: record.include.clone(),
        dossiers: record.dossiers.clone(),
        jobs,
        // Breaking a live lease is a decision about that moment, not kept across a restart.
        break_lease: false,
        layout: record.layout.clone(),
        data_layout: record.data_layout.clone(),
        no_data: record.no_data,
        seda: record.seda.clone(),
    }
}

/// The terminal state of a job from the pipeline's answer.
fn finish(
    record: &mut JobRecord,
    outcome: Result<SyncOutcome, PipelineError>,
    cancel_requested: bool,
) {
    record.finished_at = Some(Utc::now());
    match outcome {
        Ok(outcome) => {
            record.counters = outcome.counters;
            if let (Some(seda), Some(result)) = (&mut record.seda, outcome.seda) {
                seda.result = Some(result);
            }
            if !outcome.failures.is_empty() {
                record.failures = outcome
                    .failures
                    .into_iter()
                    .take(MAX_FAILURES_KEPT)
                    .collect();
            }
            record.state = if outcome.cancelled {
                JobState::Cancelled
            } else if outcome.unsuccessful || record.counters.files_failed > 0 {
                JobState::Failed
            } else {
                JobState::Succeeded
            };
            if record.state == JobState::Failed {
                record.error = Some(unsuccessful(record, &outcome.warnings));
            }
        }
        Err(err)
            if err.kind == PipelineErrorKind::Cancelled
                || (cancel_requested && record.state == JobState::Running) =>
        {
            record.state = JobState::Cancelled;
            if err.kind != PipelineErrorKind::Cancelled {
                record.error = Some(JobError {
                    code: err.kind.code().into(),
                    message: err.message,
                });
            }
        }
        Err(err) => {
            record.state = JobState::Failed;
            record.error = Some(JobError {
                code: err.kind.code().into(),
                message: err.message,
            });
        }
    }
}

/// Why a finished run is `failed`: its failed files, or else what made it incomplete (its
/// first warning, e.g. a webhook's dossier DS no longer has), never a bare "`0` files".
fn unsuccessful(record: &JobRecord, warnings: &[String]) -> JobError {
    let failed = record.counters.files_failed;
    match (failed, warnings) {
        (0, [first, rest @ ..]) => JobError {
            code: "incomplete".into(),
            message: match rest.len() {
                0 => format!("the run is incomplete: {first}"),
                more => format!("the run is incomplete: {first} (and `{more}` more warnings)"),
            },
        },
        _ => JobError {
            code: "files_failed".into(),
            message: match record.kind {
                JobKind::Sync => format!("`{failed}` files could not be stored"),
                JobKind::Seda => format!("`{failed}` dossiers could not be packaged"),
            },
        },
    }
}

#[cfg(test)]
mod tests;

/// A queued record of `spec`.
pub(crate) fn new_record(spec: &SyncSpec, trigger: Trigger) -> JobRecord {
    JobRecord {
        id: uuid::Uuid::new_v4().to_string(),
        kind: match spec.seda {
            Some(_) => JobKind::Seda,
            None => JobKind::Sync,
        },
        state: JobState::Queued,
        demarche: spec.demarche,
        dest: spec.dest.clone(),
        since: spec.since,
        include: spec.include.clone(),
        dossiers: spec.dossiers.clone(),
        layout: spec.layout.clone(),
        data_layout: spec.data_layout.clone(),
        no_data: spec.no_data,
        trigger,
        schedule: None,
        created_at: Utc::now(),
        started_at: None,
        finished_at: None,
        cancel_requested: false,
        runner: None,
        history: Vec::new(),
        counters: Counters::default(),
        failures: Vec::new(),
        error: None,
        seda: spec.seda.clone(),
    }
}

/// The sync a webhook delivery asks for: the named dossiers (none: the whole démarche), defaults.
pub(crate) fn webhook_spec(demarche: u64, dest: &str, dossiers: &[u64], jobs: usize) -> SyncSpec {
    SyncSpec {
        demarche,
        dest: dest.to_owned(),
        since: Since::Auto,
        include: Vec::new(),
        dossiers: dossiers.to_vec(),
        jobs,
        break_lease: false,
        // What the destination was last synced with (see `SyncOptions::layout`).
        layout: None,
        data_layout: None,
        no_data: None,
        seda: None,
    }
}

/// Awaits every task of `tasks`, including those started while it waits (a job's end may
/// start the next one), logging the ones that ended abnormally.
pub(crate) async fn drain(tasks: &Mutex<JoinSet<()>>) {
    loop {
        let mut taken = std::mem::take(&mut *lock(tasks));
        if taken.is_empty() {
            return;
        }
        while let Some(done) = taken.join_next().await {
            if let Err(err) = done {
                tracing::error!(error = %err, "a job task ended abnormally");
            }
        }
    }
}
