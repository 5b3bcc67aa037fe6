//! dsfiles-sink owns the destination: it turns a destination URL into storage (local disk, S3,
//! GCS, Azure or memory) and publishes objects atomically, so that nothing is ever visible at a
//! key before its upload is committed, and nothing is ever written outside the destination.
//!
//! **Invariant:** this crate knows nothing about DS and never decides what to sync; it does not
//! verify checksums either (the caller hashes bytes on their way in and decides whether to
//! `commit` or `abort`). Only [`open`] reads the process environment; everything else takes its
//! configuration as arguments.
//!
//! ```
//! # async fn demo() -> Result<(), dsfiles_sink::Error> {
//! use dsfiles_sink::{ObjectMeta, Sink};
//! let sink = dsfiles_sink::memory();
//! let mut upload = sink.create("1/champ/a.pdf", &ObjectMeta::default()).await?;
//! upload.write(bytes::Bytes::from_static(b"%PDF")).await?;
//! assert_eq!(sink.head("1/champ/a.pdf").await?, None); // not visible before commit
//! upload.commit().await?;
//! assert_eq!(sink.head("1/champ/a.pdf").await?, Some(4));
//! # Ok(()) }
//! ```

mod error;
mod key;
mod local;
mod object;
mod open;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;

/// Stats in flight at once in [`Sink::stat_many`]'s default.
const STAT_CONCURRENCY: usize = 8;

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use futures::stream::BoxStream;

pub use error::Error;
pub use key::validate_key;
pub use local::{LocalSink, TMP_SHARDS};
pub use object::{DEFAULT_UPLOAD_MEMORY, MD5_METADATA, ObjectStoreSink, SHA256_METADATA};
pub use open::{DSFILES_CREDENTIALS_ENV, open, open_with_env};
pub use tls::install_crypto_provider;

/// The directory (key prefix) where dsfiles keeps its own state: manifest, sync point, leases
/// and, on local disk, temporary files and the lock files. Nothing else lives there.
pub const STATE_DIR: &str = ".dsfiles";

/// Default multipart part size: 8 MiB.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// Smallest part size accepted (S3 and GCS reject smaller non-final parts).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Largest part size accepted (S3's limit).
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// Default number of parts uploaded concurrently for one object.
pub const DEFAULT_PARTS_IN_FLIGHT: usize = 2;

/// A stream of object bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes, Error>>;

/// Where dsfiles writes files. Implementations: [`LocalSink`] and [`ObjectStoreSink`].
///
/// Keys are relative, `/`-separated, and checked by [`validate_key`] on every call.
#[async_trait::async_trait]
pub trait Sink: Send + Sync + fmt::Debug {
    /// `scheme://bucket/prefix` or the local path; never credentials or query strings.
    fn describe(&self) -> String;

    /// Starts writing `key`. Nothing is visible at `key` until [`Upload::commit`].
    async fn create(&self, key: &str, meta: &ObjectMeta) -> Result<Box<dyn Upload>, Error>;

    /// Streams the object at `key`; [`Error::NotFound`] when absent.
    async fn get(&self, key: &str) -> Result<ByteStream, Error>;

    /// Bytes `range` of the object at `key` (the end is clamped to the object's size).
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, Error>;

    /// The size of the object at `key`, `None` when absent.
    async fn head(&self, key: &str) -> Result<Option<u64>, Error>;

    /// Size plus the attributes stored with the object, where the backend keeps them.
    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, Error>;

    /// [`Sink::stat`] of each of `keys`, in order, asked together: local disk answers them
    /// in one trip to its blocking threads (a sync checks every new key of a dossier before
    /// writing it); the default asks `stat` for a few at a time.
    async fn stat_many(&self, keys: &[&str]) -> Vec<Result<Option<ObjectInfo>, Error>> {
        use futures::StreamExt as _;
        let each: Vec<_> = keys.iter().map(|key| self.stat(key)).collect();
        futures::stream::iter(each)
            .buffered(STAT_CONCURRENCY)
            .collect()
            .await
    }

    /// Atomically replaces the object at `key` (for small state files such as the manifest).
    async fn put_small(&self, key: &str, bytes: Bytes) -> Result<(), Error>;

    /// The whole object at `key`, `None` when absent.
    async fn get_small(&self, key: &str) -> Result<Option<Bytes>, Error>;

    /// Deletes the object at `key`; deleting an absent object succeeds.
    async fn delete(&self, key: &str) -> Result<(), Error>;

