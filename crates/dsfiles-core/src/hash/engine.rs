//! The hashing engine ("the MD5 engine"): one thread per process, started on first use, that
//! computes the MD5 of every large stream in flight, several at once with multi-buffer MD5
//! ([`super::simd`]), and the SHA-256 of those that join with theirs, two at a time.
//!
//! Streams join ([`Engine::join`]) and leave (their [`Stream`] is finished or dropped) at any
//! time. Each round the engine takes one 64-byte block from every stream that has a whole block
//! queued — as many as one compression serves (16 with AVX-512, 8 with AVX2, 3 without), in
//! turn when more are ready — gathers them into the first lanes and runs the cheapest kernel for
//! that many ([`simd::compress`]); streams with nothing queued sit out, and a stream alone runs
//! the scalar MD5 over its contiguous blocks in place. The SHA-256 of the very same blocks follows
//! each compression, the streams that have one paired in lane order ([`sha256::compress_lanes`]):
//! both digests read each block where it lies, and a stream's two states always stand at the same
//! byte. Padding is per stream, with the scalar [`Md5`] and [`Sha256`], when its `finish` arrives
//! and everything sent before it is hashed.
//!
//! **Invariant: a stream holds at most [`IN_ENGINE`] bytes in the engine, or one batch if that
//! batch alone is larger.** [`Stream::send`] takes one permit of the stream's semaphore
//! (`IN_ENGINE` in all) per byte of the batch, capped at `IN_ENGINE`, and the permit travels
//! with the batch; the engine drops it once the batch is hashed, or once less than a block of it
//! is left: that tail is copied into the stream's `carry` (`Member::stash_tail`), since it is
//! only hashed with the next batch's first bytes, and the next batch may be the one waiting for
//! the permit. A download therefore waits for the engine instead of buffering ahead of it,
//! whatever the number of streams. If the engine thread is gone (it panicked), its channel
//! drops every queued batch with its permit, nobody waits forever, and [`Stream::finish`]
//! reports the error.
//!
//! The engine does not hash a batch the moment it arrives: it waits a little for other streams
//! to fill its lanes, by the rules of [`super::gather`] (about as long as the stream takes to
//! fill its next batch, so that the download goes on meanwhile).
//!
//! Why one thread for all streams: the vector lanes and the SHA-256 pairs are only filled by
//! streams side by side, and a hand-off costs a wake-up on each side, so one per batch (256 KiB)
//! is the least. With SHA-256 that thread does about 1.5 s of a 2.2 GB sync's work on the bench
//! host (MD5 at about 7 lanes, SHA-256 at 3.2–3.6 GB/s in pairs): it keeps up with a network
//! several times as fast. Without the SHA extensions SHA-256 stays on each download's task
//! ([`super::Hasher`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::IN_ENGINE;
use super::gather::{self, Next, Ready};
use super::md5::{self, Md5};
use super::sha256::{self, Sha256};
use super::simd::{self, Lanes, Width};
use crate::Error;

/// Blocks per stream hashed before the engine looks at its messages again (16 KiB per lane):
/// long enough to amortise gathering the lanes, short enough that a stream joining or finishing
/// waits at most a fraction of a millisecond.
const BURST: usize = 256;

/// What streams tell the engine, in order per stream (one channel for all).
enum Msg {
    Join {
        id: u64,
        md5: Md5,
        /// The stream's SHA-256 so far, when the engine computes it too.
        sha256: Option<Sha256>,
    },
    Batch {
        id: u64,
        chunks: Vec<Bytes>,
        permit: OwnedSemaphorePermit,
    },
    Finish {
        id: u64,
        reply: oneshot::Sender<Sums>,
    },
    Leave {
        id: u64,
    },
}

/// A finished stream's digests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sums {
    pub md5: [u8; 16],
    /// When the stream joined with its SHA-256 ([`Engine::join`]).
    pub sha256: Option<[u8; 32]>,
}

/// Blocks hashed, by path (for the tests and `Debug`).
#[derive(Debug, Default)]
struct Counters {
    scalar_blocks: AtomicU64,
    simd_blocks: AtomicU64,
    sha256_paired_blocks: AtomicU64,
}

/// A handle on an engine thread; see the module docs.
pub(crate) struct Engine {
    tx: mpsc::Sender<Msg>,
    next_id: AtomicU64,
    counters: Arc<Counters>,
}

