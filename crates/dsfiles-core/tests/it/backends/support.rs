//! Destinations for the backend suite: one [`Backend`] per storage service,
//! opened on a fresh prefix, with what each can tell about itself beyond the `Sink` trait
//! (the whole bucket when it is ours, pending multipart uploads), and a [`Harness`] that runs
//! the pipeline against the simulator and checks a destination against the ground truth.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use bytes::Bytes;
use dsfiles_core::sink::testing::{self, FakeGcs, S3sFs};
use dsfiles_core::sink::{
    self, ByteStream, ListEntry, LocalSink, ObjectInfo, ObjectMeta, ObjectStoreSink, Sink,
    SinkOptions, Upload,
};
use dsfiles_core::{
    CancellationToken, Event, FileStatus, ProgressSink, Shard, SyncOptions, SyncReport,
    VerifyReport, ds, wire,
};
use dsfiles_sim::{SimConfig, SimHandle};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use sha2::Digest as _;
use tokio_util::task::TaskTracker;

/// Multipart part size of every sink in the suite (the smallest S3 accepts), so that a 12 MiB
/// file takes three parts.
pub const PART: usize = 5 * 1024 * 1024;

/// A storage service the pipeline writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `LocalSink` in a temp directory.
    Local,
    /// object_store's `InMemory`, under a prefix.
    Memory,
    /// S3 through s3s-fs running in the test process.
    S3sFs,
    /// S3 through moto (`DSFILES_TEST_S3_ENDPOINT`).
    S3Moto,
    /// Azure Blob through Azurite (`DSFILES_TEST_AZURE_ENDPOINT`).
    Azurite,
    /// GCS through the labelled fake of its XML API (`dsfiles_sink::testing::FakeGcs`).
    GcsXmlFake,
}

/// Whatever must outlive the destination (temp dirs, in-process servers).
#[derive(Debug, Default)]
struct Keep {
    _dir: Option<tempfile::TempDir>,
    _s3s: Option<S3sFs>,
}

/// One destination on one backend, reopenable as a new process would.
pub struct Dest {
    pub backend: Backend,
    /// `describe()` of the sink, for messages.
    pub name: String,
    open: Box<dyn Fn() -> Result<Arc<dyn Sink>> + Send + Sync>,
    /// The whole bucket, when only this test uses it: nothing may live outside the prefix.
    root: Option<Arc<dyn Sink>>,
    /// The prefix inside `root` (`""` for local disk).
    pub prefix: String,
    /// Local disk: the destination directory and the temp dir holding it.
    local: Option<(PathBuf, PathBuf)>,
    /// s3s-fs: its root directory (multipart parts live there until completed or aborted).
    s3s_root: Option<PathBuf>,
    pub gcs: Option<FakeGcs>,
    _keep: Keep,
}

fn options() -> SinkOptions {
    SinkOptions {
        part_size: PART,
        fsync: false,
        ..SinkOptions::default()
    }
}

fn option_pairs() -> Vec<(String, String)> {
    testing::pairs(&[("part_size", "5MiB")])
}

