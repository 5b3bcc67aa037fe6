//! Every format dsfiles writes or streams, in one place: the manifest shards and the sync point
//! kept in the destination, the run report, and the progress events (streamed as SSE by the
//! server). Each persisted type carries a `version`; readers reject versions they do not know.
//!
//! State layout in the destination (only through the `Sink` trait, so that object stores work
//! unchanged):
//!
//! | key | type |
//! |---|---|
//! | `.dsfiles/dossiers/{dossier}.json` | [`Shard`]: the manifest of one dossier |
//! | `{dossier}/dossier.json` (`--data-layout`) | [`DossierData`]: the dossier as DS knows it, next to its files |
//! | `.dsfiles/demarches/{demarche}/sync.json` | [`SyncPoint`]: where the démarche's next `--since auto` run starts |
//! | `.dsfiles/demarches/{demarche}/recheck.json` | [`Recheck`]: the démarche's dossiers to fetch again whatever their update time |
//! | `.dsfiles/demarches/{demarche}/layout.json` | [`LayoutRecord`]: the layout and dossier.json choice the démarche's files are named with |
//! | `.dsfiles/demarches/{demarche}/lease` | [`Lease`]: who is syncing the démarche into this destination right now ([`crate::lease`]) |
//! | `.dsfiles/staging/{demarche}/` | files of the démarche's runs being staged |
//! | `.dsfiles/runs/{run_id}.json` | [`SyncReport`] of each run |
//! | `.dsfiles/runs/{run_id}.lists.jsonl` | every entry of a run's report lists, one [`ReportLine`] per line, when one list was longer than [`REPORT_LISTED`] |
//! | `.dsfiles/seda/{dossier}.json` (in `dsfiles seda`'s OUT) | [`SedaRecord`]: the packages written for a dossier |
//! | `.dsfiles/seda/lease` (in `dsfiles seda`'s OUT) | [`Lease`]: which `seda` run is writing into this OUT right now ([`SEDA_LEASE_KEY`]) |
//!
//! Several démarches can share a destination, one after the other or at once: what is kept
//! per démarche (sync point, recheck list, staging area) lives under a key naming it, and
//! shards are per dossier (DS numbers dossiers across démarches). Destinations written before
//! this layout have one [`LEGACY_SYNC_POINT_KEY`] and one [`LEGACY_RECHECK_KEY`]: they are
//! read (when they name the démarche and its own file is absent), never written.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::extract::Source;

mod dossier;
mod seda;

pub use dossier::{DOSSIER_DATA_VERSION, DataFile, DossierData, DossierDataError};
pub use seda::{
    Packaged, SEDA_LEASE_KEY, SEDA_PREFIX, SedaFailure, SedaPackage, SedaRecord, SedaReport,
    SedaSkipped, seda_record_key,
};

/// The version written in every persisted type of this module.
pub const WIRE_VERSION: u32 = 1;

/// Where the per-dossier manifest shards live.
pub const DOSSIERS_PREFIX: &str = ".dsfiles/dossiers/";
/// Where the state kept per démarche lives (`{demarche}/sync.json`, `{demarche}/recheck.json`).
pub const DEMARCHES_PREFIX: &str = ".dsfiles/demarches/";
/// The sync point of a destination written by an earlier version (one démarche): read only.
pub const LEGACY_SYNC_POINT_KEY: &str = ".dsfiles/sync.json";
/// The recheck list of a destination written by an earlier version (one démarche): read only.
pub const LEGACY_RECHECK_KEY: &str = ".dsfiles/recheck.json";
/// Where run reports are written.
pub const RUNS_PREFIX: &str = ".dsfiles/runs/";
/// Where files are staged (per démarche, [`staging_prefix`]) when their key is known only
/// after the download.
pub const STAGING_PREFIX: &str = ".dsfiles/staging/";

/// The key of the manifest shard of `dossier`.
pub fn shard_key(dossier: u64) -> String {
    format!("{DOSSIERS_PREFIX}{dossier}.json")
}

/// Where the compacted copies of the shards live, one segment per span of cells of dossier
/// numbers ([`segment_key`]; `crate`'s `shards` module has the rules).
pub const SEGMENTS_PREFIX: &str = ".dsfiles/segments/";
/// Dossier numbers per cell: cell `c` holds dossiers `c × 1000` to `c × 1000 + 999`. A
/// segment copies the shards of cells `first..=last`, at most about this many shards.
pub const SEGMENT_DOSSIERS: u64 = 1000;

