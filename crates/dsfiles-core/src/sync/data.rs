//! A dossier's `dossier.json` ([`DossierData`]): written after the dossier's files settled,
//! from the dossier as DS returned it and the files its new shard records.
//!
//! Rules:
//! - Its key is the data layout's, reserved in the dossier's [`KeyAllocator`] before its
//!   files are planned ([`reserve`]): a new file never takes it, and a file already stored
//!   there (it was named `dossier.json` before dossier.json existed) keeps it, the dossier.json
//!   then failing with a message that names the key.
//! - Rewritten only when its bytes change: the shard records their SHA-256 ([`ShardData`]),
//!   and identical bytes at the same key are not written again. The bytes are a function of
//!   DS's data and the stored files only (no time in them), so an unchanged dossier gives
//!   identical bytes.
//! - Published like a file (one atomic `create`/`commit`, with its MD5 and SHA-256 as
//!   metadata), and never over someone else's object: the key is written when it is empty,
//!   holds the object the shard recorded, or holds a dossier.json of this dossier (a run killed
//!   before it wrote the shard). Anything else is kept and reported; nothing is written.
//! - When the key changes (another `--data-layout`), the object at the old key is deleted once
//!   the new one is written, if it is still the one recorded (`removal`).

use bytes::Bytes;
use chrono::Utc;
use sha2::Digest as _;

use super::Run;
use super::tally::Tally;
use crate::extract::{DossierContext, KeyAllocator, RelKey};
use crate::fetch;
use crate::hash::Md5;
use crate::removal::{self, Verdict};
use crate::sink::{ObjectMeta, Sink};
use crate::wire::{DossierData, Failure, Kept, ShardData, ShardFile};

/// A found object larger than this is not read to tell whether it is a dossier.json.
const MAX_DATA_READ: u64 = 16 * 1024 * 1024;

/// The allocator id of dossier `number`'s dossier.json (file ids look like `12/champ/…`).
fn allocator_id(number: u64) -> String {
    format!("dossier.json:{number}")
}

/// Reserves `key` for the dossier.json of dossier `number`; the reason when another file
/// holds it.
pub(super) fn reserve(keys: &mut KeyAllocator, number: u64, key: &RelKey) -> Result<(), String> {
    keys.reserve(&allocator_id(number), key.clone())
        .map_err(|e| format!("dossier.json not written: {e}; choose another `--data-layout`"))
}

/// What [`write`] needs of the dossier.
pub(super) struct DataInput<'a> {
    pub number: u64,
    pub key: RelKey,
    pub context: DossierContext,
    pub files: &'a [ShardFile],
    /// The previous shard's entry.
    pub old: Option<ShardData>,
}

/// Writes the dossier's dossier.json when its bytes changed; returns the shard's new entry
/// (the old one when nothing could be written, `None` when the manifest must stop naming it).
pub(super) async fn write(run: &Run, input: DataInput<'_>, tally: &mut Tally) -> Option<ShardData> {
    let bytes = DossierData::new(input.context, input.files).to_bytes();
    let sha256 = hex(&sha2::Sha256::digest(&bytes));
    if let Some(old) = &input.old
        && old.key == input.key.as_str()
        && old.sha256 == sha256
    {
        tally.counts.data_unchanged += 1;
        return input.old;
    }
    let sink = run.publisher.sink();
    let key = input.key.as_str();
    if let Err(reason) = writable(sink, input.number, key, input.old.as_ref()).await {
        fail(tally, input.number, key, reason);
        return input.old.filter(|old| old.key != key);
    }
    let entry = ShardData {
        key: key.to_owned(),
        md5: md5_base64(&bytes),
        size: bytes.len() as u64,
        stored_at: Utc::now(),
        sha256,
    };
    if let Err(reason) = publish(sink, &entry, bytes).await {
        fail(tally, input.number, key, reason);
        return input.old;
    }
    tally.counts.data_stored += 1;
    if let Some(old) = input.old.filter(|old| old.key != entry.key) {
        remove_superseded(run, input.number, &old, tally).await;
    }
    Some(entry)
}

