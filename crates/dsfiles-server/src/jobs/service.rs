//! What the handlers see of jobs: the embedded manager ([`JobManager`]: one replica, its
//! history in files under `--state-dir`) or the shared one ([`SharedJobs`]: replicas on one
//! PostgreSQL database, `--database-url`).
//!
//! An enum, not a trait over two stores: the embedded manager holds its jobs in memory and
//! writes its history behind them, the shared one asks the database, which decides (who runs
//! what, the 409). One interface over both stores would hide where the truth is; one over both
//! managers keeps each store honest and the handlers unaware.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::shared::SharedJobs;
use super::{CancelError, Job, JobManager, JobMessage, SubmitError};
use crate::Error;
use crate::api::{JobRecord, JobState, SyncSpec, Trigger};
use crate::pipeline::Pipeline;

/// The job manager of this service.
#[derive(Clone, Debug)]
pub(crate) enum JobService {
    Local(JobManager),
    Shared(SharedJobs),
}

/// A job followed by an SSE stream.
#[derive(Debug)]
pub(crate) enum Watch {
    /// The job runs (or ran) here: its events as they happen.
    Local {
        receiver: broadcast::Receiver<JobMessage>,
        job: Arc<Job>,
    },
    /// The job runs elsewhere: its row, read every `poll`, as `status` events when it changed.
    Poll {
        jobs: SharedJobs,
        last: Box<JobRecord>,
    },
}

impl JobService {
    pub(crate) fn pipeline(&self) -> &Arc<dyn Pipeline> {
        match self {
            JobService::Local(m) => m.pipeline(),
            JobService::Shared(s) => s.pipeline(),
        }
    }

    pub(crate) fn sync_jobs(&self) -> usize {
        match self {
            JobService::Local(m) => m.sync_jobs(),
            JobService::Shared(s) => s.sync_jobs(),
        }
    }

    pub(crate) async fn submit(
        &self,
        spec: SyncSpec,
        trigger: Trigger,
    ) -> Result<JobRecord, SubmitError> {
        match self {
            JobService::Local(m) => m.submit(spec, trigger),
            JobService::Shared(s) => s.submit(spec, trigger).await,
        }
    }

    pub(crate) async fn enqueue_dossiers(
        &self,
        demarche: u64,
        dest: &str,
        dossiers: &[u64],
    ) -> Result<JobRecord, SubmitError> {
        match self {
            JobService::Local(m) => m.enqueue_dossiers(demarche, dest, dossiers),
            JobService::Shared(s) => s.enqueue_dossiers(demarche, dest, dossiers).await,
        }
    }

    pub(crate) async fn cancel(&self, id: &str) -> Result<JobRecord, CancelError> {
        match self {
            JobService::Local(m) => m.cancel(id),
            JobService::Shared(s) => s.cancel(id).await,
        }
    }

    /// The queued or running job on `demarche` and `dest` (on any replica when shared).
    pub(crate) async fn active(
        &self,
        demarche: u64,
        dest: &str,
    ) -> Result<Option<JobRecord>, Error> {
        match self {
            JobService::Local(m) => Ok(m.active(demarche, dest)),
            JobService::Shared(s) => s.active(demarche, dest).await,
        }
    }

    pub(crate) async fn get(&self, id: &str) -> Result<Option<JobRecord>, Error> {
        match self {
            JobService::Local(m) => Ok(m.get(id).map(|job| job.snapshot())),
            JobService::Shared(s) => s.get(id).await,
        }
    }

    pub(crate) async fn recent(
        &self,
        limit: usize,
        state: Option<JobState>,
        schedule: Option<&str>,
    ) -> Result<Vec<JobRecord>, Error> {
        match self {
            JobService::Local(m) => Ok(m.recent(limit, state, schedule)),
            JobService::Shared(s) => s.recent(limit, state, schedule).await,
        }
    }

    pub(crate) async fn count_by_state(&self) -> Result<[u64; 5], Error> {
        match self {
            JobService::Local(m) => Ok(m.count_by_state()),
            JobService::Shared(s) => s.count_by_state().await,
        }
    }

    /// The job's current record and what follows it, `None` when there is no such job.
    pub(crate) async fn watch(&self, id: &str) -> Result<Option<(JobRecord, Watch)>, Error> {
        let local = match self {
            JobService::Local(m) => m.get(id),
            JobService::Shared(s) => s.local(id),
        };
        if let Some(job) = local {
            let (first, receiver) = job.subscribe();
            return Ok(Some((first, Watch::Local { receiver, job })));
        }
        let JobService::Shared(jobs) = self else {
            return Ok(None);
        };
        let Some(first) = jobs.get(id).await? else {
            return Ok(None);
        };
        let last = Box::new(first.clone());
        let watch = Watch::Poll {
            jobs: jobs.clone(),
            last,
        };
        Ok(Some((first, watch)))
    }

    pub(crate) async fn shutdown(&self) {
        match self {
            JobService::Local(m) => m.shutdown().await,
            JobService::Shared(s) => s.shutdown().await,
        }
    }
}

impl Watch {
    /// The next message; `None` when nothing more will come (the job is gone).
    pub(crate) async fn next(&mut self) -> Option<JobMessage> {
        match self {
            Watch::Local { receiver, job } => match receiver.recv().await {
                Ok(message) => Some(message),
                // Too slow to follow every event: resume from a fresh status.
                Err(broadcast::error::RecvError::Lagged(_)) => Some(status(&job.snapshot())),
                Err(broadcast::error::RecvError::Closed) => None,
            },
            Watch::Poll { jobs, last } => loop {
                tokio::time::sleep(jobs.poll_every()).await;
                match jobs.get(&last.id).await {
                    Ok(Some(record))
                        if serde_json::to_value(&record).ok()
                            != serde_json::to_value(&**last).ok() =>
                    {
                        **last = record;
                        return Some(status(last));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => return None,
                    Err(err) => tracing::warn!(error = %err, "cannot read the job; trying again"),
                }
            },
        }
    }
}

/// A `status` message carrying `record`.
pub(crate) fn status(record: &JobRecord) -> JobMessage {
    JobMessage {
        kind: "status",
        data: serde_json::to_string(record).unwrap_or_default().into(),
        terminal: record.state.is_terminal(),
    }
}
