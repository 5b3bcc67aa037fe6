//! [`sync`]: pages → extraction → plan against the dossier's shard → concurrent verified
//! downloads → shard write → report.
//!
//! Concurrency: the listing is polled in the same loop that owns a [`JoinSet`] of dossier
//! tasks; at most one page of dossiers waits in a buffer, at most `2 × jobs` dossiers are in
//! flight, and a semaphore of `jobs` permits bounds the downloads across dossiers (a sliding
//! window, not batches). Every task is owned by the loop and awaited; on cancellation listing
//! stops, downloads abort their uploads, and every dossier writes the shard of what settled.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, StreamExt as _};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::extract::{self, FileRecord, KeyAllocator, RelKey};
use crate::fetch::{self, Dest, FetchFailure, Fetched, Fetcher, Refresh};
use crate::hash::Hasher;
use crate::options::{SINCE_MARGIN, Since, SyncOptions};
use crate::plan::{self, Action, Download, PlanInput};
use crate::removal::{self, Verdict};
use crate::sink::Sink;
use crate::state;
use crate::wire::{
    ApiCalls, Event, Failure, FileStatus, Flagged, Kept, RUNS_PREFIX, Recheck, STAGING_PREFIX,
    Shard, ShardFile, Skipped, SyncPoint, SyncReport, WIRE_VERSION, recheck_key, shard_key,
    staging_marker, staging_prefix, sync_point_key,
};
use crate::{Error, Progress, ds};

/// Dossiers waiting for a task (about one page).
const BUFFERED_DOSSIERS: usize = 100;
/// How long a refreshed dossier's records are reused by other files of the same dossier.
const REFRESH_TTL: Duration = Duration::from_secs(30);