impl Backend {
    /// A fresh destination, or `None` (after a skip notice) when its emulator is not
    /// configured outside CI; under `CI=true` a missing emulator panics.
    pub async fn dest(self) -> Result<Option<Dest>> {
        let prefix = testing::unique_prefix();
        let dest = match self {
            Backend::Local => {
                let dir = tempfile::tempdir()?;
                let root = dir.path().join("dest");
                let path = root.clone();
                Dest {
                    backend: self,
                    name: String::new(),
                    open: Box::new(move || {
                        Ok(Arc::new(LocalSink::open(&path, options())?) as Arc<dyn Sink>)
                    }),
                    root: None,
                    prefix: String::new(),
                    local: Some((root, dir.path().to_path_buf())),
                    s3s_root: None,
                    gcs: None,
                    _keep: Keep {
                        _dir: Some(dir),
                        ..Keep::default()
                    },
                }
            }
            Backend::Memory => {
                let root = ObjectStoreSink::memory().with_options(options())?;
                let store = Arc::clone(root.store());
                let at = prefix.clone();
                Dest {
                    backend: self,
                    name: String::new(),
                    open: Box::new(move || {
                        let sink = ObjectStoreSink::new(
                            Arc::clone(&store),
                            &at,
                            format!("memory://{at}"),
                            options(),
                        )?;
                        Ok(Arc::new(sink) as Arc<dyn Sink>)
                    }),
                    root: Some(Arc::new(root)),
                    prefix,
                    local: None,
                    s3s_root: None,
                    gcs: None,
                    _keep: Keep::default(),
                }
            }
            Backend::S3sFs => {
                let dir = tempfile::tempdir()?;
                std::fs::create_dir(dir.path().join("dsfiles-test"))?;
                let server = S3sFs::start(dir.path()).await?;
                let endpoint = server.endpoint().to_owned();
                let root = testing::s3_sink(&endpoint, "dsfiles-test", "", &option_pairs())?;
                let at = prefix.clone();
                Dest {
                    backend: self,
                    name: String::new(),
                    open: Box::new(move || {
                        Ok(testing::s3_sink(
                            &endpoint,
                            "dsfiles-test",
                            &at,
                            &option_pairs(),
                        )?)
                    }),
                    root: Some(root),
                    prefix,
                    local: None,
                    s3s_root: Some(dir.path().to_path_buf()),
                    gcs: None,
                    _keep: Keep {
                        _dir: Some(dir),
                        _s3s: Some(server),
                    },
                }
            }
            Backend::S3Moto => {
                let Some(endpoint) = testing::emulator(testing::S3_ENDPOINT) else {
                    return Ok(None);
                };
                let bucket = testing::var_or(testing::S3_BUCKET, "dsfiles-test");
                let at = prefix.clone();
                Dest {
                    backend: self,
                    name: String::new(),
                    open: Box::new(move || {
                        Ok(testing::s3_sink(&endpoint, &bucket, &at, &option_pairs())?)
                    }),
                    root: None,
                    prefix,
                    local: None,
                    s3s_root: None,
                    gcs: None,
                    _keep: Keep::default(),
                }
            }
            Backend::Azurite => {
                let Some(endpoint) = testing::emulator(testing::AZURE_ENDPOINT) else {
                    return Ok(None);
                };
                let container = testing::var_or(testing::AZURE_CONTAINER, "dsfiles-test");
                let at = prefix.clone();
                Dest {
                    backend: self,
                    name: String::new(),
                    open: Box::new(move || {
                        Ok(testing::azure_sink(
                            &endpoint,
                            &container,
                            &at,
                            &option_pairs(),
                        )?)
                    }),
                    root: None,
                    prefix,
                    local: None,
                    s3s_root: None,
                    gcs: None,
                    _keep: Keep::default(),
                }
            }
            Backend::GcsXmlFake => {
                let fake = FakeGcs::start().await?;
                let base = format!("http://{}", fake.addr);
                let root = testing::gcs_sink(&base, "dsfiles-test", "", &option_pairs())?;
                let at = prefix.clone();
                Dest {
                    backend: self,
                    name: String::new(),
                    open: Box::new(move || {
                        Ok(testing::gcs_sink(
                            &base,
                            "dsfiles-test",
                            &at,
                            &option_pairs(),
                        )?)
                    }),
                    root: Some(root),
                    prefix,
                    local: None,
                    s3s_root: None,
                    gcs: Some(fake),
                    _keep: Keep::default(),
                }
            }
        };
        let name = (dest.open)()?.describe();
        Ok(Some(Dest { name, ..dest }))
    }

    /// The simulated démarche this backend can store. s3s-fs 0.14.1 keeps each object's
    /// metadata in one file of its root directory named
    /// `.bucket-{base64 bucket}.object-{base64 key}[.upload-{id}].metadata.json`, a single path
    /// component: with our bucket, keys longer than 156 bytes (123 for a multipart upload)
    /// make it exceed the file system's 255-byte limit, and s3s-fs answers HTTP 500
    /// (`ENAMETOOLONG`), which object_store retries then reports. That is an emulator limit,
    /// not S3's (keys up to 1024 bytes, `/` is not special): the hostile filenames, whose
    /// 255-byte name alone makes a longer key, are stored through S3 by moto (in memory, no
    /// such limit), and on every other backend.
    pub fn adapt(self, config: SimConfig) -> SimConfig {
        match self {
            Backend::S3sFs => SimConfig {
                hostile_filenames: false,
                ..config
            },
            _ => config,
        }
    }

