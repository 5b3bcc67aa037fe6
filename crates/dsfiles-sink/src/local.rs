//! [`LocalSink`]: a directory on local disk, with the same semantics as the object stores.
//!
//! Crash safety: an upload is written to `<root>/.dsfiles/tmp/<shard>/<name>.part`, made
//! durable, and renamed into place (parents created): a key names complete, durable bytes or
//! nothing. A `kill -9` leaves at most temp files, which the next [`LocalSink::open`] removes
//! (see the lock file below). An upload larger than the write buffer creates its temp file when
//! the buffer first fills (with fsync on, Linux and a file system that takes it, with
//! `O_DIRECT`, see [`temp_file`]) and is fsynced at commit; a smaller one touches the disk only
//! at commit, where the group commit ([`group`]) makes many of them durable with one barrier.
//!
//! Directory syncs are batched: a commit records the directories whose entries it changed
//! (the file's parent, and the parent of every directory it created), and the next
//! `put_small` makes all of them durable before it writes anything (on Linux one `syncfs`,
//! [`Shared::sync_entries`]). The pipeline writes a dossier's manifest shard with `put_small`
//! after that dossier's files are committed, so after a power cut a shard never names a file
//! whose directory entry was lost. `put_small` itself, and dropping the sink, leave nothing
//! pending.
//!
//! Speed: temp files are spread over [`TMP_SHARDS`] subdirectories of `.dsfiles/tmp/` so that
//! concurrent uploads do not all take the same directory lock, and a commit is one trip to the
//! blocking thread pool (write the rest, fsync, create parents, rename).
//!
//! Symbolic links: the root may be one (the operator chose it; `open` resolves it), but no
//! component below it may be, since a symlinked directory would send writes, reads and deletes
//! outside the destination. Every operation `lstat`s each existing component of its key
//! ([`refuse_symlinks`]) before it uses the key's path, and fails with [`Error::Symlink`]: an
//! upload at its commit, on its blocking thread, right before it creates parents and renames
//! (until then it writes only under `.dsfiles/tmp/`, whose directories `open` and each new
//! temp file check; on Linux the rename of a new key is `renameat2(RENAME_NOREPLACE)`, which
//! answers for the last component, so only a key that exists is `lstat`ed); reads open the
//! last component with `O_NOFOLLOW` (Linux); listing never descends into a symlinked directory
//! and lists no symlink. What remains is a race: a process that can write the destination can
//! swap a checked directory for a symlink between the check and the call that uses the path.
//! Closing it needs a walk with `openat(O_NOFOLLOW)` and `*at` calls, which this sink does not
//! do; the check stops a symlink that is there before the operation starts.
//!
//! Conditional writes ([`Sink::put_if`], [`Sink::delete_if`], for the destination lease):
//! a rename replaces whatever is at the target, so it cannot express "only if unchanged".
//! Every conditional operation therefore runs under an exclusive `flock` on
//! `.dsfiles/cas.lock`, held from reading the current content to the rename (or removal), so
//! that no two of them (in this process or another on the same machine) interleave. The
//! version of a local object is the SHA-256 of its content. Create-if-absent additionally
//! publishes with `link(2)` of a staged temp file, which fails when the target exists, so it
//! never replaces an object even one written without the lock.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::key::{validate_key, validate_prefix};
use crate::{
    ByteStream, Error, ListEntry, ObjectInfo, ObjectMeta, Precondition, STATE_DIR, Sink,
    SinkOptions, Upload, Version, VersionRepr,
};
use temp_file::{Block, TempFile};

const TMP_DIR: &str = "tmp";
const LOCK_FILE: &str = "lock";
/// `.dsfiles/cas.lock`: serializes conditional writes (see the module docs).
const CAS_LOCK_FILE: &str = "cas.lock";
const TMP_SUFFIX: &str = ".part";
/// Bytes an upload buffers before it writes them (a multiple of [`temp_file::ALIGN`]).
const WRITE_BUFFER: usize = 256 * 1024;
/// Subdirectories of `.dsfiles/tmp/` that temp files are spread over (`00` to `1f`).
pub const TMP_SHARDS: usize = 32;
const READ_CHUNK: usize = 64 * 1024;

/// A destination directory on local disk.
///
/// Only one process should write to a destination at a time. [`LocalSink::open`] records its
/// pid in `.dsfiles/lock` (best effort, not an exclusive lock): when the lock names a live
/// process other than this one, stale temp files are left alone; otherwise every file under
/// `.dsfiles/tmp/` is a leftover of a killed run (temp names are never reused) and is removed.
pub struct LocalSink {
    options: SinkOptions,
    shared: Arc<Shared>,
    _lock: LockGuard,
}

