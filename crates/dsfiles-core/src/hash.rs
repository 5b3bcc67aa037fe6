//! MD5 (compared with DS's checksum) and SHA-256 (recorded) of a byte stream, computed without
//! a thread of its own: large streams go to the process' hashing engine ([`engine`]), which
//! hashes every large stream in flight side by side — MD5 with multi-buffer MD5, SHA-256 two
//! streams at a time on the CPU's SHA extensions.
//!
//! Small streams (≤ [`INLINE_LIMIT`] bytes in all) are hashed inline, both digests: handing a
//! 4 KB file to another thread costs more than hashing it. Past that, the chunks go to the
//! engine in batches of about [`BATCH`] bytes, because a thread hand-off costs microseconds (a
//! wake-up on each side), and the engine computes both digests where the CPU has the SHA
//! extensions; without them, SHA-256 is updated on the caller's task with each chunk as it
//! arrives ([`sha256_in_engine`] says why). The chunks are [`Bytes`]: the engine reads the very
//! buffers the download received, no copy, so the engine keeps each network buffer alive until
//! it is hashed, and the memory it holds is counted in bytes, not batches: the network's chunks
//! are as large as hyper's read buffer (up to about 400 KiB; 340 KiB on average and 680 KiB at
//! most in the bench's 2.2 GB case), so one chunk makes a batch and a count of batches would
//! bound nothing. Per stream, at most [`IN_ENGINE`] bytes (or one larger batch) wait in the
//! engine plus the batch the download is filling, i.e. about `2 × max(BATCH, one chunk)`, and a
//! slow engine slows the download down instead of buffering it.
//!
//! MD5 is this crate's own ([`md5`]: faster than the `md-5` crate; [`simd`] for several streams
//! at once); so is the streaming SHA-256 ([`sha256`], whose state moves into the engine), on
//! `sha2`'s compression or [`simd`]'s SHA-extension kernels, and the block buffering and padding
//! both share ([`blocks`]). If the engine's thread cannot be started, large streams are hashed
//! inline too.

mod blocks;
mod engine;
mod gather;
mod md5;
mod sha256;
mod simd;

pub use md5::Md5;
pub use sha256::Sha256;

use std::fmt;

use base64::Engine as _;
use bytes::Bytes;

use crate::Error;
use engine::Engine;
use simd::{Lanes, MAX_LANES, Width};

/// Streams up to this many bytes are hashed inline, on the caller's thread.
pub const INLINE_LIMIT: usize = 64 * 1024;
/// Bytes handed to the MD5 engine at once (the last batch of a stream may be smaller, a batch
/// ends with the chunk that reaches this size).
pub const BATCH: usize = 256 * 1024;
/// Bytes of one stream the MD5 engine holds at most, queued or being hashed; a single batch
/// larger than this is let in alone (see [`engine`]'s invariant). One batch: the engine hashes
/// it while the download reads the next, and no more is needed to keep both busy.
pub const IN_ENGINE: usize = BATCH;

/// Digests of the bytes that went through a [`Hasher`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digests {
    /// Base64 MD5, as DS spells `checksum`.
    pub md5_base64: String,
    /// Lowercase hex SHA-256.
    pub sha256_hex: String,
}

/// MD5 and SHA-256 of a stream fed chunk by chunk; see the module docs.
pub struct Hasher {
    state: State,
}

enum State {
    Inline {
        md5: Md5,
        sha256: Sha256,
        len: usize,
    },
    Engine {
        stream: engine::Stream,
        /// SHA-256 on this task, when the engine does not compute it ([`sha256_in_engine`]).
        sha256: Option<Sha256>,
        /// Chunks not handed to the engine yet, and their size.
        batch: Vec<Bytes>,
        batched: usize,
    },
}

/// Whether a large stream's SHA-256 goes to the engine with its MD5: where the CPU has the SHA
/// extensions, the engine hashes two streams at once for the cost of one
/// ([`simd::sha256_pair`]). Without them SHA-256 costs about four times as much, and one
/// thread for all streams would cap the sync: it stays on each download's own task.
fn sha256_in_engine() -> bool {
    simd::sha_ni()
}

impl Hasher {
    pub fn start() -> Hasher {
        Hasher {
            state: State::Inline {
                md5: Md5::new(),
                sha256: Sha256::new(),
                len: 0,
            },
        }
    }

