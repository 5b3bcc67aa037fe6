//! The wire format of the HTTP API, version 1: request and response bodies of `/v1`, and the
//! job records kept in the history (the same JSON). Field names are the contract with API
//! clients: keep them stable, add fields rather than rename them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod schedule;

pub use schedule::{
    MAX_SCHEDULES, SCHEDULE_NAME_PATTERN, Schedule, ScheduleEntry, ScheduleList, ScheduleRequest,
    check_schedule_name,
};

/// `POST /v1/syncs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    #[serde(deserialize_with = "whole::number")]
    pub demarche: u64,
    pub dest: String,
    #[serde(default)]
    pub since: Option<Since>,
    #[serde(default)]
    pub include: Vec<IncludeItem>,
    #[serde(default, deserialize_with = "whole::numbers")]
    pub dossiers: Vec<u64>,
    /// Take over the démarche's lease on the destination even from a live holder (one known
    /// to be gone): see docs/storage.md, "Destination lease".
    #[serde(default)]
    pub break_lease: bool,
    /// Where each file goes (the CLI's `--layout`); absent: the layout the destination was
    /// last synced with, else the default layout. Given: recorded for the next runs.
    #[serde(default)]
    pub layout: Option<String>,
    /// Where each dossier's dossier.json goes (the CLI's `--data-layout`); absent (and
    /// `no_data` absent): what the destination was last synced with, else next to its files.
    #[serde(default)]
    pub data_layout: Option<String>,
    /// `true`: no dossier.json (the CLI's `--no-data`); `false`: next to the files (the CLI's
    /// `--data`); absent: as `data_layout` says.
    #[serde(default)]
    pub no_data: Option<bool>,
}

/// JSON numbers with no fractional part, as JSON Schema's `integer` counts them: `7` and
/// `7.0` (serde's `u64` takes only `7`), so that a body valid by the OpenAPI document is read.
/// A fraction, a negative number or one past `u64` is refused, naming the value.
pub(crate) mod whole {
    use serde::de::{Deserialize as _, Deserializer};

    /// `n` as a `u64` if it is a whole number from 0 that fits.
    pub(crate) fn of(n: &serde_json::Number) -> Option<u64> {
        n.as_u64().or_else(|| {
            let f = n.as_f64()?;
            // `u64::MAX as f64` rounds up to 2^64, which is past `u64`: `<` keeps it out.
            (f.fract() == 0.0 && (0.0..u64::MAX as f64).contains(&f)).then_some(f as u64)
        })
    }

    fn checked<E: serde::de::Error>(n: &serde_json::Number) -> Result<u64, E> {
        of(n).ok_or_else(|| E::custom(format!("`{n}` is not a whole number from 0")))
    }

    pub(crate) fn number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        checked(&serde_json::Number::deserialize(d)?)
    }

    /// As [`number`], for a field that may be `null` (or, with `#[serde(default)]`, absent).
    pub(crate) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<serde_json::Number>::deserialize(d)?
            .as_ref()
            .map(checked)
            .transpose()
    }

    pub(crate) fn numbers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        let numbers = Vec::<serde_json::Number>::deserialize(d)?;
        numbers.iter().map(checked).collect()
    }

    #[cfg(test)]
    mod tests {
        use serde_json::Number;

        #[test]
        fn whole_numbers_are_read_however_they_are_written() {
            // JSON texts, parsed as a body is.
            let cases = [
                ("7", Some(7)),
                ("7.0", Some(7)),
                ("0", Some(0)),
                ("2147483648", Some(2_147_483_648)),
                ("1e19", Some(10_000_000_000_000_000_000)),
                ("1e20", None),
                ("7.5", None),
                ("-1", None),
                ("-1.0", None),
                // Near 2^51 a float's last unit is 0.25: `.0` must be read exactly (serde_json's
                // default fast parser read this one as `.25`, a fraction).
                ("2251799813685247.0", Some(2_251_799_813_685_247)),
                ("2251799813685247.25", None),
            ];
            for (text, expected) in cases {
                let n: Number = serde_json::from_str(text).expect("a number");
                assert_eq!(super::of(&n), expected, "{text}");
            }
        }
    }
}

/// Most dossiers one sync request (or one coalesced webhook job) may name; beyond this a
/// webhook job becomes a whole-démarche incremental sync.
pub const MAX_DOSSIERS: usize = 1000;

/// The largest démarche or dossier number: DS numbers are GraphQL `Int`s (signed 32 bits),
/// so a larger one can only be refused by DS, after a round trip. The service refuses it first.
pub const DS_NUMBER_MAX: u64 = 2_147_483_647;

