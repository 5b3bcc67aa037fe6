//! The manifest shards as a run reads and writes them: one read per shard on local disk;
//! through compacted segments on object stores, so that reading the state of 100,000
//! dossiers costs about two requests per 1,000 dossiers, plus one read per shard that changed
//! since its segment was written.
//!
//! Rules:
//! - **The shards stay the only truth.** Every write is a write of the dossier's shard
//!   (`.dsfiles/dossiers/{n}.json`), exactly as without segments. A segment
//!   (`.dsfiles/segments/{b}.jsonl`, [`crate::wire::SegmentHeader`]) holds copies of the
//!   shards of block `b` (dossiers `b × 1000` to `b × 1000 + 999`), each with the entity tag
//!   and size its shard was listed with when copied.
//! - **A copy is used only if this run's listing of the block shows its shard with that same
//!   tag and size.** A listed shard without such a copy is read itself; a dossier whose shard
//!   is not listed has none. An entity tag changes whenever an object is replaced, so a
//!   segment that is stale, partial, unreadable, absent, written by another run or cut short
//!   by kill -9 costs reads, never a wrong answer: there is no marker to keep and no order
//!   between writes, and crash safety is what it is without segments.
//! - **What this run wrote is read from its shard**: the run's listing predates the write.
//! - **Only sinks that list in key order with tags use segments** ([`Sink::list_after`]: the
//!   object stores). On local disk a shard read is one small file read; segments would only
//!   add writes.
//! - **Reading.** A `Sequential` read (the recheck list and the full listing come in dossier
//!   order) lists the dossier's block and reads its segment once; a `Random` read (the
//!   updated-since listing comes in update order) uses its block only if it is already held,
//!   and else reads the shard, which is the read a changed dossier costs anyway. At most
//!   [`HELD_BLOCKS`] blocks are held.
//! - **Compaction**, at the end of a run: every block in which this run wrote a shard, or
//!   found a shard without its copy, is listed again and its segment rewritten, copies still
//!   matching kept byte for byte, the other shards read. One block at a time, so memory holds
//!   at most one segment being written whatever the size of the démarche; what the run
//!   remembers meanwhile is one bit per dossier it wrote.
//! - **Key order.** Block `b`'s shards are the keys listed after `{b × 1000}` up to
//!   `{b × 1000 + 999}.json`: within a block every number has the same number of digits
//!   (block 0 aside, whose shorter numbers sort earlier still), so that window holds the whole
//!   block; keys of other lengths that sort inside it are skipped. A listing out of key order
//!   is not trusted: the block's shards are then read one by one.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use tokio::sync::OnceCell;

use crate::Error;
use crate::sink::Sink;
use crate::state;
use crate::wire::{
    DOSSIERS_PREFIX, SEGMENT_DOSSIERS, SegmentEntry, SegmentHeader, Shard, StateObjects,
    WIRE_VERSION, segment_key, shard_key,
};

/// Blocks (listing and segment) held at a time.
pub(crate) const HELD_BLOCKS: usize = 3;
/// Shards read at a time while compacting.
const READS_IN_FLIGHT: usize = 16;
/// Words of a block's bit set (one bit per dossier number of the block).
const WORDS: usize = (SEGMENT_DOSSIERS as usize).div_ceil(64);

/// How a dossier's shard is about to be read (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Dossiers come in number order: list the block and read its segment.
    Sequential,
    /// Dossiers come in any order: use the block only if held.
    Random,
}

/// A run's reads and writes of manifest shards.
pub(crate) struct Shards {
    sink: Arc<dyn Sink>,
    /// Whether the sink lists in key order with tags.
    segmented: bool,
    held: Mutex<VecDeque<(u64, Slot)>>,
    /// Blocks to compact, each with the dossiers this run wrote in it.
    dirty: Mutex<BTreeMap<u64, [u64; WORDS]>>,
    shards_read: AtomicU64,
    segments_read: AtomicU64,
    blocks_listed: AtomicU64,
    segments_written: AtomicU64,
}

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

/// A segment as read: its bytes, and each copy's entry and line.
#[derive(Default)]
struct Copies {
    bytes: Bytes,
    /// In dossier order.
    entries: Vec<(SegmentEntry, Range<usize>)>,
}

/// Where a dossier's shard comes from.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    /// Not listed: the dossier has no shard.
    Absent,
    /// The copy at this line of the segment.
    Copy(Range<usize>),
    /// The shard itself must be read.
    Read,
}

