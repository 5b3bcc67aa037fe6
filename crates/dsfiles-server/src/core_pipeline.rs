//! [`CorePipeline`]: the production [`Pipeline`], calling `dsfiles_core::{sync, list}` with
//! one DS client per token (clients share their rate limiter and counters, so the service
//! stays under DS's per-token limit across concurrent jobs). Only translation lives here:
//! request → options, core events → job counters, report → outcome, errors → kinds.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dsfiles_core::{ds, extract, sink};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::api::{
    Counters, DestinationBusy, FileFailure, LeaseHolder, ListedFile, Since, SyncSpec,
};
use crate::pipeline::{
    DsStats, PagedFile, Pipeline, PipelineError, PipelineErrorKind, ProgressUpdate, SyncOutcome,
    SyncProgress,
};

/// The pipeline of `dsfiles-core`, with the DS clients of the service.
#[derive(Clone)]
pub struct CorePipeline {
    default: ds::Client,
    /// Démarches reached with their own token.
    per_demarche: BTreeMap<u64, ds::Client>,
    /// Options passed to `dsfiles_sink::open` (`--dest-option`-style settings).
    dest_options: Vec<(String, String)>,
    /// HTTP settings of file downloads (timeouts, backoff, attempts).
    fetch: dsfiles_core::FetchOptions,
    /// Who this service is in destination leases.
    holder: dsfiles_core::wire::Holder,
}

