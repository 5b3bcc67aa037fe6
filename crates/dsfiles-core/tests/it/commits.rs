//! A small file gives its download permit back while its upload commits (`fetch::Slot`): on
//! local disk a commit waits for a durability barrier shared by every upload queued with it,
//! and downloads that go on meanwhile are what fills the next one.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dsfiles_core::sink::{
    self, ByteStream, ListEntry, ObjectInfo, ObjectMeta, Precondition, Sink, TaggedEntry, Upload,
    Version,
};
use dsfiles_sim::SimConfig;
use futures::stream::BoxStream;
use tokio::sync::Notify;

use crate::support::env;

/// A sink whose file commits all wait until `together` of them are waiting at once, as a
/// group-commit round that only ends once it is full would; it also counts the uploads being
/// written (created, not yet committing or aborting), at most one per download permit.
#[derive(Debug)]
struct Barrier {
    inner: Arc<dyn Sink>,
    together: usize,
    waiting: AtomicUsize,
    open: AtomicBool,
    opened: Notify,
    writing: AtomicUsize,
    most_writing: AtomicUsize,
}

struct BarrierUpload {
    inner: Box<dyn Upload>,
    barrier: Arc<Barrier>,
    file: bool,
}

impl Barrier {
    fn done_writing(&self, file: bool) {
        if file {
            self.writing.fetch_sub(1, Ordering::SeqCst);
        }
    }

    async fn wait_for_company(&self) {
        if self.waiting.fetch_add(1, Ordering::SeqCst) + 1 >= self.together {
            self.open.store(true, Ordering::SeqCst);
            self.opened.notify_waiters();
        }
        while !self.open.load(Ordering::SeqCst) {
            let opened = self.opened.notified();
            if self.open.load(Ordering::SeqCst) {
                break;
            }
            opened.await;
        }
    }
}

#[async_trait::async_trait]
impl Upload for BarrierUpload {
    async fn write(&mut self, chunk: Bytes) -> Result<(), sink::Error> {
        self.inner.write(chunk).await
    }

    async fn commit(self: Box<Self>) -> Result<(), sink::Error> {
        self.barrier.done_writing(self.file);
        if self.file {
            self.barrier.wait_for_company().await;
        }
        self.inner.commit().await
    }

    async fn abort(self: Box<Self>) -> Result<(), sink::Error> {
        self.barrier.done_writing(self.file);
        self.inner.abort().await
    }
}

/// The sink of the test: `Barrier` around a shared handle, delegating everything else.
#[derive(Debug)]
struct Gate(Arc<Barrier>);

#[async_trait::async_trait]
impl Sink for Gate {
    fn describe(&self) -> String {
        self.0.inner.describe()
    }

    async fn create(&self, key: &str, meta: &ObjectMeta) -> Result<Box<dyn Upload>, sink::Error> {
        let file = !key.starts_with(".dsfiles");
        if file {
            let now = self.0.writing.fetch_add(1, Ordering::SeqCst) + 1;
            self.0.most_writing.fetch_max(now, Ordering::SeqCst);
        }
        match self.0.inner.create(key, meta).await {
            Ok(inner) => Ok(Box::new(BarrierUpload {
                inner,
                barrier: Arc::clone(&self.0),
                file,
            })),
            Err(e) => {
                self.0.done_writing(file);
                Err(e)
            }
        }
    }

    async fn get(&self, key: &str) -> Result<ByteStream, sink::Error> {
        self.0.inner.get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, sink::Error> {
        self.0.inner.get_range(key, range).await
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, sink::Error> {
        self.0.inner.head(key).await
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, sink::Error> {
        self.0.inner.stat(key).await
    }

    async fn put_small(&self, key: &str, bytes: Bytes) -> Result<(), sink::Error> {
        self.0.inner.put_small(key, bytes).await
    }

    async fn get_small(&self, key: &str) -> Result<Option<Bytes>, sink::Error> {
        self.0.inner.get_small(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), sink::Error> {
        self.0.inner.delete(key).await
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, Version)>, sink::Error> {
        self.0.inner.get_versioned(key).await
    }

    async fn put_if(
        &self,
        key: &str,
        bytes: Bytes,
        precondition: Precondition,
    ) -> Result<Version, sink::Error> {
        self.0.inner.put_if(key, bytes, precondition).await
    }

    async fn delete_if(&self, key: &str, version: &Version) -> Result<(), sink::Error> {
        self.0.inner.delete_if(key, version).await
    }

    fn list(&self, prefix: &str) -> BoxStream<'_, Result<ListEntry, sink::Error>> {
        self.0.inner.list(prefix)
    }

    fn list_after(
        &self,
        prefix: &str,
        offset: &str,
    ) -> Option<BoxStream<'_, Result<TaggedEntry, sink::Error>>> {
        self.0.inner.list_after(prefix, offset)
    }
}

#[tokio::test]
async fn small_files_download_while_earlier_ones_await_their_commit() -> anyhow::Result<()> {
    let mut env = env(SimConfig {
        dossiers: 1,
        files_per_dossier: 8..=8,
        max_file_size: 512,
        hostile_filenames: false,
        ..SimConfig::default()
    })
    .await?;
    let jobs = 2;
    // Three commits waiting at once: with each download permit held until its commit returns,
    // at most `jobs` (2) ever wait, and the sync never ends.
    let barrier = Arc::new(Barrier {
        inner: Arc::clone(&env.sink),
        together: jobs + 1,
        waiting: AtomicUsize::new(0),
        open: AtomicBool::new(false),
        opened: Notify::new(),
        writing: AtomicUsize::new(0),
        most_writing: AtomicUsize::new(0),
    });
    env.sink = Arc::new(Gate(Arc::clone(&barrier)));
    let mut opts = env.options();
    opts.jobs = jobs;
    opts.data = Some(dsfiles_core::DataOutput::Off);
    let report = tokio::time::timeout(Duration::from_secs(30), env.sync(opts))
        .await
        .map_err(|_| anyhow::anyhow!("the commits never had company: permits were not lent"))??;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(barrier.open.load(Ordering::SeqCst));
    // Lending a permit never lets more downloads run than `--jobs`.
    let most = barrier.most_writing.load(Ordering::SeqCst);
    assert!((1..=jobs).contains(&most), "{most} uploads written at once");
    env.assert_ground_truth(&[]).await?;
    Ok(())
}
