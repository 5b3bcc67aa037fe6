//! The per-dossier step: extract the dossier's records, read its manifest shard, plan against
//! it, publish the downloads, prune what DS removed, write the dossier.json (`super::data`),
//! write the shard.
//!
//! Rules: a dossier's shard is written once, when all its files are settled (stored, failed or
//! cancelled), and only if it changed. A failed or cancelled file keeps its previous entry, and
//! the dossier keeps its previous update time, so that the next run does not take its
//! unverified files for unchanged. Keys are decided twice: here, by [`plan::plan`] with the
//! dossier's allocator (the run's when the layout lets dossiers meet) before any download;
//! again after a staged download, in `super::publish` (its module doc has the rule).

use std::sync::Arc;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use serde_json::Value;

use super::Run;
use super::data::{self, DataInput};
use super::publish::{DossierRefresh, Keys, Settled};
use super::tally::{DossierOutcome, Tally};
use crate::Error;
use crate::extract::{self, DossierContext, FileRecord, RelKey};
use crate::plan::{self, Action, DossierPlan, Download, PlanInput};
use crate::removal;
use crate::shards::Access;
use crate::wire::{Event, Failure, FileStatus, Shard, ShardData, ShardFile, Skipped, WIRE_VERSION};

/// Extract, plan against the shard, download, write the shard.
pub(super) async fn process(
    run: Arc<Run>,
    (number, access): (u64, Access),
    dossier: Value,
) -> DossierOutcome {
    let mut out = DossierOutcome::new(number);
    let Some((read, records)) = read(&run, (number, access), &dossier, &mut out).await else {
        return out;
    };
    let Some(files) = settle_files(&run, &read, records, &mut out).await else {
        return out;
    };
    finish(&run, read, files, &mut out).await;
    out
}

/// A dossier as read before planning (its records aside): what its layout placeholders and
/// dossier.json are made of, and its shard.
struct Read<'a> {
    context: Result<DossierContext, extract::Error>,
    /// DS's `dateDerniereModification`.
    updated_at: Option<&'a str>,
    state: String,
    /// The shard as stored (`None`: absent or unreadable, then rebuilt).
    old: Option<Shard>,
    /// Whether the shard must be rewritten even if nothing else changes (unusable entries
    /// were dropped from `old`).
    rewrite: bool,
}

/// Extracts the dossier's context and records and reads its shard; `None` when the dossier
/// fails (`out` says why).
async fn read<'a>(
    run: &Run,
    (number, access): (u64, Access),
    dossier: &'a Value,
    out: &mut DossierOutcome,
) -> Option<(Read<'a>, Vec<FileRecord>)> {
    let records = match extract::extract(run.opts.demarche, dossier, run.include) {
        Ok(records) => records,
        Err(e) => {
            out.fail(format!("dossier `{number}` cannot be read: {e}"));
            return None;
        }
    };
    let context = extract::context(run.opts.demarche, dossier);
    if let Err(e) = &context
        && run.naming.layout.needs_context()
    {
        out.fail(format!("dossier `{number}` cannot be read: {e}"));
        return None;
    }
    let state = dossier_state(&records, dossier);
    let (old, rewrite) = read_shard(run, (number, access), out).await?;
    out.tally.counts.files = records.len() as u64;
    let read = Read {
        context,
        updated_at: dossier
            .get("dateDerniereModification")
            .and_then(Value::as_str),
        state,
        old,
        rewrite,
    };
    Some((read, records))
}

/// The shard's new entries, once every file is settled.
struct Files {
    entries: Vec<ShardFile>,
    /// Whether a file failed or was cancelled (then the dossier keeps its previous update
    /// time).
    incomplete: bool,
    /// The dossier.json's key, unless a stored file holds it.
    data_key: Option<RelKey>,
}