impl fmt::Debug for LocalSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSink")
            .field("root", &self.shared.root)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl LocalSink {
    /// Opens the object at `key` for reading, with its metadata; `NotFound` when absent. One
    /// trip to the blocking pool.
    async fn open_file(
        &self,
        key: &str,
    ) -> Result<(PathBuf, tokio::fs::File, std::fs::Metadata), Error> {
        validate_key(key)?;
        let (root, owned) = (self.shared.root.clone(), key.to_owned());
        let path = root.join(key);
        let at = path.clone();
        let opened = blocking("open", &self.shared.root, move || {
            refuse_symlinks(&root, &owned)?;
            open_nofollow(&at)
        });
        match opened.await? {
            Some((file, metadata)) => Ok((path, tokio::fs::File::from_std(file), metadata)),
            None => Err(Error::NotFound { key: key.into() }),
        }
    }

    /// Opens (creating it if needed) the destination directory `root`, takes the lock file and
    /// removes stale temp files when no other live process holds the lock.
    pub fn open(root: impl Into<PathBuf>, options: SinkOptions) -> Result<LocalSink, Error> {
        options.validate()?;
        let root: PathBuf = root.into();
        if root.as_os_str().is_empty() {
            return Err(Error::InvalidDestination {
                dest: String::new(),
                reason: "the path is empty".into(),
            });
        }
        if root.exists() && !root.is_dir() {
            return Err(Error::InvalidDestination {
                dest: root.display().to_string(),
                reason: "it exists and is not a directory".into(),
            });
        }
        let tmp = root.join(STATE_DIR).join(TMP_DIR);
        refuse_symlinks(&root, &format!("{STATE_DIR}/{TMP_DIR}"))?;
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io("create directory", &tmp, e))?;
        let root = root
            .canonicalize()
            .map_err(|e| Error::io("resolve", &root, e))?;
        let tmp = root.join(STATE_DIR).join(TMP_DIR);
        let (lock, clean) = LockGuard::acquire(&root)?;
        #[cfg(target_os = "linux")]
        let root_dir = std::fs::File::open(&root).map_err(|e| Error::io("open", &root, e))?;
        let sink = LocalSink {
            shared: Arc::new(Shared {
                root,
                tmp,
                fsync: options.fsync,
                direct: AtomicBool::new(
                    options.fsync && options.direct_io && cfg!(target_os = "linux"),
                ),
                next_shard: AtomicUsize::new(0),
                temp_prefix: uuid::Uuid::new_v4().simple().to_string(),
                temp_count: AtomicU64::new(0),
                group: group::Queue::default(),
                #[cfg(target_os = "linux")]
                root_dir,
                dirty: Mutex::default(),
                gate: RwLock::default(),
                drains: AtomicU64::new(0),
                synced: Mutex::new(0),
            }),
            options,
            _lock: lock,
        };
        if clean {
            let removed = sink.cleanup_temp()?;
            if removed > 0 {
                tracing::info!(removed, dest = %sink.shared.root.display(), "removed temp files left by an interrupted run");
            }
        }
        for shard in 0..TMP_SHARDS {
            let dir = sink.shared.shard(shard);
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("create directory", dir, e)),
            }
        }
        Ok(sink)
    }

    /// The destination directory (absolute).
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// Whether new temp files are written with `O_DIRECT`: asked for (fsync and `direct_io`
    /// on), on Linux, and not refused by the file system so far.
    pub fn direct_io(&self) -> bool {
        self.shared.direct.load(Ordering::Relaxed)
    }

    /// Every temp file under `.dsfiles/tmp/`: in its shard directories or, left by an older
    /// version, directly in it. In no particular order.
    pub fn temp_files(&self) -> Result<Vec<PathBuf>, Error> {
        LocalSink::temp_files_under(&self.shared.root)
    }

    /// [`LocalSink::temp_files`] of the destination directory `root`, without opening it
    /// (which would remove stale ones): to inspect what a killed run left.
    pub fn temp_files_under(root: &Path) -> Result<Vec<PathBuf>, Error> {
        let tmp = root.join(STATE_DIR).join(TMP_DIR);
        let mut files = Vec::new();
        let mut dirs = vec![tmp.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if absent(&e) && dir != tmp => continue,
                Err(e) => return Err(Error::io("read directory", dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("read directory", &dir, e))?;
                let file_type = entry
                    .file_type()
                    .map_err(|e| Error::io("stat", entry.path(), e))?;
                if file_type.is_dir() {
                    dirs.push(entry.path());
                } else {
                    files.push(entry.path());
                }
            }
        }
        Ok(files)
    }

    /// Removes every temp file under `.dsfiles/tmp/` and returns how many there were (the
    /// shard directories stay). Only call it when no upload of this destination is in
    /// progress: [`LocalSink::open`] does it when it holds the lock.
    pub fn cleanup_temp(&self) -> Result<usize, Error> {
        let mut removed = 0;
        for path in self.temp_files()? {
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove temp file", path, e)),
            }
        }
        Ok(removed)
    }

    /// The path of `key`, once it is valid and no component of it is a symlink.
    async fn path(&self, key: &str) -> Result<PathBuf, Error> {
        validate_key(key)?;
        let (root, owned) = (self.shared.root.clone(), key.to_owned());
        blocking("stat", &self.shared.root, move || {
            refuse_symlinks(&root, &owned)?;
            Ok(root.join(owned))
        })
        .await
    }

    /// An upload of `key`. Its temp file is created only when its buffer first fills: an
    /// upload that fits in the buffer goes to disk at commit, with the group commit.
    ///
    /// No trip to the disk: until its commit an upload writes only under `.dsfiles/tmp/`, and
    /// the commit checks `key` for symlinks right before it creates parents and renames (see
    /// the module doc), so a check here would only fail earlier, at the price of one trip to
    /// the blocking pool for every file of a sync.
    fn start(&self, key: &str, dir_sync: DirSync) -> Result<LocalUpload, Error> {
        validate_key(key)?;
        let target = self.shared.root.join(key);
        Ok(LocalUpload {
            key: key.to_owned(),
            temp: None,
            target,
            shared: Arc::clone(&self.shared),
            dir_sync,
            buf: Block::new(WRITE_BUFFER),
            file: Temp::Unopened,
        })
    }

    /// Like an object store, a directory exists only while it holds objects: removes the
    /// parents of the deleted `path` that became empty (never the root; `remove_dir` fails on
    /// a non-empty one).
    async fn prune_empty_parents(&self, path: &Path) {
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.shared.root
                || !d.starts_with(&self.shared.root)
                || tokio::fs::remove_dir(d).await.is_err()
            {
                break;
            }
            dir = d.parent();
        }
    }

    /// Makes durable every directory entry changed by the commits that returned so far.
    async fn sync_dirs(&self) -> Result<(), Error> {
        if !self.shared.fsync {
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        blocking("fsync", &self.shared.root, move || shared.sync_dirs()).await
    }
}

/// Whether a commit fsyncs the directories it changed before returning, or leaves them to the
/// next `put_small` (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DirSync {
    Now,
    Deferred,
}

