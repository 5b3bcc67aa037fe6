//! Layouts named from dossier values: files land under the values' names, and move when a
//! value changes (here the dossier's update time, which touching a dossier changes).

use dsfiles_core::extract::Layout;
use dsfiles_sim::SimConfig;

use crate::support::{env, manifest_keys};

const LAYOUT: &str = "{updated:%Y%m%d-%H%M%S}/{dossier}/{label}/{filename}";

#[tokio::test]
async fn files_move_when_a_dossier_value_of_the_layout_changes() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let mut opts = env.options();
    opts.layout = Layout::parse(LAYOUT)?;
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
    opts.layout = Layout::parse("{champ:Nom du projt}/{filename}")?;
    let err = env.sync(opts.clone()).await.unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("has no champ labelled `Nom du projt`") && err.contains("`Nom du projet`"),
        "{err}"
    );
    assert!(env.stored_keys().await?.is_empty());

    opts.layout = Layout::parse("{champ:Nom du projet}/{annotation:Dossier complet}/{filename}")?;
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
