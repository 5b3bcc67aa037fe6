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
        format!("{hasher:?}").contains("threads"),
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
    // A chunk bigger than everything the queues hold, then odd sizes around the batch size.
    let data = pattern(4 * QUEUE * BATCH + 12345);
    check(&data, &[(QUEUE + 3) * BATCH, 1, BATCH - 1, BATCH + 1, 4096]).await;
}
