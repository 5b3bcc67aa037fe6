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
        let mut sink = 0u8;
        sink ^= f(chunk);
        let mbps = TOTAL as f64 / started.elapsed().as_secs_f64() / 1e6;
        std::hint::black_box(sink);
        best = best.max(mbps);
    }
    best
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
                let mut h = dsfiles_core::hash::Md5::new();
                for _ in 0..n {
                    h.update(c);
                }
                h.finalize()[0]
            }),
        ),
        (
            "md5 (md-5 crate, asm)",
            best(&chunk, |c| {
                let mut h = md5::Md5::new();
                for _ in 0..n {
                    h.update(c);
                }
                h.finalize()[0]
            }),
        ),
        (
            "sha256 (sha2 crate)",
            best(&chunk, |c| {
                let mut h = sha2::Sha256::new();
                for _ in 0..n {
                    h.update(c);
                }
                h.finalize()[0]
            }),
        ),
    ];
    let mut out = std::io::stdout().lock();
    for (name, mbps) in results {
        let _ = writeln!(out, "{name}\t{mbps:.0}");
    }
}
