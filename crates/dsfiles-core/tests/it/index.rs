//! `index` after a sync of the simulator: one record per file of the manifests, equal to what
//! is stored, on local disk and in memory; a corrupt shard is a warning, the rest still comes.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use dsfiles_core::index::{IndexItem, IndexOptions, IndexRecord, index};
use dsfiles_core::{CancellationToken, FileStatus, wire};
use dsfiles_sim::SimConfig;
use futures::StreamExt as _;
use sha2::Digest as _;

use crate::support::{Env, env};

/// `key → (sha256, size)`.
type Files = BTreeMap<String, (String, u64)>;

/// The records and warnings of `index` over `env`'s destination.
async fn run(env: &Env, opts: IndexOptions) -> anyhow::Result<(Vec<IndexRecord>, Vec<String>)> {
    let items: Vec<_> = index(Arc::clone(&env.sink), opts, CancellationToken::new())
        .collect()
        .await;
    let (mut records, mut warnings) = (Vec::new(), Vec::new());
    for item in items {
        match item? {
            IndexItem::Record(record) => records.push(*record),
            IndexItem::Warning(warning) => warnings.push(warning),
            IndexItem::Dossier { .. } => {}
        }
    }
    Ok((records, warnings))
}

fn files(records: &[IndexRecord]) -> Files {
    records
        .iter()
        .map(|r| (r.key.clone(), (r.sha256.clone(), r.size)))
        .collect()
}

/// What the manifests record, file by file.
async fn manifest_files(env: &Env) -> anyhow::Result<Files> {
    let mut files = Files::new();
    for shard in env.shards().await?.into_values() {
        for f in shard.files {
            files.insert(f.key, (f.sha256, f.size));
        }
    }
    Ok(files)
}

/// What is actually stored (bytes read back and hashed), dossier.json aside: the index
/// lists files.
async fn stored_files(env: &Env) -> anyhow::Result<Files> {
    let mut files = Files::new();
    let shards = env.shards().await?;
    let data: Vec<&str> = shards
        .values()
        .filter_map(|s| s.data.as_ref())
        .map(|d| d.key.as_str())
        .collect();
    for key in env.stored_keys().await? {
        if data.contains(&key.as_str()) {
            continue;
        }
        let mut body = env.sink.get(&key).await?;
        let (mut sha, mut size) = (sha2::Sha256::new(), 0u64);
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            sha.update(&chunk);
        }
        files.insert(key, (hex::encode(sha.finalize()), size));
    }
    Ok(files)
}

/// Syncs the simulator into `env`, then checks the index against the manifests and the bytes.
async fn check(env: &Env) -> anyhow::Result<Vec<IndexRecord>> {
    env.sync(env.options()).await?;
    let (records, warnings) = run(env, IndexOptions::default()).await?;
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(records.len(), files(&records).len(), "a key indexed twice");
    assert_eq!(files(&records), manifest_files(env).await?);
    assert_eq!(files(&records), stored_files(env).await?);
    assert!(!records.is_empty());
    let demarche = env.sim.demarche();
    assert!(
        records
            .iter()
            .all(|r| r.demarche == demarche && !r.state.is_empty())
    );
    // Each record carries its dossier's fields, from its dossier.json: the simulator gives
    // every dossier a groupe, a deposit date and an applicant.
    for r in &records {
        let f = &r.fields;
        assert!(
            f.groupe.is_some() && f.deposited_at.is_some() && f.demandeur.is_some(),
            "{r:?}"
        );
        let groupe = env.sim.groupe_of(r.dossier);
        assert!(groupe.is_some(), "{}", r.dossier);
    }
    Ok(records)
}

#[tokio::test]
async fn index_equals_what_is_stored_on_local_disk() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    check(&env).await?;
    // The local case, read from disk rather than through the sink.
    let (records, _) = run(&env, IndexOptions::default()).await?;
    for record in records {
        let bytes = std::fs::read(env.dir.path().join(&record.key))?;
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), record.sha256);
        assert_eq!(bytes.len() as u64, record.size);
    }
    Ok(())
}

#[tokio::test]
async fn index_equals_what_is_stored_in_memory_with_filters_and_a_corrupt_shard()
-> anyhow::Result<()> {
    let mut env = env(SimConfig::default()).await?;
    env.sink = dsfiles_core::sink::memory();
    let records = check(&env).await?;
    let dossiers: Vec<u64> = env.shards().await?.into_keys().collect();
    let (first, second) = (dossiers[0], dossiers[1]);

    let only = |opts: IndexOptions| {
        let env = &env;
        async move { run(env, opts).await }
    };
    let (one, warnings) = only(IndexOptions {
        dossiers: vec![first],
        ..IndexOptions::default()
    })
    .await?;
    assert!(warnings.is_empty());
    let expected: Vec<&IndexRecord> = records.iter().filter(|r| r.dossier == first).collect();
    assert_eq!(one.iter().collect::<Vec<_>>(), expected);
    let (none, _) = only(IndexOptions {
        demarche: Some(env.sim.demarche() + 1),
        ..IndexOptions::default()
    })
    .await?;
    assert!(none.is_empty());
    let (ok, _) = only(IndexOptions {
        status: Some(FileStatus::Ok),
        ..IndexOptions::default()
    })
    .await?;
    let expected = records
        .iter()
        .filter(|r| r.status == FileStatus::Ok)
        .count();
    assert_eq!(ok.len(), expected);

    let corrupt = wire::shard_key(second);
    env.sink
        .put_small(&corrupt, Bytes::from_static(b"{\"version\": 1"))
        .await?;
    let (rest, warnings) = run(&env, IndexOptions::default()).await?;
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains(&format!("`{corrupt}`")),
        "{warnings:#?}"
    );
    let expected: Vec<&IndexRecord> = records.iter().filter(|r| r.dossier != second).collect();
    assert_eq!(rest.len(), expected.len());
    assert!(rest.iter().all(|r| r.dossier != second));
    Ok(())
}
