//! MD5 (compared with DS's checksum) and SHA-256 (recorded) of a byte stream, computed on two
//! threads so that the two digests run on separate cores, beside the network and sink IO.
//!
//! Small streams (≤ [`INLINE_LIMIT`] bytes in all) are hashed inline: handing a 4 KB file to
//! two threads costs more than hashing it. Past that, each digest gets its own blocking thread
//! fed through a bounded queue of batches of [`Bytes`] (clones share the buffers, so both
//! threads read the same memory). Chunks are grouped into batches of about [`BATCH`] bytes
//! because a thread hand-off costs microseconds (a wake-up on each side): per 16 KiB network
//! chunk that would eat a sizeable share of the CPU the second core brings. At most [`QUEUE`]
//! batches wait per thread, so the memory held per stream stays below about
//! `(QUEUE + 2) × (BATCH + one network chunk)`, and a slow hasher slows the download down
//! instead of buffering it.
//!
//! MD5 is this crate's own ([`md5`]: faster than the `md-5` crate); SHA-256 is `sha2`'s, which
//! uses the CPU's SHA extensions where there are any.

mod md5;

pub use md5::Md5;

use std::fmt;

use base64::Engine as _;
use bytes::Bytes;
use sha2::Digest as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Error;

/// Streams up to this many bytes are hashed inline, on the caller's thread.
pub const INLINE_LIMIT: usize = 64 * 1024;
/// Bytes handed to the hashing threads at once (the last batch of a stream may be smaller, a
/// batch ends with the chunk that reaches this size).
pub const BATCH: usize = 256 * 1024;
/// Batches waiting per hashing thread.
pub const QUEUE: usize = 2;

/// Chunks hashed together by both threads.
type Batch = std::sync::Arc<Vec<Bytes>>;

/// Digests of the bytes that went through a [`Hasher`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digests {
    /// Base64 MD5, as DS spells `checksum`.
    pub md5_base64: String,
    /// Lowercase hex SHA-256.
    pub sha256_hex: String,
}

/// MD5 and SHA-256 of a stream fed chunk by chunk; see the module docs. Needs a Tokio runtime
/// (its threads come from the blocking pool).
pub struct Hasher {
    state: State,
}

enum State {
    Inline {
        md5: Md5,
        sha256: sha2::Sha256,
        len: usize,
    },
    Threads {
        md5: Lane,
        sha256: Lane,
        /// Chunks not handed over yet, and their size.
        batch: Vec<Bytes>,
        batched: usize,
    },
}

/// One digest computed on a blocking thread.
struct Lane {
    tx: mpsc::Sender<Batch>,
    task: JoinHandle<Vec<u8>>,
}

/// A digest a [`Lane`] computes.
trait StreamDigest: Send + 'static {
    fn feed(&mut self, data: &[u8]);
    fn digest(self) -> Vec<u8>;
}

impl StreamDigest for Md5 {
    fn feed(&mut self, data: &[u8]) {
        self.update(data);
    }

    fn digest(self) -> Vec<u8> {
        self.finalize().to_vec()
    }
}

impl StreamDigest for sha2::Sha256 {
    fn feed(&mut self, data: &[u8]) {
        self.update(data);
    }

    fn digest(self) -> Vec<u8> {
        self.finalize().to_vec()
    }
}

impl Lane {
    fn start<D: StreamDigest>(mut digest: D) -> Lane {
        let (tx, mut rx) = mpsc::channel::<Batch>(QUEUE);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(batch) = rx.blocking_recv() {
                for chunk in batch.iter() {
                    digest.feed(chunk);
                }
            }
            digest.digest()
        });
        Lane { tx, task }
    }

    async fn send(&self, batch: Batch) {
        // Fails only if the thread is gone (it panicked): `finish` reports it.
        let _ = self.tx.send(batch).await;
    }

    async fn finish(self, what: &'static str) -> Result<Vec<u8>, Error> {
        drop(self.tx);
        self.task.await.map_err(|e| Error::Internal {
            what,
            reason: e.to_string(),
        })
    }
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

    /// Adds `chunk`; waits while a hashing thread is [`QUEUE`] batches behind.
    pub async fn update(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if let State::Inline { md5, sha256, len } = &mut self.state {
            if *len + chunk.len() <= INLINE_LIMIT {
                md5.update(&chunk);
                sha256.update(&chunk);
                *len += chunk.len();
                return;
            }
            // The stream is big: move the digests computed so far to their threads.
            let md5 = std::mem::take(md5);
            let sha256 = std::mem::take(sha256);
            self.state = State::Threads {
                md5: Lane::start(md5),
                sha256: Lane::start(sha256),
                batch: Vec::new(),
                batched: 0,
            };
        }
        if let State::Threads {
            md5,
            sha256,
            batch,
            batched,
        } = &mut self.state
        {
            *batched += chunk.len();
            batch.push(chunk);
            if *batched >= BATCH {
                *batched = 0;
                send(md5, sha256, std::mem::take(batch)).await;
            }
        }
    }

    /// The digests of everything added.
    pub async fn finish(self) -> Result<Digests, Error> {
        let (md5, sha256) = match self.state {
            State::Inline { md5, sha256, .. } => {
                (md5.finalize().to_vec(), sha256.finalize().to_vec())
            }
            State::Threads {
                md5, sha256, batch, ..
            } => {
                if !batch.is_empty() {
                    send(&md5, &sha256, batch).await;
                }
                let (md5, sha256) = tokio::join!(
                    md5.finish("the MD5 thread"),
                    sha256.finish("the SHA-256 thread")
                );
                (md5?, sha256?)
            }
        };
        Ok(Digests {
            md5_base64: base64::engine::general_purpose::STANDARD.encode(md5),
            sha256_hex: hex::encode(sha256),
        })
    }
}

/// Hands `batch` to both threads.
async fn send(md5: &Lane, sha256: &Lane, batch: Vec<Bytes>) {
    let batch: Batch = std::sync::Arc::new(batch);
    md5.send(std::sync::Arc::clone(&batch)).await;
    sha256.send(batch).await;
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.state {
            State::Inline { len, .. } => format!("inline ({len} bytes)"),
            State::Threads { .. } => "threads".to_owned(),
        };
        f.debug_struct("Hasher").field("mode", &mode).finish()
    }
}

#[cfg(test)]
mod tests;
