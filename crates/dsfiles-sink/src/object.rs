//! [`ObjectStoreSink`]: S3, GCS, Azure and in-memory storage through `object_store`.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, MultipartUpload, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, UpdateVersion,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::key::{validate_key, validate_prefix};
use crate::{
    ByteStream, Error, ListEntry, ObjectInfo, ObjectMeta, Precondition, Sink, SinkOptions,
    TaggedEntry, Upload, Version, VersionRepr,
};

/// Object metadata key holding DS's checksum (base64 MD5): `x-amz-meta-dsfilesmd5` on S3,
/// `x-goog-meta-dsfilesmd5` on GCS, `x-ms-meta-dsfilesmd5` on Azure. Letters and digits only:
/// Azure metadata names must be C# identifiers (no `-`), and some HTTP proxies drop header
/// names with `_`.
pub const MD5_METADATA: &str = "dsfilesmd5";
/// Object metadata key holding the SHA-256 (hex); same naming rules as [`MD5_METADATA`].
pub const SHA256_METADATA: &str = "dsfilessha256";

/// Default memory shared by all the uploads of one [`ObjectStoreSink`]: 32 MiB, raised to two
/// parts when `part_size` is larger than 16 MiB (see [`ObjectStoreSink::with_upload_memory`]).
pub const DEFAULT_UPLOAD_MEMORY: usize = 32 * 1024 * 1024;

/// A sink over any [`ObjectStore`], under a key prefix.
///
/// Uploads are buffered up to `part_size`: an object that fits is sent with a single `put` at
/// commit; a larger one becomes a multipart upload (at most `parts_in_flight` parts uploading
/// at once) completed at commit and aborted on `abort`. Either way nothing is visible at the
/// key before `commit`.
///
/// **Memory is bounded per sink, not per upload:** every byte an upload buffers or has in
/// flight is covered by a share of one budget (`upload_memory`, [`DEFAULT_UPLOAD_MEMORY`])
/// shared by all the uploads of this sink and of its clones, and released when the store
/// acknowledges the bytes. `write` waits when the budget is spent. No set of uploads can wait
/// on each other: a part that holds its share never needs more to be sent. One rule for
/// callers: a task that waits in `write` of one upload must not be the only one able to make
/// another of its own uploads progress (one task per upload, as the pipeline does).
#[derive(Clone)]
pub struct ObjectStoreSink {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    description: String,
    options: SinkOptions,
    /// `None`: the default, [`default_upload_memory`] of `options.part_size`.
    upload_memory: Option<usize>,
    budget: Arc<UploadBudget>,
}

impl fmt::Debug for ObjectStoreSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The store itself is not printed: builders and clients may hold credentials.
        f.debug_struct("ObjectStoreSink")
            .field("dest", &self.description)
            .field("options", &self.options)
            .field("upload_memory", &self.budget.total)
            .finish_non_exhaustive()
    }
}