/// Synchronizes démarche `opts.demarche` into `sink`; see the crate docs and [`SyncReport`].
///
/// `Err` only for run-level failures (DS refused the token or the démarche, the destination
/// cannot be read); per-file failures are in the report. A cancelled run returns its report
/// with `cancelled: true`.
pub async fn sync(
    client: ds::Client,
    sink: Arc<dyn Sink>,
    opts: SyncOptions,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<SyncReport, Error> {
    if opts.jobs == 0 {
        return Err(Error::InvalidOption {
            name: "jobs",
            reason: "`0`: at least one download must be allowed".to_owned(),
        });
    }
    let started_at = Utc::now();
    let clock = Instant::now();
    let run_id = format!(
        "{}-{}",
        started_at.format("%Y%m%dT%H%M%SZ"),
        uuid::Uuid::new_v4().simple()
    );

    let stored = state::read_demarche(sink.as_ref(), opts.demarche).await?;
    if let Some(warning) = &stored.warning {
        tracing::warn!("{warning}");
    }
    let (sync_point, previous_recheck) = (stored.sync_point, stored.recheck);
    remove_staging(sink.as_ref(), opts.demarche).await;
    // Layouts with `{sha256}` stage every file: the marker goes first (a run-level failure).
    // Other layouts stage a file only when its new key is occupied, and write it then.
    let staging_marker = if opts.layout.needs_sha256() {
        state::put_marker(sink.as_ref(), &staging_marker(opts.demarche)).await?;
        tokio::sync::OnceCell::new_with(Some(()))
    } else {
        tokio::sync::OnceCell::new()
    };

    let since = match opts.since {
        Since::Full => opts.filter.updated_since,
        Since::At(at) => Some(at),
        Since::Auto => match &sync_point {
            Some(point) if point.demarche == opts.demarche => Some(
                point.last_success_started_at
                    - chrono::Duration::from_std(SINCE_MARGIN)
                        .unwrap_or_else(|_| chrono::Duration::zero()),
            ),
            _ => opts.filter.updated_since,
        },
    };
    let mut filter = opts.filter.clone();
    filter.updated_since = since;
    filter.include_generated |= opts.include.generated;
    filter.include_entreprise |= opts.include.entreprise;
    let complete = filter.dossiers.is_empty()
        && filter.state.is_none()
        && filter.archived.is_none()
        && filter.groupe_instructeur.is_none()
        && filter.created_since.is_none()
        // A listing started mid-démarche does not see every dossier.
        && filter.after.is_none();
    let refresh_filter = ds::DossierFilter {
        include_generated: filter.include_generated,
        include_entreprise: filter.include_entreprise,
        ..ds::DossierFilter::default()
    };

    let run = Arc::new(Run {
        fetcher: Fetcher::new(opts.fetch.clone(), opts.retries)?,
        downloads: Arc::new(Semaphore::new(opts.jobs)),
        keys: Mutex::new(KeyAllocator::new()),
        client: client.clone(),
        sink: Arc::clone(&sink),
        refresh_filter,
        progress: Arc::clone(&progress),
        cancel: cancel.clone(),
        staging_marker,
        run_id: run_id.clone(),
        refreshes: AtomicU64::new(0),
        opts,
    });
    let mut totals = Totals::default();

    // Dossiers to re-check (pending scans, earlier failures) come first, fetched many per
    // request: DS did not necessarily update them.
    let mut buffer: VecDeque<Value> = VecDeque::new();
    let mut recheck_later: BTreeSet<u64> = BTreeSet::new();
    let mut rechecked = Rechecked::default();
    let calls = client.stats().api_calls;
    if previous_recheck.demarche == run.opts.demarche
        && filter.dossiers.is_empty()
        && since.is_some()
    {
        rechecked = fetch_rechecks(&run, &previous_recheck.dossiers, &mut totals).await?;
        buffer.extend(std::mem::take(&mut rechecked.found));
        recheck_later.extend(rechecked.failed.iter().copied());
    }
    totals.api.recheck = client.stats().api_calls.saturating_sub(calls);
    let calls = client.stats().api_calls;

    let pages = client.dossiers(run.opts.demarche, filter.clone());
    let mut pages = std::pin::pin!(pages);
    let mut tasks: JoinSet<DossierOutcome> = JoinSet::new();
    let mut in_flight: std::collections::HashMap<tokio::task::Id, u64> =
        std::collections::HashMap::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let max_in_flight = run.opts.jobs.saturating_mul(2).max(4);
    let mut listing_done = false;
    let mut listing_error: Option<ds::Error> = None;
    let mut received: u64 = 0;
    loop {
        while tasks.len() < max_in_flight {
            let Some(dossier) = buffer.pop_front() else {
                break;
            };
            let Some(number) = dossier.get("number").and_then(Value::as_u64) else {
                totals.warn(
                    &progress,
                    "DS returned a dossier without a `number`; it is skipped".to_owned(),
                );
                continue;
            };
            if !seen.insert(number) {
                continue;
            }
            let handle = tasks.spawn(Arc::clone(&run).process(number, dossier));
            in_flight.insert(handle.id(), number);
        }
        if listing_done && buffer.is_empty() && tasks.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            () = cancel.cancelled(), if !listing_done => {
                listing_done = true;
                buffer.clear();
            }
            Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => match joined {
                Ok((id, outcome)) => {
                    in_flight.remove(&id);
                    totals.merge(outcome);
                }
                Err(e) => {
                    let dossier = in_flight.remove(&e.id()).unwrap_or_default();
                    totals.tally.failed.push(Failure {
                        dossier,
                        file_id: None,
                        key: shard_key(dossier),
                        reason: format!("internal error while syncing the dossier: {e}"),
                        code: None,
                    });
                    recheck_later.insert(dossier);
                }
            },
            page = pages.next(), if !listing_done && buffer.len() < BUFFERED_DOSSIERS => match page {
                Some(Ok(batch)) => {
                    received = received.saturating_add(batch.dossiers.len() as u64);
                    progress.event(&Event::PageFetched { dossiers: batch.dossiers.len(), total_dossiers: received });
                    for error in &batch.errors {
                        totals.warn(&progress, format!("DS returned an error with the dossiers: {error}"));
                    }
                    buffer.extend(batch.dossiers);
                }
                Some(Err(e)) => {
                    listing_done = true;
                    if received == 0 && tasks.is_empty() && buffer.is_empty() {
                        return Err(e.into());
                    }
                    listing_error = Some(e);
                }
                None => listing_done = true,
            },
            else => break,
        }
    }

    totals.api.refresh = run.refreshes.load(Ordering::Relaxed);
    totals.api.listing = client
        .stats()
        .api_calls
        .saturating_sub(calls)
        .saturating_sub(totals.api.refresh);

    let cancelled = cancel.is_cancelled();
    let calls = client.stats().api_calls;
    if !cancelled && listing_error.is_none() && filter.dossiers.is_empty() {
        deleted_dossiers(&run, since, &mut totals).await;
    }
    totals.api.deleted = client.stats().api_calls.saturating_sub(calls);

    let previous = (previous_recheck, stored.recheck_legacy);
    write_recheck(
        &run,
        previous,
        recheck_later,
        &rechecked.dropped,
        &mut totals,
    )
    .await;

    let advance = complete
        && !cancelled
        && listing_error.is_none()
        && totals.tally.failed.is_empty()
        && totals.tally.warnings.is_empty();
    if advance {
        write_sync_point(&run, started_at, &mut totals).await;
    }

    let duration = clock.elapsed().as_secs_f64();
    let report = SyncReport {
        version: WIRE_VERSION,
        run_id: run_id.clone(),
        demarche: run.opts.demarche,
        dest: sink.describe(),
        since,
        started_at,
        finished_at: Utc::now(),
        dossiers: totals.processed.len() as u64,
        files_planned: totals.tally.files,
        stored: totals.tally.stored,
        skipped_unchanged: totals.tally.unchanged,
        updated: totals.tally.updated,
        skipped_unscanned: totals.tally.unscanned,
        flagged: totals.tally.flagged,
        failed: totals.tally.failed,
        deleted_dossiers: totals.deleted,
        removed_upstream: totals.tally.removed,
        pruned: run.opts.prune,
        kept: totals.tally.kept,
        warnings: totals.tally.warnings,
        bytes_downloaded: totals.tally.bytes,
        duration_secs: duration,
        mb_per_sec: if duration > 0.0 {
            totals.tally.bytes as f64 / 1e6 / duration
        } else {
            0.0
        },
        api: client.stats(),
        api_calls: totals.api,
        sync_point_advanced: advance,
        cancelled,
    };
    let report_key = format!("{RUNS_PREFIX}{run_id}.json");
    if let Err(e) = state::write(sink.as_ref(), &report_key, &report).await {
        tracing::warn!(
            "cannot write the run report `{report_key}`: {}",
            fetch::error_chain(&e)
        );
    }
    progress.event(&Event::Finished);
    match listing_error {
        Some(e) => Err(e.into()),
        None => Ok(report),
    }
}

