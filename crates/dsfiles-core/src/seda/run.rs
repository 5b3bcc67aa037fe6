//! The run: which dossiers, then per dossier its inputs, fingerprint, decision (unchanged or
//! a new package version), the package written on a blocking thread, and the bookkeeping.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt as _;
use sha2::Digest as _;
use tokio_util::sync::CancellationToken;

use super::SedaOptions;
use super::profile::package_name;
use super::write::{Ctx, Failed, Job, write_package};
use super::zip_out::ZipOut;
use crate::fetch::error_chain;
use crate::lease::{self, LeaseScope};
use crate::sink::{ObjectMeta, Sink};
use crate::wire::{
    DOSSIERS_PREFIX, DossierData, FileStatus, Packaged, SedaFailure, SedaPackage, SedaRecord,
    SedaReport, SedaSkipped, Shard, ShardFile, WIRE_VERSION, dossier_of_shard_key, seda_record_key,
    shard_key,
};
use crate::{Error, Event, Progress, state};

/// Largest `dossier.json` read (it is held whole, like a state file).
const DOSSIER_JSON_MAX: usize = 64 * 1024 * 1024;

/// Packages the terminated dossiers of `dest` into `out`; see the module doc of
/// [`crate::seda`]. `Err` only when DEST cannot be listed or holds no dsfiles state, OUT
/// fails, or another live writer holds OUT's lease ([`Error::DestinationBusy`]).
///
/// The run holds OUT's lease ([`LeaseScope::Seda`]) while it writes, renewed next to it; a run
/// that loses it stops writing and its report says `lease_lost`. Progress goes to `progress`:
/// one [`Event::DossiersListed`], then for each of those dossiers exactly one of
/// `PackageWritten`, `PackageUnchanged`, `PackageSkipped`, `PackageFailed` (until cancelled),
/// with `BytesWritten` as stored files go into a zip; `Finished` last.
pub async fn package(
    dest: Arc<dyn Sink>,
    out: Arc<dyn Sink>,
    opts: SedaOptions,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<SedaReport, Error> {
    opts.validate()?;
    state::require_state(dest.as_ref()).await?;
    let lease_opts = opts.lease.clone();
    let finished = Arc::clone(&progress);
    let leased = lease::under_lease(
        out,
        LeaseScope::Seda,
        &lease_opts,
        &cancel,
        |out, cancel| {
            let run = Run {
                dest,
                out,
                opts,
                progress,
                cancel,
            };
            async move { run.all().await }
        },
    )
    .await?;
    let mut report = leased.result?;
    if leased.lost {
        report.lease_lost = true;
        report.cancelled = cancel.is_cancelled();
    }
    finished.event(&Event::Finished);
    Ok(report)
}

struct Run {
    dest: Arc<dyn Sink>,
    /// OUT, fenced by its lease.
    out: Arc<dyn Sink>,
    opts: SedaOptions,
    progress: Progress,
    cancel: CancellationToken,
}

/// What a dossier's inputs say before anything is written.
enum Prepared {
    /// Not in a selected state (why).
    Skip(String),
    /// In a selected state with nothing to package: no stored file, no `dossier.json` (why).
    Empty(String),
    Unchanged,
    Failed(SedaFailure),
    Package(Box<Job>, Option<SedaRecord>, String),
}

impl Run {
    /// Every dossier, one after the other, into a new report. A write refused by the fence
    /// (the lease was lost, and the run is being cancelled) ends the loop, not the report.
    async fn all(&self) -> Result<SedaReport, Error> {
        let started_at = Utc::now();
        let mut report = SedaReport {
            version: WIRE_VERSION,
            dest: self.dest.describe(),
            out: self.out.describe(),
            started_at,
            finished_at: started_at,
            dossiers: 0,
            packaged: Vec::new(),
            unchanged: Vec::new(),
            failed: Vec::new(),
            skipped: Vec::new(),
            warnings: Vec::new(),
            bytes_written: 0,
            cancelled: false,
            lease_lost: false,
        };
        let dossiers = self.dossiers().await?;
        self.progress.event(&Event::DossiersListed {
            dossiers: dossiers.len() as u64,
        });
        for dossier in dossiers {
            if self.cancel.is_cancelled() {
                break;
            }
            match self.dossier(dossier, &mut report).await {
                Err(Error::Sink(e)) if matches!(*e, crate::sink::Error::Fenced { .. }) => break,
                result => result?,
            }
        }
        report.cancelled = self.cancel.is_cancelled();
        report.finished_at = Utc::now();
        Ok(report)
    }

    /// The requested dossiers, else every dossier with a shard in DEST; sorted.
    async fn dossiers(&self) -> Result<Vec<u64>, Error> {
        let mut numbers = if self.opts.dossiers.is_empty() {
            let mut numbers = Vec::new();
            let mut listing = self.dest.list(DOSSIERS_PREFIX);
            while let Some(entry) = listing.next().await {
                numbers.extend(dossier_of_shard_key(&entry?.key));
            }
            numbers
        } else {
            self.opts.dossiers.clone()
        };
        numbers.sort_unstable();
        numbers.dedup();
        Ok(numbers)
    }

    /// Packages one dossier into `report`, and says what became of it to `progress`.
    async fn dossier(&self, dossier: u64, report: &mut SedaReport) -> Result<(), Error> {
        let event = match self.prepare(dossier, report).await? {
            Prepared::Skip(reason) => Event::PackageSkipped { dossier, reason },
            Prepared::Empty(reason) => {
                report.skipped.push(SedaSkipped {
                    dossier,
                    reason: reason.clone(),
                });
                Event::PackageSkipped { dossier, reason }
            }
            Prepared::Unchanged => {
                report.unchanged.push(dossier);
                Event::PackageUnchanged { dossier }
            }
            Prepared::Failed(failure) => {
                let reason = failure.reason.clone();
                report.failed.push(failure);
                Event::PackageFailed { dossier, reason }
            }
            Prepared::Package(job, record, fingerprint) => {
                match self.write(*job, record, fingerprint, report).await? {
                    Some(event) => event,
                    None => return Ok(()),
                }
            }
        };
        self.progress.event(&event);
        Ok(())
    }

    async fn prepare(&self, dossier: u64, report: &mut SedaReport) -> Result<Prepared, Error> {
        let failed = |key: Option<String>, reason: String| {
            Ok(Prepared::Failed(SedaFailure {
                dossier,
                key,
                reason,
            }))
        };
        let key = shard_key(dossier);
        let shard: Shard = match state::read(self.dest.as_ref(), &key).await {
            Ok(Some(shard)) => shard,
            Ok(None) => {
                let reason = format!(
                    "dossier `{dossier}` has no manifest shard (`{key}`): it was never synced to this destination"
                );
                return failed(Some(key), reason);
            }
            Err(e) => return failed(Some(key), error_chain(&e)),
        };
        if let Some(reason) = self.excluded(dossier, &shard) {
            // Named on the command line: say why it has no package.
            if !self.opts.dossiers.is_empty() {
                report.warnings.push(reason.clone());
            }
            return Ok(Prepared::Skip(reason));
        }
        report.dossiers += 1;
        let context = match self.context(&shard).await {
            Ok(context) => context,
            Err((key, reason)) => return failed(Some(key), reason),
        };
        // `dossier.json` is the dossier's own object (group `G0`), never also a file of it,
        // should a sync ever list it in the shard.
        let context_key = self.context_key(&shard);
        let mut files = shard.files;
        files.retain(|f| f.status != FileStatus::RemovedUpstream && f.key != context_key);
        if context.is_none() {
            if files.is_empty() {
                return Ok(Prepared::Empty(nothing_to_package(dossier, &context_key)));
            }
            report.warnings.push(format!(
                "dossier `{dossier}`: no `{context_key}` in the destination: package built from \
                 the manifest alone (no applicant, dates, champ values, messages or avis)"
            ));
        }
        let fingerprint = self.fingerprint(context.as_ref().map(|c| &c.1), &files);
        let record_key = seda_record_key(dossier);
        let record: Option<SedaRecord> = match state::read(self.out.as_ref(), &record_key).await {
            Ok(record) => record,
            Err(e @ Error::Manifest { .. }) => return failed(Some(record_key), error_chain(&e)),
            Err(e) => return Err(e),
        };
        let latest = record.as_ref().and_then(|r| r.packages.last());
        if let Some(latest) = latest.filter(|p| p.fingerprint == fingerprint) {
            if let Some(warning) = self.lost_package(dossier, latest).await? {
                report.warnings.push(warning);
            } else {
                return Ok(Prepared::Unchanged);
            }
        }
        let job = Job {
            demarche: shard.demarche,
            dossier,
            state: shard.state,
            files,
            context,
            message_id: String::new(),
            date: Utc::now(),
        };
        Ok(Prepared::Package(Box::new(job), record, fingerprint))
    }

    /// Why the dossier of `shard` is not packaged (another démarche, or a state not asked
    /// for), if it is not.
    fn excluded(&self, dossier: u64, shard: &Shard) -> Option<String> {
        if let Some(demarche) = self.opts.demarche.filter(|d| *d != shard.demarche) {
            return Some(format!(
                "dossier `{dossier}` is of démarche `{}`: not packaged (démarche: {demarche})",
                shard.demarche
            ));
        }
        if !self.opts.states.contains(&shard.state) {
            return Some(format!(
                "dossier `{dossier}` is `{}`: not packaged (states: {})",
                shard.state,
                self.opts.states.join(",")
            ));
        }
        None
    }

    /// Why the up-to-date package `latest` must be written again (it is gone from OUT, or
    /// is not the size recorded), or `None` when it is still there: the record alone never
    /// stands for a package someone deleted.
    async fn lost_package(
        &self,
        dossier: u64,
        latest: &SedaPackage,
    ) -> Result<Option<String>, Error> {
        let found = self.out.head(&latest.key).await?;
        let problem = match found {
            Some(size) if size == latest.bytes => return Ok(None),
            Some(size) => format!("is {size} bytes, not the {} recorded", latest.bytes),
            None => "is missing".to_owned(),
        };
        Ok(Some(format!(
            "dossier `{dossier}`: package `{}` {problem} in OUT: written again as a new version",
            latest.key
        )))
    }

    /// Where the dossier's `dossier.json` is: the key its shard records (`data`), else, for a
    /// destination synced before the sync wrote it, the `--dossier-json` template.
    fn context_key(&self, shard: &Shard) -> String {
        match &shard.data {
            Some(data) => data.key.clone(),
            None => self
                .opts
                .dossier_json
                .replace("{dossier}", &shard.dossier.to_string())
                .replace("{demarche}", &shard.demarche.to_string()),
        }
    }

    /// `dossier.json`: `Ok(None)` when absent and the shard records none, `Err((key, reason))`
    /// when unusable: not what the shard recorded (missing, other bytes), not a readable
    /// `dossier.json`, or another dossier's.
    async fn context(
        &self,
        shard: &Shard,
    ) -> Result<Option<(String, Bytes, DossierData)>, (String, String)> {
        let key = self.context_key(shard);
        let unusable = |reason: String| (key.clone(), reason);
        let Some(bytes) = self.read_context(&key).await.map_err(unusable)? else {
            return match &shard.data {
                Some(_) => Err(unusable(format!(
                    "`{key}` is missing in the destination, though the manifest shard records it"
                ))),
                None => Ok(None),
            };
        };
        if let Some(data) = &shard.data {
            let actual = hex::encode(sha2::Sha256::digest(&bytes));
            if actual != data.sha256 {
                return Err(unusable(format!(
                    "`{key}` is corrupt: its SHA-256 is `{actual}`, not the `{}` the manifest \
                     shard recorded",
                    data.sha256
                )));
            }
        }
        let parsed = DossierData::parse(&bytes).map_err(|e| unusable(format!("`{key}`: {e}")))?;
        if parsed.context.dossier.number != shard.dossier {
            return Err(unusable(format!(
                "`{key}` describes dossier `{}`, not `{}`",
                parsed.context.dossier.number, shard.dossier
            )));
        }
        Ok(Some((key, bytes, parsed)))
    }

    /// The bytes at `key` in DEST, `None` when absent; `Err` names the problem.
    async fn read_context(&self, key: &str) -> Result<Option<Bytes>, String> {
        let cannot = |e: crate::sink::Error| format!("cannot read `{key}`: {}", error_chain(&e));
        match self.dest.head(key).await.map_err(cannot)? {
            None => return Ok(None),
            Some(size) if size > DOSSIER_JSON_MAX as u64 => {
                return Err(format!(
                    "`{key}` is {size} bytes, more than the {DOSSIER_JSON_MAX} read"
                ));
            }
            Some(_) => {}
        }
        self.dest.get_small(key).await.map_err(cannot)
    }

    /// See [`crate::wire::SedaPackage::fingerprint`].
    fn fingerprint(&self, context: Option<&Bytes>, files: &[ShardFile]) -> String {
        let mut lines: Vec<String> = files
            .iter()
            .map(|f| format!("file {} {}", f.sha256, f.key))
            .collect();
        lines.sort_unstable();
        let context =
            context.map_or_else(|| "-".to_owned(), |b| hex::encode(sha2::Sha256::digest(b)));
        let mut hasher = sha2::Sha256::new();
        hasher.update(format!("profile {}\n", self.opts.profile.hash()));
        hasher.update(format!("dossier.json {context}\n"));
        for line in lines {
            hasher.update(line);
            hasher.update(b"\n");
        }
        hex::encode(hasher.finalize())
    }

    /// Writes the next package version of `job`'s dossier, then its record.
    async fn write(
        &self,
        mut job: Job,
        record: Option<SedaRecord>,
        fingerprint: String,
        report: &mut SedaReport,
    ) -> Result<Option<Event>, Error> {
        let dossier = job.dossier;
        let mut record = record.unwrap_or(SedaRecord {
            version: WIRE_VERSION,
            demarche: job.demarche,
            dossier,
            packages: Vec::new(),
        });
        let (version, key) = self.next_key(&job, &record).await?;
        job.message_id = format!(
            "dsfiles-{}-{dossier}-v{version}-{}",
            job.demarche,
            &fingerprint[..16]
        );
        let meta = ObjectMeta {
            content_type: Some("application/zip".to_owned()),
            ..ObjectMeta::default()
        };
        let upload = self.out.create(&key, &meta).await?;
        let written = self.run_blocking(Arc::new(job), upload).await?;
        let (job, result) = written;
        match result {
            Ok((objects, bytes)) => {
                record.packages.push(SedaPackage {
                    key: key.clone(),
                    fingerprint,
                    message_id: job.message_id.clone(),
                    written_at: Utc::now(),
                    objects,
                    bytes,
                });
                state::write(self.out.as_ref(), &seda_record_key(dossier), &record).await?;
                report.bytes_written = report.bytes_written.saturating_add(bytes);
                tracing::info!(dossier, key = %key, objects, bytes, "package written");
                report.packaged.push(Packaged {
                    dossier,
                    key: key.clone(),
                    package_version: version,
                    objects,
                    bytes,
                });
                Ok(Some(Event::PackageWritten {
                    dossier,
                    key,
                    objects,
                    bytes,
                }))
            }
            Err(Failed::Dossier { key, reason }) => {
                tracing::debug!(dossier, %reason, "package not written");
                report.failed.push(SedaFailure {
                    dossier,
                    key,
                    reason: reason.clone(),
                });
                Ok(Some(Event::PackageFailed { dossier, reason }))
            }
            Err(Failed::Out(e)) => Err(e.into()),
            Err(Failed::Cancelled) => Ok(None),
        }
    }

    /// Writes the package on a blocking thread (owned and awaited: see `zip_out.rs`).
    async fn run_blocking(
        &self,
        job: Arc<Job>,
        upload: Box<dyn crate::sink::Upload>,
    ) -> Result<(Arc<Job>, Result<(u64, u64), Failed>), Error> {
        let rt = tokio::runtime::Handle::current();
        let (dest, profile) = (Arc::clone(&self.dest), self.opts.profile.clone());
        let (cancel, progress) = (self.cancel.clone(), Arc::clone(&self.progress));
        let task_job = Arc::clone(&job);
        let result = tokio::task::spawn_blocking(move || {
            let zip = ZipOut::new(upload, rt.clone());
            let ctx = Ctx {
                dest: &dest,
                rt: &rt,
                cancel: &cancel,
                progress: &progress,
            };
            write_package(&task_job, &profile, zip, &ctx)
        })
        .await
        .map_err(|e| Error::Internal {
            what: "seda package writer",
            reason: e.to_string(),
        })?;
        Ok((job, result))
    }

    /// The package version and key to write: after the record's latest, and never a key that
    /// holds something already (a package of an earlier run whose record was lost).
    async fn next_key(&self, job: &Job, record: &SedaRecord) -> Result<(u64, String), Error> {
        let template = &self.opts.profile.package_name;
        let name = package_name(template, job.dossier, job.demarche, &job.state);
        let mut version = record.packages.len() as u64 + 1;
        loop {
            let key = match version {
                1 => format!("{name}.zip"),
                v => format!("{name}-v{v}.zip"),
            };
            if self.out.head(&key).await?.is_none() {
                return Ok((version, key));
            }
            version += 1;
        }
    }
}

/// The reason a dossier with nothing to package is skipped.
fn nothing_to_package(dossier: u64, context_key: &str) -> String {
    format!(
        "dossier `{dossier}` has no stored file and no `{context_key}` in the destination: \
         nothing to package (an archive takes no package without content; a later run \
         packages it once a sync stored something)"
    )
}
