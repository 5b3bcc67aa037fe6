//! The run report's lists (files left out, flagged, failed, deleted dossiers, objects left in
//! place, warnings) in memory that does not grow with the démarche.
//!
//! Rules:
//! - Each list keeps its first [`REPORT_LISTED`] entries, in the order they came, and counts
//!   them all ([`ListCounts`]). A million files pending a scan cost a million counts, not a
//!   million entries on the heap.
//! - Every entry is also appended as it comes, one [`ReportLine`] per line, to a temporary file
//!   of the machine (unnamed: nothing is left behind, even after kill -9). When a list was
//!   longer than the report shows, that file is uploaded as `.dsfiles/runs/{run_id}.lists.jsonl`
//!   at the end of the run and the report names it; otherwise it is dropped, and the report
//!   alone is complete.
//! - The lists are what the run observed, not state: losing them (no temporary file, the
//!   upload fails) is logged and leaves the run's outcome, its counts and its first entries as
//!   they are, like a report that cannot be written.

use std::fs::File;
use std::io::{BufWriter, Seek as _, SeekFrom, Write as _};

use futures::StreamExt as _;
use tokio_util::io::ReaderStream;

use crate::fetch;
use crate::sink::{ObjectMeta, Sink};
use crate::wire::{
    Failure, FileStatus, Flagged, Kept, ListCounts, REPORT_LISTED, RUNS_PREFIX, ReportLine, Skipped,
};

/// The first [`REPORT_LISTED`] entries of a list.
#[derive(Debug)]
pub(super) struct Listed<T>(pub Vec<T>);

impl<T> Default for Listed<T> {
    fn default() -> Self {
        Listed(Vec::new())
    }
}

impl<T> Listed<T> {
    fn keep(&mut self, entry: T, count: &mut u64) {
        *count = count.saturating_add(1);
        if self.0.len() < REPORT_LISTED {
            self.0.push(entry);
        }
    }
}

/// The run's lists: their first entries, their counts, and the spool of all of them.
#[derive(Debug, Default)]
pub(super) struct Lists {
    pub unscanned: Listed<Skipped>,
    pub flagged: Listed<Flagged>,
    pub failed: Listed<Failure>,
    pub deleted: Listed<u64>,
    pub kept: Listed<Kept>,
    pub warnings: Listed<String>,
    pub counts: ListCounts,
    spool: Spool,
}

/// Where every entry goes as it comes.
#[derive(Debug, Default)]
enum Spool {
    /// No entry yet: no file.
    #[default]
    Unopened,
    Open(BufWriter<File>),
    /// The file could not be created or written: only the first entries are kept.
    Lost,
}

impl Spool {
    fn append(&mut self, line: &ReportLine) {
        if matches!(self, Spool::Unopened) {
            *self = match tempfile::tempfile() {
                Ok(file) => Spool::Open(BufWriter::with_capacity(64 * 1024, file)),
                Err(e) => lost(&e),
            };
        }
        if let Spool::Open(out) = self {
            let written = serde_json::to_writer(&mut *out, line)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"));
            if let Err(e) = written {
                *self = lost(&e);
            }
        }
    }
}

fn lost(e: &std::io::Error) -> Spool {
    tracing::warn!(
        "cannot keep the run report's full lists in a temporary file ({e}); the report keeps \
         the first {REPORT_LISTED} entries of each"
    );
    Spool::Lost
}

impl Lists {
    /// Records one entry.
    pub fn push(&mut self, line: ReportLine) {
        self.spool.append(&line);
        let counts = &mut self.counts;
        match line {
            ReportLine::SkippedUnscanned(s) => {
                self.unscanned.keep(s, &mut counts.skipped_unscanned)
            }
            ReportLine::Flagged(f) => {
                if f.flag == FileStatus::ChecksumMismatch {
                    counts.checksum_mismatch = counts.checksum_mismatch.saturating_add(1);
                }
                self.flagged.keep(f, &mut counts.flagged);
            }
            ReportLine::Failed(f) => self.failed.keep(f, &mut counts.failed),
            ReportLine::DeletedDossier { dossier } => {
                self.deleted.keep(dossier, &mut counts.deleted_dossiers)
            }
            ReportLine::Kept(k) => self.kept.keep(k, &mut counts.kept),
            ReportLine::Warning { message } => self.warnings.keep(message, &mut counts.warnings),
        }
    }

    /// Whether a list is longer than the report shows.
    fn overflowed(&self) -> bool {
        let c = &self.counts;
        [
            c.skipped_unscanned,
            c.flagged,
            c.failed,
            c.deleted_dossiers,
            c.kept,
            c.warnings,
        ]
        .iter()
        .any(|&n| n > REPORT_LISTED as u64)
    }

    /// Uploads every entry as `.dsfiles/runs/{run_id}.lists.jsonl` when a list overflowed, and
    /// returns its key (`None`: the report's lists are complete, or the upload failed).
    pub async fn publish(&mut self, sink: &dyn Sink, run_id: &str) -> Option<String> {
        if !self.overflowed() {
            return None;
        }
        let Spool::Open(out) = std::mem::replace(&mut self.spool, Spool::Lost) else {
            return None;
        };
        let key = format!("{RUNS_PREFIX}{run_id}.lists.jsonl");
        match upload(sink, &key, out).await {
            Ok(()) => Some(key),
            Err(reason) => {
                tracing::warn!("cannot write the run report's lists `{key}`: {reason}");
                None
            }
        }
    }
}

/// Streams the spool to `key`, a chunk at a time.
async fn upload(sink: &dyn Sink, key: &str, out: BufWriter<File>) -> Result<(), String> {
    let mut file = out.into_inner().map_err(|e| e.error().to_string())?;
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let meta = ObjectMeta {
        content_type: Some("application/x-ndjson".to_owned()),
        ..ObjectMeta::default()
    };
    let mut upload = sink
        .create(key, &meta)
        .await
        .map_err(|e| fetch::error_chain(&e))?;
    let mut chunks = ReaderStream::with_capacity(tokio::fs::File::from_std(file), 256 * 1024);
    while let Some(chunk) = chunks.next().await {
        let written = match chunk {
            Ok(chunk) => upload
                .write(chunk)
                .await
                .map_err(|e| fetch::error_chain(&e)),
            Err(e) => Err(e.to_string()),
        };
        if let Err(reason) = written {
            upload.abort().await.ok();
            return Err(reason);
        }
    }
    upload.commit().await.map_err(|e| fetch::error_chain(&e))
}

#[cfg(test)]
mod tests;
