//! Schedules: syncs the service starts on its own, every period (`[[schedules]]` in
//! `dsfiles.toml`, `PUT/GET/DELETE /v1/schedules/{name}`). A schedule's runs are ordinary
//! jobs (the same 409 and destination-lease rules as `POST /v1/syncs`) with trigger
//! `schedule` and the schedule's name in `schedule`, so `GET /v1/syncs?schedule=NAME` lists
//! them.
//!
//! **Invariant: one run per tick, never two at once.** When a run starts is decided by the
//! pure rule of [`due`] (missed ticks collapse into one run; a tick while the previous run is
//! queued or running is skipped). The tick is claimed atomically with the job it starts: in
//! the embedded store ([`store`], one replica) under the store's lock, by the one scheduler of
//! the process; with PostgreSQL (`jobs/postgres/schedules.rs`) in the transaction that inserts
//! the job row, on the schedule row locked `FOR UPDATE SKIP LOCKED` and only while its
//! `next_due_at` is past — so of two replicas due at once, one starts the run and the other
//! finds the tick already moved.
//!
//! Definitions are checked once, here ([`definition`]): the name by
//! [`crate::api::check_schedule_name`], the sync options by `SyncRequest::validate` and the
//! destination by the allow-list, through the same `routes::sync_spec` as `POST /v1/syncs`.

pub mod due;
pub(crate) mod routes;
mod run;
mod store;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::api::{
    JobRecord, JobState, MAX_SCHEDULES, Schedule, ScheduleRequest, SyncSpec, check_schedule_name,
};
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::jobdb::JobDb;
use crate::{Error, jobs};
use due::Every;

pub(crate) use run::Scheduler;
pub(crate) use store::LocalSchedules;

/// A checked schedule definition: what `PUT` or a `[[schedules]]` entry asks for.
#[derive(Debug, Clone)]
pub(crate) struct Definition {
    pub name: String,
    pub every: Every,
    pub enabled: bool,
    /// The sync of each run (destination canonical).
    pub spec: SyncSpec,
}

/// Checks `name` and `request` as `POST /v1/syncs` checks a sync.
pub(crate) fn definition(
    config: &ServerConfig,
    name: &str,
    request: &ScheduleRequest,
) -> Result<Definition, ApiError> {
    check_schedule_name(name).map_err(ApiError::invalid)?;
    let spec = crate::routes::sync_spec(config, &request.sync, config.sync_jobs)?;
    Ok(Definition {
        name: name.to_owned(),
        every: request.every,
        enabled: request.enabled,
        spec,
    })
}

/// Checks the file's `[[schedules]]`: valid definitions, names unique, at most
/// [`MAX_SCHEDULES`]. Errors name the schedule.
pub(crate) fn check_config(config: &ServerConfig) -> Result<(), Error> {
    if config.schedules.len() > MAX_SCHEDULES {
        return Err(Error::Config(format!(
            "`[[schedules]]` has `{}` entries; at most `{MAX_SCHEDULES}`",
            config.schedules.len()
        )));
    }
    let mut names = BTreeSet::new();
    for entry in &config.schedules {
        if !names.insert(entry.name.as_str()) {
            return Err(Error::Config(format!(
                "`[[schedules]]`: schedule `{}` is defined twice",
                entry.name
            )));
        }
        definition(config, &entry.name, &entry.request)
            .map_err(|e| Error::Config(format!("schedule `{}`: {}", entry.name, e.message())))?;
    }
    Ok(())
}

/// The file's `[[schedules]]`, checked (by [`check_config`] already, at validation).
pub(crate) fn config_definitions(config: &ServerConfig) -> Result<Vec<Definition>, Error> {
    config
        .schedules
        .iter()
        .map(|entry| {
            definition(config, &entry.name, &entry.request)
                .map_err(|e| Error::Config(format!("schedule `{}`: {}", entry.name, e.message())))
        })
        .collect()
}

/// The embedded store of `config.state_dir`, the file's schedules applied (start-up).
pub(crate) fn open_local(config: &ServerConfig) -> Result<Schedules, Error> {
    let store = std::sync::Arc::new(LocalSchedules::open(&config.state_dir)?);
    for def in config_definitions(config)? {
        applied(&def, store.put(&def, Utc::now()))?;
    }
    Ok(Schedules::Local(store))
}

/// Creates or replaces the file's schedules in `schedules` (start-up).
pub(crate) async fn apply_config(
    schedules: &Schedules,
    config: &ServerConfig,
) -> Result<(), Error> {
    for def in config_definitions(config)? {
        applied(&def, schedules.put(&def).await)?;
    }
    Ok(())
}

/// Logs a schedule of the config file applied, or says why it could not be.
fn applied(def: &Definition, put: Result<(Schedule, bool), PutError>) -> Result<(), Error> {
    match put {
        Ok((_, created)) => {
            tracing::info!(schedule = %def.name, created, "schedule of the config file applied");
            Ok(())
        }
        Err(PutError::TooMany) => Err(Error::Config(format!(
            "schedule `{}`: the service already keeps `{MAX_SCHEDULES}` schedules",
            def.name
        ))),
        Err(PutError::Store(err)) => Err(err),
    }
}

