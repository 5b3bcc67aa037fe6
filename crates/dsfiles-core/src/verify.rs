//! [`verify`]: re-hash every stored file, and every dossier's `dossier.json`, against the
//! manifest.
//!
//! Rule: memory stays flat whatever the size of the destination: shards are read from the
//! listing [`SHARDS_PER_BATCH`] at a time (never all keys at once), at most
//! [`SHARDS_IN_FLIGHT`] shards are checked at once (each [`CONCURRENT_FILES`] files at a time:
//! on an object store every read is a round trip), and the report keeps counts plus at most
//! [`VERIFY_LISTED`] missing and corrupt entries. Shards are merged into the report in dossier
//! order, so the listed entries are the same whatever finishes first.

use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::fetch::error_chain;
use crate::hash::Hasher;
use crate::sink::{self, Sink};
use crate::state;
use crate::wire::{
    Corrupt, DOSSIERS_PREFIX, Event, FileStatus, Shard, ShardData, ShardFile, VERIFY_LISTED,
    VerifyReport, WIRE_VERSION, dossier_of_shard_key,
};
use crate::{Error, Progress};

/// Files hashed concurrently per shard.
const CONCURRENT_FILES: usize = 4;
/// Shards checked concurrently.
const SHARDS_IN_FLIGHT: usize = 8;
/// Shard keys taken from the listing before their files are checked.
const SHARDS_PER_BATCH: usize = 1000;

/// The check of one stored file.
enum Checked {
    Ok { bytes: u64, vouched: bool },
    Missing,
    Corrupt { bytes: u64, reason: String },
    Cancelled,
}