/// The key of the segment of cells `first..=last`: `{first}.jsonl` for one cell (the only form
/// before segments spanned cells), else `{first}-{last}.jsonl`.
pub fn segment_key(first: u64, last: u64) -> String {
    if first == last {
        format!("{SEGMENTS_PREFIX}{first}.jsonl")
    } else {
        format!("{SEGMENTS_PREFIX}{first}-{last}.jsonl")
    }
}

/// The cells `(first, last)` a key written by [`segment_key`] names; `None` for any other key.
pub fn segment_cells(key: &str) -> Option<(u64, u64)> {
    let name = key.strip_prefix(SEGMENTS_PREFIX)?.strip_suffix(".jsonl")?;
    let (first, last) = name.split_once('-').unwrap_or((name, name));
    let cells = (first.parse().ok()?, last.parse().ok()?);
    (cells.0 <= cells.1 && segment_key(cells.0, cells.1) == key).then_some(cells)
}

/// The first line of a segment: its first cell (`block`), and for each copied shard (in dossier order,
/// one compact JSON [`Shard`] per following line, same order) the entity tag and size its
/// shard was listed with when copied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    pub version: u32,
    pub block: u64,
    pub shards: Vec<SegmentEntry>,
}

/// One shard copied into a segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    pub dossier: u64,
    pub tag: String,
    pub size: u64,
}

/// The key of the [`SyncPoint`] of `demarche`.
pub fn sync_point_key(demarche: u64) -> String {
    format!("{DEMARCHES_PREFIX}{demarche}/sync.json")
}

/// The key of the [`Recheck`] list of `demarche`.
pub fn recheck_key(demarche: u64) -> String {
    format!("{DEMARCHES_PREFIX}{demarche}/recheck.json")
}

/// The key of the [`LayoutRecord`] of `demarche`.
pub fn layout_key(demarche: u64) -> String {
    format!("{DEMARCHES_PREFIX}{demarche}/layout.json")
}

/// The key of the [`Lease`] of `demarche` in a destination. One lease per démarche, not per
/// destination: two démarches syncing into one destination at once touch disjoint state (see
/// the module docs), so they must not exclude each other; two runs of one démarche must.
pub fn lease_key(demarche: u64) -> String {
    format!("{DEMARCHES_PREFIX}{demarche}/lease")
}

/// Who holds a [`Lease`]: enough for an operator to find the process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// The service replica's id, when the holder is a `dsfiles serve` replica that has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// What wrote the lease, e.g. `dsfiles 0.1.0` or `dsfiles serve 0.1.0`.
    pub tool: String,
    /// Which process this is, so that a writer on the same machine can tell a holder that died
    /// (`kill -9`) from a live one; absent in leases of earlier versions and where `/proc` is
    /// not readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessId>,
}

/// A process, as [`Holder::process`] names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    /// The kernel's boot id and the PID namespace: equal, and `Holder::pid` is a pid this
    /// process can look up.
    pub machine: String,
    /// Random, once per process: tells the process from a later one given the same pid.
    pub instance: String,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(replica) = &self.replica {
            write!(f, "replica `{replica}` (")?;
        }
        write!(f, "host `{}`, pid {}", self.host, self.pid)?;
        if self.replica.is_some() {
            f.write_str(")")?;
        }
        write!(f, ", {}", self.tool)
    }
}

/// The destination lease of one démarche ([`lease_key`]): while it is live, no other writer
/// syncs the démarche into the destination. See [`crate::lease`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub version: u32,
    pub holder: Holder,
    /// Random, per run: tells the holder's own lease from another run's of the same process.
    pub token: String,
    pub acquired_at: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
    /// After this instant (plus a clock tolerance) the lease is stale and may be taken over.
    pub expires_at: DateTime<Utc>,
}

/// The staging area of `demarche`'s runs: a run's start-up removes what is left there, and
/// only there.
pub fn staging_prefix(demarche: u64) -> String {
    format!("{STAGING_PREFIX}{demarche}/")
}

/// Kept in `demarche`'s staging area while files are staged: a local sink removes the
/// directories it empties, and the marker keeps this one while other staged files are being
/// published into it.
pub fn staging_marker(demarche: u64) -> String {
    format!("{STAGING_PREFIX}{demarche}/keep")
}