    /// Adds `chunk`; waits while the MD5 engine holds [`IN_ENGINE`] bytes of this stream.
    pub async fn update(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if let State::Inline { md5, sha256, len } = &mut self.state {
            let big = *len + chunk.len() > INLINE_LIMIT;
            let Some(engine) = big.then(Engine::global).flatten() else {
                md5.update(&chunk);
                sha256.update(&chunk);
                *len += chunk.len();
                return;
            };
            // The stream is big: the engine continues from where it is.
            let (md5, sha256) = (std::mem::take(md5), std::mem::take(sha256));
            let (there, here) = match sha256_in_engine() {
                true => (Some(sha256), None),
                false => (None, Some(sha256)),
            };
            self.state = State::Engine {
                stream: engine.join(md5, there),
                sha256: here,
                batch: Vec::new(),
                batched: 0,
            };
        }
        if let State::Engine {
            stream,
            sha256,
            batch,
            batched,
        } = &mut self.state
        {
            if let Some(sha256) = sha256 {
                sha256.update(&chunk);
            }
            *batched += chunk.len();
            batch.push(chunk);
            if *batched >= BATCH {
                *batched = 0;
                stream.send(std::mem::take(batch)).await;
            }
        }
    }

    /// The digests of everything added.
    pub async fn finish(self) -> Result<Digests, Error> {
        let (md5, sha256) = match self.state {
            State::Inline { md5, sha256, .. } => (md5.finalize(), sha256.finalize()),
            State::Engine {
                stream,
                sha256,
                batch,
                ..
            } => {
                if !batch.is_empty() {
                    stream.send(batch).await;
                }
                let sums = stream.finish().await?;
                let sha256 = match sha256 {
                    Some(here) => here.finalize(),
                    None => sums.sha256.ok_or(Error::Internal {
                        what: "the MD5 engine",
                        reason: "it answered a stream without the SHA-256 it was given".to_owned(),
                    })?,
                };
                (sums.md5, sha256)
            }
        };
        Ok(Digests {
            md5_base64: base64::engine::general_purpose::STANDARD.encode(md5),
            sha256_hex: hex::encode(sha256),
        })
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.state {
            State::Inline { len, .. } => format!("inline ({len} bytes)"),
            State::Engine { .. } => "engine".to_owned(),
        };
        f.debug_struct("Hasher").field("mode", &mode).finish()
    }
}

/// The MD5 of each of `messages`, hashed side by side in the lanes of the widest multi-buffer
/// kernel this CPU has (16 at a time at most): what the engine does with concurrent downloads,
/// without its thread. For the digest benchmark and the tests.
pub fn md5_side_by_side(messages: &[&[u8]]) -> Vec<[u8; 16]> {
    md5_side_by_side_with(Width::best(), messages)
}

fn md5_side_by_side_with(width: Width, messages: &[&[u8]]) -> Vec<[u8; 16]> {
    let mut out = Vec::with_capacity(messages.len());
    let mut lanes = Lanes::default();
    for group in messages.chunks(MAX_LANES) {
        // Whole blocks common to all, side by side; the rest of each with the scalar MD5.
        let blocks = group.iter().map(|m| m.len() / 64).min().unwrap_or(0);
        for lane in 0..group.len() {
            lanes.set_state(lane, md5::INIT);
        }
        let runs: Vec<&[simd::Block]> = group
            .iter()
            .map(|m| &m.as_chunks::<64>().0[..blocks])
            .collect();
        simd::compress(width, &mut lanes, &runs);
        for (lane, message) in group.iter().enumerate() {
            let mut md5 = Md5::resume(lanes.state(lane), 64 * blocks as u64);
            md5.update(message.get(blocks * 64..).unwrap_or_default());
            out.push(md5.finalize());
        }
    }
    out
}

/// The SHA-256 of each of `messages`, two at a time as the engine hashes concurrent downloads
/// ([`simd::sha256_pair`]; one after the other without the SHA extensions). For the digest
/// benchmark and the tests.
pub fn sha256_side_by_side(messages: &[&[u8]]) -> Vec<[u8; 32]> {
    let mut out = Vec::with_capacity(messages.len());
    for group in messages.chunks(2) {
        let runs: Vec<&[simd::Block]> = group.iter().map(|m| m.as_chunks::<64>().0).collect();
        let blocks = runs.iter().map(|r| r.len()).min().unwrap_or(0);
        let mut states = [sha256::INIT; 2];
        match runs.as_slice() {
            [a, b] => simd::sha256_pair(&mut states, [a, b], blocks),
            [a] => simd::sha256(&mut states[0], a),
            _ => {}
        }
        // `blocks` were hashed of each (all of a message alone), the rest is fed below.
        for (message, state) in group.iter().zip(states) {
            let mut sha256 = Sha256::resume(state, 64 * blocks as u64);
            sha256.update(&message[64 * blocks..]);
            out.push(sha256.finalize());
        }
    }
    out
}

#[cfg(test)]
mod tests;
