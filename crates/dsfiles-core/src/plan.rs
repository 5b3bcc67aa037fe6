//! Planning: what to do with each file of one dossier, given what its manifest shard says is
//! already stored. A pure function of its inputs (the key allocator is data), tested from data.
//!
//! Rules, per file record (matched to the shard by `file_id`):
//! - virus scan neither `safe` nor `pending` → not downloaded (unless `allow_unscanned`); a
//!   copy stored earlier stays as it is;
//! - stored with the same DS checksum and status `ok`/`checksum_mismatch` → unchanged;
//! - stored `pending` with the same checksum: scan now `safe` → status updated, no download;
//!   still `pending` → kept, checked again on the next run; (a changed checksum downloads);
//! - unverifiable (no DS checksum: pdf, geojson) → downloaded again only when the dossier's
//!   `updated_at` changed or the file is not stored;
//! - anything else (new file, changed checksum) → downloaded, keeping the key the file slot
//!   already holds when the layout still renders it the same way;
//! - stored files DS no longer lists → `removed_upstream`;
//! - with a layout that uses the dossier's values (`{groupe}`, `{champ:LABEL}`, …): a stored
//!   file that needs no download but whose key the layout now renders differently (a value
//!   changed) → moved to its new key (the allocator decides it, as for a download; a numbered
//!   variant of the rendered key is not a change). Layouts of file values only never move a
//!   stored file: its key stays the one it was stored at.
//!
//! Keys are decided twice: here, from the layout, reserved in the allocator before any
//! download; and, for a file that must be staged (a `{sha256}` layout, a new key already
//! occupied in the destination), again after its download in `sync/publish.rs`, by comparing
//! SHA-256 and size with what sits at the key (that module's doc has the rule).

use dsfiles_extract::{DossierContext, Error, FileRecord, KeyAllocator, Layout, RelKey};

use crate::wire::{FileStatus, Shard, ShardFile};

/// Everything the plan of one dossier depends on.
#[derive(Debug)]
pub(crate) struct PlanInput<'a> {
    /// The dossier's records, in extraction order.
    pub records: Vec<FileRecord>,
    /// The dossier's manifest shard, if any.
    pub shard: Option<&'a Shard>,
    /// DS's `dateDerniereModification` of the dossier now.
    pub updated_at: Option<&'a str>,
    pub allow_unscanned: bool,
    /// The dossier's values, for the layout's dossier placeholders.
    pub context: Option<&'a DossierContext>,
}

#[derive(Debug, PartialEq)]
pub(crate) struct DossierPlan {
    pub actions: Vec<Action>,
    /// Stored files DS no longer lists, with status `removed_upstream`.
    pub removed: Vec<ShardFile>,
    /// Inconsistencies found (duplicate file ids, unusable stored keys).
    pub warnings: Vec<String>,
}

#[derive(Debug, PartialEq)]
pub(crate) enum Action {
    /// Already stored as DS has it: nothing to do.
    Unchanged {
        entry: ShardFile,
    },
    /// Stored bytes are right, only the status changes (pending scan now safe).
    Update {
        entry: ShardFile,
    },
    /// Left out because of its virus scan; `entry` is what was stored before, kept as is.
    Unscanned {
        record: FileRecord,
        entry: Option<ShardFile>,
    },
    Download(Download),
    /// Stored bytes are right, but the layout now puts the file at `to` (a dossier value
    /// changed): the object is copied there, then the old one removed.
    Move {
        entry: ShardFile,
        to: RelKey,
    },
}

#[derive(Debug, PartialEq)]
pub(crate) struct Download {
    pub record: FileRecord,
    /// Where to publish; `None` when the layout needs the SHA-256, known after the download.
    pub key: Option<RelKey>,
    /// What the manifest held for this file slot (its object stays until replaced).
    pub previous: Option<ShardFile>,
    /// Whether nothing of this file slot was ever stored at `key` (the key is then checked
    /// in the destination before publishing, so that no file overwrites another).
    pub new_key: bool,
    /// The status the file gets if its size and checksum match.
    pub status: FileStatus,
}

/// Whether a virus scan result lets a file be stored.
pub(crate) fn scan_allows(virus_scan: &str) -> bool {
    matches!(virus_scan, "safe" | "pending")
}

/// Whether DS gives a checksum to verify `record` against.
pub(crate) fn verifiable(record: &FileRecord) -> bool {
    record.verifiable() && !record.checksum.is_empty()
}

/// The status a file gets when its download matches what DS announced.
pub(crate) fn good_status(record: &FileRecord) -> FileStatus {
    if !verifiable(record) {
        FileStatus::Unverified
    } else if record.virus_scan == "pending" {
        FileStatus::Pending
    } else {
        FileStatus::Ok
    }
}

/// Seeds `keys` with the keys held by `shard` (so that new files never take them). An entry
/// whose key cannot be held is a warning; a failed key store fails the whole.
pub(crate) fn hold_shard_keys(
    shard: &Shard,
    keys: &mut KeyAllocator,
) -> Result<Vec<String>, Error> {
    let mut warnings = Vec::new();
    for entry in &shard.files {
        let held =
            RelKey::parse(&entry.key).and_then(|key| keys.insert_existing(&entry.file_id, key));
        if let Some(e) = refusal(held)? {
            warnings.push(format!(
                "dossier `{}`: manifest entry `{}`: {e}",
                shard.dossier, entry.file_id
            ));
        }
    }
    Ok(warnings)
}