impl fmt::Debug for CorePipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CorePipeline")
            .field(
                "per_demarche",
                &self.per_demarche.keys().collect::<Vec<_>>(),
            )
            .field(
                "dest_options",
                &self.dest_options.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("fetch", &self.fetch)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl CorePipeline {
    /// Clients for `config` (the default token) and for each démarche with its own token;
    /// file downloads use [`dsfiles_core::FetchOptions::default`] until
    /// [`with_fetch_options`](CorePipeline::with_fetch_options).
    pub fn new(
        config: ds::ClientConfig,
        demarche_tokens: BTreeMap<u64, ds::Token>,
    ) -> Result<CorePipeline, Error> {
        let default =
            ds::Client::new(config.clone()).map_err(|e| Error::Pipeline(e.to_string()))?;
        let mut per_demarche = BTreeMap::new();
        for (demarche, token) in demarche_tokens {
            let mut config = config.clone();
            config.token = token;
            let client = ds::Client::new(config)
                .map_err(|e| Error::Pipeline(format!("client of démarche `{demarche}`: {e}")))?;
            per_demarche.insert(demarche, client);
        }
        Ok(CorePipeline {
            default,
            per_demarche,
            dest_options: Vec::new(),
            fetch: dsfiles_core::FetchOptions {
                api_endpoint: Some(config.endpoint.clone()),
                ..dsfiles_core::FetchOptions::default()
            },
            holder: dsfiles_core::lease::this_process(None, SERVICE_TOOL),
        })
    }

    /// This service as a lease holder: `replica` (a replica id, when the deployment gives
    /// one) with the host name and pid; without it, host name and pid only.
    pub fn with_replica(mut self, replica: Option<String>) -> CorePipeline {
        self.holder = dsfiles_core::lease::this_process(replica, SERVICE_TOOL);
        self
    }

    /// Options for every destination, as `dsfiles sync --dest-option` takes them
    /// (object-store settings such as `region`, dsfiles' own `part_size`, `fsync`, ...).
    /// Their values may be credentials: `Debug` shows the keys only.
    pub fn with_dest_options(mut self, options: Vec<(String, String)>) -> CorePipeline {
        self.dest_options = options;
        self
    }

    /// HTTP settings of every sync's file downloads (connect and read timeouts, backoff,
    /// attempts, allowed file hosts, deadlines), as `dsfiles sync` resolves them. Without an
    /// `api_endpoint`, the DS endpoint of [`CorePipeline::new`]'s config is kept.
    pub fn with_fetch_options(mut self, mut fetch: dsfiles_core::FetchOptions) -> CorePipeline {
        fetch.api_endpoint = fetch.api_endpoint.or(self.fetch.api_endpoint.take());
        self.fetch = fetch;
        self
    }

    fn client(&self, demarche: u64) -> ds::Client {
        self.per_demarche
            .get(&demarche)
            .unwrap_or(&self.default)
            .clone()
    }
}

/// What the service writes as `tool` in the destination leases it takes.
const SERVICE_TOOL: &str = concat!("dsfiles serve ", env!("CARGO_PKG_VERSION"));

/// Adapts core events to the job's counters and SSE subscribers.
struct Forward(Arc<dyn SyncProgress>);

impl dsfiles_core::ProgressSink for Forward {
    fn event(&self, event: &dsfiles_core::Event) {
        use dsfiles_core::Event as E;
        let update = match event {
            E::PageFetched { dossiers, .. } => ProgressUpdate::PageFetched {
                dossiers: *dossiers as u64,
            },
            E::FilePlanned { bytes } => ProgressUpdate::FilePlanned { bytes: *bytes },
            E::FileSkipped { .. } => ProgressUpdate::FileSkipped,
            E::BytesWritten { n } => ProgressUpdate::BytesWritten { n: *n },
            E::FileStored { bytes, .. } => ProgressUpdate::FileStored { bytes: *bytes },
            E::FileFailed { key, reason } => ProgressUpdate::FileFailed {
                key: key.clone(),
                reason: reason.clone(),
            },
            E::Retry { .. } => ProgressUpdate::Retry,
            // A seda job's dossiers: counted as its module doc (`seda_jobs.rs`) says.
            E::DossiersListed { dossiers } => ProgressUpdate::PageFetched {
                dossiers: *dossiers,
            },
            E::PackageWritten { bytes, .. } => ProgressUpdate::FileStored { bytes: *bytes },
            E::PackageUnchanged { .. } | E::PackageSkipped { .. } => ProgressUpdate::FileSkipped,
            E::PackageFailed { dossier, reason } => ProgressUpdate::FileFailed {
                key: format!("dossier {dossier}"),
                reason: reason.clone(),
            },
            _ => ProgressUpdate::None,
        };
        self.0.record(update, event);
    }
}

pub(crate) fn classify(err: &dsfiles_core::Error) -> PipelineErrorKind {
    use dsfiles_core::ErrorKind as K;
    if let dsfiles_core::Error::Api(ds_error) = err
        && let ds::Error::CursorRejected { .. } = ds_error.as_ref()
    {
        return PipelineErrorKind::ResumeRejected;
    }
    match err.kind() {
        K::Auth | K::Access => PipelineErrorKind::Access,
        K::NotFound => PipelineErrorKind::NotFound,
        K::Api | K::Network => PipelineErrorKind::Upstream,
        K::Config => PipelineErrorKind::Invalid,
        K::Destination => PipelineErrorKind::Destination,
        K::Busy => PipelineErrorKind::Busy,
        K::Cancelled => PipelineErrorKind::Cancelled,
        K::Internal => PipelineErrorKind::Internal,
    }
}

/// The job's dossier.json setting (checked when the request was accepted; checked again for
/// jobs read back from the history); `None` when the job names none: what the destination was
/// last synced with.
fn data_output(spec: &SyncSpec) -> Result<Option<dsfiles_core::DataOutput>, PipelineError> {
    use dsfiles_core::DataOutput;
    Ok(match (&spec.data_layout, spec.no_data) {
        (_, Some(true)) => Some(DataOutput::Off),
        (None, Some(false)) => Some(DataOutput::FollowLayout),
        (None, None) => None,
        (Some(template), _) => Some(DataOutput::At(
            dsfiles_core::extract::DataLayout::parse(template).map_err(|e| {
                PipelineError::new(
                    PipelineErrorKind::Invalid,
                    format!("invalid `data_layout`: {e}"),
                )
            })?,
        )),
    })
}

fn pipeline_error(err: dsfiles_core::Error) -> PipelineError {
    PipelineError::new(classify(&err), err.to_string())
}

pub(crate) fn destination_busy(busy: &dsfiles_core::Busy) -> DestinationBusy {
    let holder = &busy.holder;
    DestinationBusy {
        code: PipelineErrorKind::Busy.code(),
        message: busy.to_string(),
        holder: LeaseHolder {
            host: holder.host.clone(),
            pid: holder.pid,
            replica: holder.replica.clone(),
            tool: holder.tool.clone(),
        },
        since: busy.since,
        expires_at: busy.expires_at,
    }
}

fn listed(record: &extract::FileRecord) -> ListedFile {
    ListedFile {
        file_id: record.file_id(),
        demarche: record.demarche,
        dossier: record.dossier,
        state: record.state.clone(),
        source: serde_json::to_value(record.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        champ_id: record.champ_id.clone(),
        label: record.label.clone(),
        row: record.row,
        filename: record.filename.clone(),
        content_type: record.content_type.clone(),
        byte_size: record.byte_size,
        checksum: record.checksum.clone(),
        virus_scan: record.virus_scan.clone(),
        created_at: record.created_at.clone(),
    }
}

#[async_trait::async_trait]
impl Pipeline for CorePipeline {
    async fn sync(
        &self,
        spec: SyncSpec,
        progress: Arc<dyn SyncProgress>,
        cancel: CancellationToken,
    ) -> Result<SyncOutcome, PipelineError> {
        let sink = sink::open(&spec.dest, &self.dest_options).map_err(|e| {
            PipelineError::new(
                PipelineErrorKind::Destination,
                format!("cannot open destination `{}`: {e}", spec.dest),
            )
        })?;
        let mut options = dsfiles_core::SyncOptions::new(spec.demarche);
        options.filter.include_generated = spec.include_generated();
        options.filter.include_entreprise = spec.include_entreprise();
        options.filter.dossiers = spec.dossiers.clone();
        options.jobs = spec.jobs;
        options.data = data_output(&spec)?;
        if let Some(template) = &spec.layout {
            options.layout = Some(dsfiles_core::extract::Layout::parse(template).map_err(|e| {
                PipelineError::new(PipelineErrorKind::Invalid, format!("invalid `layout`: {e}"))
            })?);
        }
        options.fetch = self.fetch.clone();
        options.lease = dsfiles_core::lease::LeaseOptions {
            holder: self.holder.clone(),
            break_lease: spec.break_lease,
            ..dsfiles_core::lease::LeaseOptions::default()
        };
        options.since = match spec.since {
            Since::Auto => dsfiles_core::Since::Auto,
            Since::Full => dsfiles_core::Since::Full,
            Since::At(at) => dsfiles_core::Since::At(at),
        };
        let live = progress.clone();
        let progress: dsfiles_core::Progress = Arc::new(Forward(progress));
        let report =
            dsfiles_core::sync(self.client(spec.demarche), sink, options, progress, cancel)
                .await
                .map_err(pipeline_error)?;
        if report.lease_lost {
            return Err(PipelineError::new(
                PipelineErrorKind::Busy,
                format!(
                    "another writer took démarche `{}`'s lease on `{}` over during the run, which \
                     stopped writing after storing `{}` files",
                    spec.demarche, report.dest, report.stored
                ),
            ));
        }
        let failures = report
            .failed
            .iter()
            .map(|f| FileFailure {
                key: f.key.clone(),
                reason: f.reason.clone(),
            })
            .collect();
        let unsuccessful = report.exit_status(false) != dsfiles_core::RunStatus::Ok;
        // The report's counts are authoritative; byte totals per file come from the events.
        Ok(SyncOutcome {
            counters: Counters {
                dossiers: report.dossiers,
                files_planned: report.files_planned,
                files_stored: report.stored,
                files_skipped: report.skipped_unchanged,
                files_failed: report.counts.failed,
                bytes_downloaded: report.bytes_downloaded,
                ..live.counters()
            },
            failures,
            cancelled: report.cancelled,
            unsuccessful,
            warnings: report.warnings,
            seda: None,
        })
    }

    async fn seda(
        &self,
        spec: SyncSpec,
        progress: Arc<dyn SyncProgress>,
        cancel: CancellationToken,
    ) -> Result<SyncOutcome, PipelineError> {
        let live = progress.clone();
        let progress: dsfiles_core::Progress = Arc::new(Forward(progress));
        let (options, holder) = (&self.dest_options, self.holder.clone());
        let mut outcome =
            crate::seda_jobs::package(spec, options, holder, progress, cancel).await?;
        outcome.counters.bytes_downloaded = live.counters().bytes_downloaded;
        Ok(outcome)
    }

    async fn check_seda_lease(&self, out: &str) -> Result<Option<DestinationBusy>, PipelineError> {
        crate::seda_jobs::check_lease(out, &self.dest_options).await
    }

    async fn check_lease(&self, spec: &SyncSpec) -> Result<Option<DestinationBusy>, PipelineError> {
        let sink = sink::open(&spec.dest, &self.dest_options).map_err(|e| {
            PipelineError::new(
                PipelineErrorKind::Destination,
                format!("cannot open destination `{}`: {e}", spec.dest),
            )
        })?;
        match dsfiles_core::lease::check(sink.as_ref(), spec.demarche).await {
            Ok(()) => Ok(None),
            Err(dsfiles_core::Error::DestinationBusy(busy)) => Ok(Some(destination_busy(&busy))),
            Err(e) => Err(pipeline_error(e)),
        }
    }

    fn list_files(
        &self,
        demarche: u64,
        since: Option<DateTime<Utc>>,
        resume: Option<String>,
        cancel: CancellationToken,
    ) -> BoxStream<'static, Result<PagedFile, PipelineError>> {
        let options = dsfiles_core::ListOptions {
            demarche,
            filter: ds::DossierFilter {
                updated_since: since,
                after: resume.clone(),
                ..ds::DossierFilter::default()
            },
            include: extract::Include::default(),
        };
        // Records follow their dossier: the page of the last dossier seen is theirs.
        let mut page = resume;
        dsfiles_core::list(self.client(demarche), options, cancel)
            .filter_map(move |item| {
                let out = match item {
                    Ok(dsfiles_core::ListItem::Record(record)) => Some(Ok(PagedFile {
                        file: listed(&record),
                        page: page.clone(),
                    })),
                    Ok(dsfiles_core::ListItem::Dossier { resume, .. }) => {
                        page = resume;
                        None
                    }
                    Ok(dsfiles_core::ListItem::Warning(warning)) => {
                        tracing::warn!(demarche, warning = %warning, "incomplete listing");
                        None
                    }
                    Err(err) => Some(Err(pipeline_error(err))),
                };
                futures::future::ready(out)
            })
            .boxed()
    }

    fn ds_stats(&self) -> DsStats {
        std::iter::once(&self.default)
            .chain(self.per_demarche.values())
            .map(ds::Client::stats)
            .fold(DsStats::default(), |acc, s| DsStats {
                api_calls: acc.api_calls + s.api_calls,
                retries: acc.retries + s.retries,
                rate_limited: acc.rate_limited + s.rate_limited,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sync refused by another writer's lease ends its job with `destination_busy`.
    #[test]
    fn a_busy_destination_is_destination_busy() {
        let at = DateTime::UNIX_EPOCH;
        let busy = dsfiles_core::Busy {
            dest: "/archive".into(),
            scope: dsfiles_core::lease::LeaseScope::Sync { demarche: 7 },
            key: ".dsfiles/demarches/7/lease".into(),
            holder: dsfiles_core::lease::this_process(Some("r-2".into()), SERVICE_TOOL),
            since: at,
            expires_at: at,
        };
        let error = pipeline_error(dsfiles_core::Error::DestinationBusy(Box::new(busy.clone())));
        assert_eq!(error.kind, PipelineErrorKind::Busy);
        assert_eq!(error.kind.code(), "destination_busy");
        assert!(error.message.contains("replica `r-2`"), "{}", error.message);
        let body = destination_busy(&busy);
        assert_eq!(body.code, "destination_busy");
        assert_eq!(body.holder.replica.as_deref(), Some("r-2"));
        assert_eq!(body.message, error.message);
        let fenced = dsfiles_core::Error::from(sink::Error::Fenced { key: "k".into() });
        assert_eq!(classify(&fenced), PipelineErrorKind::Busy);
    }
}
