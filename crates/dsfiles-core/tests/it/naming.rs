//! Layouts named from dossier values: files land under the values' names, and move when a
//! value changes (here the dossier's update time, which touching a dossier changes).

use dsfiles_core::extract::Layout;
use dsfiles_core::wire::{DataChoice, LayoutRecord, SettingOrigin, layout_key};
use dsfiles_core::{DataOutput, Since};
use dsfiles_sim::SimConfig;

use crate::support::{env, manifest_keys};

const LAYOUT: &str = "{updated:%Y%m%d-%H%M%S}/{dossier}/{label}/{filename}";

#[tokio::test]
async fn files_move_when_a_dossier_value_of_the_layout_changes() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let mut opts = env.options();
    opts.layout = Some(Layout::parse(LAYOUT)?);
    let first = env.sync(opts.clone()).await?;
    assert!(first.failed.is_empty(), "{:#?}", first.failed);
    assert_eq!(first.moved, 0);
    let shards = env.shards().await?;
    assert_eq!(env.stored_keys().await?, manifest_keys(&shards));

    let numbers = env.sim.dossier_numbers();
    let (touched, kept_old) = (numbers[0], numbers[1]);
    let before: Vec<String> = shards[&touched]
        .files
        .iter()
        .map(|f| f.key.clone())
        .collect();
    assert!(!before.is_empty());
    env.sim.touch_dossier(touched, false)?;
    let report = env.sync(opts.clone()).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert_eq!(report.moved as usize, before.len(), "{report:#?}");
    assert_eq!((report.stored, report.bytes_downloaded), (0, 0));
    let shards = env.shards().await?;
    for (old, new) in before
        .iter()
        .zip(shards[&touched].files.iter().map(|f| &f.key))
    {
        assert_ne!(
            old.split('/').next(),
            new.split('/').next(),
            "{old} -> {new}"
        );
        assert_eq!(env.sink.head(old).await?, None, "`{old}` left behind");
    }
    // Nothing left behind, nothing lost, every object intact.
    env.assert_ground_truth(&[]).await?;

    // --keep-moved leaves the old objects where they were.
    let before: Vec<String> = shards[&kept_old]
        .files
        .iter()
        .map(|f| f.key.clone())
        .collect();
    env.sim.touch_dossier(kept_old, false)?;
    opts.keep_moved = true;
    let report = env.sync(opts).await?;
    assert_eq!(report.moved as usize, before.len(), "{report:#?}");
    for old in &before {
        assert!(env.sink.head(old).await?.is_some(), "`{old}` removed");
    }
    Ok(())
}

#[tokio::test]
async fn champ_labels_are_checked_against_the_revision_before_anything_runs() -> anyhow::Result<()>
{
    let env = env(SimConfig::default()).await?;
    let mut opts = env.options();
    opts.layout = Some(Layout::parse("{champ:Nom du projt}/{filename}")?);
    let err = env.sync(opts.clone()).await.unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("has no champ labelled `Nom du projt`") && err.contains("`Nom du projet`"),
        "{err}"
    );
    assert!(env.stored_keys().await?.is_empty());
    let record = dsfiles_core::wire::layout_key(env.sim.demarche());
    assert_eq!(
        env.sink.head(&record).await?,
        None,
        "a refused layout recorded"
    );

    opts.layout = Some(Layout::parse(
        "{champ:Nom du projet}/{annotation:Dossier complet}/{filename}",
    )?);
    let report = env.sync(opts).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    let shards = env.shards().await?;
    // Every key starts with the champ's value (sanitized), or its fallback for a dossier
    // whose champ is empty: never an empty component.
    let firsts: Vec<&str> = shards
        .values()
        .flat_map(|s| &s.files)
        .map(|f| f.key.split('/').next().unwrap_or_default())
        .collect();
    assert!(firsts.iter().all(|f| !f.is_empty()), "{firsts:?}");
    assert!(firsts.iter().any(|f| *f != "sans-champ"), "{firsts:?}");
    env.assert_ground_truth(&[]).await?;
    Ok(())
}

/// The démarche's layout record.
async fn recorded(env: &crate::support::Env) -> anyhow::Result<LayoutRecord> {
    let key = layout_key(env.sim.demarche());
    let bytes = env.sink.get_small(&key).await?;
    Ok(serde_json::from_slice(&bytes.expect("recorded"))?)
}

/// The keys of dossier `number`'s files and dossier.json.
async fn keys_of(env: &crate::support::Env, number: u64) -> anyhow::Result<Vec<String>> {
    let shards = env.shards().await?;
    let shard = &shards[&number];
    let files = shard.files.iter().map(|f| f.key.clone());
    Ok(files
        .chain(shard.data.iter().map(|d| d.key.clone()))
        .collect())
}

