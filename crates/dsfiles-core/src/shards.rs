//! The manifest shards as a run reads and writes them: one read per shard on local disk;
//! through compacted segments on object stores, so that reading the state of 100,000
//! dossiers costs about two requests per 1,000 dossiers, whatever their numbers, plus one read
//! per shard that changed since its segment was written.
//!
//! Rules:
//! - **The shards stay the only truth.** Every write is a write of the dossier's shard
//!   (`.dsfiles/dossiers/{n}.json`), exactly as without segments. A segment
//!   (`.dsfiles/segments/{first}-{last}.jsonl`, [`crate::wire::SegmentHeader`]) holds copies
//!   of the shards of a [`Span`] of cells (cell `c`: dossiers `c × 1000` to `c × 1000 + 999`),
//!   each with the entity tag and size its shard was listed with when copied.
//! - **A copy is used only if this run's listing of the span shows its shard with that same
//!   tag and size.** A listed shard without such a copy is read itself; a dossier whose shard
//!   is not listed has none. An entity tag changes whenever an object is replaced, so a
//!   segment that is stale, partial, unreadable, absent, written by another run or cut short
//!   by kill -9 costs reads, never a wrong answer: there is no marker to keep and no order
//!   between writes, and crash safety is what it is without segments.
//! - **Spans follow the dossiers, not the numbers.** DS numbers dossiers across the whole
//!   platform, so a démarche's numbers are sparse: 100,000 dossiers among 5 million numbers
//!   touch 5,000 cells. A span holds about [`SEGMENT_DOSSIERS`] shards (see Compaction), so
//!   it covers as many cells as that takes. The spans are known from one listing of the segments per run
//!   (an [`Index`]); overlapping spans (left by a run killed while compacting) are resolved by
//!   taking the first, widest one. A cell no span covers is its own block, without a segment.
//! - **What this run wrote is read from its shard**: the run's listing predates the write.
//! - **Only sinks that list in key order with tags use segments** ([`Sink::list_after`]: the
//!   object stores). On local disk a shard read is one small file read; segments would only
//!   add writes.
//! - **Reading.** A `Sequential` read (the recheck list and the full listing come in dossier
//!   order) lists the dossier's block (its span, or its cell) and reads its segment once; a
//!   `Random` read (the updated-since listing comes in update order) uses its block only if it
//!   is already held, and else reads the shard, which is the read a changed dossier costs
//!   anyway. At most [`HELD_BLOCKS`] blocks are held.
//! - **Compaction**, at the end of a run: every span in which this run wrote a shard or found
//!   one without its copy is listed again and cut into segments of whole cells, each cut at
//!   the first cell boundary once it holds [`SEGMENT_DOSSIERS`] shards (so fewer than twice
//!   that: a cell holds at most as many), copies still matching kept byte for byte, the other
//!   shards read. A cell no span covers is compacted together with the uncovered cells around it
//!   and the span just before them, so that new dossiers join a segment instead of making
//!   segments of a few copies each. The listing is streamed and one segment is written at a
//!   time, so memory holds one segment whatever the size of the démarche; what the run
//!   remembers meanwhile is one bit per dossier it wrote. Segments the new ones replace are
//!   deleted after them.
//! - **Key order.** Shard keys sort as numbers only among numbers of as many digits, so a span
//!   never crosses a power of ten ([`digits`]; cell 0, whose numbers have one to three digits,
//!   is a span of its own and sorted after listing). A span's shards are the keys listed after
//!   `{first × 1000}` up to `{last × 1000 + 999}.json`; keys of other lengths that sort inside
//!   are skipped. A listing out of key order is not trusted: the block's shards are then read
//!   one by one.

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use tokio::sync::OnceCell;

use crate::Error;
use crate::sink::{ByteStream, Sink, TaggedEntry};
use crate::state;
use crate::wire::{
    DOSSIERS_PREFIX, SEGMENT_DOSSIERS, SEGMENTS_PREFIX, SegmentEntry, SegmentHeader, Shard,
    StateObjects, WIRE_VERSION, segment_cells, segment_key, shard_key,
};

