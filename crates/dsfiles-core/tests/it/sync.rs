use std::sync::Arc;

use dsfiles_core::{CancellationToken, FileStatus, RunStatus, SINCE_MARGIN, Since, wire};
use dsfiles_sim::{Fault, SimConfig, Target};
use futures::StreamExt as _;

use crate::support::{Recorder, env, manifest_keys, temp_files};

#[tokio::test]
async fn full_sync_equals_ground_truth_and_a_rerun_moves_nothing() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let report = env.sync(env.options()).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert_eq!(
        report.stored as usize,
        env.sim.expected_files(false, false).len()
    );
    assert_eq!(report.exit_status(false), RunStatus::Ok);
    // The simulator's one wrong DS checksum over stable bytes: stored, flagged, strict fails.
    let mismatches: Vec<_> = report
        .flagged
        .iter()
        .filter(|f| f.flag == FileStatus::ChecksumMismatch)
        .collect();
    assert_eq!(mismatches.len(), 1, "{:#?}", report.flagged);
    assert_eq!(report.exit_status(true), RunStatus::FilesFailed);
    let mut deleted = report.deleted_dossiers.clone();
    deleted.sort();
    assert_eq!(deleted, env.sim.deleted_dossiers());
    // Short lists: the report is complete, its counts are its lists' lengths.
    let c = report.counts;
    let listed = |n: usize| n as u64;
    assert_eq!(c.flagged, listed(report.flagged.len()));
    assert_eq!(c.checksum_mismatch, 1);
    assert_eq!(c.skipped_unscanned, listed(report.skipped_unscanned.len()));
    assert_eq!(c.deleted_dossiers, listed(deleted.len()));
    assert_eq!(
        (c.failed, c.warnings, report.lists.as_deref()),
        (0, 0, None)
    );
    assert!(report.sync_point_advanced);
    env.assert_ground_truth(&[]).await?;
    assert!(
        env.sim.file_host_authorizations().is_empty(),
        "credentials reached the file host"
    );

    let served = env.sim.stats().bytes_served;
    let again = env.sync(env.options()).await?;
    assert_eq!((again.stored, again.bytes_downloaded), (0, 0), "{again:#?}");
    assert_eq!(env.sim.stats().bytes_served, served);
    assert_eq!(
        again.since,
        Some(report.started_at - chrono::Duration::from_std(SINCE_MARGIN)?),
        "the second run starts from the first one, minus the safety margin"
    );
    env.assert_ground_truth(&[]).await?;
    Ok(())
}

#[tokio::test]
async fn a_changed_file_moves_alone() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(env.options()).await?;
    let dossier = env.sim.dossier_numbers()[3];
    let changed = env.sim.touch_dossier(dossier, true)?;
    assert!(changed.is_some());
    let report = env.sync(env.options()).await?;
    assert_eq!(report.stored, 1, "{report:#?}");
    assert!(report.failed.is_empty());
    env.assert_ground_truth(&[]).await?;
    Ok(())
}