/// Shared by the dossier tasks of one run.
struct Run {
    client: ds::Client,
    sink: Arc<dyn Sink>,
    opts: SyncOptions,
    refresh_filter: ds::DossierFilter,
    progress: Progress,
    cancel: CancellationToken,
    fetcher: Fetcher,
    /// Keys held in the destination (from the shards read) and reserved by this run.
    /// Never locked across an `.await`.
    keys: Mutex<KeyAllocator>,
    /// One permit per concurrent download, across dossiers.
    downloads: Arc<Semaphore>,
    /// Set once [`STAGING_MARKER`] is known to exist (written before the first staged file).
    staging_marker: tokio::sync::OnceCell<()>,
    run_id: String,
    /// `dossier(number)` requests for fresh URLs ([`DossierRefresh`]).
    refreshes: AtomicU64,
}

/// Counts and lists that both a dossier's outcome and the run's totals keep.
#[derive(Debug, Default)]
struct Tally {
    files: u64,
    stored: u64,
    unchanged: u64,
    updated: u64,
    bytes: u64,
    removed: u64,
    unscanned: Vec<Skipped>,
    flagged: Vec<Flagged>,
    failed: Vec<Failure>,
    kept: Vec<Kept>,
    warnings: Vec<String>,
}

impl Tally {
    /// Counts saturate: sizes come from DS (`byteSizeBigInt` can be near `u64::MAX`).
    fn add(&mut self, o: Tally) {
        self.files = self.files.saturating_add(o.files);
        self.stored = self.stored.saturating_add(o.stored);
        self.unchanged = self.unchanged.saturating_add(o.unchanged);
        self.updated = self.updated.saturating_add(o.updated);
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.removed = self.removed.saturating_add(o.removed);
        self.unscanned.extend(o.unscanned);
        self.flagged.extend(o.flagged);
        self.failed.extend(o.failed);
        self.kept.extend(o.kept);
        self.warnings.extend(o.warnings);
    }

    /// Records that the object at `entry.key` was left in place, and why.
    fn keep(&mut self, progress: &Progress, dossier: u64, entry: &ShardFile, reason: String) {
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
}

/// What happened to one dossier.
#[derive(Debug, Default)]
struct DossierOutcome {
    dossier: u64,
    tally: Tally,
    recheck: bool,
}

/// The run's tally.
#[derive(Debug, Default)]
struct Totals {
    processed: Vec<u64>,
    tally: Tally,
    deleted: Vec<u64>,
    recheck: Vec<u64>,
    api: ApiCalls,
}

impl Totals {
    fn merge(&mut self, o: DossierOutcome) {
        self.processed.push(o.dossier);
        self.tally.add(o.tally);
        if o.recheck {
            self.recheck.push(o.dossier);
        }
    }

