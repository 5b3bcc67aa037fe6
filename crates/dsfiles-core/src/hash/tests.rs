use ::md5::Digest as _;

use super::*;

/// The digests of `data` computed in one call, to compare with the streamed ones.
fn one_shot(data: &[u8]) -> Digests {
    Digests {
        md5_base64: base64::engine::general_purpose::STANDARD.encode(::md5::Md5::digest(data)),
        sha256_hex: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data)),
    }
}

/// Feeds `data` cut at `sizes` (cycled) and checks the digests against [`one_shot`].
async fn check(data: &[u8], sizes: &[usize]) {
    let bytes = Bytes::copy_from_slice(data);
    let mut hasher = Hasher::start();
    let mut at = 0;
    for &size in sizes.iter().cycle() {
        if at >= bytes.len() {
            break;
        }
        let end = (at + size.max(1)).min(bytes.len());
        hasher.update(bytes.slice(at..end)).await;
        at = end;
    }
    let threaded = data.len() > INLINE_LIMIT;
    assert_eq!(
        format!("{hasher:?}").contains("engine"),
        threaded,
        "{} bytes: {hasher:?}",
        data.len()
    );
    assert_eq!(
        hasher.finish().await.unwrap(),
        one_shot(data),
        "{} bytes cut at {sizes:?}",
        data.len()
    );
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn known_digests() {
    let mut hasher = Hasher::start();
    hasher.update(Bytes::from_static(b"hello ")).await;
    hasher.update(Bytes::new()).await;
    hasher.update(Bytes::from_static(b"world")).await;
    let d = hasher.finish().await.unwrap();
    assert_eq!(d.md5_base64, "XrY7u+Ae7tCTyyK7j1rNww==");
    assert_eq!(
        d.sha256_hex,
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    );
    let empty = Hasher::start().finish().await.unwrap();
    assert_eq!(empty.md5_base64, "1B2M2Y8AsgTpgAmY7PhCfg==");
    assert_eq!(
        empty.sha256_hex,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[tokio::test]
async fn inline_and_threaded_streams_agree_with_one_shot_digests() {
    for len in [
        1,
        4096,
        INLINE_LIMIT,
        INLINE_LIMIT + 1,
        3 * INLINE_LIMIT + 17,
    ] {
        check(&pattern(len), &[1000, 7, BATCH]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_any_shape_agree_with_one_shot_digests() {
    // A chunk bigger than the engine holds (it goes in alone, and its tail of less than a block
    // must not keep the next batch waiting for permits), then odd sizes around the batch size.
    let data = pattern(4 * IN_ENGINE + 12345);
    let sizes = [IN_ENGINE + 3 * BATCH, 1, BATCH - 1, BATCH + 1, 4096];
    check(&data, &sizes).await;
}

/// The `sha2` crate's SHA-256 of `data`.
fn sha256_reference(data: &[u8]) -> [u8; 32] {
    <sha2::Sha256 as sha2::Digest>::digest(data).into()
}

/// The `md-5` crate's digest of `data`.
fn reference(data: &[u8]) -> [u8; 16] {
    ::md5::Md5::digest(data).into()
}

fn random_bytes(rng: &mut fastrand::Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.u8(..)).collect()
}

#[test]
fn every_kernel_compresses_like_the_scalar_md5() {
    let mut rng = fastrand::Rng::with_seed(13);
    let widths = Width::available();
    assert_eq!(widths.first(), Some(&Width::Scalar));
    for width in widths {
        for n in 1..=MAX_LANES {
            // Runs of 1 to 5 blocks: as many rounds as the shortest has blocks.
            let messages: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let blocks = rng.usize(1..=5);
                    random_bytes(&mut rng, 64 * blocks)
                })
                .collect();
            let rounds = messages.iter().map(|m| m.len() / 64).min().unwrap_or(0);
            let mut lanes = Lanes::default();
            let mut expected = Vec::new();
            for (lane, message) in messages.iter().enumerate() {
                let state = [rng.u32(..), rng.u32(..), rng.u32(..), rng.u32(..)];
                lanes.set_state(lane, state);
                let mut scalar = state;
                md5::compress(&mut scalar, &message[..64 * rounds]);
                expected.push(scalar);
            }
            let runs: Vec<&[simd::Block]> =
                messages.iter().map(|m| m.as_chunks::<64>().0).collect();
            assert_eq!(simd::compress(width, &mut lanes, &runs), rounds);
            let got: Vec<[u32; 4]> = (0..n).map(|lane| lanes.state(lane)).collect();
            assert_eq!(got, expected, "{width:?}, {n} lanes, {rounds} rounds");
        }
    }
}

#[test]
fn side_by_side_digests_match_rfc_1321_and_md5_crate_for_every_length() {
    // RFC 1321, appendix A.5.
    let rfc: [(&[u8], &str); 7] = [
        (b"", "d41d8cd98f00b204e9800998ecf8427e"),
        (b"a", "0cc175b9c0f1b6a831c399e269772661"),
        (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
        (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (
            b"abcdefghijklmnopqrstuvwxyz",
            "c3fcd3d76192e4007dfb496cca67e13b",
        ),
        (
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            "d174ab98d277d9f5a5611c2c9f419d9f",
        ),
        (
            b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
    ];
    let data = pattern(1100);
    for width in Width::available() {
        let messages: Vec<&[u8]> = rfc.iter().map(|(m, _)| *m).collect();
        let digests = md5_side_by_side_with(width, &messages);
        for ((message, hex), digest) in rfc.iter().zip(digests) {
            assert_eq!(hex::encode(digest), *hex, "{width:?}: {message:?}");
        }
        // Every length 0..=1100, in groups of lanes of neighbouring lengths.
        let messages: Vec<&[u8]> = (0..=1100).map(|len| &data[..len]).collect();
        let digests = md5_side_by_side_with(width, &messages);
        for (message, digest) in messages.iter().zip(digests) {
            assert_eq!(
                digest,
                reference(message),
                "{width:?}: {} bytes",
                message.len()
            );
        }
    }
}

/// Feeds `data` (its first `inline` bytes hashed before joining) into `engine` in random
/// chunks and batches, yielding at random so that other streams join, leave and finish
/// meanwhile; a stream that `leaves` is dropped halfway instead of finished.
async fn stream_through(engine: &Engine, data: Vec<u8>, seed: u64, leaves: bool) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let inline = rng.usize(..=data.len().min(200));
    let mut md5 = Md5::new();
    md5.update(&data[..inline]);
    // Every other stream has the engine compute its SHA-256 too.
    let mut sha256 = seed.is_multiple_of(2).then(Sha256::new);
    if let Some(sha256) = &mut sha256 {
        sha256.update(&data[..inline]);
    }
    let with_sha256 = sha256.is_some();
    let stream = engine.join(md5, sha256);
    let bytes = Bytes::from(data.clone());
    let mut at = inline;
    while at < bytes.len() {
        if leaves && at > bytes.len() / 2 {
            return;
        }
        let mut batch = Vec::new();
        for _ in 0..rng.usize(1..4) {
            let end = (at + rng.usize(0..5000)).min(bytes.len());
            batch.push(bytes.slice(at..end));
            at = end;
        }
        stream.send(batch).await;
        if rng.bool() {
            tokio::task::yield_now().await;
        }
    }
    let sums = stream.finish().await.unwrap();
    let what = format!("{} bytes, seed {seed}", data.len());
    assert_eq!(sums.md5, reference(&data), "{what}");
    let sha256 = with_sha256.then(|| sha256_reference(&data));
    assert_eq!(sums.sha256, sha256, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_joining_and_leaving_at_random_agree_with_md5_crate_on_every_width() {
    for width in Width::available() {
        let engine = std::sync::Arc::new(Engine::start(width).unwrap());
        let mut rng = fastrand::Rng::with_seed(width as u64);
        let mut tasks = tokio::task::JoinSet::new();
        for seed in 0..60u64 {
            // Mostly short streams, some a few blocks long, some long.
            let len = match rng.u8(..4) {
                0 => rng.usize(..130),
                1 => rng.usize(..4096),
                _ => rng.usize(..200_000),
            };
            let data = random_bytes(&mut rng, len);
            let engine = std::sync::Arc::clone(&engine);
            let leaves = seed % 7 == 3;
            tasks.spawn(async move { stream_through(&engine, data, seed, leaves).await });
            if rng.bool() {
                tokio::task::yield_now().await;
            }
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let (_, simd, sha256_paired) = engine.blocks();
        assert!(simd > 0, "{width:?}: streams never shared the lanes");
        assert!(sha256_paired > 0, "{width:?}: SHA-256 was never paired");
    }
}

#[tokio::test]
async fn a_stream_finished_after_its_engine_is_gone_is_an_error() {
    let engine = Engine::start(Width::Scalar).unwrap();
    let stream = engine.join(Md5::new(), None);
    stream.send(vec![Bytes::from_static(b"abc")]).await;
    // A finish for a stream the engine does not know gets no answer: the error path of a
    // thread that died.
    let stray = engine.unjoined();
    assert!(stray.finish().await.is_err());
    let sums = stream.finish().await.unwrap();
    assert_eq!((sums.md5, sums.sha256), (reference(b"abc"), None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_beside_an_idle_one_is_hashed_by_its_deadlines() {
    // Two members, one of which never sends: the other's batches never fill the lanes nor
    // make "every stream ready", so each waits for its deadline (`gather`). Its second and
    // third batches wait for the permits of the first: the deadlines must let them through.
    for width in Width::available() {
        let engine = Engine::start(width).unwrap();
        let _idle = engine.join(Md5::new(), Some(Sha256::new()));
        let stream = engine.join(Md5::new(), Some(Sha256::new()));
        let data = pattern(3 * IN_ENGINE + 100);
        let bytes = Bytes::from(data.clone());
        let digest = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            for piece in bytes.chunks(IN_ENGINE) {
                stream.send(vec![bytes.slice_ref(piece)]).await;
            }
            stream.finish().await
        })
        .await
        .expect("the engine hashed batches that waited for company")
        .unwrap();
        assert_eq!(digest.md5, reference(&data), "{width:?}");
        assert_eq!(digest.sha256, Some(sha256_reference(&data)), "{width:?}");
    }
}

#[test]
fn sha256_side_by_side_matches_the_sha2_crate_for_any_lengths() {
    let mut rng = fastrand::Rng::with_seed(37);
    for count in [0, 1, 2, 3, 5] {
        let messages: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                let len = rng.usize(..3000);
                random_bytes(&mut rng, len)
            })
            .collect();
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let expected: Vec<[u8; 32]> = refs.iter().map(|m| sha256_reference(m)).collect();
        assert_eq!(sha256_side_by_side(&refs), expected, "{count} messages");
    }
}