#[tokio::test]
async fn the_fault_matrix_is_survived() -> anyhow::Result<()> {
    let env = env(SimConfig {
        dossiers: 30,
        ..SimConfig::default()
    })
    .await?;
    let files = env.sim.expected_files(false, false);
    let corrupt_once = files[2].id;
    let corrupt_always = files[5].id;
    let expiring = files[8].id;
    let sim = &env.sim;
    sim.add_fault(
        Fault::RateLimited {
            reset_in_secs: 0,
            retry_after: true,
        },
        Target::Every { every: 3 },
        Some(2),
    );
    sim.add_fault(Fault::BadGateway, Target::Every { every: 2 }, Some(2));
    sim.add_fault(
        Fault::GraphqlTimeout { above_first: 10 },
        Target::Always,
        Some(1),
    );
    sim.add_fault(Fault::ResetMidBody, Target::Every { every: 4 }, Some(4));
    sim.add_fault(Fault::TruncatedBody, Target::Every { every: 5 }, Some(4));
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
    sim.add_fault(Fault::ExpiredUrl, Target::File { file: expiring }, Some(2));
    sim.add_fault(Fault::ExpireAllUrls, Target::Every { every: 20 }, Some(1));

    let mut opts = env.options();
    opts.jobs = 8;
    let recorder = Arc::new(Recorder::default());
    let progress: dsfiles_core::Progress = recorder.clone();
    let report = dsfiles_core::sync(
        env.client.clone(),
        Arc::clone(&env.sink),
        opts,
        progress,
        CancellationToken::new(),
    )
    .await?;
    let events = recorder
        .events
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let resumed = events.iter().any(|e| {
        matches!(e, dsfiles_core::Event::Retry { reason, .. } if reason.contains("resuming at byte"))
    });
    assert!(resumed, "no interrupted download was resumed with `Range`");
    for rule in env.sim.faults().rules {
        if rule.fault != (Fault::Corrupt { varying: true }) {
            assert_eq!(rule.times, Some(0), "fault did not fire: {rule:?}");
        }
    }
    assert_eq!(report.failed.len(), 1, "{:#?}", report.failed);
    let failure = &report.failed[0];
    assert!(failure.reason.contains("disagree"), "{}", failure.reason);
    assert!(
        !failure.reason.contains('?'),
        "a signed URL query leaked: {}",
        failure.reason
    );
    assert_eq!(
        env.sink.head(&failure.key).await?,
        None,
        "nothing at the final path"
    );
    assert_eq!(report.exit_status(false), RunStatus::FilesFailed);
    assert!(!report.sync_point_advanced);
    env.assert_ground_truth(&[corrupt_always]).await?;
    assert!(env.sim.file_host_authorizations().is_empty());

    // Once the corruption stops, the next run gets the file and nothing else.
    env.sim.set_faults(dsfiles_sim::FaultPlan::new());
    let report = env.sync(env.options()).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert_eq!(report.stored, 1);
    env.assert_ground_truth(&[]).await?;
    Ok(())
}

#[tokio::test]
async fn cancellation_leaves_consistent_shards_and_no_temp_files() -> anyhow::Result<()> {
    let env = env(SimConfig {
        dossiers: 20,
        ..SimConfig::default()
    })
    .await?;
    let cancel = CancellationToken::new();
    let recorder = Arc::new(Recorder {
        cancel_on_store: Some(cancel.clone()),
        ..Recorder::default()
    });
    let report = dsfiles_core::sync(
        env.client.clone(),
        Arc::clone(&env.sink),
        env.options(),
        recorder,
        cancel,
    )
    .await?;
    assert!(report.cancelled);
    assert_eq!(report.exit_status(false), RunStatus::Cancelled);
    assert!(!report.sync_point_advanced);
    assert!((report.stored as usize) < env.sim.expected_files(false, false).len());
    let verify = env.verify().await?;
    assert!(
        verify.missing.is_empty() && verify.corrupt.is_empty(),
        "{verify:#?}"
    );
    assert_eq!(
        temp_files(env.dir.path())?,
        Vec::<std::path::PathBuf>::new()
    );

    let report = env.sync(env.options()).await?;
    assert!(!report.cancelled && report.failed.is_empty(), "{report:#?}");
    env.assert_ground_truth(&[]).await?;
    Ok(())
}

#[tokio::test]
async fn pending_scans_are_flagged_and_rechecked() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let report = env.sync(env.options()).await?;
    let mut pending: Vec<u64> = env
        .sim
        .expected_files(false, false)
        .iter()
        .filter(|f| f.virus_scan == "pending")
        .map(|f| f.dossier)
        .collect();
    pending.dedup();
    assert!(!pending.is_empty(), "the simulator has pending files");
    let flagged = report
        .flagged
        .iter()
        .filter(|f| f.flag == FileStatus::Pending)
        .count();
    assert_eq!(
        flagged,
        env.sim
            .expected_files(false, false)
            .iter()
            .filter(|f| f.virus_scan == "pending")
            .count()
    );
    let recheck: wire::Recheck = serde_json::from_slice(
        &env.sink
            .get_small(&wire::recheck_key(env.sim.demarche()))
            .await?
            .unwrap_or_default(),
    )?;
    assert_eq!(recheck.dossiers, pending);

    // The next incremental run fetches them again even though DS did not update them.
    let mut opts = env.options();
    opts.since = Since::At(chrono::Utc::now() + chrono::Duration::hours(1));
    let report = env.sync(opts).await?;
    assert_eq!(report.dossiers as usize, pending.len(), "{report:#?}");
    assert_eq!(report.stored, 0);
    Ok(())
}

