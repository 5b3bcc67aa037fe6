//! [`sync`]: pages → extraction → plan against the dossier's shard → concurrent verified
//! downloads → shard write → report.
//!
//! A run takes the démarche's destination lease ([`crate::lease`]), keeps renewing it next
//! to the run (one `select!`, no detached task) and releases it at the end; the run itself
//! writes through a `FencedSink` that refuses writes once the lease is lost.
//!
//! A run is three steps, each a function of this file: [`prepare`] (read the démarche's state,
//! clear its staging leftovers, decide the listing window), [`drive`] (fetch the recheck
//! list's dossiers, list the others, process them), [`finish`] (deleted dossiers, recheck
//! list, sync point, report). The rest lives in submodules:
//!
//! - `layout`: which layout and dossier.json choice the run uses (given, or what the
//!   destination was last synced with) and the record of it;
//! - `fields`: which of the dossiers' values the run asks DS for (what the layout and
//!   dossier.json use);
//! - `dossier`: the per-dossier step (extract, read the shard, plan, publish, write the shard);
//! - `data`: the dossier's `dossier.json`, written after its files, only when it changed;
//! - `publish`: downloads, staging, the key decided after a staged download, copies, deletions;
//! - `tally`: what a dossier and the run count, and the report built from it;
//! - `lists`: the report's lists, their first entries held, every entry spooled to a file;
//! - `bookkeeping`: what a run carries to the next (sync point, recheck list, deleted
//!   dossiers, staging leftovers).
//!
//! Keys are decided twice: planning reserves each file's key from the layout in a
//! `KeyAllocator` before any download (`dossier`); a staged file's final key is decided again
//! after its download, by comparing SHA-256 and size with what sits there, under the same
//! allocator's mutex (`publish`, whose module doc has the whole rule). The allocator is the
//! dossier's own when the layout keeps dossiers apart (the default layout and `ds-export` do),
//! else the run's.
//!
//! Concurrency: the listing is polled in the same loop that owns a [`JoinSet`] of dossier
//! tasks; at most one page of dossiers waits in a buffer, the largest of the oldest starting
//! first (`order`: fewer than a page of later dossiers ever start before one), at most
//! `2 × jobs` dossiers are in flight, and a semaphore of `jobs` permits bounds the downloads
//! across dossiers (a sliding window, not batches). Every task is owned by the loop and awaited; on cancellation listing
//! stops, downloads abort their uploads, and every dossier writes the shard of what settled.

mod bookkeeping;
mod data;
mod dossier;
mod fields;
mod layout;
mod lists;
mod order;
mod publish;
mod tally;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt as _};
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::bookkeeping::Rechecks;
use self::layout::Naming;
use self::order::Queue;
use self::publish::Publisher;
use self::tally::{DossierOutcome, RunFacts, Totals};
use crate::lease;
use crate::options::SyncOptions;
use crate::shards::{Access, Shards};
use crate::sink::Sink;
use crate::state::{self, DemarcheState};
use crate::wire::{Event, Failure, RUNS_PREFIX, SyncReport, shard_key};
use crate::{Error, Progress, ds, extract, fetch};

/// Dossiers waiting for a task (about one page).
const BUFFERED_DOSSIERS: usize = 100;

