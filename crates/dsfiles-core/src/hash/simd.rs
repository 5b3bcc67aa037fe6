//! Multi-buffer MD5: one compression of a 64-byte block applied to up to 16 independent
//! streams at once, one 32-bit lane per stream — 8 lanes in an AVX2 register, 16 in an AVX-512
//! one — as in Intel's isa-l_crypto `md5_mb`. MD5 is one long chain of dependent steps inside a
//! stream, so one stream cannot use a vector unit; streams side by side can. And SHA-256 on the
//! CPU's SHA extensions, one stream or two interleaved ([`sha256_pair`]: the same latency-bound
//! chain, so a second stream costs next to nothing).
//!
//! **Invariant: this is the only module of the workspace with `unsafe`** (the workspace denies
//! `unsafe_code`, this module alone allows it, and `xtask/tests/tidy.rs` checks that no other
//! file says `unsafe`). Its `unsafe` is of three kinds, and nothing else:
//! - calling a `#[target_feature]` kernel, each time right after `is_x86_feature_detected!` said
//!   the CPU has that feature (std caches the answer; the check is one atomic load). Soundness
//!   does not depend on callers: a [`Width`] the CPU lacks falls back to a narrower one, and
//!   the SHA-256 functions to `sha2`'s portable code;
//! - unaligned loads and stores of one vector from or to a row of [`Lanes`], a `[u32; 16]`: 16
//!   lanes from its start, or 8 lanes from lane 0 or 8 (a const parameter checked at compile
//!   time), so in bounds by the types;
//! - unaligned loads of one [`Block`], a `[u8; 64]` borrowed from a stream's chunk: one 512-bit
//!   load, two 256-bit ones at offsets 0 and 32, or (SHA-256) one 128-bit load from each of its
//!   four `[u8; 16]` pieces, in bounds by the types.
//!
//! No raw pointer outlives the expression that makes it, nothing is transmuted, no alignment is
//! assumed. The 64 steps are written once ([`md5_steps`], RFC 1321's order) with constant
//! rotations, so each kernel compiles to immediates; the tests compare every width with the
//! scalar [`super::md5::compress`] on random states and blocks, and whole streams with the
//! `md-5` crate; the SHA-256 kernels are compared with `sha2`'s compression on random states
//! and blocks, whole streams with the `sha2` crate.
#![allow(unsafe_code)]

use super::{md5, sha256};

/// Lanes of the widest kernel.
pub(crate) const MAX_LANES: usize = 16;

/// A kernel: how many streams one compression serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Width {
    /// This crate's scalar MD5, two or three streams interleaved ([`compress`]).
    Scalar,
    /// 8 lanes of 32 bits in a 256-bit register.
    Avx2,
    /// 16 lanes in a 512-bit register (AVX-512F), with one-instruction round functions
    /// (`vpternlogd`) and rotations (`vprold`). Any three or more streams use all 16 lanes: a
    /// 16-lane round costs no more than an 8-lane one in 256-bit registers ([`compress`]), so a
    /// narrower kernel would save nothing.
    Avx512,
}

impl Width {
    /// The widths this CPU runs, narrowest first (always [`Width::Scalar`]).
    pub(crate) fn available() -> Vec<Width> {
        [Width::Scalar, Width::Avx2, Width::Avx512]
            .into_iter()
            .filter(|w| w.supported())
            .collect()
    }

    /// Streams one compression of this width serves at most.
    pub(crate) fn lanes(self) -> usize {
        match self {
            Width::Scalar => 3,
            Width::Avx2 => 8,
            Width::Avx512 => MAX_LANES,
        }
    }

    /// The widest width this CPU runs.
    pub(crate) fn best() -> Width {
        Width::available().last().copied().unwrap_or(Width::Scalar)
    }

    fn supported(self) -> bool {
        match self {
            Width::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Width::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Width::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx2")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Width::Avx2 | Width::Avx512 => false,
        }
    }
}

/// One 64-byte block of a stream.
pub(crate) type Block = [u8; 64];

/// The states of up to [`MAX_LANES`] streams, transposed: row `r` holds word `r` of every lane,
/// so that one vector load takes the same word of 8 or 16 streams.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lanes {
    state: [[u32; MAX_LANES]; 4],
}

impl Lanes {
    /// Sets the state of `lane` (< [`MAX_LANES`]; others are ignored).
    pub(crate) fn set_state(&mut self, lane: usize, state: [u32; 4]) {
        for (row, word) in self.state.iter_mut().zip(state) {
            if let Some(slot) = row.get_mut(lane) {
                *slot = word;
            }
        }
    }