/// Plans the dossier's `records` against its shard, publishes the downloads and moves, and
/// prunes what DS removed; `None` when it cannot be planned (`out` says why).
async fn settle_files(
    run: &Run,
    read: &Read<'_>,
    records: Vec<FileRecord>,
    out: &mut DossierOutcome,
) -> Option<Files> {
    let number = out.dossier;
    let context = read.context.as_ref().ok();
    let planning = Planning {
        old: read.old.as_ref(),
        updated_at: read.updated_at,
        context,
    };
    let keys = run.publisher.dossier_keys();
    let data_key =
        (run.naming.data_layout.as_ref()).map(|l| l.render(run.opts.demarche, number, &read.state));
    let (planned, data_key) = plan((run, &keys), records, planning, data_key, out)
        .map_err(|e| out.fail(format!("dossier `{number}` cannot be planned: {e}")))
        .ok()?;
    for warning in &planned.warnings {
        tracing::warn!(dossier = number, "{warning}");
    }
    let (mut files, downloads, moves) = sort_actions(run, number, planned.actions, &mut out.tally);
    let mut incomplete = publish(
        run,
        number,
        downloads,
        (context, &keys),
        &mut files,
        &mut out.tally,
    )
    .await;
    incomplete |= move_files(run, number, moves, &mut files, &mut out.tally).await;
    for removed in planned.removed {
        out.tally.counts.removed = out.tally.counts.removed.saturating_add(1);
        if !run.opts.prune || run.publisher.prune(number, &removed, &mut out.tally).await {
            files.push(removed);
        }
    }
    files.sort_by(|a, b| a.file_id.cmp(&b.file_id));
    Some(Files {
        entries: files,
        incomplete,
        data_key,
    })
}

/// Builds the dossier's new shard, writes its dossier.json, decides whether it is checked
/// again next run, and writes the shard if it changed.
async fn finish(run: &Run, read: Read<'_>, files: Files, out: &mut DossierOutcome) {
    let Read {
        context,
        updated_at,
        state,
        old,
        rewrite,
        ..
    } = read;
    let number = out.dossier;
    let mut shard = Shard {
        version: WIRE_VERSION,
        demarche: run.opts.demarche,
        dossier: number,
        state,
        // A dossier with a failed or cancelled file keeps its previous update time, so
        // that its unverifiable files are not taken for unchanged next time.
        updated_at: if files.incomplete {
            old.as_ref().and_then(|s| s.updated_at.clone())
        } else {
            updated_at.map(str::to_owned)
        },
        deleted_at: None,
        files: files.entries,
        data: old.as_ref().and_then(|s| s.data.clone()),
    };
    let failures = out.tally.failed.len();
    if let Some(key) = files.data_key {
        shard.data = write_data(run, context, key, &shard, &mut out.tally).await;
    }
    // Checked again next run even if DS does not update the dossier: a pending scan may end
    // in a rewrite, and a file left out for its scan is stored once DS calls it safe (DS
    // does not touch the dossier's update time when a scan result changes).
    out.recheck |= files.incomplete
        || out.tally.failed.len() > failures
        || !out.tally.unscanned.is_empty()
        || shard.files.iter().any(|f| f.status == FileStatus::Pending);
    if (rewrite || old.as_ref() != Some(&shard))
        && let Err(e) = run.shards.write(&shard).await
    {
        out.fail(format!(
            "cannot write the manifest of dossier `{number}`: {e}"
        ));
    }
}

/// The dossier's state, as its records give it, else as the dossier says.
fn dossier_state(records: &[FileRecord], dossier: &Value) -> String {
    records.first().map(|r| r.state.clone()).unwrap_or_else(|| {
        dossier
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    })
}

/// The dossier's shard (`None` inside when absent or unreadable, then rebuilt), with whether
/// it must be rewritten because unusable entries were dropped. `None` when it cannot be read
/// (the dossier fails).
async fn read_shard(
    run: &Run,
    (number, access): (u64, Access),
    out: &mut DossierOutcome,
) -> Option<(Option<Shard>, bool)> {
    let mut old: Option<Shard> = match run.shards.read(number, access).await {
        Ok(shard) => shard,
        Err(Error::Manifest { key, reason }) => {
            out.tally.warnings.push(format!(
                "manifest shard `{key}` is unreadable and is rebuilt: {reason}"
            ));
            None
        }
        Err(e) => {
            out.fail(format!(
                "cannot read the manifest of dossier `{number}`: {e}"
            ));
            return None;
        }
    };
    // Entries naming keys that must never be used are dropped: their files are stored again.
    let refused = old
        .as_mut()
        .map(removal::refuse_unusable_entries)
        .unwrap_or_default();
    let rewrite = !refused.is_empty();
    out.tally.warnings.extend(refused);
    Some((old, rewrite))
}

