//! The job manager of replicas sharing a PostgreSQL database (`--database-url`): the database
//! ([`JobDb`], `postgres.rs`) holds every job, this replica runs the ones it claims.
//!
//! **Invariant:** a replica runs a job only while it holds its lease, and writes a job's
//! progress or end only under its own name (`postgres.rs` checks `runner` in every write).
//! Hence:
//! - a claim loop takes jobs while fewer than `max_running` run here: at once when this
//!   replica queued one, otherwise every `poll` (jobs queued by other replicas, leases that
//!   expired);
//! - each running job has a keeper beside it: every `poll` it writes the job's record when it
//!   changed (so `GET` and SSE on any replica see progress at most a second late) and every
//!   `renew` it extends the lease; both read `cancel_requested`. A lost lease (this replica
//!   was cut off long enough for another to resume the job) cancels the local run and nothing
//!   of it is written. Cut off from the database, the keeper cannot learn that: it stops the
//!   run itself once a whole lease has passed since the last renewal it *asked* for and got,
//!   which is no later than when the database lets another replica claim the job;
//! - at shutdown, running jobs are cancelled locally (the sync's crash safety keeps the
//!   destination consistent) and *released*, not ended: their lease is expired at once so
//!   another replica resumes them (a rolling restart does not cancel syncs).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::postgres::{Cancel, Claimed, Inserted, JobDb, Lease};
use super::{
    CancelError, Capacity, Job, JobProgress, SubmitError, drain, finish, lock, new_record, spec_of,
    webhook_spec,
};
use crate::Error;
use crate::api::{Counters, JobRecord, JobState, MAX_DOSSIERS, SyncSpec, Trigger};
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineError, PipelineErrorKind, SyncProgress};

/// How often progress is written and other replicas' work is looked for.
pub(crate) const POLL_EVERY: Duration = Duration::from_secs(1);

/// The periods of the claim loop and the keepers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timings {
    pub poll: Duration,
    pub renew: Duration,
    /// How long a claim or renewal holds a job (the database's lease).
    pub lease: Duration,
}

/// Queues jobs in the shared database and runs the ones this replica claims.
#[derive(Clone, Debug)]
pub(crate) struct SharedJobs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: JobDb,
    pipeline: Arc<dyn Pipeline>,
    metrics: Arc<Metrics>,
    capacity: Capacity,
    timings: Timings,
    /// Jobs running here, by id.
    running: Mutex<HashMap<String, Arc<Job>>>,
    tasks: Mutex<JoinSet<()>>,
    wake: Notify,
    stop: CancellationToken,
    stopping: AtomicBool,
}

impl SharedJobs {
    /// Starts the claim loop (call inside a Tokio runtime).
    pub(crate) fn start(
        db: JobDb,
        pipeline: Arc<dyn Pipeline>,
        metrics: Arc<Metrics>,
        capacity: Capacity,
        timings: Timings,
    ) -> SharedJobs {
        let jobs = SharedJobs {
            inner: Arc::new(Inner {
                db,
                pipeline,
                metrics,
                capacity,
                timings,
                running: Mutex::new(HashMap::new()),
                tasks: Mutex::new(JoinSet::new()),
                wake: Notify::new(),
                stop: CancellationToken::new(),
                stopping: AtomicBool::new(false),
            }),
        };
        let looping = jobs.clone();
        lock(&jobs.inner.tasks).spawn(async move { looping.claim_loop().await });
        jobs
    }

    pub(crate) fn pipeline(&self) -> &Arc<dyn Pipeline> {
        &self.inner.pipeline
    }

    pub(crate) fn sync_jobs(&self) -> usize {
        self.inner.capacity.sync_jobs
    }

    pub(crate) fn poll_every(&self) -> Duration {
        self.inner.timings.poll
    }

    pub(crate) fn replica(&self) -> &str {
        self.inner.db.replica()
    }

    /// The job running here, if it does (its record is fresher than the database's).
    pub(crate) fn local(&self, id: &str) -> Option<Arc<Job>> {
        lock(&self.inner.running).get(id).cloned()
    }

    pub(crate) async fn get(&self, id: &str) -> Result<Option<JobRecord>, Error> {
        match self.local(id) {
            Some(job) => Ok(Some(job.snapshot())),
            None => self.inner.db.get(id).await,
        }
    }