    /// Whether the backend keeps content type and checksums with each object.
    pub fn keeps_attributes(self) -> bool {
        self != Backend::Local
    }
}

impl Dest {
    /// Opens the destination, as a new `dsfiles` process would.
    pub fn open(&self) -> Result<Arc<dyn Sink>> {
        (self.open)()
    }

    /// Multipart uploads started and neither completed nor aborted, where the backend shows
    /// them (`None` elsewhere). Waits for background aborts on the GCS fake.
    pub async fn pending_uploads(&self) -> Result<Option<usize>> {
        if let Some(fake) = &self.gcs {
            if fake.wait_no_pending_uploads().await.is_err() {
                return Ok(Some(fake.pending_uploads()));
            }
            return Ok(Some(0));
        }
        if let Some(root) = &self.s3s_root {
            let pending = std::fs::read_dir(root)?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(".upload"))
                .count();
            return Ok(Some(pending));
        }
        Ok(None)
    }

    /// Checks that nothing was written outside the destination: the whole bucket (when it is
    /// ours) or the temp directory holding the local destination.
    async fn check_containment(&self) -> Result<()> {
        if let Some(root) = &self.root {
            let outside: Vec<String> = list(root.as_ref(), "")
                .await?
                .into_iter()
                .map(|e| e.key)
                .filter(|k| !k.starts_with(&format!("{}/", self.prefix)))
                .collect();
            ensure!(
                outside.is_empty(),
                "objects outside the prefix: {outside:?}"
            );
        }
        if let Some((dest, parent)) = &self.local {
            let entries: Vec<PathBuf> = std::fs::read_dir(parent)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            ensure!(
                entries == [dest.clone()],
                "files outside {dest:?}: {entries:?}"
            );
            let left = crate::support::temp_files(dest)?;
            ensure!(left.is_empty(), "temp files left behind: {left:?}");
        }
        Ok(())
    }
}

/// Every object under `prefix`, sorted by key.
pub async fn list(sink: &dyn Sink, prefix: &str) -> Result<Vec<ListEntry>> {
    let mut entries = Vec::new();
    let mut stream = sink.list(prefix);
    while let Some(entry) = stream.next().await {
        entries.push(entry?);
    }
    entries.sort();
    Ok(entries)
}

