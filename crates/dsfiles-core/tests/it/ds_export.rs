//! `--layout ds-export` end to end: the simulator synced under DS's own export names.

use std::collections::BTreeSet;

use dsfiles_core::extract::{Include, Layout, Source};
use dsfiles_sim::SimConfig;

use crate::support::env;

/// DS's `libelle_as_filename` of the simulator's file champs, written out by hand so that
/// the test does not share the implementation's code.
const LABELS: [(&str, &str); 7] = [
    ("Pièce d'identité", "piece-d-identite"),
    ("Justificatif", "justificatif"),
    ("Justificatif de domicile", "justificatif-de-domicile"),
    ("Pièces diverses", "pieces-diverses"),
    ("Annexes", "annexes"),
    ("Annexes volumineuses", "annexes-volumineuses"),
    ("Rapport d'instruction", "rapport-d-instruction"),
];

#[tokio::test]
async fn every_source_is_stored_under_ds_export_names() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let include = Include {
        generated: true,
        entreprise: true,
    };
    let mut opts = env.options();
    opts.filter.include_generated = include.generated;
    opts.filter.include_entreprise = include.entreprise;
    opts.layout = Some(Layout::parse("ds-export")?);
    let report = env.sync(opts.clone()).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    env.assert_ground_truth_with(&[], include).await?;

    let mut sources = BTreeSet::new();
    for shard in env.shards().await?.values() {
        for file in &shard.files {
            check_key(shard.dossier, file.source, &file.label, &file.key);
            sources.insert(file.source);
        }
    }
    let every: BTreeSet<Source> = Source::ALL.into_iter().collect();
    assert_eq!(sources, every, "the simulator has files of every source");

    let again = env.sync(opts).await?;
    assert_eq!((again.stored, again.bytes_downloaded), (0, 0), "{again:#?}");
    env.assert_ground_truth_with(&[], include).await?;
    Ok(())
}

/// `key` is where DS's export puts a file of `source` (docs/cli.md, "DS's own layout").
#[track_caller]
fn check_key(dossier: u64, source: Source, label: &str, key: &str) {
    let root = format!("dossier-{dossier}/");
    let rest = key
        .strip_prefix(&root)
        .unwrap_or_else(|| panic!("`{key}` is not under `{root}`"));
    let (folder, name) = match rest.split_once('/') {
        Some((folder, name)) => (Some(folder), name),
        None => (None, rest),
    };
    let expected_folder = match source {
        Source::Message => Some("messagerie"),
        Source::Avis => Some("avis"),
        Source::Motivation => Some("dossier"),
        Source::Entreprise => Some("pieces_justificatives"),
        _ => None,
    };
    assert_eq!(folder, expected_folder, "`{key}` ({source})");
    match source {
        Source::Champ | Source::Annotation => {
            let slug = LABELS
                .iter()
                .find(|(l, _)| *l == label)
                .map(|(_, slug)| *slug)
                .unwrap_or_else(|| panic!("unexpected file champ `{label}`"));
            let suffix = name
                .strip_prefix(&format!("{slug}-{dossier}-"))
                .unwrap_or_else(|| panic!("`{key}` does not start with `{slug}-{dossier}-`"));
            // `01` or `02-01` (row, index), then the extension.
            let numbers = suffix.split('.').next().unwrap_or(suffix);
            assert!(
                numbers
                    .split('-')
                    .all(|n| n.len() >= 2 && n.bytes().all(|b| b.is_ascii_digit())),
                "`{key}`: row and index on two digits"
            );
        }
        Source::Pdf => assert_eq!(name, format!("export-{dossier}.pdf")),
        Source::Attestation => assert!(
            name.starts_with(&format!("attestation-{dossier}")),
            "`{key}`"
        ),
        Source::Message | Source::Avis | Source::Motivation | Source::Entreprise => {
            assert!(has_ds_timestamp(name), "`{key}` has no `-dd-mm-YYYY-HH-MM`");
        }
        Source::Geojson => {}
    }
}

/// Whether `name` contains `-dd-mm-YYYY-HH-MM`.
fn has_ds_timestamp(name: &str) -> bool {
    let shape = "-00-00-0000-00-00";
    name.char_indices().any(|(i, _)| {
        name.get(i..i + shape.len()).is_some_and(|w| {
            w.bytes().zip(shape.bytes()).all(|(c, s)| {
                if s == b'0' {
                    c.is_ascii_digit()
                } else {
                    c == s
                }
            })
        })
    })
}