/// Blocks (listing and segment) held at a time: the dossiers of a sequential read are in
/// flight a page or two at a time, fewer than a span holds, so they straddle at most two spans.
/// A third would hold another segment of up to megabytes for nothing.
pub(crate) const HELD_BLOCKS: usize = 2;
/// Shards read at a time while compacting.
const READS_IN_FLIGHT: usize = 16;
/// Words of a cell's bit set (one bit per dossier number of the cell).
const WORDS: usize = (SEGMENT_DOSSIERS as usize).div_ceil(64);

/// How a dossier's shard is about to be read (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Dossiers come in number order: list the block and read its segment.
    Sequential,
    /// Dossiers come in any order: use the block only if held.
    Random,
}

/// Cells `first..=last`: what one segment copies, or what one block lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Span {
    first: u64,
    last: u64,
}

impl Span {
    fn cell(cell: u64) -> Span {
        Span {
            first: cell,
            last: cell,
        }
    }

    fn contains(self, cell: u64) -> bool {
        (self.first..=self.last).contains(&cell)
    }

    fn overlaps(self, other: Span) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    fn key(self) -> String {
        segment_key(self.first, self.last)
    }

    /// The dossier numbers of its cells.
    fn dossiers(self) -> RangeInclusive<u64> {
        let first = self.first.saturating_mul(SEGMENT_DOSSIERS);
        let last = self.last.saturating_mul(SEGMENT_DOSSIERS);
        first..=last.saturating_add(SEGMENT_DOSSIERS - 1)
    }
}

/// The cells whose numbers have as many digits as those of `cell` (a span never crosses a
/// power of ten): cell 0 alone, then 1–9, 10–99, …
fn digits(cell: u64) -> Span {
    if cell == 0 {
        return Span::cell(0);
    }
    let mut low = 1u64;
    while low <= cell / 10 {
        low *= 10;
    }
    Span {
        first: low,
        last: low.saturating_mul(10) - 1,
    }
}

/// The segments of the destination, as listed once per run.
#[derive(Debug, Default)]
struct Index {
    /// Those readers use: in cell order, none overlapping, none crossing a power of ten.
    spans: Vec<Span>,
    /// Every segment listed, overlapping ones too (compaction deletes them).
    all: Vec<Span>,
}

impl Index {
    fn new(mut all: Vec<Span>) -> Index {
        all.sort_by_key(|s| (s.first, Reverse(s.last)));
        let mut spans: Vec<Span> = Vec::new();
        for span in &all {
            let after = spans.last().is_none_or(|p| p.last < span.first);
            if after && digits(span.first).contains(span.last) {
                spans.push(*span);
            }
        }
        Index { spans, all }
    }

    /// The span covering `cell`, if any.
    fn covering(&self, cell: u64) -> Option<Span> {
        let i = self.spans.partition_point(|s| s.first <= cell);
        let span = self.spans[..i].last()?;
        span.contains(cell).then_some(*span)
    }

    /// What compaction rewrites when `cell` is dirty: its span; or, for a cell no span covers,
    /// the uncovered cells around it and the span just before them (same digit count).
    fn region(&self, cell: u64) -> Span {
        if let Some(span) = self.covering(cell) {
            return span;
        }
        let range = digits(cell);
        let i = self.spans.partition_point(|s| s.first <= cell);
        let before = self.spans[..i].last().filter(|s| s.first >= range.first);
        let next = self.spans.get(i).filter(|s| s.first <= range.last);
        Span {
            first: before.map_or(range.first, |s| s.first),
            last: next.map_or(range.last, |s| s.first - 1),
        }
    }

    /// The regions to compact for `cells`: in order, overlapping ones merged.
    fn regions(&self, cells: impl IntoIterator<Item = u64>) -> Vec<Span> {
        let mut regions: Vec<Span> = cells.into_iter().map(|c| self.region(c)).collect();
        regions.sort();
        let mut merged: Vec<Span> = Vec::new();
        for region in regions {
            match merged.last_mut() {
                Some(last) if last.overlaps(region) => last.last = last.last.max(region.last),
                _ => merged.push(region),
            }
        }
        merged
    }
}