/// SHA-256 (hex) and size of the object at `key`, read back through the sink.
pub async fn digest(sink: &dyn Sink, key: &str) -> Result<(String, u64)> {
    let mut stream = sink
        .get(key)
        .await
        .with_context(|| format!("get `{key}`"))?;
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// The simulator, a client, and one destination.
pub struct Harness {
    pub sim: SimHandle,
    pub client: ds::Client,
    pub dest: Dest,
    pub sink: Arc<dyn Sink>,
}

impl Harness {
    /// `None` when the backend's emulator is not configured (outside CI).
    pub async fn start(backend: Backend, config: SimConfig) -> Result<Option<Harness>> {
        let Some(dest) = backend.dest().await? else {
            return Ok(None);
        };
        let sim = dsfiles_sim::start(backend.adapt(config)).await?;
        let mut config = ds::ClientConfig::new(sim.endpoint(), ds::Token::new(sim.token())?);
        config.requests_per_minute = 0;
        config.backoff_base = Duration::from_millis(1);
        config.backoff_max = Duration::from_millis(20);
        let client = ds::Client::new(config)?;
        let sink = dest.open()?;
        Ok(Some(Harness {
            sim,
            client,
            dest,
            sink,
        }))
    }

    /// Drops the current sink and opens the destination again, as a new process would.
    pub fn reopen(&mut self) -> Result<()> {
        // The old sink goes first: on local disk it holds the lock file, and a new process
        // cleans leftover temp files only when no live sink holds it.
        self.sink = sink::memory();
        self.sink = self.dest.open()?;
        Ok(())
    }

    pub fn options(&self) -> SyncOptions {
        let mut opts = SyncOptions::new(self.sim.demarche());
        // The simulator listens on loopback: its API host (signed URLs) and file host.
        opts.fetch.api_endpoint = Some(self.sim.endpoint());
        opts.fetch.allow_file_hosts =
            vec![dsfiles_core::AllowedHost::of_socket(self.sim.file_host())];
        opts.fetch.backoff_base = Duration::from_millis(1);
        opts.fetch.backoff_max = Duration::from_millis(10);
        opts.jobs = 4;
        // These scenarios count files object by object; dossier.json has its own tests
        // (`sync.rs`), on memory and local disk.
        opts.data = Some(dsfiles_core::DataOutput::Off);
        opts
    }

    pub async fn sync(&self, opts: SyncOptions) -> Result<SyncReport> {
        self.sync_with(opts, dsfiles_core::no_progress(), CancellationToken::new())
            .await
    }

    pub async fn sync_with(
        &self,
        opts: SyncOptions,
        progress: dsfiles_core::Progress,
        cancel: CancellationToken,
    ) -> Result<SyncReport> {
        let report = dsfiles_core::sync(
            self.client.clone(),
            Arc::clone(&self.sink),
            opts,
            progress,
            cancel,
        )
        .await
        .with_context(|| format!("sync into `{}`", self.dest.name))?;
        Ok(report)
    }

    pub async fn verify(&self) -> Result<VerifyReport> {
        Ok(dsfiles_core::verify(
            Arc::clone(&self.sink),
            dsfiles_core::no_progress(),
            CancellationToken::new(),
        )
        .await?)
    }

    /// Every manifest shard in the destination, by dossier.
    pub async fn shards(&self) -> Result<BTreeMap<u64, Shard>> {
        let mut shards = BTreeMap::new();
        for entry in list(self.sink.as_ref(), wire::DOSSIERS_PREFIX).await? {
            let bytes = self
                .sink
                .get_small(&entry.key)
                .await?
                .with_context(|| format!("shard `{}` listed but absent", entry.key))?;
            let shard: Shard =
                serde_json::from_slice(&bytes).with_context(|| format!("shard `{}`", entry.key))?;
            ensure!(
                entry.key == wire::shard_key(shard.dossier),
                "shard of dossier `{}` at `{}`",
                shard.dossier,
                entry.key
            );
            shards.insert(shard.dossier, shard);
        }
        Ok(shards)
    }

    /// The whole contract of a synced destination, but for the simulator files `except`:
    /// - the manifest (shards under `.dsfiles/dossiers/` in the destination) lists exactly the
    ///   expected files (dossier, source, filename as DS gives it, SHA-256, size);
    /// - each is stored at a valid key inside the destination, and its bytes read back through
    ///   the sink have that SHA-256 and size (and, where kept, its content type and DS
    ///   checksum as attributes);
    /// - the destination holds nothing but those files and `.dsfiles/` state, nothing outside
    ///   the prefix, no temp file, no pending multipart upload;
    /// - `verify` finds every file intact.
    pub async fn check(&self, except: &[u64]) -> Result<()> {
        let shards = self.shards().await?;
        let expected_files: Vec<_> = self
            .sim
            .expected_files(false, false)
            .into_iter()
            .filter(|f| !except.contains(&f.id))
            .collect();
        let mut expected: Vec<(u64, String, String, String, u64)> = expected_files
            .iter()
            .map(|f| {
                (
                    f.dossier,
                    f.source.as_str().to_owned(),
                    f.filename.clone(),
                    f.sha256_hex.clone(),
                    f.served_size,
                )
            })
            .collect();
        let live: Vec<(u64, &wire::ShardFile)> = shards
            .values()
            .filter(|s| s.deleted_at.is_none())
            .flat_map(|s| {
                s.files
                    .iter()
                    .filter(|f| f.status != FileStatus::RemovedUpstream)
                    .map(move |f| (s.dossier, f))
            })
            .collect();
        let mut got: Vec<(u64, String, String, String, u64)> = live
            .iter()
            .map(|(dossier, f)| {
                (
                    *dossier,
                    f.source.as_str().to_owned(),
                    f.filename.clone(),
                    f.sha256.clone(),
                    f.size,
                )
            })
            .collect();
        expected.sort();
        got.sort();
        ensure!(
            got == expected,
            "{}: manifest vs ground truth:\n got {got:#?}\n expected {expected:#?}",
            self.dest.name
        );

        let all_files: Vec<&wire::ShardFile> = shards.values().flat_map(|s| &s.files).collect();
        for file in &all_files {
            sink::validate_key(&file.key)?;
            ensure!(
                !file.key.starts_with(".dsfiles"),
                "`{}` is in the state directory",
                file.key
            );
            let (sha256, size) = digest(self.sink.as_ref(), &file.key).await?;
            ensure!(
                (sha256.as_str(), size) == (file.sha256.as_str(), file.size),
                "{}: `{}` read back differs from the manifest",
                self.dest.name,
                file.key
            );
            if self.dest.backend.keeps_attributes() && !file.checksum.is_empty() {
                let info: ObjectInfo = self
                    .sink
                    .stat(&file.key)
                    .await?
                    .with_context(|| format!("stat `{}`", file.key))?;
                ensure!(
                    info.meta.content_type.as_deref() == Some(file.content_type.as_str())
                        && info.meta.md5_base64.as_deref() == Some(file.checksum.as_str()),
                    "{}: attributes of `{}`: {:?}",
                    self.dest.name,
                    file.key,
                    info.meta
                );
            }
        }

        let data: Vec<&wire::ShardData> = shards.values().filter_map(|s| s.data.as_ref()).collect();
        for data in &data {
            let (sha256, size) = digest(self.sink.as_ref(), &data.key).await?;
            ensure!(
                (sha256.as_str(), size) == (data.sha256.as_str(), data.size),
                "{}: dossier.json `{}` read back differs from the manifest",
                self.dest.name,
                data.key
            );
        }
        let mut keys: Vec<&str> = all_files.iter().map(|f| f.key.as_str()).collect();
        keys.extend(data.iter().map(|d| d.key.as_str()));
        keys.sort();
        let listed = list(self.sink.as_ref(), "").await?;
        let demarche = self.sim.demarche();
        let stored: Vec<&str> = listed
            .iter()
            .map(|e| e.key.as_str())
            .filter(|k| !k.starts_with(".dsfiles/"))
            .collect();
        ensure!(
            stored == keys,
            "{}: objects in the destination vs manifest keys:\n stored {stored:#?}\n manifest {keys:#?}",
            self.dest.name
        );
        let state: Vec<&str> = listed
            .iter()
            .map(|e| e.key.as_str())
            .filter(|k| k.starts_with(".dsfiles/"))
            .filter(|k| {
                !(k.starts_with(wire::DOSSIERS_PREFIX)
                    || k.starts_with(wire::SEGMENTS_PREFIX)
                    || k.starts_with(wire::RUNS_PREFIX)
                    || *k == wire::sync_point_key(demarche)
                    || *k == wire::recheck_key(demarche)
                    || *k == wire::layout_key(demarche)
                    || *k == wire::staging_marker(demarche)
                    || *k == ".dsfiles/lock")
            })
            .collect();
        ensure!(state.is_empty(), "unexpected state objects: {state:?}");
        self.dest.check_containment().await?;
        if let Some(pending) = self.dest.pending_uploads().await? {
            ensure!(pending == 0, "{pending} multipart uploads left pending");
        }

        let verify = self.verify().await?;
        ensure!(
            verify.missing.is_empty() && verify.corrupt.is_empty(),
            "{}: {verify:#?}",
            self.dest.name
        );
        ensure!(
            verify.ok as usize == all_files.len(),
            "{}: verify checked {} of {} files",
            self.dest.name,
            verify.ok,
            all_files.len()
        );
        Ok(())
    }
}

/// Records events; cancels a token at the first stored file when asked.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<Event>>,
    pub cancel_on_store: Option<CancellationToken>,
}