/// Synchronizes démarche `opts.demarche` into `sink`; see the crate docs and [`SyncReport`].
///
/// `Err` only for run-level failures (DS refused the token or the démarche, the destination
/// cannot be read); per-file failures are in the report. A cancelled run returns its report
/// with `cancelled: true`.
///
/// The run first takes the démarche's destination lease ([`crate::lease`]):
/// [`Error::DestinationBusy`] when another live writer holds it. The lease is renewed while
/// the run writes and released at its end; a run that loses it stops writing and reports
/// `lease_lost`.
pub async fn sync(
    client: ds::Client,
    sink: Arc<dyn Sink>,
    opts: SyncOptions,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<SyncReport, Error> {
    let scope = lease::LeaseScope::Sync {
        demarche: opts.demarche,
    };
    let lease_opts = opts.lease.clone();
    let leased = lease::under_lease(sink, scope, &lease_opts, &cancel, |fenced, run_cancel| {
        run(client, fenced, opts, progress, run_cancel)
    })
    .await?;
    if !leased.lost {
        return leased.result;
    }
    leased.result.map(|mut report| {
        report.lease_lost = true;
        report.cancelled = cancel.is_cancelled();
        report
    })
}

/// The run itself, once the lease is held.
async fn run(
    client: ds::Client,
    sink: Arc<dyn Sink>,
    opts: SyncOptions,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<SyncReport, Error> {
    let mut prepared = prepare(client, sink, opts, progress, cancel).await?;
    let listing_error = drive(&mut prepared).await?;
    finish(prepared, listing_error).await
}

/// What the dossier tasks of one run share.
struct Run {
    client: ds::Client,
    opts: SyncOptions,
    /// What extraction includes: the listing filter's `include_*` flags (one source of truth).
    include: extract::Include,
    /// Fetches dossiers by number (recheck list, fresh URLs) with the same `include_*` flags
    /// and `fields`.
    refresh_filter: ds::DossierFilter,
    /// `dossier(number)` requests for fresh URLs (`publish::DossierRefresh`).
    refreshes: AtomicU64,
    progress: Progress,
    cancel: CancellationToken,
    publisher: Publisher,
    /// The layout, where dossier.json goes, and where they came from.
    naming: Naming,
    /// The manifest shards, read through segments on object stores (`crate::shards`).
    shards: Shards,
}

/// A run about to list: its context, the window, the state read, the first dossiers.
struct Prepared {
    run: Arc<Run>,
    run_id: String,
    started_at: DateTime<Utc>,
    clock: Instant,
    /// The listing filter (`updated_since` set from the sync point).
    filter: ds::DossierFilter,
    /// Whether the listing sees every dossier (then the sync point may advance).
    complete: bool,
    state: DemarcheState,
    /// The previous run's recheck list, fetched by [`drive`] before the listing.
    rechecks: Rechecks,
    /// Named dossiers DS did not find (`filter.dossiers` only), settled by [`finish`].
    missing: Vec<u64>,
    totals: Totals,
}

/// Reads the démarche's state, clears its staging leftovers, decides the listing window and
/// which dossiers of the recheck list to fetch.
async fn prepare(
    client: ds::Client,
    sink: Arc<dyn Sink>,
    opts: SyncOptions,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<Prepared, Error> {
    if opts.jobs == 0 {
        return Err(Error::InvalidOption {
            name: "jobs",
            reason: "`0`: at least one download must be allowed".to_owned(),
        });
    }
    let (started_at, clock) = (Utc::now(), Instant::now());
    let run_id = format!(
        "{}-{}",
        started_at.format("%Y%m%dT%H%M%SZ"),
        uuid::Uuid::new_v4().simple()
    );
    let state = state::read_demarche(sink.as_ref(), opts.demarche).await?;
    if let Some(warning) = &state.warning {
        tracing::warn!("{warning}");
    }
    let naming = decide_naming(&client, sink.as_ref(), &opts, &run_id).await?;
    bookkeeping::remove_staging(sink.as_ref(), opts.demarche).await;
    let (mut filter, complete) = bookkeeping::window(&opts, state.sync_point.as_ref());
    filter.fields = fields::wanted(&naming.layout, naming.data_layout.is_some());
    let shards = Shards::new(Arc::clone(&sink));
    let setup = publish::Setup {
        sink,
        run_id: run_id.clone(),
        progress: Arc::clone(&progress),
        cancel: cancel.clone(),
        api_endpoint: client.endpoint().clone(),
    };
    let run = Arc::new(Run {
        publisher: Publisher::new(setup, &opts, &naming).await?,
        include: extract::Include {
            generated: filter.include_generated,
            entreprise: filter.include_entreprise,
        },
        refresh_filter: refresh_filter(&filter),
        refreshes: AtomicU64::new(0),
        naming,
        shards,
        client,
        opts,
        progress,
        cancel,
    });
    let rechecks = rechecks(&run.opts, &filter, &state);
    let totals = Totals::new(&state.recheck.dossiers);
    Ok(Prepared {
        run,
        run_id,
        started_at,
        clock,
        filter,
        complete,
        state,
        rechecks,
        missing: Vec::new(),
        totals,
    })
}

/// The run's layouts (the one asked for, or the one the destination recorded), checked
/// against the démarche's labels and recorded in the destination.
async fn decide_naming(
    client: &ds::Client,
    sink: &dyn Sink,
    opts: &SyncOptions,
    run_id: &str,
) -> Result<Naming, Error> {
    let (naming, recorded) = layout::decide(sink, opts).await?;
    check_labels(client, opts.demarche, &naming.layout).await?;
    layout::record(sink, opts.demarche, &naming, recorded.as_ref(), run_id).await?;
    Ok(naming)
}

/// What a single dossier's fresh read (URL refresh, recheck) asks DS for: what the run's
/// listing asks.
fn refresh_filter(listing: &ds::DossierFilter) -> ds::DossierFilter {
    ds::DossierFilter {
        include_generated: listing.include_generated,
        include_entreprise: listing.include_entreprise,
        fields: listing.fields,
        ..ds::DossierFilter::default()
    }
}

/// Refuses a layout naming a champ or annotation label the démarche's active revision does
/// not have (a typo would otherwise name every file `sans-champ`). No request when the layout
/// names none.
async fn check_labels(
    client: &ds::Client,
    demarche: u64,
    layout: &extract::Layout,
) -> Result<(), Error> {
    let wanted = layout.labels();
    if wanted.is_empty() {
        return Ok(());
    }
    let known = client.revision_labels(demarche).await?;
    for label in wanted {
        let (kind, label, list) = match label {
            extract::LabelRef::Champ(l) => ("champ", l, &known.champs),
            extract::LabelRef::Annotation(l) => ("annotation", l, &known.annotations),
        };
        if !list.iter().any(|k| k == label) {
            return Err(Error::InvalidOption {
                name: "layout",
                reason: format!(
                    "`{{{kind}:{label}}}`: démarche `{}` has no {kind} labelled `{label}` \
                     (its {kind}s: {})",
                    demarche,
                    list.iter()
                        .map(|l| format!("`{l}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// The previous run's recheck list, for incremental runs over the whole démarche only (a full
/// run lists those dossiers anyway).
fn rechecks(opts: &SyncOptions, filter: &ds::DossierFilter, state: &DemarcheState) -> Rechecks {
    let previous = &state.recheck;
    if previous.demarche == opts.demarche
        && filter.dossiers.is_empty()
        && filter.updated_since.is_some()
    {
        Rechecks::new(&previous.dossiers)
    } else {
        Rechecks::default()
    }
}

/// Fetches the recheck list's dossiers, then lists the dossiers of the window, and processes
/// them; returns the error that stopped either early. `Err` when it failed before giving
/// anything.
async fn drive(prepared: &mut Prepared) -> Result<Option<ds::Error>, Error> {
    let run = Arc::clone(&prepared.run);
    let calls = run.client.stats().api_calls;
    let pages = run
        .client
        .dossiers(run.opts.demarche, prepared.filter.clone());
    let mut driver = Driver {
        run: Arc::clone(&run),
        pages: Box::pin(pages),
        listing_access: match prepared.filter.updated_since {
            None => Access::Sequential,
            Some(_) => Access::Random,
        },
        buffer: Queue::default(),
        rechecks: std::mem::take(&mut prepared.rechecks),
        tasks: JoinSet::new(),
        in_flight: HashMap::new(),
        listing_done: false,
        listing_error: None,
        received: 0,
        missing: Vec::new(),
    };
    let totals = &mut prepared.totals;
    let result = driver.run(totals).await;
    prepared.rechecks = std::mem::take(&mut driver.rechecks);
    prepared.missing = std::mem::take(&mut driver.missing);
    totals.api.refresh = run.refreshes.load(Ordering::Relaxed);
    totals.api.listing = run
        .client
        .stats()
        .api_calls
        .saturating_sub(calls)
        .saturating_sub(totals.api.refresh)
        .saturating_sub(totals.api.recheck);
    result.map(|()| driver.listing_error)
}

type Pages = Pin<Box<dyn Stream<Item = Result<ds::DossierBatch, ds::Error>> + Send>>;

/// The loop of [`drive`]: dossiers waiting, tasks in flight, what the recheck list and the
/// listing gave. The recheck list's dossiers come first, a request at a time; the listing is
/// read only once they are all asked for, and skips the dossiers they gave.
struct Driver {
    run: Arc<Run>,
    pages: Pages,
    /// How the listing's dossiers come: in number order (full) or update order.
    listing_access: Access,
    /// Dossiers waiting for a task, with how their shards are read, started largest first
    /// ([`order`]).
    buffer: Queue,
    rechecks: Rechecks,
    tasks: JoinSet<DossierOutcome>,
    in_flight: HashMap<tokio::task::Id, u64>,
    listing_done: bool,
    listing_error: Option<ds::Error>,
    received: u64,
    /// Named dossiers DS did not find.
    missing: Vec<u64>,
}

impl Driver {
    async fn run(&mut self, totals: &mut Totals) -> Result<(), Error> {
        let max_in_flight = self.run.opts.jobs.saturating_mul(2).max(4);
        loop {
            self.spawn(max_in_flight, totals);
            let idle = self.buffer.is_empty() && self.tasks.is_empty();
            if self.listing_done && self.rechecks.is_done() && idle {
                return Ok(());
            }
            let room = self.buffer.len() < BUFFERED_DOSSIERS;
            if room && !self.rechecks.is_done() && !self.run.cancel.is_cancelled() {
                self.recheck(totals).await?;
                continue;
            }
            let listing = !self.listing_done && room;
            tokio::select! {
                biased;
                () = self.run.cancel.cancelled(), if !self.listing_done => {
                    self.listing_done = true;
                    self.rechecks.stop();
                    self.buffer.clear();
                }
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.joined(joined, totals);
                }
                page = self.pages.next(), if listing => self.page(page, totals)?,
                else => return Ok(()),
            }
        }
    }

    /// Gives waiting dossiers a task, up to `max_in_flight`.
    fn spawn(&mut self, max_in_flight: usize, totals: &mut Totals) {
        while self.tasks.len() < max_in_flight {
            let Some(order::Waiting {
                dossier, access, ..
            }) = self.buffer.pop()
            else {
                return;
            };
            let Some(number) = dossier.get("number").and_then(Value::as_u64) else {
                let message = "DS returned a dossier without a `number`; it is skipped";
                totals.warn(&self.run.progress, message.to_owned());
                continue;
            };
            let task = dossier::process(Arc::clone(&self.run), (number, access), dossier);
            let handle = self.tasks.spawn(task);
            self.in_flight.insert(handle.id(), number);
        }
    }

    /// A dossier task ended: its outcome, or (a panic, a bug) a failure of the dossier.
    fn joined(
        &mut self,
        joined: Result<(tokio::task::Id, DossierOutcome), tokio::task::JoinError>,
        totals: &mut Totals,
    ) {
        match joined {
            Ok((id, outcome)) => {
                self.in_flight.remove(&id);
                totals.merge(outcome);
            }
            Err(e) => {
                let dossier = self.in_flight.remove(&e.id()).unwrap_or_default();
                totals.fail(Failure {
                    dossier,
                    file_id: None,
                    key: shard_key(dossier),
                    reason: format!("internal error while syncing the dossier: {e}"),
                    code: None,
                });
                totals.recheck.push(dossier);
            }
        }
    }

    /// A page of the listing (or its end, or its error: `Err` if nothing came before).
    fn page(
        &mut self,
        page: Option<Result<ds::DossierBatch, ds::Error>>,
        totals: &mut Totals,
    ) -> Result<(), Error> {
        match page {
            Some(Ok(batch)) => {
                let dossiers = batch.dossiers.len();
                self.received = self.received.saturating_add(dossiers as u64);
                let total_dossiers = self.received;
                let event = Event::PageFetched {
                    dossiers,
                    total_dossiers,
                };
                self.run.progress.event(&event);
                for error in &batch.errors {
                    let message = format!("DS returned an error with the dossiers: {error}");
                    totals.warn(&self.run.progress, message);
                }
                self.missing.extend(batch.missing);
                let fetched = &self.rechecks.fetched;
                let number = |d: &Value| d.get("number").and_then(Value::as_u64);
                let listed = batch.dossiers.into_iter();
                let access = self.listing_access;
                let fresh = listed.filter(|d| number(d).is_none_or(|n| !fetched.contains(&n)));
                fresh.for_each(|d| self.buffer.push(d, access));
            }
            Some(Err(e)) => self.stopped(e)?,
            None => self.listing_done = true,
        }
        Ok(())
    }

    /// The recheck list's next request: its dossiers join the buffer; its API calls are
    /// counted apart from the URL refreshes that dossier tasks make meanwhile.
    async fn recheck(&mut self, totals: &mut Totals) -> Result<(), Error> {
        let stats = |run: &Run| {
            (
                run.client.stats().api_calls,
                run.refreshes.load(Ordering::Relaxed),
            )
        };
        let (calls, refreshes) = stats(&self.run);
        let fetched = self.rechecks.next(&self.run, totals).await;
        let (calls_after, refreshes_after) = stats(&self.run);
        let own = (calls_after.saturating_sub(calls))
            .saturating_sub(refreshes_after.saturating_sub(refreshes));
        totals.api.recheck = totals.api.recheck.saturating_add(own);
        match fetched {
            Ok(dossiers) => {
                let buffer = &mut self.buffer;
                dossiers
                    .into_iter()
                    .for_each(|d| buffer.push(d, Access::Sequential));
            }
            Err(e) => self.stopped(e)?,
        }
        Ok(())
    }

    /// DS refused the recheck list or the listing: nothing more is asked; `Err` if nothing
    /// came before (the run fails as a whole), else the run finishes what it has.
    fn stopped(&mut self, e: ds::Error) -> Result<(), Error> {
        self.listing_done = true;
        self.rechecks.stop();
        if self.received == 0 && self.tasks.is_empty() && self.buffer.is_empty() {
            return Err(e.into());
        }
        self.listing_error = Some(e);
        Ok(())
    }
}

/// Records deleted dossiers, writes the recheck list and (after a complete run) the sync
/// point, then the run's report.
async fn finish(prepared: Prepared, listing_error: Option<ds::Error>) -> Result<SyncReport, Error> {
    let Prepared {
        run,
        mut totals,
        state,
        ..
    } = prepared;
    let cancelled = run.cancel.is_cancelled();
    let since = prepared.filter.updated_since;
    let calls = run.client.stats().api_calls;
    if !cancelled && listing_error.is_none() && prepared.filter.dossiers.is_empty() {
        bookkeeping::deleted_dossiers(&run, since, None, &mut totals).await;
    }
    if !prepared.missing.is_empty() {
        bookkeeping::missing_dossiers(&run, &prepared.missing, &mut totals).await;
    }
    totals.api.deleted = run.client.stats().api_calls.saturating_sub(calls);
    let previous = (state.recheck, state.recheck_legacy);
    let dropped = &prepared.rechecks.dropped;
    bookkeeping::write_recheck(&run, previous, dropped, &mut totals).await;
    let advance = prepared.complete && !cancelled && listing_error.is_none() && totals.clean();
    if advance {
        let (started_at, run_id) = (prepared.started_at, &prepared.run_id);
        bookkeeping::write_sync_point(&run, started_at, run_id, &mut totals).await;
    }
    if !cancelled {
        run.shards.compact().await;
    }
    let lists = totals
        .lists
        .publish(run.publisher.sink(), &prepared.run_id)
        .await;
    let facts = RunFacts {
        run_id: prepared.run_id,
        demarche: run.opts.demarche,
        dest: run.publisher.sink().describe(),
        since,
        started_at: prepared.started_at,
        elapsed: prepared.clock.elapsed(),
        pruned: run.opts.prune,
        api: run.client.stats(),
        sync_point_advanced: advance,
        cancelled,
        layout: run.naming.used.clone(),
        state_objects: run.shards.state_objects(),
    };
    let report = tally::report(facts, totals, lists);
    let report_key = format!("{RUNS_PREFIX}{}.json", report.run_id);
    if let Err(e) = state::write(run.publisher.sink(), &report_key, &report).await {
        let reason = fetch::error_chain(&e);
        tracing::warn!("cannot write the run report `{report_key}`: {reason}");
    }
    run.progress.event(&Event::Finished);
    match listing_error {
        Some(e) => Err(e.into()),
        None => Ok(report),
    }
}
