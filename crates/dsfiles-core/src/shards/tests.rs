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

/// Dossiers of cells 0, 1, 5 and 10, of one to five digits: their keys interleave in key
/// order (`10000.json` sorts between `1000.json` and `1999.json`). Compacted, they make three
/// segments: cell 0, cells 1–9 (four digits), cells 10–99 (five).
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
    assert_eq!(wrote.segments_written, 3, "{wrote:?}");
    assert_eq!(
        segment_keys(&sink).await,
        ["0.jsonl", "1-9.jsonl", "10-99.jsonl"]
    );
    let shards = Shards::new(Arc::clone(&sink));
    assert_eq!(
        read_all(&shards, Access::Sequential).await,
        expected("first")
    );
    // Dossiers without a shard, in held blocks: no read either.
    assert_eq!(shards.read(1001, Access::Sequential).await.unwrap(), None);
    assert_eq!(shards.read(5500, Access::Random).await.unwrap(), None);
    let reads = shards.state_objects();
    // One listing of the segments, then one of each span.
    assert_eq!(
        (reads.shards_read, reads.segments_read, reads.blocks_listed),
        (0, 3, 4),
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
    // The stale span is rewritten; then nothing is read one by one.
    shards.compact().await;
    assert_eq!(shards.state_objects().segments_written, 1);
    let again = Shards::new(Arc::clone(&sink));
    assert_eq!(read_all(&again, Access::Sequential).await, want);
    assert_eq!(again.state_objects().shards_read, 0);
}

