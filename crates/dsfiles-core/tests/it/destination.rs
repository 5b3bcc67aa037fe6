//! A destination others can write (tampered shards, symlinks) and one destination shared by
//! two démarches.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use dsfiles_core::{FileStatus, Shard, ShardFile, Since, SyncReport, wire};
use dsfiles_sim::SimConfig;
use futures::StreamExt as _;

use crate::support::{Env, env};

const PRECIOUS: &str = "other/precious.txt";
const PRECIOUS_BYTES: &[u8] = b"an operator's file that no manifest made";

/// Writes `shard` over the dossier's shard.
async fn put_shard(env: &Env, shard: &Shard) -> anyhow::Result<()> {
    let json = serde_json::to_vec(shard)?;
    env.sink
        .put_small(&wire::shard_key(shard.dossier), Bytes::from(json))
        .await?;
    Ok(())
}

/// An entry for a file DS does not have, naming `key`.
fn ghost(template: &ShardFile, dossier: u64, key: &str) -> ShardFile {
    ShardFile {
        file_id: format!("{dossier}/champ/ghost/-/{}", key.len()),
        key: key.to_owned(),
        sha256: "0".repeat(64),
        size: PRECIOUS_BYTES.len() as u64,
        ..template.clone()
    }
}

/// A full run with prune.
async fn prune_run(env: &Env) -> anyhow::Result<SyncReport> {
    let mut opts = env.options();
    opts.prune = true;
    opts.since = Since::Full;
    env.sync(opts).await
}

/// `key` is reported kept, with `reason` in its reason.
fn check_kept(report: &SyncReport, key: &str, reason: &str) {
    assert!(
        report
            .kept
            .iter()
            .any(|k| k.key == key && k.reason.contains(reason)),
        "`{key}` not reported kept ({reason}): {:#?}",
        report.kept
    );
}

#[tokio::test]
async fn a_tampered_shard_deletes_nothing_it_did_not_store() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(env.options()).await?;
    let precious = env.dir.path().join(PRECIOUS);
    std::fs::create_dir_all(env.dir.path().join("other"))?;
    std::fs::write(&precious, PRECIOUS_BYTES)?;
    let shards = env.shards().await?;
    let (mut first, mut second) = {
        let mut it = shards.values().filter(|s| s.files.len() >= 2).cloned();
        (it.next(), it.next())
    };
    let (Some(first), Some(second)) = (first.as_mut(), second.as_mut()) else {
        anyhow::bail!("two dossiers with two files are needed")
    };
    // As a superseded key: the file slot "was" at `other/precious.txt` and has changed.
    let moved = first.files[0].clone();
    first.files[0].key = PRECIOUS.to_owned();
    first.files[0].checksum = "changed".to_owned();
    // As a removed file, with prune.
    let template = second.files[0].clone();
    second
        .files
        .push(ghost(&template, second.dossier, PRECIOUS));
    put_shard(&env, first).await?;
    put_shard(&env, second).await?;

    let report = prune_run(&env).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert_eq!(std::fs::read(&precious)?, PRECIOUS_BYTES);
    check_kept(&report, PRECIOUS, "superseded, not deleted");
    check_kept(&report, PRECIOUS, "not pruned");
    let shards = env.shards().await?;
    let entry = shards[&first.dossier].file(&moved.file_id).cloned();
    assert_eq!(
        entry.map(|e| e.key),
        Some(moved.key),
        "stored at its own key"
    );
    let named = shards
        .values()
        .flat_map(|s| &s.files)
        .any(|f| f.key == PRECIOUS);
    assert!(!named, "the manifest still names the foreign object");
    Ok(())
}