/// Keeps `old` reserved for `file_id`'s previous object until the new one is published. A
/// refusal is left alone (another file already holds that key); a failed store is not.
fn hold_superseded(keys: &mut KeyAllocator, file_id: &str, old: RelKey) -> Result<(), Error> {
    refusal(keys.insert_existing(&format!("{file_id}#superseded"), old)).map(drop)
}

/// Why a key could not be held (`Ok(Some)`), or `Err` when the key store failed: the one error
/// that stops planning.
fn refusal(held: Result<(), Error>) -> Result<Option<Error>, Error> {
    match held {
        Ok(()) => Ok(None),
        Err(e @ Error::KeyStore { .. }) => Err(e),
        Err(e) => Ok(Some(e)),
    }
}

/// Plans one dossier. `keys` must already hold the shard's keys ([`hold_shard_keys`]) and the
/// keys reserved earlier in the run; the keys of planned downloads are reserved in it. Fails
/// only when the key store does.
pub(crate) fn plan(
    input: PlanInput<'_>,
    layout: &Layout,
    keys: &mut KeyAllocator,
) -> Result<DossierPlan, Error> {
    let mut actions = Vec::with_capacity(input.records.len());
    let mut warnings = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let stored = |file_id: &str| input.shard.and_then(|s| s.file(file_id)).cloned();
    let same_update = match (
        input.shard.and_then(|s| s.updated_at.as_deref()),
        input.updated_at,
    ) {
        (Some(before), Some(now)) => before == now,
        _ => false,
    };

    for record in input.records {
        let file_id = record.file_id();
        if !seen.insert(file_id.clone()) {
            warnings.push(format!(
                "dossier `{}`: file `{file_id}` listed twice; the second (`{}`) is ignored",
                record.dossier, record.filename
            ));
            continue;
        }
        let entry = stored(&file_id);
        if !input.allow_unscanned && !scan_allows(&record.virus_scan) {
            actions.push(Action::Unscanned { record, entry });
            continue;
        }
        if let Some(entry) = &entry
            && let Some(kept) = kept_action(&record, entry, same_update)
        {
            actions.push(moved(kept, &record, layout, input.context, keys)?);
            continue;
        }
        actions.push(download(record, entry, (layout, input.context), keys)?);
    }

    let removed = input
        .shard
        .map(|shard| {
            shard
                .files
                .iter()
                .filter(|f| !seen.contains(&f.file_id))
                .map(|f| ShardFile {
                    status: FileStatus::RemovedUpstream,
                    ..f.clone()
                })
                .collect()
        })
        .unwrap_or_default();

    Ok(DossierPlan {
        actions,
        removed,
        warnings,
    })
}

/// The download of `record` (whose manifest entry is `entry`): its key rendered and reserved
/// in `keys` (none yet for a `{sha256}` layout), and the key it leaves kept reserved until the
/// new object is published.
fn download(
    record: FileRecord,
    entry: Option<ShardFile>,
    (layout, context): (&Layout, Option<&DossierContext>),
    keys: &mut KeyAllocator,
) -> Result<Action, Error> {
    let file_id = record.file_id();
    let key = if layout.needs_sha256() {
        None
    } else {
        let rendered = layout.render_in(&record, None, context);
        Some(keys.allocate(&file_id, &rendered)?)
    };
    if let (Some(key), Some(entry)) = (&key, &entry)
        && key.as_str() != entry.key
        && let Ok(old) = RelKey::parse(&entry.key)
    {
        hold_superseded(keys, &file_id, old)?;
    }
    let new_key = match (&key, &entry) {
        (Some(key), Some(entry)) => key.as_str() != entry.key,
        _ => true,
    };
    let status = good_status(&record);
    Ok(Action::Download(Download {
        record,
        key,
        previous: entry,
        new_key,
        status,
    }))
}

/// The action for a stored file that needs no download (`Unchanged` or `Update`), if so.
fn kept_action(record: &FileRecord, entry: &ShardFile, same_update: bool) -> Option<Action> {
    let unchanged = || {
        Some(Action::Unchanged {
            entry: entry.clone(),
        })
    };
    if verifiable(record) && entry.checksum == record.checksum {
        match entry.status {
            FileStatus::Ok | FileStatus::ChecksumMismatch => unchanged(),
            FileStatus::Pending if record.virus_scan == "pending" => unchanged(),
            FileStatus::Pending => Some(Action::Update {
                entry: ShardFile {
                    status: good_status(record),
                    ..entry.clone()
                },
            }),
            FileStatus::Unverified | FileStatus::RemovedUpstream => None,
        }
    } else if !verifiable(record) && same_update && entry.status == FileStatus::Unverified {
        unchanged()
    } else {
        None
    }
}

/// `action` (a kept file), or a move when the layout uses dossier values and now renders the
/// file elsewhere (see the module doc). The old key stays reserved until the move is done.
fn moved(
    action: Action,
    record: &FileRecord,
    layout: &Layout,
    context: Option<&DossierContext>,
    keys: &mut KeyAllocator,
) -> Result<Action, Error> {
    let entry = match &action {
        Action::Unchanged { entry } | Action::Update { entry } => entry,
        _ => return Ok(action),
    };
    if !layout.needs_context() || layout.needs_sha256() {
        return Ok(action);
    }
    let rendered = layout.render_in(record, None, context);
    let to = keys.allocate(&entry.file_id, &rendered)?;
    if to.as_str() == entry.key {
        return Ok(action);
    }
    if let Ok(old) = RelKey::parse(&entry.key) {
        hold_superseded(keys, &entry.file_id, old)?;
    }
    Ok(match action {
        Action::Unchanged { entry } | Action::Update { entry } => Action::Move { entry, to },
        _ => action,
    })
}

#[cfg(test)]
mod tests;