    pub(crate) async fn recent(
        &self,
        limit: usize,
        state: Option<JobState>,
        schedule: Option<&str>,
    ) -> Result<Vec<JobRecord>, Error> {
        self.inner.db.recent(limit, state, schedule).await
    }

    pub(crate) async fn count_by_state(&self) -> Result<[u64; 5], Error> {
        self.inner.db.count_by_state().await
    }

    /// The queued or running job on `demarche` and `dest`, on any replica.
    pub(crate) async fn active(
        &self,
        demarche: u64,
        dest: &str,
    ) -> Result<Option<JobRecord>, Error> {
        self.inner.db.active(demarche, dest).await
    }

    /// Queues a sync unless one on the same démarche and destination is queued or running on
    /// any replica, or `max_queued` jobs wait across replicas.
    pub(crate) async fn submit(
        &self,
        spec: SyncSpec,
        trigger: Trigger,
    ) -> Result<JobRecord, SubmitError> {
        if self.inner.stopping.load(Ordering::SeqCst) {
            return Err(SubmitError::ShuttingDown);
        }
        let max_queued = self.inner.capacity.max_queued;
        let [queued, ..] = self.count_by_state().await.map_err(unavailable)?;
        if queued >= max_queued as u64 {
            return Err(SubmitError::QueueFull { max_queued });
        }
        let record = new_record(&spec, trigger);
        match self.inner.db.insert(&record, false).await {
            Ok(Inserted::Queued) => {
                self.inner.wake.notify_one();
                Ok(record)
            }
            Ok(Inserted::Conflict(existing)) => Err(SubmitError::Conflict(existing)),
            Err(err) => Err(unavailable(err)),
        }
    }

    /// Webhook path (see `JobManager::enqueue_dossiers`): the queued job of the destination
    /// absorbs `dossiers`, or a follow-up is queued, on whichever replica it was queued.
    pub(crate) async fn enqueue_dossiers(
        &self,
        demarche: u64,
        dest: &str,
        dossiers: &[u64],
    ) -> Result<JobRecord, SubmitError> {
        if self.inner.stopping.load(Ordering::SeqCst) {
            return Err(SubmitError::ShuttingDown);
        }
        // Each round loses only to another replica changing the same row: a few suffice.
        for _ in 0..5 {
            if let Some(record) = self.absorb(demarche, dest, dossiers).await? {
                return Ok(record);
            }
            let spec = webhook_spec(demarche, dest, dossiers, self.sync_jobs());
            let record = new_record(&spec, Trigger::Webhook);
            if let Inserted::Queued = self
                .inner
                .db
                .insert(&record, true)
                .await
                .map_err(unavailable)?
            {
                self.inner.wake.notify_one();
                return Ok(record);
            }
        }
        Err(SubmitError::Unavailable(format!(
            "démarche `{demarche}` into `{dest}`: the queued job kept changing"
        )))
    }

    /// Merges `dossiers` into the queued job of the destination; `None` when there is none
    /// (or it started meanwhile).
    async fn absorb(
        &self,
        demarche: u64,
        dest: &str,
        dossiers: &[u64],
    ) -> Result<Option<JobRecord>, SubmitError> {
        let db = &self.inner.db;
        let Some(mut record) = db.queued(demarche, dest).await.map_err(unavailable)? else {
            return Ok(None);
        };
        merge_dossiers(&mut record.dossiers, dossiers);
        let updated = db.update_queued(&record).await.map_err(unavailable)?;
        Ok(updated.then_some(record))
    }

    /// Cancels job `id` wherever it runs.
    pub(crate) async fn cancel(&self, id: &str) -> Result<JobRecord, CancelError> {
        match self.inner.db.cancel(id).await {
            Ok(Cancel::Cancelled(record)) => {
                self.inner.metrics.sync_finished(JobState::Cancelled);
                Ok(*record)
            }
            Ok(Cancel::Requested(record)) => {
                if let Some(job) = self.local(id) {
                    job.cancel.cancel();
                    return Ok(job.update(|r| r.cancel_requested = true));
                }
                Ok(*record)
            }
            Ok(Cancel::Finished(record)) => Err(CancelError::Finished(record)),
            Ok(Cancel::NotFound) => Err(CancelError::NotFound),
            Err(err) => Err(CancelError::Unavailable(err.to_string())),
        }
    }

