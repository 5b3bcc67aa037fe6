//! Deleting or replacing what a manifest shard names: only what dsfiles stored there.
//!
//! Anyone who can write the destination (shared buckets are common) can write a shard, so a
//! key read from one proves nothing. Rule ([`decide`]), applied before an object at a manifest
//! key is deleted (a superseded file's old key; with prune, a removed file or a deleted
//! dossier's files) or replaced in place (a changed file whose key stays):
//! - a key the sink would refuse, or one under `.dsfiles/` → never touched; such entries are
//!   dropped when the shard is read ([`refuse_unusable_entries`]): the file counts as not
//!   stored and is downloaded again to a key of its own;
//! - nothing at the key → nothing to delete; the key may be written;
//! - an object of the recorded size and SHA-256 → dsfiles' own: deleted or replaced;
//! - another size or SHA-256 → someone else's (or ours, changed since): kept and reported,
//!   and the manifest stops naming it;
//! - an object that cannot be read → kept and reported; the entry stays, to be tried again.
//!
//! The SHA-256 is the one the backend keeps in the object's metadata where it has one (object
//! stores; setting it takes the same right as replacing the object), else that of the bytes.

use dsfiles_sink::{STATE_DIR, Sink, validate_key};
use futures::StreamExt as _;

use crate::fetch;
use crate::hash::Hasher;
use crate::wire::{Shard, ShardData, ShardFile};

/// What a manifest records of a stored object: a file ([`ShardFile`]) or a `dossier.json`
/// ([`ShardData`]).
pub(crate) trait Recorded {
    fn key(&self) -> &str;
    fn size(&self) -> u64;
    fn sha256(&self) -> &str;
}

impl Recorded for ShardFile {
    fn key(&self) -> &str {
        &self.key
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn sha256(&self) -> &str {
        &self.sha256
    }
}

impl Recorded for ShardData {
    fn key(&self) -> &str {
        &self.key
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// What is at a manifest key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    Absent,
    /// An object; `sha256` is read only when `size` is the recorded one.
    Present {
        size: u64,
        sha256: Option<String>,
    },
    /// The object could not be looked at (the reason).
    Unreadable(String),
}

/// Whether the object at a manifest key may be deleted or replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It is the object dsfiles stored.
    Ours,
    /// Nothing is there.
    Absent,
    /// It is not what dsfiles stored (why): keep it, forget the entry.
    Foreign(String),
    /// It cannot be told (why): keep it and the entry.
    Unknown(String),
}

/// Why `key` must never be used from a manifest, if it must not: the sink refuses it, or it
/// lies in the state directory (in any case: some file systems ignore it).
pub(crate) fn unusable_key(key: &str) -> Option<String> {
    if let Err(e) = validate_key(key) {
        return Some(e.to_string());
    }
    let first = key.split('/').next().unwrap_or(key);
    first
        .eq_ignore_ascii_case(STATE_DIR)
        .then(|| format!("`{key}` is in the state directory `{STATE_DIR}`"))
}

/// The rule of the module doc: may the object `found` at `entry.key` be deleted or replaced?
pub(crate) fn decide(entry: &impl Recorded, found: &Found) -> Verdict {
    if let Some(reason) = unusable_key(entry.key()) {
        return Verdict::Foreign(reason);
    }
    match found {
        Found::Absent => Verdict::Absent,
        Found::Unreadable(reason) => Verdict::Unknown(format!("it cannot be read: {reason}")),
        Found::Present { size, .. } if *size != entry.size() => Verdict::Foreign(format!(
            "it holds `{size}` bytes, the manifest recorded `{}`",
            entry.size()
        )),
        Found::Present { sha256: None, .. } => {
            Verdict::Unknown("its content was not read".to_owned())
        }
        Found::Present {
            sha256: Some(sha256),
            ..
        } if sha256 != entry.sha256() => Verdict::Foreign(format!(
            "its SHA-256 is `{sha256}`, the manifest recorded `{}`",
            entry.sha256()
        )),
        Found::Present { .. } => Verdict::Ours,
    }
}

/// Drops the entries of `shard` whose key must never be used ([`unusable_key`]); returns a
/// warning for each.
pub(crate) fn refuse_unusable_entries(shard: &mut Shard) -> Vec<String> {
    let mut warnings = Vec::new();
    shard.files.retain(|entry| match unusable_key(&entry.key) {
        None => true,
        Some(reason) => {
            warnings.push(format!(
                "dossier `{}`: manifest entry `{}` refused, its key is unusable ({reason}); the \
                 file is stored again",
                shard.dossier, entry.file_id
            ));
            false
        }
    });
    if let Some(data) = &shard.data
        && let Some(reason) = unusable_key(&data.key)
    {
        warnings.push(format!(
            "dossier `{}`: manifest entry of dossier.json `{}` refused, its key is unusable \
             ({reason}); it is written again",
            shard.dossier, data.key
        ));
        shard.data = None;
    }
    warnings
}

/// Looks at the object at `entry.key` and [`decide`]s.
pub(crate) async fn check(sink: &dyn Sink, entry: &impl Recorded) -> Verdict {
    if unusable_key(entry.key()).is_some() {
        return decide(entry, &Found::Absent);
    }
    let found = match sink.stat(entry.key()).await {
        Ok(None) => Found::Absent,
        Ok(Some(info)) if info.size != entry.size() => Found::Present {
            size: info.size,
            sha256: None,
        },
        Ok(Some(info)) => match info.meta.sha256_hex {
            Some(sha256) => Found::Present {
                size: info.size,
                sha256: Some(sha256),
            },
            None => match sha256_of(sink, entry.key()).await {
                Ok(sha256) => Found::Present {
                    size: info.size,
                    sha256: Some(sha256),
                },
                Err(reason) => Found::Unreadable(reason),
            },
        },
        Err(e) => Found::Unreadable(fetch::error_chain(&e)),
    };
    decide(entry, &found)
}

/// Hex SHA-256 of the bytes of a stored object (a read failure is logged and returned).
pub(crate) async fn sha256_of(sink: &dyn Sink, key: &str) -> Result<String, String> {
    let read = async {
        let mut stream = sink.get(key).await?;
        let mut hasher = Hasher::start();
        while let Some(chunk) = stream.next().await {
            hasher.update(chunk?).await;
        }
        Ok::<_, crate::sink::Error>(hasher)
    };
    let reason = match read.await {
        Ok(hasher) => match hasher.finish().await {
            Ok(digests) => return Ok(digests.sha256_hex),
            Err(e) => e.to_string(),
        },
        Err(e) => fetch::error_chain(&e),
    };
    tracing::warn!(key, "cannot read an existing object: {reason}");
    Err(reason)
}

#[cfg(test)]
mod tests;
