//! Writing one package: every object streamed from DEST through its digests into the zip,
//! then `manifest.xml`, then the commit. Runs on a blocking thread (see [`super::zip_out`]).
//!
//! Rule: a file whose bytes are not what the manifest shard recorded (size, SHA-256, and DS's
//! MD5 where DS vouched for the file) fails the dossier: the zip is aborted, nothing is
//! published. The digest written in the manifest is therefore a digest of bytes that were
//! checked against DS's, not of whatever DEST happens to hold.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use sha2::Digest as _;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::manifest::{self, DataObject, ManifestInput, Role};
use super::profile::{DigestAlgorithm, Profile};
use super::zip_out::{ZipError, ZipOut};
use crate::fetch::error_chain;
use crate::hash::Md5;
use crate::sink::{self, Sink};
use crate::wire::{DossierData, FileStatus, ShardFile};
use crate::{Event, Progress};

/// Where the dossier's objects go inside the zip: Vitam's ingest (`CHECK_SEDA`) wants exactly
/// one file at the root, `manifest.xml`, and one directory, `Content`.
pub const CONTENT_DIR: &str = "Content/";

/// Everything one package is made of.
#[derive(Debug)]
pub(crate) struct Job {
    pub demarche: u64,
    pub dossier: u64,
    pub state: String,
    pub files: Vec<ShardFile>,
    /// `dossier.json`: its key in DEST, its bytes and what they say.
    pub context: Option<(String, Bytes, DossierData)>,
    pub message_id: String,
    pub date: DateTime<Utc>,
}

/// What writing a package reads from and reports to.
pub(crate) struct Ctx<'a> {
    pub dest: &'a Arc<dyn Sink>,
    pub rt: &'a Handle,
    pub cancel: &'a CancellationToken,
    /// Told `BytesWritten` as each chunk of a stored file goes into the zip.
    pub progress: &'a Progress,
}

/// Why a package was not written.
#[derive(Debug)]
pub(crate) enum Failed {
    /// The dossier cannot be packaged (a file missing or corrupt in DEST).
    Dossier {
        key: Option<String>,
        reason: String,
    },
    /// OUT failed.
    Out(sink::Error),
    Cancelled,
}

impl From<ZipError> for Failed {
    fn from(e: ZipError) -> Failed {
        match e {
            ZipError::Sink(e) => Failed::Out(e),
            ZipError::Zip(reason) => Failed::Dossier {
                key: None,
                reason: format!("cannot write the zip: {reason}"),
            },
        }
    }
}

/// Writes the package of `job` into `zip` and commits it; returns (objects, zip size).
/// Aborts the zip on any failure.
pub(crate) fn write_package(
    job: &Job,
    profile: &Profile,
    mut zip: ZipOut,
    ctx: &Ctx<'_>,
) -> Result<(u64, u64), Failed> {
    match write_objects(job, profile, &mut zip, ctx) {
        Ok(objects) => {
            let count = objects.len() as u64;
            let bytes = zip.commit()?;
            Ok((count, bytes))
        }
        Err(e) => {
            zip.abort();
            Err(e)
        }
    }
}

fn write_objects(
    job: &Job,
    profile: &Profile,
    zip: &mut ZipOut,
    ctx: &Ctx<'_>,
) -> Result<Vec<DataObject>, Failed> {
    let mut objects = Vec::with_capacity(job.files.len() + 1);
    if let Some((key, bytes, _)) = &job.context {
        objects.push(context_object(key, bytes, profile.digest, job.date, zip)?);
    }
    for file in &job.files {
        if ctx.cancel.is_cancelled() {
            return Err(Failed::Cancelled);
        }
        objects.push(file_object(file, profile.digest, zip, ctx)?);
    }
    let input = ManifestInput {
        profile,
        message_id: &job.message_id,
        date: job.date,
        demarche: job.demarche,
        dossier: job.dossier,
        state: &job.state,
        context: job.context.as_ref().map(|(_, _, data)| &data.context),
        objects: &objects,
    };
    // Its size grows with the number of files (about 1 KB each), never with their bytes.
    let mut xml = Vec::new();
    manifest::write(&input, &mut xml).map_err(|e| Failed::Dossier {
        key: None,
        reason: format!("cannot write manifest.xml: {e}"),
    })?;
    zip.start("manifest.xml", xml.len() as u64, Some(job.date))?;
    zip.write(&xml)?;
    Ok(objects)
}