impl Engine {
    /// The process' engine, started on first use with the widest kernel the CPU has; `None` if
    /// its thread could not be started (callers then hash inline).
    pub(crate) fn global() -> Option<&'static Engine> {
        static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
        ENGINE
            .get_or_init(|| Engine::start(Width::best()).ok())
            .as_ref()
    }

    /// A new engine thread using kernels up to `width`; it ends when the engine and all its
    /// streams are dropped.
    pub(crate) fn start(width: Width) -> std::io::Result<Engine> {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            width,
            members: Vec::new(),
            counters: Arc::clone(&counters),
            turn: 0,
            lanes: Lanes::default(),
            spare: [[0; 64]; simd::MAX_LANES],
        };
        std::thread::Builder::new()
            .name("dsfiles-md5".to_owned())
            .spawn(move || worker.run(&rx))?;
        Ok(Engine {
            tx,
            next_id: AtomicU64::new(0),
            counters,
        })
    }

    /// A new stream continuing `md5` (what was hashed inline so far), and `sha256` if the
    /// engine is to compute it too (fed the same bytes as `md5`).
    pub(crate) fn join(&self, md5: Md5, sha256: Option<Sha256>) -> Stream {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // A send fails only if the thread is gone: `finish` reports it.
        let _ = self.tx.send(Msg::Join { id, md5, sha256 });
        Stream {
            tx: self.tx.clone(),
            id,
            permits: Arc::new(Semaphore::new(IN_ENGINE)),
            finished: false,
        }
    }

    /// A stream the engine never heard of (its `finish` gets no answer).
    #[cfg(test)]
    pub(crate) fn unjoined(&self) -> Stream {
        Stream {
            tx: self.tx.clone(),
            id: u64::MAX,
            permits: Arc::new(Semaphore::new(IN_ENGINE)),
            finished: false,
        }
    }

    /// Blocks hashed so far: (MD5 scalar, MD5 in SIMD lanes, SHA-256 in pairs).
    #[cfg(test)]
    pub(crate) fn blocks(&self) -> (u64, u64, u64) {
        let c = &self.counters;
        (
            c.scalar_blocks.load(Ordering::Relaxed),
            c.simd_blocks.load(Ordering::Relaxed),
            c.sha256_paired_blocks.load(Ordering::Relaxed),
        )
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counters;
        f.debug_struct("Engine")
            .field("scalar_blocks", &c.scalar_blocks.load(Ordering::Relaxed))
            .field("simd_blocks", &c.simd_blocks.load(Ordering::Relaxed))
            .field(
                "sha256_paired_blocks",
                &c.sha256_paired_blocks.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

/// One stream's side of the engine.
#[derive(Debug)]
pub(crate) struct Stream {
    tx: mpsc::Sender<Msg>,
    id: u64,
    permits: Arc<Semaphore>,
    finished: bool,
}

impl Stream {
    /// Queues `chunks`; waits while the engine holds too many bytes of this stream for them to
    /// fit in [`IN_ENGINE`] (a batch larger than that waits until the engine holds none).
    pub(crate) async fn send(&self, chunks: Vec<Bytes>) {
        let len: usize = chunks.iter().map(Bytes::len).sum();
        // At most all the permits there are, so a larger batch goes in alone (`IN_ENGINE` is
        // far below `u32::MAX`). The semaphore is never closed: this waits only for permits.
        let want = u32::try_from(len.min(IN_ENGINE)).unwrap_or(u32::MAX);
        let Ok(permit) = Arc::clone(&self.permits).acquire_many_owned(want).await else {
            return;
        };
        let _ = self.tx.send(Msg::Batch {
            id: self.id,
            chunks,
            permit,
        });
    }

    /// The digests of everything sent.
    pub(crate) async fn finish(mut self) -> Result<Sums, Error> {
        self.finished = true;
        let (reply, answer) = oneshot::channel();
        let _ = self.tx.send(Msg::Finish { id: self.id, reply });
        answer.await.map_err(|_| Error::Internal {
            what: "the MD5 engine",
            reason: "its thread stopped before the digest was computed".to_owned(),
        })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.tx.send(Msg::Leave { id: self.id });
        }
    }
}

/// The engine thread's state.
struct Worker {
    width: Width,
    members: Vec<Member>,
    counters: Arc<Counters>,
    /// Where the search for ready streams starts, so that all get lanes in turn.
    turn: usize,
    lanes: Lanes,
    /// A block per lane, for lanes whose next block is not whole in one chunk.
    spare: [simd::Block; simd::MAX_LANES],
}

impl Worker {
    fn run(mut self, rx: &mpsc::Receiver<Msg>) {
        loop {
            while let Ok(msg) = rx.try_recv() {
                self.apply(msg);
            }
            self.answer_finished();
            match self.next() {
                Next::Hash => self.hash_some(),
                // Nothing to hash: sleep until a stream says something, or end when all are gone.
                Next::Sleep => match rx.recv() {
                    Ok(msg) => self.apply(msg),
                    Err(mpsc::RecvError) => return,
                },
                Next::WaitUntil(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(msg) => self.apply(msg),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        // Nobody is left to send: hash what is queued, then sleep ends the loop.
                        Err(mpsc::RecvTimeoutError::Disconnected) => self.hash_some(),
                    }
                }
            }
        }
    }

    /// Hash now, wait for company, or sleep ([`gather::next`]).
    fn next(&self) -> Next {
        let ready: Vec<Ready> = self
            .members
            .iter()
            .filter_map(|m| {
                let deadline = m.queue.front()?.deadline;
                (m.available >= 64).then_some(Ready {
                    finishing: m.reply.is_some(),
                    deadline,
                })
            })
            .collect();
        gather::next(
            &ready,
            self.members.len(),
            self.width.lanes(),
            Instant::now(),
        )
    }

    fn member(&mut self, id: u64) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::Join { id, md5, sha256 } => self.members.push(Member::new(id, md5, sha256)),
            Msg::Batch { id, chunks, permit } => {
                if let Some(member) = self.member(id) {
                    member.push(chunks, permit);
                }
            }
            // An unknown stream's reply is dropped: its `finish` reports the error.
            Msg::Finish { id, reply } => {
                if let Some(member) = self.member(id) {
                    member.reply = Some(reply);
                }
            }
            Msg::Leave { id } => self.members.retain(|m| m.id != id),
        }
    }

    /// Pads and answers every finishing stream with less than a block left.
    fn answer_finished(&mut self) {
        let mut k = 0;
        while k < self.members.len() {
            if self.members[k].reply.is_some() && self.members[k].available < 64 {
                let mut member = self.members.swap_remove(k);
                if let Some(reply) = member.reply.take() {
                    let _ = reply.send(member.digest());
                }
            } else {
                k += 1;
            }
        }
    }

    /// Hashes up to [`BURST`] blocks of every stream with a whole block queued (as many as one
    /// compression serves).
    fn hash_some(&mut self) {
        let ready = self.ready();
        match ready.as_slice() {
            [] => {}
            [one] => self.scalar(*one),
            _ => self.simd(&ready),
        }
    }

    /// Streams with a whole block queued, starting from this turn's, as many as a compression
    /// serves.
    fn ready(&mut self) -> Vec<usize> {
        let n = self.members.len();
        let start = if n == 0 { 0 } else { self.turn % n };
        self.turn = self.turn.wrapping_add(1);
        (0..n)
            .map(|k| (start + k) % n)
            .filter(|&i| self.members[i].available >= 64)
            .take(self.width.lanes())
            .collect()
    }

    fn scalar(&mut self, i: usize) {
        let blocks = self.members[i].scalar_burst(BURST);
        self.counters
            .scalar_blocks
            .fetch_add(blocks as u64, Ordering::Relaxed);
    }

    /// Rounds of one block from each of `ready`, side by side, each lane reading its blocks
    /// where they lie in its stream's chunk ([`Member::run`]); a lane whose next block
    /// straddles two chunks or starts in `carry` gets it assembled in `spare`, and the call is
    /// one round.
    fn simd(&mut self, ready: &[usize]) {
        let Worker {
            width,
            members,
            counters,
            lanes,
            spare,
            ..
        } = self;
        let n = ready.len().min(simd::MAX_LANES);
        let mut assembled = [false; simd::MAX_LANES];
        let mut sha256s = [None; simd::MAX_LANES];
        for (lane, &i) in ready.iter().enumerate() {
            lanes.set_state(lane, members[i].state);
            sha256s[lane] = members[i].sha256;
            if members[i].run(1).is_empty() {
                members[i].read(&mut spare[lane]);
                assembled[lane] = true;
            }
        }
        let runs = lane_runs(members, ready, spare, assembled);
        let rounds = simd::compress(*width, lanes, &runs[..n]);
        let paired = sha256::compress_lanes(&mut sha256s[..n], &runs[..n], rounds);
        for ((lane, &i), assembled) in ready.iter().enumerate().zip(assembled) {
            let member = &mut members[i];
            member.state = lanes.state(lane);
            member.sha256 = sha256s[lane];
            member.compressed = member.compressed.wrapping_add(64 * rounds as u64);
            if !assembled {
                member.advance(rounds);
            }
            member.stash_tail();
        }
        let simd_blocks = (rounds * ready.len()) as u64;
        counters
            .simd_blocks
            .fetch_add(simd_blocks, Ordering::Relaxed);
        let paired = paired as u64;
        counters
            .sha256_paired_blocks
            .fetch_add(paired, Ordering::Relaxed);
    }
}