    fn warn(&mut self, progress: &Progress, message: String) {
        tracing::warn!("{message}");
        progress.event(&Event::Warning {
            message: message.clone(),
        });
        self.tally.warnings.push(message);
    }
}

/// The result of one planned download.
enum Settled {
    Stored(ShardFile, Option<String>),
    Failed {
        key: String,
        reason: String,
        code: Option<&'static str>,
    },
    Cancelled,
}

impl Run {
    /// Extract, plan against the shard, download, write the shard.
    async fn process(self: Arc<Self>, number: u64, dossier: Value) -> DossierOutcome {
        let mut out = DossierOutcome {
            dossier: number,
            ..DossierOutcome::default()
        };
        let shard_key = shard_key(number);
        let dossier_failure = |out: &mut DossierOutcome, reason: String| {
            tracing::warn!(dossier = number, "{reason}");
            out.tally.failed.push(Failure {
                dossier: number,
                file_id: None,
                key: shard_key.clone(),
                reason,
                code: None,
            });
            out.recheck = true;
        };
        let records = match extract::extract(self.opts.demarche, &dossier, self.opts.include) {
            Ok(records) => records,
            Err(e) => {
                dossier_failure(&mut out, format!("dossier `{number}` cannot be read: {e}"));
                return out;
            }
        };
        let updated_at = dossier
            .get("dateDerniereModification")
            .and_then(Value::as_str);
        let state = records.first().map(|r| r.state.clone()).unwrap_or_else(|| {
            dossier
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        });
        let mut old: Option<Shard> = match state::read(self.sink.as_ref(), &shard_key).await {
            Ok(shard) => shard,
            Err(Error::Manifest { key, reason }) => {
                out.tally.warnings.push(format!(
                    "manifest shard `{key}` is unreadable and is rebuilt: {reason}"
                ));
                None
            }
            Err(e) => {
                dossier_failure(
                    &mut out,
                    format!("cannot read the manifest of dossier `{number}`: {e}"),
                );
                return out;
            }
        };
        // Entries naming keys that must never be used are dropped: their files are stored again.
        let refused = old.as_mut().map(removal::refuse_unusable_entries);
        let rewrite = refused.as_ref().is_some_and(|r| !r.is_empty());
        out.tally.warnings.extend(refused.unwrap_or_default());
        out.tally.files = records.len() as u64;
        let planned = {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(shard) = &old {
                out.tally
                    .warnings
                    .extend(plan::hold_shard_keys(shard, &mut keys));
            }
            plan::plan(
                PlanInput {
                    records,
                    shard: old.as_ref(),
                    updated_at,
                    allow_unscanned: self.opts.allow_unscanned,
                },
                &self.opts.layout,
                &mut keys,
            )
        };
        for warning in &planned.warnings {
            tracing::warn!(dossier = number, "{warning}");
        }

        let mut files: Vec<ShardFile> = Vec::new();
        let mut downloads = Vec::new();
        for action in planned.actions {
            match action {
                Action::Unchanged { entry } => {
                    self.progress.event(&Event::FilePlanned { bytes: 0 });
                    self.progress.event(&Event::FileSkipped {
                        key: entry.key.clone(),
                        reason: "unchanged".to_owned(),
                    });
                    out.tally.unchanged += 1;
                    flag(&mut out.tally.flagged, number, &entry, None);
                    files.push(entry);
                }
                Action::Update { entry } => {
                    self.progress.event(&Event::FilePlanned { bytes: 0 });
                    self.progress.event(&Event::FileSkipped {
                        key: entry.key.clone(),
                        reason: "status_updated".to_owned(),
                    });
                    out.tally.updated += 1;
                    flag(&mut out.tally.flagged, number, &entry, None);
                    files.push(entry);
                }
                Action::Unscanned { record, entry } => {
                    self.progress.event(&Event::FilePlanned { bytes: 0 });
                    self.progress.event(&Event::FileSkipped {
                        key: entry
                            .as_ref()
                            .map_or_else(|| record.filename.clone(), |e| e.key.clone()),
                        reason: format!("virus_scan:{}", record.virus_scan),
                    });
                    out.tally.unscanned.push(Skipped {
                        dossier: number,
                        file_id: record.file_id(),
                        filename: record.filename.clone(),
                        virus_scan: record.virus_scan.clone(),
                    });
                    files.extend(entry);
                }
                Action::Download(download) => {
                    self.progress.event(&Event::FilePlanned {
                        bytes: download.record.byte_size,
                    });
                    downloads.push(download);
                }
            }
        }

        let refresher = DossierRefresh {
            client: &self.client,
            filter: &self.refresh_filter,
            include: self.opts.include,
            demarche: self.opts.demarche,
            requests: &self.refreshes,
            cache: tokio::sync::Mutex::new(None),
        };
        let mut pending: FuturesUnordered<_> = downloads
            .into_iter()
            .map(|d| {
                let run = &self;
                let refresher = &refresher;
                async move {
                    let previous = d.previous.clone();
                    let file_id = d.record.file_id();
                    let permit = tokio::select! {
                        () = run.cancel.cancelled() => return (file_id, previous, Settled::Cancelled),
                        permit = run.downloads.clone().acquire_owned() => permit,
                    };
                    let settled = match permit {
                        Ok(_permit) => run.download(d, refresher).await,
                        Err(_) => Settled::Cancelled,
                    };
                    (file_id, previous, settled)
                }
            })
            .collect();
        let mut incomplete = false;
        while let Some((file_id, previous, settled)) = pending.next().await {
            match settled {
                Settled::Stored(entry, detail) => {
                    out.tally.stored += 1;
                    out.tally.bytes = out.tally.bytes.saturating_add(entry.size);
                    self.progress.event(&Event::FileStored {
                        key: entry.key.clone(),
                        bytes: entry.size,
                        status: entry.status,
                    });
                    flag(&mut out.tally.flagged, number, &entry, detail);
                    if let Some(previous) = previous.filter(|p| p.key != entry.key) {
                        // The slot's file moved (new name): the old object is superseded.
                        self.remove_superseded(number, &previous, &mut out.tally)
                            .await;
                    }
                    files.push(entry);
                }
                Settled::Failed { key, reason, code } => {
                    incomplete = true;
                    self.progress.event(&Event::FileFailed {
                        key: key.clone(),
                        reason: reason.clone(),
                    });
                    out.tally.failed.push(Failure {
                        dossier: number,
                        file_id: Some(file_id),
                        key,
                        reason,
                        code: code.map(str::to_owned),
                    });
                    files.extend(previous);
                }
                Settled::Cancelled => {
                    incomplete = true;
                    files.extend(previous);
                }
            }
        }
        drop(pending);

        for removed in planned.removed {
            out.tally.removed = out.tally.removed.saturating_add(1);
            if !self.opts.prune || self.prune(number, &removed, &mut out.tally).await {
                files.push(removed);
            }
        }

        files.sort_by(|a, b| a.file_id.cmp(&b.file_id));
        let shard = Shard {
            version: WIRE_VERSION,
            demarche: self.opts.demarche,
            dossier: number,
            state,
            // A dossier with a failed or cancelled file keeps its previous update time, so
            // that its unverifiable files are not taken for unchanged next time.
            updated_at: if incomplete {
                old.as_ref().and_then(|s| s.updated_at.clone())
            } else {
                updated_at.map(str::to_owned)
            },
            deleted_at: None,
            files,
        };
        // Checked again next run even if DS does not update the dossier: a pending scan may end
        // in a rewrite, and a file left out for its scan is stored once DS calls it safe (DS
        // does not touch the dossier's update time when a scan result changes).
        out.recheck |= incomplete
            || !out.tally.unscanned.is_empty()
            || shard.files.iter().any(|f| f.status == FileStatus::Pending);
        if (rewrite || old.as_ref() != Some(&shard))
            && let Err(e) = state::write(self.sink.as_ref(), &shard_key, &shard).await
        {
            dossier_failure(
                &mut out,
                format!("cannot write the manifest of dossier `{number}`: {e}"),
            );
        }
        out
    }

