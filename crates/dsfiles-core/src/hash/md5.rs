//! MD5 (RFC 1321), written for speed: MD5 is the one digest DS gives, every downloaded byte
//! goes through it, and on the bench machine it was a third of a sync's CPU time.
//!
//! Why not the `md-5` crate: its compression function (portable or `asm`) runs at about
//! 550 MB/s on the bench machine, this one at about 700 MB/s (OpenSSL's assembly: 676 MB/s),
//! see docs/benchmarks.md. MD5 is one long chain of dependent steps, so its speed is the
//! length of that chain. Two things shorten it here:
//! - the round constants are read through [`std::hint::black_box`]: as literals, LLVM moves
//!   the `+ K` after the round function, onto the chain (one cycle more on every one of the
//!   64 steps); as loads, `a + m + K` is summed while the round function of the previous
//!   step's result is still being computed;
//! - G rounds add their two disjoint halves separately, `(c & !d)` early and `(b & d)` last
//!   (for disjoint bit sets `|` and `+` agree), so only one AND waits for `b`.
//!
//! Correctness never depends on either: `black_box` is a hint, and the tests compare with the
//! `md-5` crate on every length around the block and padding boundaries, on the RFC's vectors,
//! and on random splits of a stream.

use super::blocks::Pending;

/// The sine-derived constants of RFC 1321, one per step.
pub(super) const K: [u32; 64] = [
    0xd76a_a478,
    0xe8c7_b756,
    0x2420_70db,
    0xc1bd_ceee,
    0xf57c_0faf,
    0x4787_c62a,
    0xa830_4613,
    0xfd46_9501,
    0x6980_98d8,
    0x8b44_f7af,
    0xffff_5bb1,
    0x895c_d7be,
    0x6b90_1122,
    0xfd98_7193,
    0xa679_438e,
    0x49b4_0821,
    0xf61e_2562,
    0xc040_b340,
    0x265e_5a51,
    0xe9b6_c7aa,
    0xd62f_105d,
    0x0244_1453,
    0xd8a1_e681,
    0xe7d3_fbc8,
    0x21e1_cde6,
    0xc337_07d6,
    0xf4d5_0d87,
    0x455a_14ed,
    0xa9e3_e905,
    0xfcef_a3f8,
    0x676f_02d9,
    0x8d2a_4c8a,
    0xfffa_3942,
    0x8771_f681,
    0x6d9d_6122,
    0xfde5_380c,
    0xa4be_ea44,
    0x4bde_cfa9,
    0xf6bb_4b60,
    0xbebf_bc70,
    0x289b_7ec6,
    0xeaa1_27fa,
    0xd4ef_3085,
    0x0488_1d05,
    0xd9d4_d039,
    0xe6db_99e5,
    0x1fa2_7cf8,
    0xc4ac_5665,
    0xf429_2244,
    0x432a_ff97,
    0xab94_23a7,
    0xfc93_a039,
    0x655b_59c3,
    0x8f0c_cc92,
    0xffef_f47d,
    0x8584_5dd1,
    0x6fa8_7e4f,
    0xfe2c_e6e0,
    0xa301_4314,
    0x4e08_11a1,
    0xf753_7e82,
    0xbd3a_f235,
    0x2ad7_d2bb,
    0xeb86_d391,
];

pub(super) const INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// One step: `b + ((a + m + k + fun) <<< s)`, with `a + m + k` summed before `fun` arrives.
#[inline(always)]
pub(super) fn step(a: u32, b: u32, mk: u32, fun: u32, s: u32) -> u32 {
    mk.wrapping_add(a)
        .wrapping_add(fun)
        .rotate_left(s)
        .wrapping_add(b)
}

/// The 16 little-endian words of a block.
#[inline(always)]
pub(super) fn words(block: &[u8; 64]) -> [u32; 16] {
    let (words, _) = block.as_chunks::<4>();
    std::array::from_fn(|i| u32::from_le_bytes(words[i]))
}