#[tokio::test]
async fn a_segment_that_is_not_one_costs_reads_not_answers() {
    let sink = crate::sink::memory();
    written(&sink).await;
    let four_digits = sink.get_small(&segment_key(1, 9)).await.unwrap().unwrap();
    let cut = four_digits.slice(..four_digits.len() / 2);
    let cases: [((u64, u64), Bytes); 4] = [
        ((0, 0), Bytes::from_static(b"not json\n")),
        ((1, 9), cut),
        ((10, 99), four_digits.clone()), // another span's segment
        ((5, 5), four_digits),           // overlapping 1–9: not used, deleted by compaction
    ];
    for ((first, last), bytes) in cases {
        sink.put_small(&segment_key(first, last), bytes)
            .await
            .unwrap();
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
    assert_eq!(
        segment_keys(&sink).await,
        ["0.jsonl", "1-9.jsonl", "10-99.jsonl"]
    );
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
    // The segments' listing, then the span of cells 1–9.
    assert_eq!(
        (reads.shards_read, reads.blocks_listed),
        (10, 2),
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

/// The names of the segments in `sink`, in key order.
async fn segment_keys(sink: &Arc<dyn Sink>) -> Vec<String> {
    let mut keys: Vec<String> = sink
        .list_after(SEGMENTS_PREFIX, SEGMENTS_PREFIX.trim_end_matches('/'))
        .expect("an object store lists in key order")
        .map_ok(|entry| entry.key[SEGMENTS_PREFIX.len()..].to_owned())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

/// `count` dossiers of seven digits, `gap` numbers apart from 1,000,000 on: DS numbers
/// dossiers across the platform, so a démarche's numbers are sparse.
fn sparse(count: u64, gap: u64) -> Vec<u64> {
    (0..count).map(|i| 1_000_000 + i * gap).collect()
}

/// A run that writes a shard for each of `numbers`, marked `mark`, and compacts.
async fn write_all(sink: &Arc<dyn Sink>, numbers: &[u64], mark: &str) -> StateObjects {
    let shards = Shards::new(Arc::clone(sink));
    for &n in numbers {
        shards.write(&shard(n, mark)).await.unwrap();
    }
    shards.compact().await;
    shards.state_objects()
}

/// A run that reads every shard of `numbers` in order, checking each against `mark`.
async fn read_in_order(sink: &Arc<dyn Sink>, numbers: &[u64], mark: &str) -> StateObjects {
    let shards = Shards::new(Arc::clone(sink));
    for &n in numbers {
        let read = shards.read(n, Access::Sequential).await.unwrap();
        assert_eq!(read, Some(shard(n, mark)), "dossier {n}");
    }
    shards.state_objects()
}

#[tokio::test]
async fn sparse_numbers_cost_a_segment_per_thousand_dossiers_not_per_thousand_numbers() {
    // 3,000 dossiers over 150,000 numbers: 150 cells of 20 dossiers.
    let sink = crate::sink::memory();
    let numbers = sparse(3_000, 50);
    let wrote = write_all(&sink, &numbers, "first").await;
    assert_eq!(wrote.segments_written, 3, "{wrote:?}");
    let reads = read_in_order(&sink, &numbers, "first").await;
    assert_eq!(
        (reads.shards_read, reads.segments_read, reads.blocks_listed),
        (0, 3, 4),
        "{reads:?}"
    );
}

#[tokio::test]
async fn new_dossiers_join_the_last_segment_and_a_grown_one_is_cut() {
    let sink = crate::sink::memory();
    let mut numbers = sparse(1_500, 50);
    write_all(&sink, &numbers, "first").await;
    let before = segment_keys(&sink).await;
    assert_eq!(before, ["1000-1049.jsonl", "1050-9999.jsonl"]);
    // Ten new dossiers above the others: the last segment takes them, no segment of ten.
    let new: Vec<u64> = (0..10).map(|i| 1_100_000 + i).collect();
    let wrote = write_all(&sink, &new, "first").await;
    assert_eq!(wrote.segments_written, 1, "{wrote:?}");
    assert_eq!(segment_keys(&sink).await, before);
    numbers.extend(&new);
    let reads = read_in_order(&sink, &numbers, "first").await;
    assert_eq!(
        (reads.shards_read, reads.segments_read),
        (0, 2),
        "{reads:?}"
    );
    // 2,000 more, 333 or 334 a cell: the last segment is cut at the first cell boundary past
    // 1,000 shards, the first segment is kept as is.
    let more: Vec<u64> = (0..2_000).map(|i| 1_200_000 + i * 3).collect();
    let wrote = write_all(&sink, &more, "first").await;
    assert_eq!(wrote.segments_written, 3, "{wrote:?}");
    assert_eq!(
        segment_keys(&sink).await,
        [
            "1000-1049.jsonl",
            // 510 + 334 + 333 shards; then 333 + 334 + 333; then 333.
            "1050-1201.jsonl",
            "1202-1204.jsonl",
            "1205-9999.jsonl",
        ]
    );
    numbers.extend(&more);
    let reads = read_in_order(&sink, &numbers, "first").await;
    assert_eq!(
        (reads.shards_read, reads.segments_read),
        (0, 4),
        "{reads:?}"
    );
}

#[test]
fn the_index_resolves_spans_and_regions() {
    let span = |first, last| Span { first, last };
    // Overlaps keep the first, widest span; a span across a power of ten is not used.
    let index = Index::new(vec![
        span(20, 25),
        span(3, 4),
        span(3, 7),
        span(5, 5),
        span(95, 120),
        span(30, 40),
    ]);
    assert_eq!(index.spans, [span(3, 7), span(20, 25), span(30, 40)]);
    assert_eq!(index.all.len(), 6);
    let cases = [
        // (dirty cell, its span if covered, the region compacted)
        (0, None, span(0, 0)),
        (1, None, span(1, 2)),
        (4, Some(span(3, 7)), span(3, 7)),
        (8, None, span(3, 9)),
        (10, None, span(10, 19)),
        (26, None, span(20, 29)),
        (41, None, span(30, 99)),
        (100, None, span(100, 999)),
        (1234, None, span(1000, 9999)),
    ];
    for (cell, covering, region) in cases {
        assert_eq!(index.covering(cell), covering, "cell {cell}");
        assert_eq!(index.region(cell), region, "cell {cell}");
    }
    // Regions of several dirty cells: a span and the gap after it make one.
    assert_eq!(
        index.regions([4, 8, 21, 41, 26]),
        [span(3, 9), span(20, 29), span(30, 99)]
    );
}

#[test]
fn segment_keys_name_their_cells() {
    for (first, last) in [(0, 0), (7, 7), (1000, 1049), (10, 99)] {
        let key = segment_key(first, last);
        assert_eq!(segment_cells(&key), Some((first, last)), "{key}");
    }
    assert_eq!(segment_key(5, 5), ".dsfiles/segments/5.jsonl");
    for name in ["9-3", "+5", "05", "5-", "-5", "5-05", "a", "5.json"] {
        let key = format!("{SEGMENTS_PREFIX}{name}.jsonl");
        assert_eq!(segment_cells(&key), None, "{key}");
    }
}

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
        let got =
            Copies::parse(2, split(text.as_bytes(), &[text.len() / 3])).map(|c| c.entries.len());
        match (got, want) {
            (Ok(n), Ok(m)) => assert_eq!(n, m, "{text}"),
            (Err(reason), Err(part)) => assert!(reason.contains(part), "{text}: {reason}"),
            (got, want) => panic!("{text}: {:?} instead of {want:?}", got.map_err(|_| ())),
        }
    }
}

/// The lines [`Lines`] cuts from `text` received in chunks ending at `cuts`.
fn split(text: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut lines = Lines::default();
    let mut start = 0;
    for &end in cuts.iter().chain([&text.len()]) {
        lines.push(&text[start..end]);
        start = end;
    }
    lines.finish()
}

#[test]
fn lines_are_the_same_wherever_the_chunks_end() {
    let texts: [&[u8]; 6] = [
        b"",
        b"\n",
        b"ab",
        b"ab\ncd\n",
        b"ab\n\ncd",
        b"{\"a\":1}\n{}\nxyz\n",
    ];
    for text in texts {
        // What `str::lines` gives, but a lone trailing `\n` ends a line, not starts one.
        let want: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        let want = match want.split_last() {
            Some(([], init)) => init.to_vec(),
            _ => want,
        };
        for a in 0..=text.len() {
            for b in a..=text.len() {
                let got = split(text, &[a, b]);
                let got: Vec<&[u8]> = got.iter().map(|l| &l[..]).collect();
                assert_eq!(
                    got,
                    want,
                    "{:?} cut at {a} and {b}",
                    String::from_utf8_lossy(text)
                );
            }
        }
    }
}
