//! `dossier.json`: written next to every dossier's files, equal to what DS says, rewritten
//! only when it changes, verified, moved and pruned like a file.

use dsfiles_core::extract::{DataLayout, context};
use dsfiles_core::{DataOutput, DossierData, SyncReport, ds};
use dsfiles_sim::SimConfig;

use crate::support::{Env, env};

/// Every live dossier's dossier.json, read back, by dossier.
async fn stored_data(env: &Env) -> anyhow::Result<Vec<(u64, String, DossierData)>> {
    let mut out = Vec::new();
    for (number, shard) in env.shards().await? {
        if shard.deleted_at.is_some() {
            continue;
        }
        let data = shard
            .data
            .ok_or_else(|| anyhow::anyhow!("dossier `{number}` has no dossier.json"))?;
        let bytes = env.sink.get_small(&data.key).await?.unwrap_or_default();
        let text = String::from_utf8(bytes.to_vec())?;
        out.push((number, text, DossierData::parse(&bytes)?));
    }
    Ok(out)
}

fn clean(report: &SyncReport) {
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert!(report.kept.is_empty(), "{:#?}", report.kept);
}

#[tokio::test]
async fn every_dossier_gets_a_dossier_json_equal_to_what_ds_says() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let report = env.sync(env.options()).await?;
    clean(&report);
    let shards = env.shards().await?;
    let data = stored_data(&env).await?;
    assert_eq!(data.len(), env.sim.dossier_numbers().len());
    assert_eq!(report.data_stored as usize, data.len());
    let filter = ds::DossierFilter::default();
    for (number, text, data) in &data {
        let shard = &shards[number];
        assert_eq!(
            shard.data.as_ref().map(|d| d.key.as_str()),
            Some(format!("{number}/dossier.json").as_str())
        );
        // What DS says, read again through the client: champ values, hostile ones included,
        // came back unchanged through the file.
        let dossier = env.client.dossier(*number, &filter).await?;
        assert_eq!(data.context, context(env.sim.demarche(), &dossier)?);
        assert_eq!(data.context.dossier.state, shard.state);
        let groupe = data.context.dossier.groupe_instructeur.as_ref();
        assert_eq!(groupe.map(|g| g.number), env.sim.groupe_of(*number));
        assert!(!data.context.demarche.title.is_empty());
        assert!(!data.context.champs.is_empty());
        let mut keys: Vec<&str> = shard.files.iter().map(|f| f.key.as_str()).collect();
        keys.sort();
        let listed: Vec<&str> = data.files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(listed, keys);
        // No signed URL, nor anything of the file host.
        let file_host = env.sim.file_host().to_string();
        assert!(!text.contains(&file_host), "{number}: {text}");
        assert!(!text.contains("://"), "{number}: {text}");
        assert!(
            !text.to_lowercase().contains("signature"),
            "{number}: {text}"
        );
    }
    let verify = env.verify().await?;
    assert!(verify.missing.is_empty() && verify.corrupt.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_dossier_json_is_rewritten_only_when_its_dossier_changed() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    clean(&env.sync(env.options()).await?);
    let before = stored_data(&env).await?;
    let mut full = env.options();
    full.since = dsfiles_core::Since::Full;
    let again = env.sync(full).await?;
    clean(&again);
    assert_eq!(again.data_stored, 0, "{again:#?}");
    assert_eq!(again.data_unchanged as usize, before.len());

    let touched = env.sim.dossier_numbers()[2];
    env.sim.touch_dossier(touched, false)?;
    let report = env.sync(env.options()).await?;
    clean(&report);
    assert_eq!(report.data_stored, 1, "{report:#?}");
    let after = stored_data(&env).await?;
    for ((number, old, _), (_, new, data)) in before.iter().zip(&after) {
        assert_eq!(old == new, *number != touched, "dossier `{number}`");
        if *number == touched {
            let old = DossierData::parse(old.as_bytes())?;
            assert_ne!(
                old.context.dossier.updated_at,
                data.context.dossier.updated_at
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn verify_checks_dossier_json_and_prune_removes_it() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    clean(&env.sync(env.options()).await?);
    let numbers = env.sim.dossier_numbers();
    let key = format!("{}/dossier.json", numbers[0]);
    env.sink
        .put_small(&key, bytes::Bytes::from_static(b"{\"version\": 1}"))
        .await?;
    let verify = env.verify().await?;
    assert_eq!(verify.corrupt.len(), 1, "{verify:#?}");
    assert_eq!(verify.corrupt[0].key, key);

    let pruned = numbers[1];
    let pruned_key = format!("{pruned}/dossier.json");
    env.sim.delete_dossier(pruned)?;
    let mut opts = env.options();
    opts.prune = true;
    env.sync(opts).await?;
    assert_eq!(env.sink.head(&pruned_key).await?, None);
    assert_eq!(env.shards().await?[&pruned].data, None);
    Ok(())
}

#[tokio::test]
async fn a_new_data_layout_moves_dossier_json_and_no_data_writes_none() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let mut off = env.options();
    off.data = Some(DataOutput::Off);
    let report = env.sync(off).await?;
    assert_eq!(report.data_stored, 0);
    assert!(env.shards().await?.values().all(|s| s.data.is_none()));
    assert!(
        !env.stored_keys()
            .await?
            .iter()
            .any(|k| k.ends_with("dossier.json"))
    );

    clean(&env.sync(env.options()).await?);
    let mut moved = env.options();
    moved.since = dsfiles_core::Since::Full;
    moved.data = Some(DataOutput::At(DataLayout::parse(
        "dossiers/{demarche}-{dossier}.json",
    )?));
    let report = env.sync(moved).await?;
    clean(&report);
    let demarche = env.sim.demarche();
    let data_keys: Vec<String> = env
        .stored_keys()
        .await?
        .into_iter()
        .filter(|k| k.ends_with(".json"))
        .collect();
    let mut expected: Vec<String> = env
        .shards()
        .await?
        .values()
        .filter(|s| s.deleted_at.is_none())
        .map(|s| format!("dossiers/{demarche}-{}.json", s.dossier))
        .collect();
    expected.sort();
    assert_eq!(data_keys, expected);
    Ok(())
}

#[tokio::test]
async fn a_foreign_object_at_the_data_key_is_kept_and_reported() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let number = env.sim.dossier_numbers()[0];
    let key = format!("{number}/dossier.json");
    env.sink
        .put_small(&key, bytes::Bytes::from_static(b"mine"))
        .await?;
    let report = env.sync(env.options()).await?;
    let failed: Vec<_> = report.failed.iter().filter(|f| f.key == key).collect();
    assert_eq!(failed.len(), 1, "{:#?}", report.failed);
    assert!(
        failed[0].reason.contains("holds another object"),
        "{failed:?}"
    );
    assert_eq!(
        env.sink.get_small(&key).await?.as_deref(),
        Some(&b"mine"[..])
    );
    // Every other dossier got its dossier.json, and the run is not complete.
    assert_eq!(
        report.data_stored as usize,
        env.sim.dossier_numbers().len() - 1
    );
    assert!(!report.sync_point_advanced);
    Ok(())
}
