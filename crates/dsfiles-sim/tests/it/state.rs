//! Determinism, mutations, and ground truth.

use std::io::Read as _;

use anyhow::Result;
use dsfiles_sim::{SimClock, SimConfig};
use serde_json::{Value, json};

use crate::support::{FULL_QUERY, all_dossiers, files_of, md5_base64, query_ok, sim};

/// Responses without the URLs (they carry the port and a signature).
fn without_urls(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            map.remove("url");
            for v in map.values_mut() {
                *v = without_urls(v.take());
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                *v = without_urls(v.take());
            }
        }
        _ => {}
    }
    value
}

#[tokio::test]
async fn same_seed_same_data_other_seed_other_data() -> Result<()> {
    let config = |seed| SimConfig {
        seed,
        dossiers: 15,
        ..SimConfig::default()
    };
    let (a, b, c) = (
        sim(config(7)).await,
        sim(config(7)).await,
        sim(config(8)).await,
    );
    assert_eq!(a.expected_files(true, true), b.expected_files(true, true));
    assert_ne!(a.expected_files(true, true), c.expected_files(true, true));
    let (da, _) = all_dossiers(&a, 100, true, true).await?;
    let (db, _) = all_dossiers(&b, 100, true, true).await?;
    assert_eq!(without_urls(json!(da)), without_urls(json!(db)));
    for s in [a, b, c] {
        s.shutdown().await;
    }
    Ok(())
}

#[tokio::test]
async fn startup_with_300_dossiers_is_fast() -> Result<()> {
    let started = std::time::Instant::now();
    let s = sim(SimConfig {
        dossiers: 300,
        ..SimConfig::default()
    })
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_secs(2),
        "startup took {elapsed:?}"
    );
    assert_eq!(s.dossier_numbers().len(), 300);
    s.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn touch_add_and_replace_show_up_in_the_api() -> Result<()> {
    let clock = SimClock::real();
    let s = sim(SimConfig {
        dossiers: 4,
        files_per_dossier: 2..=3,
        clock: clock.clone(),
        ..SimConfig::default()
    })
    .await;
    let number = s.dossier_numbers()[2];
    let before = s.expected_files(false, false);
    let replaced = s
        .touch_dossier(number, true)?
        .ok_or_else(|| anyhow::anyhow!("a file was replaced"))?;
    let after = s.expected_files(false, false);
    let (old, new) = (
        before
            .iter()
            .find(|f| f.id == replaced)
            .ok_or_else(|| anyhow::anyhow!("old"))?,
        after
            .iter()
            .find(|f| f.id == replaced)
            .ok_or_else(|| anyhow::anyhow!("new"))?,
    );
    assert_ne!(old.true_md5_base64, new.true_md5_base64);
    assert_eq!(old.filename, new.filename);
    let mut bytes = Vec::new();
    s.file_bytes(replaced)?.read_to_end(&mut bytes)?;
    assert_eq!(md5_base64(&bytes), new.true_md5_base64);

    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    let q = "query q($d: Int!, $s: ISO8601DateTime) { demarche(number: $d) { dossiers(updatedSince: $s) { nodes { number } } } }";
    let data = query_ok(
        &s,
        q,
        None,
        json!({"d": s.demarche(), "s": since.to_rfc3339()}),
    )
    .await?;
    assert_eq!(
        data["demarche"]["dossiers"]["nodes"],
        json!([{"number": number}])
    );
    let added = s.add_dossier();
    let data = query_ok(
        &s,
        q,
        None,
        json!({"d": s.demarche(), "s": since.to_rfc3339()}),
    )
    .await?;
    assert_eq!(
        data["demarche"]["dossiers"]["nodes"],
        json!([{"number": number}, {"number": added}])
    );
    let d = query_ok(
        &s,
        FULL_QUERY,
        Some("dossierFiles"),
        json!({"number": added, "includeGenerated": false, "includeEntreprise": false}),
    )
    .await?;
    let found = files_of(&d["dossier"]);
    assert_eq!(
        found.len(),
        s.expected_files(false, false)
            .iter()
            .filter(|f| f.dossier == added)
            .count()
    );
    assert!(s.touch_dossier(1, false).is_err());
    s.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn big_files_are_streamed_not_stored() -> Result<()> {
    let s = sim(SimConfig {
        dossiers: 2,
        big_files: vec![20 * 1024 * 1024 + 3],
        ..SimConfig::default()
    })
    .await;
    let big = s
        .expected_files(false, false)
        .into_iter()
        .find(|f| f.byte_size == 20 * 1024 * 1024 + 3)
        .ok_or_else(|| anyhow::anyhow!("big file"))?;
    let mut reader = s.file_bytes(big.id)?;
    let mut n = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let k = reader.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    assert_eq!(n, big.byte_size);
    s.shutdown().await;
    Ok(())
}