    /// The whole object at `key` with its [`Version`], `None` when absent: what a later
    /// [`Sink::put_if`] or [`Sink::delete_if`] compares against.
    async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, Version)>, Error>;

    /// Writes `bytes` at `key` only if `precondition` holds at the time of the write, as one
    /// atomic step; otherwise [`Error::PreconditionFailed`] and nothing changes. Returns the
    /// new version. For small state objects (the destination lease), like `put_small`.
    async fn put_if(
        &self,
        key: &str,
        bytes: Bytes,
        precondition: Precondition,
    ) -> Result<Version, Error>;

    /// Deletes the object at `key` only if it is still at `version`; otherwise (changed or
    /// absent) [`Error::PreconditionFailed`]. Atomic on local disk; on object stores the
    /// version is checked right before an unconditional delete (object_store has no
    /// conditional delete), see docs/storage.md.
    async fn delete_if(&self, key: &str, version: &Version) -> Result<(), Error>;

    /// Every object strictly under `prefix` (`""` for everything), as keys relative to the
    /// destination, in no particular order. Uncommitted uploads never appear.
    fn list(&self, prefix: &str) -> BoxStream<'_, Result<ListEntry, Error>>;

    /// The objects under `prefix` whose keys sort after `offset` (a key), in byte order of
    /// their keys, each with its entity tag; `None` where the backend cannot list that way
    /// (local disk, the default). One request per 1,000 keys on object stores, so that a
    /// range of keys is checked without reading its objects (`dsfiles-core`'s segments).
    fn list_after(
        &self,
        _prefix: &str,
        _offset: &str,
    ) -> Option<BoxStream<'_, Result<TaggedEntry, Error>>> {
        None
    }
}

/// One object being written. Dropping it without `commit` publishes nothing.
#[async_trait::async_trait]
pub trait Upload: Send {
    /// Appends `chunk`. May wait while earlier parts are uploaded (bounded memory).
    async fn write(&mut self, chunk: Bytes) -> Result<(), Error>;
    /// Publishes the object atomically at its key.
    async fn commit(self: Box<Self>) -> Result<(), Error>;
    /// Discards everything written; nothing is left behind (no temp file, no multipart parts).
    async fn abort(self: Box<Self>) -> Result<(), Error>;
}

/// The version of an object as the backend identifies it: an entity tag and/or a generation
/// on object stores, a digest of the content on local disk. Opaque: only meaningful to the
/// sink that returned it, for [`Sink::put_if`] and [`Sink::delete_if`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version(pub(crate) VersionRepr);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VersionRepr {
    /// object_store's `UpdateVersion`: S3 and Azure compare the ETag, GCS the generation.
    Object {
        e_tag: Option<String>,
        version: Option<String>,
    },
    /// SHA-256 of the file's content (local disk).
    Content([u8; 32]),
}

/// The condition of a [`Sink::put_if`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// No object exists at the key (create-if-absent).
    Absent,
    /// The object at the key is still at this version (compare-and-swap).
    Matches(Version),
}

/// What is stored alongside an object's bytes, where the backend supports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub content_type: Option<String>,
    /// DS's checksum: base64 of the MD5 digest.
    pub md5_base64: Option<String>,
    pub sha256_hex: Option<String>,
}

/// What [`Sink::stat`] returns: the size, plus the [`ObjectMeta`] the backend kept (local disk
/// keeps none; object stores keep the content type and the [`MD5_METADATA`] and
/// [`SHA256_METADATA`] metadata).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub meta: ObjectMeta,
}

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListEntry {
    pub key: String,
    pub size: u64,
}

/// One object listed by [`Sink::list_after`]: with the backend's entity tag, which changes
/// whenever the object is replaced (`None` if the backend gave none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedEntry {
    pub key: String,
    pub size: u64,
    pub tag: Option<String>,
}

/// Tuning shared by every sink. Set from `--dest-option` keys `part_size`, `parts_in_flight`,
/// `fsync` and `direct_io` (see [`open`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkOptions {
    /// Objects up to this size are sent with one request; larger ones as parts of this size.
    pub part_size: usize,
    /// Parts of one object uploaded concurrently, within the memory all uploads of the sink
    /// share (`upload_memory`, [`DEFAULT_UPLOAD_MEMORY`]).
    pub parts_in_flight: usize,
    /// Local disk only: fsync each file before its rename, and the directories changed before
    /// the next `put_small` returns.
    pub fsync: bool,
    /// Local disk on Linux, with `fsync` only: write files with `O_DIRECT`, straight to the disk
    /// instead of through the page cache (buffered writes where the file system refuses it).
    pub direct_io: bool,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            part_size: DEFAULT_PART_SIZE,
            parts_in_flight: DEFAULT_PARTS_IN_FLIGHT,
            fsync: true,
            direct_io: true,
        }
    }
}

impl SinkOptions {
    /// Checks the bounds of every field.
    pub fn validate(&self) -> Result<(), Error> {
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(Error::InvalidOption {
                key: "part_size".into(),
                reason: format!(
                    "`{}` bytes is outside {MIN_PART_SIZE}..={MAX_PART_SIZE}",
                    self.part_size
                ),
            });
        }
        if !(1..=64).contains(&self.parts_in_flight) {
            return Err(Error::InvalidOption {
                key: "parts_in_flight".into(),
                reason: format!("`{}` is outside 1..=64", self.parts_in_flight),
            });
        }
        Ok(())
    }
}

/// A fresh, empty in-memory sink (object_store's `InMemory`), for tests and demos.
pub fn memory() -> std::sync::Arc<dyn Sink> {
    std::sync::Arc::new(ObjectStoreSink::memory())
}
