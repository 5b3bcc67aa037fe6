use super::*;
use crate::sink::LocalSink;

/// A shard of dossier `n` whose state names `mark` (to tell versions apart).
fn shard(n: u64, mark: &str) -> Shard {
    Shard {
        version: WIRE_VERSION,
        demarche: 7,
        dossier: n,
        state: mark.to_owned(),
        updated_at: Some("2026-01-01T00:00:00+01:00".to_owned()),
        deleted_at: None,
        files: Vec::new(),
        data: None,
    }
}

/// Dossiers of blocks 0, 1, 5 and 10, of one to five digits: their keys interleave in key
/// order (`10000.json` sorts between `1000.json` and `1999.json`).
const NUMBERS: [u64; 10] = [3, 42, 999, 1000, 1500, 1999, 5000, 5001, 5999, 10_000];

/// A run that wrote every shard of `NUMBERS` and compacted.
async fn written(sink: &Arc<dyn Sink>) -> StateObjects {
    let shards = Shards::new(Arc::clone(sink));
    for n in NUMBERS {
        shards.write(&shard(n, "first")).await.unwrap();
    }
    shards.compact().await;
    shards.state_objects()
}

async fn read_all(shards: &Shards, access: Access) -> Vec<Option<Shard>> {
    let mut out = Vec::new();
    for n in NUMBERS {
        out.push(shards.read(n, access).await.unwrap());
    }
    out
}

fn expected(mark: &str) -> Vec<Option<Shard>> {
    NUMBERS.iter().map(|&n| Some(shard(n, mark))).collect()
}

#[tokio::test]
async fn a_compacted_block_answers_with_one_listing_and_one_segment() {
    let sink = crate::sink::memory();
    let wrote = written(&sink).await;
    assert_eq!(wrote.segments_written, 4, "{wrote:?}");
    let shards = Shards::new(Arc::clone(&sink));
    assert_eq!(
        read_all(&shards, Access::Sequential).await,
        expected("first")
    );
    // Dossiers without a shard, in held blocks: no read either.
    assert_eq!(shards.read(1001, Access::Sequential).await.unwrap(), None);
    assert_eq!(shards.read(5500, Access::Random).await.unwrap(), None);
    let reads = shards.state_objects();
    assert_eq!(
        (reads.shards_read, reads.segments_read, reads.blocks_listed),
        (0, 4, 4),
        "{reads:?}"
    );
    // Nothing was stale: nothing to rewrite.
    shards.compact().await;
    assert_eq!(shards.state_objects().segments_written, 0);
}

#[tokio::test]
async fn a_shard_changed_or_deleted_behind_its_segment_is_read_itself() {
    let sink = crate::sink::memory();
    written(&sink).await;
    // Replaced by someone else (an operator, an older dsfiles), then one deleted.
    state::write(sink.as_ref(), &shard_key(1500), &shard(1500, "changed"))
        .await
        .unwrap();
    sink.delete(&shard_key(5001)).await.unwrap();
    let shards = Shards::new(Arc::clone(&sink));
    let mut want = expected("first");
    want[4] = Some(shard(1500, "changed"));
    want[7] = None;
    assert_eq!(read_all(&shards, Access::Sequential).await, want);
    assert_eq!(shards.state_objects().shards_read, 1);
    // The two stale blocks are rewritten; then nothing is read one by one.
    shards.compact().await;
    assert_eq!(shards.state_objects().segments_written, 2);
    let again = Shards::new(Arc::clone(&sink));
    assert_eq!(read_all(&again, Access::Sequential).await, want);
    assert_eq!(again.state_objects().shards_read, 0);
}

#[tokio::test]
async fn a_segment_that_is_not_one_costs_reads_not_answers() {
    let sink = crate::sink::memory();
    written(&sink).await;
    let block_one = sink.get_small(&segment_key(1)).await.unwrap().unwrap();
    let cut = block_one.slice(..block_one.len() / 2);
    let cases: [(u64, Bytes); 4] = [
        (0, Bytes::from_static(b"not json\n")),
        (1, cut),
        (5, block_one), // block 1's segment at block 5's key
        (10, Bytes::new()),
    ];
    for (block, bytes) in cases {
        sink.put_small(&segment_key(block), bytes).await.unwrap();
    }
    let shards = Shards::new(Arc::clone(&sink));
    assert_eq!(
        read_all(&shards, Access::Sequential).await,
        expected("first")
    );
    assert_eq!(shards.state_objects().shards_read, NUMBERS.len() as u64);
    shards.compact().await;
    let again = Shards::new(Arc::clone(&sink));
    assert_eq!(
        read_all(&again, Access::Sequential).await,
        expected("first")
    );
    assert_eq!(again.state_objects().shards_read, 0);
}