/// The dossier number of a shard key (`None` for anything else under the prefix).
pub fn dossier_of_shard_key(key: &str) -> Option<u64> {
    key.strip_prefix(DOSSIERS_PREFIX)?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// The state of one stored file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Size and MD5 match what DS announced.
    Ok,
    /// Two downloads gave identical bytes that disagree with DS's checksum (a known DS defect
    /// for some files uploaded before 2024): stored, flagged.
    ChecksumMismatch,
    /// DS's virus scan was still pending: stored, checked again on the next run.
    Pending,
    /// DS gives no checksum (generated PDF, GeoJSON): stored, only the SHA-256 is recorded.
    Unverified,
    /// The file is no longer in DS; still in the destination unless pruned.
    RemovedUpstream,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Ok => "ok",
            FileStatus::ChecksumMismatch => "checksum_mismatch",
            FileStatus::Pending => "pending",
            FileStatus::Unverified => "unverified",
            FileStatus::RemovedUpstream => "removed_upstream",
        }
    }
}

impl fmt::Display for FileStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored file in a [`Shard`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFile {
    /// [`crate::extract::FileRecord::file_id`]: the identity of the file slot across runs.
    pub file_id: String,
    /// Where the file is stored, relative to the destination.
    pub key: String,
    pub source: Source,
    pub label: String,
    pub filename: String,
    pub content_type: String,
    /// DS's base64 MD5 when the file was stored (`""` for unverifiable files).
    pub checksum: String,
    /// Hex SHA-256 of the stored bytes.
    pub sha256: String,
    /// Size of the stored bytes.
    pub size: u64,
    pub stored_at: DateTime<Utc>,
    pub status: FileStatus,
}

/// The manifest of one dossier: `.dsfiles/dossiers/{dossier}.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub version: u32,
    pub demarche: u64,
    pub dossier: u64,
    /// DS's state in snake_case (`accepte`, ...).
    pub state: String,
    /// DS's `dateDerniereModification` when the shard was written.
    pub updated_at: Option<String>,
    /// Set when DS reported the dossier deleted (`deletedDossiers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    pub files: Vec<ShardFile>,
    /// The dossier's `dossier.json`, when one was written (absent in older shards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ShardData>,
}

/// The `dossier.json` ([`DossierData`]) of a dossier as written: it is rewritten only when
/// its SHA-256 changes, and `dsfiles verify` checks it like a file (size, SHA-256, MD5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardData {
    /// Where it is stored, relative to the destination.
    pub key: String,
    /// Hex SHA-256 of the bytes written.
    pub sha256: String,
    /// Base64 MD5 of the bytes written.
    pub md5: String,
    pub size: u64,
    pub stored_at: DateTime<Utc>,
}

impl Shard {
    pub fn new(demarche: u64, dossier: u64) -> Shard {
        Shard {
            version: WIRE_VERSION,
            demarche,
            dossier,
            state: String::new(),
            updated_at: None,
            deleted_at: None,
            files: Vec::new(),
            data: None,
        }
    }

    /// The entry of `file_id`, if stored.
    pub fn file(&self, file_id: &str) -> Option<&ShardFile> {
        self.files.iter().find(|f| f.file_id == file_id)
    }
}

/// [`sync_point_key`]: advanced only after a complete run (unfiltered, nothing failed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPoint {
    pub version: u32,
    pub demarche: u64,
    /// When the last successful run started: every change since then is seen by the next run.
    pub last_success_started_at: DateTime<Utc>,
    pub last_run_id: String,
}

/// [`recheck_key`]: dossiers with a `pending` file, a file left out for its virus scan, or a
/// failure, fetched again by the démarche's next run even if DS did not update them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recheck {
    pub version: u32,
    pub demarche: u64,
    pub dossiers: Vec<u64>,
}

/// [`layout_key`]: how the démarche's files are named in this destination, so that a run
/// that does not say (a webhook job, a scheduled job, a plain `dsfiles sync`) keeps the names
/// instead of moving every file back to the default layout. Written by a run whose layout or
/// dossier.json choice differs from the record, before it stores anything (`sync/layout.rs`
/// has the rules).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutRecord {
    pub version: u32,
    pub demarche: u64,
    /// The `--layout` template (or `ds-export`).
    pub layout: String,
    pub data: DataChoice,
    /// The run that wrote the record, and when.
    pub run_id: String,
    pub recorded_at: DateTime<Utc>,
}