/// Checks that `value`, the `name` field or parameter, is a DS number (1 to
/// [`DS_NUMBER_MAX`]); the error names both.
pub fn check_ds_number(name: &str, value: u64) -> Result<(), String> {
    if (1..=DS_NUMBER_MAX).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "`{name}` must be a DS number between 1 and {DS_NUMBER_MAX}, got `{value}`"
        ))
    }
}

/// An RFC 3339 date-time (`2024-03-01T08:00:00Z`, `2024-03-01t08:00:00.5+02:00`): chrono's
/// parser, minus the space it also accepts between date and time, which RFC 3339's grammar
/// (and so OpenAPI's `format: date-time`) does not.
pub fn parse_rfc3339(text: &str) -> Option<DateTime<Utc>> {
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    let at = DateTime::parse_from_rfc3339(text).ok()?;
    Some(at.with_timezone(&Utc))
}

impl SyncRequest {
    /// Checks the values serde cannot: a démarche number, dossier numbers.
    pub fn validate(&self) -> Result<(), String> {
        check_ds_number("demarche", self.demarche)?;
        for dossier in &self.dossiers {
            check_ds_number("dossiers", *dossier)?;
        }
        if self.dossiers.len() > MAX_DOSSIERS {
            return Err(format!(
                "`dossiers` names `{}` dossiers; at most `{MAX_DOSSIERS}`",
                self.dossiers.len()
            ));
        }
        if let Some(template) = &self.layout {
            dsfiles_core::extract::Layout::parse(template)
                .map_err(|e| format!("invalid `layout`: {e}"))?;
        }
        if let Some(template) = &self.data_layout {
            if self.no_data == Some(true) {
                return Err("`data_layout` and `no_data: true` cannot be given together".to_owned());
            }
            dsfiles_core::extract::DataLayout::parse(template)
                .map_err(|e| format!("invalid `data_layout`: {e}"))?;
        }
        Ok(())
    }
}

/// Where a sync starts: `"auto"` (from the destination's last successful sync point, the
/// default), `"full"` (re-check everything) or an RFC 3339 date (dossiers updated since).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Since {
    #[default]
    Auto,
    Full,
    At(DateTime<Utc>),
}

impl Serialize for Since {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Since::Auto => serializer.serialize_str("auto"),
            Since::Full => serializer.serialize_str("full"),
            Since::At(at) => serializer.serialize_str(&at.to_rfc3339()),
        }
    }
}