impl ProgressSink for Recorder {
    fn event(&self, event: &Event) {
        if let (Event::FileStored { .. }, Some(cancel)) = (event, &self.cancel_on_store) {
            cancel.cancel();
        }
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}

/// When [`CrashSink`] "dies".
#[derive(Clone, Debug)]
pub enum CrashAt {
    /// Right after the first file is published.
    FirstCommit,
    /// Right after the file carrying this DS checksum is published.
    Md5(String),
}

/// A sink that behaves like its inner sink until a chosen commit succeeds, then never answers
/// again: the process "died" right after that file reached the store, before the pipeline
/// could write anything else (shard, sync point, report). Dropping the `sync` future then is
/// what `kill -9` does to the pipeline's view of the store.
///
/// A real `kill -9` also stops the storage operations in progress; in one process they go on
/// (a local sink's blocking file work cannot be cancelled) and could land after the "new
/// process" opened the destination. So every operation that changes the store runs as a task
/// of a [`TaskTracker`], and [`CrashSink::dead_and_settled`] waits for the sink to be dropped
/// and for those tasks to end: each operation of the dead run then either happened whole or
/// not at all, and what it left (temp files, a published object) is there before the re-run.
#[derive(Debug)]
pub struct CrashSink {
    inner: Arc<dyn Sink>,
    at: CrashAt,
    crashed: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
    ops: TaskTracker,
    /// Signalled when the sink is dropped.
    released: Arc<tokio::sync::Notify>,
}

impl Drop for CrashSink {
    fn drop(&mut self) {
        // `notify_one` keeps a permit when nobody waits yet.
        self.released.notify_one();
    }
}

impl CrashSink {
    pub fn new(inner: Arc<dyn Sink>, at: CrashAt) -> CrashSink {
        CrashSink {
            inner,
            at,
            crashed: Arc::new(AtomicBool::new(false)),
            notify: Arc::new(tokio::sync::Notify::new()),
            ops: TaskTracker::new(),
            released: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Resolves once the crash happened.
    pub fn crashed(&self) -> impl Future<Output = ()> + Send + 'static {
        let crashed = Arc::clone(&self.crashed);
        let notify = Arc::clone(&self.notify);
        async move {
            loop {
                let notified = notify.notified();
                if crashed.load(Ordering::SeqCst) {
                    return;
                }
                notified.await;
            }
        }
    }

    /// Resolves once the sink is dropped (the pipeline's tasks, aborted with the `sync`
    /// future, are gone with everything they held) and the storage operations it started have
    /// ended. Only then may a "new process" open the destination.
    pub fn dead_and_settled(&self) -> impl Future<Output = ()> + Send + 'static {
        let released = Arc::clone(&self.released);
        let ops = self.ops.clone();
        async move {
            released.notified().await;
            ops.close();
            ops.wait().await;
        }
    }