/// Where dossier.json goes, as recorded and reported: `"follow_layout"` (next to the files),
/// `{"at": TEMPLATE}` (`--data-layout`) or `"off"` (`--no-data`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataChoice {
    FollowLayout,
    At(String),
    Off,
}

/// Where a run's layout or dossier.json choice came from ([`LayoutUsed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingOrigin {
    /// The run's own options (`--layout`, the request's `layout`, ...).
    Given,
    /// The destination's [`LayoutRecord`]: what it was last synced with.
    Destination,
    /// Neither: the default.
    Default,
}

impl SettingOrigin {
    /// How the summary and the log say it.
    pub fn describe(self) -> &'static str {
        match self {
            SettingOrigin::Given => "given",
            SettingOrigin::Destination => "what the destination was last synced with",
            SettingOrigin::Default => "the default",
        }
    }
}

/// The layout and dossier.json choice a run used, and where each came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutUsed {
    pub layout: String,
    pub layout_from: SettingOrigin,
    pub data: DataChoice,
    pub data_from: SettingOrigin,
}

/// A stored file whose status is not [`FileStatus::Ok`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flagged {
    pub dossier: u64,
    pub file_id: String,
    pub key: String,
    pub flag: FileStatus,
    /// What was observed (e.g. DS's checksum and the one of the bytes).
    pub detail: String,
}

/// An object at a key the manifest names that was not deleted or replaced: it is not (or
/// cannot be shown to be) what dsfiles stored there (see `removal.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub dossier: u64,
    pub file_id: String,
    /// The key the manifest named.
    pub key: String,
    /// What dsfiles was about to do (`delete superseded`, `prune`, `replace`) and why it did not.
    pub reason: String,
}

/// A file (or a whole dossier, then `file_id` is `None`) that could not be synced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub dossier: u64,
    pub file_id: Option<String>,
    /// The destination key of the file, or the dossier's shard key for a dossier-level failure.
    pub key: String,
    /// The last real error, with attempts and elapsed time.
    pub reason: String,
    /// What kind of failure, for programs: `blocked_address` (the file's URL leads to an
    /// address downloads may not reach). Absent for other failures and in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// A file left out on purpose (virus scan not `safe` or `pending`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub dossier: u64,
    pub file_id: String,
    pub filename: String,
    pub virus_scan: String,
}

/// The outcome of [`crate::sync`]; also written to `.dsfiles/runs/{run_id}.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    pub version: u32,
    pub run_id: String,
    pub demarche: u64,
    /// [`crate::sink::Sink::describe`] of the destination.
    pub dest: String,
    /// The `updatedSince` used for listing (`None`: everything was listed).
    pub since: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Dossiers processed.
    pub dossiers: u64,
    /// Files DS listed for these dossiers.
    pub files_planned: u64,
    /// Files downloaded and published in this run.
    pub stored: u64,
    /// Files already stored with the same checksum (0 bytes moved).
    pub skipped_unchanged: u64,
    /// Files whose status changed without a download (pending scan now safe).
    pub updated: u64,
    /// `dossier.json` objects written in this run (absent in older reports: 0).
    #[serde(default)]
    pub data_stored: u64,
    /// `dossier.json` objects already stored with the same bytes (absent in older reports: 0).
    #[serde(default)]
    pub data_unchanged: u64,
    /// Stored files moved to a new key because a dossier value of the layout changed
    /// (absent in older reports: 0).
    #[serde(default)]
    pub moved: u64,
    /// Files not stored because of their virus scan (see `allow_unscanned`). Like every list
    /// of the report, the first [`REPORT_LISTED`] only: `counts` counts them all, and `lists`
    /// names the object holding them all when one list was longer.
    pub skipped_unscanned: Vec<Skipped>,
    pub flagged: Vec<Flagged>,
    pub failed: Vec<Failure>,
    /// Dossiers DS reported deleted in the listed window.
    pub deleted_dossiers: Vec<u64>,
    /// How many entries each list has in all (absent in older reports, whose lists were
    /// complete: all zero).
    #[serde(default)]
    pub counts: ListCounts,
    /// The key of the object holding every entry of every list (`.dsfiles/runs/{run_id}.lists.jsonl`,
    /// one [`ReportLine`] per line), written when a list was longer than [`REPORT_LISTED`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lists: Option<String>,
    /// Stored files no longer in DS (marked `removed_upstream`, or deleted with prune).
    pub removed_upstream: u64,
    /// Whether prune deleted files of removed files and deleted dossiers.
    pub pruned: bool,
    /// Objects at manifest keys left in place because they are not what dsfiles stored.
    #[serde(default)]
    pub kept: Vec<Kept>,
    /// Errors DS sent alongside data, and other things that make the run incomplete.
    pub warnings: Vec<String>,
    /// File bytes published (retries and aborted attempts excluded).
    pub bytes_downloaded: u64,
    pub duration_secs: f64,
    pub mb_per_sec: f64,
    /// The DS client's counters at the end of the run.
    pub api: crate::ds::Stats,
    /// This run's DS API requests, by purpose (absent in older reports: all zero).
    #[serde(default)]
    pub api_calls: ApiCalls,
    /// The manifest objects this run read and wrote (absent in older reports: all zero).
    #[serde(default)]
    pub state_objects: StateObjects,
    /// Whether the sync point was advanced (see [`SyncPoint`]).
    pub sync_point_advanced: bool,
    pub cancelled: bool,
    /// Whether the run lost its destination lease (another writer took it over) and stopped
    /// writing (absent in older reports: false).
    #[serde(default)]
    pub lease_lost: bool,
    /// The layout and dossier.json choice of the run and where they came from (absent in
    /// older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<LayoutUsed>,
}