/// What a sink and its uploads share.
struct Shared {
    root: PathBuf,
    tmp: PathBuf,
    fsync: bool,
    /// Whether new temp files are opened with `O_DIRECT`; cleared when the file system refuses.
    direct: AtomicBool,
    /// Round robin over the temp shards.
    next_shard: AtomicUsize,
    /// Temp files are named `<prefix>-<n>.part`: a random prefix drawn once per sink, so that
    /// names are never reused across runs, and a counter, so that naming one costs no
    /// `getrandom`.
    temp_prefix: String,
    temp_count: AtomicU64,
    /// Uploads waiting for the group commit.
    group: group::Queue,
    /// The root, open: what `syncfs` is called on.
    #[cfg(target_os = "linux")]
    root_dir: std::fs::File,
    /// Directories whose entries changed since they were last fsynced (with `fsync` only).
    dirty: Mutex<HashSet<PathBuf>>,
    /// Held shared by a commit from its first directory change until those directories are in
    /// `dirty` (or synced), and exclusively while [`Shared::sync_dirs`] takes the content of
    /// `dirty`: so a sync never misses a change that is on disk but not yet recorded.
    gate: RwLock<()>,
    /// Drains of `dirty` started so far (numbered from 1, in order, under `synced`).
    drains: AtomicU64,
    /// Serializes syncs and holds the number of the last drain whose fsyncs all succeeded.
    synced: Mutex<u64>,
}

impl Shared {
    fn shard(&self, n: usize) -> PathBuf {
        self.tmp.join(format!("{n:02x}"))
    }

    /// Creates a new temp file in the next shard, with `O_DIRECT` if `direct` and the sink
    /// uses it. Blocking.
    fn create_temp(&self, direct: bool) -> Result<(PathBuf, TempFile), Error> {
        let dir = self.temp_dir()?;
        self.create_temp_in(&dir, direct)
    }

    /// The next temp shard, once no component of its path is a symlink. Blocking.
    fn temp_dir(&self) -> Result<PathBuf, Error> {
        let n = self.next_shard.fetch_add(1, Ordering::Relaxed) % TMP_SHARDS;
        refuse_symlinks(&self.root, &format!("{STATE_DIR}/{TMP_DIR}/{n:02x}"))?;
        Ok(self.shard(n))
    }

    /// Creates a new temp file in `dir`, a [`Shared::temp_dir`] (recreated if it was
    /// removed). Blocking.
    fn create_temp_in(&self, dir: &Path, direct: bool) -> Result<(PathBuf, TempFile), Error> {
        let n = self.temp_count.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!("{}-{n:x}{TMP_SUFFIX}", self.temp_prefix));
        let open = || TempFile::create(&temp, direct && self.direct.load(Ordering::Relaxed));
        let file = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(dir)
                .and_then(|()| open())
                .map_err(|e| Error::io("create temp file", &temp, e))?,
            other => other.map_err(|e| Error::io("create temp file", &temp, e))?,
        };
        self.note_direct(&file);
        Ok((temp, file))
    }

    /// Takes the exclusive lock that serializes conditional writes (held until the returned
    /// file is dropped). Blocking: waits for the holder, which holds it for one small write.
    fn cas_lock(&self) -> Result<std::fs::File, Error> {
        let path = self.root.join(STATE_DIR).join(CAS_LOCK_FILE);
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(target_os = "linux")]
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
        let file = options
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e))?;
        file.lock().map_err(|e| Error::io("lock", &path, e))?;
        Ok(file)
    }

    /// [`Sink::put_if`] once the CAS lock is held. Blocking.
    fn put_if_locked(
        &self,
        key: &str,
        target: &Path,
        bytes: &[u8],
        precondition: &Precondition,
    ) -> Result<Version, Error> {
        let refused = || Error::PreconditionFailed {
            key: key.to_owned(),
        };
        if let Precondition::Matches(expected) = precondition
            && current_version(target)?.as_ref() != Some(expected)
        {
            return Err(refused());
        }
        let parent = target.parent().unwrap_or(&self.root);
        let (mut changed, mut seen) = (Vec::new(), Seen::default());
        if let Some(missing) = first_missing_dir(&self.root, key, &mut seen)? {
            create_dirs_from(&self.root, key, missing, &mut changed, &mut seen)?;
        }
        let temp = self.stage(bytes)?;
        let published = match precondition {
            // `link` fails when the target exists: create-if-absent is atomic by itself.
            Precondition::Absent => std::fs::hard_link(&temp, target).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    refused()
                } else {
                    Error::io("link into place", target, e)
                }
            }),
            Precondition::Matches(_) => std::fs::rename(&temp, target)
                .map_err(|e| Error::io("rename into place", target, e)),
        };
        let _ = std::fs::remove_file(&temp);
        published?;
        if self.fsync {
            changed.push(parent.to_path_buf());
            for dir in &changed {
                sync_dir(dir).map_err(|e| Error::io("fsync", dir, e))?;
            }
        }
        Ok(content_version(bytes))
    }

    /// Writes `bytes` to a new temp file directly under `.dsfiles/tmp/` (fsynced with
    /// `fsync`) and returns its path. Blocking.
    fn stage(&self, bytes: &[u8]) -> Result<PathBuf, Error> {
        use std::io::Write;
        let temp = self
            .tmp
            .join(format!("cas-{}{TMP_SUFFIX}", uuid::Uuid::new_v4().simple()));
        let written = std::fs::File::create_new(&temp).and_then(|mut file| {
            file.write_all(bytes)?;
            if self.fsync {
                file.sync_data()?;
            }
            Ok(())
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(Error::io("write temp file", &temp, e));
        }
        Ok(temp)
    }

    /// Stops asking for `O_DIRECT` once the file system refused it for `file`.
    fn note_direct(&self, file: &TempFile) {
        if file.refused_direct() && self.direct.swap(false, Ordering::Relaxed) {
            tracing::info!(dest = %self.root.display(), "the file system refuses O_DIRECT: buffered writes from now on");
        }
    }

    fn mark_dirty(&self, dirs: impl IntoIterator<Item = PathBuf>) {
        self.dirty
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(dirs);
    }

    /// Returns once every directory recorded in `dirty` before the call is fsynced; on
    /// failure the ones not synced stay in `dirty`. Blocking.
    ///
    /// Group commit: syncs run one at a time, and a caller that arrived while one was running
    /// returns as soon as a later drain (which took everything recorded before it arrived)
    /// has completed, often without syncing anything itself.
    fn sync_dirs(&self) -> Result<(), Error> {
        let arrived = self.drains.load(Ordering::SeqCst);
        let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        if *synced > arrived {
            return Ok(());
        }
        let drain = self.drains.fetch_add(1, Ordering::SeqCst) + 1;
        let dirs: Vec<PathBuf> = {
            let _exclusive = self.gate.write().unwrap_or_else(PoisonError::into_inner);
            self.dirty
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .drain()
                .collect()
        };
        if let Err(e) = self.sync_entries(&dirs) {
            // Which ones reached the disk does not matter: syncing one again is harmless.
            self.mark_dirty(dirs);
            return Err(e);
        }
        *synced = drain;
        Ok(())
    }

    /// Makes the entries of the directories `dirs` durable. On Linux with one `syncfs(2)` of
    /// the destination's file system, which covers them all: every directory whose entries
    /// matter received a rename from `.dsfiles/tmp/`, and a rename cannot cross file systems
    /// (a directory created below a mount point only ever sees renames fail). One flush of the
    /// disk's cache instead of one per directory. Elsewhere, an fsync each. Blocking.
    fn sync_entries(&self, dirs: &[PathBuf]) -> Result<(), Error> {
        if dirs.is_empty() {
            return Ok(());
        }
        #[cfg(target_os = "linux")]
        return rustix::fs::syncfs(&self.root_dir)
            .map_err(|e| Error::io("syncfs", &self.root, std::io::Error::from(e)));
        #[cfg(not(target_os = "linux"))]
        sync_dirs_concurrently(dirs)
    }
}