    /// Downloads one planned file and returns its manifest entry.
    ///
    /// A file goes straight to its key when the manifest already gives it that key or nothing
    /// is there. When something already sits at a new key, only the downloaded bytes can tell
    /// whether it is this very file (published by a run killed before it wrote the shard; its
    /// DS checksum may be wrong, so DS's MD5 proves nothing) or a foreign object: the file is
    /// then staged and the key decided after the download ([`Run::free_key`]).
    async fn download(&self, mut d: Download, refresher: &DossierRefresh<'_>) -> Settled {
        let file_id = d.record.file_id();
        let key = match &d.key {
            Some(key) => key.clone(),
            None => return self.download_staged(d, refresher).await,
        };
        if let Some(previous) = d.previous.as_ref().filter(|_| !d.new_key) {
            // Replacing in place: only an object dsfiles stored (else the key is taken, the
            // file goes beside it, and the old entry is reported as superseded).
            if let Verdict::Foreign(why) | Verdict::Unknown(why) =
                removal::check(self.sink.as_ref(), previous).await
            {
                tracing::warn!(key = key.as_str(), file_id, "not replaced: {why}");
                d.previous = None;
                return self.download_staged(d, refresher).await;
            }
        }
        if d.new_key {
            match self.sink.stat(key.as_str()).await {
                Ok(None) => {}
                Ok(Some(_)) => return self.download_staged(d, refresher).await,
                Err(e) => {
                    return Settled::Failed {
                        reason: format!(
                            "cannot check `{key}` before writing it: {}",
                            fetch::error_chain(&e)
                        ),
                        key: key.into_string(),
                        code: None,
                    };
                }
            }
        }
        let dest = Dest {
            sink: self.sink.as_ref(),
            key: key.as_str(),
        };
        match self
            .fetcher
            .fetch(d.record, dest, refresher, &self.progress, &self.cancel)
            .await
        {
            Ok(fetched) => {
                let detail = fetched.detail.clone();
                Settled::Stored(entry(&file_id, key.as_str(), fetched), detail)
            }
            Err(FetchFailure::Cancelled) => Settled::Cancelled,
            Err(FetchFailure::Failed { reason, code }) => Settled::Failed {
                key: key.into_string(),
                reason,
                code,
            },
        }
    }

    /// Downloads into a staging key, then copies to the final key (checking the SHA-256 again
    /// on the way) and removes the staged copy. Used when the key is known only after the
    /// download: layouts with `{sha256}` (the key is rendered with it), and a new key already
    /// occupied (the planned key is kept if the object there holds the same bytes, else the
    /// next free numbered variant of the rendered key is taken).
    async fn download_staged(&self, d: Download, refresher: &DossierRefresh<'_>) -> Settled {
        let file_id = d.record.file_id();
        let failed_key = d
            .key
            .as_ref()
            .map_or_else(|| self.opts.layout.template().to_owned(), |k| k.to_string());
        // Flat keys next to a marker: the directory never becomes empty while other staged
        // files are being published into it (a local sink removes empty directories on delete).
        let marker = staging_marker(self.opts.demarche);
        if let Err(e) = self
            .staging_marker
            .get_or_try_init(|| state::put_marker(self.sink.as_ref(), &marker))
            .await
        {
            return Settled::Failed {
                key: failed_key,
                reason: format!(
                    "cannot prepare the staging area `{}`: {e}",
                    staging_prefix(self.opts.demarche)
                ),
                code: None,
            };
        }
        let staging = format!(
            "{}{}-{}",
            staging_prefix(self.opts.demarche),
            self.run_id,
            uuid::Uuid::new_v4().simple()
        );
        // What the key is rendered from: the record as planned (a key planned before the
        // download stays put even if DS renames the file meanwhile, as on the direct path).
        let planned = d
            .key
            .as_ref()
            .map(|key| (self.opts.layout.render(&d.record, None), key.clone()));
        let fetched = match self
            .fetcher
            .fetch(
                d.record,
                Dest {
                    sink: self.sink.as_ref(),
                    key: &staging,
                },
                refresher,
                &self.progress,
                &self.cancel,
            )
            .await
        {
            Ok(fetched) => fetched,
            Err(FetchFailure::Cancelled) => return Settled::Cancelled,
            Err(FetchFailure::Failed { reason, code }) => {
                return Settled::Failed {
                    key: failed_key,
                    reason,
                    code,
                };
            }
        };
        let (base, key) = match planned {
            Some(planned) => planned,
            None => {
                let base = self
                    .opts
                    .layout
                    .render(&fetched.record, Some(&fetched.sha256));
                let key = {
                    let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
                    keys.allocate(&file_id, &base)
                };
                (base, key)
            }
        };
        let result = match d
            .previous
            .as_ref()
            .filter(|p| p.key == key.as_str() && p.sha256 == fetched.sha256)
        {
            // Same bytes already at the same key.
            Some(_) => Ok(key.clone()),
            None => match self.free_key(&file_id, &base, key.clone(), &fetched).await {
                Ok(key) => self
                    .copy(&staging, key.as_str(), &fetched)
                    .await
                    .map(|()| key),
                Err(reason) => Err(reason),
            },
        };
        if let Err(e) = self.sink.delete(&staging).await {
            tracing::warn!(key = staging, "cannot remove a staged file: {e}");
        }
        match result {
            Ok(key) => {
                let detail = fetched.detail.clone();
                Settled::Stored(entry(&file_id, key.as_str(), fetched), detail)
            }
            Err(reason) => Settled::Failed {
                key: key.into_string(),
                reason,
                code: None,
            },
        }
    }