/// The schedule `def` makes of `existing` (none: a new one) at `now`.
///
/// - A new schedule is due at once: its first run starts at the scheduler's next round.
/// - Replacing one keeps its runs (last job, counters) and its tick, pulled back to
///   `now + every` when the new period is shorter; a config file applied again at each
///   start therefore does not reset the clock, nor run anything early.
pub(crate) fn apply(def: &Definition, existing: Option<Schedule>, now: DateTime<Utc>) -> Schedule {
    let spec = &def.spec;
    let defined = Schedule {
        name: def.name.clone(),
        every: def.every.to_string(),
        enabled: def.enabled,
        demarche: spec.demarche,
        dest: spec.dest.clone(),
        since: spec.since,
        include: spec.include.clone(),
        dossiers: spec.dossiers.clone(),
        layout: spec.layout.clone(),
        data_layout: spec.data_layout.clone(),
        no_data: spec.no_data,
        created_at: now,
        updated_at: now,
        next_due_at: now,
        last_job: None,
        last_state: None,
        last_started_at: None,
        last_success_at: None,
        last_duration_secs: None,
        failures: 0,
        skipped_ticks: 0,
    };
    let Some(old) = existing else {
        return defined;
    };
    Schedule {
        created_at: old.created_at,
        next_due_at: old.next_due_at.min(def.every.after(now)),
        last_job: old.last_job,
        last_state: old.last_state,
        last_started_at: old.last_started_at,
        last_success_at: old.last_success_at,
        last_duration_secs: old.last_duration_secs,
        failures: old.failures,
        skipped_ticks: old.skipped_ticks,
        ..defined
    }
}

/// Whether the scheduler still has to learn how the schedule's last run ended.
pub(crate) fn awaiting_end(schedule: &Schedule) -> bool {
    schedule.last_job.is_some() && schedule.last_state.is_some_and(|s| !s.is_terminal())
}

/// Records in `schedule` what became of its last run, `job` (`None`: forgotten by the
/// history). Counts a failure once: only on the change to `failed`.
pub(crate) fn account(schedule: &mut Schedule, job: Option<&JobRecord>) {
    let Some(job) = job else {
        schedule.last_state = None;
        return;
    };
    let was_terminal = schedule.last_state.is_some_and(JobState::is_terminal);
    schedule.last_state = Some(job.state);
    if was_terminal || !job.state.is_terminal() {
        return;
    }
    if let (Some(started), Some(finished)) = (job.started_at, job.finished_at) {
        schedule.last_duration_secs =
            Some((finished - started).num_milliseconds().max(0) as f64 / 1000.0);
    }
    match job.state {
        JobState::Succeeded => schedule.last_success_at = job.finished_at,
        JobState::Failed => schedule.failures += 1,
        _ => {}
    }
}

/// The job record of one run of `schedule`.
pub(crate) fn run_record(schedule: &Schedule, spec: &SyncSpec) -> JobRecord {
    let mut record = jobs::new_record(spec, crate::api::Trigger::Schedule);
    record.schedule = Some(schedule.name.clone());
    record
}

/// Where schedules are kept: beside the embedded job history, or in the job database.
#[derive(Debug, Clone)]
pub(crate) enum Schedules {
    Local(std::sync::Arc<LocalSchedules>),
    Shared(JobDb),
}

/// Why `PUT` stored nothing.
#[derive(Debug)]
pub(crate) enum PutError {
    /// [`MAX_SCHEDULES`] exist already.
    TooMany,
    Store(Error),
}

impl Schedules {
    pub(crate) async fn list(&self) -> Result<Vec<Schedule>, Error> {
        match self {
            Schedules::Local(s) => Ok(s.list()),
            Schedules::Shared(db) => db.schedules().await,
        }
    }

    pub(crate) async fn get(&self, name: &str) -> Result<Option<Schedule>, Error> {
        match self {
            Schedules::Local(s) => Ok(s.get(name)),
            Schedules::Shared(db) => db.schedule(name).await,
        }
    }

    /// Creates (`true`) or replaces (`false`) the schedule `def` names.
    pub(crate) async fn put(&self, def: &Definition) -> Result<(Schedule, bool), PutError> {
        match self {
            Schedules::Local(s) => s.put(def, Utc::now()),
            Schedules::Shared(db) => db.put_schedule(def).await,
        }
    }

    /// `false` when there was no such schedule. Its jobs stay in the history.
    pub(crate) async fn delete(&self, name: &str) -> Result<bool, Error> {
        match self {
            Schedules::Local(s) => s.delete(name),
            Schedules::Shared(db) => db.delete_schedule(name).await,
        }
    }
}

#[cfg(test)]
mod tests;