    /// The state of `lane` (zeros past [`MAX_LANES`]).
    pub(crate) fn state(&self, lane: usize) -> [u32; 4] {
        self.state
            .map(|row| row.get(lane).copied().unwrap_or_default())
    }
}

/// Compresses, into the state of each lane `l < runs.len()` (at most [`MAX_LANES`] are
/// taken), the blocks of `runs[l]` one after the other: as many rounds as the shortest run has
/// blocks, which it returns. Lanes from `runs.len()` on may change; their states mean nothing.
///
/// The kernels read each block where it lies (a network buffer, in the engine) and transpose
/// it in registers; the states stay in registers from the first round to the last. The choice
/// follows the kernels' cost per round, timed in release builds (by hand and with `cargo bench
/// -p dsfiles-core --bench hash`) on the project's two bench hosts, an AMD EPYC and an Intel
/// Xeon, both with AVX-512 (AMD first): one stream, the scalar MD5 (80 and 96 ns); two,
/// interleaved in general-purpose registers (90 and 106 ns); three or more, the vector kernel
/// (AVX-512: 125 and 104 ns for any number of lanes up to 16; AVX2 up to 8 lanes: 128 and
/// 140 ns), where three interleaved took 120 and 200 ns. A vector round is one chain of
/// dependent steps, so it costs the same with one lane in use as with all: with two streams it
/// would waste 14 of 16 lanes (1,022 MB/s against 1,416 interleaved on the AMD host). Without a
/// vector unit, the scalar MD5 runs lane after lane.
pub(crate) fn compress(width: Width, lanes: &mut Lanes, runs: &[&[Block]]) -> usize {
    let runs = runs.get(..MAX_LANES).unwrap_or(runs);
    let rounds = runs.iter().map(|run| run.len()).min().unwrap_or(0);
    if rounds == 0 {
        return 0;
    }
    #[cfg(target_arch = "x86_64")]
    if runs.len() >= 3 {
        // Lanes without a stream compress the first lane's blocks again (ignored).
        let run = |l: usize| runs.get(l).copied().unwrap_or(runs[0]);
        if width == Width::Avx512 && Width::Avx512.supported() {
            // SAFETY: the CPU has AVX-512F, checked on the line above.
            unsafe { x86::compress16(&mut lanes.state, &std::array::from_fn(run), rounds) };
            return rounds;
        }
        if width >= Width::Avx2 && Width::Avx2.supported() {
            // SAFETY: the CPU has AVX2, checked on the line above.
            unsafe { x86::compress8::<0>(&mut lanes.state, &std::array::from_fn(run), rounds) };
            if runs.len() > 8 {
                let high = std::array::from_fn(|l| run(l + 8));
                // SAFETY: as above.
                unsafe { x86::compress8::<8>(&mut lanes.state, &high, rounds) };
            }
            return rounds;
        }
    }
    let _ = width;
    match runs {
        [a, b] => compress_interleaved(lanes, &[a, b], rounds),
        [a, b, c] => compress_interleaved(lanes, &[a, b, c], rounds),
        _ => {
            for (lane, run) in runs.iter().enumerate() {
                let mut state = lanes.state(lane);
                md5::compress(&mut state, run[..rounds].as_flattened());
                lanes.set_state(lane, state);
            }
        }
    }
    rounds
}

/// Whether this CPU has the SHA extensions (and the SSE4.1 the SHA-256 kernel also uses).
pub(crate) fn sha_ni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Compresses `blocks` into a SHA-256 `state`: with the SHA extensions where the CPU has them
/// (as fast as `sha2`'s own use of them, without its per-call state shuffles), else with
/// `sha2`'s portable function, block by block.
pub(crate) fn sha256(state: &mut [u32; 8], blocks: &[Block]) {
    #[cfg(target_arch = "x86_64")]
    if sha_ni() {
        // SAFETY: the CPU has SHA, SSE4.1 and SSSE3, checked on the line above.
        unsafe { x86::sha256_ni::<1>(std::array::from_mut(state), &[blocks], blocks.len()) };
        return;
    }
    for block in blocks {
        let block = sha2::digest::generic_array::GenericArray::from_slice(block);
        sha2::compress256(state, std::slice::from_ref(block));
    }
}