/// What planning a dossier reads besides its records.
struct Planning<'a> {
    old: Option<&'a Shard>,
    updated_at: Option<&'a str>,
    context: Option<&'a DossierContext>,
}

/// Plans the dossier's files against its shard: the first decision on keys, in the dossier's
/// allocator (`Publisher::dossier_keys`), which first holds the shard's own keys, then the
/// dossier.json's `data_key` (returned unless a stored file holds it: that is a failure of the
/// dossier.json).
fn plan(
    (run, keys): (&Run, &Keys),
    records: Vec<FileRecord>,
    planning: Planning<'_>,
    data_key: Option<RelKey>,
    out: &mut DossierOutcome,
) -> Result<(DossierPlan, Option<RelKey>), extract::Error> {
    let Planning {
        old,
        updated_at,
        context,
    } = planning;
    keys.with(|keys| {
        if let Some(shard) = old {
            out.tally
                .warnings
                .extend(plan::hold_shard_keys(shard, keys)?);
        }
        let data_key = data_key.filter(|key| match data::reserve(keys, out.dossier, key) {
            Ok(()) => true,
            Err(reason) => {
                out.fail_key(key.as_str(), reason);
                false
            }
        });
        let input = PlanInput {
            records,
            shard: old,
            updated_at,
            allow_unscanned: run.opts.allow_unscanned,
            context,
        };
        Ok((plan::plan(input, &run.naming.layout, keys)?, data_key))
    })
}

/// Writes the dossier's dossier.json at `key` if it changed; the shard's new data entry.
async fn write_data(
    run: &Run,
    context: Result<DossierContext, extract::Error>,
    key: RelKey,
    shard: &Shard,
    tally: &mut Tally,
) -> Option<ShardData> {
    let old = shard.data.clone();
    let context = match context {
        Ok(context) => context,
        Err(e) => {
            let reason = format!("dossier.json not written: {e}");
            data::fail(tally, shard.dossier, key.as_str(), reason);
            return old;
        }
    };
    let input = DataInput {
        number: shard.dossier,
        key,
        context,
        files: &shard.files,
        old,
    };
    data::write(run, input, tally).await
}

/// A stored file to move to a new key.
type Move = (ShardFile, RelKey);

/// The entries that need no download, the downloads and the moves; each file announced and
/// counted.
fn sort_actions(
    run: &Run,
    number: u64,
    actions: Vec<Action>,
    tally: &mut Tally,
) -> (Vec<ShardFile>, Vec<Download>, Vec<Move>) {
    let (mut files, mut downloads, mut moves) = (Vec::new(), Vec::new(), Vec::new());
    let skipped = |key: &str, reason: String| {
        run.progress.event(&Event::FilePlanned { bytes: 0 });
        run.progress.event(&Event::FileSkipped {
            key: key.to_owned(),
            reason,
        });
    };
    for action in actions {
        match action {
            Action::Unchanged { entry } => {
                skipped(&entry.key, "unchanged".to_owned());
                tally.counts.unchanged += 1;
                tally.flag(number, &entry, None);
                files.push(entry);
            }
            Action::Update { entry } => {
                skipped(&entry.key, "status_updated".to_owned());
                tally.counts.updated += 1;
                tally.flag(number, &entry, None);
                files.push(entry);
            }
            Action::Unscanned { record, entry } => {
                let key = entry.as_ref().map_or(&record.filename, |e| &e.key);
                skipped(key, format!("virus_scan:{}", record.virus_scan));
                tally.unscanned.push(Skipped {
                    dossier: number,
                    file_id: record.file_id(),
                    filename: record.filename.clone(),
                    virus_scan: record.virus_scan.clone(),
                });
                files.extend(entry);
            }
            Action::Download(download) => {
                let bytes = download.record.byte_size;
                run.progress.event(&Event::FilePlanned { bytes });
                downloads.push(download);
            }
            Action::Move { entry, to } => {
                skipped(to.as_str(), "moved".to_owned());
                tally.flag(number, &entry, None);
                moves.push((entry, to));
            }
        }
    }
    (files, downloads, moves)
}