/// Each lane's blocks for a round of [`Worker::simd`]: those lying whole in its stream's chunk
/// (at most [`BURST`]), or the one block `assembled` for it in `spare`.
fn lane_runs<'a>(
    members: &'a [Member],
    ready: &[usize],
    spare: &'a [simd::Block; simd::MAX_LANES],
    assembled: [bool; simd::MAX_LANES],
) -> [&'a [simd::Block]; simd::MAX_LANES] {
    let mut runs: [&[simd::Block]; simd::MAX_LANES] = [&[]; simd::MAX_LANES];
    for (((run, &i), block), assembled) in
        runs.iter_mut().zip(ready).zip(spare.iter()).zip(assembled)
    {
        *run = match assembled {
            true => std::slice::from_ref(block),
            false => members[i].run(BURST),
        };
    }
    runs
}

/// Both digests of `blocks`, one stream alone: MD5 into `md5`, SHA-256 into `sha256` when the
/// engine computes it for that stream.
fn compress_both(md5: &mut [u32; 4], sha256: &mut Option<[u32; 8]>, blocks: &[simd::Block]) {
    md5::compress(md5, blocks.as_flattened());
    if let Some(sha256) = sha256 {
        simd::sha256(sha256, blocks);
    }
}

/// A batch queued in the engine.
struct Queued {
    chunks: Vec<Bytes>,
    /// Its sender's permits ([`IN_ENGINE`]), given back when the batch is dropped.
    _permit: OwnedSemaphorePermit,
    /// When it has waited long enough for other streams ([`gather`]).
    deadline: Instant,
}

