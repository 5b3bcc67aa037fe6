//! The seam between the HTTP service and the pipeline: [`Pipeline`] is what jobs and the file
//! listing call, [`SyncProgress`] what a sync reports through. [`CorePipeline`](crate::CorePipeline)
//! implements the first with `dsfiles-core`, the job manager the second; tests implement
//! either with scripted fakes. The seam names no type of either side, so each side can change
//! alone. Nothing here decides what to download.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use crate::api::{Counters, DestinationBusy, FileFailure, ListedFile, SyncSpec};

/// Runs syncs and lists files on behalf of the service.
#[async_trait::async_trait]
pub trait Pipeline: Send + Sync + fmt::Debug + 'static {
    /// Runs one sync to its end, reporting progress through `progress`, stopping cleanly
    /// when `cancel` fires (then `Ok` with `cancelled: true`, or `Err` of kind `Cancelled`).
    async fn sync(
        &self,
        spec: SyncSpec,
        progress: Arc<dyn SyncProgress>,
        cancel: CancellationToken,
    ) -> Result<SyncOutcome, PipelineError>;

    /// The file records of `demarche` (dossiers updated since `since` when given), in a
    /// stable order, without downloading anything. With `resume` (a [`PagedFile::page`]
    /// seen earlier), the listing starts at that DS page instead of the beginning: records
    /// before it are not listed again, records of that page may be. A `resume` DS refuses
    /// ends the stream with an error of kind [`PipelineErrorKind::ResumeRejected`].
    fn list_files(
        &self,
        demarche: u64,
        since: Option<DateTime<Utc>>,
        resume: Option<String>,
        cancel: CancellationToken,
    ) -> BoxStream<'static, Result<PagedFile, PipelineError>>;

    /// DS API counters since the service started, for `/metrics`.
    fn ds_stats(&self) -> DsStats;

    /// Whether another live writer (a CLI run, another replica) holds the lease of
    /// `spec.demarche` on `spec.dest` right now: `Ok(Some(..))` names it. Reads only; the job
    /// still takes the lease when it runs. `Err` when the lease could not be read.
    async fn check_lease(&self, spec: &SyncSpec) -> Result<Option<DestinationBusy>, PipelineError>;

    /// Runs one seda job (`spec.seda` set: docs/seda.md) to its end, like [`Pipeline::sync`].
    /// A pipeline that runs no seda job fails it.
    async fn seda(
        &self,
        spec: SyncSpec,
        progress: Arc<dyn SyncProgress>,
        cancel: CancellationToken,
    ) -> Result<SyncOutcome, PipelineError> {
        let _ = (spec, progress, cancel);
        Err(PipelineError::new(
            PipelineErrorKind::Internal,
            "this service's pipeline runs no seda job",
        ))
    }

    /// Whether another live writer holds the seda lease of `out` right now, like
    /// [`Pipeline::check_lease`]. A pipeline that runs no seda job sees none.
    async fn check_seda_lease(&self, out: &str) -> Result<Option<DestinationBusy>, PipelineError> {
        let _ = out;
        Ok(None)
    }
}

/// A listed file with the position to list again from its DS page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagedFile {
    pub file: ListedFile,
    /// The DS cursor of the page holding this file (`None`: the first page), for
    /// [`Pipeline::list_files`]'s `resume`. Internal: never shown to API clients as such.
    pub page: Option<String>,
}

/// The end of a sync that ran (possibly with per-file failures, possibly cancelled).
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    /// Final counters from the report (they replace the live ones).
    pub counters: Counters,
    pub failures: Vec<FileFailure>,
    pub cancelled: bool,
    /// Files failed or flagged in a way that makes the run unsuccessful.
    pub unsuccessful: bool,
    /// What made the run incomplete besides failed files (a dossier DS did not return, a
    /// listing DS broke off), from the report: with no failed file, the job's error says it.
    pub warnings: Vec<String>,
    /// A seda job's counts (`None` for a sync).
    pub seda: Option<crate::seda_jobs::SedaResult>,
}

/// DS API usage, summed over every client the pipeline holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DsStats {
    pub api_calls: u64,
    pub retries: u64,
    pub rate_limited: u64,
}

/// A run-level failure of the pipeline, classified for HTTP answers and job records.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct PipelineError {
    pub kind: PipelineErrorKind,
    /// Names the démarche, dossier or destination; never a secret or a signed URL.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineErrorKind {
    /// The démarche or dossier does not exist (for this token).
    NotFound,
    /// DS refused the token or the démarche.
    Access,
    /// DS or the network failed after retries.
    Upstream,
    /// Another live writer holds the démarche's lease on the destination.
    Busy,
    /// The destination could not be opened or written.
    Destination,
    /// Settings the pipeline rejected (layout, filter).
    Invalid,
    /// DS refused the position a listing was asked to resume from.
    ResumeRejected,
    Cancelled,
    Internal,
}

impl PipelineErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            PipelineErrorKind::NotFound => "not_found",
            PipelineErrorKind::Access => "ds_access_refused",
            PipelineErrorKind::Upstream => "ds_unavailable",
            PipelineErrorKind::Busy => "destination_busy",
            PipelineErrorKind::Destination => "destination_failed",
            PipelineErrorKind::Invalid => "invalid_value",
            PipelineErrorKind::ResumeRejected => "cursor_expired",
            PipelineErrorKind::Cancelled => "cancelled",
            PipelineErrorKind::Internal => "internal",
        }
    }
}

impl PipelineError {
    pub fn new(kind: PipelineErrorKind, message: impl Into<String>) -> PipelineError {
        PipelineError {
            kind,
            message: message.into(),
        }
    }
}

/// What a running sync reports progress through (the job manager counts it into the job and
/// forwards it to SSE subscribers; tests record it).
pub trait SyncProgress: Send + Sync + fmt::Debug {
    /// Counts `update` and forwards `event` (a core event, serialized only when someone
    /// listens). Never blocks.
    fn record(&self, update: ProgressUpdate, event: &dyn ProgressEvent);

    /// The counters so far (a pipeline returns them in [`SyncOutcome`] when it has no report).
    fn counters(&self) -> Counters;
}

/// A progress event as SSE subscribers receive it: any serializable value.
pub trait ProgressEvent {
    /// The event as JSON.
    fn to_json(&self) -> serde_json::Result<String>;
}

impl<T: serde::Serialize + ?Sized> ProgressEvent for T {
    fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }
}

/// A progress report from the pipeline, as the job counters see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressUpdate {
    /// Nothing to count (the event is only forwarded to SSE subscribers).
    None,
    PageFetched {
        dossiers: u64,
    },
    FilePlanned {
        bytes: u64,
    },
    FileSkipped,
    BytesWritten {
        n: u64,
    },
    FileStored {
        bytes: u64,
    },
    FileFailed {
        key: String,
        reason: String,
    },
    Retry,
}
