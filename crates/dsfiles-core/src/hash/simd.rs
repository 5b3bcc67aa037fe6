//! Multi-buffer MD5: one compression of a 64-byte block applied to up to 16 independent
//! streams at once, one 32-bit lane per stream — 8 lanes in an AVX2 register, 16 in an AVX-512
//! one — as in Intel's isa-l_crypto `md5_mb`. MD5 is one long chain of dependent steps inside a
//! stream, so one stream cannot use a vector unit; streams side by side can.
//!
//! **Invariant: this is the only module of the workspace with `unsafe`** (the workspace denies
//! `unsafe_code`, this module alone allows it, and `xtask/tests/tidy.rs` checks that no other
//! file says `unsafe`). Its `unsafe` is of two kinds, and nothing else:
//! - calling a `#[target_feature]` kernel, each time right after `is_x86_feature_detected!` said
//!   the CPU has that feature (std caches the answer; the check is one atomic load). Soundness
//!   does not depend on callers: a [`Width`] the CPU lacks falls back to a narrower one;
//! - unaligned loads and stores of one vector from or to a row of [`Lanes`], a `[u32; 16]`: 16
//!   lanes from its start, or 8 lanes from lane 0 or 8 (a const parameter checked at compile
//!   time), so in bounds by the types.
//!
//! No raw pointer outlives the expression that makes it, nothing is transmuted, no alignment is
//! assumed. The 64 steps are written once ([`md5_steps`], RFC 1321's order) with constant
//! rotations, so each kernel compiles to immediates; the tests compare every width with the
//! scalar [`super::md5::compress`] on random states and blocks, and whole streams with the
//! `md-5` crate.
#![allow(unsafe_code)]

use super::md5;

/// Lanes of the widest kernel.
pub(crate) const MAX_LANES: usize = 16;

/// A kernel: how many streams one compression serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Width {
    /// This crate's scalar MD5, up to three streams interleaved ([`compress`]).
    Scalar,
    /// 8 lanes of 32 bits in a 256-bit register.
    Avx2,
    /// 16 lanes in a 512-bit register (AVX-512F), with one-instruction round functions
    /// (`vpternlogd`) and rotations (`vprold`). Any two or more streams use all 16 lanes: on
    /// the bench machine (AMD EPYC) one 16-lane compression took 150 ns and an 8-lane one in
    /// 256-bit registers 164 ns, so a narrower kernel saved nothing.
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

/// The state and the current block of up to [`MAX_LANES`] streams, transposed: row `r` holds
/// word `r` of every lane, so that one vector load takes the same word of 8 or 16 streams.
#[derive(Clone, Debug)]
pub(crate) struct Lanes {
    state: [[u32; MAX_LANES]; 4],
    words: [[u32; MAX_LANES]; 16],
}

impl Default for Lanes {
    fn default() -> Self {
        Lanes {
            state: [[0; MAX_LANES]; 4],
            words: [[0; MAX_LANES]; 16],
        }
    }
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

    /// Sets the block `lane` compresses next: the first 64 bytes of `block` (zeros past its end).
    pub(crate) fn set_block(&mut self, lane: usize, block: &[u8]) {
        match block.first_chunk::<64>() {
            Some(whole) => self.set_whole_block(lane, whole),
            None => {
                let mut padded = [0u8; 64];
                padded[..block.len()].copy_from_slice(block);
                self.set_whole_block(lane, &padded);
            }
        }
    }