    async fn claim_loop(self) {
        loop {
            self.claim_while_room().await;
            tokio::select! {
                () = self.inner.stop.cancelled() => return,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(self.inner.timings.poll) => {}
            }
        }
    }

    async fn claim_while_room(&self) {
        while !self.inner.stop.is_cancelled()
            && lock(&self.inner.running).len() < self.inner.capacity.max_running
        {
            // Asked before the claim: the lease cannot end earlier than `asked + lease`.
            let asked = Instant::now();
            match self.inner.db.claim().await {
                Ok(Some(claimed)) => self.launch(claimed, asked + self.inner.timings.lease),
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot claim jobs; trying again");
                    return;
                }
            }
        }
    }

    fn launch(&self, claimed: Claimed, held_until: Instant) {
        let spec = spec_of(&claimed.record, self.sync_jobs());
        let id = claimed.record.id.clone();
        match &claimed.resumed_from {
            Some(dead) => {
                tracing::warn!(job = %id, previous = %dead, "resuming a job whose runner's lease expired")
            }
            None => tracing::debug!(job = %id, "claimed a job"),
        }
        let job = Job::new(claimed.record, spec);
        if claimed.cancel_requested {
            job.cancel.cancel();
        }
        lock(&self.inner.running).insert(id, job.clone());
        let manager = self.clone();
        let mut tasks = lock(&self.inner.tasks);
        while let Some(done) = tasks.try_join_next() {
            if let Err(err) = done {
                tracing::error!(error = %err, "a job task ended abnormally");
            }
        }
        tasks.spawn(async move { manager.run(job, held_until).await });
    }

    async fn run(self, job: Arc<Job>, held_until: Instant) {
        let spec = lock(&job.spec).clone();
        let id = job.snapshot().id;
        let span = tracing::info_span!("sync_job", job = %id, demarche = spec.demarche, dest = %spec.dest, replica = %self.replica());
        let progress: Arc<dyn SyncProgress> = Arc::new(JobProgress {
            job: job.clone(),
            metrics: self.inner.metrics.clone(),
        });
        let lost = AtomicBool::new(false);
        let sync = crate::seda_jobs::run(&self.inner.pipeline, spec, progress, job.cancel.clone())
            .instrument(span.clone());
        let outcome = tokio::select! {
            outcome = std::panic::AssertUnwindSafe(sync).catch_unwind() => outcome,
            never = self.keep(&job, held_until, &lost) => match never {},
        };
        let outcome = outcome.unwrap_or_else(|_| {
            Err(PipelineError::new(
                PipelineErrorKind::Internal,
                "the sync task panicked",
            ))
        });
        self.conclude(&job, outcome, lost.load(Ordering::SeqCst))
            .instrument(span)
            .await;
        lock(&self.inner.running).remove(&id);
        self.inner.wake.notify_one();
    }

    /// Writes the end of a run: nothing when the lease was lost, released when shutdown
    /// interrupted it, else its terminal state.
    async fn conclude(
        &self,
        job: &Job,
        outcome: Result<crate::pipeline::SyncOutcome, PipelineError>,
        lost: bool,
    ) {
        if lost {
            tracing::warn!("this replica lost the job's lease: another one runs it now");
            return;
        }
        let mut ended = job.snapshot();
        finish(&mut ended, outcome, job.cancel.is_cancelled());
        let interrupted = ended.state == JobState::Cancelled && !ended.cancel_requested;
        if interrupted && self.inner.stopping.load(Ordering::SeqCst) {
            self.release(job).await;
            return;
        }
        // Written first, then shown: whoever sees the end here (`GET`, SSE) finds it stored.
        let written = self.inner.db.finish(&mut ended).await;
        let record = job.update(|r| *r = ended);
        self.inner.metrics.sync_finished(record.state);
        match written {
            Ok(true) => tracing::info!(state = record.state.as_str(), "sync job finished"),
            Ok(false) => {
                tracing::warn!("the job's lease was lost before it ended; its end is not written")
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot write the end of the job; its lease will expire and another replica runs it again")
            }
        }
        if let Err(err) = self.inner.db.prune(self.inner.capacity.history_limit).await {
            tracing::warn!(error = %err, "cannot forget old jobs");
        }
    }

    async fn release(&self, job: &Job) {
        match self.inner.db.release(&job.snapshot()).await {
            Ok(_) => tracing::info!("job released at shutdown; another replica resumes it"),
            Err(err) => {
                tracing::error!(error = %err, "cannot release the job; its lease will expire");
            }
        }
    }

    /// Beside a running job, forever: writes its progress every `poll` when it changed, renews
    /// its lease every `renew`, and cancels the run when asked or when the lease is lost — or
    /// may be: when no renewal succeeded before `held_until`, another replica may already
    /// run the job, so this one stops without waiting for the database to say so.
    async fn keep(
        &self,
        job: &Job,
        mut held_until: Instant,
        lost: &AtomicBool,
    ) -> std::convert::Infallible {
        let timings = self.inner.timings;
        let mut written = job.snapshot();
        let mut since_renewal = Duration::ZERO;
        loop {
            tokio::time::sleep(timings.poll).await;
            since_renewal += timings.poll;
            let record = job.snapshot();
            if counters_changed(&written, &record) {
                let saved = self.inner.db.save(&record).await;
                written = record.clone();
                self.obey(job, saved, lost);
            }
            if since_renewal >= timings.renew {
                since_renewal = Duration::ZERO;
                let asked = Instant::now();
                let renewed = self.inner.db.renew(&record.id).await;
                if matches!(renewed, Ok(Lease::Held { .. })) {
                    held_until = asked + timings.lease;
                }
                self.obey(job, renewed, lost);
            }
            if Instant::now() >= held_until && !lost.swap(true, Ordering::SeqCst) {
                tracing::error!(
                    "no lease renewal succeeded for a whole lease: stopping the job here, another replica may run it"
                );
                job.cancel.cancel();
            }
        }
    }

    /// Acts on what the database said about the lease.
    fn obey(&self, job: &Job, lease: Result<Lease, Error>, lost: &AtomicBool) {
        match lease {
            Ok(Lease::Held {
                cancel_requested: true,
            }) if !job.cancel.is_cancelled() => {
                tracing::info!("cancel requested from another replica");
                job.update(|r| r.cancel_requested = true);
                job.cancel.cancel();
            }
            Ok(Lease::Held { .. }) => {}
            Ok(Lease::Lost) => {
                lost.store(true, Ordering::SeqCst);
                job.cancel.cancel();
            }
            // The lease lasts four renewals: a failed one is retried at the next, until
            // `held_until` (see `keep`).
            Err(err) => tracing::warn!(error = %err, "cannot reach the job database"),
        }
    }

    /// Stops claiming, cancels the jobs running here and releases them to other replicas,
    /// and returns once their tasks have ended.
    pub(crate) async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.stop.cancel();
        for job in lock(&self.inner.running).values() {
            job.cancel.cancel();
        }
        drain(&self.inner.tasks).await;
    }
}

use futures::FutureExt as _;

fn unavailable(err: Error) -> SubmitError {
    SubmitError::Unavailable(err.to_string())
}

fn counters_changed(a: &JobRecord, b: &JobRecord) -> bool {
    counters_key(&a.counters) != counters_key(&b.counters)
        || a.failures.len() != b.failures.len()
        || a.cancel_requested != b.cancel_requested
}

fn counters_key(c: &Counters) -> [u64; 9] {
    [
        c.dossiers,
        c.files_planned,
        c.files_skipped,
        c.files_stored,
        c.files_failed,
        c.bytes_planned,
        c.bytes_downloaded,
        c.bytes_stored,
        c.retries,
    ]
}

/// Adds `more` to a queued job's dossiers; too many to name: the whole démarche (empty list)
/// instead. An empty list already means the whole démarche.
pub(crate) fn merge_dossiers(dossiers: &mut Vec<u64>, more: &[u64]) {
    if dossiers.is_empty() {
        return;
    }
    for number in more {
        if !dossiers.contains(number) {
            dossiers.push(*number);
        }
    }
    if dossiers.len() > MAX_DOSSIERS {
        dossiers.clear();
    }
}