    /// Copies the verified staged object to `key`, checking its SHA-256 again.
    async fn copy(&self, from: &str, key: &str, fetched: &Fetched) -> Result<(), String> {
        let meta = fetch::object_meta(&fetched.record, Some(&fetched.sha256));
        let mut source = self
            .sink
            .get(from)
            .await
            .map_err(|e| fetch::error_chain(&e))?;
        let mut upload = self
            .sink
            .create(key, &meta)
            .await
            .map_err(|e| fetch::error_chain(&e))?;
        let mut hasher = Hasher::start();
        while let Some(chunk) = source.next().await {
            let written = match chunk {
                Ok(chunk) => {
                    hasher.update(chunk.clone()).await;
                    upload.write(chunk).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                fetch::abort(upload, key).await;
                return Err(format!(
                    "copying the staged file to `{key}` failed: {}",
                    fetch::error_chain(&e)
                ));
            }
        }
        let digests = hasher.finish().await.map_err(|e| e.to_string())?;
        if digests.sha256_hex != fetched.sha256 {
            fetch::abort(upload, key).await;
            return Err(format!(
                "the staged copy changed: SHA-256 `{}` instead of `{}`",
                digests.sha256_hex, fetched.sha256
            ));
        }
        upload.commit().await.map_err(|e| fetch::error_chain(&e))
    }

    /// `key` if nothing foreign occupies it in the destination, else the next free numbered
    /// variant of `base` (the key as the layout renders it, so that numbers do not pile up:
    /// `name (3).pdf`, never `name (2) (2).pdf`), reserved in the allocator: no file ever
    /// overwrites another. An object holding exactly the bytes about to be published (same
    /// size and SHA-256 as `fetched`) is this file, published by a run killed before it wrote
    /// the shard, and is replaced by the same bytes. The test is the same on every backend and
    /// reads the object's content: attributes such as a stored MD5 only repeat what DS
    /// announced, which can be wrong.
    async fn free_key(
        &self,
        file_id: &str,
        base: &RelKey,
        mut key: RelKey,
        fetched: &Fetched,
    ) -> Result<RelKey, String> {
        for _ in 0..1000 {
            let info = self.sink.stat(key.as_str()).await.map_err(|e| {
                format!(
                    "cannot check `{key}` before writing it: {}",
                    fetch::error_chain(&e)
                )
            })?;
            let Some(info) = info else { return Ok(key) };
            if info.size == fetched.size
                && removal::sha256_of(self.sink.as_ref(), key.as_str())
                    .await
                    .is_ok_and(|sha256| sha256 == fetched.sha256)
            {
                tracing::info!(
                    key = key.as_str(),
                    file_id,
                    "the key holds this file's bytes (an earlier run's): replacing it"
                );
                return Ok(key);
            }
            tracing::info!(
                key = key.as_str(),
                file_id,
                "the key is taken by another object: numbering"
            );
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.release(file_id);
            if let Err(e) = keys.insert_existing(&format!("foreign:{key}"), key.clone()) {
                return Err(format!("cannot reserve `{key}`: {e}"));
            }
            key = keys.allocate(file_id, base);
        }
        Err(format!("no free key found near `{base}`"))
    }

    /// With prune: deletes the object at `entry.key` if it is dsfiles' own ([`removal`]).
    /// Returns whether the manifest keeps naming it (it could not be looked at or deleted:
    /// tried again next run).
    async fn prune(&self, dossier: u64, entry: &ShardFile, tally: &mut Tally) -> bool {
        match removal::check(self.sink.as_ref(), entry).await {
            Verdict::Absent => false,
            Verdict::Ours => match self.sink.delete(&entry.key).await {
                Ok(()) => false,
                Err(e) => {
                    let message = format!("dossier `{dossier}`: cannot prune `{}`: {e}", entry.key);
                    tracing::warn!("{message}");
                    tally.warnings.push(message);
                    true
                }
            },
            Verdict::Foreign(why) => {
                tally.keep(&self.progress, dossier, entry, format!("not pruned: {why}"));
                false
            }
            Verdict::Unknown(why) => {
                tally.keep(&self.progress, dossier, entry, format!("not pruned: {why}"));
                true
            }
        }
    }

    /// The slot's file was published at another key: deletes the superseded object at
    /// `previous.key` if it is dsfiles' own ([`removal`]).
    async fn remove_superseded(&self, dossier: u64, previous: &ShardFile, tally: &mut Tally) {
        match removal::check(self.sink.as_ref(), previous).await {
            Verdict::Absent => {}
            Verdict::Ours => {
                if let Err(e) = self.sink.delete(&previous.key).await {
                    tally.warnings.push(format!(
                        "dossier `{dossier}`: cannot delete the superseded `{}`: {e}",
                        previous.key
                    ));
                }
            }
            Verdict::Foreign(why) | Verdict::Unknown(why) => {
                let reason = format!("superseded, not deleted: {why}");
                tally.keep(&self.progress, dossier, previous, reason);
            }
        }
    }
}

/// A manifest entry for a published file.
fn entry(file_id: &str, key: &str, fetched: Fetched) -> ShardFile {
    ShardFile {
        file_id: file_id.to_owned(),
        key: key.to_owned(),
        source: fetched.record.source,
        label: fetched.record.label,
        filename: fetched.record.filename,
        content_type: fetched.record.content_type,
        checksum: fetched.record.checksum,
        sha256: fetched.sha256,
        size: fetched.size,
        stored_at: Utc::now(),
        status: fetched.status,
    }
}

/// Records `entry` in `flagged` when its status is not `ok`.
fn flag(flagged: &mut Vec<Flagged>, dossier: u64, entry: &ShardFile, detail: Option<String>) {
    if matches!(entry.status, FileStatus::Ok | FileStatus::RemovedUpstream) {
        return;
    }
    let detail = detail.unwrap_or_else(|| match entry.status {
        FileStatus::ChecksumMismatch => format!(
            "DS checksum `{}`, stored SHA-256 `{}`",
            entry.checksum, entry.sha256
        ),
        FileStatus::Pending => "virus scan pending on DS; checked again on the next run".to_owned(),
        FileStatus::Unverified => "DS gives no checksum for this file".to_owned(),
        FileStatus::Ok | FileStatus::RemovedUpstream => String::new(),
    });
    flagged.push(Flagged {
        dossier,
        file_id: entry.file_id.clone(),
        key: entry.key.clone(),
        flag: entry.status,
        detail,
    });
}

/// Fresh records of one dossier (new signed URLs), shared by its files for [`REFRESH_TTL`].
struct DossierRefresh<'a> {
    client: &'a ds::Client,
    filter: &'a ds::DossierFilter,
    include: extract::Include,
    demarche: u64,
    /// Counts the requests sent (the run's [`ApiCalls::refresh`]).
    requests: &'a AtomicU64,
    cache: tokio::sync::Mutex<Option<(Instant, Vec<FileRecord>)>>,
}

impl Refresh for DossierRefresh<'_> {
    fn refresh<'a>(
        &'a self,
        record: &'a FileRecord,
    ) -> BoxFuture<'a, Result<Option<FileRecord>, String>> {
        async move {
            let file_id = record.file_id();
            let mut cache = self.cache.lock().await;
            // Another file of the dossier refreshed it moments ago: its URLs are newer.
            let cached = cache.as_ref().and_then(|(at, records)| {
                (at.elapsed() < REFRESH_TTL)
                    .then(|| {
                        records
                            .iter()
                            .find(|r| r.file_id() == file_id && r.url != record.url)
                    })
                    .flatten()
            });
            if let Some(cached) = cached {
                return Ok(Some(cached.clone()));
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let dossier = match self.client.dossier(record.dossier, self.filter).await {
                Ok(dossier) => dossier,
                Err(e) if e.kind() == ds::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(fetch::error_chain(&e)),
            };
            let fresh = extract::extract(self.demarche, &dossier, self.include)
                .map_err(|e| e.to_string())?;
            *cache = Some((Instant::now(), fresh.clone()));
            Ok(fresh.into_iter().find(|r| r.file_id() == file_id))
        }
        .boxed()
    }
}