#[tokio::test]
async fn a_run_that_names_no_layout_keeps_the_one_the_destination_was_synced_with()
-> anyhow::Result<()> {
    // dossier.json follows it to `{demarche}/{dossier}/dossier.json`; the default layout
    // would put it (and every new file) under `{dossier}/`.
    const CUSTOM: &str = "{demarche}/{dossier}/{groupe}/{label}/{filename}";
    let env = env(SimConfig::default()).await?;
    let prefix = format!("{}/", env.sim.demarche());
    let mut given = env.options();
    given.layout = Some(Layout::parse(CUSTOM)?);
    let first = env.sync(given).await?;
    assert!(first.failed.is_empty(), "{:#?}", first.failed);
    let used = first.layout.expect("the report names the layout");
    assert_eq!(
        (used.layout.as_str(), used.layout_from),
        (CUSTOM, SettingOrigin::Given)
    );
    assert_eq!(used.data_from, SettingOrigin::Default);
    let record = recorded(&env).await?;
    assert_eq!(
        (record.layout.as_str(), &record.data),
        (CUSTOM, &DataChoice::FollowLayout)
    );
    let keys = manifest_keys(&env.shards().await?);
    assert!(keys.iter().all(|k| k.starts_with(&prefix)), "{keys:#?}");

    // Runs without a layout (a webhook job, a plain `dsfiles sync`), incremental and full:
    // nothing moves, and a new dossier's files and dossier.json follow the recorded layout.
    let new = env.sim.add_dossier();
    let report = env.sync(env.options()).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    let used = report.layout.expect("the report names the layout");
    assert_eq!(
        (used.layout.as_str(), used.layout_from),
        (CUSTOM, SettingOrigin::Destination)
    );
    assert_eq!(used.data_from, SettingOrigin::Destination);
    let new_keys = keys_of(&env, new).await?;
    assert!(new_keys.len() > 1, "{new_keys:#?}");
    assert!(
        new_keys.iter().all(|k| k.starts_with(&prefix)),
        "{new_keys:#?}"
    );
    let keys = manifest_keys(&env.shards().await?);
    let mut plain = env.options();
    plain.since = Since::Full;
    let report = env.sync(plain.clone()).await?;
    assert_eq!(
        (report.moved, report.stored, report.data_stored),
        (0, 0, 0),
        "{report:#?}"
    );
    assert_eq!(manifest_keys(&env.shards().await?), keys);

    // A layout given explicitly moves the files and is recorded, with --no-data.
    let mut other = plain.clone();
    other.layout = Some(Layout::parse(
        "{demarche_title}/{dossier}/{label}/{filename}",
    )?);
    other.data = Some(DataOutput::Off);
    let report = env.sync(other).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert_eq!(report.moved, report.files_planned, "{report:#?}");
    let record = recorded(&env).await?;
    assert_eq!(
        (record.layout.as_str(), &record.data),
        (
            "{demarche_title}/{dossier}/{label}/{filename}",
            &DataChoice::Off
        )
    );
    let report = env.sync(plain).await?;
    assert_eq!((report.moved, report.data_stored), (0, 0), "{report:#?}");
    env.assert_ground_truth(&[]).await?;
    Ok(())
}

/// What DS answered (bytes) to a first run of `layout` with `data`, and the run's file keys.
async fn answer_bytes(layout: &str, data: DataOutput) -> anyhow::Result<(u64, Vec<String>)> {
    let env = env(SimConfig::default()).await?;
    let mut opts = env.options();
    opts.layout = Some(Layout::parse(layout)?);
    opts.data = Some(data);
    let report = env.sync(opts).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    let shards = env.shards().await?;
    let keys = shards
        .values()
        .flat_map(|s| s.files.iter().map(|f| f.key.clone()));
    let keys = keys.collect();
    Ok((env.sim.stats().graphql_response_bytes, keys))
}

#[tokio::test]
async fn a_run_asks_ds_only_for_the_dossier_values_it_uses() -> anyhow::Result<()> {
    let (plain, _) = answer_bytes(Layout::DEFAULT, DataOutput::Off).await?;
    let (named, keys) = answer_bytes("{nom}/{dossier}/{filename}", DataOutput::Off).await?;
    let (data, _) = answer_bytes(Layout::DEFAULT, DataOutput::FollowLayout).await?;
    // The `{nom}` run got the applicants (some file is under a name), the default layout
    // without dossier.json got none of the dossiers' values, dossier.json needs them all.
    assert!(
        keys.iter().any(|k| !k.starts_with("sans-nom/")),
        "{keys:#?}"
    );
    assert!(plain < named && named < data, "{plain} {named} {data}");
    #[allow(
        clippy::print_stdout,
        reason = "the sizes are the test's report (docs/cli.md quotes them)"
    )]
    {
        println!(
            "DS answer bytes, simulator démarche: default layout --no-data {plain}, {{nom}} layout --no-data {named}, default layout with dossier.json {data}"
        );
    }
    Ok(())
}