#[tokio::test]
async fn deleted_dossiers_are_recorded_and_pruned_only_when_asked() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(env.options()).await?;
    let numbers = env.sim.dossier_numbers();
    let (kept, pruned) = (numbers[0], numbers[1]);
    let keys_of = |shard: &dsfiles_core::Shard| {
        shard
            .files
            .iter()
            .map(|f| f.key.clone())
            .collect::<Vec<_>>()
    };
    let shards = env.shards().await?;
    let kept_keys = keys_of(&shards[&kept]);
    let pruned_keys = keys_of(&shards[&pruned]);

    env.sim.delete_dossier(kept)?;
    let report = env.sync(env.options()).await?;
    assert!(report.deleted_dossiers.contains(&kept), "{report:#?}");
    let shard = &env.shards().await?[&kept];
    assert!(shard.deleted_at.is_some());
    assert!(
        shard
            .files
            .iter()
            .all(|f| f.status == FileStatus::RemovedUpstream)
    );
    for key in &kept_keys {
        assert!(
            env.sink.head(key).await?.is_some(),
            "`{key}` deleted without prune"
        );
    }

    env.sim.delete_dossier(pruned)?;
    let mut opts = env.options();
    opts.prune = true;
    let report = env.sync(opts).await?;
    assert!(report.deleted_dossiers.contains(&pruned));
    for key in &pruned_keys {
        assert_eq!(env.sink.head(key).await?, None, "`{key}` not pruned");
    }
    assert!(env.shards().await?[&pruned].files.is_empty());
    Ok(())
}

#[tokio::test]
async fn list_streams_every_record() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let opts = dsfiles_core::ListOptions {
        demarche: env.sim.demarche(),
        filter: dsfiles_core::ds::DossierFilter::default(),
        include: dsfiles_core::extract::Include::default(),
    };
    let items: Vec<_> = dsfiles_core::list(env.client.clone(), opts, CancellationToken::new())
        .collect()
        .await;
    let mut records = 0;
    let mut dossiers = 0;
    for item in items {
        match item? {
            dsfiles_core::ListItem::Record(_) => records += 1,
            dsfiles_core::ListItem::Dossier { .. } => dossiers += 1,
            dsfiles_core::ListItem::Warning(w) => anyhow::bail!("unexpected warning: {w}"),
        }
    }
    assert_eq!(records, env.sim.expected_files(false, false).len());
    assert_eq!(dossiers, env.sim.dossier_numbers().len());
    Ok(())
}

#[tokio::test]
async fn sha256_layouts_stage_then_publish() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let mut opts = env.options();
    opts.layout = Some(dsfiles_core::extract::Layout::parse(
        "{dossier}/{sha256}.{ext}",
    )?);
    let report = env.sync(opts).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    env.assert_ground_truth(&[]).await?;
    for shard in env.shards().await?.values() {
        for file in &shard.files {
            assert!(
                file.key.contains(&file.sha256),
                "`{}` does not name its SHA-256",
                file.key
            );
        }
    }
    let staged: Vec<_> = env.sink.list(wire::STAGING_PREFIX).collect().await;
    assert_eq!(staged.len(), 1, "only the marker stays: {staged:?}");
    Ok(())
}

/// The keys the manifest records, after checking that every file the simulator serves has
/// one, and no two the same (case-folded).
async fn every_file_has_its_own_key(env: &crate::support::Env) -> anyhow::Result<Vec<String>> {
    let stored: Vec<String> = (env.shards().await?.values())
        .flat_map(|s| s.files.iter().map(|f| f.key.clone()))
        .collect();
    let folded: std::collections::BTreeSet<String> =
        stored.iter().map(|k| k.to_lowercase()).collect();
    assert_eq!(folded.len(), stored.len(), "a key given twice: {stored:?}");
    assert_eq!(stored.len(), env.sim.expected_files(false, false).len());
    Ok(stored)
}