/// `dossier.json`, already read (a small state file).
fn context_object(
    key: &str,
    bytes: &Bytes,
    algorithm: DigestAlgorithm,
    date: DateTime<Utc>,
    zip: &mut ZipOut,
) -> Result<DataObject, Failed> {
    let uri = entry_name(key);
    zip.start(&uri, bytes.len() as u64, Some(date))?;
    zip.write(bytes)?;
    let mut digests = Digests::new(algorithm, false);
    digests.update(bytes);
    Ok(DataObject {
        role: Role::DossierJson,
        uri,
        digest: digests.finish().archive,
        size: bytes.len() as u64,
        content_type: "application/json".to_owned(),
        filename: "dossier.json".to_owned(),
        last_modified: None,
    })
}

/// Streams one stored file from DEST through its digests into the zip, then checks it
/// against its manifest entry.
fn file_object(
    file: &ShardFile,
    algorithm: DigestAlgorithm,
    zip: &mut ZipOut,
    ctx: &Ctx<'_>,
) -> Result<DataObject, Failed> {
    let (dest, rt, cancel) = (ctx.dest, ctx.rt, ctx.cancel);
    let fail = |reason: String| Failed::Dossier {
        key: Some(file.key.clone()),
        reason,
    };
    let mut stream = rt.block_on(dest.get(&file.key)).map_err(|e| match e {
        sink::Error::NotFound { .. } => {
            fail(format!("`{}` is missing in the destination", file.key))
        }
        e => fail(format!("cannot read `{}`: {}", file.key, error_chain(&e))),
    })?;
    let uri = entry_name(&file.key);
    zip.start(&uri, file.size, Some(file.stored_at))?;
    let vouched =
        matches!(file.status, FileStatus::Ok | FileStatus::Pending) && !file.checksum.is_empty();
    let mut digests = Digests::new(algorithm, vouched);
    let mut size = 0u64;
    while let Some(chunk) = rt.block_on(stream.next()) {
        if cancel.is_cancelled() {
            return Err(Failed::Cancelled);
        }
        let chunk =
            chunk.map_err(|e| fail(format!("cannot read `{}`: {}", file.key, error_chain(&e))))?;
        size += chunk.len() as u64;
        if size > file.size {
            return Err(fail(corrupt(
                file,
                &format!("more than the {} bytes recorded", file.size),
            )));
        }
        digests.update(&chunk);
        zip.write(&chunk)?;
        ctx.progress.event(&Event::BytesWritten {
            n: chunk.len() as u64,
        });
    }
    let done = digests.finish();
    let problem = if size != file.size {
        Some(format!(
            "{size} bytes instead of the {} recorded",
            file.size
        ))
    } else if done.sha256 != file.sha256 {
        Some(format!(
            "SHA-256 `{}` instead of `{}`",
            done.sha256, file.sha256
        ))
    } else if vouched && done.md5.as_deref() != Some(file.checksum.as_str()) {
        let md5 = done.md5.unwrap_or_default();
        Some(format!("MD5 `{md5}` instead of DS's `{}`", file.checksum))
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(fail(corrupt(file, &problem)));
    }
    Ok(DataObject {
        role: Role::File {
            source: file.source,
            label: file.label.clone(),
        },
        uri,
        digest: done.archive,
        size,
        content_type: file.content_type.clone(),
        filename: file.filename.clone(),
        last_modified: Some(file.stored_at),
    })
}

/// The zip entry (and `Uri`) of the object stored at `key`: cleaned for XML here, so that the
/// manifest names exactly the entry written (sink keys hold no control characters anyway).
fn entry_name(key: &str) -> String {
    manifest::xml_text(&format!("{CONTENT_DIR}{key}")).into_owned()
}

fn corrupt(file: &ShardFile, problem: &str) -> String {
    format!(
        "`{}` in the destination is not the file the manifest recorded: {problem} \
         (run `dsfiles verify`, then `dsfiles sync` to fetch it again)",
        file.key
    )
}

/// The archive's digest plus the checks against the manifest shard.
struct Digests {
    sha512: Option<sha2::Sha512>,
    sha256: sha2::Sha256,
    md5: Option<Md5>,
}

struct Finished {
    /// Hex, with the profile's algorithm.
    archive: String,
    sha256: String,
    md5: Option<String>,
}

impl Digests {
    fn new(algorithm: DigestAlgorithm, md5: bool) -> Digests {
        Digests {
            sha512: (algorithm == DigestAlgorithm::Sha512).then(sha2::Sha512::new),
            sha256: sha2::Sha256::new(),
            md5: md5.then(Md5::new),
        }
    }

    fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.sha512 {
            h.update(data);
        }
        self.sha256.update(data);
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
    }

    fn finish(self) -> Finished {
        let sha256 = hex::encode(self.sha256.finalize());
        let md5 = self
            .md5
            .map(|h| base64::engine::general_purpose::STANDARD.encode(h.finalize()));
        let archive = match self.sha512 {
            Some(h) => hex::encode(h.finalize()),
            None => sha256.clone(),
        };
        Finished {
            archive,
            sha256,
            md5,
        }
    }
}
