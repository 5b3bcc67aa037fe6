use ::md5::Digest as _;

use super::Md5;

fn ours(data: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(data);
    h.finalize()
}

fn reference(data: &[u8]) -> [u8; 16] {
    ::md5::Md5::digest(data).into()
}

use dsfiles_sink::testing::pseudo_random as bytes;

#[test]
fn rfc_1321_test_suite() {
    let cases: [(&str, &str); 7] = [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (
            "abcdefghijklmnopqrstuvwxyz",
            "c3fcd3d76192e4007dfb496cca67e13b",
        ),
        (
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            "d174ab98d277d9f5a5611c2c9f419d9f",
        ),
        (
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
    ];
    for (input, hex) in cases {
        assert_eq!(hex::encode(ours(input.as_bytes())), hex, "{input:?}");
    }
}

#[test]
fn every_length_around_block_and_padding_boundaries_matches_the_md5_crate() {
    let data = bytes(1100, 7);
    for len in 0..=data.len() {
        assert_eq!(ours(&data[..len]), reference(&data[..len]), "length {len}");
    }
}

#[test]
fn any_split_of_a_stream_gives_the_digest_of_the_whole() {
    let data = bytes(300_000, 11);
    let whole = reference(&data);
    assert_eq!(ours(&data), whole);
    for round in 0..40 {
        let mut h = Md5::new();
        for piece in crate::hash::blocks::pieces(&data, round) {
            h.update(piece);
        }
        assert_eq!(h.finalize(), whole, "round {round}");
    }
}

#[test]
fn a_clone_continues_independently() {
    let data = bytes(1000, 5);
    let mut h = Md5::new();
    h.update(&data[..333]);
    let mut other = h.clone();
    h.update(&data[333..]);
    other.update(b"something else");
    assert_eq!(h.finalize(), reference(&data));
    let mut expected = data[..333].to_vec();
    expected.extend_from_slice(b"something else");
    assert_eq!(other.finalize(), reference(&expected));
}
