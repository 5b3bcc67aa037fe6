//! Publishing a planned file: download (verified, through [`Fetcher`]) straight to its key or
//! into the staging area, the key decided after a staged download, the copy to it, and the
//! deletions that publishing entails (superseded objects, pruned files).
//!
//! **Keys are decided twice.** Planning (`super::dossier`, [`crate::plan`]) reserves each
//! file's key from the layout in a [`KeyAllocator`] ("Which allocator" below) before any
//! download, against the shards read and the other reservations. That cannot see what else
//! sits in the destination, nor render a `{sha256}` layout. So a file whose planned key is new and already
//! occupied, or whose layout needs its SHA-256, is staged, and its final key decided again
//! here after the download ([`Publisher::free_key`]): an object at the key with the same size
//! and SHA-256 is this file (an earlier run's) and is replaced; anything else is foreign, kept,
//! and the next numbered variant is reserved in the same allocator, under its mutex (never
//! held across an `.await`). No file ever overwrites another. That check is also what makes it
//! safe for a manifest read later in the run to take over a key planned here
//! (`KeyAllocator::insert_existing`): the stored object was there before the run began, so
//! the planned file's check finds it.
//!
//! **Which allocator.** When the layout (and the dossier.json's) keeps dossiers apart
//! ([`extract::DossierDir`]: every key of dossier `n` lies in a directory no other dossier's key
//! can reach), each dossier plans in an allocator of its own, dropped with the dossier: the run
//! holds no key of the démarche, and its memory does not grow with it. Otherwise the dossiers
//! share the run's allocator, which holds every key of the dossiers seen so far — on disk
//! ([`DiskStore`], `keystore.rs`), so that it is not the heap that grows. Either way the
//! destination stays the arbiter for what no allocator holds (objects of dossiers not read this
//! run, foreign objects, keys left by a layout used before): a new key that is occupied is
//! staged and decided by its content, as above.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt as _};
use tokio::sync::{OnceCell, Semaphore};
use tokio_util::sync::CancellationToken;

use super::layout::Naming;
use super::tally::Tally;
use crate::extract::{self, DossierContext, FileRecord, KeyAllocator, RelKey};
use crate::fetch::{self, Dest, FetchFailure, Fetched, Fetcher, Refresh, Slot};
use crate::hash::Hasher;
use crate::keystore::DiskStore;
use crate::plan::Download;
use crate::removal::{self, Verdict};
use crate::sink::{ObjectMeta, Sink};
use crate::state;
use crate::wire::{ShardFile, staging_marker, staging_prefix};
use crate::{Progress, ds};

/// The occupied keys one file may step over before it fails: enough for an incremental run
/// under a layout whose dossiers meet, where the first new `scan.pdf` of a label finds every
/// earlier run's `scan (n).pdf` (their dossiers not read this run); finite, so that a
/// destination that calls every key occupied cannot hold a file forever.
const MAX_OCCUPIED: usize = 100_000;

/// How long a refreshed dossier's records are reused by other files of the same dossier.
const REFRESH_TTL: Duration = Duration::from_secs(30);

/// The result of one planned download.
pub(super) enum Settled {
    Stored(ShardFile, Option<String>),
    Failed {
        key: String,
        reason: String,
        code: Option<&'static str>,
    },
    Cancelled,
}

/// What publishing needs for the whole run, shared by the dossier tasks.
pub(super) struct Publisher {
    sink: Arc<dyn Sink>,
    layout: extract::Layout,
    demarche: u64,
    run_id: String,
    fetcher: Fetcher,
    progress: Progress,
    cancel: CancellationToken,
    /// The run's one allocator when the layout lets dossiers' keys meet; `None` when it keeps
    /// them apart ([`extract::DossierDir`]): then each dossier gets its own ([`Keys`]).
    shared_keys: Option<Keys>,
    /// One permit per concurrent download, across dossiers (`--jobs`), lent back while a small
    /// upload commits ([`Slot`]).
    downloads: Arc<Semaphore>,
    /// One permit per file between its download's start and its commit's end: twice the
    /// download permits, so that as many small uploads as there are downloads can await a
    /// commit ([`Slot`]).
    in_flight: Arc<Semaphore>,
    /// Set once the démarche's staging marker is known to exist (written before the first
    /// staged file).
    staging_marker: OnceCell<()>,
}