impl ObjectStoreSink {
    /// Wraps `store`; every key is stored under `prefix` (`""` for the store's root).
    /// `description` is what [`Sink::describe`] returns: it must hold no secret.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        description: impl Into<String>,
        options: SinkOptions,
    ) -> Result<ObjectStoreSink, Error> {
        options.validate()?;
        validate_prefix(prefix)?;
        let prefix = Path::parse(prefix).map_err(|e| Error::InvalidDestination {
            dest: prefix.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(ObjectStoreSink {
            store,
            prefix,
            description: description.into(),
            budget: Arc::new(UploadBudget::new(None, options.part_size)?),
            options,
            upload_memory: None,
        })
    }

    /// A fresh, empty in-memory store (object_store's `InMemory`).
    pub fn memory() -> ObjectStoreSink {
        let options = SinkOptions::default();
        ObjectStoreSink {
            store: Arc::new(object_store::memory::InMemory::new()),
            prefix: Path::default(),
            description: "memory://".to_owned(),
            budget: Arc::new(UploadBudget::default_for(options.part_size)),
            options,
            upload_memory: None,
        }
    }

    /// The same store with other tuning options (and a fresh upload budget).
    pub fn with_options(mut self, options: SinkOptions) -> Result<ObjectStoreSink, Error> {
        options.validate()?;
        self.budget = Arc::new(UploadBudget::new(self.upload_memory, options.part_size)?);
        self.options = options;
        Ok(self)
    }

    /// The same store with `bytes` of memory shared by all its uploads (the `upload_memory`
    /// destination option): at least one part (`part_size`), at most 1 TiB. Buffered parts and
    /// parts in flight count; state files written with `put_small` do not.
    pub fn with_upload_memory(mut self, bytes: usize) -> Result<ObjectStoreSink, Error> {
        self.budget = Arc::new(UploadBudget::new(Some(bytes), self.options.part_size)?);
        self.upload_memory = Some(bytes);
        Ok(self)
    }

    /// The memory shared by all the uploads of this sink, in bytes.
    pub fn upload_memory(&self) -> usize {
        self.budget.total
    }

    /// The underlying store (tests use it to look at raw objects and attributes).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The full object path of `key` in the underlying store.
    pub fn path(&self, key: &str) -> Result<Path, Error> {
        validate_key(key)?;
        let mut full = self.prefix.as_ref().to_owned();
        if !full.is_empty() {
            full.push('/');
        }
        full.push_str(key);
        Path::parse(&full).map_err(|e| Error::InvalidKey {
            key: key.escape_debug().to_string(),
            reason: match e {
                object_store::path::Error::EmptySegment { .. } => "empty path component",
                _ => "not a valid object path",
            },
        })
    }

    fn backend(&self, op: &'static str, key: &str, source: object_store::Error) -> Error {
        match source {
            object_store::Error::NotFound { .. } => Error::NotFound {
                key: key.to_owned(),
            },
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => Error::PreconditionFailed {
                key: key.to_owned(),
            },
            source => Error::Backend {
                op,
                store: self.description.clone(),
                key: key.to_owned(),
                source: Box::new(source),
            },
        }
    }

    /// One item of a listing of `prefix`, as a key of this sink (`None` when outside it).
    fn listed(
        &self,
        prefix: &str,
        item: object_store::Result<object_store::ObjectMeta>,
    ) -> Option<Result<TaggedEntry, Error>> {
        match item {
            Ok(meta) => self.relative_key(&meta.location).map(|key| {
                Ok(TaggedEntry {
                    key,
                    size: meta.size,
                    tag: meta.e_tag,
                })
            }),
            Err(e) => Some(Err(self.backend("list", prefix, e))),
        }
    }

    fn relative_key(&self, location: &Path) -> Option<String> {
        let mut parts = location.prefix_match(&self.prefix)?;
        let first = parts.next()?;
        let mut key = first.as_ref().to_owned();
        for part in parts {
            key.push('/');
            key.push_str(part.as_ref());
        }
        Some(key)
    }
}

fn attributes(meta: &ObjectMeta) -> Attributes {
    let mut attrs = Attributes::new();
    if let Some(ct) = &meta.content_type {
        attrs.insert(Attribute::ContentType, AttributeValue::from(ct.clone()));
    }
    if let Some(md5) = &meta.md5_base64 {
        attrs.insert(
            Attribute::Metadata(MD5_METADATA.into()),
            AttributeValue::from(md5.clone()),
        );
    }
    if let Some(sha) = &meta.sha256_hex {
        attrs.insert(
            Attribute::Metadata(SHA256_METADATA.into()),
            AttributeValue::from(sha.clone()),
        );
    }
    attrs
}

fn meta_from_attributes(attrs: &Attributes) -> ObjectMeta {
    let get = |a: Attribute| attrs.get(&a).map(|v| v.as_ref().to_owned());
    ObjectMeta {
        content_type: get(Attribute::ContentType),
        md5_base64: get(Attribute::Metadata(MD5_METADATA.into())),
        sha256_hex: get(Attribute::Metadata(SHA256_METADATA.into())),
    }
}

#[async_trait::async_trait]
impl Sink for ObjectStoreSink {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn create(&self, key: &str, meta: &ObjectMeta) -> Result<Box<dyn Upload>, Error> {
        let path = self.path(key)?;
        Ok(Box::new(ObjectUpload {
            sink: self.clone(),
            key: key.to_owned(),
            path,
            attributes: attributes(meta),
            part: Part::default(),
            state: State::Single,
        }))
    }

    async fn get(&self, key: &str) -> Result<ByteStream, Error> {
        let path = self.path(key)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.backend("get", key, e))?;
        let sink = self.clone();
        let key = key.to_owned();
        Ok(result
            .into_stream()
            .map_err(move |e| sink.backend("read", &key, e))
            .boxed())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, Error> {
        let path = self.path(key)?;
        let size = self
            .store
            .head(&path)
            .await
            .map_err(|e| self.backend("head", key, e))?
            .size;
        if range.start > size || range.start > range.end {
            return Err(Error::InvalidRange {
                key: key.to_owned(),
                start: range.start,
                end: range.end,
                size,
            });
        }
        let end = range.end.min(size);
        if range.start == end {
            return Ok(Bytes::new());
        }
        self.store
            .get_range(&path, range.start..end)
            .await
            .map_err(|e| self.backend("get_range", key, e))
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, Error> {
        let path = self.path(key)?;
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.backend("head", key, e)),
        }
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, Error> {
        let path = self.path(key)?;
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self.store.get_opts(&path, options).await {
            Ok(result) => Ok(Some(ObjectInfo {
                size: result.meta.size,
                meta: meta_from_attributes(&result.attributes),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.backend("head", key, e)),
        }
    }

    async fn put_small(&self, key: &str, bytes: Bytes) -> Result<(), Error> {
        let path = self.path(key)?;
        self.store
            .put_opts(&path, PutPayload::from(bytes), PutOptions::default())
            .await
            .map(drop)
            .map_err(|e| self.backend("put", key, e))
    }

    async fn get_small(&self, key: &str) -> Result<Option<Bytes>, Error> {
        let path = self.path(key)?;
        let result = match self.store.get(&path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.backend("get", key, e)),
        };
        result
            .bytes()
            .await
            .map(Some)
            .map_err(|e| self.backend("read", key, e))
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.backend("delete", key, e)),
        }
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, Version)>, Error> {
        let path = self.path(key)?;
        let result = match self.store.get(&path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.backend("get", key, e)),
        };
        let version = object_version(result.meta.e_tag.clone(), result.meta.version.clone());
        let bytes = result
            .bytes()
            .await
            .map_err(|e| self.backend("read", key, e))?;
        Ok(Some((bytes, version)))
    }

    async fn put_if(
        &self,
        key: &str,
        bytes: Bytes,
        precondition: Precondition,
    ) -> Result<Version, Error> {
        let path = self.path(key)?;
        // S3 sends `If-None-Match: *` / `If-Match: <etag>` (object_store's default
        // `S3ConditionalPut::ETagMatch`), GCS `x-goog-if-generation-match` (0 for absent),
        // Azure `If-None-Match: *` / `If-Match`: the store itself decides, atomically.
        let mode = match precondition {
            Precondition::Absent => PutMode::Create,
            Precondition::Matches(version) => PutMode::Update(update_version(key, version)?),
        };
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        let result = self
            .store
            .put_opts(&path, PutPayload::from(bytes), options)
            .await
            .map_err(|e| self.backend("conditional put", key, e))?;
        Ok(object_version(result.e_tag, result.version))
    }

    async fn delete_if(&self, key: &str, version: &Version) -> Result<(), Error> {
        let path = self.path(key)?;
        // object_store has no conditional delete: compare the current version, then delete.
        // Between the two, only a writer that overwrote the object on purpose (a lease broken
        // with `--break-lease` at that very moment) can lose its object; see docs/storage.md.
        let meta = match self.store.head(&path).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::PreconditionFailed {
                    key: key.to_owned(),
                });
            }
            Err(e) => return Err(self.backend("head", key, e)),
        };
        if !same_version(&object_version(meta.e_tag, meta.version), version) {
            return Err(Error::PreconditionFailed {
                key: key.to_owned(),
            });
        }
        self.delete(key).await
    }

    fn list(&self, prefix: &str) -> BoxStream<'_, Result<ListEntry, Error>> {
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        let full = if prefix.is_empty() {
            validate_prefix(prefix).map(|()| self.prefix.clone())
        } else {
            self.path(prefix)
        };
        let full = match full {
            Ok(full) => full,
            Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
        };
        let root = (!full.as_ref().is_empty()).then_some(full.clone());
        let prefix = prefix.to_owned();
        self.store
            .list(root.as_ref())
            .filter_map(move |item| {
                let entry = match item {
                    Ok(meta) if meta.location == full => None,
                    item => self.listed(&prefix, item),
                };
                let entry = entry.map(|r| {
                    r.map(|e| ListEntry {
                        key: e.key,
                        size: e.size,
                    })
                });
                std::future::ready(entry)
            })
            .boxed()
    }

    fn list_after(
        &self,
        prefix: &str,
        offset: &str,
    ) -> Option<BoxStream<'_, Result<TaggedEntry, Error>>> {
        let paths = self.path(prefix.strip_suffix('/').unwrap_or(prefix));
        let (root, offset_path) = match paths.and_then(|root| Ok((root, self.path(offset)?))) {
            Ok(paths) => paths,
            Err(e) => return Some(futures::stream::once(async move { Err(e) }).boxed()),
        };
        let prefix = prefix.to_owned();
        let listed = self
            .store
            .list_with_offset(Some(&root), &offset_path)
            .filter_map(move |item| std::future::ready(self.listed(&prefix, item)));
        Some(listed.boxed())
    }
}