impl Drop for Shared {
    /// The sink and all its uploads are gone: leave no directory entry pending.
    fn drop(&mut self) {
        if self.fsync
            && let Err(e) = self.sync_dirs()
        {
            tracing::warn!(dest = %self.root.display(), "cannot fsync directories: {e}");
        }
    }
}

/// Threads that fsync the directories of one drain side by side: fsyncs issued together share
/// one journal commit (ext4, xfs), one after the other each waits for its own.
#[cfg(not(target_os = "linux"))]
const SYNC_THREADS: usize = 16;

/// fsyncs every directory of `dirs`, on up to [`SYNC_THREADS`] threads; the first error.
#[cfg(not(target_os = "linux"))]
fn sync_dirs_concurrently(dirs: &[PathBuf]) -> Result<(), Error> {
    if dirs.is_empty() {
        return Ok(());
    }
    let per_thread = dirs.len().div_ceil(SYNC_THREADS);
    std::thread::scope(|scope| {
        let threads: Vec<_> = dirs
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .try_for_each(|dir| sync_dir(dir).map_err(|e| Error::io("fsync", dir, e)))
                })
            })
            .collect();
        let mut result = Ok(());
        for thread in threads {
            let outcome = thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            result = result.and(outcome);
        }
        result
    })
}

/// fsyncs directory `dir`; a directory removed meanwhile (by `delete`) has nothing to sync.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if absent(&e) => Ok(()),
        other => other,
    }
}

/// Runs blocking file system work on tokio's blocking pool; `op` and `path` name a panic.
async fn blocking<T: Send + 'static>(
    op: &'static str,
    path: &Path,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::io(op, path, std::io::Error::other(e)))?
}

/// [`Sink::stat`] of a valid `key` under `root`. Blocking.
/// `seen`: what earlier keys of the same call found. One `lstat` per component, the last
/// one's answering the question.
fn stat_file(root: &Path, key: &str, seen: &mut Seen) -> Result<Option<ObjectInfo>, Error> {
    let found = refuse_symlinks_seen(root, key, seen)?;
    Ok(found.filter(|meta| meta.is_file()).map(|meta| ObjectInfo {
        size: meta.len(),
        meta: ObjectMeta::default(),
    }))
}

/// The whole file at `path`, `None` when there is no file (a directory is none), as
/// [`open_nofollow`] opens it. Blocking.
fn read_file(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    use std::io::Read as _;
    let Some((mut file, meta)) = open_nofollow(path)? else {
        return Ok(None);
    };
    if !meta.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, e))?;
    Ok(Some(bytes))
}

/// `path` opened for reading with its metadata, `None` when absent; the last component not
/// followed if it is a symlink (Linux). Blocking.
fn open_nofollow(path: &Path) -> Result<Option<(std::fs::File, std::fs::Metadata)>, Error> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if absent(&e) => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    Ok(Some((file, meta)))
}

/// Fails with [`Error::Symlink`] when a component of `key` below `root` is a symbolic link.
/// Components that do not exist (yet) end the check. Blocking: one `lstat` per component.
fn refuse_symlinks(root: &Path, key: &str) -> Result<(), Error> {
    refuse_symlinks_seen(root, key, &mut Seen::default()).map(drop)
}

/// What the [`refuse_symlinks`] checks of one blocking call found, so that its other keys need
/// not `lstat` the same directories again: the call lasts milliseconds, and the race the module
/// doc names (a directory swapped after its check) is the same race, over that call.
#[derive(Default)]
struct Seen {
    /// Directories found to be real directories (not symlinks), or created by this call.
    dirs: HashSet<PathBuf>,
    /// Directories found absent; tracked only by calls that create none ([`Seen::reading`]):
    /// a commit creates directories, and an absence it trusted could hide a symlink made since.
    absent: Option<HashSet<PathBuf>>,
}

impl Seen {
    /// For a call that only reads (`stat_many`), which trusts absences too.
    fn reading() -> Seen {
        Seen {
            absent: Some(HashSet::new()),
            ..Seen::default()
        }
    }
}