/// A run's reads and writes of manifest shards.
pub(crate) struct Shards {
    sink: Arc<dyn Sink>,
    /// Whether the sink lists in key order with tags.
    segmented: bool,
    /// The segments, listed at the first block read (`None`: unlistable, then logged).
    index: OnceCell<Option<Arc<Index>>>,
    held: Mutex<VecDeque<(Span, Slot)>>,
    /// Cells to compact, each with the dossiers this run wrote in it.
    dirty: Mutex<BTreeMap<u64, [u64; WORDS]>>,
    shards_read: AtomicU64,
    segments_read: AtomicU64,
    blocks_listed: AtomicU64,
    segments_written: AtomicU64,
}

/// A listing of shard keys in key order.
type Listing<'a> = futures::stream::BoxStream<'a, Result<TaggedEntry, crate::sink::Error>>;

/// A held block, loaded once however many tasks ask; `None` when unusable.
type Slot = Arc<OnceCell<Option<Arc<Block>>>>;

/// One listed shard of a block.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Listed {
    dossier: u64,
    tag: Option<String>,
    size: u64,
}

/// A block as this run found it: its listed shards and its segment's copies.
struct Block {
    /// In dossier order.
    listed: Vec<Listed>,
    copies: Copies,
}

/// A segment as read: each copy's entry and line. Each line is a buffer of its own, a few
/// kilobytes: a segment held as one buffer of megabytes is an allocation the allocator keeps
/// once freed, one more for each thread that happened to free one.
#[derive(Default)]
struct Copies {
    /// In dossier order.
    entries: Vec<(SegmentEntry, Bytes)>,
}

/// Where a dossier's shard comes from.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    /// Not listed: the dossier has no shard.
    Absent,
    /// This copy, a line of the segment.
    Copy(Bytes),
    /// The shard itself must be read.
    Read,
}

/// What to do with one entry of a listing of a span's shard keys.
enum Step {
    Skip,
    Take(Listed),
    Stop,
}

/// Checks a listing of `span`'s shard keys as it comes (module doc, "Key order").
struct Window {
    span: Span,
    offset: String,
    end: String,
    previous: String,
}

impl Window {
    fn new(span: Span) -> Window {
        let offset = format!("{DOSSIERS_PREFIX}{}", span.dossiers().start());
        Window {
            span,
            end: shard_key(*span.dossiers().end()),
            previous: offset.clone(),
            offset,
        }
    }

    fn step(&mut self, entry: TaggedEntry) -> Result<Step, Error> {
        if entry.key <= self.offset {
            return Ok(Step::Skip); // A backend that ignores the offset.
        }
        if entry.key < self.previous {
            return Err(not_ordered(self.span, "the listing is not in key order"));
        }
        if entry.key > self.end {
            return Ok(Step::Stop);
        }
        let dossier = crate::wire::dossier_of_shard_key(&entry.key)
            .filter(|&n| self.span.dossiers().contains(&n) && shard_key(n) == entry.key);
        self.previous = entry.key;
        Ok(dossier.map_or(Step::Skip, |dossier| {
            let (tag, size) = (entry.tag, entry.size);
            Step::Take(Listed { dossier, tag, size })
        }))
    }
}

impl Shards {
    pub fn new(sink: Arc<dyn Sink>) -> Shards {
        let segmented = sink.list_after(DOSSIERS_PREFIX, DOSSIERS_PREFIX).is_some();
        Shards {
            sink,
            segmented,
            index: OnceCell::new(),
            held: Mutex::new(VecDeque::new()),
            dirty: Mutex::new(BTreeMap::new()),
            shards_read: AtomicU64::new(0),
            segments_read: AtomicU64::new(0),
            blocks_listed: AtomicU64::new(0),
            segments_written: AtomicU64::new(0),
        }
    }