/// Whether `key` may be written (see the module doc); the reason when it may not.
async fn writable(
    sink: &dyn Sink,
    number: u64,
    key: &str,
    old: Option<&ShardData>,
) -> Result<(), String> {
    if let Some(old) = old.filter(|old| old.key == key) {
        return match removal::check(sink, old).await {
            Verdict::Ours | Verdict::Absent => Ok(()),
            Verdict::Foreign(why) | Verdict::Unknown(why) => Err(format!(
                "`{key}` left in place, dossier.json not written: {why}"
            )),
        };
    }
    let size = match sink.head(key).await {
        Ok(None) => return Ok(()),
        Ok(Some(size)) => size,
        Err(e) => return Err(format!("cannot check `{key}`: {}", fetch::error_chain(&e))),
    };
    let ours = size <= MAX_DATA_READ
        && matches!(sink.get_small(key).await, Ok(Some(found))
            if DossierData::parse(&found).is_ok_and(|d| d.context.dossier.number == number));
    if ours {
        return Ok(());
    }
    Err(format!(
        "`{key}` holds another object ({size} bytes, not a dossier.json of dossier `{number}`): \
         left in place, dossier.json not written; choose another `--data-layout`"
    ))
}

/// One atomic upload of `bytes` at `entry.key`.
async fn publish(sink: &dyn Sink, entry: &ShardData, bytes: Vec<u8>) -> Result<(), String> {
    let meta = ObjectMeta {
        content_type: Some("application/json".to_owned()),
        md5_base64: Some(entry.md5.clone()),
        sha256_hex: Some(entry.sha256.clone()),
    };
    let key = entry.key.as_str();
    let failed = |e: &dyn std::error::Error| {
        format!(
            "cannot write dossier.json `{key}`: {}",
            fetch::error_chain(e)
        )
    };
    let mut upload = sink.create(key, &meta).await.map_err(|e| failed(&e))?;
    if let Err(e) = upload.write(Bytes::from(bytes)).await {
        fetch::abort(upload, key).await;
        return Err(failed(&e));
    }
    upload.commit().await.map_err(|e| failed(&e))
}

/// The dossier.json moved to another key: deletes the old object if it is still the one
/// recorded.
async fn remove_superseded(run: &Run, number: u64, old: &ShardData, tally: &mut Tally) {
    remove(run, number, old, "superseded", tally).await;
}

/// With prune, the dossier was deleted in DS: deletes its dossier.json if it is still the one
/// recorded. Returns whether the manifest keeps naming it (it could not be looked at or
/// deleted: tried again next run).
pub(super) async fn prune(run: &Run, number: u64, data: &ShardData, tally: &mut Tally) -> bool {
    remove(run, number, data, "not pruned", tally).await
}

/// Deletes the dossier.json `data` if the object at its key is the one recorded (`removal`);
/// otherwise keeps it and reports why. Returns whether the manifest keeps naming it.
async fn remove(run: &Run, number: u64, data: &ShardData, what: &str, tally: &mut Tally) -> bool {
    let sink = run.publisher.sink();
    let (reason, keep_entry) = match removal::check(sink, data).await {
        Verdict::Absent => return false,
        Verdict::Ours => match sink.delete(&data.key).await {
            Ok(()) => return false,
            Err(e) => (
                format!("cannot delete it: {}", fetch::error_chain(&e)),
                true,
            ),
        },
        Verdict::Foreign(why) => (why, false),
        Verdict::Unknown(why) => (why, true),
    };
    let reason = format!("{what} dossier.json left in place: {reason}");
    tracing::warn!(dossier = number, key = data.key, "{reason}");
    tally.kept.push(Kept {
        dossier: number,
        file_id: allocator_id(number),
        key: data.key.clone(),
        reason,
    });
    keep_entry
}

pub(super) fn fail(tally: &mut Tally, number: u64, key: &str, reason: String) {
    tracing::warn!(dossier = number, key, "{reason}");
    tally.failed.push(Failure {
        dossier: number,
        file_id: None,
        key: key.to_owned(),
        reason,
        code: None,
    });
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn md5_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let mut md5 = Md5::new();
    md5.update(bytes);
    base64::engine::general_purpose::STANDARD.encode(md5.finalize())
}