/// [`refuse_symlinks`], trusting what `seen` holds and adding what it finds. Returns the
/// metadata of `key`'s last component, `None` when a component is absent.
fn refuse_symlinks_seen(
    root: &Path,
    key: &str,
    seen: &mut Seen,
) -> Result<Option<std::fs::Metadata>, Error> {
    let mut path = root.to_path_buf();
    let mut end = 0;
    let mut components = key.split('/').peekable();
    while let Some(component) = components.next() {
        path.push(component);
        end += component.len();
        let dir = components.peek().is_some();
        if dir && seen.dirs.contains(&path) {
            end += 1;
            continue;
        }
        if dir && seen.absent.as_ref().is_some_and(|a| a.contains(&path)) {
            return Ok(None);
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(symlink_error(key, end)),
            Ok(meta) if !dir => return Ok(Some(meta)),
            Ok(meta) => {
                if meta.is_dir() {
                    seen.dirs.insert(path.clone());
                }
            }
            Err(e) if absent(&e) => {
                if let Some(absent) = seen.absent.as_mut().filter(|_| dir) {
                    absent.insert(path);
                }
                return Ok(None);
            }
            Err(e) => return Err(Error::io("stat", path, e)),
        }
        end += 1;
    }
    Ok(None)
}

/// How many times `publish` recreates a parent directory removed under it by a concurrent
/// `delete` before giving up.
const RENAME_ATTEMPTS: u32 = 8;

/// The version of a local object: the SHA-256 of its content.
fn content_version(bytes: &[u8]) -> Version {
    use sha2::Digest;
    Version(VersionRepr::Content(sha2::Sha256::digest(bytes).into()))
}

/// The version of the file at `target`, `None` when absent. Blocking.
fn current_version(target: &Path) -> Result<Option<Version>, Error> {
    match std::fs::symlink_metadata(target) {
        Ok(meta) if !meta.is_file() => return Ok(None),
        Ok(_) => {}
        Err(e) if absent(&e) => return Ok(None),
        Err(e) => return Err(Error::io("stat", target, e)),
    }
    match std::fs::read(target) {
        Ok(bytes) => Ok(Some(content_version(&bytes))),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(Error::io("read", target, e)),
    }
}

fn absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

#[async_trait::async_trait]
impl Sink for LocalSink {
    fn describe(&self) -> String {
        self.shared.root.display().to_string()
    }

    async fn create(&self, key: &str, _meta: &ObjectMeta) -> Result<Box<dyn Upload>, Error> {
        Ok(Box::new(self.start(key, DirSync::Deferred)?))
    }

    async fn get(&self, key: &str) -> Result<ByteStream, Error> {
        let (path, file, metadata) = self.open_file(key).await?;
        if !metadata.is_file() {
            return Err(Error::NotFound { key: key.into() });
        }
        Ok(
            tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK)
                .map_err(move |e| Error::io("read", path.clone(), e))
                .boxed(),
        )
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, Error> {
        let (path, mut file, metadata) = self.open_file(key).await?;
        let size = metadata.len();
        if range.start > size || range.start > range.end {
            return Err(Error::InvalidRange {
                key: key.into(),
                start: range.start,
                end: range.end,
                size,
            });
        }
        let end = range.end.min(size);
        let len = usize::try_from(end - range.start).map_err(|_| Error::InvalidRange {
            key: key.into(),
            start: range.start,
            end: range.end,
            size,
        })?;
        file.seek(SeekFrom::Start(range.start))
            .await
            .map_err(|e| Error::io("seek", &path, e))?;
        let mut buf = vec![0; len];
        file.read_exact(&mut buf)
            .await
            .map_err(|e| Error::io("read", &path, e))?;
        Ok(Bytes::from(buf))
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, Error> {
        Ok(self.stat(key).await?.map(|info| info.size))
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, Error> {
        validate_key(key)?;
        let (root, key) = (self.shared.root.clone(), key.to_owned());
        let stat = move || stat_file(&root, &key, &mut Seen::default());
        blocking("stat", &self.shared.root, stat).await
    }

    async fn stat_many(&self, keys: &[&str]) -> Vec<Result<Option<ObjectInfo>, Error>> {
        let (root, owned) = (self.shared.root.clone(), keys.iter().map(|k| k.to_string()));
        let owned: Vec<String> = owned.collect();
        let all = blocking("stat", &self.shared.root, move || {
            let mut seen = Seen::reading();
            let mut stat =
                |key: &String| validate_key(key).and_then(|()| stat_file(&root, key, &mut seen));
            Ok(owned.iter().map(&mut stat).collect())
        });
        all.await.unwrap_or_else(|e| {
            let reason = e.to_string();
            let failed = |_| {
                Err(Error::io(
                    "stat",
                    &self.shared.root,
                    std::io::Error::other(reason.clone()),
                ))
            };
            keys.iter().map(failed).collect()
        })
    }

    async fn put_small(&self, key: &str, bytes: Bytes) -> Result<(), Error> {
        // First make durable what earlier commits changed: a state file written now (such as a
        // manifest shard) may name their files. An upload that fits in the buffer goes through
        // the group commit, whose round does this before it renames (see `group`).
        if !group::covers_earlier_commits(bytes.len() < WRITE_BUFFER) {
            self.sync_dirs().await?;
        }
        let mut upload = Box::new(self.start(key, DirSync::Now)?);
        upload.write(bytes).await?;
        upload.commit().await
    }

    /// One trip to the blocking pool (a sync reads a manifest shard per dossier).
    async fn get_small(&self, key: &str) -> Result<Option<Bytes>, Error> {
        validate_key(key)?;
        let (root, key) = (self.shared.root.clone(), key.to_owned());
        blocking("read", &self.shared.root, move || {
            refuse_symlinks(&root, &key)?;
            read_file(&root.join(&key)).map(|read| read.map(Bytes::from))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let path = self.path(key).await?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if absent(&e) => return Ok(()),
            Err(e) => return Err(Error::io("delete", path, e)),
        }
        self.prune_empty_parents(&path).await;
        Ok(())
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, Version)>, Error> {
        // A rename replaces the file as a whole: what is read is one version or the other.
        Ok(self.get_small(key).await?.map(|bytes| {
            let version = content_version(&bytes);
            (bytes, version)
        }))
    }

    async fn put_if(
        &self,
        key: &str,
        bytes: Bytes,
        precondition: Precondition,
    ) -> Result<Version, Error> {
        let target = self.path(key).await?;
        // Like `put_small`: what earlier commits changed is made durable first.
        self.sync_dirs().await?;
        let (shared, key) = (Arc::clone(&self.shared), key.to_owned());
        blocking("conditional put", &self.shared.root, move || {
            let _cas = shared.cas_lock()?;
            refuse_symlinks(&shared.root, &key)?;
            shared.put_if_locked(&key, &target, &bytes, &precondition)
        })
        .await
    }

    async fn delete_if(&self, key: &str, version: &Version) -> Result<(), Error> {
        let path = self.path(key).await?;
        let (shared, owned, target, version) = (
            Arc::clone(&self.shared),
            key.to_owned(),
            path.clone(),
            version.clone(),
        );
        blocking("conditional delete", &self.shared.root, move || {
            let _cas = shared.cas_lock()?;
            refuse_symlinks(&shared.root, &owned)?;
            if current_version(&target)? != Some(version) {
                return Err(Error::PreconditionFailed { key: owned });
            }
            std::fs::remove_file(&target).map_err(|e| Error::io("delete", &target, e))
        })
        .await?;
        self.prune_empty_parents(&path).await;
        Ok(())
    }

    fn list(&self, prefix: &str) -> BoxStream<'_, Result<ListEntry, Error>> {
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix).to_owned();
        if let Err(e) = validate_prefix(&prefix) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let root = self.shared.root.clone();
        // The walk ends as soon as the receiver (this stream) is dropped: `blocking_send` fails.
        let walker = tokio::task::spawn_blocking(move || walk(&root, &prefix, &tx));
        futures::stream::unfold((rx, Some(walker)), |(mut rx, walker)| async move {
            match rx.recv().await {
                Some(item) => Some((item, (rx, walker))),
                None => {
                    // The walk finished: surface a panic of the walker instead of hiding it.
                    match walker?.await {
                        Ok(()) => None,
                        Err(e) => Some((
                            Err(Error::io("list", PathBuf::new(), std::io::Error::other(e))),
                            (rx, None),
                        )),
                    }
                }
            }
        })
        .boxed()
    }
}

/// Walks `root/prefix` depth first, sending every regular file (not the sink's temp and lock
/// files, not symlinks) as a key relative to `root`. Never enters a symlinked directory (a
/// symlink in `prefix` is an error; `DirEntry::file_type` does not follow links).
fn walk(root: &Path, prefix: &str, tx: &tokio::sync::mpsc::Sender<Result<ListEntry, Error>>) {
    let start = if prefix.is_empty() {
        root.to_path_buf()
    } else {
        if let Err(e) = refuse_symlinks(root, prefix) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        root.join(prefix)
    };
    let internal_tmp = root.join(STATE_DIR).join(TMP_DIR);
    let internal_lock = root.join(STATE_DIR).join(LOCK_FILE);
    let internal_cas_lock = root.join(STATE_DIR).join(CAS_LOCK_FILE);
    let mut stack = vec![start];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if absent(&e) => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(Error::io("list", dir, e)));
                return;
            }
        };
        for entry in entries {
            let item = entry
                .and_then(|entry| Ok((entry.path(), entry.file_type()?)))
                .map_err(|e| Error::io("list", &dir, e));
            let (path, file_type) = match item {
                Ok(item) => item,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            if path == internal_tmp || path == internal_lock || path == internal_cas_lock {
                continue;
            }
            if file_type.is_dir() {
                stack.push(path);
                continue;
            }
            if !file_type.is_file() {
                continue;
            }
            let Some(key) = relative_key(root, &path) else {
                tracing::warn!(path = %path.display(), "skipping a file whose name is not UTF-8");
                continue;
            };
            let size = match std::fs::symlink_metadata(&path) {
                Ok(meta) => meta.len(),
                Err(e) if absent(&e) => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(Error::io("stat", path, e)));
                    return;
                }
            };
            if tx.blocking_send(Ok(ListEntry { key, size })).is_err() {
                return;
            }
        }
    }
}