impl Shards {
    pub fn new(sink: Arc<dyn Sink>) -> Shards {
        let segmented = sink.list_after(DOSSIERS_PREFIX, DOSSIERS_PREFIX).is_some();
        Shards {
            sink,
            segmented,
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
        match block.as_deref().map(|b| (b, b.lookup(n))) {
            Some((_, Lookup::Absent)) => Ok(None),
            Some((block, Lookup::Copy(line))) => {
                match state::parse(&shard_key(n), &block.copies.bytes[line]) {
                    Ok(shard) => Ok(Some(shard)),
                    Err(_) => self.read_shard(n).await,
                }
            }
            Some((_, Lookup::Read)) | None => self.read_shard(n).await,
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

    /// Rewrites the segment of every block this run wrote in or found out of date, one at a
    /// time. A block that cannot be compacted is logged and left: its segment only costs
    /// reads until a later run compacts it.
    pub async fn compact(&self) {
        let blocks = std::mem::take(&mut *lock(&self.dirty));
        lock(&self.held).clear();
        if !self.segmented {
            return;
        }
        for block in blocks.into_keys() {
            if let Err(e) = self.compact_block(block).await {
                let reason = crate::fetch::error_chain(&e);
                tracing::warn!("segment `{}` not rewritten: {reason}", segment_key(block));
            }
        }
    }

    async fn read_shard(&self, n: u64) -> Result<Option<Shard>, Error> {
        self.shards_read.fetch_add(1, Ordering::Relaxed);
        state::read(self.sink.as_ref(), &shard_key(n)).await
    }

    fn wrote(&self, n: u64) -> bool {
        let (block, bit) = (n / SEGMENT_DOSSIERS, n % SEGMENT_DOSSIERS);
        lock(&self.dirty)
            .get(&block)
            .is_some_and(|bits| bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    /// Marks `block` for compaction, and dossier `wrote` as written by this run.
    fn mark(&self, block: u64, wrote: Option<u64>) {
        let mut dirty = lock(&self.dirty);
        let bits = dirty.entry(block).or_insert([0; WORDS]);
        if let Some(bit) = wrote.map(|n| n % SEGMENT_DOSSIERS) {
            bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    fn held_block(&self, block: u64) -> Option<Arc<Block>> {
        let held = lock(&self.held);
        let (_, cell) = held.iter().find(|(b, _)| *b == block)?;
        cell.get().cloned().flatten()
    }

    /// `block` as held, else listed and read (once, however many tasks ask); `None` when
    /// unusable (then logged and marked for compaction).
    async fn block(&self, block: u64) -> Option<Arc<Block>> {
        let cell = {
            let mut held = lock(&self.held);
            match held.iter().find(|(b, _)| *b == block) {
                Some((_, cell)) => Arc::clone(cell),
                None => {
                    if held.len() >= HELD_BLOCKS {
                        held.pop_front();
                    }
                    let cell = Arc::new(OnceCell::new());
                    held.push_back((block, Arc::clone(&cell)));
                    cell
                }
            }
        };
        let load = || async {
            match self.load(block).await {
                Ok(loaded) => {
                    if loaded.stale() {
                        self.mark(block, None);
                    }
                    Some(Arc::new(loaded))
                }
                Err(e) => {
                    let reason = crate::fetch::error_chain(&e);
                    tracing::warn!("block {block} of the manifest read shard by shard: {reason}");
                    self.mark(block, None);
                    None
                }
            }
        };
        cell.get_or_init(load).await.clone()
    }

    async fn load(&self, block: u64) -> Result<Block, Error> {
        let listed = self.list(block).await?;
        // Without tags no copy can be trusted (s3s-fs lists without ETags): skip the read.
        let copies = if listed.iter().any(|l| l.tag.is_some()) {
            self.segment(block).await?
        } else {
            Copies::default()
        };
        Ok(Block { listed, copies })
    }

    /// The shards of `block` as listed now, in dossier order.
    async fn list(&self, block: u64) -> Result<Vec<Listed>, Error> {
        self.blocks_listed.fetch_add(1, Ordering::Relaxed);
        let first = block.saturating_mul(SEGMENT_DOSSIERS);
        let last = first.saturating_add(SEGMENT_DOSSIERS - 1);
        let offset = format!("{DOSSIERS_PREFIX}{first}");
        let end = shard_key(last);
        let Some(mut listing) = self.sink.list_after(DOSSIERS_PREFIX, &offset) else {
            return Err(not_ordered(
                block,
                "the destination cannot list in key order",
            ));
        };
        let mut listed = Vec::new();
        let mut previous = offset.clone();
        while let Some(entry) = listing.try_next().await? {
            if entry.key <= offset {
                continue; // A backend that ignores the offset.
            }
            if entry.key < previous {
                return Err(not_ordered(block, "the listing is not in key order"));
            }
            if entry.key > end {
                break;
            }
            let dossier = crate::wire::dossier_of_shard_key(&entry.key)
                .filter(|&n| (first..=last).contains(&n) && shard_key(n) == entry.key);
            if let Some(dossier) = dossier {
                let (tag, size) = (entry.tag, entry.size);
                listed.push(Listed { dossier, tag, size });
            }
            previous = entry.key;
        }
        listed.sort_by_key(|l| l.dossier);
        Ok(listed)
    }

    /// The segment of `block`: empty when absent or unreadable (then logged).
    async fn segment(&self, block: u64) -> Result<Copies, Error> {
        let key = segment_key(block);
        self.segments_read.fetch_add(1, Ordering::Relaxed);
        let Some(bytes) = self.sink.get_small(&key).await? else {
            return Ok(Copies::default());
        };
        Ok(Copies::parse(block, bytes).unwrap_or_else(|reason| {
            tracing::warn!("segment `{key}` is ignored: {reason}");
            Copies::default()
        }))
    }

    async fn compact_block(&self, block: u64) -> Result<(), Error> {
        let listed = self.list(block).await?;
        if !listed.is_empty() && listed.iter().all(|l| l.tag.is_none()) {
            return Ok(()); // Nothing could be copied, and no copy will ever be read.
        }
        let old = self.segment(block).await?;
        let key = segment_key(block);
        if listed.is_empty() {
            if !old.entries.is_empty() {
                self.sink.delete(&key).await?;
            }
            return Ok(());
        }
        let lines = futures::stream::iter(listed.into_iter().map(|l| self.line(&old, l)))
            .buffered(READS_IN_FLIGHT)
            .try_collect::<Vec<_>>()
            .await?;
        let (entries, lines): (Vec<_>, Vec<_>) = lines.into_iter().flatten().unzip();
        let unchanged = entries.len() == old.entries.len()
            && entries.iter().zip(&old.entries).all(|(a, (b, _))| a == b);
        if unchanged {
            return Ok(());
        }
        let bytes = Copies::render(block, entries, &lines)?;
        self.sink.put_small(&key, bytes).await?;
        self.segments_written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The entry and line of `listed` in a new segment: its copy in `old` if it still matches,
    /// else its shard read and written compact; `None` when it cannot be copied (no tag, or a
    /// shard that does not parse: readers will read it, and see why).
    async fn line(
        &self,
        old: &Copies,
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
        if let Some(line) = old.matching(&entry) {
            return Ok(Some((entry, old.bytes.slice(line))));
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
    fn matching(&self, entry: &SegmentEntry) -> Option<Range<usize>> {
        let i = (self.entries)
            .binary_search_by_key(&entry.dossier, |(e, _)| e.dossier)
            .ok()?;
        let (found, line) = &self.entries[i];
        (found == entry).then(|| line.clone())
    }

    /// Reads a segment of `block`; the reason when it is not one.
    fn parse(block: u64, bytes: Bytes) -> Result<Copies, String> {
        let mut lines = line_ranges(&bytes);
        let first = lines.next().ok_or("empty")?;
        let header: SegmentHeader =
            serde_json::from_slice(&bytes[first]).map_err(|e| format!("header: {e}"))?;
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
        Ok(Copies { bytes, entries })
    }

    /// A segment of `block`: the header, then `lines` (one compact JSON shard each).
    fn render(block: u64, shards: Vec<SegmentEntry>, lines: &[Bytes]) -> Result<Bytes, Error> {
        let header = SegmentHeader {
            version: WIRE_VERSION,
            block,
            shards,
        };
        let mut out = serde_json::to_vec(&header).map_err(|e| Error::Manifest {
            key: segment_key(block),
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

/// The ranges of `bytes`' lines, without their `\n` (compact JSON never holds a raw newline).
fn line_ranges(bytes: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let end =
            (bytes[start..].iter().position(|&b| b == b'\n')).map_or(bytes.len(), |i| start + i);
        let line = start..end;
        start = end + 1;
        Some(line)
    })
}

fn not_ordered(block: u64, why: &str) -> Error {
    Error::Manifest {
        key: segment_key(block),
        reason: why.to_owned(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