#[tokio::test]
async fn a_shard_naming_state_or_escaping_keys_is_refused() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let demarche = env.sim.demarche();
    env.sync(env.options()).await?;
    let sync_point = wire::sync_point_key(demarche);
    let before = env.sink.get_small(&sync_point).await?;
    assert!(before.is_some(), "the first run wrote its sync point");
    let mut shard = env
        .shards()
        .await?
        .into_values()
        .find(|s| s.files.len() >= 2)
        .ok_or_else(|| anyhow::anyhow!("a dossier with two files is needed"))?;
    let (state, escaping) = (shard.files[0].clone(), shard.files[1].clone());
    for (entry, key) in shard.files.iter_mut().zip([sync_point.as_str(), "../x"]) {
        entry.key = key.to_owned();
    }
    let template = shard.files[0].clone();
    shard
        .files
        .push(ghost(&template, shard.dossier, &sync_point));
    shard.files.push(ghost(&template, shard.dossier, "../x"));
    put_shard(&env, &shard).await?;

    let report = prune_run(&env).await?;
    let refused = report
        .warnings
        .iter()
        .filter(|w| w.contains("refused"))
        .count();
    assert_eq!(refused, 4, "{:#?}", report.warnings);
    // The state is intact (the run may only have advanced the sync point) and parses.
    let after = env.sink.get_small(&sync_point).await?.unwrap_or_default();
    let _: wire::SyncPoint = serde_json::from_slice(&after)?;
    assert!(
        !env.dir
            .path()
            .parent()
            .unwrap_or(env.dir.path())
            .join("x")
            .exists()
    );
    // The two files are stored again, at keys of their own.
    let shards = env.shards().await?;
    for original in [state, escaping] {
        let entry = shards[&shard.dossier].file(&original.file_id).cloned();
        assert_eq!(entry.map(|e| e.key), Some(original.key));
    }
    let names_state = shards
        .values()
        .flat_map(|s| &s.files)
        .any(|f| f.key.starts_with(".dsfiles"));
    assert!(!names_state);
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_in_a_local_destination_is_never_followed() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(env.options()).await?;
    let outside = tempfile::tempdir()?;
    std::fs::write(outside.path().join("precious.txt"), PRECIOUS_BYTES)?;
    std::os::unix::fs::symlink(outside.path(), env.dir.path().join("linked"))?;
    let mut shard = env
        .shards()
        .await?
        .into_values()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no shard"))?;
    // The entry records the very bytes there: only the symlink stands in the way.
    let mut digest = dsfiles_core::hash::Hasher::start();
    digest.update(Bytes::from_static(PRECIOUS_BYTES)).await;
    let sha256 = digest.finish().await?.sha256_hex;
    let template = shard.files[0].clone();
    shard.files.push(ShardFile {
        sha256,
        ..ghost(&template, shard.dossier, "linked/precious.txt")
    });
    put_shard(&env, &shard).await?;

    let report = prune_run(&env).await?;
    check_kept(&report, "linked/precious.txt", "symbolic link");
    assert_eq!(
        std::fs::read(outside.path().join("precious.txt"))?,
        PRECIOUS_BYTES
    );
    Ok(())
}

/// Two simulators with disjoint dossier numbers, syncing into `a`'s destination.
async fn two_demarches() -> anyhow::Result<(Env, Env)> {
    let a = env(SimConfig::default()).await?;
    let mut b = env(SimConfig {
        seed: 4242,
        demarche: 5678,
        ..SimConfig::default()
    })
    .await?;
    b.sink = Arc::clone(&a.sink);
    let numbers = |env: &Env| -> BTreeSet<u64> {
        let mut all: BTreeSet<u64> = env.sim.dossier_numbers().into_iter().collect();
        all.extend(env.sim.deleted_dossiers());
        all
    };
    let shared: Vec<u64> = numbers(&a).intersection(&numbers(&b)).copied().collect();
    anyhow::ensure!(shared.is_empty(), "dossier numbers shared: {shared:?}");
    Ok((a, b))
}

/// Every file of `env`'s simulator is in the manifest with its SHA-256, and its pending
/// dossiers are in its recheck list.
async fn check_demarche(env: &Env) -> anyhow::Result<()> {
    let shards = env.shards().await?;
    for file in env.sim.expected_files(false, false) {
        let stored = shards
            .get(&file.dossier)
            .is_some_and(|s| s.files.iter().any(|f| f.sha256 == file.sha256_hex));
        assert!(
            stored,
            "file `{}` of dossier `{}` not stored",
            file.id, file.dossier
        );
        if file.virus_scan == "pending" {
            let key = wire::recheck_key(env.sim.demarche());
            let bytes = env.sink.get_small(&key).await?.unwrap_or_default();
            let recheck: wire::Recheck = serde_json::from_slice(&bytes)?;
            assert!(recheck.dossiers.contains(&file.dossier), "{recheck:?}");
        }
    }
    assert!(
        shards
            .values()
            .flat_map(|s| &s.files)
            .any(|f| f.status == FileStatus::Pending),
        "no pending scan"
    );
    Ok(())
}

#[tokio::test]
async fn two_demarches_one_after_the_other_keep_their_state() -> anyhow::Result<()> {
    let (a, b) = two_demarches().await?;
    // A staged file of a killed run of `a` stays while `b` starts (only `a` removes it).
    let staged = format!("{}killed-run", wire::staging_prefix(a.sim.demarche()));
    a.sink.put_small(&staged, Bytes::from_static(b"x")).await?;
    let first = a.sync(a.options()).await?;
    assert!(first.failed.is_empty(), "{:#?}", first.failed);
    a.sink.put_small(&staged, Bytes::from_static(b"x")).await?;
    let second = b.sync(b.options()).await?;
    assert!(second.failed.is_empty(), "{:#?}", second.failed);
    assert!(
        a.sink.head(&staged).await?.is_some(),
        "`b` removed `a`'s staged file"
    );
    check_demarche(&a).await?;
    check_demarche(&b).await?;
    // Each démarche's next run starts from its own sync point.
    let again = a.sync(a.options()).await?;
    assert_eq!(again.stored, 0, "{again:#?}");
    assert!(again.since > Some(first.started_at - chrono::Duration::hours(1)));
    assert!(
        a.sink.head(&staged).await?.is_none(),
        "`a` cleans its own staging"
    );
    Ok(())
}