fn relative_key(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

struct LocalUpload {
    key: String,
    /// The temp file, from its creation until `commit` takes it over: abort and drop remove
    /// it.
    temp: Option<PathBuf>,
    target: PathBuf,
    shared: Arc<Shared>,
    dir_sync: DirSync,
    /// Bytes not yet written to the temp file (fewer than [`WRITE_BUFFER`] between writes).
    buf: Block,
    file: Temp,
}

/// Where an upload's bytes are.
enum Temp {
    /// All in the buffer: no temp file yet.
    Unopened,
    /// The first ones in this temp file, the rest in the buffer.
    Open(TempFile),
    /// Committed, aborted or failed.
    Gone,
}

#[async_trait::async_trait]
impl Upload for LocalUpload {
    async fn write(&mut self, chunk: Bytes) -> Result<(), Error> {
        if matches!(self.file, Temp::Gone) {
            return Err(Error::UploadFailed {
                key: self.key.clone(),
            });
        }
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            rest = &rest[self.buf.fill(rest)..];
            if self.buf.is_full() {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), Error> {
        let buf = std::mem::take(&mut self.buf);
        let (key, target) = (self.key.clone(), self.target.clone());
        let file = match std::mem::replace(&mut self.file, Temp::Gone) {
            Temp::Gone => return Err(Error::UploadFailed { key }),
            Temp::Unopened => {
                let job = group::Job::new(key, target, buf, self.dir_sync);
                return group::commit(&self.shared, job).await;
            }
            Temp::Open(file) => file,
        };
        let Some(temp) = self.temp.take() else {
            return Err(Error::UploadFailed { key });
        };
        let (shared, dir_sync, path) = (Arc::clone(&self.shared), self.dir_sync, temp.clone());
        let result = blocking("publish", &self.target, move || {
            let place = Place {
                key: &key,
                target: &target,
            };
            publish(&shared, file, buf, &path, place, dir_sync)
        })
        .await;
        if result.is_err() {
            remove_temp(&temp).await;
        }
        result
    }

    async fn abort(mut self: Box<Self>) -> Result<(), Error> {
        self.file = Temp::Gone;
        let Some(temp) = self.temp.take() else {
            return Ok(());
        };
        match tokio::fs::remove_file(&temp).await {
            Ok(()) => Ok(()),
            Err(e) if absent(&e) => Ok(()),
            Err(e) => Err(Error::io("remove temp file", &temp, e)),
        }
    }
}

impl LocalUpload {
    /// Writes the full buffer to the temp file, creating it first if needed. On failure the
    /// upload is `Gone`: it can only be aborted (or dropped).
    async fn flush(&mut self) -> Result<(), Error> {
        let file = match std::mem::replace(&mut self.file, Temp::Gone) {
            Temp::Gone => {
                return Err(Error::UploadFailed {
                    key: self.key.clone(),
                });
            }
            Temp::Unopened => None,
            Temp::Open(file) => Some(file),
        };
        let mut buf = std::mem::take(&mut self.buf);
        let (shared, temp) = (Arc::clone(&self.shared), self.temp.clone());
        let at = temp.clone().unwrap_or_else(|| self.shared.tmp.clone());
        let written = blocking("write temp file", &at, move || {
            let (temp, mut file) = match (temp, file) {
                (Some(temp), Some(file)) => (temp, file),
                _ => shared.create_temp(true)?,
            };
            let written = file.write_block(&temp, &mut buf);
            shared.note_direct(&file);
            Ok((temp, written.map(|()| (file, buf))))
        })
        .await?;
        let (temp, written) = written;
        // From here on the temp file exists: abort and drop remove it.
        self.temp = Some(temp.clone());
        let (file, buf) = written.map_err(|e| Error::io("write temp file", &temp, e))?;
        self.file = Temp::Open(file);
        self.buf = buf;
        Ok(())
    }
}

/// Best effort: a temp file that cannot be removed now is removed by the next `open`.
async fn remove_temp(temp: &Path) {
    if let Err(e) = tokio::fs::remove_file(temp).await
        && !absent(&e)
    {
        tracing::warn!(temp = %temp.display(), error = %e, "cannot remove a temp file");
    }
}

/// Where an upload is published: its key, and the key's path under the root.
#[derive(Clone, Copy)]
struct Place<'a> {
    key: &'a str,
    target: &'a Path,
}

/// Writes the rest of an upload, fsyncs it, and [`settle`]s it. Blocking.
fn publish(
    shared: &Shared,
    mut file: TempFile,
    mut rest: Block,
    temp: &Path,
    place: Place<'_>,
    dir_sync: DirSync,
) -> Result<(), Error> {
    file.finish(temp, &mut rest)
        .map_err(|e| Error::io("write temp file", temp, e))?;
    shared.note_direct(&file);
    if shared.fsync {
        file.sync_data().map_err(|e| Error::io("fsync", temp, e))?;
    }
    drop(file);
    settle(shared, temp, place, dir_sync, &mut Seen::default())
}

/// Renames the durable temp file `temp` to `place` (creating parents); then fsyncs the
/// directories it changed (`DirSync::Now`) or leaves them for the next
/// [`Shared::sync_dirs`]. `seen`: the directories already checked for symlinks in this
/// group-commit round. Blocking.
fn settle(
    shared: &Shared,
    temp: &Path,
    place: Place<'_>,
    dir_sync: DirSync,
    seen: &mut Seen,
) -> Result<(), Error> {
    let parent = place.target.parent().unwrap_or(&shared.root);
    // Directories whose entries this commit changes: the parent of each directory created,
    // then `parent` once the file is renamed into it.
    let mut changed = Vec::new();
    let _changing = shared.gate.read().unwrap_or_else(PoisonError::into_inner);
    let result = rename_into_place(&shared.root, temp, place, (&mut changed, seen));
    if !shared.fsync {
        return result;
    }
    if result.is_ok() {
        changed.push(parent.to_path_buf());
        if dir_sync == DirSync::Now {
            let synced = shared.sync_entries(&changed);
            if synced.is_err() {
                shared.mark_dirty(changed);
            }
            return synced;
        }
    }
    // Even after a failed rename: a directory created here must reach the disk before a later
    // commit into it is reported durable, and that commit will not know it was new.
    shared.mark_dirty(changed);
    result
}

/// Checks `key`'s directories for symlinks, creates the missing ones, then moves `temp` to
/// `target`. `delete` removes the directories it leaves empty, so a concurrent delete in the
/// same directory can remove one between the two: create it and rename again (bounded; the
/// temp file is still ours, nothing was published).
fn rename_into_place(
    root: &Path,
    temp: &Path,
    place: Place<'_>,
    (changed, seen): (&mut Vec<PathBuf>, &mut Seen),
) -> Result<(), Error> {
    let target = place.target;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let retry = |e: &std::io::Error| absent(e) && attempt < RENAME_ATTEMPTS;
        // A directory this round already found real (or created) is still there, unless a
        // concurrent `delete` removed it: then the rename fails, and the retry trusts nothing.
        if let Some(missing) = first_missing_dir(root, place.key, seen)? {
            match create_dirs_from(root, place.key, missing, changed, seen) {
                Ok(()) => {}
                Err(Error::Io { source, .. }) if retry(&source) => continue,
                Err(e) => return Err(e),
            }
        }
        match move_into_place(temp, target, place.key) {
            Err(Error::Io { source, .. }) if retry(&source) && temp.exists() => {
                seen.dirs.clear();
            }
            done => return done,
        }
    }
}

