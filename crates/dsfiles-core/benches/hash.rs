//! Throughput of the digests every downloaded byte goes through, one core each:
//! `cargo bench -p dsfiles-core --bench hash` (run by `cargo xtask bench`, which puts the
//! figures in docs/benchmarks.md). Prints one line per digest: `NAME<TAB>MB/s`.

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

/// Feeds `n` copies of `chunk` to `hasher`; returns a byte of the digest (so that the work
/// cannot be optimised away).
fn stream<H>(
    mut hasher: H,
    chunk: &[u8],
    n: usize,
    update: fn(&mut H, &[u8]),
    first: fn(H) -> u8,
) -> u8 {
    for _ in 0..n {
        update(&mut hasher, chunk);
    }
    first(hasher)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter, if any, is ignored: there are three figures.
    let chunk: Vec<u8> = (0..CHUNK)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8)
        .collect();
    let n = TOTAL / CHUNK;
    let results = [
        (
            "md5 (dsfiles_core::hash::Md5)",
            best(&chunk, |c| {
                stream(
                    dsfiles_core::hash::Md5::new(),
                    c,
                    n,
                    |h, d| h.update(d),
                    |h| h.finalize()[0],
                )
            }),
        ),
        (
            "md5 (md-5 crate, asm)",
            best(&chunk, |c| {
                stream(
                    md5::Md5::new(),
                    c,
                    n,
                    |h, d| h.update(d),
                    |h| h.finalize()[0],
                )
            }),
        ),
        (
            "sha256 (sha2 crate)",
            best(&chunk, |c| {
                stream(
                    sha2::Sha256::new(),
                    c,
                    n,
                    |h, d| h.update(d),
                    |h| h.finalize()[0],
                )
            }),
        ),
    ];
    let mut out = std::io::stdout().lock();
    for (name, mbps) in results {
        let _ = writeln!(out, "{name}\t{mbps:.0}");
    }
}
