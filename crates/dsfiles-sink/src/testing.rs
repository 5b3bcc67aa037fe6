//! TEST SUPPORT ONLY (cargo feature `testing`): what the integration tests of this crate and of
//! the crates above it need to run the same scenarios on every backend — emulator discovery
//! (`cargo xtask emulators up` writes `.emulators/env`), sinks configured for the emulators, an
//! in-process S3 server (s3s-fs) and a labelled fake of GCS's XML API ([`FakeGcs`]).
//!
//! **Invariant:** nothing here is reachable without the `testing` feature, which only
//! `[dev-dependencies]` enable; release builds never contain it.

mod emulators;
mod gcs_fake;
mod s3s_listing;
mod s3s_server;

pub use emulators::{
    AZURE_CONTAINER, AZURE_ENDPOINT, AZURITE_ACCOUNT, AZURITE_KEY, GCS_BUCKET, GCS_ENDPOINT,
    S3_BUCKET, S3_ENDPOINT, azure_sink, emulator, gcs_key, gcs_sink, pairs, s3_sink, unique_prefix,
    var_or,
};
pub use gcs_fake::{FakeGcs, Inner as FakeGcsState};
pub use s3s_server::S3sFs;

/// Deterministic pseudo-random bytes (xorshift), different per `seed`: test content that no
/// compression or pattern shortcut can fake.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