/// [`Error::Symlink`] for the first `end` bytes of `key`.
fn symlink_error(key: &str, end: usize) -> Error {
    Error::Symlink {
        key: key.to_owned(),
        component: key.get(..end).unwrap_or(key).to_owned(),
    }
}

/// Whether `meta`, the `lstat` of `dir` (the first `end` bytes of `key`), is a real directory:
/// a symlink there is [`Error::Symlink`]; a file, an error that is not "absent", so that the
/// commit fails at once instead of retrying.
fn real_dir(key: &str, end: usize, dir: &Path, meta: &std::fs::Metadata) -> Result<(), Error> {
    if meta.file_type().is_symlink() {
        return Err(symlink_error(key, end));
    }
    if !meta.is_dir() {
        let in_the_way = std::io::Error::other("a file is in the way: not a directory");
        return Err(Error::io("create directory", dir, in_the_way));
    }
    Ok(())
}

/// The length of the shortest of `key`'s directories (a prefix of `key`) that does not exist,
/// after checking that each before it is a real directory ([`real_dir`]); `None` when they all
/// exist. Trusts and extends `seen.dirs`. Blocking: one `lstat` per directory not in `seen`.
fn first_missing_dir(root: &Path, key: &str, seen: &mut Seen) -> Result<Option<usize>, Error> {
    for end in dir_ends(key) {
        let dir = root.join(&key[..end]);
        if seen.dirs.contains(&dir) {
            continue;
        }
        match std::fs::symlink_metadata(&dir) {
            Ok(meta) => {
                real_dir(key, end, &dir, &meta)?;
                seen.dirs.insert(dir);
            }
            Err(e) if absent(&e) => return Ok(Some(end)),
            Err(e) => return Err(Error::io("stat", dir, e)),
        }
    }
    Ok(None)
}