/// [`Publisher::new`]'s arguments that are not options.
pub(super) struct Setup {
    pub sink: Arc<dyn Sink>,
    pub run_id: String,
    pub progress: Progress,
    pub cancel: CancellationToken,
    /// The client's endpoint: its host and port may serve files whatever their address,
    /// unless the options name another one (see `fetch::policy`).
    pub api_endpoint: url::Url,
}

/// A [`KeyAllocator`] shared by the tasks that decide keys in it: the run's, or one
/// dossier's. Never locked across an `.await`.
#[derive(Clone, Default)]
pub(super) struct Keys(Arc<Mutex<KeyAllocator>>);

impl Keys {
    /// The run's allocator, its keys on disk ([`DiskStore`]): a run-level failure when the
    /// store cannot be opened.
    fn on_disk() -> Result<Keys, crate::Error> {
        let store = DiskStore::open().map_err(|e| crate::Error::Internal {
            what: "the run's key store",
            reason: format!(
                "cannot open a temporary SQLite database (SQLITE_TMPDIR or TMPDIR says where): {e}"
            ),
        })?;
        let keys = KeyAllocator::with_store(Box::new(store));
        Ok(Keys(Arc::new(Mutex::new(keys))))
    }

    /// Runs `f` with the allocator locked.
    pub fn with<T>(&self, f: impl FnOnce(&mut KeyAllocator) -> T) -> T {
        let mut keys = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut keys)
    }
}

impl Publisher {
    /// Layouts with `{sha256}` stage every file: their staging marker is written here (a
    /// run-level failure). Other layouts stage a file only when its new key is occupied, and
    /// write the marker then.
    pub async fn new(
        setup: Setup,
        opts: &crate::SyncOptions,
        naming: &Naming,
    ) -> Result<Publisher, crate::Error> {
        let layout = &naming.layout;
        let staging_marker = if layout.needs_sha256() {
            state::put_marker(setup.sink.as_ref(), &staging_marker(opts.demarche)).await?;
            OnceCell::new_with(Some(()))
        } else {
            OnceCell::new()
        };
        let mut fetch = opts.fetch.clone();
        fetch.api_endpoint.get_or_insert(setup.api_endpoint);
        Ok(Publisher {
            fetcher: Fetcher::new(fetch, opts.retries)?,
            sink: setup.sink,
            layout: layout.clone(),
            demarche: opts.demarche,
            run_id: setup.run_id,
            progress: setup.progress,
            cancel: setup.cancel,
            shared_keys: (!naming.keeps_dossiers_apart(opts.demarche))
                .then(Keys::on_disk)
                .transpose()?,
            downloads: Arc::new(Semaphore::new(opts.jobs)),
            in_flight: Arc::new(Semaphore::new(2 * opts.jobs)),
            staging_marker,
        })
    }

    pub fn sink(&self) -> &dyn Sink {
        self.sink.as_ref()
    }

    /// The allocator a dossier's keys are decided in, twice (module doc): the run's shared
    /// one, or a new one of the dossier's own when the layout keeps dossiers apart.
    pub fn dossier_keys(&self) -> Keys {
        self.shared_keys.clone().unwrap_or_default()
    }

    /// The new keys of a dossier's `downloads` that the destination shows free, asked all at
    /// once ([`Sink::stat_many`]: one trip on local disk instead of one per file). A new key
    /// not in the set (taken, or the check failed) is checked again by its own download.
    pub async fn free_keys(&self, downloads: &[Download]) -> HashSet<RelKey> {
        let new: Vec<&RelKey> = downloads
            .iter()
            .filter(|d| d.new_key)
            .filter_map(|d| d.key.as_ref())
            .collect();
        if new.is_empty() {
            return HashSet::new();
        }
        let asked: Vec<&str> = new.iter().map(|k| k.as_str()).collect();
        let found = self.sink.stat_many(&asked).await;
        let free = new
            .into_iter()
            .zip(found)
            .filter(|(_, f)| matches!(f, Ok(None)));
        free.map(|(key, _)| key.clone()).collect()
    }

