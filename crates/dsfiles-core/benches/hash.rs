//! Throughput of the digests every downloaded byte goes through, one core each:
//! `cargo bench -p dsfiles-core --bench hash` (run by `cargo xtask bench`, which puts the
//! figures in docs/benchmarks.md). Prints one line per digest: `NAME<TAB>MB/s`.
//!
//! Single-stream MD5 is one chain of dependent steps; the other MD5 rows hash 2, 3, 8 and 16
//! streams side by side (`dsfiles_core::hash::md5_side_by_side`, the kernels of the MD5 engine
//! that serves concurrent downloads: the kernel `hash::simd::compress` picks for that many
//! streams on this CPU — vector lanes where they pay, streams interleaved in general-purpose
//! registers where they do not) and count the bytes of all of them. The last SHA-256 row hashes
//! two streams at a time (`dsfiles_core::hash::sha256_side_by_side`, the engine's pairs).

use std::io::Write as _;
use std::time::Instant;

use md5::Digest as _;

/// Bytes hashed per measurement, in chunks of `CHUNK` (a network read's order of size).
const TOTAL: usize = 1 << 30;
const CHUNK: usize = 256 * 1024;
const ROUNDS: usize = 3;

/// The best of `ROUNDS` runs of `f` over `TOTAL` bytes, in MB/s.
fn best(chunk: &[u8], mut f: impl FnMut(&[u8]) -> u8) -> f64 {
    let mut best = 0.0f64;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        std::hint::black_box(f(chunk));
        best = best.max(TOTAL as f64 / started.elapsed().as_secs_f64() / 1e6);
    }
    best
}

fn main() {
    // `cargo bench` passes `--bench`; a filter, if any, is ignored: there are nine figures.
    let chunk: Vec<u8> = (0..CHUNK)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8)
        .collect();
    let n = TOTAL / CHUNK;
    // Each digest's own `new`/`update`/`finalize` (the same names for all three).
    macro_rules! throughput {
        ($new:expr) => {
            best(&chunk, |c| {
                let mut hasher = $new;
                for _ in 0..n {
                    hasher.update(c);
                }
                hasher.finalize()[0]
            })
        };
    }
    // `streams` messages of one chunk each, side by side, until `TOTAL` bytes in all.
    let side_by_side = |streams: usize| {
        best(&chunk, |c| {
            let messages = vec![c; streams];
            let mut first = 0;
            for _ in 0..TOTAL / (CHUNK * streams) {
                first ^= dsfiles_core::hash::md5_side_by_side(&messages)[0][0];
            }
            first
        })
    };
    // Two messages of one chunk each, as the engine pairs two downloads, until `TOTAL` bytes.
    let sha256_pairs = || {
        best(&chunk, |c| {
            let mut first = 0;
            for _ in 0..TOTAL / (CHUNK * 2) {
                first ^= dsfiles_core::hash::sha256_side_by_side(&[c, c])[0][0];
            }
            first
        })
    };
    let results = [
        (
            "md5, single stream (dsfiles_core::hash::Md5)",
            throughput!(dsfiles_core::hash::Md5::new()),
        ),
        ("md5 (md-5 crate, asm)", throughput!(md5::Md5::new())),
        ("md5, multi-buffer, 2 streams", side_by_side(2)),
        ("md5, multi-buffer, 3 streams", side_by_side(3)),
        ("md5, multi-buffer, 8 streams", side_by_side(8)),
        ("md5, multi-buffer, 16 streams", side_by_side(16)),
        ("sha256 (sha2 crate)", throughput!(sha2::Sha256::new())),
        (
            "sha256, single stream (dsfiles_core::hash::Sha256)",
            throughput!(dsfiles_core::hash::Sha256::new()),
        ),
        ("sha256, 2 streams side by side", sha256_pairs()),
    ];
    let mut out = std::io::stdout().lock();
    for (name, mbps) in results {
        let _ = writeln!(out, "{name}\t{mbps:.0}");
    }
}
