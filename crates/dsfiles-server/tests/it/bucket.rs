//! `POST /v1/syncs` into an S3 bucket: the service opens object-store destinations with its
//! `dest_options` (endpoint, credentials), the allow-list admits a bucket prefix, and the files
//! land in the bucket with their manifest under `<prefix>/.dsfiles/`. Run on s3s-fs inside the
//! test process, and on moto when `DSFILES_TEST_S3_ENDPOINT` is set (a failure under `CI=true`
//! when it is not).

use std::sync::Arc;

use dsfiles_core::sink::testing::{self, S3sFs};
use dsfiles_core::sink::{ListEntry, Sink};
use dsfiles_server::AllowList;
use dsfiles_server::api::JobState;
use futures::StreamExt as _;
use serde_json::json;

use crate::support::{
    Dirs, TestServer, assert_terminal, config, core_pipeline, error_code, sim, small,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_into_an_s3_bucket_on_s3s_fs() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("dsfiles-test")).expect("bucket directory");
    let server = S3sFs::start(dir.path()).await.expect("s3s-fs starts");
    sync_into_bucket(server.endpoint(), "dsfiles-test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_into_an_s3_bucket_on_moto() {
    let Some(endpoint) = testing::emulator(testing::S3_ENDPOINT) else {
        return;
    };
    let bucket = testing::var_or(testing::S3_BUCKET, "dsfiles-test");
    sync_into_bucket(&endpoint, &bucket).await;
}

/// Object-store settings of the service, as `--dest-option` would give them.
fn s3_options(endpoint: &str) -> Vec<(String, String)> {
    testing::pairs(&[
        ("endpoint", endpoint),
        ("allow_http", "true"),
        ("access_key_id", "test"),
        ("secret_access_key", "test"),
        ("region", "us-east-1"),
        ("virtual_hosted_style_request", "false"),
        ("part_size", "5MiB"),
    ])
}

async fn list(sink: &dyn Sink) -> Vec<ListEntry> {
    let mut entries: Vec<ListEntry> = sink
        .list("")
        .map(|e| e.expect("listing the bucket"))
        .collect()
        .await;
    entries.sort();
    entries
}

async fn sync_into_bucket(endpoint: &str, bucket: &str) {
    let sim = sim(small()).await;
    let dirs = Dirs::new();
    let prefix = testing::unique_prefix();
    let allowed = format!("s3://{bucket}/{prefix}");
    let mut config = config(&dirs);
    config.allow_dest = AllowList::new([allowed.as_str()]).expect("allow list");
    let pipeline = core_pipeline(&sim).with_dest_options(s3_options(endpoint));
    let server = TestServer::start(config, Arc::new(pipeline)).await;

    // Outside the allowed prefix: refused before anything runs.
    let refused = server
        .post("/v1/syncs")
        .json(&json!({"demarche": sim.demarche(), "dest": format!("s3://{bucket}/elsewhere")}))
        .send()
        .await
        .expect("POST /v1/syncs");
    assert_eq!(error_code(refused, 403).await, "destination_not_allowed");

    let dest = format!("{allowed}/demarche-{}", sim.demarche());
    let job = server
        .start_sync(json!({"demarche": sim.demarche(), "dest": dest}))
        .await;
    let record = server.finish(&job.id).await;
    assert_terminal(&record, JobState::Succeeded);
    let expected = sim.expected_files(false, false);
    assert_eq!(record.counters.files_stored, expected.len() as u64);
    assert_eq!(record.counters.files_failed, 0, "{:?}", record.failures);

    // The bucket holds every file, byte-exact, and the manifest next to them.
    let sink = testing::s3_sink(
        endpoint,
        bucket,
        &format!("{prefix}/demarche-{}", sim.demarche()),
        &[],
    )
    .expect("S3 sink");
    let entries = list(sink.as_ref()).await;
    let (state, objects): (Vec<&ListEntry>, Vec<&ListEntry>) =
        entries.iter().partition(|e| e.key.starts_with(".dsfiles/"));
    let (data, files): (Vec<&ListEntry>, Vec<&ListEntry>) = objects
        .into_iter()
        .partition(|e| e.key.ends_with("/dossier.json"));
    assert_eq!(files.len(), expected.len(), "{files:#?}");
    // Each dossier's dossier.json, next to its files in the bucket.
    assert_eq!(data.len(), sim.dossier_numbers().len(), "{data:#?}");
    assert!(
        state
            .iter()
            .any(|e| e.key.starts_with(".dsfiles/dossiers/")),
        "no manifest shard in the bucket: {state:#?}"
    );
    let mut stored_sizes: Vec<u64> = files.iter().map(|e| e.size).collect();
    let mut expected_sizes: Vec<u64> = expected.iter().map(|f| f.served_size).collect();
    stored_sizes.sort_unstable();
    expected_sizes.sort_unstable();
    assert_eq!(stored_sizes, expected_sizes);
    let verify = dsfiles_core::verify(
        Arc::clone(&sink),
        dsfiles_core::no_progress(),
        dsfiles_core::CancellationToken::new(),
    )
    .await
    .expect("verify");
    assert!(
        verify.missing.is_empty() && verify.corrupt.is_empty(),
        "{verify:#?}"
    );
    assert_eq!(verify.ok as usize, expected.len() + data.len());

    // A second job reads the manifest from the bucket and moves nothing.
    let again = server
        .start_sync(json!({"demarche": sim.demarche(), "dest": dest}))
        .await;
    let again = server.finish(&again.id).await;
    assert_terminal(&again, JobState::Succeeded);
    assert_eq!(
        (again.counters.files_stored, again.counters.bytes_downloaded),
        (0, 0)
    );
    server.stop().await;
}