/// A layout that lets dossiers meet (no dossier directory) shares one key allocator across
/// the run: the same names in different dossiers get numbered variants, never one key twice.
#[tokio::test]
async fn layouts_that_let_dossiers_meet_give_every_file_its_own_key() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let mut opts = env.options();
    let layout = dsfiles_core::extract::Layout::parse("{source}/{filename}")?;
    assert!(layout.dossier_dir(opts.demarche).is_none());
    opts.layout = Some(layout);
    let report = env.sync(opts).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    let stored = every_file_has_its_own_key(&env).await?;
    assert!(
        stored.iter().any(|k| k.contains(" (2)")),
        "the simulator's names repeat across dossiers, so some key must be numbered: {stored:?}"
    );
    for key in &stored {
        assert!(env.dir.path().join(key).is_file(), "`{key}` is not stored");
    }
    Ok(())
}

/// Under a layout whose dossiers meet, a run plans the new files of the dossiers it lists
/// first while the manifests of dossiers it lists later are still to be read (here: the second
/// half was synced before, and its names repeat the first half's). The stored keys win (no
/// warning of a conflicting manifest entry, no failure), and no two files share a key.
#[tokio::test]
async fn stored_keys_win_over_keys_planned_earlier_in_the_run() -> anyhow::Result<()> {
    let env = env(SimConfig {
        dossiers: 40,
        ..SimConfig::default()
    })
    .await?;
    let mut opts = env.options();
    opts.layout = Some(dsfiles_core::extract::Layout::parse("{source}/{filename}")?);
    let numbers = env.sim.dossier_numbers();
    let mut second_half = opts.clone();
    second_half.filter.dossiers = numbers[numbers.len() / 2..].to_vec();
    let first = env.sync(second_half).await?;
    assert!(first.failed.is_empty(), "{:#?}", first.failed);
    let report = env.sync(opts).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
    every_file_has_its_own_key(&env).await?;
    Ok(())
}

#[tokio::test]
async fn a_foreign_object_is_never_overwritten() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    // A first run tells where a file goes; a fresh destination then holds something else there.
    env.sync(env.options()).await?;
    let shards = env.shards().await?;
    let taken = shards
        .values()
        .flat_map(|s| s.files.first())
        .next()
        .map(|f| f.key.clone());
    let Some(taken) = taken else {
        anyhow::bail!("no file stored")
    };
    let fresh = crate::support::env(SimConfig::default()).await?;
    std::fs::create_dir_all(
        fresh
            .dir
            .path()
            .join(&taken)
            .parent()
            .unwrap_or(fresh.dir.path()),
    )?;
    std::fs::write(fresh.dir.path().join(&taken), b"operator's own file")?;
    let report = fresh.sync(fresh.options()).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert_eq!(
        std::fs::read(fresh.dir.path().join(&taken))?,
        b"operator's own file"
    );
    let keys = manifest_keys(&fresh.shards().await?);
    assert!(
        !keys.contains(&taken),
        "the manifest claims the operator's file"
    );
    Ok(())
}

/// An incremental run under a layout whose dossiers meet finds a new file's name held by
/// files of dossiers it does not read: it steps over all of them, more than a thousand here.
#[tokio::test]
async fn a_new_file_steps_over_every_occupied_variant_of_its_name() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(env.options()).await?;
    let shards = env.shards().await?;
    let Some(taken) = (shards.values()).find_map(|s| s.files.first().map(|f| f.key.clone())) else {
        anyhow::bail!("no file stored")
    };
    let fresh = crate::support::env(SimConfig::default()).await?;
    let (dir, name) = taken.rsplit_once('/').unwrap_or(("", &taken));
    let (stem, ext) = name
        .rsplit_once('.')
        .map_or((name, String::new()), |(s, e)| (s, format!(".{e}")));
    std::fs::create_dir_all(fresh.dir.path().join(dir))?;
    let occupied = 1_200;
    std::fs::write(fresh.dir.path().join(&taken), b"older")?;
    for n in 2..=occupied {
        let variant = format!("{stem} ({n}){ext}");
        std::fs::write(fresh.dir.path().join(dir).join(variant), b"older")?;
    }
    let report = fresh.sync(fresh.options()).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    let expected = format!("{dir}/{stem} ({}){ext}", occupied + 1);
    assert!(
        manifest_keys(&fresh.shards().await?).contains(&expected),
        "`{expected}` not in the manifest"
    );
    Ok(())
}

