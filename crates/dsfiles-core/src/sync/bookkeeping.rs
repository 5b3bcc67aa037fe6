//! What a run carries to the next one, in the destination under `.dsfiles/`: the listing
//! window from the sync point, the recheck list (read and fetched at the start, written at the
//! end), the dossiers DS deleted, and the staging leftovers of a killed run.
//!
//! Rules: the sync point moves only after a complete run (unfiltered, not cancelled, no
//! failure, no warning), to that run's *start*; the next `--since auto` run lists from there
//! minus [`SINCE_MARGIN`] (`docs/cli.md` says why). A dossier leaves the recheck list once
//! processed without a reason to look again, or when DS says it is no dossier of the démarche;
//! one DS could not return stays.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde_json::Value;

use super::Run;
use super::tally::{Tally, Totals};
use crate::fetch;
use crate::options::{SINCE_MARGIN, Since, SyncOptions};
use crate::removal;
use crate::sink::Sink;
use crate::state;
use crate::wire::{
    Event, FileStatus, Recheck, STAGING_PREFIX, Shard, SyncPoint, WIRE_VERSION, recheck_key,
    shard_key, staging_marker, staging_prefix, sync_point_key,
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

/// What fetching the previous run's recheck list gave.
#[derive(Debug, Default)]
pub(super) struct Rechecked {
    /// The dossiers DS returned, to process before the listing's.
    pub found: Vec<Value>,
    /// Numbers that are no dossier of the démarche (deleted, another démarche's): off the list.
    pub dropped: HashSet<u64>,
}

/// Fetches the previous run's recheck list, [`ds::DOSSIERS_PER_REQUEST`] dossiers per request
/// (`Client::dossiers_by_number`), with the semantics of one `dossier(number)` each: not found
/// → dropped from the list; a transient or API error → a warning, and the dossier stays on the
/// list (`totals.recheck`); anything else (token, access) → the run fails. A request that
/// fails as a whole does the same for each of its dossiers.
pub(super) async fn fetch_rechecks(
    run: &Run,
    numbers: &[u64],
    totals: &mut Totals,
) -> Result<Rechecked, Error> {
    let mut out = Rechecked::default();
    for chunk in numbers.chunks(ds::DOSSIERS_PER_REQUEST) {
        if run.cancel.is_cancelled() {
            break;
        }
        match run
            .client
            .dossiers_by_number(chunk, &run.refresh_filter)
            .await
        {
            Ok(settled) => {
                for (number, result) in settled {
                    settle(run, number, result, &mut out, totals)?;
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
                totals.recheck.extend_from_slice(chunk);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Sorts out what DS said about one dossier of the recheck list ([`fetch_rechecks`]).
fn settle(
    run: &Run,
    number: u64,
    result: Result<Option<Value>, ds::Error>,
    out: &mut Rechecked,
    totals: &mut Totals,
) -> Result<(), Error> {
    match result {
        Ok(Some(dossier)) => match dossier.pointer("/demarche/number").and_then(Value::as_u64) {
            Some(other) if other != run.opts.demarche => {
                tracing::warn!(
                    dossier = number,
                    demarche = other,
                    "a dossier of the recheck list belongs to another démarche: dropped"
                );
                out.dropped.insert(number);
            }
            _ => out.found.push(dossier),
        },
        Ok(None) => {
            out.dropped.insert(number);
        }
        // Config: a number DS cannot even take (beyond its `Int`): no dossier.
        Err(e) if matches!(e.kind(), ds::ErrorKind::NotFound | ds::ErrorKind::Config) => {
            tracing::warn!(dossier = number, "dropped from the recheck list: {e}");
            out.dropped.insert(number);
        }
        Err(e) if recoverable(&e) => {
            let reason = fetch::error_chain(&e);
            totals.warn(
                &run.progress,
                format!("dossier `{number}` could not be re-checked: {reason}"),
            );
            totals.recheck.push(number);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
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

/// Records DS's deleted dossiers in their shards (and deletes their files with prune).
pub(super) async fn deleted_dossiers(run: &Run, since: Option<DateTime<Utc>>, totals: &mut Totals) {
    let stream = run.client.deleted_dossiers(run.opts.demarche, since);
    let mut stream = std::pin::pin!(stream);
    while let Some(page) = stream.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                let reason = fetch::error_chain(&e);
                let message = format!("deleted dossiers could not be listed: {reason}");
                totals.warn(&run.progress, message);
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
/// deletes those dsfiles stored ([`super::publish::Publisher::prune`]) and its dossier.json.
async fn record_deleted(
    run: &Run,
    deleted: &ds::DeletedDossier,
    tally: &mut Tally,
) -> Result<(), String> {
    let number = deleted.number;
    let key = shard_key(number);
    let sink = run.publisher.sink();
    let failed = |e: Error| format!("cannot record the deletion of dossier `{number}`: {e}");
    let mut shard: Shard = match state::read(sink, &key).await {
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
        state::write(sink, &key, &shard).await.map_err(failed)?;
    }
    Ok(())
}

/// Writes the démarche's recheck list: the `previous` entries (with whether they were read
/// from the legacy key) neither processed now nor `dropped`, plus this run's
/// (`totals.recheck`).
pub(super) async fn write_recheck(
    run: &Run,
    (previous, legacy): (Recheck, bool),
    dropped: &HashSet<u64>,
    totals: &mut Totals,
) {
    let processed: HashSet<u64> = totals.processed.iter().copied().collect();
    let mut later: BTreeSet<u64> = totals.recheck.iter().copied().collect();
    if previous.demarche == run.opts.demarche {
        later.extend(
            previous
                .dossiers
                .iter()
                .filter(|n| !processed.contains(n) && !dropped.contains(n)),
        );
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
