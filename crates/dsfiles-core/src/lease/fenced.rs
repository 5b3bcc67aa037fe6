//! [`FencedSink`]: the run's view of the destination, which stops writing once the run lost
//! its lease.
//!
//! Only writes are fenced (`create` and every upload's `write`/`commit`, `put_small`,
//! `delete`, `put_if`, `delete_if`); reads pass through. An upload checks the fence again at
//! `commit` and aborts instead of publishing, so a download that was running when the lease
//! was lost publishes nothing. What the fence cannot stop is a write already sent to the
//! store when it trips: the window is one renewal period at most (the thief's lease is
//! written, our next renewal sees it), which is why the TTL is four renewal periods.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::sink::{
    ByteStream, Error, ListEntry, ObjectInfo, ObjectMeta, Precondition, Sink, TaggedEntry, Upload,
    Version,
};

/// Set once the run lost its lease; never cleared.
#[derive(Clone, Debug, Default)]
pub struct Fence(Arc<AtomicBool>);

impl Fence {
    pub fn trip(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_tripped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `Err(Fenced)` naming `key` once tripped.
    fn check(&self, key: &str) -> Result<(), Error> {
        if self.is_tripped() {
            Err(Error::Fenced {
                key: key.to_owned(),
            })
        } else {
            Ok(())
        }
    }
}

/// A sink whose writes fail with [`Error::Fenced`] once its [`Fence`] is tripped.
#[derive(Debug)]
pub struct FencedSink {
    inner: Arc<dyn Sink>,
    fence: Fence,
}

impl FencedSink {
    pub fn new(inner: Arc<dyn Sink>, fence: Fence) -> FencedSink {
        FencedSink { inner, fence }
    }
}

#[async_trait::async_trait]
impl Sink for FencedSink {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn create(&self, key: &str, meta: &ObjectMeta) -> Result<Box<dyn Upload>, Error> {
        self.fence.check(key)?;
        let inner = self.inner.create(key, meta).await?;
        Ok(Box::new(FencedUpload {
            inner,
            key: key.to_owned(),
            fence: self.fence.clone(),
        }))
    }

    async fn get(&self, key: &str) -> Result<ByteStream, Error> {
        self.inner.get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, Error> {
        self.inner.get_range(key, range).await
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, Error> {
        self.inner.head(key).await
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, Error> {
        self.inner.stat(key).await
    }

    async fn stat_many(&self, keys: &[&str]) -> Vec<Result<Option<ObjectInfo>, Error>> {
        self.inner.stat_many(keys).await
    }

    async fn put_small(&self, key: &str, bytes: Bytes) -> Result<(), Error> {
        self.fence.check(key)?;
        self.inner.put_small(key, bytes).await
    }

    async fn get_small(&self, key: &str) -> Result<Option<Bytes>, Error> {
        self.inner.get_small(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.fence.check(key)?;
        self.inner.delete(key).await
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, Version)>, Error> {
        self.inner.get_versioned(key).await
    }

    async fn put_if(
        &self,
        key: &str,
        bytes: Bytes,
        precondition: Precondition,
    ) -> Result<Version, Error> {
        self.fence.check(key)?;
        self.inner.put_if(key, bytes, precondition).await
    }

    async fn delete_if(&self, key: &str, version: &Version) -> Result<(), Error> {
        self.fence.check(key)?;
        self.inner.delete_if(key, version).await
    }

    fn list(&self, prefix: &str) -> BoxStream<'_, Result<ListEntry, Error>> {
        self.inner.list(prefix)
    }

    fn list_after(
        &self,
        prefix: &str,
        offset: &str,
    ) -> Option<BoxStream<'_, Result<TaggedEntry, Error>>> {
        self.inner.list_after(prefix, offset)
    }
}

struct FencedUpload {
    inner: Box<dyn Upload>,
    key: String,
    fence: Fence,
}

#[async_trait::async_trait]
impl Upload for FencedUpload {
    async fn write(&mut self, chunk: Bytes) -> Result<(), Error> {
        self.fence.check(&self.key)?;
        self.inner.write(chunk).await
    }

    async fn commit(self: Box<Self>) -> Result<(), Error> {
        if let Err(fenced) = self.fence.check(&self.key) {
            if let Err(e) = self.inner.abort().await {
                tracing::warn!(
                    key = self.key,
                    "cannot abort an upload after losing the lease: {e}"
                );
            }
            return Err(fenced);
        }
        self.inner.commit().await
    }

    async fn abort(self: Box<Self>) -> Result<(), Error> {
        self.inner.abort().await
    }
}
