//! SHA-256 (FIPS 180-4) of a stream whose state can move to the MD5 engine and back, as
//! [`super::Md5`]'s does ([`Sha256::into_parts`], [`Sha256::resume`]): `sha2::Sha256` keeps its
//! state to itself, and the engine hashes two streams' SHA-256 side by side
//! ([`super::simd::sha256_pair`]), so it must take a stream over where the download left it.
//!
//! This module only feeds [`super::blocks::Pending`], which buffers and pads (the length in bits
//! big endian); whole blocks go to [`super::simd::sha256`] (the CPU's SHA extensions, else
//! `sha2`'s compression function). The tests compare with the `sha2` crate on FIPS 180-4's
//! examples, on every length around the block and padding boundaries, and on random splits.

use super::blocks::Pending;
use super::simd::{self, Block};

/// The round constants of FIPS 180-4 §4.2.2.
pub(super) const K: [u32; 64] = [
    0x428a_2f98,
    0x7137_4491,
    0xb5c0_fbcf,
    0xe9b5_dba5,
    0x3956_c25b,
    0x59f1_11f1,
    0x923f_82a4,
    0xab1c_5ed5,
    0xd807_aa98,
    0x1283_5b01,
    0x2431_85be,
    0x550c_7dc3,
    0x72be_5d74,
    0x80de_b1fe,
    0x9bdc_06a7,
    0xc19b_f174,
    0xe49b_69c1,
    0xefbe_4786,
    0x0fc1_9dc6,
    0x240c_a1cc,
    0x2de9_2c6f,
    0x4a74_84aa,
    0x5cb0_a9dc,
    0x76f9_88da,
    0x983e_5152,
    0xa831_c66d,
    0xb003_27c8,
    0xbf59_7fc7,
    0xc6e0_0bf3,
    0xd5a7_9147,
    0x06ca_6351,
    0x1429_2967,
    0x27b7_0a85,
    0x2e1b_2138,
    0x4d2c_6dfc,
    0x5338_0d13,
    0x650a_7354,
    0x766a_0abb,
    0x81c2_c92e,
    0x9272_2c85,
    0xa2bf_e8a1,
    0xa81a_664b,
    0xc24b_8b70,
    0xc76c_51a3,
    0xd192_e819,
    0xd699_0624,
    0xf40e_3585,
    0x106a_a070,
    0x19a4_c116,
    0x1e37_6c08,
    0x2748_774c,
    0x34b0_bcb5,
    0x391c_0cb3,
    0x4ed8_aa4a,
    0x5b9c_ca4f,
    0x682e_6ff3,
    0x748f_82ee,
    0x78a5_636f,
    0x84c8_7814,
    0x8cc7_0208,
    0x90be_fffa,
    0xa450_6ceb,
    0xbef9_a3f7,
    0xc671_78f2,
];

/// The initial hash value of FIPS 180-4 §5.3.3.
pub(super) const INIT: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// A SHA-256 computation fed piece by piece.
#[derive(Clone)]
pub struct Sha256 {
    state: [u32; 8],
    pending: Pending,
}

impl Default for Sha256 {
    fn default() -> Self {
        Sha256::new()
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sha256")
            .field("len", &self.pending.len())
            .finish()
    }
}

impl Sha256 {
    pub fn new() -> Sha256 {
        Sha256::resume(INIT, 0)
    }

    /// The computation after `len` bytes (a multiple of 64, all compressed into `state`): how a
    /// stream hashed block by block elsewhere (the engine) comes back for its padding.
    pub(super) fn resume(state: [u32; 8], len: u64) -> Sha256 {
        Sha256 {
            state,
            pending: Pending::after(len),
        }
    }

    /// The compressed state, the bytes compressed into it, and how many bytes wait for a whole
    /// block (the same bytes [`super::Md5::into_parts`] gives for a stream fed alike).
    pub(super) fn into_parts(self) -> ([u32; 8], u64, usize) {
        let (compressed, _, waiting) = self.pending.into_parts();
        (self.state, compressed, waiting)
    }

    pub fn update(&mut self, data: &[u8]) {
        let state = &mut self.state;
        self.pending
            .update(data, |blocks| simd::sha256(state, blocks));
    }

    /// The 32-byte digest.
    pub fn finalize(mut self) -> [u8; 32] {
        let length = self.pending.bits().to_be_bytes();
        let state = &mut self.state;
        self.pending
            .pad(length, |blocks| simd::sha256(state, blocks));
        let mut out = [0u8; 32];
        for (bytes, word) in out.chunks_exact_mut(4).zip(self.state) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

/// Compresses the first `rounds` blocks of `runs[l]` into `states[l]` for every lane with a
/// state, two lanes at a time ([`simd::sha256_pair`]), the odd one out alone; lanes without a
/// state (their stream's SHA-256 is computed elsewhere) are skipped. Returns how many blocks
/// were hashed in pairs.
pub(super) fn compress_lanes(
    states: &mut [Option<[u32; 8]>],
    runs: &[&[Block]],
    rounds: usize,
) -> usize {
    let mut paired = 0;
    let mut waiting: Option<(&mut [u32; 8], &[Block])> = None;
    for (state, &run) in states.iter_mut().zip(runs) {
        let Some(state) = state else { continue };
        let run = run.get(..rounds).unwrap_or(run);
        match waiting.take() {
            None => waiting = Some((state, run)),
            Some((first, first_run)) => {
                let mut pair = [*first, *state];
                simd::sha256_pair(&mut pair, [first_run, run], rounds);
                [*first, *state] = pair;
                paired += first_run.len().min(run.len()) * 2;
            }
        }
    }
    if let Some((state, run)) = waiting {
        simd::sha256(state, run);
    }
    paired
}

#[cfg(test)]
mod tests;
