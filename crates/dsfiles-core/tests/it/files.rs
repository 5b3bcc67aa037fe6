//! Kinds of files and URLs: generated and entreprise files, virus scans, URLs expiring mid-body.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dsfiles_core::extract::Include;
use dsfiles_core::{Event, FileStatus, RunStatus, Since, wire};
use dsfiles_sim::{Fault, FileSource, SimClock, SimConfig, Target};

use crate::support::{Recorder, env};

#[tokio::test]
async fn generated_files_are_stored_unverified_and_entreprise_files_verified() -> anyhow::Result<()>
{
    let env = env(SimConfig::default()).await?;
    let include = Include {
        generated: true,
        entreprise: true,
    };
    let mut opts = env.options();
    opts.filter.include_generated = include.generated;
    opts.filter.include_entreprise = include.entreprise;
    let report = env.sync(opts.clone()).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    let expected = env.sim.expected_files(true, true);
    let generated: Vec<_> = expected
        .iter()
        .filter(|f| f.source.is_generated())
        .collect();
    let entreprise = expected
        .iter()
        .filter(|f| f.source == FileSource::Entreprise)
        .count();
    assert!(
        !generated.is_empty() && entreprise > 0,
        "the simulator serves generated and entreprise files"
    );
    assert_eq!(report.stored as usize, expected.len());
    let unverified = report
        .flagged
        .iter()
        .filter(|f| f.flag == FileStatus::Unverified)
        .count();
    assert_eq!(unverified, generated.len(), "{:#?}", report.flagged);
    assert_eq!(report.exit_status(false), RunStatus::Ok);
    let mut statuses = Vec::new();
    for shard in env.shards().await?.values() {
        for file in &shard.files {
            statuses.push((file.source.as_str().to_owned(), file.status));
        }
    }
    for (source, status) in &statuses {
        let generated = matches!(source.as_str(), "pdf" | "geojson");
        assert_eq!(
            *status == FileStatus::Unverified,
            generated,
            "a `{source}` file is `{status}`"
        );
    }
    let entreprise_ok = statuses
        .iter()
        .filter(|(source, status)| source == "entreprise" && *status == FileStatus::Ok)
        .count();
    assert_eq!(entreprise_ok, entreprise, "entreprise files are verified");
    env.assert_ground_truth_with(&[], include).await?;

    // Unverifiable files of unchanged dossiers are not fetched again...
    let again = env.sync(opts.clone()).await?;
    assert_eq!((again.stored, again.bytes_downloaded), (0, 0), "{again:#?}");
    // ...but those of an updated dossier are (DS regenerates them).
    let dossier = generated[0].dossier;
    env.sim.touch_dossier(dossier, false)?;
    let report = env.sync(opts).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert_eq!(
        report.stored as usize,
        generated.iter().filter(|f| f.dossier == dossier).count(),
        "{report:#?}"
    );
    env.assert_ground_truth_with(&[], include).await?;
    Ok(())
}

#[tokio::test]
async fn a_file_with_a_bad_virus_scan_is_skipped_reported_and_stored_when_allowed()
-> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let first = env.sim.dossier_numbers()[0];
    let Some(target) = env
        .sim
        .expected_files(false, false)
        .into_iter()
        .find(|f| f.dossier != first && f.source == FileSource::Champ)
    else {
        anyhow::bail!("no champ file outside the first dossier")
    };
    env.sim.set_virus_scan(target.id, "integrity_error")?;

    let recorder = Arc::new(Recorder::default());
    let report = env.sync_with(env.options(), recorder.clone()).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert_eq!(report.exit_status(false), RunStatus::Ok);
    let [skipped] = report.skipped_unscanned.as_slice() else {
        anyhow::bail!("expected one skipped file: {:#?}", report.skipped_unscanned)
    };
    assert_eq!(
        (
            skipped.dossier,
            skipped.virus_scan.as_str(),
            &skipped.filename
        ),
        (target.dossier, "integrity_error", &target.filename)
    );
    let reported = recorder.events().into_iter().any(|e| {
        matches!(e, Event::FileSkipped { reason, .. } if reason == "virus_scan:integrity_error")
    });
    assert!(reported, "no `FileSkipped` event for the file");
    env.assert_ground_truth(&[target.id]).await?;
    let recheck: wire::Recheck = serde_json::from_slice(
        &env.sink
            .get_small(&wire::recheck_key(env.sim.demarche()))
            .await?
            .unwrap_or_default(),
    )?;
    assert!(
        recheck.dossiers.contains(&target.dossier),
        "the dossier is checked again next time: {recheck:?}"
    );

    // An incremental run that would list nothing still re-checks the dossier and, allowed to,
    // stores the file.
    let mut opts = env.options();
    opts.allow_unscanned = true;
    opts.since = Since::At(chrono::Utc::now() + chrono::Duration::hours(1));
    let report = env.sync(opts).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert!(report.skipped_unscanned.is_empty());
    assert_eq!(report.stored, 1, "{report:#?}");
    env.assert_ground_truth(&[]).await?;
    Ok(())
}

#[tokio::test]
async fn a_url_expiring_mid_body_resumes_from_a_fresh_url() -> anyhow::Result<()> {
    const BIG: u64 = 3 * 1024 * 1024;
    let clock = SimClock::real();
    let env = env(SimConfig {
        big_files: vec![BIG],
        clock: clock.clone(),
        ..SimConfig::default()
    })
    .await?;
    let expected = env.sim.expected_files(false, false);
    let Some(big) = expected.iter().find(|f| f.served_size == BIG) else {
        anyhow::bail!("the simulator has no {BIG}-byte file")
    };
    let total: u64 = expected.iter().map(|f| f.served_size).sum();
    env.sim
        .add_fault(Fault::ResetMidBody, Target::File { file: big.id }, Some(1));
    // Every signed URL expires between the interruption and the resume.
    let expired = AtomicBool::new(false);
    let recorder = Arc::new(Recorder {
        hook: Some(Box::new(move |event| {
            if let Event::Retry { reason, .. } = event
                && reason.contains("resuming at byte")
                && !expired.swap(true, Ordering::SeqCst)
            {
                clock.advance(Duration::from_secs(2 * 3600));
            }
        })),
        ..Recorder::default()
    });
    let report = env.sync_with(env.options(), recorder.clone()).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    let stats = env.sim.stats();
    assert!(stats.expired_urls >= 1, "no URL expired: {stats:?}");
    assert!(
        stats.bytes_served < total + BIG / 4,
        "the big file was downloaded again from the start: {} bytes served for {total}",
        stats.bytes_served
    );
    env.assert_ground_truth(&[]).await?;
    Ok(())
}