    /// The shard of dossier `n` (`None` when it has none); [`Error::Manifest`] when it is
    /// unreadable, as [`state::read`].
    pub async fn read(&self, n: u64, access: Access) -> Result<Option<Shard>, Error> {
        if !self.segmented || self.wrote(n) {
            return self.read_shard(n).await;
        }
        let block = match access {
            Access::Sequential => self.block(n / SEGMENT_DOSSIERS).await,
            Access::Random => self.held_block(n / SEGMENT_DOSSIERS),
        };
        match block.map(|b| b.lookup(n)) {
            Some(Lookup::Absent) => Ok(None),
            Some(Lookup::Copy(line)) => match state::parse(&shard_key(n), &line) {
                Ok(shard) => Ok(Some(shard)),
                Err(_) => self.read_shard(n).await,
            },
            Some(Lookup::Read) | None => self.read_shard(n).await,
        }
    }

    /// Writes the shard of `shard.dossier` (atomically, as [`state::write`]).
    pub async fn write(&self, shard: &Shard) -> Result<(), Error> {
        let n = shard.dossier;
        // Marked before the write: if the write fails, what the shard holds is unknown.
        self.mark(n / SEGMENT_DOSSIERS, Some(n));
        state::write(self.sink.as_ref(), &shard_key(n), shard).await
    }

    /// What was read and written so far.
    pub fn state_objects(&self) -> StateObjects {
        StateObjects {
            shards_read: self.shards_read.load(Ordering::Relaxed),
            segments_read: self.segments_read.load(Ordering::Relaxed),
            blocks_listed: self.blocks_listed.load(Ordering::Relaxed),
            segments_written: self.segments_written.load(Ordering::Relaxed),
        }
    }

    /// Rewrites the segments of every region this run wrote in or found out of date, one
    /// segment at a time. A region that cannot be compacted is logged and left: its
    /// segments only cost reads until a later run compacts it.
    pub async fn compact(&self) {
        let cells = std::mem::take(&mut *lock(&self.dirty));
        lock(&self.held).clear();
        if !self.segmented || cells.is_empty() {
            return;
        }
        let Some(index) = self.index().await else {
            return;
        };
        for region in index.regions(cells.into_keys()) {
            if let Err(e) = self.compact_region(&index, region).await {
                let reason = crate::fetch::error_chain(&e);
                let dossiers = region.dossiers();
                let (first, last) = (dossiers.start(), dossiers.end());
                tracing::warn!("segments of dossiers {first} to {last} not rewritten: {reason}");
            }
        }
    }

    async fn read_shard(&self, n: u64) -> Result<Option<Shard>, Error> {
        self.shards_read.fetch_add(1, Ordering::Relaxed);
        state::read(self.sink.as_ref(), &shard_key(n)).await
    }