/// Moves stored files to their new keys (`--keep-moved` leaves the old objects); a file
/// that cannot be moved keeps its entry and is a failure, one not moved because the run was
/// cancelled keeps its entry. Returns whether one was not moved.
async fn move_files(
    run: &Run,
    number: u64,
    moves: Vec<Move>,
    files: &mut Vec<ShardFile>,
    tally: &mut Tally,
) -> bool {
    let mut failed = false;
    for (entry, to) in moves {
        if run.cancel.is_cancelled() {
            // Not moved: the file stays recorded where it is, and the next run moves it.
            failed = true;
            files.push(entry);
            continue;
        }
        let keep = run.opts.keep_moved;
        match run
            .publisher
            .move_stored(number, &entry, &to, keep, tally)
            .await
        {
            Ok(moved) => {
                tally.counts.moved += 1;
                files.push(moved);
            }
            Err(reason) => {
                failed = true;
                tally.failed.push(Failure {
                    dossier: number,
                    file_id: Some(entry.file_id.clone()),
                    key: entry.key.clone(),
                    reason,
                    code: None,
                });
                files.push(entry);
            }
        }
    }
    failed
}

/// Publishes the dossier's downloads concurrently (within the run's download permits) and
/// adds their entries to `files`. Returns whether a file failed or was cancelled.
async fn publish(
    run: &Run,
    number: u64,
    downloads: Vec<Download>,
    (context, keys): (Option<&DossierContext>, &Keys),
    files: &mut Vec<ShardFile>,
    tally: &mut Tally,
) -> bool {
    let refresher = DossierRefresh {
        client: &run.client,
        filter: &run.refresh_filter,
        include: run.include,
        demarche: run.opts.demarche,
        requests: &run.refreshes,
        cache: tokio::sync::Mutex::new(None),
    };
    let free = run.publisher.free_keys(&downloads).await;
    let mut pending: FuturesUnordered<_> = downloads
        .into_iter()
        .map(|d| {
            let (refresher, free) = (&refresher, &free);
            async move {
                let (file_id, previous) = (d.record.file_id(), d.previous.clone());
                (
                    file_id,
                    previous,
                    run.publisher
                        .publish(d, refresher, context, (keys, free))
                        .await,
                )
            }
        })
        .collect();
    let mut incomplete = false;
    while let Some((file_id, previous, settled)) = pending.next().await {
        match settled {
            Settled::Stored(entry, detail) => {
                stored(run, number, entry, detail, previous, files, tally).await;
            }
            Settled::Failed { key, reason, code } => {
                incomplete = true;
                run.progress.event(&Event::FileFailed {
                    key: key.clone(),
                    reason: reason.clone(),
                });
                tally.failed.push(Failure {
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
    incomplete
}

/// Counts a stored file, and removes the object it supersedes when it moved to a new key.
async fn stored(
    run: &Run,
    number: u64,
    entry: ShardFile,
    detail: Option<String>,
    previous: Option<ShardFile>,
    files: &mut Vec<ShardFile>,
    tally: &mut Tally,
) {
    tally.counts.stored += 1;
    tally.counts.bytes = tally.counts.bytes.saturating_add(entry.size);
    run.progress.event(&Event::FileStored {
        key: entry.key.clone(),
        bytes: entry.size,
        status: entry.status,
    });
    tally.flag(number, &entry, detail);
    if let Some(previous) = previous.filter(|p| p.key != entry.key) {
        // The slot's file moved (new name): the old object is superseded.
        run.publisher
            .remove_superseded(number, &previous, tally)
            .await;
    }
    files.push(entry);
}
