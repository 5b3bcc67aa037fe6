//! What a run carries to the next one, in the destination under `.dsfiles/`: the listing
//! window from the sync point, the recheck list (read at the start, fetched a request at a
//! time before the listing, written at the end), the dossiers DS deleted, and the staging
//! leftovers of a killed run.
//!
//! Rules: the sync point moves only after a complete run (unfiltered, not cancelled, no
//! failure, no warning), to that run's *start*; the next `--since auto` run lists from there
//! minus [`SINCE_MARGIN`] (`docs/cli.md` says why). A dossier leaves the recheck list once
//! processed without a reason to look again, or when DS says it is no dossier of the démarche;
//! one DS could not return stays. A dossier named by number that DS does not find is recorded
//! deleted if DS lists it among its recent deletions ([`RECENT_DELETIONS`]), else it is a
//! warning: never a silent skip, never a wait on the dossiers named after it.

use std::collections::{BTreeSet, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde_json::Value;

use super::Run;
use super::tally::{Tally, Totals};
use crate::fetch;
use crate::options::{SINCE_MARGIN, Since, SyncOptions};
use crate::removal;
use crate::shards::Access;
use crate::sink::Sink;
use crate::state;
use crate::wire::{
    Event, FileStatus, Recheck, ReportLine, STAGING_PREFIX, Shard, SyncPoint, WIRE_VERSION,
    recheck_key, staging_marker, staging_prefix, sync_point_key,
};
use crate::{Error, ds};

/// The listing filter of this run (`updated_since` from [`Since`] and the sync point), and
/// whether that listing sees every dossier of the démarche.
pub(super) fn window(
    opts: &SyncOptions,
    sync_point: Option<&SyncPoint>,
) -> (ds::DossierFilter, bool) {
    let since = match opts.since {
        Since::Full => opts.filter.updated_since,
        Since::At(at) => Some(at),
        Since::Auto => match sync_point {
            Some(point) if point.demarche == opts.demarche => Some(
                point.last_success_started_at
                    - chrono::Duration::from_std(SINCE_MARGIN)
                        .unwrap_or_else(|_| chrono::Duration::zero()),
            ),
            _ => opts.filter.updated_since,
        },
    };
    let filter = ds::DossierFilter {
        updated_since: since,
        ..opts.filter.clone()
    };
    let complete = filter.dossiers.is_empty()
        && filter.state.is_none()
        && filter.archived.is_none()
        && filter.groupe_instructeur.is_none()
        && filter.created_since.is_none()
        // A listing started mid-démarche does not see every dossier.
        && filter.after.is_none();
    (filter, complete)
}

/// The previous run's recheck list (pending scans, earlier failures), fetched
/// [`ds::DOSSIERS_PER_REQUEST`] dossiers per request as the run needs them
/// (`Client::dossiers_by_number`): DS did not necessarily update these dossiers, so the
/// listing would miss them. At most one request's dossiers are held at a time; the sets keep
/// only numbers.
#[derive(Debug, Default)]
pub(super) struct Rechecks {
    /// Numbers still to fetch.
    pending: VecDeque<u64>,
    /// Dossiers DS returned (given a task: the listing's copy of them is skipped).
    pub fetched: HashSet<u64>,
    /// Numbers that are no dossier of the démarche (deleted, another démarche's): off the list.
    pub dropped: HashSet<u64>,
}

impl Rechecks {
    pub fn new(numbers: &[u64]) -> Rechecks {
        Rechecks {
            pending: numbers.iter().copied().collect(),
            ..Rechecks::default()
        }
    }

    /// Whether every number has been asked for.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// Stops asking (the run is cancelled).
    pub fn stop(&mut self) {
        self.pending.clear();
    }

    /// The next request's dossiers, with the semantics of one `dossier(number)` each: not
    /// found → dropped from the list; a transient or API error → a warning, and the dossier
    /// stays on the list (`totals.recheck`); anything else (token, access) → `Err`, the run
    /// stops. A request that fails as a whole does the same for each of its dossiers.
    pub async fn next(&mut self, run: &Run, totals: &mut Totals) -> Result<Vec<Value>, ds::Error> {
        let take = self.pending.len().min(ds::DOSSIERS_PER_REQUEST);
        let chunk: Vec<u64> = self.pending.drain(..take).collect();
        let mut found = Vec::new();
        match run
            .client
            .dossiers_by_number(&chunk, &run.refresh_filter)
            .await
        {
            Ok(settled) => {
                for (number, result) in settled {
                    if let Some(dossier) = settle(run, number, result, self, totals)? {
                        self.fetched.insert(number);
                        found.push(dossier);
                    }
                }
            }
            Err(e) if recoverable(&e) => {
                let message = format!(
                    "{} dossiers (`{}` to `{}`) could not be re-checked: {}",
                    chunk.len(),
                    chunk.first().copied().unwrap_or_default(),
                    chunk.last().copied().unwrap_or_default(),
                    fetch::error_chain(&e)
                );
                totals.warn(&run.progress, message);
                totals.recheck.extend_from_slice(&chunk);
            }
            Err(e) => return Err(e),
        }
        Ok(found)
    }
}

/// Sorts out what DS said about one dossier of the recheck list ([`Rechecks::next`]): the
/// dossier to process, if any.
fn settle(
    run: &Run,
    number: u64,
    result: Result<Option<Value>, ds::Error>,
    rechecks: &mut Rechecks,
    totals: &mut Totals,
) -> Result<Option<Value>, ds::Error> {
    match result {
        Ok(Some(dossier)) => match dossier.pointer("/demarche/number").and_then(Value::as_u64) {
            Some(other) if other != run.opts.demarche => {
                tracing::warn!(
                    dossier = number,
                    demarche = other,
                    "a dossier of the recheck list belongs to another démarche: dropped"
                );
                rechecks.dropped.insert(number);
            }
            _ => return Ok(Some(dossier)),
        },
        Ok(None) => {
            rechecks.dropped.insert(number);
        }
        // Config: a number DS cannot even take (beyond its `Int`): no dossier.
        Err(e) if matches!(e.kind(), ds::ErrorKind::NotFound | ds::ErrorKind::Config) => {
            tracing::warn!(dossier = number, "dropped from the recheck list: {e}");
            rechecks.dropped.insert(number);
        }
        Err(e) if recoverable(&e) => {
            let reason = fetch::error_chain(&e);
            totals.warn(
                &run.progress,
                format!("dossier `{number}` could not be re-checked: {reason}"),
            );
            totals.recheck.push(number);
        }
        Err(e) => return Err(e),
    }
    Ok(None)
}

/// Whether a DS error leaves the run going (the dossiers concerned are tried again next run).
fn recoverable(e: &ds::Error) -> bool {
    e.is_transient() || e.kind() == ds::ErrorKind::Api
}

/// Removes what a killed run of `demarche` left in its staging area (best effort); the
/// staging areas of other démarches, whose runs may be going on, are left alone.
pub(super) async fn remove_staging(sink: &dyn Sink, demarche: u64) {
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

/// How far back a run that names dossiers looks for the deletion of one DS did not find: DS
/// keeps a webhook's events 7 days (`WebhookEvent::RETENTION_PERIOD` in DS's source) and
/// delivers them in that time, so a `dossier_supprime` delivery names a dossier deleted within
/// it; a day more for the delivery's wait in the job queue. A few pages of `deletedDossiers`
/// at most, where the whole démarche's deletions can be thousands.
const RECENT_DELETIONS: chrono::TimeDelta = chrono::TimeDelta::days(8);

/// Settles the named dossiers DS did not find: one DS deleted lately is recorded as deleted
/// ([`deleted_dossiers`], as a full run would), any other is a warning naming it.
pub(super) async fn missing_dossiers(run: &Run, missing: &[u64], totals: &mut Totals) {
    let missing: BTreeSet<u64> = missing.iter().copied().collect();
    let recorded = if run.cancel.is_cancelled() {
        BTreeSet::new()
    } else {
        let since = Utc::now() - RECENT_DELETIONS;
        deleted_dossiers(run, Some(since), Some(&missing), totals).await
    };
    for number in missing.difference(&recorded) {
        let message = format!(
            "dossier `{number}` not found in DS, skipped: deleted more than {} days ago, never \
             of this démarche, or out of this token's reach",
            RECENT_DELETIONS.num_days()
        );
        totals.warn(&run.progress, message);
    }
}

/// Records DS's deleted dossiers (deleted since `since`; of `only` when given) in their shards
/// (and deletes their files with prune); returns the numbers recorded.
pub(super) async fn deleted_dossiers(
    run: &Run,
    since: Option<DateTime<Utc>>,
    only: Option<&BTreeSet<u64>>,
    totals: &mut Totals,
) -> BTreeSet<u64> {
    let mut recorded = BTreeSet::new();
    let stream = run.client.deleted_dossiers(run.opts.demarche, since);
    let mut stream = std::pin::pin!(stream);
    while let Some(page) = stream.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                let reason = fetch::error_chain(&e);
                let message = format!("deleted dossiers could not be listed: {reason}");
                totals.warn(&run.progress, message);
                return recorded;
            }
        };
        let wanted = page
            .into_iter()
            .filter(|d| only.is_none_or(|only| only.contains(&d.number)));
        for deleted in wanted {
            if run.cancel.is_cancelled() {
                return recorded;
            }
            let dossier = deleted.number;
            recorded.insert(dossier);
            totals.lists.push(ReportLine::DeletedDossier { dossier });
            run.progress.event(&Event::DossierDeleted {
                number: deleted.number,
            });
            let mut tally = Tally::default();
            if let Err(message) = record_deleted(run, &deleted, &mut tally).await {
                totals.warn(&run.progress, message);
            }
            totals.add(tally);
        }
    }
    recorded
}