/// Longest list a [`SyncReport`] keeps in memory and in its JSON, so that a run over a million
/// files holds a report of bounded size whatever goes wrong; every entry is in the report's
/// `lists` object.
pub const REPORT_LISTED: usize = 1000;

/// How many entries each list of a [`SyncReport`] has in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListCounts {
    pub skipped_unscanned: u64,
    pub flagged: u64,
    /// Of the flagged files, those whose bytes are not what DS announced (`--strict`).
    pub checksum_mismatch: u64,
    pub failed: u64,
    pub deleted_dossiers: u64,
    pub kept: u64,
    pub warnings: u64,
}

/// One line of a run's `lists` object: an entry of one of the report's lists, tagged with the
/// list's name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "list", rename_all = "snake_case")]
pub enum ReportLine {
    SkippedUnscanned(Skipped),
    Flagged(Flagged),
    Failed(Failure),
    DeletedDossier { dossier: u64 },
    Kept(Kept),
    Warning { message: String },
}

/// The manifest objects a run read and wrote besides the shards it wrote: the cost of reading
/// the state, which segments keep at about two requests per 1,000 dossiers plus one read per
/// changed dossier on object stores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateObjects {
    /// Shards read one by one.
    pub shards_read: u64,
    /// Segments read.
    pub segments_read: u64,
    /// Listings of shard keys to check segments against (one request per 1,000 keys, about),
    /// and of the segments themselves (once per run).
    pub blocks_listed: u64,
    /// Segments written (compaction).
    pub segments_written: u64,
}

/// A run's DS API requests by purpose, retries included. A no-op `--since auto` run costs
/// at most ⌈updated dossiers / 100⌉ + ⌈recheck dossiers / 20⌉ + 5 (`docs/cli.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiCalls {
    /// Listing the dossiers updated in the window (pages of at most 100), and the retries of
    /// URL refreshes (they run meanwhile, on the same client).
    pub listing: u64,
    /// Fetching the previous run's recheck list, many dossiers per request.
    pub recheck: u64,
    /// Fetching a dossier again for fresh file URLs once its signed URLs expired, one request
    /// per refresh (its retries are counted in `listing`).
    pub refresh: u64,
    /// Listing the dossiers DS deleted.
    pub deleted: u64,
}

impl ApiCalls {
    /// Every request of the run.
    pub fn total(&self) -> u64 {
        self.listing
            .saturating_add(self.recheck)
            .saturating_add(self.refresh)
            .saturating_add(self.deleted)
    }
}

/// How a run ended, for the exit code (mapped in one place by the front ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Ok,
    FilesFailed,
    Cancelled,
    /// Another writer took the destination lease over during the run, which stopped writing.
    LeaseLost,
}