    /// Publishes one planned file once it has a place among the files in flight and one of the
    /// run's download permits (lent back while a small upload commits: [`Slot`]); `Cancelled`
    /// if the run is cancelled first. `free`: keys known free ([`Publisher::free_keys`]).
    pub async fn publish(
        &self,
        d: Download,
        refresher: &dyn Refresh,
        context: Option<&DossierContext>,
        (keys, free): (&Keys, &HashSet<RelKey>),
    ) -> Settled {
        let in_flight = tokio::select! {
            () = self.cancel.cancelled() => return Settled::Cancelled,
            permit = Arc::clone(&self.in_flight).acquire_owned() => permit,
        };
        let Ok(_in_flight) = in_flight else {
            return Settled::Cancelled;
        };
        let mut slot = Slot::new(Arc::clone(&self.downloads));
        if !slot.hold(&self.cancel).await {
            return Settled::Cancelled;
        }
        (self.download(d, &mut slot, refresher, context, (keys, free))).await
    }

    /// Downloads one planned file and returns its manifest entry.
    ///
    /// A file goes straight to its key when the manifest already gives it that key or nothing
    /// is there. When something already sits at a new key, only the downloaded bytes can tell
    /// whether it is this very file (published by a run killed before it wrote the shard; its
    /// DS checksum may be wrong, so DS's MD5 proves nothing) or a foreign object: the file is
    /// then staged and the key decided after the download ([`Publisher::free_key`]).
    async fn download(
        &self,
        mut d: Download,
        slot: &mut Slot,
        refresher: &dyn Refresh,
        context: Option<&DossierContext>,
        (keys, free): (&Keys, &HashSet<RelKey>),
    ) -> Settled {
        let file_id = d.record.file_id();
        let key = match &d.key {
            Some(key) => key.clone(),
            None => {
                return self
                    .download_staged(d, slot, refresher, context, keys)
                    .await;
            }
        };
        if let Some(previous) = d.previous.as_ref().filter(|_| !d.new_key) {
            // Replacing in place: only an object dsfiles stored (else the key is taken, the
            // file goes beside it, and the old entry is reported as superseded).
            if let Verdict::Foreign(why) | Verdict::Unknown(why) =
                removal::check(self.sink.as_ref(), previous).await
            {
                tracing::warn!(key = key.as_str(), file_id, "not replaced: {why}");
                d.previous = None;
                return self
                    .download_staged(d, slot, refresher, context, keys)
                    .await;
            }
        }
        if d.new_key && !free.contains(&key) {
            match self.sink.stat(key.as_str()).await {
                Ok(None) => {}
                Ok(Some(_)) => {
                    return self
                        .download_staged(d, slot, refresher, context, keys)
                        .await;
                }
                Err(e) => {
                    return Settled::Failed {
                        reason: format!(
                            "cannot check `{key}` before writing it: {}",
                            fetch::error_chain(&e)
                        ),
                        key: key.into_string(),
                        code: None,
                    };
                }
            }
        }
        let dest = Dest {
            sink: self.sink.as_ref(),
            key: key.as_str(),
        };
        match self.fetch(d.record, (dest, slot), refresher).await {
            Ok(fetched) => {
                let detail = fetched.detail.clone();
                Settled::Stored(entry(&file_id, key.as_str(), fetched), detail)
            }
            Err(FetchFailure::Cancelled) => Settled::Cancelled,
            Err(FetchFailure::Failed { reason, code }) => Settled::Failed {
                key: key.into_string(),
                reason,
                code,
            },
        }
    }

