use sha2::Digest as _;
use sha2::digest::generic_array::GenericArray;

use super::Sha256;
use crate::hash::simd::{self, Block};

fn ours(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize()
}

fn reference(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

use dsfiles_sink::testing::pseudo_random as bytes;

#[test]
fn fips_180_examples() {
    let million_a = vec![b'a'; 1_000_000];
    let cases: [(&[u8], &str); 4] = [
        (
            b"",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            b"abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
        (
            &million_a,
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
        ),
    ];
    for (input, hex) in cases {
        assert_eq!(hex::encode(ours(input)), hex, "{} bytes", input.len());
    }
}

#[test]
fn every_length_around_block_and_padding_boundaries_matches_the_sha2_crate() {
    let data = bytes(1100, 17);
    for len in 0..=data.len() {
        assert_eq!(ours(&data[..len]), reference(&data[..len]), "length {len}");
    }
}

#[test]
fn any_split_of_a_stream_gives_the_digest_of_the_whole() {
    let data = bytes(300_000, 19);
    let whole = reference(&data);
    for round in 0..40 {
        let mut h = Sha256::new();
        for piece in crate::hash::blocks::pieces(&data, round) {
            h.update(piece);
        }
        assert_eq!(h.finalize(), whole, "round {round}");
    }
}

#[test]
fn a_stream_taken_apart_and_resumed_gives_the_same_digest() {
    let data = bytes(5000, 29);
    for cut in [0, 1, 63, 64, 65, 4095, 4999] {
        let mut h = Sha256::new();
        h.update(&data[..cut]);
        let (state, compressed, pending) = h.into_parts();
        assert_eq!(compressed + pending as u64, cut as u64);
        let mut resumed = Sha256::resume(state, compressed);
        resumed.update(&data[compressed as usize..]);
        assert_eq!(resumed.finalize(), reference(&data), "cut at {cut}");
    }
}

/// The compression function alone, on random states and blocks: the paired kernel against
/// `sha2`'s, whatever the CPU runs for either.
#[test]
fn paired_compressions_match_the_sha2_crate() {
    let mut rng = fastrand::Rng::with_seed(31);
    for blocks in [0, 1, 2, 7] {
        let data: Vec<Block> = (0..2 * blocks)
            .map(|_| std::array::from_fn(|_| rng.u8(..)))
            .collect();
        let (a, b) = data.split_at(blocks);
        let start: [[u32; 8]; 2] = std::array::from_fn(|_| std::array::from_fn(|_| rng.u32(..)));
        let mut expected = start;
        for (state, run) in expected.iter_mut().zip([a, b]) {
            for block in run {
                sha2::compress256(state, &[GenericArray::clone_from_slice(block)]);
            }
        }
        let mut paired = start;
        simd::sha256_pair(&mut paired, [a, b], blocks);
        assert_eq!(paired, expected, "{blocks} blocks");
        let mut single = start[0];
        simd::sha256(&mut single, a);
        assert_eq!(single, expected[0], "{blocks} blocks, one stream");
    }
}
