//! [`LocalSink`]: a directory on local disk, with the same semantics as the object stores.
//!
//! Crash safety: an upload is written to `<root>/.dsfiles/tmp/<uuid>.part`, fsynced, renamed
//! into place (parents created), then the directory is fsynced. A `kill -9` leaves at most
//! temp files, which the next [`LocalSink::open`] removes (see the lock file below).

use std::collections::HashMap;
use std::fmt;
use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};

use crate::key::{validate_key, validate_prefix};
use crate::{
    ByteStream, Error, ListEntry, ObjectInfo, ObjectMeta, STATE_DIR, Sink, SinkOptions, Upload,
};

const TMP_DIR: &str = "tmp";
const LOCK_FILE: &str = "lock";
const TMP_SUFFIX: &str = ".part";
const WRITE_BUFFER: usize = 256 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// A destination directory on local disk.
///
/// Only one process should write to a destination at a time. [`LocalSink::open`] records its
/// pid in `.dsfiles/lock` (best effort, not an exclusive lock): when the lock names a live
/// process other than this one, stale temp files are left alone; otherwise every file under
/// `.dsfiles/tmp/` is a leftover of a killed run (temp names are never reused) and is removed.
pub struct LocalSink {
    root: PathBuf,
    tmp: PathBuf,
    options: SinkOptions,
    _lock: LockGuard,
}

impl fmt::Debug for LocalSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSink")
            .field("root", &self.root)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl LocalSink {
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
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io("create directory", &tmp, e))?;
        let root = root
            .canonicalize()
            .map_err(|e| Error::io("resolve", &root, e))?;
        let tmp = root.join(STATE_DIR).join(TMP_DIR);
        let (lock, clean) = LockGuard::acquire(&root)?;
        let sink = LocalSink {
            root,
            tmp,
            options,
            _lock: lock,
        };
        if clean {
            let removed = sink.cleanup_temp()?;
            if removed > 0 {
                tracing::info!(removed, dest = %sink.root.display(), "removed temp files left by an interrupted run");
            }
        }
        Ok(sink)
    }

    /// The destination directory (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes every temp file under `.dsfiles/tmp/` and returns how many there were. Only
    /// call it when no upload of this destination is in progress: [`LocalSink::open`] does it
    /// when it holds the lock.
    pub fn cleanup_temp(&self) -> Result<usize, Error> {
        let entries =
            std::fs::read_dir(&self.tmp).map_err(|e| Error::io("read directory", &self.tmp, e))?;
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read directory", &self.tmp, e))?;
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove temp file", path, e)),
            }
        }
        Ok(removed)
    }

    fn path(&self, key: &str) -> Result<PathBuf, Error> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    fn new_temp(&self) -> PathBuf {
        self.tmp
            .join(format!("{}{TMP_SUFFIX}", uuid::Uuid::new_v4().simple()))
    }

    async fn start(&self, key: &str) -> Result<LocalUpload, Error> {
        let target = self.path(key)?;
        let temp = self.new_temp();
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await
            .map_err(|e| Error::io("create temp file", &temp, e))?;
        Ok(LocalUpload {
            key: key.to_owned(),
            temp,
            target,
            root: self.root.clone(),
            fsync: self.options.fsync,
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
        })
    }
}

/// How many times `publish` recreates a parent directory removed under it by a concurrent
/// `delete` before giving up.
const RENAME_ATTEMPTS: u32 = 8;

fn absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

#[async_trait::async_trait]
impl Sink for LocalSink {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    async fn create(&self, key: &str, _meta: &ObjectMeta) -> Result<Box<dyn Upload>, Error> {
        Ok(Box::new(self.start(key).await?))
    }