    /// [`Fetcher::fetch`] of `record` into `dest`, with the run's progress and cancellation.
    async fn fetch(
        &self,
        record: FileRecord,
        to: (Dest<'_>, &mut Slot),
        refresher: &dyn Refresh,
    ) -> Result<Fetched, FetchFailure> {
        (self.fetcher)
            .fetch(record, to, refresher, &self.progress, &self.cancel)
            .await
    }

    /// Downloads into a staging key, then copies to the final key (checking the SHA-256 again
    /// on the way) and removes the staged copy. Used when the key is known only after the
    /// download: layouts with `{sha256}` (the key is rendered with it), and a new key already
    /// occupied (the planned key is kept if the object there holds the same bytes, else the
    /// next free numbered variant of the rendered key is taken).
    async fn download_staged(
        &self,
        d: Download,
        slot: &mut Slot,
        refresher: &dyn Refresh,
        context: Option<&DossierContext>,
        keys: &Keys,
    ) -> Settled {
        let file_id = d.record.file_id();
        let failed_key = d
            .key
            .as_ref()
            .map_or_else(|| self.layout.template().to_owned(), |k| k.to_string());
        let failed = |reason: String, code: Option<&'static str>| Settled::Failed {
            key: failed_key.clone(),
            reason,
            code,
        };
        let staging = match self.staging_key().await {
            Ok(staging) => staging,
            Err(reason) => return failed(reason, None),
        };
        // What the key is rendered from: the record as planned (a key planned before the
        // download stays put even if DS renames the file meanwhile, as on the direct path).
        let planned = d
            .key
            .as_ref()
            .map(|key| (self.layout.render_in(&d.record, None, context), key.clone()));
        let dest = Dest {
            sink: self.sink.as_ref(),
            key: &staging,
        };
        let fetched = match self.fetch(d.record, (dest, slot), refresher).await {
            Ok(fetched) => fetched,
            Err(FetchFailure::Cancelled) => return Settled::Cancelled,
            Err(FetchFailure::Failed { reason, code }) => return failed(reason, code),
        };
        let decided = planned.map_or_else(
            || {
                let base = (self.layout).render_in(&fetched.record, Some(&fetched.sha256), context);
                let key = keys.with(|keys| keys.allocate(&file_id, &base));
                key.map(|key| (base, key))
            },
            Ok,
        );
        let published = match &decided {
            Ok((base, key)) => {
                let previous = d.previous.as_ref();
                (self.publish_staged(&staging, (&file_id, keys), (base, key), previous, &fetched))
                    .await
            }
            Err(e) => Err(format!("cannot decide its key: {e}")),
        };
        if let Err(e) = self.sink.delete(&staging).await {
            tracing::warn!(key = staging, "cannot remove a staged file: {e}");
        }
        match published {
            Ok(key) => {
                let detail = fetched.detail.clone();
                Settled::Stored(entry(&file_id, key.as_str(), fetched), detail)
            }
            Err(reason) => Settled::Failed {
                key: decided.map_or(failed_key, |(_, key)| key.into_string()),
                reason,
                code: None,
            },
        }
    }

    /// A fresh staging key of this run, once the démarche's staging marker exists. Flat keys
    /// next to a marker: the directory never becomes empty while other staged files are being
    /// published into it (a local sink removes empty directories on delete).
    async fn staging_key(&self) -> Result<String, String> {
        let marker = staging_marker(self.demarche);
        let prefix = staging_prefix(self.demarche);
        self.staging_marker
            .get_or_try_init(|| state::put_marker(self.sink.as_ref(), &marker))
            .await
            .map_err(|e| format!("cannot prepare the staging area `{prefix}`: {e}"))?;
        let unique = uuid::Uuid::new_v4().simple();
        Ok(format!("{prefix}{}-{unique}", self.run_id))
    }

    /// The second decision on keys (module doc): publishes the staged, verified file at `key`
    /// or, when a foreign object holds it, at the next free variant of `base`; the key used.
    async fn publish_staged(
        &self,
        staging: &str,
        (file_id, keys): (&str, &Keys),
        (base, key): (&RelKey, &RelKey),
        previous: Option<&ShardFile>,
        fetched: &Fetched,
    ) -> Result<RelKey, String> {
        if previous.is_some_and(|p| p.key == key.as_str() && p.sha256 == fetched.sha256) {
            // Same bytes already at the same key.
            return Ok(key.clone());
        }
        let key = self
            .free_key((file_id, keys), base, key.clone(), fetched)
            .await?;
        self.copy(staging, key.as_str(), fetched).await?;
        Ok(key)
    }

    /// Copies the verified staged object to `key`, checking its SHA-256 again.
    async fn copy(&self, from: &str, key: &str, fetched: &Fetched) -> Result<(), String> {
        let meta = fetch::object_meta(&fetched.record, Some(&fetched.sha256));
        self.copy_object(from, key, &meta, &fetched.sha256).await
    }

