//! MD5 (compared with DS's checksum) and SHA-256 (recorded) of a byte stream, computed without
//! a thread of its own: SHA-256 on the caller's task, MD5 in the process' MD5 engine
//! ([`engine`]), which hashes every large stream in flight side by side with multi-buffer MD5.
//!
//! Small streams (≤ [`INLINE_LIMIT`] bytes in all) are hashed inline, both digests: handing a
//! 4 KB file to another thread costs more than hashing it. Past that, SHA-256 (`sha2`, on the
//! CPU's SHA extensions where there are any) is updated with each chunk as it arrives, and MD5
//! chunks go to the engine in batches of about [`BATCH`] bytes, because a thread hand-off costs
//! microseconds (a wake-up on each side). The chunks are [`Bytes`]: the engine reads the very
//! buffers the download received, no copy, so the engine keeps each network buffer alive until
//! it is hashed, and the memory it holds is counted in bytes, not batches: the network's chunks
//! are as large as hyper's read buffer (up to about 400 KiB; 340 KiB on average and 680 KiB at
//! most in the bench's 2.2 GB case), so one chunk makes a batch and a count of batches would
//! bound nothing. Per stream, at most [`IN_ENGINE`] bytes (or one larger batch) wait in the
//! engine plus the batch the download is filling, i.e. about `2 × max(BATCH, one chunk)`, and a
//! slow engine slows the download down instead of buffering it.
//!
//! MD5 is this crate's own ([`md5`]: faster than the `md-5` crate; [`simd`] for several streams
//! at once). If the engine's thread cannot be started, large streams are hashed inline too.

mod engine;
mod gather;
mod md5;
mod simd;

pub use md5::Md5;

use std::fmt;

use base64::Engine as _;
use bytes::Bytes;
use sha2::Digest as _;

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
        sha256: sha2::Sha256,
        len: usize,
    },
    Engine {
        md5: engine::Stream,
        sha256: sha2::Sha256,
        /// Chunks not handed to the engine yet, and their size.
        batch: Vec<Bytes>,
        batched: usize,
    },
}

impl Hasher {
    pub fn start() -> Hasher {
        Hasher {
            state: State::Inline {
                md5: Md5::new(),
                sha256: sha2::Sha256::new(),
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
            // The stream is big: MD5 continues in the engine from where it is.
            let md5 = engine.join(std::mem::take(md5));
            let sha256 = std::mem::take(sha256);
            self.state = State::Engine {
                md5,
                sha256,
                batch: Vec::new(),
                batched: 0,
            };
        }
        if let State::Engine {
            md5,
            sha256,
            batch,
            batched,
        } = &mut self.state
        {
            sha256.update(&chunk);
            *batched += chunk.len();
            batch.push(chunk);
            if *batched >= BATCH {
                *batched = 0;
                md5.send(std::mem::take(batch)).await;
            }
        }
    }

    /// The digests of everything added.
    pub async fn finish(self) -> Result<Digests, Error> {
        let (md5, sha256) = match self.state {
            State::Inline { md5, sha256, .. } => (md5.finalize(), sha256.finalize()),
            State::Engine {
                md5, sha256, batch, ..
            } => {
                if !batch.is_empty() {
                    md5.send(batch).await;
                }
                (md5.finish().await?, sha256.finalize())
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

#[cfg(test)]
mod tests;
