use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

#[test]
fn attributes_round_trip() {
    let meta = ObjectMeta {
        content_type: Some("application/pdf".into()),
        md5_base64: Some("1B2M2Y8AsgTpgAmY7PhCfg==".into()),
        sha256_hex: Some("e3b0".into()),
    };
    assert_eq!(meta_from_attributes(&attributes(&meta)), meta);
    assert_eq!(
        meta_from_attributes(&attributes(&ObjectMeta::default())),
        ObjectMeta::default()
    );
}

#[test]
fn keys_map_under_the_prefix_and_back() {
    let sink = ObjectStoreSink::new(
        Arc::new(object_store::memory::InMemory::new()),
        "archive/2024",
        "memory://archive/2024",
        SinkOptions::default(),
    )
    .unwrap();
    let path = sink.path("12/champ/a b.pdf").unwrap();
    assert_eq!(path.as_ref(), "archive/2024/12/champ/a b.pdf");
    assert_eq!(
        sink.relative_key(&path).as_deref(),
        Some("12/champ/a b.pdf")
    );
    assert_eq!(sink.relative_key(&Path::from("archive/2025/x")), None);
    assert!(matches!(sink.path("../x"), Err(Error::InvalidKey { .. })));
}

#[test]
fn debug_shows_no_store_internals() {
    let sink = ObjectStoreSink::memory();
    assert_eq!(sink.describe(), "memory://");
    let debug = format!("{sink:?}");
    assert!(
        debug.starts_with("ObjectStoreSink { dest: \"memory://\""),
        "{debug}"
    );
}

#[test]
fn options_are_validated() {
    let small = SinkOptions {
        part_size: 1024,
        ..SinkOptions::default()
    };
    assert!(matches!(
        ObjectStoreSink::memory().with_options(small),
        Err(Error::InvalidOption { .. })
    ));
    let none_in_flight = SinkOptions {
        parts_in_flight: 0,
        ..SinkOptions::default()
    };
    assert!(
        ObjectStoreSink::memory()
            .with_options(none_in_flight)
            .is_err()
    );
}

const MIB: usize = 1024 * 1024;

#[test]
fn the_budget_is_split_into_parts_and_small_buffers() {
    #[track_caller]
    fn check(total: Option<usize>, part_size: usize, expected: (usize, usize, usize)) {
        let budget = UploadBudget::new(total, part_size).expect("valid budget");
        let actual = (
            budget.total / MIB,
            budget.parts.available_permits(),
            budget.small.available_permits() / MIB,
        );
        assert_eq!(actual, expected, "total, whole parts, small MiB");
    }
    check(None, 8 * MIB, (32, 3, 8));
    check(None, 5 * MIB, (32, 5, 7));
    check(None, 20 * MIB, (40, 1, 20));
    check(Some(8 * MIB), 8 * MIB, (8, 1, 0));
    check(Some(12 * MIB), 8 * MIB, (12, 1, 4));
    check(Some(64 * MIB), 8 * MIB, (64, 7, 8));

    for bad in [MIB, 8 * MIB - 1, MAX_UPLOAD_MEMORY + 1] {
        assert!(
            matches!(
                ObjectStoreSink::memory().with_upload_memory(bad),
                Err(Error::InvalidOption { ref key, .. }) if key == "upload_memory"
            ),
            "{bad}"
        );
    }
    let sink = ObjectStoreSink::memory()
        .with_upload_memory(16 * MIB)
        .expect("16 MiB");
    assert_eq!(sink.upload_memory(), 16 * MIB);
    // A larger part size with the budget set explicitly below it is rejected, not raised.
    let big_parts = SinkOptions {
        part_size: 20 * MIB,
        ..SinkOptions::default()
    };
    assert!(sink.clone().with_options(big_parts).is_err());
    assert_eq!(
        ObjectStoreSink::memory()
            .with_options(big_parts)
            .expect("default budget follows the part size")
            .upload_memory(),
        40 * MIB
    );
}

/// Counts what [`SlowStore`] has been given and acknowledged.
#[derive(Debug, Default)]
struct Counters {
    /// Bytes the store has acknowledged (parts and single puts).
    acked: AtomicUsize,
    /// Bytes handed to the store and not yet acknowledged, and the highest value seen.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Parts started; `put_part` fails from this many on when `fail_from_part` is set.
    parts: AtomicUsize,
    fail_from_part: Option<usize>,
}