/// Marks the files of the deleted dossier `removed_upstream` in its shard, and with prune
/// deletes those dsfiles stored ([`super::publish::Publisher::prune`]) and its dossier.json.
async fn record_deleted(
    run: &Run,
    deleted: &ds::DeletedDossier,
    tally: &mut Tally,
) -> Result<(), String> {
    let number = deleted.number;
    let failed = |e: Error| format!("cannot record the deletion of dossier `{number}`: {e}");
    let mut shard: Shard = match run.shards.read(number, Access::Random).await {
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
            tally.counts.removed = tally.counts.removed.saturating_add(1);
        }
        file.status = FileStatus::RemovedUpstream;
        if !run.opts.prune || run.publisher.prune(number, &file, tally).await {
            kept.push(file);
        }
    }
    shard.files = kept;
    if run.opts.prune
        && let Some(data) = shard.data.take()
        && super::data::prune(run, number, &data, tally).await
    {
        shard.data = Some(data);
    }
    if shard != before {
        run.shards.write(&shard).await.map_err(failed)?;
    }
    Ok(())
}

/// Writes the démarche's recheck list: the `previous` entries (with whether they were read
/// from the legacy key) neither processed now (`totals.unprocessed`) nor `dropped`, plus this
/// run's (`totals.recheck`).
pub(super) async fn write_recheck(
    run: &Run,
    (previous, legacy): (Recheck, bool),
    dropped: &HashSet<u64>,
    totals: &mut Totals,
) {
    let mut later: BTreeSet<u64> = totals.recheck.iter().copied().collect();
    if previous.demarche == run.opts.demarche {
        later.extend((totals.unprocessed.iter()).filter(|n| !dropped.contains(n)));
    }
    let recheck = Recheck {
        version: WIRE_VERSION,
        demarche: run.opts.demarche,
        dossiers: later.into_iter().collect(),
    };
    if recheck.dossiers == previous.dossiers && previous.demarche == recheck.demarche && !legacy {
        return;
    }
    let key = recheck_key(run.opts.demarche);
    if let Err(e) = state::write(run.publisher.sink(), &key, &recheck).await {
        let message = format!("cannot write `{key}`: {}", fetch::error_chain(&e));
        totals.warn(&run.progress, message);
    }
}

/// Advances the démarche's sync point to the start of this run.
pub(super) async fn write_sync_point(
    run: &Run,
    started_at: DateTime<Utc>,
    run_id: &str,
    totals: &mut Totals,
) {
    let point = SyncPoint {
        version: WIRE_VERSION,
        demarche: run.opts.demarche,
        last_success_started_at: started_at,
        last_run_id: run_id.to_owned(),
    };
    let key = sync_point_key(run.opts.demarche);
    if let Err(e) = state::write(run.publisher.sink(), &key, &point).await {
        let message = format!("cannot write `{key}`: {}", fetch::error_chain(&e));
        totals.warn(&run.progress, message);
    }
}