    fn dead(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Runs `op` to completion even if the caller is dropped (see the type's docs).
    async fn tracked<T: Send + 'static>(
        ops: &TaskTracker,
        op: impl Future<Output = Result<T, sink::Error>> + Send + 'static,
    ) -> Result<T, sink::Error> {
        match ops.spawn(op).await {
            Ok(result) => result,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Cancelled: the runtime is shutting down, and this future with it.
                Err(_) => std::future::pending().await,
            },
        }
    }
}

struct CrashUpload {
    /// `None` only while a tracked operation holds it.
    inner: Option<Box<dyn Upload>>,
    key: String,
    trigger: bool,
    crashed: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
    ops: TaskTracker,
}

impl CrashUpload {
    fn dead(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    fn take(&mut self) -> Result<Box<dyn Upload>, sink::Error> {
        self.inner.take().ok_or_else(|| sink::Error::UploadFailed {
            key: self.key.clone(),
        })
    }
}

/// Never returns: the process is dead.
async fn hang() {
    std::future::pending::<()>().await;
}

#[async_trait::async_trait]
impl Upload for CrashUpload {
    async fn write(&mut self, chunk: Bytes) -> Result<(), sink::Error> {
        if self.dead() {
            hang().await;
        }
        let mut inner = self.take()?;
        let (inner, result) = CrashSink::tracked(&self.ops, async move {
            let result = inner.write(chunk).await;
            Ok((inner, result))
        })
        .await?;
        self.inner = Some(inner);
        result
    }

    async fn commit(mut self: Box<Self>) -> Result<(), sink::Error> {
        if self.dead() {
            hang().await;
        }
        let inner = self.take()?;
        CrashSink::tracked(&self.ops, inner.commit()).await?;
        if self.trigger && !self.crashed.swap(true, Ordering::SeqCst) {
            self.notify.notify_waiters();
        }
        if self.dead() {
            hang().await;
        }
        Ok(())
    }