/// A stream inside the engine: its MD5 state and the bytes queued for it.
struct Member {
    id: u64,
    state: [u32; 4],
    /// The SHA-256 state of the same bytes, when the engine computes it for this stream.
    sha256: Option<[u32; 8]>,
    /// Bytes compressed into `state` (a multiple of 64).
    compressed: u64,
    /// Bytes taken from the queue but not compressed yet (the first `carried`).
    carry: [u8; 64],
    carried: usize,
    /// Batches, each with the permit its sender took; read from `chunk`, `offset` of the first.
    queue: VecDeque<Queued>,
    /// When the last batch arrived (for the next one's patience, [`gather::patience`]).
    last_batch: Option<Instant>,
    chunk: usize,
    offset: usize,
    /// Bytes not compressed yet: `carried` plus the unread bytes of `queue`.
    available: usize,
    reply: Option<oneshot::Sender<Sums>>,
}

impl Member {
    /// A member continuing `md5`, and `sha256` if given: both fed the same bytes, so the bytes
    /// waiting for a whole block are the same and `md5`'s stand for both.
    fn new(id: u64, md5: Md5, sha256: Option<Sha256>) -> Member {
        let (state, compressed, carry, carried) = md5.into_parts();
        let sha256 = sha256.map(|sha256| {
            let (sha256, sha_compressed, sha_carried) = sha256.into_parts();
            debug_assert_eq!((sha_compressed, sha_carried), (compressed, carried));
            sha256
        });
        Member {
            id,
            state,
            sha256,
            compressed,
            carry,
            carried,
            queue: VecDeque::new(),
            last_batch: None,
            chunk: 0,
            offset: 0,
            available: carried,
            reply: None,
        }
    }

    fn push(&mut self, chunks: Vec<Bytes>, permit: OwnedSemaphorePermit) {
        self.available += chunks.iter().map(Bytes::len).sum::<usize>();
        let now = Instant::now();
        let deadline = now + gather::patience(self.last_batch.replace(now), now);
        self.queue.push_back(Queued {
            chunks,
            _permit: permit,
            deadline,
        });
        self.skip_read();
        self.stash_tail();
    }

