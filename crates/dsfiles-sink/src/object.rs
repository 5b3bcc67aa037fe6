//! [`ObjectStoreSink`]: S3, GCS, Azure and in-memory storage through `object_store`.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, WriteMultipart,
};

use crate::key::{validate_key, validate_prefix};
use crate::{ByteStream, Error, ListEntry, ObjectInfo, ObjectMeta, Sink, SinkOptions, Upload};

/// Object metadata key holding DS's checksum (base64 MD5): `x-amz-meta-dsfilesmd5` on S3,
/// `x-goog-meta-dsfilesmd5` on GCS, `x-ms-meta-dsfilesmd5` on Azure. Letters and digits only:
/// Azure metadata names must be C# identifiers (no `-`), and some HTTP proxies drop header
/// names with `_`.
pub const MD5_METADATA: &str = "dsfilesmd5";
/// Object metadata key holding the SHA-256 (hex); same naming rules as [`MD5_METADATA`].
pub const SHA256_METADATA: &str = "dsfilessha256";

/// A sink over any [`ObjectStore`], under a key prefix.
///
/// Uploads are buffered up to `part_size`: an object that fits is sent with a single `put` at
/// commit; a larger one becomes a multipart upload (at most `parts_in_flight` parts uploading
/// at once) completed at commit and aborted on `abort`. Either way nothing is visible at the
/// key before `commit`.
#[derive(Clone)]
pub struct ObjectStoreSink {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    description: String,
    options: SinkOptions,
}

impl fmt::Debug for ObjectStoreSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The store itself is not printed: builders and clients may hold credentials.
        f.debug_struct("ObjectStoreSink")
            .field("dest", &self.description)
            .field("options", &self.options)
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
            options,
        })
    }

    /// A fresh, empty in-memory store (object_store's `InMemory`).
    pub fn memory() -> ObjectStoreSink {
        ObjectStoreSink {
            store: Arc::new(object_store::memory::InMemory::new()),
            prefix: Path::default(),
            description: "memory://".to_owned(),
            options: SinkOptions::default(),
        }
    }

    /// The same store with other tuning options.
    pub fn with_options(mut self, options: SinkOptions) -> Result<ObjectStoreSink, Error> {
        options.validate()?;
        self.options = options;
        Ok(self)
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
            source => Error::Backend {
                op,
                store: self.description.clone(),
                key: key.to_owned(),
                source: Box::new(source),
            },
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
            state: State::Buffering {
                chunks: Vec::new(),
                len: 0,
            },
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
                let result = match item {
                    Ok(meta) if meta.location == full => None,
                    Ok(meta) => self.relative_key(&meta.location).map(|key| {
                        Ok(ListEntry {
                            key,
                            size: meta.size,
                        })
                    }),
                    Err(e) => Some(Err(self.backend("list", &prefix, e))),
                };
                std::future::ready(result)
            })
            .boxed()
    }
}

enum State {
    /// Nothing sent yet: the object may still fit in a single `put`.
    Buffering { chunks: Vec<Bytes>, len: usize },
    /// A multipart upload is under way.
    Multipart(WriteMultipart),
    /// Committed or aborted.
    Done,
}

struct ObjectUpload {
    sink: ObjectStoreSink,
    key: String,
    path: Path,
    attributes: Attributes,
    state: State,
}

impl ObjectUpload {
    async fn start_multipart(&mut self) -> Result<(), Error> {
        let State::Buffering { chunks, .. } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Ok(());
        };
        let options = PutMultipartOptions {
            attributes: self.attributes.clone(),
            ..PutMultipartOptions::default()
        };
        let upload = self
            .sink
            .store
            .put_multipart_opts(&self.path, options)
            .await
            .map_err(|e| self.sink.backend("start multipart upload of", &self.key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.sink.options.part_size);
        for chunk in chunks {
            writer.put(chunk);
        }
        tracing::debug!(key = %self.key, dest = %self.sink.description, "multipart upload started");
        self.state = State::Multipart(writer);
        Ok(())
    }
}

#[async_trait::async_trait]
impl Upload for ObjectUpload {
    async fn write(&mut self, chunk: Bytes) -> Result<(), Error> {
        match &mut self.state {
            State::Buffering { chunks, len } => {
                *len += chunk.len();
                chunks.push(chunk);
                // Strictly more than one part: an object of exactly `part_size` is one put.
                if *len > self.sink.options.part_size {
                    self.start_multipart().await?;
                }
                Ok(())
            }
            State::Multipart(writer) => {
                let in_flight = self.sink.options.parts_in_flight;
                writer
                    .wait_for_capacity(in_flight)
                    .await
                    .map_err(|e| self.sink.backend("upload part of", &self.key, e))?;
                writer.put(chunk);
                Ok(())
            }
            State::Done => Err(Error::UploadFailed {
                key: self.key.clone(),
            }),
        }
    }

    async fn commit(mut self: Box<Self>) -> Result<(), Error> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Buffering { chunks, .. } => {
                let options = PutOptions {
                    attributes: std::mem::take(&mut self.attributes),
                    ..PutOptions::default()
                };
                let payload: PutPayload = chunks.into_iter().collect();
                self.sink
                    .store
                    .put_opts(&self.path, payload, options)
                    .await
                    .map(drop)
                    .map_err(|e| self.sink.backend("put", &self.key, e))
            }
            // `finish` aborts the multipart upload itself when a part or the completion fails.
            State::Multipart(writer) => writer.finish().await.map(drop).map_err(|e| {
                self.sink
                    .backend("complete multipart upload of", &self.key, e)
            }),
            State::Done => Ok(()),
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<(), Error> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Multipart(writer) => writer
                .abort()
                .await
                .map_err(|e| self.sink.backend("abort multipart upload of", &self.key, e)),
            State::Buffering { .. } | State::Done => Ok(()),
        }
    }
}

impl Drop for ObjectUpload {
    /// Dropped without `commit` or `abort` (a cancelled task, a panic): nothing was published.
    /// A multipart upload in progress is aborted in the background when a tokio runtime is
    /// available (the only detached task in this crate, best effort by nature); otherwise its
    /// parts stay until the bucket's lifecycle rule for incomplete uploads removes them.
    fn drop(&mut self) {
        if let State::Multipart(writer) = std::mem::replace(&mut self.state, State::Done) {
            let key = std::mem::take(&mut self.key);
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(async move {
                        if let Err(e) = writer.abort().await {
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