#[tokio::test]
async fn a_taken_numbered_key_gives_the_next_number_of_the_rendered_key() -> anyhow::Result<()> {
    // The same name twice in one champ: `doublon.pdf` and `doublon (2).pdf`.
    let first = env(SimConfig::default()).await?;
    first.sync(first.options()).await?;
    let keys = manifest_keys(&first.shards().await?);
    let Some(second) = keys.iter().find(|k| k.ends_with("/doublon (2).pdf")) else {
        anyhow::bail!("no `doublon (2).pdf` stored: {keys:#?}")
    };
    let folder = second.trim_end_matches("doublon (2).pdf");

    // A fresh destination where an operator's file sits at `doublon (2).pdf`.
    let fresh = env(SimConfig::default()).await?;
    let path = fresh.dir.path().join(second);
    std::fs::create_dir_all(path.parent().unwrap_or(fresh.dir.path()))?;
    std::fs::write(&path, b"operator's own file")?;
    let report = fresh.sync(fresh.options()).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert_eq!(std::fs::read(&path)?, b"operator's own file");
    let doublons: Vec<String> = manifest_keys(&fresh.shards().await?)
        .into_iter()
        .filter(|k| k.starts_with(folder) && k.contains("doublon"))
        .collect();
    assert_eq!(
        doublons,
        [
            format!("{folder}doublon (3).pdf"),
            format!("{folder}doublon.pdf")
        ]
    );
    Ok(())
}

#[tokio::test]
async fn an_earlier_copy_of_a_flagged_file_is_taken_back_not_duplicated() -> anyhow::Result<()> {
    // DS's checksum of this file is wrong: its MD5 cannot tell that the object is ours.
    let first = env(SimConfig::default()).await?;
    first.sync(first.options()).await?;
    let Some(flagged) = first
        .shards()
        .await?
        .values()
        .flat_map(|s| s.files.clone())
        .find(|f| f.status == FileStatus::ChecksumMismatch)
    else {
        anyhow::bail!("no file flagged `checksum_mismatch`")
    };
    let bytes = std::fs::read(first.dir.path().join(&flagged.key))?;

    // What a run killed after publishing it, before writing the shard, leaves behind.
    let orphaned = env(SimConfig::default()).await?;
    let path = orphaned.dir.path().join(&flagged.key);
    std::fs::create_dir_all(path.parent().unwrap_or(orphaned.dir.path()))?;
    std::fs::write(&path, &bytes)?;
    let report = orphaned.sync(orphaned.options()).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    let entry = orphaned
        .shards()
        .await?
        .values()
        .find_map(|s| s.file(&flagged.file_id).cloned());
    assert_eq!(
        entry.map(|e| (e.key, e.status)),
        Some((flagged.key.clone(), FileStatus::ChecksumMismatch))
    );
    // Every object is in the manifest: no second copy beside the first.
    orphaned.assert_ground_truth(&[]).await?;

    // The same size but other bytes: someone else's file, kept; ours goes beside it.
    let foreign = env(SimConfig::default()).await?;
    let path = foreign.dir.path().join(&flagged.key);
    std::fs::create_dir_all(path.parent().unwrap_or(foreign.dir.path()))?;
    let look_alike: Vec<u8> = bytes.iter().map(|b| b ^ 0xff).collect();
    std::fs::write(&path, &look_alike)?;
    let report = foreign.sync(foreign.options()).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert_eq!(std::fs::read(&path)?, look_alike);
    let moved = foreign
        .shards()
        .await?
        .values()
        .find_map(|s| s.file(&flagged.file_id).cloned());
    let Some(moved) = moved else {
        anyhow::bail!("`{}` is not in the manifest", flagged.file_id)
    };
    assert_ne!(moved.key, flagged.key);
    assert!(!moved.key.contains(") ("), "`{}`", moved.key);
    assert_eq!(std::fs::read(foreign.dir.path().join(&moved.key))?, bytes);
    Ok(())
}