/// The length of each directory of `key` (each prefix that ends before a `/`), shortest first.
fn dir_ends(key: &str) -> impl Iterator<Item = usize> + '_ {
    key.match_indices('/').map(|(end, _)| end)
}

/// Creates `key`'s directories from the one `from` bytes long down to its parent, the first
/// known absent: one `mkdir` each, no look before. Pushes onto `changed` the parent of every
/// directory it created and adds each to `seen.dirs`. One found already there (a concurrent
/// commit made it, and records it) is checked with [`real_dir`] instead. Blocking.
fn create_dirs_from(
    root: &Path,
    key: &str,
    from: usize,
    changed: &mut Vec<PathBuf>,
    seen: &mut Seen,
) -> Result<(), Error> {
    for end in dir_ends(key).filter(|&end| end >= from) {
        let dir = root.join(&key[..end]);
        match std::fs::create_dir(&dir) {
            Ok(()) => changed.push(dir.parent().unwrap_or(root).to_path_buf()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                match std::fs::symlink_metadata(&dir) {
                    Ok(meta) => real_dir(key, end, &dir, &meta)?,
                    Err(e) => return Err(Error::io("stat", dir, e)),
                }
            }
            Err(e) => return Err(Error::io("create directory", dir, e)),
        }
        seen.dirs.insert(dir);
    }
    Ok(())
}

/// Renames `temp` to `target`, refusing a `target` that is a symlink. On Linux a new key costs
/// one `renameat2(RENAME_NOREPLACE)` and no `lstat`: only a key that exists is looked at (then
/// renamed over, as everywhere else). Blocking.
fn move_into_place(temp: &Path, target: &Path, key: &str) -> Result<(), Error> {
    let failed = |e| Error::io("rename into place", target, e);
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, temp, CWD, target, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            // EEXIST: the key exists; EINVAL: a file system without the flag. Either way, the
            // portable path below.
            Err(e) if e == rustix::io::Errno::EXIST || e == rustix::io::Errno::INVAL => {}
            Err(e) => return Err(failed(e.into())),
        }
    }
    match std::fs::symlink_metadata(target) {
        Ok(meta) if meta.file_type().is_symlink() => return Err(symlink_error(key, key.len())),
        Ok(_) => {}
        Err(e) if absent(&e) => {}
        Err(e) => return Err(Error::io("stat", target, e)),
    }
    std::fs::rename(temp, target).map_err(failed)
}

impl Drop for LocalUpload {
    /// Dropped without `commit` or `abort`: remove the temp file right away (nothing was
    /// published; a failure here only leaves a temp file for the next `open`).
    fn drop(&mut self) {
        self.file = Temp::Gone;
        if let Some(temp) = &self.temp {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// How many open sinks of this process use each destination root.
static OPEN_ROOTS: LazyLock<Mutex<HashMap<PathBuf, usize>>> = LazyLock::new(Default::default);

/// This process's claim on `<root>/.dsfiles/lock`.
struct LockGuard {
    root: PathBuf,
    lock_file: PathBuf,
}

impl LockGuard {
    /// Registers this sink; returns whether stale temp files may be removed (no other sink of
    /// this process and no other live process is using the destination).
    fn acquire(root: &Path) -> Result<(LockGuard, bool), Error> {
        let lock_file = root.join(STATE_DIR).join(LOCK_FILE);
        let guard = LockGuard {
            root: root.to_path_buf(),
            lock_file: lock_file.clone(),
        };
        let mut roots = OPEN_ROOTS.lock().unwrap_or_else(|p| p.into_inner());
        let count = roots.entry(root.to_path_buf()).or_insert(0);
        *count += 1;
        if *count > 1 {
            return Ok((guard, false));
        }
        let me = std::process::id();
        if let Ok(text) = std::fs::read_to_string(&lock_file)
            && let Ok(pid) = text.trim().parse::<u32>()
            && pid != me
            && process_alive(pid)
        {
            tracing::warn!(pid, dest = %root.display(), "another dsfiles process seems to write here; temp files left as they are");
            return Ok((guard, false));
        }
        let temp = root.join(STATE_DIR).join(TMP_DIR).join(format!(
            "lock-{}{TMP_SUFFIX}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&temp, format!("{me}\n"))
            .and_then(|()| std::fs::rename(&temp, &lock_file))
            .map_err(|e| Error::io("write lock file", &lock_file, e))?;
        Ok((guard, true))
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let mut roots = OPEN_ROOTS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = roots.get_mut(&self.root) {
            *count -= 1;
            if *count == 0 {
                roots.remove(&self.root);
                let mine = std::fs::read_to_string(&self.lock_file)
                    .is_ok_and(|t| t.trim() == std::process::id().to_string());
                if mine {
                    let _ = std::fs::remove_file(&self.lock_file);
                }
            }
        }
    }
}

/// Best effort: on Linux, whether `/proc/<pid>` exists; elsewhere assume alive (which only
/// means stale temp files wait for a later run).
fn process_alive(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

mod group;
mod temp_file;

#[cfg(test)]
mod tests;
