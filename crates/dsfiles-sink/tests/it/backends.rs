//! The conformance suite on every backend.

use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use dsfiles_sink::testing::{FakeGcs, S3sFs};
use dsfiles_sink::{LocalSink, ObjectMeta, ObjectStoreSink, SinkOptions};

use crate::conformance::{self, Caps, PART, data, list, read_all};
use crate::support::{self, emulator, unique_prefix, var_or};

fn five_mib() -> SinkOptions {
    SinkOptions {
        part_size: PART,
        ..SinkOptions::default()
    }
}

#[tokio::test]
async fn memory() -> Result<()> {
    let sink = ObjectStoreSink::memory().with_options(five_mib())?;
    conformance::run(
        &sink,
        Caps {
            attributes: true,
            atomic_conditional: true,
        },
    )
    .await
}

#[tokio::test]
async fn memory_under_a_prefix() -> Result<()> {
    let store = Arc::new(object_store::memory::InMemory::new());
    let sink = ObjectStoreSink::new(
        store.clone(),
        "some/prefix",
        "memory://some/prefix",
        five_mib(),
    )?;
    conformance::run(
        &sink,
        Caps {
            attributes: true,
            atomic_conditional: true,
        },
    )
    .await?;
    // Everything stayed under the prefix in the raw store.
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    let raw: Vec<_> = store.list(None).try_collect().await?;
    ensure!(!raw.is_empty());
    ensure!(
        raw.iter()
            .all(|m| m.location.as_ref().starts_with("some/prefix/"))
    );
    Ok(())
}

#[tokio::test]
async fn local_disk() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let sink = LocalSink::open(dir.path().join("dest"), five_mib())?;
    conformance::run(
        &sink,
        Caps {
            attributes: false,
            atomic_conditional: true,
        },
    )
    .await?;
    // No temp file survives the suite (abort, drop, commit all clean up), in any shard of
    // `.dsfiles/tmp/`.
    let left = sink.temp_files()?;
    ensure!(left.is_empty(), "temp files left: {left:?}");
    Ok(())
}

#[tokio::test]
async fn local_disk_without_fsync() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let options = SinkOptions {
        fsync: false,
        ..five_mib()
    };
    let sink = LocalSink::open(dir.path(), options)?;
    conformance::run(
        &sink,
        Caps {
            attributes: false,
            atomic_conditional: true,
        },
    )
    .await
}