fn object_version(e_tag: Option<String>, version: Option<String>) -> Version {
    Version(VersionRepr::Object { e_tag, version })
}

/// `version` as object_store's `UpdateVersion`; a version of another sink kind is a bug of
/// the caller, reported instead of ignored.
fn update_version(key: &str, version: Version) -> Result<UpdateVersion, Error> {
    match version.0 {
        VersionRepr::Object { e_tag, version } => Ok(UpdateVersion { e_tag, version }),
        VersionRepr::Content(_) => Err(Error::InvalidOption {
            key: key.to_owned(),
            reason: "a local-disk version was given to an object store".into(),
        }),
    }
}

/// Whether the object's current version is `expected`: the generation when the store has one
/// (GCS), else the ETag. An unknown version never matches.
fn same_version(current: &Version, expected: &Version) -> bool {
    match (&current.0, &expected.0) {
        (
            VersionRepr::Object { e_tag, version },
            VersionRepr::Object {
                e_tag: want_tag,
                version: want_version,
            },
        ) => match (version, want_version) {
            (Some(v), Some(w)) => v == w,
            _ => e_tag.is_some() && e_tag == want_tag,
        },
        _ => false,
    }
}

/// The default budget for `part_size`: [`DEFAULT_UPLOAD_MEMORY`], or two parts when larger.
fn default_upload_memory(part_size: usize) -> usize {
    DEFAULT_UPLOAD_MEMORY.max(part_size.saturating_mul(2))
}

