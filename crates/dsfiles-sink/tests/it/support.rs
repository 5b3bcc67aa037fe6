//! Emulator discovery and emulator sinks come from `dsfiles_sink::testing` (feature `testing`),
//! shared with the pipeline's tests; this module only fixes the conformance part size.

use std::sync::Arc;

use dsfiles_sink::Sink;
use dsfiles_sink::testing;
pub use dsfiles_sink::testing::{
    AZURE_CONTAINER, AZURE_ENDPOINT, GCS_BUCKET, GCS_ENDPOINT, S3_BUCKET, S3_ENDPOINT, emulator,
    unique_prefix, var_or,
};

/// Conformance sinks use 5 MiB parts.
pub fn part_options() -> Vec<(String, String)> {
    testing::pairs(&[("part_size", "5MiB")])
}

pub fn s3_sink(endpoint: &str, bucket: &str, prefix: &str) -> anyhow::Result<Arc<dyn Sink>> {
    Ok(testing::s3_sink(endpoint, bucket, prefix, &part_options())?)
}

pub fn gcs_sink(base_url: &str, bucket: &str, prefix: &str) -> anyhow::Result<Arc<dyn Sink>> {
    Ok(testing::gcs_sink(
        base_url,
        bucket,
        prefix,
        &part_options(),
    )?)
}

pub fn azure_sink(endpoint: &str, container: &str, prefix: &str) -> anyhow::Result<Arc<dyn Sink>> {
    Ok(testing::azure_sink(
        endpoint,
        container,
        prefix,
        &part_options(),
    )?)
}