/// Applies the compression function to every 64-byte block of `blocks` (a multiple of 64
/// bytes long).
pub(super) fn compress(state: &mut [u32; 4], blocks: &[u8]) {
    let [mut a, mut b, mut c, mut d] = *state;
    // Loads, not literals: see the module docs.
    let k: &[u32; 64] = std::hint::black_box(&K);
    for block in blocks.as_chunks::<64>().0 {
        let m = words(block);
        let (a0, b0, c0, d0) = (a, b, c, d);
        macro_rules! f {
            ($a:ident, $b:ident, $c:ident, $d:ident, $i:expr, $m:expr, $s:expr) => {
                $a = step($a, $b, m[$m].wrapping_add(k[$i]), $d ^ ($b & ($c ^ $d)), $s);
            };
        }
        macro_rules! g {
            ($a:ident, $b:ident, $c:ident, $d:ident, $i:expr, $m:expr, $s:expr) => {
                $a = step(
                    $a,
                    $b,
                    m[$m].wrapping_add(k[$i]).wrapping_add($c & !$d),
                    $b & $d,
                    $s,
                );
            };
        }
        macro_rules! h {
            ($a:ident, $b:ident, $c:ident, $d:ident, $i:expr, $m:expr, $s:expr) => {
                $a = step($a, $b, m[$m].wrapping_add(k[$i]), $b ^ ($c ^ $d), $s);
            };
        }
        macro_rules! i {
            ($a:ident, $b:ident, $c:ident, $d:ident, $i:expr, $m:expr, $s:expr) => {
                $a = step($a, $b, m[$m].wrapping_add(k[$i]), $c ^ ($b | !$d), $s);
            };
        }
        // Round 1.
        f!(a, b, c, d, 0, 0, 7);
        f!(d, a, b, c, 1, 1, 12);
        f!(c, d, a, b, 2, 2, 17);
        f!(b, c, d, a, 3, 3, 22);
        f!(a, b, c, d, 4, 4, 7);
        f!(d, a, b, c, 5, 5, 12);
        f!(c, d, a, b, 6, 6, 17);
        f!(b, c, d, a, 7, 7, 22);
        f!(a, b, c, d, 8, 8, 7);
        f!(d, a, b, c, 9, 9, 12);
        f!(c, d, a, b, 10, 10, 17);
        f!(b, c, d, a, 11, 11, 22);
        f!(a, b, c, d, 12, 12, 7);
        f!(d, a, b, c, 13, 13, 12);
        f!(c, d, a, b, 14, 14, 17);
        f!(b, c, d, a, 15, 15, 22);
        // Round 2.
        g!(a, b, c, d, 16, 1, 5);
        g!(d, a, b, c, 17, 6, 9);
        g!(c, d, a, b, 18, 11, 14);
        g!(b, c, d, a, 19, 0, 20);
        g!(a, b, c, d, 20, 5, 5);
        g!(d, a, b, c, 21, 10, 9);
        g!(c, d, a, b, 22, 15, 14);
        g!(b, c, d, a, 23, 4, 20);
        g!(a, b, c, d, 24, 9, 5);
        g!(d, a, b, c, 25, 14, 9);
        g!(c, d, a, b, 26, 3, 14);
        g!(b, c, d, a, 27, 8, 20);
        g!(a, b, c, d, 28, 13, 5);
        g!(d, a, b, c, 29, 2, 9);
        g!(c, d, a, b, 30, 7, 14);
        g!(b, c, d, a, 31, 12, 20);
        // Round 3.
        h!(a, b, c, d, 32, 5, 4);
        h!(d, a, b, c, 33, 8, 11);
        h!(c, d, a, b, 34, 11, 16);
        h!(b, c, d, a, 35, 14, 23);
        h!(a, b, c, d, 36, 1, 4);
        h!(d, a, b, c, 37, 4, 11);
        h!(c, d, a, b, 38, 7, 16);
        h!(b, c, d, a, 39, 10, 23);
        h!(a, b, c, d, 40, 13, 4);
        h!(d, a, b, c, 41, 0, 11);
        h!(c, d, a, b, 42, 3, 16);
        h!(b, c, d, a, 43, 6, 23);
        h!(a, b, c, d, 44, 9, 4);
        h!(d, a, b, c, 45, 12, 11);
        h!(c, d, a, b, 46, 15, 16);
        h!(b, c, d, a, 47, 2, 23);
        // Round 4.
        i!(a, b, c, d, 48, 0, 6);
        i!(d, a, b, c, 49, 7, 10);
        i!(c, d, a, b, 50, 14, 15);
        i!(b, c, d, a, 51, 5, 21);
        i!(a, b, c, d, 52, 12, 6);
        i!(d, a, b, c, 53, 3, 10);
        i!(c, d, a, b, 54, 10, 15);
        i!(b, c, d, a, 55, 1, 21);
        i!(a, b, c, d, 56, 8, 6);
        i!(d, a, b, c, 57, 15, 10);
        i!(c, d, a, b, 58, 6, 15);
        i!(b, c, d, a, 59, 13, 21);
        i!(a, b, c, d, 60, 4, 6);
        i!(d, a, b, c, 61, 11, 10);
        i!(c, d, a, b, 62, 2, 15);
        i!(b, c, d, a, 63, 9, 21);
        a = a.wrapping_add(a0);
        b = b.wrapping_add(b0);
        c = c.wrapping_add(c0);
        d = d.wrapping_add(d0);
    }
    *state = [a, b, c, d];
}

/// An MD5 computation fed piece by piece.
#[derive(Clone)]
pub struct Md5 {
    state: [u32; 4],
    pending: Pending,
}

impl Default for Md5 {
    fn default() -> Self {
        Md5::new()
    }
}

impl std::fmt::Debug for Md5 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Md5")
            .field("len", &self.pending.len())
            .finish()
    }
}

impl Md5 {
    pub fn new() -> Md5 {
        Md5::resume(INIT, 0)
    }

    /// The computation after `len` bytes (a multiple of 64, all compressed into `state`): how a
    /// stream hashed block by block elsewhere (the engine) comes back for its padding.
    pub(super) fn resume(state: [u32; 4], len: u64) -> Md5 {
        Md5 {
            state,
            pending: Pending::after(len),
        }
    }

    /// The compressed state, the bytes compressed into it, and the bytes waiting for a whole
    /// block: what the engine needs to take the stream over.
    pub(super) fn into_parts(self) -> ([u32; 4], u64, [u8; 64], usize) {
        let (compressed, block, waiting) = self.pending.into_parts();
        (self.state, compressed, block, waiting)
    }

    pub fn update(&mut self, data: &[u8]) {
        let state = &mut self.state;
        self.pending
            .update(data, |blocks| compress(state, blocks.as_flattened()));
    }

    /// The 16-byte digest.
    pub fn finalize(mut self) -> [u8; 16] {
        let length = self.pending.bits().to_le_bytes();
        let state = &mut self.state;
        self.pending
            .pad(length, |blocks| compress(state, blocks.as_flattened()));
        let mut out = [0u8; 16];
        for (bytes, word) in out.chunks_exact_mut(4).zip(self.state) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests;