/// Largest `upload_memory` accepted.
const MAX_UPLOAD_MEMORY: usize = 1 << 40;

/// The memory shared by all the uploads of one sink, in two pools so that uploads can never
/// wait on each other in a cycle:
///
/// - `parts`: whole part buffers (`part_size` bytes each). A holder fills its part from the
///   caller's chunks, then sends it; the share is released when the store acknowledges the
///   part (or the single put). Sending a part needs nothing more from the budget, so every
///   share in `parts` is eventually released, whatever the other uploads do.
/// - `small`: bytes for objects still small enough for one put, taken chunk by chunk with
///   `try_acquire` only, never awaited. When it is exhausted the upload waits for a whole part
///   instead (holding its small bytes): holders of `parts` never wait on `small`, so the wait
///   graph has no cycle. Small objects share `small` byte by byte instead of taking a whole
///   part each, which keeps many small uploads running side by side.
///
/// Split: `parts = max(1, total / part_size - 1)`, `small = total - parts * part_size`
/// (32 MiB with 8 MiB parts: 3 parts and 8 MiB of small buffers).
#[derive(Debug)]
struct UploadBudget {
    total: usize,
    parts: Arc<Semaphore>,
    small: Arc<Semaphore>,
}

impl UploadBudget {
    /// `total`: `None` for [`default_upload_memory`].
    fn new(total: Option<usize>, part_size: usize) -> Result<UploadBudget, Error> {
        let Some(total) = total else {
            return Ok(UploadBudget::default_for(part_size));
        };
        if total < part_size || total > MAX_UPLOAD_MEMORY {
            return Err(Error::InvalidOption {
                key: "upload_memory".into(),
                reason: format!(
                    "`{total}` bytes is outside {part_size}..={MAX_UPLOAD_MEMORY} \
                     (at least one part of `part_size` bytes)"
                ),
            });
        }
        Ok(UploadBudget::split(total, part_size))
    }