    /// [`Lanes::set_block`] of a whole block: the engine's path for every block it hashes side
    /// by side, written so that no index is checked after the first line.
    fn set_whole_block(&mut self, lane: usize, block: &[u8; 64]) {
        if lane >= MAX_LANES {
            return;
        }
        for (row, b) in self.words.iter_mut().zip(block.chunks_exact(4)) {
            row[lane] = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }

    /// The block of `lane`, as bytes again.
    fn block(&self, lane: usize) -> [u8; 64] {
        let mut block = [0u8; 64];
        for (bytes, row) in block.chunks_exact_mut(4).zip(&self.words) {
            bytes.copy_from_slice(&row.get(lane).copied().unwrap_or_default().to_le_bytes());
        }
        block
    }
}

/// Compresses the block of each lane `0..n` into its state, with the cheapest kernel for `n`
/// streams that `width` and the CPU allow. Lanes from `n` on may change; their results mean
/// nothing.
///
/// The choice, from the kernels' cost on the bench machine (AMD EPYC, ns per compression, timed
/// by hand in a release build): one stream, the scalar MD5 (70–85); two or three, interleaved in
/// general-purpose registers (71–79 for two, 87–98 for three; four: 126, more than a vector);
/// more, the vector kernel (140–160 for any number up to 16 with AVX-512, 185 for up to 8 with
/// AVX2); without one, the scalar MD5 lane after lane. The digest bench
/// (`cargo bench -p dsfiles-core --bench hash`) gives the throughput of each for 2, 3, 8 and 16
/// streams.
pub(crate) fn compress(width: Width, lanes: &mut Lanes, n: usize) {
    let n = n.min(MAX_LANES);
    #[cfg(target_arch = "x86_64")]
    {
        if width == Width::Avx512 && n > 3 && Width::Avx512.supported() {
            // SAFETY: the CPU has AVX-512F, checked on the line above.
            unsafe { x86::compress16(lanes) };
            return;
        }
        if width >= Width::Avx2 && n > 3 && Width::Avx2.supported() {
            // SAFETY: the CPU has AVX2, checked on the line above.
            unsafe { x86::compress8::<0>(lanes) };
            if n > 8 {
                // SAFETY: as above.
                unsafe { x86::compress8::<8>(lanes) };
            }
            return;
        }
    }
    let _ = width;
    match n {
        2 => compress_interleaved::<2>(lanes),
        3 => compress_interleaved::<3>(lanes),
        _ => {
            for lane in 0..n {
                let mut state = lanes.state(lane);
                md5::compress(&mut state, &lanes.block(lane));
                lanes.set_state(lane, state);
            }
        }
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
/// would run mostly empty lanes; no `unsafe`, any CPU.
fn compress_interleaved<const N: usize>(lanes: &mut Lanes) {
    // Loads, not literals: see `super::md5`'s docs.
    let k: &[u32; 64] = std::hint::black_box(&md5::K);
    let w = &lanes.words;
    let row = |r: usize| std::array::from_fn::<u32, N, _>(|l| lanes.state[r][l]);
    let (a0, b0, c0, d0) = (row(0), row(1), row(2), row(3));
    let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
    macro_rules! step {
        (F, $a:ident, $b:ident, $c:ident, $d:ident, $i:literal, $m:literal, $s:literal) => {
            for l in 0..N {
                let fun = $d[l] ^ ($b[l] & ($c[l] ^ $d[l]));
                $a[l] = md5::step($a[l], $b[l], w[$m][l].wrapping_add(k[$i]), fun, $s);
            }
        };
        (G, $a:ident, $b:ident, $c:ident, $d:ident, $i:literal, $m:literal, $s:literal) => {
            for l in 0..N {
                // As in `md5::compress`: the half that does not wait for `b` goes in early.
                let mk = w[$m][l].wrapping_add(k[$i]).wrapping_add($c[l] & !$d[l]);
                $a[l] = md5::step($a[l], $b[l], mk, $b[l] & $d[l], $s);
            }
        };
        (H, $a:ident, $b:ident, $c:ident, $d:ident, $i:literal, $m:literal, $s:literal) => {
            for l in 0..N {
                let fun = $b[l] ^ ($c[l] ^ $d[l]);
                $a[l] = md5::step($a[l], $b[l], w[$m][l].wrapping_add(k[$i]), fun, $s);
            }
        };
        (I, $a:ident, $b:ident, $c:ident, $d:ident, $i:literal, $m:literal, $s:literal) => {
            for l in 0..N {
                let fun = $c[l] ^ ($b[l] | !$d[l]);
                $a[l] = md5::step($a[l], $b[l], w[$m][l].wrapping_add(k[$i]), fun, $s);
            }
        };
    }
    md5_steps!(step, a, b, c, d);
    for (r, (v, v0)) in [(a, a0), (b, b0), (c, c0), (d, d0)].into_iter().enumerate() {
        for l in 0..N {
            lanes.state[r][l] = v[l].wrapping_add(v0[l]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Lanes;
    use super::md5::K;

    /// The body of an 8-lane kernel over the lanes from `$at` (0 or 8): the kernel defines
    /// `round!` (F, G, H, I of three vectors) and `rotl!` (a constant rotation) before it.
    macro_rules! eight_lanes {
        ($lanes:ident, $at:ident) => {{
            const { assert!($at == 0 || $at == 8) };
            // Every load and store goes through these two: 8 lanes from `$at` ≤ 8 of a
            // `[u32; 16]`.
            macro_rules! load {
                ($row:expr) => {
                    // SAFETY: `$row` is a `&[u32; 16]` and $at + 8 ≤ 16, so the 32 bytes
                    // read are in it; `loadu` needs no alignment.
                    unsafe { _mm256_loadu_si256($row.as_ptr().add($at).cast()) }
                };
            }
            macro_rules! store {
                ($row:expr, $v:expr) => {
                    // SAFETY: as in `load!`, for a `&mut [u32; 16]`.
                    unsafe { _mm256_storeu_si256($row.as_mut_ptr().add($at).cast(), $v) }
                };
            }
            let mut m = [_mm256_setzero_si256(); 16];
            for (v, row) in m.iter_mut().zip(&$lanes.words) {
                *v = load!(row);
            }
            macro_rules! step {
                ($r:ident, $a:ident, $b:ident, $c:ident, $d:ident, $i:literal, $m:literal, $s:literal) => {
                    let mk = _mm256_add_epi32(m[$m], _mm256_set1_epi32(K[$i] as i32));
                    let t = _mm256_add_epi32(_mm256_add_epi32($a, mk), round!($r, $b, $c, $d));
                    $a = _mm256_add_epi32($b, rotl!(t, $s));
                };
            }
            let [a0, b0, c0, d0] = [
                load!(&$lanes.state[0]),
                load!(&$lanes.state[1]),
                load!(&$lanes.state[2]),
                load!(&$lanes.state[3]),
            ];
            let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
            md5_steps!(step, a, b, c, d);
            for (row, (v, v0)) in $lanes.state.iter_mut().zip([(a, a0), (b, b0), (c, c0), (d, d0)]) {
                store!(row, _mm256_add_epi32(v, v0));
            }
        }};
    }

    /// One AVX2 compression of the 8 lanes from `AT` (0 or 8).
    #[target_feature(enable = "avx2")]
    pub(super) fn compress8<const AT: usize>(lanes: &mut Lanes) {
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
        macro_rules! rotl {
            ($t:ident, $s:literal) => {
                _mm256_or_si256(
                    _mm256_slli_epi32::<$s>($t),
                    _mm256_srli_epi32::<{ 32 - $s }>($t),
                )
            };
        }
        eight_lanes!(lanes, AT)
    }

    /// One AVX-512 compression of all 16 lanes.
    #[target_feature(enable = "avx512f")]
    pub(super) fn compress16(lanes: &mut Lanes) {
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
        let mut m = [_mm512_setzero_si512(); 16];
        for (v, row) in m.iter_mut().zip(&lanes.words) {
            *v = load!(row);
        }
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
        macro_rules! step {
            ($r:ident, $a:ident, $b:ident, $c:ident, $d:ident, $i:literal, $m:literal, $s:literal) => {
                let mk = _mm512_add_epi32(m[$m], _mm512_set1_epi32(k[$i] as i32));
                let amk = _mm512_add_epi32($a, mk);
                let t = _mm512_mask_add_epi32(amk, all, amk, round!($r, $b, $c, $d));
                $a = _mm512_add_epi32($b, _mm512_rol_epi32::<$s>(t));
            };
        }
        let [a0, b0, c0, d0] = [
            load!(&lanes.state[0]),
            load!(&lanes.state[1]),
            load!(&lanes.state[2]),
            load!(&lanes.state[3]),
        ];
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        md5_steps!(step, a, b, c, d);
        for (row, (v, v0)) in lanes
            .state
            .iter_mut()
            .zip([(a, a0), (b, b0), (c, c0), (d, d0)])
        {
            store!(row, _mm512_add_epi32(v, v0));
        }
    }
}