/// What fetching the previous run's recheck list gave.
#[derive(Debug, Default)]
struct Rechecked {
    /// The dossiers DS returned, to process before the listing's.
    found: Vec<Value>,
    /// Dossiers that could not be fetched this time: they stay on the list.
    failed: Vec<u64>,
    /// Numbers that are no dossier of the démarche (deleted, another démarche's): off the list.
    dropped: HashSet<u64>,
}

/// Fetches the previous run's recheck list, [`ds::DOSSIERS_PER_REQUEST`] dossiers per request
/// (`Client::dossiers_by_number`), with the semantics of one `dossier(number)` each: not found
/// → dropped from the list; a transient or API error → a warning, and the dossier stays on the
/// list; anything else (token, access) → the run fails. A request that fails as a whole does
/// the same for each of its dossiers.
async fn fetch_rechecks(
    run: &Run,
    numbers: &[u64],
    totals: &mut Totals,
) -> Result<Rechecked, Error> {
    let mut out = Rechecked::default();
    for chunk in numbers.chunks(ds::DOSSIERS_PER_REQUEST) {
        if run.cancel.is_cancelled() {
            break;
        }
        let settled = match run
            .client
            .dossiers_by_number(chunk, &run.refresh_filter)
            .await
        {
            Ok(settled) => settled,
            Err(e) if recoverable(&e) => {
                let (first, last) = (chunk.first(), chunk.last());
                let message = format!(
                    "{} dossiers (`{}` to `{}`) could not be re-checked: {}",
                    chunk.len(),
                    first.copied().unwrap_or_default(),
                    last.copied().unwrap_or_default(),
                    fetch::error_chain(&e)
                );
                totals.warn(&run.progress, message);
                out.failed.extend_from_slice(chunk);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for (number, result) in settled {
            match result {
                Ok(Some(dossier)) => {
                    match dossier.pointer("/demarche/number").and_then(Value::as_u64) {
                        Some(other) if other != run.opts.demarche => {
                            tracing::warn!(
                                dossier = number,
                                demarche = other,
                                "a dossier of the recheck list belongs to another démarche: dropped"
                            );
                            out.dropped.insert(number);
                        }
                        _ => out.found.push(dossier),
                    }
                }
                Ok(None) => {
                    out.dropped.insert(number);
                }
                Err(e) if matches!(e.kind(), ds::ErrorKind::NotFound | ds::ErrorKind::Config) => {
                    // Config: a number DS cannot even take (beyond its `Int`): no dossier.
                    tracing::warn!(dossier = number, "dropped from the recheck list: {e}");
                    out.dropped.insert(number);
                }
                Err(e) if recoverable(&e) => {
                    totals.warn(
                        &run.progress,
                        format!(
                            "dossier `{number}` could not be re-checked: {}",
                            fetch::error_chain(&e)
                        ),
                    );
                    out.failed.push(number);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(out)
}

/// Whether a DS error leaves the run going (the dossiers concerned are tried again next run).
fn recoverable(e: &ds::Error) -> bool {
    e.is_transient() || e.kind() == ds::ErrorKind::Api
}

/// Removes what a killed run of `demarche` left in its staging area (best effort); the
/// staging areas of other démarches, whose runs may be going on, are left alone.
async fn remove_staging(sink: &dyn Sink, demarche: u64) {
    let marker = staging_marker(demarche);
    let ours = staging_prefix(demarche);
    // Own staged files, and those of the previous version, which staged flat under
    // `.dsfiles/staging/` without a démarche (its killed runs' leftovers; no current run
    // writes there). Other démarches' staging areas are left alone.
    let keys: Vec<String> = sink
        .list(STAGING_PREFIX)
        .filter_map(|entry| {
            let (marker, ours) = (&marker, &ours);
            async move {
                let key = entry.ok()?.key;
                let flat = key
                    .strip_prefix(STAGING_PREFIX)
                    .is_some_and(|rest| !rest.contains('/'));
                ((key.starts_with(ours.as_str()) || flat) && key != *marker).then_some(key)
            }
        })
        .collect()
        .await;
    for key in keys {
        if let Err(e) = sink.delete(&key).await {
            tracing::warn!(key, "cannot remove a staged file: {e}");
        }
    }
}

/// Records DS's deleted dossiers in their shards (and deletes their files with prune).
async fn deleted_dossiers(run: &Run, since: Option<DateTime<Utc>>, totals: &mut Totals) {
    let stream = run.client.deleted_dossiers(run.opts.demarche, since);
    let mut stream = std::pin::pin!(stream);
    while let Some(page) = stream.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                totals.warn(
                    &run.progress,
                    format!(
                        "deleted dossiers could not be listed: {}",
                        fetch::error_chain(&e)
                    ),
                );
                return;
            }
        };
        for deleted in page {
            if run.cancel.is_cancelled() {
                return;
            }
            totals.deleted.push(deleted.number);
            run.progress.event(&Event::DossierDeleted {
                number: deleted.number,
            });
            if let Err(message) = record_deleted(run, &deleted, &mut totals.tally).await {
                totals.warn(&run.progress, message);
            }
        }
    }
}

/// Marks the files of the deleted dossier `removed_upstream` in its shard, and with prune
/// deletes those dsfiles stored ([`Run::prune`]).
async fn record_deleted(
    run: &Run,
    deleted: &ds::DeletedDossier,
    tally: &mut Tally,
) -> Result<(), String> {
    let number = deleted.number;
    let key = shard_key(number);
    let failed = |e: Error| format!("cannot record the deletion of dossier `{number}`: {e}");
    let mut shard: Shard = match state::read(run.sink.as_ref(), &key).await {
        Ok(Some(shard)) => shard,
        Ok(None) => return Ok(()),
        Err(e) => return Err(failed(e)),
    };
    let before = shard.clone();
    tally
        .warnings
        .extend(removal::refuse_unusable_entries(&mut shard));
    shard.deleted_at = Some(deleted.deleted_at.clone());
    let mut kept = Vec::new();
    for mut file in std::mem::take(&mut shard.files) {
        if file.status != FileStatus::RemovedUpstream {
            tally.removed = tally.removed.saturating_add(1);
        }
        file.status = FileStatus::RemovedUpstream;
        if !run.opts.prune || run.prune(number, &file, tally).await {
            kept.push(file);
        }
    }
    shard.files = kept;
    if shard != before {
        state::write(run.sink.as_ref(), &key, &shard)
            .await
            .map_err(failed)?;
    }
    Ok(())
}

/// Writes the démarche's recheck list: the `previous` entries (with whether they were read
/// from the legacy key) neither processed now nor `dropped`, plus `later` and this run's.
async fn write_recheck(
    run: &Run,
    (previous, legacy): (Recheck, bool),
    mut later: BTreeSet<u64>,
    dropped: &HashSet<u64>,
    totals: &mut Totals,
) {
    let processed: HashSet<u64> = totals.processed.iter().copied().collect();
    later.extend(
        previous
            .dossiers
            .iter()
            .filter(|n| !processed.contains(n) && !dropped.contains(n))
            .copied()
            .filter(|_| previous.demarche == run.opts.demarche),
    );
    later.extend(totals.recheck.iter().copied());
    let recheck = Recheck {
        version: WIRE_VERSION,
        demarche: run.opts.demarche,
        dossiers: later.into_iter().collect(),
    };
    if recheck.dossiers == previous.dossiers && previous.demarche == recheck.demarche && !legacy {
        return;
    }
    let key = recheck_key(run.opts.demarche);
    if let Err(e) = state::write(run.sink.as_ref(), &key, &recheck).await {
        let message = format!("cannot write `{key}`: {}", fetch::error_chain(&e));
        totals.warn(&run.progress, message);
    }
}

/// Advances the démarche's sync point to the start of this run.
async fn write_sync_point(run: &Run, started_at: DateTime<Utc>, totals: &mut Totals) {
    let point = SyncPoint {
        version: WIRE_VERSION,
        demarche: run.opts.demarche,
        last_success_started_at: started_at,
        last_run_id: run.run_id.clone(),
    };
    let key = sync_point_key(run.opts.demarche);
    if let Err(e) = state::write(run.sink.as_ref(), &key, &point).await {
        let message = format!("cannot write `{key}`: {}", fetch::error_chain(&e));
        totals.warn(&run.progress, message);
    }
}