/// Compresses the first `rounds` blocks of `runs[0]` into `states[0]` and of `runs[1]` into
/// `states[1]` (fewer if a run is shorter), the two streams' instructions interleaved. A SHA-NI
/// round (`sha256rnds2`) waits for the one before it, and the unit can start another meanwhile:
/// one stream leaves it half idle, two fill it — 3,614 MB/s over both against 1,803 for one on
/// the bench host (an AMD EPYC, 1 GiB in 256 KiB pieces). Three or four streams were slower
/// than two there (2,490 and 3,200 MB/s): their message words no longer fit the 16 registers
/// the SHA instructions can name. Without the SHA extensions, one stream after the other.
pub(crate) fn sha256_pair(states: &mut [[u32; 8]; 2], runs: [&[Block]; 2], rounds: usize) {
    let rounds = rounds.min(runs[0].len()).min(runs[1].len());
    #[cfg(target_arch = "x86_64")]
    if sha_ni() {
        // SAFETY: the CPU has SHA, SSE4.1 and SSSE3, checked on the line above.
        unsafe { x86::sha256_ni::<2>(states, &runs, rounds) };
        return;
    }
    for (state, run) in states.iter_mut().zip(runs) {
        sha256(state, &run[..rounds]);
    }
}

/// RFC 1321's 64 steps, in its order: `$step!(ROUND, a, b, c, d, step, message word, rotation)`.
/// Each kernel defines `$step` for its registers; the constants stay literals, so rotations
/// are immediates.
macro_rules! md5_steps {
    ($step:ident, $a:ident, $b:ident, $c:ident, $d:ident) => {
        $step!(F, $a, $b, $c, $d, 0, 0, 7);
        $step!(F, $d, $a, $b, $c, 1, 1, 12);
        $step!(F, $c, $d, $a, $b, 2, 2, 17);
        $step!(F, $b, $c, $d, $a, 3, 3, 22);
        $step!(F, $a, $b, $c, $d, 4, 4, 7);
        $step!(F, $d, $a, $b, $c, 5, 5, 12);
        $step!(F, $c, $d, $a, $b, 6, 6, 17);
        $step!(F, $b, $c, $d, $a, 7, 7, 22);
        $step!(F, $a, $b, $c, $d, 8, 8, 7);
        $step!(F, $d, $a, $b, $c, 9, 9, 12);
        $step!(F, $c, $d, $a, $b, 10, 10, 17);
        $step!(F, $b, $c, $d, $a, 11, 11, 22);
        $step!(F, $a, $b, $c, $d, 12, 12, 7);
        $step!(F, $d, $a, $b, $c, 13, 13, 12);
        $step!(F, $c, $d, $a, $b, 14, 14, 17);
        $step!(F, $b, $c, $d, $a, 15, 15, 22);
        $step!(G, $a, $b, $c, $d, 16, 1, 5);
        $step!(G, $d, $a, $b, $c, 17, 6, 9);
        $step!(G, $c, $d, $a, $b, 18, 11, 14);
        $step!(G, $b, $c, $d, $a, 19, 0, 20);
        $step!(G, $a, $b, $c, $d, 20, 5, 5);
        $step!(G, $d, $a, $b, $c, 21, 10, 9);
        $step!(G, $c, $d, $a, $b, 22, 15, 14);
        $step!(G, $b, $c, $d, $a, 23, 4, 20);
        $step!(G, $a, $b, $c, $d, 24, 9, 5);
        $step!(G, $d, $a, $b, $c, 25, 14, 9);
        $step!(G, $c, $d, $a, $b, 26, 3, 14);
        $step!(G, $b, $c, $d, $a, 27, 8, 20);
        $step!(G, $a, $b, $c, $d, 28, 13, 5);
        $step!(G, $d, $a, $b, $c, 29, 2, 9);
        $step!(G, $c, $d, $a, $b, 30, 7, 14);
        $step!(G, $b, $c, $d, $a, 31, 12, 20);
        $step!(H, $a, $b, $c, $d, 32, 5, 4);
        $step!(H, $d, $a, $b, $c, 33, 8, 11);
        $step!(H, $c, $d, $a, $b, 34, 11, 16);
        $step!(H, $b, $c, $d, $a, 35, 14, 23);
        $step!(H, $a, $b, $c, $d, 36, 1, 4);
        $step!(H, $d, $a, $b, $c, 37, 4, 11);
        $step!(H, $c, $d, $a, $b, 38, 7, 16);
        $step!(H, $b, $c, $d, $a, 39, 10, 23);
        $step!(H, $a, $b, $c, $d, 40, 13, 4);
        $step!(H, $d, $a, $b, $c, 41, 0, 11);
        $step!(H, $c, $d, $a, $b, 42, 3, 16);
        $step!(H, $b, $c, $d, $a, 43, 6, 23);
        $step!(H, $a, $b, $c, $d, 44, 9, 4);
        $step!(H, $d, $a, $b, $c, 45, 12, 11);
        $step!(H, $c, $d, $a, $b, 46, 15, 16);
        $step!(H, $b, $c, $d, $a, 47, 2, 23);
        $step!(I, $a, $b, $c, $d, 48, 0, 6);
        $step!(I, $d, $a, $b, $c, 49, 7, 10);
        $step!(I, $c, $d, $a, $b, 50, 14, 15);
        $step!(I, $b, $c, $d, $a, 51, 5, 21);
        $step!(I, $a, $b, $c, $d, 52, 12, 6);
        $step!(I, $d, $a, $b, $c, 53, 3, 10);
        $step!(I, $c, $d, $a, $b, 54, 10, 15);
        $step!(I, $b, $c, $d, $a, 55, 1, 21);
        $step!(I, $a, $b, $c, $d, 56, 8, 6);
        $step!(I, $d, $a, $b, $c, 57, 15, 10);
        $step!(I, $c, $d, $a, $b, 58, 6, 15);
        $step!(I, $b, $c, $d, $a, 59, 13, 21);
        $step!(I, $a, $b, $c, $d, 60, 4, 6);
        $step!(I, $d, $a, $b, $c, 61, 11, 10);
        $step!(I, $c, $d, $a, $b, 62, 2, 15);
        $step!(I, $b, $c, $d, $a, 63, 9, 21);
    };
}