    fn wrote(&self, n: u64) -> bool {
        let (cell, bit) = (n / SEGMENT_DOSSIERS, n % SEGMENT_DOSSIERS);
        lock(&self.dirty)
            .get(&cell)
            .is_some_and(|bits| bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    /// Marks `cell` for compaction, and dossier `wrote` as written by this run.
    fn mark(&self, cell: u64, wrote: Option<u64>) {
        let mut dirty = lock(&self.dirty);
        let bits = dirty.entry(cell).or_insert([0; WORDS]);
        if let Some(bit) = wrote.map(|n| n % SEGMENT_DOSSIERS) {
            bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    /// The segments as listed at the first call; `None` (logged) when they cannot be listed.
    async fn index(&self) -> Option<Arc<Index>> {
        let load = || async {
            match self.list_segments().await {
                Ok(spans) => Some(Arc::new(Index::new(spans))),
                Err(e) => {
                    let reason = crate::fetch::error_chain(&e);
                    tracing::warn!("the manifest is read shard by shard: {reason}");
                    None
                }
            }
        };
        self.index.get_or_init(load).await.clone()
    }

    async fn list_segments(&self) -> Result<Vec<Span>, Error> {
        self.blocks_listed.fetch_add(1, Ordering::Relaxed);
        let Some(mut listing) = self
            .sink
            .list_after(SEGMENTS_PREFIX, SEGMENTS_PREFIX.trim_end_matches('/'))
        else {
            return Ok(Vec::new());
        };
        let mut spans = Vec::new();
        while let Some(entry) = listing.try_next().await? {
            if let Some((first, last)) = segment_cells(&entry.key) {
                spans.push(Span { first, last });
            }
        }
        Ok(spans)
    }

    fn held_block(&self, cell: u64) -> Option<Arc<Block>> {
        let held = lock(&self.held);
        let (_, slot) = held.iter().find(|(span, _)| span.contains(cell))?;
        slot.get().cloned().flatten()
    }

    /// The block of `cell` as held, else listed and read (once, however many tasks ask);
    /// `None` when unusable (then logged and marked for compaction).
    async fn block(&self, cell: u64) -> Option<Arc<Block>> {
        let index = self.index().await?;
        let covering = index.covering(cell);
        let span = covering.unwrap_or(Span::cell(cell));
        let slot = {
            let mut held = lock(&self.held);
            match held.iter().find(|(s, _)| *s == span) {
                Some((_, slot)) => Arc::clone(slot),
                None => {
                    if held.len() >= HELD_BLOCKS {
                        held.pop_front();
                    }
                    let slot = Arc::new(OnceCell::new());
                    held.push_back((span, Arc::clone(&slot)));
                    slot
                }
            }
        };
        let load = || async {
            match self.load(span, covering.is_some()).await {
                Ok(loaded) => {
                    if loaded.stale() {
                        self.mark(span.first, None);
                    }
                    Some(Arc::new(loaded))
                }
                Err(e) => {
                    let reason = crate::fetch::error_chain(&e);
                    tracing::warn!("`{}` read shard by shard: {reason}", span.key());
                    self.mark(span.first, None);
                    None
                }
            }
        };
        slot.get_or_init(load).await.clone()
    }

    /// `span`'s listed shards, and its segment's copies if `segment` (it is listed).
    async fn load(&self, span: Span, segment: bool) -> Result<Block, Error> {
        let listed = self.list(span).await?;
        // Without tags no copy can be trusted: skip the read.
        let copies = if segment && listed.iter().any(|l| l.tag.is_some()) {
            self.segment(span).await?
        } else {
            Copies::default()
        };
        Ok(Block { listed, copies })
    }

    /// The shards of `span` as listed now, in dossier order.
    async fn list(&self, span: Span) -> Result<Vec<Listed>, Error> {
        let (mut listing, mut window) = self.listing(span)?;
        let mut listed = Vec::new();
        while let Some(entry) = listing.try_next().await? {
            match window.step(entry)? {
                Step::Skip => {}
                Step::Take(l) => listed.push(l),
                Step::Stop => break,
            }
        }
        listed.sort_by_key(|l| l.dossier);
        Ok(listed)
    }

    /// A listing of `span`'s shard keys, and the [`Window`] that checks it.
    fn listing(&self, span: Span) -> Result<(Listing<'_>, Window), Error> {
        self.blocks_listed.fetch_add(1, Ordering::Relaxed);
        let window = Window::new(span);
        let listing = self.sink.list_after(DOSSIERS_PREFIX, &window.offset);
        let listing =
            listing.ok_or_else(|| not_ordered(span, "the destination cannot list in key order"))?;
        Ok((listing, window))
    }

    /// The segment of `span`: empty when absent or unreadable (then logged).
    async fn segment(&self, span: Span) -> Result<Copies, Error> {
        let key = span.key();
        self.segments_read.fetch_add(1, Ordering::Relaxed);
        let stream = match self.sink.get(&key).await {
            Ok(stream) => stream,
            Err(crate::sink::Error::NotFound { .. }) => return Ok(Copies::default()),
            Err(e) => return Err(e.into()),
        };
        let lines = lines(stream).await?;
        Ok(Copies::parse(span.first, lines).unwrap_or_else(|reason| {
            tracing::warn!("segment `{key}` is ignored: {reason}");
            Copies::default()
        }))
    }

    /// Cuts `region`'s shards, as listed now, into segments of whole cells, each cut once it
    /// holds [`SEGMENT_DOSSIERS`] shards, then deletes the segments of `index` in the region
    /// that they replace.
    async fn compact_region(&self, index: &Index, region: Span) -> Result<(), Error> {
        let old: Vec<Span> = index
            .all
            .iter()
            .filter(|s| region.contains(s.first))
            .copied()
            .collect();
        let (mut listing, mut window) = self.listing(region)?;
        let (mut piece, mut first, mut kept) = (Vec::new(), region.first, Vec::new());
        while let Some(entry) = listing.try_next().await? {
            let listed = match window.step(entry)? {
                Step::Skip => continue,
                Step::Take(listed) => listed,
                Step::Stop => break,
            };
            let cell = listed.dossier / SEGMENT_DOSSIERS;
            let full = piece.len() >= SEGMENT_DOSSIERS as usize;
            if full
                && piece
                    .last()
                    .is_some_and(|l: &Listed| l.dossier / SEGMENT_DOSSIERS < cell)
            {
                let span = Span {
                    first,
                    last: cell - 1,
                };
                kept.extend(
                    self.write_segment(span, std::mem::take(&mut piece), &old)
                        .await?,
                );
                first = cell;
            }
            piece.push(listed);
        }
        if !piece.is_empty() {
            let span = Span {
                first,
                last: region.last,
            };
            kept.extend(self.write_segment(span, piece, &old).await?);
        }
        for span in old.into_iter().filter(|s| !kept.contains(s)) {
            self.sink.delete(&span.key()).await?;
        }
        Ok(())
    }

    /// Writes the segment of `span` holding `listed` (unless the one there is already it),
    /// copies taken from the `old` segments where they match; `None` when nothing could be
    /// copied (no tags), so no segment is kept.
    async fn write_segment(
        &self,
        span: Span,
        mut listed: Vec<Listed>,
        old: &[Span],
    ) -> Result<Option<Span>, Error> {
        if listed.iter().all(|l| l.tag.is_none()) {
            return Ok(None); // Nothing could be copied, and no copy will ever be read.
        }
        listed.sort_by_key(|l| l.dossier);
        let mut olds = Vec::new();
        for s in old.iter().filter(|s| s.overlaps(span)) {
            olds.push((*s, self.segment(*s).await?));
        }
        let copies: Vec<&Copies> = olds.iter().map(|(_, c)| c).collect();
        let lines = futures::stream::iter(listed.into_iter().map(|l| self.line(&copies, l)))
            .buffered(READS_IN_FLIGHT)
            .try_collect::<Vec<_>>()
            .await?;
        let (entries, lines): (Vec<_>, Vec<_>) = lines.into_iter().flatten().unzip();
        let unchanged = matches!(&olds[..], [(s, c)] if *s == span
            && entries.len() == c.entries.len()
            && entries.iter().zip(&c.entries).all(|(a, (b, _))| a == b));
        if !unchanged {
            let bytes = Copies::render(span, entries, &lines)?;
            self.sink.put_small(&span.key(), bytes).await?;
            self.segments_written.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Some(span))
    }

    /// The entry and line of `listed` in a new segment: its copy in one of `old` if it still
    /// matches, else its shard read and written compact; `None` when it cannot be copied (no
    /// tag, or a shard that does not parse: readers will read it, and see why).
    async fn line(
        &self,
        old: &[&Copies],
        listed: Listed,
    ) -> Result<Option<(SegmentEntry, Bytes)>, Error> {
        let Some(tag) = listed.tag else {
            return Ok(None);
        };
        let entry = SegmentEntry {
            dossier: listed.dossier,
            tag,
            size: listed.size,
        };
        for copies in old {
            if let Some(line) = copies.matching(&entry) {
                return Ok(Some((entry, line)));
            }
        }
        let shard = match self.read_shard(listed.dossier).await {
            Ok(Some(shard)) => shard,
            Ok(None) | Err(Error::Manifest { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let json = serde_json::to_vec(&shard).map_err(|e| Error::Manifest {
            key: shard_key(listed.dossier),
            reason: e.to_string(),
        })?;
        Ok(Some((entry, Bytes::from(json))))
    }
}

impl Block {
    fn lookup(&self, n: u64) -> Lookup {
        let Ok(i) = self.listed.binary_search_by_key(&n, |l| l.dossier) else {
            return Lookup::Absent;
        };
        let listed = &self.listed[i];
        let copy = listed.tag.as_ref().and_then(|tag| {
            self.copies.matching(&SegmentEntry {
                dossier: n,
                tag: tag.clone(),
                size: listed.size,
            })
        });
        copy.map_or(Lookup::Read, Lookup::Copy)
    }

    /// Whether the segment is not the listing's copy (a shard without its copy, or a copy of
    /// a shard no longer there). Shards listed without a tag can have no copy: they do not
    /// count, so a backend that lists no tags never compacts.
    fn stale(&self) -> bool {
        let tagged = self.listed.iter().filter(|l| l.tag.is_some());
        tagged.clone().count() != self.copies.entries.len()
            || tagged
                .into_iter()
                .any(|l| self.lookup(l.dossier) == Lookup::Read)
    }
}

impl Copies {
    /// The line of the copy `entry` describes, if the segment has that very copy.
    fn matching(&self, entry: &SegmentEntry) -> Option<Bytes> {
        let i = (self.entries)
            .binary_search_by_key(&entry.dossier, |(e, _)| e.dossier)
            .ok()?;
        let (found, line) = &self.entries[i];
        (found == entry).then(|| line.clone())
    }

    /// Reads a segment whose first cell is `block` from its lines; the reason when it is not
    /// one.
    fn parse(block: u64, lines: Vec<Bytes>) -> Result<Copies, String> {
        let mut lines = lines.into_iter();
        let first = lines.next().ok_or("empty")?;
        let header: SegmentHeader =
            serde_json::from_slice(&first).map_err(|e| format!("header: {e}"))?;
        if header.version != WIRE_VERSION || header.block != block {
            return Err(format!(
                "version `{}` of block `{}`, not version `{WIRE_VERSION}` of block `{block}`",
                header.version, header.block
            ));
        }
        let ordered = header
            .shards
            .windows(2)
            .all(|w| w[0].dossier < w[1].dossier);
        if !ordered {
            return Err("copies not in dossier order".to_owned());
        }
        let count = header.shards.len();
        let entries: Vec<_> = header.shards.into_iter().zip(lines).collect();
        if entries.len() != count {
            return Err(format!("{count} copies announced, {} found", entries.len()));
        }
        Ok(Copies { entries })
    }

    /// The segment of `span`: the header, then `lines` (one compact JSON shard each).
    fn render(span: Span, shards: Vec<SegmentEntry>, lines: &[Bytes]) -> Result<Bytes, Error> {
        let header = SegmentHeader {
            version: WIRE_VERSION,
            block: span.first,
            shards,
        };
        let mut out = serde_json::to_vec(&header).map_err(|e| Error::Manifest {
            key: span.key(),
            reason: e.to_string(),
        })?;
        for line in lines {
            out.push(b'\n');
            out.extend_from_slice(line);
        }
        out.push(b'\n');
        Ok(Bytes::from(out))
    }
}

/// The lines of `stream`, without their `\n` (compact JSON never holds a raw newline), each
/// copied into a buffer of its own (see [`Copies`]).
async fn lines(mut stream: ByteStream) -> Result<Vec<Bytes>, crate::sink::Error> {
    let mut splitter = Lines::default();
    while let Some(chunk) = stream.try_next().await? {
        splitter.push(&chunk);
    }
    Ok(splitter.finish())
}

/// Cuts bytes that come in chunks into lines.
#[derive(Default)]
struct Lines {
    done: Vec<Bytes>,
    partial: Vec<u8>,
}

impl Lines {
    fn push(&mut self, mut chunk: &[u8]) {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&chunk[..end]);
            let line = std::mem::take(&mut self.partial).into_boxed_slice();
            self.done.push(Bytes::from(line));
            chunk = &chunk[end + 1..];
        }
        self.partial.extend_from_slice(chunk);
    }

    /// The lines, the last one even without its `\n`.
    fn finish(mut self) -> Vec<Bytes> {
        if !self.partial.is_empty() {
            self.done.push(Bytes::from(self.partial.into_boxed_slice()));
        }
        self.done
    }
}

fn not_ordered(span: Span, why: &str) -> Error {
    Error::Manifest {
        key: span.key(),
        reason: why.to_owned(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
