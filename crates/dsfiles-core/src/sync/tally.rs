//! What a dossier and the run count, and the [`SyncReport`] built from it.
//!
//! Rule: counts saturate (sizes come from DS: `byteSizeBigInt` can be near `u64::MAX`), and a
//! dossier's outcome is merged into the run's totals once, when its task ends.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::lists::Lists;
use crate::wire::{
    ApiCalls, Event, Failure, FileStatus, Flagged, Kept, LayoutUsed, ReportLine, ShardFile,
    Skipped, StateObjects, SyncReport, WIRE_VERSION, shard_key,
};
use crate::{Progress, ds};

/// What a run counts besides its lists; a dossier's and the run's alike.
#[derive(Debug, Default)]
pub(super) struct Counts {
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
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.files = self.files.saturating_add(o.files);
        self.stored = self.stored.saturating_add(o.stored);
        self.unchanged = self.unchanged.saturating_add(o.unchanged);
        self.updated = self.updated.saturating_add(o.updated);
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.removed = self.removed.saturating_add(o.removed);
        self.data_stored = self.data_stored.saturating_add(o.data_stored);
        self.data_unchanged = self.data_unchanged.saturating_add(o.data_unchanged);
        self.moved = self.moved.saturating_add(o.moved);
    }
}

/// What one dossier (or the deleted-dossiers pass) counts and lists. Its lists are bounded by
/// the dossier's files; the run's are [`Lists`].
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub counts: Counts,
    pub unscanned: Vec<Skipped>,
    pub flagged: Vec<Flagged>,
    pub failed: Vec<Failure>,
    pub kept: Vec<Kept>,
    pub warnings: Vec<String>,
}

impl Tally {
    /// The tally's list entries, in the order of the report's lists.
    fn into_lines(self) -> impl Iterator<Item = ReportLine> {
        let Tally {
            unscanned,
            flagged,
            failed,
            kept,
            warnings,
            ..
        } = self;
        (unscanned.into_iter().map(ReportLine::SkippedUnscanned))
            .chain(flagged.into_iter().map(ReportLine::Flagged))
            .chain(failed.into_iter().map(ReportLine::Failed))
            .chain(kept.into_iter().map(ReportLine::Kept))
            .chain(
                warnings
                    .into_iter()
                    .map(|message| ReportLine::Warning { message }),
            )
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

/// The run's tally: counts, and lists whose memory does not grow with the démarche.
#[derive(Debug, Default)]
pub(super) struct Totals {
    /// Dossiers processed (each once).
    pub dossiers: u64,
    pub counts: Counts,
    pub lists: Lists,
    /// Dossiers to put on the recheck list.
    pub recheck: Vec<u64>,
    /// The previous recheck list's dossiers not processed yet: they stay on the list.
    pub unprocessed: HashSet<u64>,
    pub api: ApiCalls,
}

impl Totals {
    pub fn new(previous_recheck: &[u64]) -> Totals {
        Totals {
            unprocessed: previous_recheck.iter().copied().collect(),
            ..Totals::default()
        }
    }

    pub fn merge(&mut self, o: DossierOutcome) {
        self.dossiers = self.dossiers.saturating_add(1);
        self.unprocessed.remove(&o.dossier);
        self.add(o.tally);
        if o.recheck {
            self.recheck.push(o.dossier);
        }
    }

    /// Adds a tally's counts and list entries (a dossier's, through [`Totals::merge`], or the
    /// deleted-dossiers pass's).
    pub fn add(&mut self, tally: Tally) {
        self.counts.add(&tally.counts);
        for line in tally.into_lines() {
            self.lists.push(line);
        }
    }

    pub fn fail(&mut self, failure: Failure) {
        self.lists.push(ReportLine::Failed(failure));
    }

    pub fn warn(&mut self, progress: &Progress, message: String) {
        tracing::warn!("{message}");
        progress.event(&Event::Warning {
            message: message.clone(),
        });
        self.lists.push(ReportLine::Warning { message });
    }

    /// Whether nothing went wrong that the next run must see again (the sync point may move).
    pub fn clean(&self) -> bool {
        self.lists.counts.failed == 0 && self.lists.counts.warnings == 0
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
    pub state_objects: StateObjects,
}

/// The run's report; `lists` names the object holding every list entry when a list is longer
/// than the report shows.
pub(super) fn report(facts: RunFacts, totals: Totals, lists: Option<String>) -> SyncReport {
    let duration = facts.elapsed.as_secs_f64();
    let Totals {
        dossiers,
        counts,
        lists: all,
        api,
        ..
    } = totals;
    SyncReport {
        version: WIRE_VERSION,
        run_id: facts.run_id,
        demarche: facts.demarche,
        dest: facts.dest,
        since: facts.since,
        started_at: facts.started_at,
        finished_at: Utc::now(),
        dossiers,
        files_planned: counts.files,
        stored: counts.stored,
        skipped_unchanged: counts.unchanged,
        updated: counts.updated,
        data_stored: counts.data_stored,
        data_unchanged: counts.data_unchanged,
        moved: counts.moved,
        skipped_unscanned: all.unscanned.0,
        flagged: all.flagged.0,
        failed: all.failed.0,
        deleted_dossiers: all.deleted.0,
        counts: all.counts,
        lists,
        removed_upstream: counts.removed,
        pruned: facts.pruned,
        kept: all.kept.0,
        warnings: all.warnings.0,
        bytes_downloaded: counts.bytes,
        duration_secs: duration,
        mb_per_sec: if duration > 0.0 {
            counts.bytes as f64 / 1e6 / duration
        } else {
            0.0
        },
        api: facts.api,
        api_calls: api,
        state_objects: facts.state_objects,
        sync_point_advanced: facts.sync_point_advanced,
        cancelled: facts.cancelled,
        lease_lost: false,
        layout: Some(facts.layout),
    }
}