    fn default_for(part_size: usize) -> UploadBudget {
        UploadBudget::split(default_upload_memory(part_size), part_size)
    }

    /// `total >= part_size > 0` (checked by the callers).
    fn split(total: usize, part_size: usize) -> UploadBudget {
        let parts = (total / part_size).saturating_sub(1).max(1);
        let small = total - parts * part_size;
        UploadBudget {
            total,
            parts: Arc::new(Semaphore::new(parts)),
            small: Arc::new(Semaphore::new(small)),
        }
    }
}

/// The budget share covering the bytes of one [`Part`], buffered or in flight; dropping it
/// gives the memory back.
#[derive(Debug, Default)]
enum Claim {
    #[default]
    None,
    /// Bytes of [`UploadBudget::small`], as many as the part holds.
    Bytes(OwnedSemaphorePermit),
    /// One whole part of [`UploadBudget::parts`] (held only to be dropped).
    Part { _permit: OwnedSemaphorePermit },
}

/// The part being filled (or, before any part was sent, the whole object).
#[derive(Debug, Default)]
struct Part {
    chunks: Vec<Bytes>,
    len: usize,
    claim: Claim,
}

enum State {
    /// Nothing sent yet: the object may still fit in a single `put`.
    Single,
    /// A multipart upload is under way.
    Multipart(Multipart),
    /// Committed, aborted or failed.
    Done,
}

struct Multipart {
    upload: Box<dyn MultipartUpload>,
    /// Parts being sent; each task owns its part's [`Claim`] and drops it once acknowledged.
    in_flight: JoinSet<object_store::Result<()>>,
}

impl Multipart {
    /// Waits for the oldest finished part; `None` when nothing is in flight.
    async fn join_next(&mut self) -> Option<object_store::Result<()>> {
        let joined = self.in_flight.join_next().await?;
        Some(joined.unwrap_or_else(|e| Err(object_store::Error::JoinError { source: e })))
    }

    /// Stops the parts in flight and aborts the upload (deletes its parts where the backend
    /// allows).
    async fn abort(mut self) -> object_store::Result<()> {
        self.in_flight.shutdown().await;
        self.upload.abort().await
    }
}

struct ObjectUpload {
    sink: ObjectStoreSink,
    key: String,
    path: Path,
    attributes: Attributes,
    part: Part,
    state: State,
}

impl ObjectUpload {
    /// Covers `n` more bytes of the current part with budget, waiting if it is spent.
    async fn reserve(&mut self, n: usize) {
        let budget = &self.sink.budget;
        if matches!(self.part.claim, Claim::Part { .. }) {
            return;
        }
        if matches!(self.state, State::Single) {
            // Never awaited: see `UploadBudget`.
            let more = u32::try_from(n)
                .ok()
                .and_then(|n| Arc::clone(&budget.small).try_acquire_many_owned(n).ok());
            if let Some(more) = more {
                match &mut self.part.claim {
                    Claim::Bytes(held) => held.merge(more),
                    claim => *claim = Claim::Bytes(more),
                }
                return;
            }
        }
        let part = Arc::clone(&budget.parts)
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("the upload budget's semaphores are never closed"));
        // Replacing the claim gives back the small bytes only now that the part covers them.
        self.part.claim = Claim::Part { _permit: part };
    }

    /// Sends the current part, starting the multipart upload if needed. On failure the
    /// multipart upload is aborted and this upload is done.
    async fn send_part(&mut self) -> Result<(), Error> {
        let part = std::mem::take(&mut self.part);
        if matches!(self.state, State::Single) {
            let options = PutMultipartOptions {
                attributes: self.attributes.clone(),
                ..PutMultipartOptions::default()
            };
            self.state = State::Done;
            let upload = self
                .sink
                .store
                .put_multipart_opts(&self.path, options)
                .await
                .map_err(|e| self.sink.backend("start multipart upload of", &self.key, e))?;
            tracing::debug!(key = %self.key, dest = %self.sink.description, "multipart upload started");
            self.state = State::Multipart(Multipart {
                upload,
                in_flight: JoinSet::new(),
            });
        }
        let State::Multipart(multipart) = &mut self.state else {
            return Err(Error::UploadFailed {
                key: self.key.clone(),
            });
        };
        // At most `parts_in_flight` parts of this object at once. Waiting here holds this
        // part's share, which is fine: the parts awaited need nothing from the budget.
        while multipart.in_flight.len() >= self.sink.options.parts_in_flight {
            if let Some(Err(e)) = multipart.join_next().await {
                return Err(self.fail("upload part of", e).await);
            }
        }
        let sending = multipart.upload.put_part(part.chunks.into_iter().collect());
        let claim = part.claim;
        multipart.in_flight.spawn(async move {
            let result = sending.await;
            drop(claim);
            result
        });
        Ok(())
    }

    /// Aborts the multipart upload after `error` (best effort) and returns the error to report.
    async fn fail(&mut self, op: &'static str, error: object_store::Error) -> Error {
        if let State::Multipart(multipart) = std::mem::replace(&mut self.state, State::Done)
            && let Err(e) = multipart.abort().await
        {
            tracing::warn!(key = %self.key, error = %e, "could not abort a failed multipart upload");
        }
        self.part = Part::default();
        self.sink.backend(op, &self.key, error)
    }
}