    /// Once less than a block is left, copies it into `carry` and lets go of the batches it
    /// came from. Without this the last batch would keep its permits until the next batch
    /// completes its block, and that batch may be waiting for those very permits.
    fn stash_tail(&mut self) {
        if self.available < 64 && !self.queue.is_empty() {
            let mut tail = [0u8; 64];
            let n = self.read(&mut tail);
            self.carry[..n].copy_from_slice(&tail[..n]);
            self.carried = n;
            self.available = n;
        }
    }

    /// Moves past read chunks and batches (dropping a batch's permit lets its sender go on).
    fn skip_read(&mut self) {
        while let Some(Queued { chunks, .. }) = self.queue.front() {
            match chunks.get(self.chunk) {
                Some(chunk) if self.offset < chunk.len() => return,
                Some(_) => {
                    self.chunk += 1;
                    self.offset = 0;
                }
                None => {
                    self.queue.pop_front();
                    self.chunk = 0;
                    self.offset = 0;
                }
            }
        }
    }

    /// The whole blocks that lie in the current chunk from the next unread byte on, at most
    /// `max`: none when the next block straddles two chunks or starts in `carry`.
    fn run(&self, max: usize) -> &[simd::Block] {
        let chunk = self.queue.front().and_then(|q| q.chunks.get(self.chunk));
        let (Some(chunk), 0) = (chunk, self.carried) else {
            return &[];
        };
        let blocks = chunk
            .get(self.offset..)
            .unwrap_or_default()
            .as_chunks::<64>()
            .0;
        blocks.get(..max).unwrap_or(blocks)
    }

    /// Moves past the first `blocks` blocks of [`Member::run`] (no more than it had).
    fn advance(&mut self, blocks: usize) {
        self.offset += 64 * blocks;
        self.available -= 64 * blocks;
        self.skip_read();
    }

    /// Copies the next `out.len()` bytes (or all there are) into `out`; returns how many.
    fn read(&mut self, out: &mut [u8]) -> usize {
        let from_carry = self.carried.min(out.len());
        out[..from_carry].copy_from_slice(&self.carry[..from_carry]);
        self.carry.copy_within(from_carry..self.carried, 0);
        self.carried -= from_carry;
        let mut filled = from_carry;
        while filled < out.len() {
            let Some(chunk) = self.queue.front().and_then(|q| q.chunks.get(self.chunk)) else {
                break;
            };
            let rest = chunk.get(self.offset..).unwrap_or_default();
            let n = (out.len() - filled).min(rest.len());
            out[filled..filled + n].copy_from_slice(&rest[..n]);
            filled += n;
            self.offset += n;
            self.skip_read();
        }
        self.available -= filled;
        filled
    }

    /// Compresses up to `max` blocks with the scalar MD5, in place where they lie whole in a
    /// chunk; returns how many.
    fn scalar_burst(&mut self, max: usize) -> usize {
        let mut done = 0;
        while done < max && self.available >= 64 {
            let (mut state, mut sha256) = (self.state, self.sha256);
            let run = self.run(max - done);
            let in_place = run.len();
            compress_both(&mut state, &mut sha256, run);
            (self.state, self.sha256) = (state, sha256);
            if in_place > 0 {
                self.advance(in_place);
            } else {
                // The block straddles chunks (or starts in `carry`): assemble it.
                let mut block = [0u8; 64];
                self.read(&mut block);
                compress_both(
                    &mut self.state,
                    &mut self.sha256,
                    std::slice::from_ref(&block),
                );
            }
            let blocks = in_place.max(1);
            self.compressed = self.compressed.wrapping_add(64 * blocks as u64);
            done += blocks;
        }
        self.stash_tail();
        done
    }

    /// The digests, once less than a block is left (the rest is padded here).
    fn digest(&mut self) -> Sums {
        let mut tail = [0u8; 64];
        let n = self.read(&mut tail);
        let mut md5 = Md5::resume(self.state, self.compressed);
        md5.update(&tail[..n]);
        let sha256 = self.sha256.map(|state| {
            let mut sha256 = Sha256::resume(state, self.compressed);
            sha256.update(&tail[..n]);
            sha256.finalize()
        });
        Sums {
            md5: md5.finalize(),
            sha256,
        }
    }
}
