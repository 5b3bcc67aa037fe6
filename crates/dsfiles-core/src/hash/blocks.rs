//! What MD5 and SHA-256 share around their compression functions: a stream's bytes waiting for
//! a whole 64-byte block, the count of bytes fed, and the padding both use (RFC 1321 §3.1–3.2,
//! FIPS 180-4 §5.1.1: 0x80, zeros up to 56 bytes mod 64, then the length in bits — little endian
//! for MD5, big endian for SHA-256, as the caller encodes it). Blocks go to the caller's
//! compression function in order, whole, as soon as they are complete.

use super::simd::Block;

/// The bytes fed to a digest that wait for a whole block, and how many were fed in all.
#[derive(Clone)]
pub(super) struct Pending {
    /// The waiting bytes are the first `waiting` of `block`.
    block: Block,
    waiting: usize,
    len: u64,
}

impl Pending {
    /// Nothing waiting after `len` bytes, all compressed (a multiple of 64).
    pub(super) fn after(len: u64) -> Pending {
        Pending {
            block: [0; 64],
            waiting: 0,
            len,
        }
    }

    /// Bytes fed so far.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// The bytes compressed so far, the waiting block and how many of its bytes wait.
    pub(super) fn into_parts(self) -> (u64, Block, usize) {
        let compressed = self.len.wrapping_sub(self.waiting as u64);
        (compressed, self.block, self.waiting)
    }

    /// Feeds `data`: each block it completes goes to `compress`, in order; the rest waits.
    pub(super) fn update(&mut self, mut data: &[u8], mut compress: impl FnMut(&[Block])) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.waiting > 0 {
            let take = data.len().min(64 - self.waiting);
            self.block[self.waiting..self.waiting + take].copy_from_slice(&data[..take]);
            self.waiting += take;
            data = &data[take..];
            if self.waiting < 64 {
                return;
            }
            compress(std::slice::from_ref(&self.block));
            self.waiting = 0;
        }
        let (blocks, rest) = data.as_chunks::<64>();
        if !blocks.is_empty() {
            compress(blocks);
        }
        self.block[..rest.len()].copy_from_slice(rest);
        self.waiting = rest.len();
    }

    /// Feeds the padding, ending with `length`, the count of bits fed (before the padding) as
    /// the digest encodes it ([`Pending::bits`]); nothing waits afterwards.
    pub(super) fn pad(&mut self, length: [u8; 8], compress: impl FnMut(&[Block])) {
        let mut tail = [0u8; 72];
        tail[0] = 0x80;
        let pad = if self.waiting < 56 {
            56 - self.waiting
        } else {
            120 - self.waiting
        };
        tail[pad..pad + 8].copy_from_slice(&length);
        self.update(&tail[..pad + 8], compress);
        debug_assert_eq!(self.waiting, 0, "padding ends on a block boundary");
    }

    /// The count of bits fed so far, which the padding encodes.
    pub(super) fn bits(&self) -> u64 {
        self.len.wrapping_mul(8)
    }
}

/// `data` cut in pieces of 0 to 9,000 bytes, differently for each `round`: within a block,
/// across blocks, many blocks at once (for the digests' split tests).
#[cfg(test)]
pub(super) fn pieces(data: &[u8], round: usize) -> Vec<&[u8]> {
    let mut cut = dsfiles_sink::testing::pseudo_random(64, round as u64)
        .into_iter()
        .cycle();
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = (usize::from(cut.next().unwrap_or(1)) * (round + 1) * 7 % 9001).min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}