/// The compressions of `N` lanes interleaved step by step in general-purpose registers: one
/// stream's MD5 is a chain of dependent steps that leaves most of a core's execution units idle,
/// and a second or third chain fills them. For two or three streams, where a vector kernel
/// would run mostly empty lanes; no `unsafe`, any CPU. `rounds` blocks of each run (no run is
/// shorter).
fn compress_interleaved<const N: usize>(lanes: &mut Lanes, runs: &[&&[Block]; N], rounds: usize) {
    // Loads, not literals: see `super::md5`'s docs.
    let k: &[u32; 64] = std::hint::black_box(&md5::K);
    let row = |r: usize| std::array::from_fn::<u32, N, _>(|l| lanes.state[r][l]);
    let (mut a0, mut b0, mut c0, mut d0) = (row(0), row(1), row(2), row(3));
    for round in 0..rounds {
        let words: [[u32; 16]; N] = runs.map(|run| md5::words(&run[round]));
        let w = |l: usize, m: usize| words[l][m];
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        macro_rules! step {
            (F, $a:ident, $b:ident, $c:ident, $d:ident, $i:literal, $m:literal, $s:literal) => {
                for l in 0..N {
                    let fun = $d[l] ^ ($b[l] & ($c[l] ^ $d[l]));
                    $a[l] = md5::step($a[l], $b[l], w(l, $m).wrapping_add(k[$i]), fun, $s);
                }
            };
            (G, $a:ident, $b:ident, $c:ident, $d:ident, $i:literal, $m:literal, $s:literal) => {
                for l in 0..N {
                    // As in `md5::compress`: the half that does not wait for `b` goes in early.
                    let mk = w(l, $m).wrapping_add(k[$i]).wrapping_add($c[l] & !$d[l]);
                    $a[l] = md5::step($a[l], $b[l], mk, $b[l] & $d[l], $s);
                }
            };
            (H, $a:ident, $b:ident, $c:ident, $d:ident, $i:literal, $m:literal, $s:literal) => {
                for l in 0..N {
                    let fun = $b[l] ^ ($c[l] ^ $d[l]);
                    $a[l] = md5::step($a[l], $b[l], w(l, $m).wrapping_add(k[$i]), fun, $s);
                }
            };
            (I, $a:ident, $b:ident, $c:ident, $d:ident, $i:literal, $m:literal, $s:literal) => {
                for l in 0..N {
                    let fun = $c[l] ^ ($b[l] | !$d[l]);
                    $a[l] = md5::step($a[l], $b[l], w(l, $m).wrapping_add(k[$i]), fun, $s);
                }
            };
        }
        md5_steps!(step, a, b, c, d);
        for l in 0..N {
            a0[l] = a0[l].wrapping_add(a[l]);
            b0[l] = b0[l].wrapping_add(b[l]);
            c0[l] = c0[l].wrapping_add(c[l]);
            d0[l] = d0[l].wrapping_add(d[l]);
        }
    }
    for (r, v) in [a0, b0, c0, d0].into_iter().enumerate() {
        lanes.state[r][..N].copy_from_slice(&v);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Block;
    use super::md5::K;
    use super::sha256::K as SHA256_K;

    /// The states of the lanes, transposed ([`super::Lanes`]).
    type State = [[u32; super::MAX_LANES]; 4];

    /// The first two stages of a transpose of 32-bit words, which work within each 128-bit
    /// part of a vector alike in 256- and 512-bit registers: from `$n` rows, `u[4g + s]` holds,
    /// in 128-bit part k, word 4k + s of rows 4g..4g + 3. (Stage one, `t[2i]` and `t[2i + 1]`:
    /// rows 2i and 2i + 1 interleaved, words 4k, 4k + 1 and 4k + 2, 4k + 3 of each part.)
    macro_rules! interleave_by_128_bits {
        ($rows:expr, $n:literal, $zero:expr, $lo32:ident, $hi32:ident, $lo64:ident, $hi64:ident) => {{
            let rows = $rows;
            let mut t = [$zero; $n];
            for i in 0..$n / 2 {
                t[2 * i] = $lo32(rows[2 * i], rows[2 * i + 1]);
                t[2 * i + 1] = $hi32(rows[2 * i], rows[2 * i + 1]);
            }
            let mut u = [$zero; $n];
            for g in 0..$n / 4 {
                let (a, b, c, d) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
                u[4 * g] = $lo64(a, c);
                u[4 * g + 1] = $hi64(a, c);
                u[4 * g + 2] = $lo64(b, d);
                u[4 * g + 3] = $hi64(b, d);
            }
            u
        }};
    }

    /// Word `w` of 8 lanes in one vector each (`m[w]`), from the 8 lanes' blocks in two halves
    /// (`half[0][l]`: words 0–7 of lane `l`, `half[1][l]`: words 8–15): two 8 × 8 transposes.
    #[target_feature(enable = "avx2")]
    fn transpose8(half: [[__m256i; 8]; 2]) -> [__m256i; 16] {
        let mut m = [_mm256_setzero_si256(); 16];
        for (h, rows) in half.into_iter().enumerate() {
            // u[4g + s]: words s | s + 4 of rows 4g..4g + 3.
            let u = interleave_by_128_bits!(
                rows,
                8,
                _mm256_setzero_si256(),
                _mm256_unpacklo_epi32,
                _mm256_unpackhi_epi32,
                _mm256_unpacklo_epi64,
                _mm256_unpackhi_epi64
            );
            for s in 0..4 {
                m[8 * h + s] = _mm256_permute2x128_si256::<0x20>(u[s], u[4 + s]);
                m[8 * h + 4 + s] = _mm256_permute2x128_si256::<0x31>(u[s], u[4 + s]);
            }
        }
        m
    }

    /// Word `w` of 16 lanes in one vector each (`m[w]`), from the 16 lanes' blocks (`rows[l]`):
    /// a 16 × 16 transpose of 32-bit words.
    #[target_feature(enable = "avx512f")]
    fn transpose16(rows: [__m512i; 16]) -> [__m512i; 16] {
        // u[4g + s]: in quarter k, word 4k + s of rows 4g..4g + 3.
        let u = interleave_by_128_bits!(
            rows,
            16,
            _mm512_setzero_si512(),
            _mm512_unpacklo_epi32,
            _mm512_unpackhi_epi32,
            _mm512_unpacklo_epi64,
            _mm512_unpackhi_epi64
        );
        // m[4k + s]: quarter k of u[s], u[4 + s], u[8 + s], u[12 + s]. `EVEN` takes quarters
        // 0 and 2 of each operand, `ODD` quarters 1 and 3.
        const EVEN: i32 = 0b10_00_10_00;
        const ODD: i32 = 0b11_01_11_01;
        let mut m = [_mm512_setzero_si512(); 16];
        for s in 0..4 {
            let x0 = _mm512_shuffle_i32x4::<EVEN>(u[s], u[4 + s]);
            let y0 = _mm512_shuffle_i32x4::<EVEN>(u[8 + s], u[12 + s]);
            let x1 = _mm512_shuffle_i32x4::<ODD>(u[s], u[4 + s]);
            let y1 = _mm512_shuffle_i32x4::<ODD>(u[8 + s], u[12 + s]);
            m[s] = _mm512_shuffle_i32x4::<EVEN>(x0, y0);
            m[8 + s] = _mm512_shuffle_i32x4::<ODD>(x0, y0);
            m[4 + s] = _mm512_shuffle_i32x4::<EVEN>(x1, y1);
            m[12 + s] = _mm512_shuffle_i32x4::<ODD>(x1, y1);
        }
        m
    }

    /// `rounds` AVX2 compressions of the 8 lanes from `AT` (0 or 8) of `state`, lane `AT + l`
    /// taking the blocks of `runs[l]` (none shorter than `rounds`).
    #[target_feature(enable = "avx2")]
    pub(super) fn compress8<const AT: usize>(
        state: &mut State,
        runs: &[&[Block]; 8],
        rounds: usize,
    ) {
        const { assert!(AT == 0 || AT == 8) };
        // Every state load and store goes through these two: 8 lanes from `AT` ≤ 8 of a
        // `[u32; 16]`.
        macro_rules! load {
            ($row:expr) => {
                // SAFETY: `$row` is a `&[u32; 16]` and AT + 8 ≤ 16, so the 32 bytes read are
                // in it; `loadu` needs no alignment.
                unsafe { _mm256_loadu_si256($row.as_ptr().add(AT).cast()) }
            };
        }
        macro_rules! store {
            ($row:expr, $v:expr) => {
                // SAFETY: as in `load!`, for a `&mut [u32; 16]`.
                unsafe { _mm256_storeu_si256($row.as_mut_ptr().add(AT).cast(), $v) }
            };
        }
        macro_rules! round {
            (F, $b:ident, $c:ident, $d:ident) => {
                _mm256_xor_si256($d, _mm256_and_si256($b, _mm256_xor_si256($c, $d)))
            };
            (G, $b:ident, $c:ident, $d:ident) => {
                _mm256_or_si256(_mm256_and_si256($b, $d), _mm256_andnot_si256($d, $c))
            };
            (H, $b:ident, $c:ident, $d:ident) => {
                _mm256_xor_si256($b, _mm256_xor_si256($c, $d))
            };
            (I, $b:ident, $c:ident, $d:ident) => {
                _mm256_xor_si256(
                    $c,
                    _mm256_or_si256($b, _mm256_xor_si256($d, _mm256_set1_epi32(-1))),
                )
            };
        }
        let mut v0 = [_mm256_setzero_si256(); 4];
        for (v, row) in v0.iter_mut().zip(state.iter()) {
            *v = load!(row);
        }
        for j in 0..rounds {
            let mut half = [[_mm256_setzero_si256(); 8]; 2];
            for (l, run) in runs.iter().enumerate() {
                let block: &Block = &run[j];
                // SAFETY: a `Block` is 64 bytes: the two 32-byte loads are in it; `loadu`
                // needs no alignment.
                half[0][l] = unsafe { _mm256_loadu_si256(block.as_ptr().cast()) };
                half[1][l] = unsafe { _mm256_loadu_si256(block.as_ptr().add(32).cast()) };
            }
            let m = transpose8(half);
            macro_rules! step {
                ($r:ident, $a:ident, $b:ident, $c:ident, $d:ident, $i:literal, $m:literal, $s:literal) => {
                    let mk = _mm256_add_epi32(m[$m], _mm256_set1_epi32(K[$i] as i32));
                    let t = _mm256_add_epi32(_mm256_add_epi32($a, mk), round!($r, $b, $c, $d));
                    $a = _mm256_add_epi32(
                        $b,
                        _mm256_or_si256(
                            _mm256_slli_epi32::<$s>(t),
                            _mm256_srli_epi32::<{ 32 - $s }>(t),
                        ),
                    );
                };
            }
            let [mut a, mut b, mut c, mut d] = v0;
            md5_steps!(step, a, b, c, d);
            for (v, x) in v0.iter_mut().zip([a, b, c, d]) {
                *v = _mm256_add_epi32(*v, x);
            }
        }
        for (row, v) in state.iter_mut().zip(v0) {
            store!(row, v);
        }
    }

    /// `rounds` AVX-512 compressions of all 16 lanes of `state`, lane `l` taking the blocks of
    /// `runs[l]` (none shorter than `rounds`).
    #[target_feature(enable = "avx512f")]
    pub(super) fn compress16(state: &mut State, runs: &[&[Block]; 16], rounds: usize) {
        macro_rules! load {
            ($row:expr) => {
                // SAFETY: `$row` is a `&[u32; 16]`: the 64 bytes read are exactly it; `loadu`
                // needs no alignment.
                unsafe { _mm512_loadu_si512($row.as_ptr().cast()) }
            };
        }
        macro_rules! store {
            ($row:expr, $v:expr) => {
                // SAFETY: as in `load!`, for a `&mut [u32; 16]`.
                unsafe { _mm512_storeu_si512($row.as_mut_ptr().cast(), $v) }
            };
        }
        // `m + K` must be summed off the chain of dependent steps, as in the scalar MD5
        // (`super::md5`'s docs). Reading K through `black_box` is not enough here: LLVM still
        // moves its add after the round function's. An add under a mask that LLVM cannot see is
        // all ones it leaves where it is. 148 ns per compression instead of 166 on the bench
        // machine.
        let k: &[u32; 64] = std::hint::black_box(&K);
        let all: __mmask16 = std::hint::black_box(u16::MAX);
        // The round functions as `vpternlogd` truth tables of (b, c, d): F = b ? c : d,
        // G = d ? b : c, H = b ^ c ^ d, I = c ^ (b | !d).
        macro_rules! round {
            (F, $b:ident, $c:ident, $d:ident) => {
                _mm512_ternarylogic_epi32::<0xCA>($b, $c, $d)
            };
            (G, $b:ident, $c:ident, $d:ident) => {
                _mm512_ternarylogic_epi32::<0xE4>($b, $c, $d)
            };
            (H, $b:ident, $c:ident, $d:ident) => {
                _mm512_ternarylogic_epi32::<0x96>($b, $c, $d)
            };
            (I, $b:ident, $c:ident, $d:ident) => {
                _mm512_ternarylogic_epi32::<0x39>($b, $c, $d)
            };
        }
        let mut v0 = [_mm512_setzero_si512(); 4];
        for (v, row) in v0.iter_mut().zip(state.iter()) {
            *v = load!(row);
        }
        for j in 0..rounds {
            let mut rows = [_mm512_setzero_si512(); 16];
            for (row, run) in rows.iter_mut().zip(runs) {
                let block: &Block = &run[j];
                // SAFETY: a `Block` is 64 bytes, exactly what is read; `loadu` needs no
                // alignment.
                *row = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
            }
            let m = transpose16(rows);
            macro_rules! step {
                ($r:ident, $a:ident, $b:ident, $c:ident, $d:ident, $i:literal, $m:literal, $s:literal) => {
                    let mk = _mm512_add_epi32(m[$m], _mm512_set1_epi32(k[$i] as i32));
                    let amk = _mm512_add_epi32($a, mk);
                    let t = _mm512_mask_add_epi32(amk, all, amk, round!($r, $b, $c, $d));
                    $a = _mm512_add_epi32($b, _mm512_rol_epi32::<$s>(t));
                };
            }
            let [mut a, mut b, mut c, mut d] = v0;
            md5_steps!(step, a, b, c, d);
            for (v, x) in v0.iter_mut().zip([a, b, c, d]) {
                *v = _mm512_add_epi32(*v, x);
            }
        }
        for (row, v) in state.iter_mut().zip(v0) {
            store!(row, v);
        }
    }

    /// One SHA-256 compression round pair for four message words: `$w` plus the constants of
    /// rounds `4 * $i..4 * $i + 4`, for each of the `N` streams.
    macro_rules! sha_rounds4 {
        ($abef:ident, $cdgh:ident, $w:ident, $i:literal) => {
            let k = &SHA256_K[4 * $i..4 * $i + 4];
            let kv = _mm_set_epi32(k[3] as i32, k[2] as i32, k[1] as i32, k[0] as i32);
            for n in 0..$abef.len() {
                let t = _mm_add_epi32($w[n], kv);
                $cdgh[n] = _mm_sha256rnds2_epu32($cdgh[n], $abef[n], t);
                $abef[n] = _mm_sha256rnds2_epu32($abef[n], $cdgh[n], _mm_shuffle_epi32::<0x0E>(t));
            }
        };
    }

    /// The next four message words from the last sixteen (`$w0` the oldest) into `$w4`, then
    /// their rounds.
    macro_rules! sha_schedule_rounds4 {
        ($abef:ident, $cdgh:ident, $w0:ident, $w1:ident, $w2:ident, $w3:ident, $w4:ident, $i:literal) => {
            for n in 0..$abef.len() {
                let t = _mm_add_epi32(
                    _mm_sha256msg1_epu32($w0[n], $w1[n]),
                    _mm_alignr_epi8::<4>($w3[n], $w2[n]),
                );
                $w4[n] = _mm_sha256msg2_epu32(t, $w3[n]);
            }
            sha_rounds4!($abef, $cdgh, $w4, $i);
        };
    }

    /// `rounds` SHA-256 compressions of each of `N` streams with the SHA extensions, stream `n`
    /// taking the blocks of `runs[n]` (none shorter than `rounds`) into `states[n]`; Intel's
    /// sequence for one stream ("Intel SHA Extensions", 2013), each step issued for every stream
    /// before the next. The state lives in two registers, ABEF and CDGH, as `sha256rnds2` wants.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) fn sha256_ni<const N: usize>(
        states: &mut [[u32; 8]; N],
        runs: &[&[Block]; N],
        rounds: usize,
    ) {
        // Each run cut to `rounds` blocks, so that indexing by round needs no bounds check.
        let runs: [&[Block]; N] = std::array::from_fn(|n| runs[n].get(..rounds).unwrap_or(runs[n]));
        let rounds = runs.iter().map(|run| run.len()).min().unwrap_or(0);
        let bswap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
        let zero = [_mm_setzero_si128(); N];
        let (mut abef, mut cdgh) = (zero, zero);
        for ((abef, cdgh), s) in abef.iter_mut().zip(cdgh.iter_mut()).zip(states.iter()) {
            let dcba = _mm_set_epi32(s[3] as i32, s[2] as i32, s[1] as i32, s[0] as i32);
            let hgfe = _mm_set_epi32(s[7] as i32, s[6] as i32, s[5] as i32, s[4] as i32);
            let cdab = _mm_shuffle_epi32::<0xB1>(dcba);
            let efgh = _mm_shuffle_epi32::<0x1B>(hgfe);
            *abef = _mm_alignr_epi8::<8>(cdab, efgh);
            *cdgh = _mm_blend_epi16::<0xF0>(efgh, cdab);
        }
        for j in 0..rounds {
            let (abef0, cdgh0) = (abef, cdgh);
            let (mut w0, mut w1, mut w2, mut w3, mut w4) = (zero, zero, zero, zero, zero);
            for (n, run) in runs.iter().enumerate() {
                let (words, _) = run[j].as_chunks::<16>();
                // SAFETY: each `[u8; 16]` is the 16 bytes one load reads; `loadu` needs no
                // alignment.
                let load = |q: usize| unsafe { _mm_loadu_si128(words[q].as_ptr().cast()) };
                w0[n] = _mm_shuffle_epi8(load(0), bswap);
                w1[n] = _mm_shuffle_epi8(load(1), bswap);
                w2[n] = _mm_shuffle_epi8(load(2), bswap);
                w3[n] = _mm_shuffle_epi8(load(3), bswap);
            }
            sha_rounds4!(abef, cdgh, w0, 0);
            sha_rounds4!(abef, cdgh, w1, 1);
            sha_rounds4!(abef, cdgh, w2, 2);
            sha_rounds4!(abef, cdgh, w3, 3);
            sha_schedule_rounds4!(abef, cdgh, w0, w1, w2, w3, w4, 4);
            sha_schedule_rounds4!(abef, cdgh, w1, w2, w3, w4, w0, 5);
            sha_schedule_rounds4!(abef, cdgh, w2, w3, w4, w0, w1, 6);
            sha_schedule_rounds4!(abef, cdgh, w3, w4, w0, w1, w2, 7);
            sha_schedule_rounds4!(abef, cdgh, w4, w0, w1, w2, w3, 8);
            sha_schedule_rounds4!(abef, cdgh, w0, w1, w2, w3, w4, 9);
            sha_schedule_rounds4!(abef, cdgh, w1, w2, w3, w4, w0, 10);
            sha_schedule_rounds4!(abef, cdgh, w2, w3, w4, w0, w1, 11);
            sha_schedule_rounds4!(abef, cdgh, w3, w4, w0, w1, w2, 12);
            sha_schedule_rounds4!(abef, cdgh, w4, w0, w1, w2, w3, 13);
            sha_schedule_rounds4!(abef, cdgh, w0, w1, w2, w3, w4, 14);
            sha_schedule_rounds4!(abef, cdgh, w1, w2, w3, w4, w0, 15);
            for n in 0..N {
                abef[n] = _mm_add_epi32(abef[n], abef0[n]);
                cdgh[n] = _mm_add_epi32(cdgh[n], cdgh0[n]);
            }
        }
        for ((abef, cdgh), s) in abef.into_iter().zip(cdgh).zip(states.iter_mut()) {
            let feba = _mm_shuffle_epi32::<0x1B>(abef);
            let dchg = _mm_shuffle_epi32::<0xB1>(cdgh);
            let dcba = _mm_blend_epi16::<0xF0>(feba, dchg);
            let hgef = _mm_alignr_epi8::<8>(dchg, feba);
            *s = [
                _mm_extract_epi32::<0>(dcba) as u32,
                _mm_extract_epi32::<1>(dcba) as u32,
                _mm_extract_epi32::<2>(dcba) as u32,
                _mm_extract_epi32::<3>(dcba) as u32,
                _mm_extract_epi32::<0>(hgef) as u32,
                _mm_extract_epi32::<1>(hgef) as u32,
                _mm_extract_epi32::<2>(hgef) as u32,
                _mm_extract_epi32::<3>(hgef) as u32,
            ];
        }
    }
}