impl<'de> Deserialize<'de> for Since {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Since, D::Error> {
        let s = String::deserialize(deserializer)?;
        match s.as_str() {
            "auto" => Ok(Since::Auto),
            "full" => Ok(Since::Full),
            other => parse_rfc3339(other).map(Since::At).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{}` is not `auto`, `full` or an RFC 3339 date such as 2024-03-01T08:00:00Z",
                    other.chars().take(64).collect::<String>()
                ))
            }),
        }
    }
}

/// Optional files: `pdf` and `geojson` (DS-generated, either includes both), `entreprise`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncludeItem {
    Pdf,
    Geojson,
    Entreprise,
}

/// What a job does: the validated request, with the destination normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSpec {
    pub demarche: u64,
    pub dest: String,
    pub since: Since,
    pub include: Vec<IncludeItem>,
    /// Empty: the whole démarche.
    pub dossiers: Vec<u64>,
    /// Concurrent downloads inside the sync (the service's setting).
    pub jobs: usize,
    /// Take over a live lease on the destination (never kept across a restart of the service).
    #[serde(default)]
    pub break_lease: bool,
    /// As in [`SyncRequest`]; validated. `None`: what the destination was last synced with.
    #[serde(default)]
    pub layout: Option<String>,
    #[serde(default)]
    pub data_layout: Option<String>,
    /// (`false` in records of earlier versions reads as `Some(false)`: dossier.json next to
    /// the files, what such a job did.)
    #[serde(default)]
    pub no_data: Option<bool>,
    /// Set for a seda job (`POST /v1/seda`, `crate::seda_jobs`): package `dest` into
    /// `seda.out` instead of syncing; the other sync settings are unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seda: Option<crate::seda_jobs::SedaJob>,
}

impl SyncSpec {
    pub fn include_generated(&self) -> bool {
        self.include
            .iter()
            .any(|i| matches!(i, IncludeItem::Pdf | IncludeItem::Geojson))
    }

    pub fn include_entreprise(&self) -> bool {
        self.include.contains(&IncludeItem::Entreprise)
    }
}

/// The state of a job. `succeeded`, `failed` and `cancelled` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// Who asked for the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Api,
    Webhook,
    /// A tick of the schedule named in the record's `schedule`.
    Schedule,
}

/// Progress counters of a job, live while it runs and final from the report afterwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub dossiers: u64,
    pub files_planned: u64,
    pub files_stored: u64,
    pub files_skipped: u64,
    pub files_failed: u64,
    pub bytes_planned: u64,
    /// Bytes of the files stored by this job.
    pub bytes_stored: u64,
    /// Bytes downloaded so far, including files still in flight.
    pub bytes_downloaded: u64,
    pub retries: u64,
}

/// A file that could not be stored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFailure {
    pub key: String,
    pub reason: String,
}

/// Failures kept per job (the counters keep counting beyond).
pub const MAX_FAILURES_KEPT: usize = 200;

/// Why a job failed or was cancelled as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

/// One line of a job's history (with `--database-url`): who claimed, resumed, released,
/// cancelled or ended it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    /// `queued`, `claimed`, `resumed`, `released`, `cancel_requested`, `cancelled`, `finished`,
    /// `tick_skipped` (a tick of the job's schedule fell while it was active).
    pub event: String,
    /// The replica that did it.
    pub replica: String,
    pub message: String,
}

/// A job, as `GET /v1/syncs/{id}` returns it and as the history stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    /// `sync`, or `seda` for a `POST /v1/seda` job (absent in older records: `sync`).
    #[serde(default)]
    pub kind: JobKind,
    pub state: JobState,
    pub demarche: u64,
    pub dest: String,
    pub since: Since,
    pub include: Vec<IncludeItem>,
    pub dossiers: Vec<u64>,
    /// As in [`SyncRequest`] (absent in older records: `null`).
    #[serde(default)]
    pub layout: Option<String>,
    #[serde(default)]
    pub data_layout: Option<String>,
    #[serde(default)]
    pub no_data: Option<bool>,
    pub trigger: Trigger,
    /// The schedule that started the job (trigger `schedule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub cancel_requested: bool,
    /// The replica that runs or ran the job (`--replica-id`); only with `--database-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    /// What happened to the job, oldest first; only with `--database-url`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    pub counters: Counters,
    pub failures: Vec<FileFailure>,
    pub error: Option<JobError>,
    /// A seda job's OUT, profile, states and, once it ended, its counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seda: Option<crate::seda_jobs::SedaJob>,
}

/// What a job does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    #[default]
    Sync,
    Seda,
}

/// `GET /v1/syncs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobList {
    pub jobs: Vec<JobRecord>,
}

/// `409` on `POST /v1/syncs`: the job already holding this démarche and destination.
#[derive(Debug, Clone, Serialize)]
pub struct ConflictBody<'a> {
    pub error: ConflictError<'a>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConflictError<'a> {
    pub code: &'a str,
    pub message: String,
    pub job_id: &'a str,
    pub job_state: JobState,
}

/// `409` on `POST /v1/syncs`: another writer (a CLI, another replica) holds the démarche's
/// lease on the destination.
#[derive(Debug, Clone, Serialize)]
pub struct BusyBody {
    pub error: DestinationBusy,
}

/// Who holds the lease that refuses a sync, as [`crate::Pipeline::check_lease`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationBusy {
    /// Always `destination_busy`.
    pub code: &'static str,
    /// Names the destination, the holder and since when, and how to proceed.
    pub message: String,
    pub holder: LeaseHolder,
    pub since: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The holder of a destination lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseHolder {
    pub host: String,
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    pub tool: String,
}

/// One file record of `GET /v1/demarches/{n}/files` (the signed download URL is left out:
/// it is a credential).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedFile {
    pub file_id: String,
    pub demarche: u64,
    pub dossier: u64,
    pub state: String,
    pub source: String,
    pub champ_id: Option<String>,
    pub label: String,
    pub row: Option<u32>,
    pub filename: String,
    pub content_type: String,
    pub byte_size: u64,
    pub checksum: String,
    pub virus_scan: String,
    pub created_at: Option<String>,
}

/// `GET /v1/demarches/{n}/files`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FilePage {
    pub files: Vec<ListedFile>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /v1/webhooks/...` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookAccepted {
    /// Jobs that will sync the named dossiers (new or coalesced into).
    pub jobs: Vec<String>,
    /// Events skipped as already seen (same `sequence`).
    pub duplicates: usize,
}
