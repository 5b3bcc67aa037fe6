//! What a dossier and the run count, and the [`SyncReport`] built from it.
//!
//! Rule: counts saturate (sizes come from DS: `byteSizeBigInt` can be near `u64::MAX`), and a
//! dossier's outcome is merged into the run's totals once, when its task ends.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::wire::{
    ApiCalls, Event, Failure, FileStatus, Flagged, Kept, LayoutUsed, ShardFile, Skipped,
    SyncReport, WIRE_VERSION, shard_key,
};
use crate::{Progress, ds};

/// Counts and lists that both a dossier's outcome and the run's totals keep.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub files: u64,
    pub stored: u64,
    pub unchanged: u64,
    pub updated: u64,
    pub bytes: u64,
    pub removed: u64,
    /// dossier.json objects written, and left as they were (same bytes).
    pub data_stored: u64,
    pub data_unchanged: u64,
    /// Stored files moved to a new key (a dossier value of the layout changed).
    pub moved: u64,
    pub unscanned: Vec<Skipped>,
    pub flagged: Vec<Flagged>,
    pub failed: Vec<Failure>,
    pub kept: Vec<Kept>,
    pub warnings: Vec<String>,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.files = self.files.saturating_add(o.files);
        self.stored = self.stored.saturating_add(o.stored);
        self.unchanged = self.unchanged.saturating_add(o.unchanged);
        self.updated = self.updated.saturating_add(o.updated);
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.removed = self.removed.saturating_add(o.removed);
        self.data_stored = self.data_stored.saturating_add(o.data_stored);
        self.data_unchanged = self.data_unchanged.saturating_add(o.data_unchanged);
        self.moved = self.moved.saturating_add(o.moved);
        self.unscanned.extend(o.unscanned);
        self.flagged.extend(o.flagged);
        self.failed.extend(o.failed);
        self.kept.extend(o.kept);
        self.warnings.extend(o.warnings);
    }

    /// Records that the object at `entry.key` was left in place, and why.
    pub fn keep(&mut self, progress: &Progress, dossier: u64, entry: &ShardFile, reason: String) {
        let message = format!(
            "dossier `{dossier}`: `{}` left in place: {reason}",
            entry.key
        );
        tracing::warn!("{message}");
        progress.event(&Event::Warning { message });
        self.kept.push(Kept {
            dossier,
            file_id: entry.file_id.clone(),
            key: entry.key.clone(),
            reason,
        });
    }

    /// Records `entry` in `flagged` when its status is not `ok`.
    pub fn flag(&mut self, dossier: u64, entry: &ShardFile, detail: Option<String>) {
        if matches!(entry.status, FileStatus::Ok | FileStatus::RemovedUpstream) {
            return;
        }
        let detail = detail.unwrap_or_else(|| match entry.status {
            FileStatus::ChecksumMismatch => format!(
                "DS checksum `{}`, stored SHA-256 `{}`",
                entry.checksum, entry.sha256
            ),
            FileStatus::Pending => {
                "virus scan pending on DS; checked again on the next run".to_owned()
            }
            FileStatus::Unverified => "DS gives no checksum for this file".to_owned(),
            FileStatus::Ok | FileStatus::RemovedUpstream => String::new(),
        });
        self.flagged.push(Flagged {
            dossier,
            file_id: entry.file_id.clone(),
            key: entry.key.clone(),
            flag: entry.status,
            detail,
        });
    }
}

/// What happened to one dossier.
#[derive(Debug, Default)]
pub(super) struct DossierOutcome {
    pub dossier: u64,
    pub tally: Tally,
    /// Whether the dossier goes on the recheck list.
    pub recheck: bool,
}

impl DossierOutcome {
    pub fn new(dossier: u64) -> DossierOutcome {
        DossierOutcome {
            dossier,
            ..DossierOutcome::default()
        }
    }

    /// Records a failure of the whole dossier (its shard is named as the key); the dossier is
    /// checked again next run.
    pub fn fail(&mut self, reason: String) {
        tracing::warn!(dossier = self.dossier, "{reason}");
        self.tally.failed.push(Failure {
            dossier: self.dossier,
            file_id: None,
            key: shard_key(self.dossier),
            reason,
            code: None,
        });
        self.recheck = true;
    }

    /// Records a failure of the dossier's object at `key` that is not a file (dossier.json).
    pub fn fail_key(&mut self, key: &str, reason: String) {
        tracing::warn!(dossier = self.dossier, key, "{reason}");
        self.tally.failed.push(Failure {
            dossier: self.dossier,
            file_id: None,
            key: key.to_owned(),
            reason,
            code: None,
        });
        self.recheck = true;
    }
}

/// The run's tally.
#[derive(Debug, Default)]
pub(super) struct Totals {
    /// Dossiers processed (each once).
    pub processed: Vec<u64>,
    pub tally: Tally,
    /// Dossiers DS reported deleted.
    pub deleted: Vec<u64>,
    /// Dossiers to put on the recheck list.
    pub recheck: Vec<u64>,
    pub api: ApiCalls,
}

impl Totals {
    pub fn merge(&mut self, o: DossierOutcome) {
        self.processed.push(o.dossier);
        self.tally.add(o.tally);
        if o.recheck {
            self.recheck.push(o.dossier);
        }
    }

    pub fn warn(&mut self, progress: &Progress, message: String) {
        tracing::warn!("{message}");
        progress.event(&Event::Warning {
            message: message.clone(),
        });
        self.tally.warnings.push(message);
    }

    /// Whether nothing went wrong that the next run must see again (the sync point may move).
    pub fn clean(&self) -> bool {
        self.tally.failed.is_empty() && self.tally.warnings.is_empty()
    }
}

/// What the report says besides the totals.
pub(super) struct RunFacts {
    pub run_id: String,
    pub demarche: u64,
    pub dest: String,
    pub since: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub elapsed: Duration,
    pub pruned: bool,
    pub api: ds::Stats,
    pub sync_point_advanced: bool,
    pub cancelled: bool,
    pub layout: LayoutUsed,
}

/// The run's report.
pub(super) fn report(facts: RunFacts, totals: Totals) -> SyncReport {
    let duration = facts.elapsed.as_secs_f64();
    let tally = totals.tally;
    SyncReport {
        version: WIRE_VERSION,
        run_id: facts.run_id,
        demarche: facts.demarche,
        dest: facts.dest,
        since: facts.since,
        started_at: facts.started_at,
        finished_at: Utc::now(),
        dossiers: totals.processed.len() as u64,
        files_planned: tally.files,
        stored: tally.stored,
        skipped_unchanged: tally.unchanged,
        updated: tally.updated,
        data_stored: tally.data_stored,
        data_unchanged: tally.data_unchanged,
        moved: tally.moved,
        skipped_unscanned: tally.unscanned,
        flagged: tally.flagged,
        failed: tally.failed,
        deleted_dossiers: totals.deleted,
        removed_upstream: tally.removed,
        pruned: facts.pruned,
        kept: tally.kept,
        warnings: tally.warnings,
        bytes_downloaded: tally.bytes,
        duration_secs: duration,
        mb_per_sec: if duration > 0.0 {
            tally.bytes as f64 / 1e6 / duration
        } else {
            0.0
        },
        api: facts.api,
        api_calls: totals.api,
        sync_point_advanced: facts.sync_point_advanced,
        cancelled: facts.cancelled,
        lease_lost: false,
        layout: Some(facts.layout),
    }
}