#[tokio::test]
async fn what_the_run_wrote_is_read_from_its_shard() {
    let sink = crate::sink::memory();
    written(&sink).await;
    let shards = Shards::new(Arc::clone(&sink));
    assert_eq!(
        read_all(&shards, Access::Sequential).await,
        expected("first")
    );
    shards.write(&shard(5000, "second")).await.unwrap();
    shards.write(&shard(5002, "new")).await.unwrap();
    let read = |n| shards.read(n, Access::Sequential);
    assert_eq!(read(5000).await.unwrap(), Some(shard(5000, "second")));
    assert_eq!(read(5002).await.unwrap(), Some(shard(5002, "new")));
    shards.compact().await;
    let again = Shards::new(Arc::clone(&sink));
    let read = |n| again.read(n, Access::Sequential);
    assert_eq!(read(5000).await.unwrap(), Some(shard(5000, "second")));
    assert_eq!(read(5002).await.unwrap(), Some(shard(5002, "new")));
    assert_eq!(again.state_objects().shards_read, 0);
}

#[tokio::test]
async fn random_reads_use_only_held_blocks() {
    let sink = crate::sink::memory();
    written(&sink).await;
    let shards = Shards::new(Arc::clone(&sink));
    assert_eq!(read_all(&shards, Access::Random).await, expected("first"));
    let reads = shards.state_objects();
    assert_eq!(
        (reads.shards_read, reads.blocks_listed),
        (10, 0),
        "{reads:?}"
    );
    shards.read(5000, Access::Sequential).await.unwrap();
    shards.read(5999, Access::Random).await.unwrap();
    let reads = shards.state_objects();
    assert_eq!(
        (reads.shards_read, reads.blocks_listed),
        (10, 1),
        "{reads:?}"
    );
}

#[tokio::test]
async fn local_disk_reads_shards_and_writes_no_segment() {
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn Sink> =
        Arc::new(LocalSink::open(dir.path(), crate::sink::SinkOptions::default()).unwrap());
    let wrote = written(&sink).await;
    assert_eq!(wrote.segments_written, 0);
    let shards = Shards::new(Arc::clone(&sink));
    assert_eq!(
        read_all(&shards, Access::Sequential).await,
        expected("first")
    );
    assert_eq!(shards.state_objects().shards_read, NUMBERS.len() as u64);
    assert!(!dir.path().join(SEGMENTS_DIR).exists());
}

const SEGMENTS_DIR: &str = ".dsfiles/segments";

#[test]
fn a_segment_is_refused_unless_it_is_whole_ordered_and_of_its_block() {
    let entry = |dossier| SegmentEntry {
        dossier,
        tag: "t".to_owned(),
        size: 1,
    };
    let header = |block, shards: Vec<SegmentEntry>| {
        serde_json::to_string(&SegmentHeader {
            version: WIRE_VERSION,
            block,
            shards,
        })
        .unwrap()
    };
    let cases = [
        (
            header(2, vec![entry(2000), entry(2001)]) + "\n{}\n{}\n",
            Ok(2),
        ),
        (header(2, vec![]) + "\n", Ok(0)),
        (
            header(2, vec![entry(2000), entry(2001)]) + "\n{}\n",
            Err("2 copies"),
        ),
        (
            header(2, vec![entry(2001), entry(2000)]) + "\n{}\n{}\n",
            Err("order"),
        ),
        (header(3, vec![entry(2000)]) + "\n{}\n", Err("block `3`")),
        (
            header(2, vec![]).replace("\"version\":1", "\"version\":9"),
            Err("version `9`"),
        ),
        (String::new(), Err("empty")),
    ];
    for (text, want) in cases {
        let got = Copies::parse(2, Bytes::from(text.clone())).map(|c| c.entries.len());
        match (got, want) {
            (Ok(n), Ok(m)) => assert_eq!(n, m, "{text}"),
            (Err(reason), Err(part)) => assert!(reason.contains(part), "{text}: {reason}"),
            (got, want) => panic!("{text}: {:?} instead of {want:?}", got.map_err(|_| ())),
        }
    }
}