/// Reads every manifest shard in the destination and streams each stored file through SHA-256
/// and MD5, comparing size and digests with the manifest. Files marked `removed_upstream` are
/// checked like the others (they are still stored). `Err` only when the destination cannot be
/// listed.
pub async fn verify(
    sink: Arc<dyn Sink>,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<VerifyReport, Error> {
    let started_at = Utc::now();
    let mut report = empty_report(&sink.describe(), started_at);
    let mut batches = sink.list(DOSSIERS_PREFIX).chunks(SHARDS_PER_BATCH);
    while let Some(batch) = batches.next().await {
        let mut keys = Vec::with_capacity(batch.len());
        for entry in batch {
            let entry = entry?;
            if dossier_of_shard_key(&entry.key).is_some() {
                keys.push(entry.key);
            }
        }
        keys.sort_by_key(|k| dossier_of_shard_key(k));
        let (sink, progress, cancel) = (sink.as_ref(), &progress, &cancel);
        let mut shards = futures::stream::iter(keys)
            .map(|key| async move {
                let mut part = empty_report("", started_at);
                if !cancel.is_cancelled() {
                    verify_shard(sink, key, &mut part, progress, cancel).await?;
                }
                Ok::<_, Error>(part)
            })
            .buffered(SHARDS_IN_FLIGHT);
        while let Some(part) = shards.next().await {
            merge(&mut report, part?);
        }
        if cancel.is_cancelled() {
            break;
        }
    }
    drop(batches);
    report.cancelled = cancel.is_cancelled();
    report.missing.sort();
    report.corrupt.sort_by(|a, b| a.key.cmp(&b.key));
    report.finished_at = Utc::now();
    progress.event(&Event::Finished);
    Ok(report)
}

/// Checks every file of the shard at `key` into `report`.
async fn verify_shard(
    sink: &dyn Sink,
    key: String,
    report: &mut VerifyReport,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<(), Error> {
    let dossier = dossier_of_shard_key(&key).unwrap_or_default();
    let shard: Shard = match state::read(sink, &key).await {
        Ok(Some(shard)) => shard,
        Ok(None) => return Ok(()),
        Err(Error::Manifest { reason, .. }) => {
            let reason = format!("unreadable manifest shard: {reason}");
            corrupt(
                report,
                Corrupt {
                    dossier,
                    key,
                    reason,
                },
            );
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    report.dossiers += 1;
    let expected = shard.files.iter().map(Expected::file);
    let expected: Vec<Expected> = expected
        .chain(shard.data.as_ref().map(Expected::data))
        .collect();
    let mut checks = futures::stream::iter(expected)
        .map(|file| async move {
            let checked = check_file(sink, &file, cancel).await;
            (file, checked)
        })
        .buffer_unordered(CONCURRENT_FILES);
    while let Some((file, checked)) = checks.next().await {
        let ok = matches!(checked, Checked::Ok { .. });
        if !matches!(checked, Checked::Cancelled) {
            let key = file.key.clone();
            progress.event(&Event::FileVerified { key, ok });
        }
        match checked {
            Checked::Ok { bytes, vouched } => {
                report.ok += 1;
                report.bytes_read = report.bytes_read.saturating_add(bytes);
                report.unverifiable += u64::from(!vouched);
            }
            Checked::Missing => {
                report.missing_count += 1;
                if report.missing.len() < VERIFY_LISTED {
                    report.missing.push(file.key);
                }
            }
            Checked::Corrupt { bytes, reason } => {
                report.bytes_read = report.bytes_read.saturating_add(bytes);
                let key = file.key;
                corrupt(
                    report,
                    Corrupt {
                        dossier,
                        key,
                        reason,
                    },
                );
            }
            Checked::Cancelled => {}
        }
    }
    Ok(())
}

/// A report with nothing counted yet.
fn empty_report(dest: &str, started_at: chrono::DateTime<Utc>) -> VerifyReport {
    VerifyReport {
        version: WIRE_VERSION,
        dest: dest.to_owned(),
        started_at,
        finished_at: started_at,
        dossiers: 0,
        ok: 0,
        unverifiable: 0,
        missing: Vec::new(),
        corrupt: Vec::new(),
        missing_count: 0,
        corrupt_count: 0,
        bytes_read: 0,
        cancelled: false,
    }
}

/// Adds a shard's partial report to `report`, keeping the lists short.
fn merge(report: &mut VerifyReport, part: VerifyReport) {
    report.dossiers += part.dossiers;
    report.ok += part.ok;
    report.unverifiable += part.unverifiable;
    report.bytes_read = report.bytes_read.saturating_add(part.bytes_read);
    report.missing_count += part.missing_count;
    let room = VERIFY_LISTED.saturating_sub(report.missing.len());
    report.missing.extend(part.missing.into_iter().take(room));
    report.corrupt_count += part.corrupt_count;
    let room = VERIFY_LISTED.saturating_sub(report.corrupt.len());
    report.corrupt.extend(part.corrupt.into_iter().take(room));
}

/// Counts a corrupt file or shard, listing it while the list is short.
fn corrupt(report: &mut VerifyReport, corrupt: Corrupt) {
    report.corrupt_count += 1;
    if report.corrupt.len() < VERIFY_LISTED {
        report.corrupt.push(corrupt);
    }
}

/// What a stored object must be: a file, or the dossier's dossier.json.
struct Expected {
    key: String,
    size: u64,
    sha256: String,
    /// The base64 MD5 to compare, when someone vouched for it: DS (a file with status `ok`
    /// or `pending`), or dsfiles (the dossier.json it wrote).
    md5: Option<String>,
}

impl Expected {
    fn file(file: &ShardFile) -> Expected {
        let vouched = matches!(file.status, FileStatus::Ok | FileStatus::Pending)
            && !file.checksum.is_empty();
        Expected {
            key: file.key.clone(),
            size: file.size,
            sha256: file.sha256.clone(),
            md5: vouched.then(|| file.checksum.clone()),
        }
    }

    fn data(data: &ShardData) -> Expected {
        Expected {
            key: data.key.clone(),
            size: data.size,
            sha256: data.sha256.clone(),
            md5: Some(data.md5.clone()),
        }
    }
}

async fn check_file(sink: &dyn Sink, file: &Expected, cancel: &CancellationToken) -> Checked {
    let mut stream = match sink.get(&file.key).await {
        Ok(stream) => stream,
        Err(sink::Error::NotFound { .. }) => return Checked::Missing,
        Err(e) => {
            return Checked::Corrupt {
                bytes: 0,
                reason: format!("cannot be read: {}", error_chain(&e)),
            };
        }
    };
    let mut hasher = Hasher::start();
    let mut bytes = 0u64;
    loop {
        let chunk = tokio::select! {
            () = cancel.cancelled() => return Checked::Cancelled,
            chunk = stream.next() => chunk,
        };
        match chunk {
            Some(Ok(chunk)) => {
                bytes += chunk.len() as u64;
                hasher.update(chunk).await;
            }
            Some(Err(e)) => {
                return Checked::Corrupt {
                    bytes,
                    reason: format!("cannot be read: {}", error_chain(&e)),
                };
            }
            None => break,
        }
    }
    let digests = match hasher.finish().await {
        Ok(d) => d,
        Err(e) => {
            return Checked::Corrupt {
                bytes,
                reason: e.to_string(),
            };
        }
    };
    let vouched = file.md5.is_some();
    let reason = if bytes != file.size {
        Some(format!("{bytes} bytes instead of {}", file.size))
    } else if digests.sha256_hex != file.sha256 {
        Some(format!(
            "SHA-256 `{}` instead of `{}`",
            digests.sha256_hex, file.sha256
        ))
    } else if let Some(md5) = file.md5.as_ref().filter(|md5| **md5 != digests.md5_base64) {
        Some(format!("MD5 `{}` instead of `{md5}`", digests.md5_base64))
    } else {
        None
    };
    match reason {
        Some(reason) => Checked::Corrupt { bytes, reason },
        None => Checked::Ok { bytes, vouched },
    }
}