#[async_trait::async_trait]
impl Upload for ObjectUpload {
    async fn write(&mut self, mut chunk: Bytes) -> Result<(), Error> {
        let part_size = self.sink.options.part_size;
        while !chunk.is_empty() {
            if matches!(self.state, State::Done) {
                return Err(Error::UploadFailed {
                    key: self.key.clone(),
                });
            }
            // Only before the first part is sent: a full buffer is sent once more bytes show
            // that the object is larger than one part (exactly `part_size` is one put).
            if self.part.len == part_size {
                self.send_part().await?;
            }
            let n = chunk.len().min(part_size - self.part.len);
            self.reserve(n).await;
            self.part.chunks.push(chunk.split_to(n));
            self.part.len += n;
            if self.part.len == part_size && matches!(self.state, State::Multipart(_)) {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), Error> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Single => {
                let part = std::mem::take(&mut self.part);
                let options = PutOptions {
                    attributes: std::mem::take(&mut self.attributes),
                    ..PutOptions::default()
                };
                let payload: PutPayload = part.chunks.into_iter().collect();
                let result = self.sink.store.put_opts(&self.path, payload, options).await;
                // The buffer's share is given back only once the store has the bytes.
                drop(part.claim);
                result
                    .map(drop)
                    .map_err(|e| self.sink.backend("put", &self.key, e))
            }
            State::Multipart(multipart) => {
                self.state = State::Multipart(multipart);
                if self.part.len > 0 {
                    self.send_part().await?;
                }
                let State::Multipart(multipart) = &mut self.state else {
                    return Err(Error::UploadFailed {
                        key: self.key.clone(),
                    });
                };
                while let Some(joined) = multipart.join_next().await {
                    if let Err(e) = joined {
                        return Err(self.fail("upload part of", e).await);
                    }
                }
                if let Err(e) = multipart.upload.complete().await {
                    return Err(self.fail("complete multipart upload of", e).await);
                }
                self.state = State::Done;
                Ok(())
            }
            State::Done => Err(Error::UploadFailed {
                key: self.key.clone(),
            }),
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<(), Error> {
        self.part = Part::default();
        match std::mem::replace(&mut self.state, State::Done) {
            State::Multipart(multipart) => multipart
                .abort()
                .await
                .map_err(|e| self.sink.backend("abort multipart upload of", &self.key, e)),
            State::Single | State::Done => Ok(()),
        }
    }
}

impl Drop for ObjectUpload {
    /// Dropped without `commit` or `abort` (a cancelled task, a panic): nothing was published.
    /// A multipart upload in progress is aborted in the background when a tokio runtime is
    /// available (the only detached task in this crate, best effort by nature); otherwise its
    /// parts stay until the bucket's lifecycle rule for incomplete uploads removes them. Parts
    /// still in flight are cancelled with the `JoinSet`, which gives their memory back.
    fn drop(&mut self) {
        if let State::Multipart(multipart) = std::mem::replace(&mut self.state, State::Done) {
            let key = std::mem::take(&mut self.key);
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(async move {
                        if let Err(e) = multipart.abort().await {
                            tracing::warn!(%key, error = %e, "could not abort a dropped multipart upload");
                        }
                    });
                }
                Err(_) => {
                    tracing::warn!(%key, "multipart upload dropped outside a runtime: parts left for the lifecycle rule");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