impl Counters {
    fn start(&self, n: usize) {
        let now = self.in_flight.fetch_add(n, Ordering::SeqCst) + n;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
    }

    fn finish(&self, n: usize) {
        self.in_flight.fetch_sub(n, Ordering::SeqCst);
        self.acked.fetch_add(n, Ordering::SeqCst);
    }
}

/// Scheduler turns a request spends "on the network".
const NETWORK_TURNS: usize = 8;

async fn network() {
    for _ in 0..NETWORK_TURNS {
        tokio::task::yield_now().await;
    }
}

/// An `InMemory` store whose writes take a few scheduler turns, like requests on a network,
/// and which counts the bytes it was given and acknowledged.
#[derive(Debug)]
struct SlowStore {
    inner: object_store::memory::InMemory,
    counters: Arc<Counters>,
}

impl SlowStore {
    fn new(fail_from_part: Option<usize>) -> SlowStore {
        SlowStore {
            inner: object_store::memory::InMemory::new(),
            counters: Arc::new(Counters {
                fail_from_part,
                ..Counters::default()
            }),
        }
    }
}

impl fmt::Display for SlowStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlowStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for SlowStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        let n = payload.content_length();
        self.counters.start(n);
        network().await;
        let result = self.inner.put_opts(location, payload, opts).await;
        self.counters.finish(n);
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(SlowUpload {
            upload,
            counters: Arc::clone(&self.counters),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[derive(Debug)]
struct SlowUpload {
    upload: Box<dyn MultipartUpload>,
    counters: Arc<Counters>,
}

#[async_trait::async_trait]
impl MultipartUpload for SlowUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        let n = data.content_length();
        let index = self.counters.parts.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .counters
            .fail_from_part
            .is_some_and(|from| index >= from);
        let sending = self.upload.put_part(data);
        let counters = Arc::clone(&self.counters);
        counters.start(n);
        Box::pin(async move {
            network().await;
            let result = if failing {
                Err(object_store::Error::Generic {
                    store: "SlowStore",
                    source: "part rejected by the test".into(),
                })
            } else {
                sending.await
            };
            counters.finish(n);
            result
        })
    }

    async fn complete(&mut self) -> object_store::Result<object_store::PutResult> {
        network().await;
        self.upload.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.upload.abort().await
    }
}

/// Deterministic, incompressible-enough bytes for object `seed`.
fn content(seed: usize, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(131) ^ (i >> 9)) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Object sizes: four objects of several 5 MiB parts (one ending exactly on a part), one of
/// exactly one part (a single put), and small ones.
const SIZES: [usize; 10] = [
    17 * MIB + 12_345,
    15 * MIB,
    12 * MIB + 1,
    16 * MIB,
    5 * MIB,
    3 * MIB + 7,
    700 * 1024,
    64 * 1024,
    4096,
    0,
];
/// Write size: divides the part size, so that a write never straddles two parts.
const CHUNK: usize = 512 * 1024;

/// The peak of bytes held by the sink (accepted by `write`, not yet acknowledged by the store)
/// and the peak in flight, while all of [`SIZES`] are uploaded at once in `upload_memory`.
/// Checks that every object arrives byte-exact.
async fn peaks(upload_memory: usize) -> (usize, usize) {
    let store = Arc::new(SlowStore::new(None));
    let counters = Arc::clone(&store.counters);
    let sink = ObjectStoreSink::new(
        store,
        "",
        "slow://",
        SinkOptions {
            part_size: 5 * MIB,
            ..SinkOptions::default()
        },
    )
    .expect("sink")
    .with_upload_memory(upload_memory)
    .expect("budget");
    let written = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut uploads = JoinSet::new();
    for (seed, size) in SIZES.into_iter().enumerate() {
        let (sink, written, peak, counters) = (
            sink.clone(),
            Arc::clone(&written),
            Arc::clone(&peak),
            Arc::clone(&counters),
        );
        uploads.spawn(async move {
            let key = format!("{seed}/object.bin");
            let bytes = content(seed, size);
            let mut upload = sink.create(&key, &ObjectMeta::default()).await?;
            for chunk in bytes.chunks(CHUNK) {
                upload.write(bytes.slice_ref(chunk)).await?;
                // Bytes held only grow in `write`: sampling right after each one sees the peak
                // (one thread, so nothing runs between the write and the sample).
                let held = written.fetch_add(chunk.len(), Ordering::SeqCst) + chunk.len()
                    - counters.acked.load(Ordering::SeqCst);
                peak.fetch_max(held, Ordering::SeqCst);
                // The next chunk arrives later, as from a download.
                tokio::task::yield_now().await;
            }
            upload.commit().await?;
            Ok::<_, Error>((key, bytes))
        });
    }
    let all = tokio::time::timeout(std::time::Duration::from_secs(60), uploads.join_all())
        .await
        .expect("uploads finish (a deadlock would hang here)");
    for result in all {
        let (key, bytes) = result.expect("upload");
        let stored = sink.get_small(&key).await.expect("read").expect("stored");
        assert!(stored == bytes, "`{key}` differs after upload");
    }
    assert_eq!(
        sink.budget.parts.available_permits(),
        (upload_memory / (5 * MIB)).saturating_sub(1).max(1),
        "every part's share is back"
    );
    (
        peak.load(Ordering::SeqCst),
        counters.max_in_flight.load(Ordering::SeqCst),
    )
}