#[tokio::test]
async fn two_demarches_at_once_keep_their_state() -> anyhow::Result<()> {
    let (a, b) = two_demarches().await?;
    // Layouts with `{sha256}` stage every file: both staging areas are busy at once.
    let layout = dsfiles_core::extract::Layout::parse("{dossier}/{sha256}.{ext}")?;
    let (mut oa, mut ob) = (a.options(), b.options());
    (oa.layout, ob.layout) = (Some(layout.clone()), Some(layout));
    let (ra, rb) = tokio::join!(a.sync(oa), b.sync(ob));
    let (ra, rb) = (ra?, rb?);
    assert!(ra.failed.is_empty(), "{:#?}", ra.failed);
    assert!(rb.failed.is_empty(), "{:#?}", rb.failed);
    check_demarche(&a).await?;
    check_demarche(&b).await?;
    let staged: Vec<String> = a
        .sink
        .list(wire::STAGING_PREFIX)
        .filter_map(|e| async move { e.ok().map(|e| e.key) })
        .collect()
        .await;
    let markers = [
        wire::staging_marker(a.sim.demarche()),
        wire::staging_marker(b.sim.demarche()),
    ];
    assert!(staged.iter().all(|k| markers.contains(k)), "{staged:?}");
    Ok(())
}

#[tokio::test]
async fn a_destination_of_the_previous_version_keeps_its_state() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let demarche = env.sim.demarche();
    let first = env.sync(env.options()).await?;
    // What the previous version wrote: the same state, at the global keys.
    for (own, legacy) in [
        (wire::sync_point_key(demarche), wire::LEGACY_SYNC_POINT_KEY),
        (wire::recheck_key(demarche), wire::LEGACY_RECHECK_KEY),
    ] {
        let bytes = env.sink.get_small(&own).await?.unwrap_or_default();
        env.sink.put_small(legacy, bytes).await?;
        env.sink.delete(&own).await?;
    }
    // A killed run of the previous version staged flat under `.dsfiles/staging/`.
    let legacy_staged = format!("{}20260101T000000Z-0123-4567", wire::STAGING_PREFIX);
    env.sink
        .put_small(&legacy_staged, Bytes::from_static(b"x"))
        .await?;
    let report = env.sync(env.options()).await?;
    assert!(
        env.sink.head(&legacy_staged).await?.is_none(),
        "the previous version's staged leftovers are removed"
    );
    assert_eq!(
        report.since,
        Some(first.started_at - chrono::Duration::from_std(dsfiles_core::SINCE_MARGIN)?),
        "the legacy sync point is read"
    );
    assert!(report.dossiers > 0, "the legacy recheck list is read");
    let own = env.sink.get_small(&wire::recheck_key(demarche)).await?;
    assert!(
        own.is_some(),
        "the recheck list moves to the démarche's key"
    );
    Ok(())
}

/// Verifying a destination where everything is missing keeps the report small: counts, and
/// the first `VERIFY_LISTED` keys.
#[tokio::test]
async fn verify_lists_a_bounded_number_of_missing_files_and_counts_them_all() -> anyhow::Result<()>
{
    let env = env(SimConfig::default()).await?;
    env.sync(env.options()).await?;
    let shards = env.shards().await?;
    let Some(mut shard) = shards.values().find(|s| !s.files.is_empty()).cloned() else {
        anyhow::bail!("no shard with files")
    };
    let Some(model) = shard.files.first().cloned() else {
        anyhow::bail!("no file")
    };
    let extra = wire::VERIFY_LISTED + 5;
    shard.files.extend((0..extra).map(|i| ShardFile {
        file_id: format!("{}/gone/{i}", shard.dossier),
        key: format!("gone/{i}.pdf"),
        ..model.clone()
    }));
    put_shard(&env, &shard).await?;
    let report = env.verify().await?;
    assert_eq!(report.missing_count, extra as u64);
    assert_eq!(report.missing.len(), wire::VERIFY_LISTED);
    assert!(report.missing.iter().all(|k| k.starts_with("gone/")));
    assert_eq!(report.ok as usize, env.stored_keys().await?.len());
    assert_eq!((report.corrupt_count, report.corrupt.len()), (0, 0));
    Ok(())
}