/// Issue #9's budget of a no-op `--since auto` run: ⌈updated / 100⌉ + ⌈recheck / 20⌉ + 5
/// requests, counted by the report and by the simulator.
#[tokio::test]
async fn a_no_op_auto_rerun_stays_within_its_api_budget() -> anyhow::Result<()> {
    let env = env(SimConfig {
        dossiers: 120,
        pending_scans: 100,
        max_file_size: 512,
        hostile_filenames: false,
        ..SimConfig::default()
    })
    .await?;
    let first = env.sync(env.options()).await?;
    assert!(first.failed.is_empty(), "{:#?}", first.failed);
    let numbers = env.sim.dossier_numbers();
    let recheck = read_recheck(&env).await?;
    assert_eq!(
        recheck.dossiers.len(),
        numbers.len(),
        "every dossier has a pending scan"
    );

    let touched = &numbers[..3];
    for &number in touched {
        env.sim.touch_dossier(number, false)?;
    }
    let deleted = numbers[7];
    env.sim.delete_dossier(deleted)?;
    // The first run's signed URLs have expired: a no-op run needs none.
    env.sim
        .advance_clock(std::time::Duration::from_secs(2 * 3600));
    let before = env.sim.stats().graphql_requests;
    let report = env.sync(env.options()).await?;
    let requests = env.sim.stats().graphql_requests - before;

    assert!(
        report.failed.is_empty() && report.warnings.is_empty(),
        "{report:#?}"
    );
    assert_eq!((report.stored, report.bytes_downloaded), (0, 0));
    assert_eq!(
        report.dossiers as usize,
        numbers.len() - 1,
        "each processed once"
    );
    let calls = report.api_calls;
    assert_eq!(calls.total(), requests, "{calls:?}");
    let rechecked = recheck.dossiers.len() as u64;
    let budget = (touched.len() as u64).div_ceil(100) + rechecked.div_ceil(20) + 5;
    assert!(
        requests <= budget,
        "{requests} requests > {budget}: {calls:?}"
    );
    assert!(calls.recheck <= rechecked.div_ceil(20), "{calls:?}");
    assert_eq!(calls.refresh, 0, "{calls:?}");
    assert!(calls.listing >= 1 && calls.deleted >= 1, "{calls:?}");
    let recheck = read_recheck(&env).await?;
    assert!(
        !recheck.dossiers.contains(&deleted),
        "a deleted dossier leaves the list"
    );
    assert_eq!(recheck.dossiers.len(), numbers.len() - 1);
    Ok(())
}

async fn read_recheck(env: &crate::support::Env) -> anyhow::Result<wire::Recheck> {
    let key = wire::recheck_key(env.sim.demarche());
    let bytes = env.sink.get_small(&key).await?.unwrap_or_default();
    Ok(serde_json::from_slice(&bytes)?)
}

/// A list longer than the report keeps (every file pending a scan is
/// flagged): the report names its first
/// entries and counts them all, and the destination holds every entry, one JSON line each.
#[tokio::test]
async fn a_list_longer_than_the_report_is_written_whole_next_to_it() -> anyhow::Result<()> {
    let env = env(SimConfig {
        dossiers: 110,
        files_per_dossier: 10..=10,
        pending_scans: 100,
        ..SimConfig::default()
    })
    .await?;
    let report = env.sync(env.options()).await?;
    let total = report.counts.flagged;
    assert!(total > wire::REPORT_LISTED as u64, "{:?}", report.counts);
    assert_eq!(report.flagged.len(), wire::REPORT_LISTED);
    let key = report.lists.clone().expect("the lists object is named");
    assert_eq!(key, format!(".dsfiles/runs/{}.lists.jsonl", report.run_id));
    let bytes = env.sink.get_small(&key).await?.expect("the lists object");
    let mut flagged = Vec::new();
    for line in std::str::from_utf8(&bytes)?.lines() {
        if let wire::ReportLine::Flagged(f) = serde_json::from_str(line)? {
            flagged.push(f);
        }
    }
    assert_eq!(flagged.len() as u64, total);
    assert_eq!(flagged[..wire::REPORT_LISTED], report.flagged[..]);
    let pending = flagged.iter().filter(|f| f.flag == FileStatus::Pending);
    assert_eq!(
        pending.count() as u64,
        total - report.counts.checksum_mismatch
    );
    Ok(())
}