#[tokio::test]
async fn memory_stays_within_the_budget_whatever_the_number_of_uploads() {
    let budget = 15 * MIB;
    let (held, in_flight) = peaks(budget).await;
    assert!(
        held <= budget,
        "held {held} bytes with a budget of {budget}"
    );
    assert!(in_flight <= budget, "{in_flight} bytes in flight");
    assert!(held > budget / 2, "the budget was not even used: {held}");

    // The same uploads with room to spare hold much more: the limit above is what held them.
    let (unbounded, _) = peaks(1024 * MIB).await;
    assert!(
        unbounded > 2 * budget,
        "the workload does not need a budget ({unbounded} bytes)"
    );
}

#[tokio::test]
async fn a_budget_of_one_part_still_lets_every_upload_finish() {
    let (held, _) = peaks(5 * MIB).await;
    assert!(held <= 5 * MIB, "held {held} bytes");
}

#[tokio::test]
async fn failed_and_aborted_uploads_give_their_memory_back() {
    let options = SinkOptions {
        part_size: 5 * MIB,
        ..SinkOptions::default()
    };
    let sink = ObjectStoreSink::new(Arc::new(SlowStore::new(Some(1))), "", "slow://", options)
        .expect("sink");
    let parts = sink.budget.parts.available_permits();
    let small = sink.budget.small.available_permits();
    let data = content(1, 16 * MIB);

    // The second part fails: `write` or `commit` reports it, the upload is over.
    let mut upload = sink
        .create("failing.bin", &ObjectMeta::default())
        .await
        .expect("create");
    let mut failure = None;
    for chunk in data.chunks(CHUNK) {
        if let Err(e) = upload.write(data.slice_ref(chunk)).await {
            failure = Some(e);
            break;
        }
    }
    let failure = match failure {
        Some(e) => e,
        None => upload.commit().await.expect_err("a part failed"),
    };
    assert!(
        matches!(&failure, Error::Backend { op: "upload part of", key, .. } if key == "failing.bin"),
        "{failure:?}"
    );
    assert_eq!(sink.budget.parts.available_permits(), parts);
    assert_eq!(sink.budget.small.available_permits(), small);
    assert_eq!(sink.head("failing.bin").await.expect("head"), None);

    // Aborted in the middle of a multipart upload, with parts in flight.
    let sink = sink.with_options(options).expect("fresh budget");
    let mut upload = sink
        .create("aborted.bin", &ObjectMeta::default())
        .await
        .expect("create");
    upload.write(data.slice(..11 * MIB)).await.expect("write");
    assert!(sink.budget.parts.available_permits() < parts);
    upload.abort().await.expect("abort");
    assert_eq!(sink.budget.parts.available_permits(), parts);
    assert_eq!(sink.budget.small.available_permits(), small);

    // Small objects: the share is back once the put is done, or when the upload is dropped.
    let mut upload = sink
        .create("small.bin", &ObjectMeta::default())
        .await
        .expect("create");
    upload.write(data.slice(..1000)).await.expect("write");
    assert_eq!(sink.budget.small.available_permits(), small - 1000);
    drop(upload);
    assert_eq!(sink.budget.small.available_permits(), small);
}
