//! The same sync suite on every storage backend: local disk, memory, S3 (s3s-fs in process,
//! moto), Azure (Azurite) and GCS (the labelled XML-API fake for writes; fake-gcs-server for
//! the read path of `verify`). Each scenario is written once, as a function of a [`Backend`];
//! `matrix!` makes one test per (backend, scenario), e.g. `backends::s3_moto::fault_matrix`.
//!
//! Emulators come from `cargo xtask emulators up` (`.emulators/env`): a test whose emulator is
//! not configured prints `SKIPPED` and passes, except under `CI=true`, where it fails.

use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use bytes::Bytes;
use dsfiles_core::sink::testing;
use dsfiles_core::sink::{ObjectMeta, Sink};
use dsfiles_core::{CancellationToken, FileStatus, RunStatus, Since};
use dsfiles_sim::{Fault, FaultPlan, SimConfig, Target};

mod support;

use support::{Backend, CrashAt, CrashSink, Harness, PART, Recorder, digest, list};

/// One test per (backend, scenario).
macro_rules! matrix {
    ($($module:ident => $backend:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn full_sync_reruns_and_verify() -> Result<()> {
                super::full_sync_reruns_and_verify($backend).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fault_matrix() -> Result<()> {
                super::fault_matrix($backend).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn large_files_multipart() -> Result<()> {
                super::large_files_multipart($backend).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cancel_then_rerun() -> Result<()> {
                super::cancel_then_rerun($backend).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crash_after_first_file_then_rerun() -> Result<()> {
                super::crash_then_rerun($backend, Crash::FirstFile).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crash_after_flagged_file_then_rerun() -> Result<()> {
                super::crash_then_rerun($backend, Crash::FlaggedFile).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn own_copies_taken_back_foreign_objects_kept() -> Result<()> {
                super::own_copies_taken_back_foreign_objects_kept($backend).await
            }
        }
    )*};
}

matrix! {
    local => Backend::Local,
    memory => Backend::Memory,
    s3_s3s_fs => Backend::S3sFs,
    s3_moto => Backend::S3Moto,
    azure_azurite => Backend::Azurite,
    gcs_xml_fake => Backend::GcsXmlFake,
}

/// The default simulated démarche: 12 dossiers with every file source, the hostile filenames
/// in the first dossier, one wrong DS checksum over stable bytes, deleted dossiers.
fn demarche() -> SimConfig {
    SimConfig::default()
}

/// A full sync stores exactly the ground truth; an incremental re-run and a full re-run from a
/// freshly opened destination (the manifest read back from the bucket) move 0 file bytes;
/// `verify` then detects a deleted and an overwritten file.
async fn full_sync_reruns_and_verify(backend: Backend) -> Result<()> {
    let Some(mut h) = Harness::start(backend, demarche()).await? else {
        return Ok(());
    };
    let expected = h.sim.expected_files(false, false);
    let hostile = dsfiles_sim::hostile_filenames();
    ensure!(
        !backend.adapt(demarche()).hostile_filenames
            || hostile
                .iter()
                .all(|name| expected.iter().any(|f| &f.filename == name)),
        "the simulator serves every hostile filename"
    );

    let report = h.sync(h.options()).await?;
    ensure!(report.failed.is_empty(), "{:#?}", report.failed);
    ensure!(report.stored as usize == expected.len(), "{report:#?}");
    let mismatches: Vec<_> = report
        .flagged
        .iter()
        .filter(|f| f.flag == FileStatus::ChecksumMismatch)
        .collect();
    ensure!(mismatches.len() == 1, "{:#?}", report.flagged);
    ensure!(report.exit_status(false) == RunStatus::Ok);
    ensure!(report.sync_point_advanced);
    h.check(&[]).await?;
    let served = h.sim.stats().bytes_served;
    let total: u64 = expected.iter().map(|f| f.served_size).sum();
    ensure!(
        report.bytes_downloaded == total,
        "report says {} bytes, the files hold {total}",
        report.bytes_downloaded
    );

    // Incremental re-run: nothing moves.
    let again = h.sync(h.options()).await?;
    ensure!(
        (again.stored, again.bytes_downloaded) == (0, 0) && again.failed.is_empty(),
        "{again:#?}"
    );
    ensure!(again.since.is_some(), "the second run is incremental");
    ensure!(h.sim.stats().bytes_served == served, "file bytes moved");

    // Full re-run from a freshly opened destination: every file is skipped by the manifest
    // read from the bucket.
    h.reopen()?;
    let mut opts = h.options();
    opts.since = Since::Full;
    let full = h.sync(opts).await?;
    ensure!(
        (full.stored, full.bytes_downloaded) == (0, 0) && full.failed.is_empty(),
        "{full:#?}"
    );
    ensure!(
        full.skipped_unchanged as usize == expected.len(),
        "skipped {} of {}: {full:#?}",
        full.skipped_unchanged,
        expected.len()
    );
    ensure!(h.sim.stats().bytes_served == served, "file bytes moved");
    h.check(&[]).await?;
    // On object stores the manifest was read from segments, not shard by shard (a copy is
    // trusted only against the entity tag a listing shows; the in-process s3s-fs lists them,
    // see `dsfiles_sink::testing`).
    let state = full.state_objects;
    let segmented = h.sink.list_after("", "").is_some();
    ensure!(
        if segmented {
            state.shards_read == 0 && state.segments_read > 0 && state.blocks_listed > 0
        } else {
            state.shards_read >= full.dossiers && state.segments_read == 0
        },
        "{state:?} ({} dossiers)",
        full.dossiers
    );

    // `verify` catches a missing and a tampered file, naming them.
    let shards = h.shards().await?;
    let mut files = shards.values().flat_map(|s| &s.files);
    let (Some(gone), Some(tampered)) = (files.next(), files.next()) else {
        anyhow::bail!("fewer than two files stored");
    };
    h.sink.delete(&gone.key).await?;
    let mut up = h.sink.create(&tampered.key, &ObjectMeta::default()).await?;
    up.write(Bytes::from_static(b"not what DS sent")).await?;
    up.commit().await?;
    let verify = h.verify().await?;
    ensure!(verify.missing == [gone.key.clone()], "{verify:#?}");
    ensure!(
        verify.corrupt.len() == 1 && verify.corrupt[0].key == tampered.key,
        "{verify:#?}"
    );
    ensure!(verify.ok as usize == expected.len() - 2, "{verify:#?}");
    Ok(())
}

/// 429s and 5xx from the API, resets and truncations mid-body, a file corrupted once
/// (recovered), a file corrupted on every download (failed, nothing at its key, no orphan),
/// an expired URL, and DS's wrong checksum over stable bytes (stored, flagged).
async fn fault_matrix(backend: Backend) -> Result<()> {
    let config = SimConfig {
        dossiers: 20,
        ..SimConfig::default()
    };
    let Some(h) = Harness::start(backend, config).await? else {
        return Ok(());
    };
    let files = h.sim.expected_files(false, false);
    let corrupt_once = files[2].id;
    let corrupt_always = files[5].id;
    let expiring = files[8].id;
    let wrong_checksum: Vec<u64> = files
        .iter()
        .filter(|f| f.checksum != f.true_md5_base64 && !f.checksum.is_empty())
        .map(|f| f.id)
        .collect();
    ensure!(wrong_checksum.len() == 1, "{wrong_checksum:?}");
    let sim = &h.sim;
    sim.add_fault(
        Fault::RateLimited {
            reset_in_secs: 0,
            retry_after: true,
        },
        Target::Every { every: 3 },
        Some(2),
    );
    sim.add_fault(Fault::BadGateway, Target::Every { every: 2 }, Some(2));
    sim.add_fault(Fault::ResetMidBody, Target::Every { every: 4 }, Some(3));
    sim.add_fault(Fault::TruncatedBody, Target::Every { every: 5 }, Some(3));
    sim.add_fault(
        Fault::Corrupt { varying: false },
        Target::File { file: corrupt_once },
        Some(1),
    );
    sim.add_fault(
        Fault::Corrupt { varying: true },
        Target::File {
            file: corrupt_always,
        },
        None,
    );
    sim.add_fault(Fault::ExpiredUrl, Target::File { file: expiring }, Some(1));

    let mut opts = h.options();
    opts.jobs = 8;
    let report = h.sync(opts).await?;
    for rule in h.sim.faults().rules {
        if rule.fault != (Fault::Corrupt { varying: true }) {
            ensure!(rule.times == Some(0), "fault did not fire: {rule:?}");
        }
    }
    ensure!(report.failed.len() == 1, "{:#?}", report.failed);
    let failure = &report.failed[0];
    ensure!(
        !failure.reason.contains('?'),
        "a signed URL query leaked: {}",
        failure.reason
    );
    ensure!(
        h.sink.head(&failure.key).await?.is_none(),
        "something at the failed file's key `{}`",
        failure.key
    );
    ensure!(report.exit_status(false) == RunStatus::FilesFailed);
    ensure!(!report.sync_point_advanced);
    let flagged: Vec<_> = report
        .flagged
        .iter()
        .filter(|f| f.flag == FileStatus::ChecksumMismatch)
        .collect();
    ensure!(flagged.len() == 1, "{:#?}", report.flagged);
    ensure!(
        h.sink.head(&flagged[0].key).await?.is_some(),
        "the flagged file is stored"
    );
    // `check` compares every object with the manifest: the failed file left no orphan.
    h.check(&[corrupt_always]).await?;
    let shard_status = h
        .shards()
        .await?
        .values()
        .flat_map(|s| s.files.iter())
        .find(|f| f.key == flagged[0].key)
        .map(|f| f.status);
    ensure!(shard_status == Some(FileStatus::ChecksumMismatch));

    // Once the corruption stops, the next run gets that file and nothing else.
    h.sim.set_faults(FaultPlan::new());
    let served = h.sim.stats().bytes_served;
    let report = h.sync(h.options()).await?;
    ensure!(report.failed.is_empty(), "{:#?}", report.failed);
    ensure!(report.stored == 1, "{report:#?}");
    let size = files[5].served_size;
    ensure!(
        report.bytes_downloaded == size && h.sim.stats().bytes_served == served + size,
        "{report:#?}"
    );
    h.check(&[]).await
}

/// Files larger than a part go through multipart uploads, byte-exact; a large file corrupted
/// on every download fails with nothing at its key and no pending upload.
async fn large_files_multipart(backend: Backend) -> Result<()> {
    const GOOD: u64 = 12 * 1024 * 1024 + 3;
    const BAD: u64 = 11 * 1024 * 1024 + 5;
    let config = SimConfig {
        dossiers: 3,
        deleted_dossiers: 0,
        big_files: vec![GOOD, BAD],
        ..SimConfig::default()
    };
    const _: () = assert!(BAD as usize > 2 * PART && GOOD > BAD);
    let Some(h) = Harness::start(backend, config).await? else {
        return Ok(());
    };
    let files = h.sim.expected_files(false, false);
    let find = |size| {
        files
            .iter()
            .find(|f| f.served_size == size)
            .with_context(|| format!("no file of {size} bytes in the simulator"))
    };
    let (good, bad) = (find(GOOD)?, find(BAD)?);
    h.sim.add_fault(
        Fault::Corrupt { varying: true },
        Target::File { file: bad.id },
        None,
    );
    let mut opts = h.options();
    opts.retries = 1;
    let report = h.sync(opts).await?;
    ensure!(report.failed.len() == 1, "{:#?}", report.failed);
    let failed_key = report.failed[0].key.clone();
    ensure!(h.sink.head(&failed_key).await?.is_none(), "`{failed_key}`");
    let shards = h.shards().await?;
    let stored = shards
        .values()
        .flat_map(|s| &s.files)
        .find(|f| f.sha256 == good.sha256_hex)
        .context("the large file is not in the manifest")?;
    let (sha256, size) = digest(h.sink.as_ref(), &stored.key).await?;
    ensure!((sha256.as_str(), size) == (good.sha256_hex.as_str(), GOOD));
    if let Some(fake) = &h.dest.gcs {
        ensure!(
            fake.parts_received() >= 3,
            "multipart was not used: {} parts",
            fake.parts_received()
        );
    }
    h.check(&[bad.id]).await?;

    // The good file is not downloaded again; the bad one is, and now lands.
    h.sim.set_faults(FaultPlan::new());
    let report = h.sync(h.options()).await?;
    ensure!(
        report.failed.is_empty() && report.stored == 1 && report.bytes_downloaded == BAD,
        "{report:#?}"
    );
    h.check(&[]).await
}

/// Cancelled after the first stored file: a consistent destination (every object in the
/// manifest, `verify` clean); the next run completes it.
async fn cancel_then_rerun(backend: Backend) -> Result<()> {
    let Some(h) = Harness::start(backend, demarche()).await? else {
        return Ok(());
    };
    let cancel = CancellationToken::new();
    let recorder = Arc::new(Recorder {
        cancel_on_store: Some(cancel.clone()),
        ..Recorder::default()
    });
    let report = h.sync_with(h.options(), recorder, cancel).await?;
    ensure!(report.cancelled, "{report:#?}");
    ensure!(report.exit_status(false) == RunStatus::Cancelled);
    ensure!(!report.sync_point_advanced);
    let total = h.sim.expected_files(false, false).len();
    ensure!((report.stored as usize) < total, "{report:#?}");
    let verify = h.verify().await?;
    ensure!(
        verify.missing.is_empty() && verify.corrupt.is_empty(),
        "{verify:#?}"
    );
    let in_manifest = crate::support::manifest_keys(&h.shards().await?);
    let stored: Vec<String> = list(h.sink.as_ref(), "")
        .await?
        .into_iter()
        .map(|e| e.key)
        .filter(|k| !k.starts_with(".dsfiles/"))
        .collect();
    ensure!(
        stored == in_manifest,
        "objects outside the manifest after a cancel:\n stored {stored:#?}\n manifest {in_manifest:#?}"
    );

    let report = h.sync(h.options()).await?;
    ensure!(!report.cancelled && report.failed.is_empty(), "{report:#?}");
    ensure!(
        report.stored as usize + verify.ok as usize == total,
        "files stored twice or lost: {} now + {} before != {total}",
        report.stored,
        verify.ok
    );
    h.check(&[]).await
}

#[derive(Clone, Copy, Debug)]
enum Crash {
    /// Right after the first file reaches the store.
    FirstFile,
    /// Right after the file whose DS checksum is wrong (stored flagged) reaches the store,
    /// before its shard is written.
    FlaggedFile,
}

/// `kill -9` at the pipeline level: the store stops answering right after a file is published
/// (nothing else reaches it), then the `sync` future is dropped; once the dead run let go of
/// the destination and its storage operations settled ([`CrashSink::dead_and_settled`]), a
/// new process (a freshly opened destination) re-runs: complete, correct, no temp file left,
/// no duplicate of the orphaned files.
async fn crash_then_rerun(backend: Backend, crash: Crash) -> Result<()> {
    let Some(mut h) = Harness::start(backend, demarche()).await? else {
        return Ok(());
    };
    let at = match crash {
        Crash::FirstFile => CrashAt::FirstCommit,
        Crash::FlaggedFile => {
            let files = h.sim.expected_files(false, false);
            let wrong = files
                .iter()
                .find(|f| !f.checksum.is_empty() && f.checksum != f.true_md5_base64)
                .context("the simulator has a wrong checksum")?;
            CrashAt::Md5(wrong.checksum.clone())
        }
    };
    let crashing = Arc::new(CrashSink::new(Arc::clone(&h.sink), at));
    let crashed = crashing.crashed();
    let settled = crashing.dead_and_settled();
    let run = dsfiles_core::sync(
        h.client.clone(),
        Arc::clone(&crashing) as Arc<dyn Sink>,
        h.options(),
        dsfiles_core::no_progress(),
        CancellationToken::new(),
    );
    tokio::select! {
        report = run => anyhow::bail!("the run ended before the crash: {report:#?}"),
        () = crashed => {}
    }
    drop(crashing);
    tokio::time::timeout(std::time::Duration::from_secs(60), settled)
        .await
        .context("the crashed run still holds the destination")?;
    let before = list(h.sink.as_ref(), "").await?;
    ensure!(
        before.iter().any(|e| !e.key.starts_with(".dsfiles/")),
        "the crashed run published no file"
    );
    ensure!(
        h.sink
            .get_small(&dsfiles_core::wire::sync_point_key(h.sim.demarche()))
            .await?
            .is_none(),
        "a sync point was written by the crashed run"
    );

    h.reopen()?;
    // The crashed run's lease is still live (a killed process releases nothing): a plain
    // rerun is refused, naming it; the operator who knows it is gone breaks it.
    let refused = h.sync(h.options()).await;
    let busy = refused
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<dsfiles_core::Error>());
    ensure!(
        matches!(busy, Some(dsfiles_core::Error::DestinationBusy(_))),
        "a rerun while the crashed run's lease is live: {refused:?}"
    );
    let mut opts = h.options();
    opts.lease.break_lease = true;
    let report = h.sync(opts).await?;
    ensure!(!report.cancelled && report.failed.is_empty(), "{report:#?}");
    ensure!(report.sync_point_advanced, "{report:#?}");
    ensure!(
        h.sink
            .get_small(&dsfiles_core::wire::lease_key(h.sim.demarche()))
            .await?
            .is_none(),
        "the lease was not released at the end of the run"
    );
    h.check(&[]).await
}

/// Objects at the keys of files the manifest does not know: the run's own earlier copies (the
/// shard was lost, as when a run is killed before writing it), including the file whose DS
/// checksum is wrong, are recognised by their bytes and taken back at the same key; a foreign
/// object of the same size is never overwritten, the file goes to a numbered key beside it.
async fn own_copies_taken_back_foreign_objects_kept(backend: Backend) -> Result<()> {
    let Some(mut h) = Harness::start(backend, demarche()).await? else {
        return Ok(());
    };
    let report = h.sync(h.options()).await?;
    ensure!(report.failed.is_empty(), "{:#?}", report.failed);
    let shards = h.shards().await?;
    let live = || shards.values().filter(|s| s.deleted_at.is_none());
    let (flagged_dossier, flagged) = live()
        .flat_map(|s| s.files.iter().map(move |f| (s.dossier, f.clone())))
        .find(|(_, f)| f.status == FileStatus::ChecksumMismatch)
        .context("no file flagged `checksum_mismatch`")?;
    let (other_dossier, other) = live()
        .filter(|s| s.dossier != flagged_dossier)
        .flat_map(|s| s.files.iter().map(move |f| (s.dossier, f.clone())))
        .find(|(_, f)| f.status == FileStatus::Ok && f.size > 0)
        .context("no verified file outside the flagged file's dossier")?;

    // The two dossiers lose their shards; the flagged file's object is rewritten with the same
    // bytes but no attributes, the other file's object is replaced by foreign bytes.
    for dossier in [flagged_dossier, other_dossier] {
        h.sink
            .delete(&dsfiles_core::wire::shard_key(dossier))
            .await?;
    }
    let own = h
        .sink
        .get_small(&flagged.key)
        .await?
        .context("the flagged file is not stored")?;
    let foreign = Bytes::from(vec![b'x'; usize::try_from(other.size)?]);
    for (key, bytes) in [(&flagged.key, own), (&other.key, foreign.clone())] {
        let mut up = h.sink.create(key, &ObjectMeta::default()).await?;
        up.write(bytes).await?;
        up.commit().await?;
    }

    h.reopen()?;
    let mut opts = h.options();
    opts.since = Since::Full;
    let report = h.sync(opts).await?;
    ensure!(report.failed.is_empty(), "{:#?}", report.failed);
    let relisted = shards[&flagged_dossier].files.len() + shards[&other_dossier].files.len();
    ensure!(report.stored as usize == relisted, "{report:#?}");
    let after = h.shards().await?;
    let slot = |dossier: u64, file_id: &str| {
        after
            .get(&dossier)
            .and_then(|s| s.file(file_id))
            .cloned()
            .with_context(|| format!("`{file_id}` is not in the manifest"))
    };
    let taken_back = slot(flagged_dossier, &flagged.file_id)?;
    ensure!(
        taken_back.key == flagged.key && taken_back.status == FileStatus::ChecksumMismatch,
        "the flagged file's own copy was not taken back: {taken_back:#?}"
    );
    let moved = slot(other_dossier, &other.file_id)?;
    ensure!(
        moved.key != other.key && !moved.key.contains(") ("),
        "the file next to a foreign object is at `{}`",
        moved.key
    );
    ensure!(
        h.sink.get_small(&other.key).await? == Some(foreign),
        "the foreign object at `{}` was overwritten",
        other.key
    );
    // Without the foreign object, the destination is exactly the manifest.
    h.sink.delete(&other.key).await?;
    h.check(&[]).await
}

/// `verify` through object_store's GCS client against the real fake-gcs-server: a destination
/// synced into the XML fake is copied object by object into fake-gcs-server (through its JSON
/// API: it has no XML write API), then verified there, including a tampered file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_fake_gcs_server_verify() -> Result<()> {
    let Some(endpoint) = testing::emulator(testing::GCS_ENDPOINT) else {
        return Ok(());
    };
    let bucket = testing::var_or(testing::GCS_BUCKET, "dsfiles-test");
    let Some(h) = Harness::start(Backend::GcsXmlFake, demarche()).await? else {
        return Ok(());
    };
    let report = h.sync(h.options()).await?;
    ensure!(report.failed.is_empty(), "{:#?}", report.failed);

    dsfiles_core::sink::install_crypto_provider();
    let http = reqwest::Client::new();
    let upload = |key: String, bytes: Bytes| {
        let request = http
            .post(format!("{endpoint}/upload/storage/v1/b/{bucket}/o"))
            .query(&[
                ("uploadType", "media"),
                ("name", &format!("{}/{key}", h.dest.prefix)),
            ])
            .body(bytes);
        async move {
            let response = request.send().await?;
            ensure!(
                response.status().is_success(),
                "seeding `{key}`: {}",
                response.status()
            );
            Ok(())
        }
    };
    let objects = list(h.sink.as_ref(), "").await?;
    for entry in &objects {
        let bytes = h
            .sink
            .get_small(&entry.key)
            .await?
            .with_context(|| format!("`{}` vanished", entry.key))?;
        upload(entry.key.clone(), bytes).await?;
    }
    let real = testing::gcs_sink(&endpoint, &bucket, &h.dest.prefix, &[])?;
    ensure!(list(real.as_ref(), "").await? == objects, "listings differ");
    let verify = dsfiles_core::verify(
        Arc::clone(&real),
        dsfiles_core::no_progress(),
        CancellationToken::new(),
    )
    .await?;
    ensure!(
        verify.missing.is_empty() && verify.corrupt.is_empty(),
        "{verify:#?}"
    );
    let files = h.sim.expected_files(false, false).len();
    ensure!(verify.ok as usize == files, "{verify:#?}");

    let shards = h.shards().await?;
    let tampered = shards
        .values()
        .flat_map(|s| &s.files)
        .next()
        .context("no file stored")?;
    upload(tampered.key.clone(), Bytes::from_static(b"tampered")).await?;
    let verify =
        dsfiles_core::verify(real, dsfiles_core::no_progress(), CancellationToken::new()).await?;
    ensure!(
        verify.corrupt.len() == 1 && verify.corrupt[0].key == tampered.key,
        "{verify:#?}"
    );
    Ok(())
}
