//! The scheduler: one owned task per service that, every [`ROUND`], learns how the schedules'
//! last runs ended ([`super::account`]) and starts the runs that are due ([`super::due`]).
//!
//! With the embedded store, this task is the only one that fires ticks, and a tick's job is
//! queued before the tick moves; with PostgreSQL every replica runs it, and the database
//! decides which one fires a tick (`jobs/postgres/schedules.rs`). Each replica only *queues*
//! the run; whichever replica claims the job runs it.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::due::{Action, Decision, decide};
use super::{LocalSchedules, Schedules, account, awaiting_end, run_record};
use crate::api::{JobState, Schedule};
use crate::jobdb::{Fired, JobDb};
use crate::jobs::{JobManager, JobService, SubmitError, lock};

/// How often the scheduler looks at its schedules: the precision of a tick.
pub(crate) const ROUND: Duration = Duration::from_secs(1);

/// The scheduler task of a service.
#[derive(Debug)]
pub(crate) struct Scheduler {
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Scheduler {
    /// Starts the task (call inside a Tokio runtime); it ends when `stop` fires.
    pub(crate) fn start(
        schedules: Schedules,
        jobs: JobService,
        max_queued: usize,
        stop: CancellationToken,
    ) -> Scheduler {
        let task = tokio::spawn(async move {
            loop {
                round(&schedules, &jobs, max_queued, Utc::now()).await;
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(ROUND) => {}
                }
            }
        });
        Scheduler {
            task: Mutex::new(Some(task)),
        }
    }

    /// Waits for the task to end (after `stop` fired).
    pub(crate) async fn stopped(&self) {
        let task = lock(&self.task).take();
        if let Some(task) = task
            && let Err(err) = task.await
        {
            tracing::error!(error = %err, "the scheduler ended abnormally");
        }
    }
}

/// One look at every schedule.
async fn round(schedules: &Schedules, jobs: &JobService, max_queued: usize, now: DateTime<Utc>) {
    let list = match schedules.list().await {
        Ok(list) => list,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the schedules; trying again");
            return;
        }
    };
    for schedule in list {
        let result = match (schedules, jobs) {
            (Schedules::Local(store), JobService::Local(manager)) => {
                local(store, manager, schedule, now).await
            }
            (Schedules::Shared(db), JobService::Shared(_)) => {
                shared(db, schedule, max_queued).await
            }
            _ => Err("the schedules and the jobs are not in the same store".to_owned()),
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, "cannot run a schedule; trying again");
        }
    }
}

/// The embedded store: account the last run, then fire the tick if due.
async fn local(
    store: &LocalSchedules,
    manager: &JobManager,
    mut schedule: Schedule,
    now: DateTime<Utc>,
) -> Result<(), String> {
    if awaiting_end(&schedule) {
        let last_job = schedule.last_job.clone();
        let job = last_job
            .as_deref()
            .and_then(|id| manager.get(id))
            .map(|j| j.snapshot());
        let before = schedule.last_state;
        account(&mut schedule, job.as_ref());
        if schedule.last_state != before {
            store
                .update(
                    &schedule.name,
                    |s| s.last_job == last_job && s.last_state == before,
                    |s| account(s, job.as_ref()),
                )
                .map_err(|e| e.to_string())?;
        }
    }
    if !schedule.enabled {
        return Ok(());
    }
    let active = awaiting_end(&schedule);
    let decision = decide(schedule.every(), schedule.next_due_at, now, active);
    if decision.action == Action::Wait && decision.next_due == schedule.next_due_at {
        return Ok(());
    }
    let due = schedule.next_due_at;
    let Some(fired) = fire_local(manager, &schedule, decision) else {
        return Ok(());
    };
    store
        .update(&schedule.name, |s| s.next_due_at == due, |s| fired.apply(s))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// What firing a tick did, to be written into the schedule.
enum LocalFired {
    /// No run: the tick moves (`skipped`: counted as a skipped tick).
    Moved {
        next_due: DateTime<Utc>,
        skipped: bool,
    },
    Started {
        next_due: DateTime<Utc>,
        job: String,
        at: DateTime<Utc>,
    },
}

impl LocalFired {
    fn apply(self, s: &mut Schedule) {
        match self {
            LocalFired::Moved { next_due, skipped } => {
                s.next_due_at = next_due;
                s.skipped_ticks += u64::from(skipped);
            }
            LocalFired::Started { next_due, job, at } => {
                s.next_due_at = next_due;
                s.last_job = Some(job);
                s.last_state = Some(JobState::Queued);
                s.last_started_at = Some(at);
            }
        }
    }
}

/// Acts on `decision` (`None`: nothing done, try again next round).
fn fire_local(manager: &JobManager, schedule: &Schedule, decision: Decision) -> Option<LocalFired> {
    let next_due = decision.next_due;
    let skip = |why: &str| {
        skipped(schedule, decision, why);
        Some(LocalFired::Moved {
            next_due,
            skipped: true,
        })
    };
    match decision.action {
        Action::Wait => {
            return Some(LocalFired::Moved {
                next_due,
                skipped: false,
            });
        }
        Action::Skip => return skip("its previous run is still active"),
        Action::Start => {}
    }
    let spec = schedule.spec(manager.sync_jobs());
    match manager.submit_record(spec.clone(), run_record(schedule, &spec)) {
        Ok(record) => {
            started(schedule, decision, &record.id);
            let at = record.created_at;
            Some(LocalFired::Started {
                next_due,
                job: record.id,
                at,
            })
        }
        Err(SubmitError::Conflict(existing)) => skip(&format!(
            "job `{}` on the same démarche and destination is {}",
            existing.id,
            existing.state.as_str()
        )),
        Err(SubmitError::QueueFull { max_queued }) => {
            skip(&format!("`{max_queued}` syncs are already queued"))
        }
        Err(SubmitError::ShuttingDown | SubmitError::Unavailable(_)) => None,
    }
}

fn started(schedule: &Schedule, decision: Decision, job: &str) {
    tracing::info!(
        schedule = %schedule.name,
        job = %job,
        missed = decision.missed,
        next_due = %decision.next_due,
        "schedule started a run"
    );
}

fn skipped(schedule: &Schedule, decision: Decision, why: &str) {
    tracing::info!(
        schedule = %schedule.name,
        missed = decision.missed,
        next_due = %decision.next_due,
        "schedule tick skipped: {why}"
    );
}

/// PostgreSQL: the database accounts and fires, atomically; this logs what it did.
async fn shared(db: &JobDb, schedule: Schedule, max_queued: usize) -> Result<(), String> {
    if awaiting_end(&schedule) {
        db.account_schedule(&schedule)
            .await
            .map_err(|e| e.to_string())?;
    }
    // A first look by this replica's clock, so that a round costs no transaction per
    // schedule; the database's clock decides.
    let now = Utc::now();
    let may_be_due =
        now >= schedule.next_due_at || schedule.next_due_at > schedule.every().after(now);
    if !schedule.enabled || !may_be_due {
        return Ok(());
    }
    let fired = db
        .fire_schedule(&schedule.name, schedule.every(), max_queued)
        .await
        .map_err(|e| e.to_string())?;
    match fired {
        Fired::NotDue => {}
        Fired::Started { decision, job } => started(&schedule, decision, &job),
        Fired::Skipped { decision, why } => skipped(&schedule, decision, &why),
    }
    Ok(())
}