    async fn abort(mut self: Box<Self>) -> Result<(), sink::Error> {
        if self.dead() {
            hang().await;
        }
        let inner = self.take()?;
        CrashSink::tracked(&self.ops, inner.abort()).await
    }
}

#[async_trait::async_trait]
impl Sink for CrashSink {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn create(&self, key: &str, meta: &ObjectMeta) -> Result<Box<dyn Upload>, sink::Error> {
        if self.dead() {
            hang().await;
        }
        let trigger = match &self.at {
            CrashAt::FirstCommit => !key.starts_with(".dsfiles"),
            CrashAt::Md5(md5) => meta.md5_base64.as_deref() == Some(md5.as_str()),
        };
        let (sink, owned_key, meta) = (Arc::clone(&self.inner), key.to_owned(), meta.clone());
        let inner = Self::tracked(
            &self.ops,
            async move { sink.create(&owned_key, &meta).await },
        )
        .await?;
        Ok(Box::new(CrashUpload {
            inner: Some(inner),
            key: key.to_owned(),
            trigger,
            crashed: Arc::clone(&self.crashed),
            notify: Arc::clone(&self.notify),
            ops: self.ops.clone(),
        }))
    }

    async fn get(&self, key: &str) -> Result<ByteStream, sink::Error> {
        if self.dead() {
            hang().await;
        }
        self.inner.get(key).await
    }

    async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, sink::Error> {
        if self.dead() {
            hang().await;
        }
        self.inner.get_range(key, range).await
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, sink::Error> {
        if self.dead() {
            hang().await;
        }
        self.inner.head(key).await
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, sink::Error> {
        if self.dead() {
            hang().await;
        }
        self.inner.stat(key).await
    }

    async fn put_small(&self, key: &str, bytes: Bytes) -> Result<(), sink::Error> {
        if self.dead() {
            hang().await;
        }
        let (sink, key) = (Arc::clone(&self.inner), key.to_owned());
        Self::tracked(&self.ops, async move { sink.put_small(&key, bytes).await }).await
    }

    async fn get_small(&self, key: &str) -> Result<Option<Bytes>, sink::Error> {
        if self.dead() {
            hang().await;
        }
        self.inner.get_small(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), sink::Error> {
        if self.dead() {
            hang().await;
        }
        let (sink, key) = (Arc::clone(&self.inner), key.to_owned());
        Self::tracked(&self.ops, async move { sink.delete(&key).await }).await
    }

    async fn get_versioned(
        &self,
        key: &str,
    ) -> Result<Option<(Bytes, sink::Version)>, sink::Error> {
        if self.dead() {
            hang().await;
        }
        self.inner.get_versioned(key).await
    }

    async fn put_if(
        &self,
        key: &str,
        bytes: Bytes,
        precondition: sink::Precondition,
    ) -> Result<sink::Version, sink::Error> {
        if self.dead() {
            hang().await;
        }
        let (sink, key) = (Arc::clone(&self.inner), key.to_owned());
        Self::tracked(&self.ops, async move {
            sink.put_if(&key, bytes, precondition).await
        })
        .await
    }

    async fn delete_if(&self, key: &str, version: &sink::Version) -> Result<(), sink::Error> {
        if self.dead() {
            hang().await;
        }
        let (sink, key, version) = (Arc::clone(&self.inner), key.to_owned(), version.clone());
        Self::tracked(
            &self.ops,
            async move { sink.delete_if(&key, &version).await },
        )
        .await
    }

    fn list(&self, prefix: &str) -> BoxStream<'_, Result<ListEntry, sink::Error>> {
        let crashed = Arc::clone(&self.crashed);
        self.inner
            .list(prefix)
            .then(move |item| {
                let crashed = Arc::clone(&crashed);
                async move {
                    if crashed.load(Ordering::SeqCst) {
                        hang().await;
                    }
                    item
                }
            })
            .boxed()
    }

    fn list_after(
        &self,
        prefix: &str,
        offset: &str,
    ) -> Option<BoxStream<'_, Result<sink::TaggedEntry, sink::Error>>> {
        let crashed = Arc::clone(&self.crashed);
        let listed = self.inner.list_after(prefix, offset)?.then(move |item| {
            let crashed = Arc::clone(&crashed);
            async move {
                if crashed.load(Ordering::SeqCst) {
                    hang().await;
                }
                item
            }
        });
        Some(listed.boxed())
    }
}