impl SyncReport {
    /// `LeaseLost` if the run lost its lease; `Cancelled` if cancelled; `FilesFailed` if a file failed, DS could not return
    /// everything (warnings), or (with `strict`) a file was stored with a checksum mismatch.
    pub fn exit_status(&self, strict: bool) -> RunStatus {
        if self.lease_lost {
            RunStatus::LeaseLost
        } else if self.cancelled {
            RunStatus::Cancelled
        } else if self.counts.failed > 0
            || !self.failed.is_empty()
            || self.counts.warnings > 0
            || !self.warnings.is_empty()
            || (strict
                && (self.counts.checksum_mismatch > 0
                    || self
                        .flagged
                        .iter()
                        .any(|f| f.flag == FileStatus::ChecksumMismatch)))
        {
            RunStatus::FilesFailed
        } else {
            RunStatus::Ok
        }
    }
}

/// A stored file that does not match its manifest entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Corrupt {
    pub dossier: u64,
    pub key: String,
    pub reason: String,
}

/// The outcome of [`crate::verify`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub version: u32,
    pub dest: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Manifest shards read.
    pub dossiers: u64,
    /// Files whose size and SHA-256 (and MD5 where DS vouched for it) match the manifest.
    pub ok: u64,
    /// Of the `ok` files, those DS never vouched for (status `unverified` or
    /// `checksum_mismatch`): only dsfiles' own SHA-256 could be checked.
    pub unverifiable: u64,
    /// Keys in the manifest with nothing stored: the first [`VERIFY_LISTED`] found, sorted
    /// (`missing_count` counts them all).
    pub missing: Vec<String>,
    /// Files (or shards) that differ from the manifest or cannot be read: the first
    /// [`VERIFY_LISTED`] found, sorted by key (`corrupt_count` counts them all).
    pub corrupt: Vec<Corrupt>,
    /// Every missing key (absent in older reports, which listed them all: 0).
    #[serde(default)]
    pub missing_count: u64,
    /// Every corrupt file or shard (absent in older reports, which listed them all: 0).
    #[serde(default)]
    pub corrupt_count: u64,
    pub bytes_read: u64,
    pub cancelled: bool,
}

/// Longest `missing` and `corrupt` lists a [`VerifyReport`] keeps, so that verifying a
/// destination of a million files runs in flat memory whatever is wrong with it.
pub const VERIFY_LISTED: usize = 1000;

/// Progress of a run, for bars, SSE and tests. Emitting must never block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A page of dossiers arrived; `total_dossiers` counts the dossiers received so far.
    PageFetched {
        dossiers: usize,
        total_dossiers: u64,
    },
    /// A file will be downloaded (`bytes` as announced by DS).
    FilePlanned { bytes: u64 },
    /// A file is not downloaded; `reason`: `unchanged`, `status_updated`, `virus_scan:<result>`.
    FileSkipped { key: String, reason: String },
    /// A download attempt starts.
    FileStarted { key: String, bytes: u64 },
    /// Bytes received (and handed to the sink) for a file being downloaded; for `seda`, bytes
    /// of a stored file read into a package.
    BytesWritten { n: u64 },
    /// A file was published.
    FileStored {
        key: String,
        bytes: u64,
        status: FileStatus,
    },
    /// A file could not be synced after its retries.
    FileFailed { key: String, reason: String },
    /// Something is tried again.
    Retry {
        what: String,
        attempt: u32,
        reason: String,
    },
    /// DS reported a dossier deleted.
    DossierDeleted { number: u64 },
    /// `verify` checked a file.
    FileVerified { key: String, ok: bool },
    /// DS returned errors alongside data, or a dossier could not be read.
    Warning { message: String },
    /// `seda`: the number of dossiers it will look at (each shard is then read in turn).
    DossiersListed { dossiers: u64 },
    /// `seda`: a dossier's package was written to OUT (`bytes`: the zip's size).
    PackageWritten {
        dossier: u64,
        key: String,
        objects: u64,
        bytes: u64,
    },
    /// `seda`: the dossier's latest package is up to date; nothing written.
    PackageUnchanged { dossier: u64 },
    /// `seda`: a dossier not packaged, and why (in another state, nothing to package).
    PackageSkipped { dossier: u64, reason: String },
    /// `seda`: a dossier that could not be packaged; nothing was written for it.
    PackageFailed { dossier: u64, reason: String },
    /// The run is over.
    Finished,
}

#[cfg(test)]
mod tests;
