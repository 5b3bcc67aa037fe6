//! The wire format of schedules: `PUT /v1/schedules/{name}` ([`ScheduleRequest`]), a
//! `[[schedules]]` entry of `dsfiles.toml` ([`ScheduleEntry`]: the same keys plus `name`),
//! and what `GET /v1/schedules[/{name}]` answers ([`Schedule`]).
//!
//! A schedule's sync options are a [`SyncRequest`] (the body of `POST /v1/syncs`), read by the
//! same deserializer and checked by the same `validate`: `every` and `enabled` (and `name` in
//! the file) are taken out of the object first, and what remains must be a valid
//! `SyncRequest` — an unknown key is refused there, as it is by `POST /v1/syncs`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::{IncludeItem, JobState, Since, SyncRequest, SyncSpec};
pub use crate::schedules::due::Every;

/// Most schedules a service keeps; `PUT` of one more answers 422 `too_many_schedules`. It
/// also bounds the label values of the per-schedule metrics.
pub const MAX_SCHEDULES: usize = 1000;

/// The pattern a schedule name matches (it is a path segment and a metrics label value).
pub const SCHEDULE_NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";

/// Checks `name` against [`SCHEDULE_NAME_PATTERN`]; the error shows (at most 64 characters of)
/// the name.
pub fn check_schedule_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let first_ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
    if first_ok && rest_ok && bytes.len() <= 63 {
        return Ok(());
    }
    let shown: String = name.chars().take(64).collect();
    Err(format!(
        "schedule name `{shown}` must be 1 to 63 characters of `a-z`, `0-9`, `_` and `-`, starting with a letter or digit"
    ))
}

/// `PUT /v1/schedules/{name}`: a sync ([`SyncRequest`]'s keys, without `break_lease`) to run
/// `every` period, unless `enabled` is `false`.
#[derive(Debug, Clone)]
pub struct ScheduleRequest {
    pub every: Every,
    /// Default `true`; `false` keeps the schedule without running it.
    pub enabled: bool,
    pub sync: SyncRequest,
}

impl ScheduleRequest {
    /// Reads a JSON object: `every`, `enabled`, and the rest as a [`SyncRequest`], validated.
    pub fn from_object(mut object: Map<String, Value>) -> Result<ScheduleRequest, String> {
        let every = match object.remove("every") {
            Some(Value::String(every)) => Every::parse(&every)?,
            Some(_) => return Err("`every` must be a string such as `15m`".into()),
            None => return Err("missing field `every`".into()),
        };
        let enabled = match object.remove("enabled") {
            None => true,
            Some(Value::Bool(enabled)) => enabled,
            Some(_) => return Err("`enabled` must be `true` or `false`".into()),
        };
        let sync: SyncRequest =
            serde_json::from_value(Value::Object(object)).map_err(|e| e.to_string())?;
        sync.validate()?;
        if sync.break_lease {
            // Taking over a live lease is a decision about one moment, not a standing order.
            return Err("`break_lease` cannot be scheduled: a schedule never takes over another writer's lease".into());
        }
        Ok(ScheduleRequest {
            every,
            enabled,
            sync,
        })
    }
}

/// A `[[schedules]]` entry of `dsfiles.toml`: `name` and the keys of [`ScheduleRequest`].
#[derive(Debug, Clone)]
pub struct ScheduleEntry {
    pub name: String,
    pub request: ScheduleRequest,
}

impl<'de> Deserialize<'de> for ScheduleEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ScheduleEntry, D::Error> {
        let mut object = Map::<String, Value>::deserialize(deserializer)?;
        let name = match object.remove("name") {
            Some(Value::String(name)) => name,
            _ => {
                return Err(serde::de::Error::custom(
                    "a `[[schedules]]` entry needs a `name`",
                ));
            }
        };
        check_schedule_name(&name).map_err(serde::de::Error::custom)?;
        let request = ScheduleRequest::from_object(object)
            .map_err(|e| serde::de::Error::custom(format!("schedule `{name}`: {e}")))?;
        Ok(ScheduleEntry { name, request })
    }
}

/// A schedule as `GET /v1/schedules/{name}` returns it and as the store keeps it: its
/// definition (the sync's options with `dest` canonical, as in a job record) and its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub name: String,
    /// Canonical spelling (`120s` is shown `2m`).
    pub every: String,
    pub enabled: bool,
    pub demarche: u64,
    pub dest: String,
    pub since: Since,
    pub include: Vec<IncludeItem>,
    pub dossiers: Vec<u64>,
    pub layout: Option<String>,
    pub data_layout: Option<String>,
    /// As in `SyncRequest`: `None` follows what the destination was last synced with.
    #[serde(default)]
    pub no_data: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The next tick: a run starts then unless the previous one is still active.
    pub next_due_at: DateTime<Utc>,
    /// The job of the latest run (`GET /v1/syncs/{id}`), if any.
    pub last_job: Option<String>,
    /// That job's state as the scheduler last saw it.
    pub last_state: Option<JobState>,
    pub last_started_at: Option<DateTime<Utc>>,
    /// When the latest successful run ended.
    pub last_success_at: Option<DateTime<Utc>>,
    /// How long the latest finished run took, in seconds.
    pub last_duration_secs: Option<f64>,
    /// Runs that ended `failed`, since the schedule was created.
    pub failures: u64,
    /// Ticks that started no run: the previous run (or another job on the same démarche and
    /// destination) was still active, or the queue was full.
    pub skipped_ticks: u64,
}

impl Schedule {
    /// The sync one run of this schedule performs, `jobs` downloads at once.
    pub fn spec(&self, jobs: usize) -> SyncSpec {
        SyncSpec {
            demarche: self.demarche,
            dest: self.dest.clone(),
            since: self.since,
            include: self.include.clone(),
            dossiers: self.dossiers.clone(),
            jobs,
            break_lease: false,
            layout: self.layout.clone(),
            data_layout: self.data_layout.clone(),
            no_data: self.no_data,
            seda: None,
        }
    }

    /// The period (stored canonical, so it parses).
    pub fn every(&self) -> Every {
        Every::parse(&self.every).unwrap_or(Every::MIN)
    }
}

/// `GET /v1/schedules`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleList {
    pub schedules: Vec<Schedule>,
}