/// s3s-fs running inside the test process (no external emulator needed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_s3s_fs_in_process() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("dsfiles-test"))?;
    let server = S3sFs::start(dir.path()).await?;
    let sink = support::s3_sink(server.endpoint(), "dsfiles-test", &unique_prefix())?;
    // s3s-fs checks `If-None-Match`/`If-Match` and then writes the file, without a lock.
    let caps = Caps {
        attributes: true,
        atomic_conditional: false,
    };
    conformance::run(&*sink, caps).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_moto() -> Result<()> {
    let Some(endpoint) = emulator(support::S3_ENDPOINT) else {
        return Ok(());
    };
    let bucket = var_or(support::S3_BUCKET, "dsfiles-test");
    let sink = support::s3_sink(&endpoint, &bucket, &unique_prefix())?;
    conformance::run(
        &*sink,
        Caps {
            attributes: true,
            atomic_conditional: true,
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_azurite() -> Result<()> {
    let Some(endpoint) = emulator(support::AZURE_ENDPOINT) else {
        return Ok(());
    };
    let container = var_or(support::AZURE_CONTAINER, "dsfiles-test");
    let sink = support::azure_sink(&endpoint, &container, &unique_prefix())?;
    conformance::run(
        &*sink,
        Caps {
            attributes: true,
            atomic_conditional: true,
        },
    )
    .await
}

/// The whole suite through object_store's GCS client, against the labelled XML-API fake
/// (`dsfiles_sink::testing::FakeGcs`): the only way to run GCS writes locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_xml_fake() -> Result<()> {
    let fake = FakeGcs::start().await?;
    let base = format!("http://{}", fake.addr);
    let sink = support::gcs_sink(&base, "dsfiles-test", &unique_prefix())?;
    conformance::run(
        &*sink,
        Caps {
            attributes: true,
            atomic_conditional: true,
        },
    )
    .await?;
    ensure!(
        fake.parts_received() >= 4,
        "multipart was not used: {} parts",
        fake.parts_received()
    );
    // Aborted and dropped multipart uploads left no parts behind.
    Ok(fake.wait_no_pending_uploads().await?)
}

/// The read path (get, range, head, list, delete) against the real fake-gcs-server, on
/// objects seeded through its JSON API (its XML write routes do not exist).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_fake_gcs_server_read_path() -> Result<()> {
    let Some(endpoint) = emulator(support::GCS_ENDPOINT) else {
        return Ok(());
    };
    let bucket = var_or(support::GCS_BUCKET, "dsfiles-test");
    let prefix = unique_prefix();
    let big = data(12 * 1024 * 1024 + 3, 11);
    let objects: Vec<(String, Vec<u8>)> = vec![
        ("1/champ/a.pdf".into(), data(1024, 12)),
        ("1/champ/big.bin".into(), big.clone()),
        ("2/message/é ç.txt".into(), b"hello".to_vec()),
        (".dsfiles/manifest.json".into(), b"{}".to_vec()),
    ];
    dsfiles_sink::install_crypto_provider();
    let http = reqwest::Client::new();
    for (key, bytes) in &objects {
        let response = http
            .post(format!("{endpoint}/upload/storage/v1/b/{bucket}/o"))
            .query(&[
                ("uploadType", "media"),
                ("name", &format!("{prefix}/{key}")),
            ])
            .body(bytes.clone())
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "seeding {key}: {}",
            response.status()
        );
    }
    let sink = support::gcs_sink(&endpoint, &bucket, &prefix)?;
    for (key, bytes) in &objects {
        ensure!(
            sink.head(key).await? == Some(bytes.len() as u64),
            "head {key}"
        );
        ensure!(&read_all(&*sink, key).await? == bytes, "get {key}");
    }
    ensure!(sink.get_small(".dsfiles/manifest.json").await?.as_deref() == Some(&b"{}"[..]));
    let start = 5 * 1024 * 1024 - 3;
    let range = sink
        .get_range("1/champ/big.bin", start as u64..start as u64 + 9)
        .await?;
    ensure!(range.as_ref() == &big[start..start + 9], "range");
    ensure!(sink.head("1/champ/none").await?.is_none());
    let listed = list(&*sink, "1").await?;
    let keys: Vec<&str> = listed.iter().map(|e| e.key.as_str()).collect();
    ensure!(keys == ["1/champ/a.pdf", "1/champ/big.bin"], "{listed:?}");
    ensure!(list(&*sink, "").await?.len() == objects.len());
    sink.delete("2/message/é ç.txt").await?;
    ensure!(sink.head("2/message/é ç.txt").await?.is_none());
    ensure!(list(&*sink, "2").await?.is_empty());
    Ok(())
}

/// A failed part makes `write` or `commit` fail, and nothing is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_fake_failed_complete_publishes_nothing() -> Result<()> {
    let fake = FakeGcs::start().await?;
    let base = format!("http://{}", fake.addr);
    let sink = support::gcs_sink(&base, "dsfiles-test", &unique_prefix())?;
    let mut up = sink.create("x.bin", &ObjectMeta::default()).await?;
    up.write(Bytes::from(data(PART + 1, 13))).await?;
    // The upload disappears server-side (as after an expiry): completion must fail.
    fake.state
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clear_uploads();
    let result = up.commit().await;
    ensure!(result.is_err(), "commit succeeded without its upload");
    ensure!(sink.head("x.bin").await?.is_none());
    Ok(())
}

/// Content type and metadata reach the wire as GCS headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_fake_stores_attributes_as_headers() -> Result<()> {
    let fake = FakeGcs::start().await?;
    let base = format!("http://{}", fake.addr);
    let sink = support::gcs_sink(&base, "dsfiles-test", "p")?;
    let meta = ObjectMeta {
        content_type: Some("image/png".into()),
        md5_base64: Some("bWQ1".into()),
        sha256_hex: Some("00ff".into()),
    };
    let mut up = sink.create("img.png", &meta).await?;
    up.write(Bytes::from_static(b"\x89PNG")).await?;
    up.commit().await?;
    let headers = fake
        .state
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .headers_of("dsfiles-test", "p/img.png")
        .context("object not stored")?;
    for expected in [
        ("content-type", "image/png"),
        ("x-goog-meta-dsfilesmd5", "bWQ1"),
        ("x-goog-meta-dsfilessha256", "00ff"),
    ] {
        ensure!(
            headers
                .iter()
                .any(|(k, v)| k == expected.0 && v == expected.1),
            "{expected:?} missing from {headers:?}"
        );
    }
    Ok(())
}