    async fn get(&self, key: &str) -> Result<ByteStream, Error> {
        let path = self.path(key)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if absent(&e) => return Err(Error::NotFound { key: key.into() }),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let is_file = file
            .metadata()
            .await
            .map_err(|e| Error::io("stat", &path, e))?
            .is_file();
        if !is_file {
            return Err(Error::NotFound { key: key.into() });
        }
        Ok(
            tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK)
                .map_err(move |e| Error::io("read", path.clone(), e))
                .boxed(),
        )
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, Error> {
        let path = self.path(key)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if absent(&e) => return Err(Error::NotFound { key: key.into() }),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let size = file
            .metadata()
            .await
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
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
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(ObjectInfo {
                size: meta.len(),
                meta: ObjectMeta::default(),
            })),
            Ok(_) => Ok(None),
            Err(e) if absent(&e) => Ok(None),
            Err(e) => Err(Error::io("stat", path, e)),
        }
    }

    async fn put_small(&self, key: &str, bytes: Bytes) -> Result<(), Error> {
        let mut upload = Box::new(self.start(key).await?);
        upload.write(bytes).await?;
        upload.commit().await
    }

    async fn get_small(&self, key: &str) -> Result<Option<Bytes>, Error> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if absent(&e) => Ok(None),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if absent(&e) => return Ok(()),
            Err(e) => return Err(Error::io("delete", path, e)),
        }
        // Like an object store, a directory exists only while it holds objects: remove the
        // parents that became empty (never the root; `remove_dir` fails on a non-empty one).
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root
                || !d.starts_with(&self.root)
                || tokio::fs::remove_dir(d).await.is_err()
            {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    fn list(&self, prefix: &str) -> BoxStream<'_, Result<ListEntry, Error>> {
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix).to_owned();
        if let Err(e) = validate_prefix(&prefix) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let root = self.root.clone();
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
/// files, not symlinks) as a key relative to `root`.
fn walk(root: &Path, prefix: &str, tx: &tokio::sync::mpsc::Sender<Result<ListEntry, Error>>) {
    let start = if prefix.is_empty() {
        root.to_path_buf()
    } else {
        root.join(prefix)
    };
    let internal_tmp = root.join(STATE_DIR).join(TMP_DIR);
    let internal_lock = root.join(STATE_DIR).join(LOCK_FILE);
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
            if path == internal_tmp || path == internal_lock {
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
            let size = match std::fs::metadata(&path) {
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
    temp: PathBuf,
    target: PathBuf,
    root: PathBuf,
    fsync: bool,
    /// `None` once committed or aborted.
    file: Option<BufWriter<tokio::fs::File>>,
}

#[async_trait::async_trait]
impl Upload for LocalUpload {
    async fn write(&mut self, chunk: Bytes) -> Result<(), Error> {
        let Some(file) = self.file.as_mut() else {
            return Err(Error::UploadFailed {
                key: self.key.clone(),
            });
        };
        file.write_all(&chunk)
            .await
            .map_err(|e| Error::io("write temp file", &self.temp, e))
    }

    async fn commit(mut self: Box<Self>) -> Result<(), Error> {
        let Some(mut file) = self.file.take() else {
            return Err(Error::UploadFailed {
                key: self.key.clone(),
            });
        };
        let result = self.publish(&mut file).await;
        drop(file);
        if result.is_err() {
            let _ = tokio::fs::remove_file(&self.temp).await;
        }
        result
    }

    async fn abort(mut self: Box<Self>) -> Result<(), Error> {
        drop(self.file.take());
        match tokio::fs::remove_file(&self.temp).await {
            Ok(()) => Ok(()),
            Err(e) if absent(&e) => Ok(()),
            Err(e) => Err(Error::io("remove temp file", &self.temp, e)),
        }
    }
}

impl LocalUpload {
    async fn publish(&self, file: &mut BufWriter<tokio::fs::File>) -> Result<(), Error> {
        file.flush()
            .await
            .map_err(|e| Error::io("write temp file", &self.temp, e))?;
        if self.fsync {
            file.get_mut()
                .sync_all()
                .await
                .map_err(|e| Error::io("fsync", &self.temp, e))?;
        }
        let parent = self.target.parent().unwrap_or(&self.root);
        // `delete` removes directories it leaves empty, so a concurrent delete in the same
        // directory can remove `parent` between `create_dir_all` and `rename`: recreate it and
        // rename again (bounded; the temp file is still ours, nothing was published).
        let mut attempt = 0;
        loop {
            attempt += 1;
            match tokio::fs::create_dir_all(parent).await {
                Ok(()) => {}
                Err(e) if absent(&e) && attempt < RENAME_ATTEMPTS => continue,
                Err(e) => return Err(Error::io("create directory", parent, e)),
            }
            match tokio::fs::rename(&self.temp, &self.target).await {
                Ok(()) => break,
                Err(e) if absent(&e) && attempt < RENAME_ATTEMPTS && self.temp.exists() => continue,
                Err(e) => return Err(Error::io("rename into place", &self.target, e)),
            }
        }
        if self.fsync {
            let dir = parent.to_path_buf();
            tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
                .await
                .map_err(|e| Error::io("fsync", parent, std::io::Error::other(e)))?
                .map_err(|e| Error::io("fsync", parent, e))?;
        }
        Ok(())
    }
}

impl Drop for LocalUpload {
    /// Dropped without `commit` or `abort`: remove the temp file right away (nothing was
    /// published; a failure here only leaves a temp file for the next `open`).
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
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

#[cfg(test)]
mod tests;