    /// Moves the stored `entry` to `to` (the layout renders it there now: a dossier value
    /// changed). The object is copied, its SHA-256 checked on the way, unless `to` already
    /// holds exactly these bytes (a move cut short); an object with other bytes at `to` is
    /// foreign: nothing is moved. Then the old object is removed, unless `keep_old`, if it is
    /// still the one recorded. Returns the entry to record, or the reason it stays.
    pub async fn move_stored(
        &self,
        dossier: u64,
        entry: &ShardFile,
        to: &RelKey,
        keep_old: bool,
        tally: &mut Tally,
    ) -> Result<ShardFile, String> {
        let moved = ShardFile {
            key: to.to_string(),
            ..entry.clone()
        };
        match removal::check(self.sink.as_ref(), &moved).await {
            Verdict::Absent => {
                let meta = ObjectMeta {
                    content_type: Some(entry.content_type.clone()).filter(|c| !c.is_empty()),
                    md5_base64: Some(entry.checksum.clone()).filter(|c| !c.is_empty()),
                    sha256_hex: Some(entry.sha256.clone()),
                };
                (self.copy_object(&entry.key, to.as_str(), &meta, &entry.sha256)).await?;
            }
            Verdict::Ours => {}
            Verdict::Foreign(why) | Verdict::Unknown(why) => {
                return Err(format!("not moved to `{to}`: {why}"));
            }
        }
        if !keep_old {
            self.remove_superseded(dossier, entry, tally).await;
        }
        Ok(moved)
    }

    /// Copies the object at `from` to `key` with `meta`, checking that its SHA-256 is `sha256`.
    async fn copy_object(
        &self,
        from: &str,
        key: &str,
        meta: &ObjectMeta,
        sha256: &str,
    ) -> Result<(), String> {
        let mut source = self
            .sink
            .get(from)
            .await
            .map_err(|e| fetch::error_chain(&e))?;
        let mut upload = self
            .sink
            .create(key, meta)
            .await
            .map_err(|e| fetch::error_chain(&e))?;
        let mut hasher = Hasher::start();
        while let Some(chunk) = source.next().await {
            let written = match chunk {
                Ok(chunk) => {
                    hasher.update(chunk.clone()).await;
                    upload.write(chunk).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                fetch::abort(upload, key).await;
                return Err(format!(
                    "copying `{from}` to `{key}` failed: {}",
                    fetch::error_chain(&e)
                ));
            }
        }
        let digests = hasher.finish().await.map_err(|e| e.to_string())?;
        if digests.sha256_hex != sha256 {
            fetch::abort(upload, key).await;
            return Err(format!(
                "the copy of `{from}` changed: SHA-256 `{}` instead of `{sha256}`",
                digests.sha256_hex
            ));
        }
        upload.commit().await.map_err(|e| fetch::error_chain(&e))
    }

    /// `key` if nothing foreign occupies it in the destination, else the next free numbered
    /// variant of `base` (the key as the layout renders it, so that numbers do not pile up:
    /// `name (3).pdf`, never `name (2) (2).pdf`), reserved in the allocator: no file ever
    /// overwrites another. An object holding exactly the bytes about to be published (same
    /// size and SHA-256 as `fetched`) is this file, published by a run killed before it wrote
    /// the shard, and is replaced by the same bytes. The test is the same on every backend and
    /// reads the object's content: attributes such as a stored MD5 only repeat what DS
    /// announced, which can be wrong. Occupied keys found here stay reserved for the run, and
    /// the allocator's numbering goes on from the last one: over a run, each object of a
    /// crowded name is looked at about once, however many new files want that name.
    async fn free_key(
        &self,
        (file_id, keys): (&str, &Keys),
        base: &RelKey,
        mut key: RelKey,
        fetched: &Fetched,
    ) -> Result<RelKey, String> {
        for _ in 0..MAX_OCCUPIED {
            let info = self.sink.stat(key.as_str()).await.map_err(|e| {
                format!(
                    "cannot check `{key}` before writing it: {}",
                    fetch::error_chain(&e)
                )
            })?;
            let Some(info) = info else { return Ok(key) };
            if info.size == fetched.size
                && removal::sha256_of(self.sink.as_ref(), key.as_str())
                    .await
                    .is_ok_and(|sha256| sha256 == fetched.sha256)
            {
                tracing::info!(
                    key = key.as_str(),
                    file_id,
                    "the key holds this file's bytes (an earlier run's): replacing it"
                );
                return Ok(key);
            }
            tracing::info!(
                key = key.as_str(),
                file_id,
                "the key is taken by another object: numbering"
            );
            key = keys
                .with(|keys| {
                    keys.release(file_id)?;
                    keys.insert_found(key.clone())?;
                    keys.allocate(file_id, base)
                })
                .map_err(|e| format!("cannot reserve `{key}` for another object: {e}"))?;
        }
        Err(format!("no free key found near `{base}`"))
    }

    /// With prune: deletes the object at `entry.key` if it is dsfiles' own ([`removal`]).
    /// Returns whether the manifest keeps naming it (it could not be looked at or deleted:
    /// tried again next run).
    pub async fn prune(&self, dossier: u64, entry: &ShardFile, tally: &mut Tally) -> bool {
        match removal::check(self.sink.as_ref(), entry).await {
            Verdict::Absent => false,
            Verdict::Ours => match self.sink.delete(&entry.key).await {
                Ok(()) => false,
                Err(e) => {
                    let message = format!("dossier `{dossier}`: cannot prune `{}`: {e}", entry.key);
                    tracing::warn!("{message}");
                    tally.warnings.push(message);
                    true
                }
            },
            Verdict::Foreign(why) => {
                tally.keep(&self.progress, dossier, entry, format!("not pruned: {why}"));
                false
            }
            Verdict::Unknown(why) => {
                tally.keep(&self.progress, dossier, entry, format!("not pruned: {why}"));
                true
            }
        }
    }

    /// The slot's file was published at another key: deletes the superseded object at
    /// `previous.key` if it is dsfiles' own ([`removal`]).
    pub async fn remove_superseded(&self, dossier: u64, previous: &ShardFile, tally: &mut Tally) {
        match removal::check(self.sink.as_ref(), previous).await {
            Verdict::Absent => {}
            Verdict::Ours => {
                if let Err(e) = self.sink.delete(&previous.key).await {
                    tally.warnings.push(format!(
                        "dossier `{dossier}`: cannot delete the superseded `{}`: {e}",
                        previous.key
                    ));
                }
            }
            Verdict::Foreign(why) | Verdict::Unknown(why) => {
                let reason = format!("superseded, not deleted: {why}");
                tally.keep(&self.progress, dossier, previous, reason);
            }
        }
    }
}

/// A manifest entry for a published file.
fn entry(file_id: &str, key: &str, fetched: Fetched) -> ShardFile {
    ShardFile {
        file_id: file_id.to_owned(),
        key: key.to_owned(),
        source: fetched.record.source,
        label: fetched.record.label,
        filename: fetched.record.filename,
        content_type: fetched.record.content_type,
        checksum: fetched.record.checksum,
        sha256: fetched.sha256,
        size: fetched.size,
        stored_at: Utc::now(),
        status: fetched.status,
    }
}

/// Fresh records of one dossier (new signed URLs), shared by its files for [`REFRESH_TTL`].
pub(super) struct DossierRefresh<'a> {
    pub client: &'a ds::Client,
    pub filter: &'a ds::DossierFilter,
    pub include: extract::Include,
    pub demarche: u64,
    /// Counts the requests sent (the run's [`ApiCalls::refresh`]).
    pub requests: &'a AtomicU64,
    pub cache: tokio::sync::Mutex<Option<(Instant, Vec<FileRecord>)>>,
}

impl Refresh for DossierRefresh<'_> {
    fn refresh<'a>(
        &'a self,
        record: &'a FileRecord,
    ) -> BoxFuture<'a, Result<Option<FileRecord>, String>> {
        async move {
            let file_id = record.file_id();
            let mut cache = self.cache.lock().await;
            // Another file of the dossier refreshed it moments ago: its URLs are newer.
            let cached = cache.as_ref().and_then(|(at, records)| {
                (at.elapsed() < REFRESH_TTL)
                    .then(|| {
                        records
                            .iter()
                            .find(|r| r.file_id() == file_id && r.url != record.url)
                    })
                    .flatten()
            });
            if let Some(cached) = cached {
                return Ok(Some(cached.clone()));
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let dossier = match self.client.dossier(record.dossier, self.filter).await {
                Ok(dossier) => dossier,
                Err(e) if e.kind() == ds::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(fetch::error_chain(&e)),
            };
            let fresh = extract::extract(self.demarche, &dossier, self.include)
                .map_err(|e| e.to_string())?;
            *cache = Some((Instant::now(), fresh.clone()));
            Ok(fresh.into_iter().find(|r| r.file_id() == file_id))
        }
        .boxed()
    }
}
