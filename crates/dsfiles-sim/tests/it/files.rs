//! Signed URLs, the redirect to the file host, expiry, Range, and checksums of served bytes.

use anyhow::Result;
use dsfiles_sim::{SimClock, SimConfig};
use reqwest::header;

use crate::support::{all_dossiers, files_of, get, md5_base64, sim, storage_url};

#[tokio::test]
async fn served_bytes_match_the_api_checksum_except_the_legacy_wrong_ones() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 12,
        wrong_checksums: 2,
        ..SimConfig::default()
    })
    .await;
    let (dossiers, _) = all_dossiers(&sim, 100, true, true).await?;
    let found: Vec<_> = dossiers.iter().flat_map(files_of).collect();
    let truth = sim.expected_files(true, true);
    assert_eq!(found.len(), truth.len());
    let (mut wrong, mut generated) = (0, 0);
    for file in &found {
        let storage = storage_url(&file.url).await?;
        assert_ne!(
            url::Url::parse(&storage)?.port(),
            url::Url::parse(&file.url)?.port(),
            "files live on another host"
        );
        let response = get(&storage, &[]).await?;
        assert_eq!(response.status(), 200);
        let bytes = response.bytes().await?;
        if file.source == "pdf" || file.source == "geojson" {
            assert_eq!(
                (file.checksum.as_str(), file.byte_size),
                ("", 0),
                "generated files have no checksum in DS"
            );
            assert!(!bytes.is_empty());
            generated += 1;
        } else if md5_base64(&bytes) == file.checksum {
            assert_eq!(bytes.len() as u64, file.byte_size);
        } else {
            wrong += 1;
            let t = truth
                .iter()
                .find(|t| {
                    t.dossier == file.dossier
                        && t.filename == file.filename
                        && t.checksum == file.checksum
                })
                .ok_or_else(|| anyhow::anyhow!("truth for {file:?}"))?;
            assert_eq!(md5_base64(&bytes), t.true_md5_base64);
        }
    }
    assert_eq!(wrong, 2);
    assert_eq!(generated, 24);
    assert!(sim.file_host_authorizations().is_empty());
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn range_head_expiry_and_authorization_recording() -> Result<()> {
    let clock = SimClock::real();
    let sim = sim(SimConfig {
        dossiers: 2,
        max_file_size: 100_000,
        clock: clock.clone(),
        ..SimConfig::default()
    })
    .await;
    let (dossiers, _) = all_dossiers(&sim, 100, false, false).await?;
    let file = dossiers
        .iter()
        .flat_map(files_of)
        .find(|f| f.byte_size > 100)
        .ok_or_else(|| anyhow::anyhow!("a file"))?;
    let storage = storage_url(&file.url).await?;
    let whole = get(&storage, &[]).await?.bytes().await?;

    let partial = get(&storage, &[("range", "bytes=10-99")]).await?;
    assert_eq!(partial.status(), 206);
    assert_eq!(
        partial.headers()[header::CONTENT_RANGE],
        format!("bytes 10-99/{}", whole.len())
    );
    assert_eq!(partial.headers()[header::CONTENT_LENGTH], "90");
    assert_eq!(&partial.bytes().await?[..], &whole[10..100]);
    let tail = get(&storage, &[("range", "bytes=-5")])
        .await?
        .bytes()
        .await?;
    assert_eq!(&tail[..], &whole[whole.len() - 5..]);
    let open = get(
        &storage,
        &[("range", &format!("bytes={}-", whole.len() - 3))],
    )
    .await?
    .bytes()
    .await?;
    assert_eq!(&open[..], &whole[whole.len() - 3..]);
    let beyond = get(&storage, &[("range", &format!("bytes={}-", whole.len()))]).await?;
    assert_eq!(beyond.status(), 416);

    let head = crate::support::http().head(&storage).send().await?;
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()[header::CONTENT_LENGTH],
        whole.len().to_string()
    );
    assert!(head.headers().contains_key(header::CONTENT_TYPE));

    assert!(sim.file_host_authorizations().is_empty());
    get(&storage, &[("authorization", "Bearer leaked")]).await?;
    assert_eq!(sim.file_host_authorizations(), ["Bearer leaked"]);

    let mut tampered = url::Url::parse(&storage)?;
    let pairs: Vec<(String, String)> = tampered
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "expires" {
                "9999999999".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    assert_eq!(
        get(tampered.as_str(), &[]).await?.status(),
        403,
        "the signature covers the expiry"
    );

    clock.advance(std::time::Duration::from_secs(3601));
    assert_eq!(
        get(&storage, &[]).await?.status(),
        401,
        "expired at the file host"
    );
    assert_eq!(
        get(&file.url, &[]).await?.status(),
        401,
        "expired at the API host"
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn hostile_filenames_are_served_verbatim() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 2,
        ..SimConfig::default()
    })
    .await;
    let (dossiers, _) = all_dossiers(&sim, 100, false, false).await?;
    let names: Vec<String> = dossiers
        .iter()
        .flat_map(files_of)
        .map(|f| f.filename)
        .collect();
    for hostile in dsfiles_sim::hostile_filenames() {
        assert!(names.contains(&hostile), "{hostile:?} missing");
    }
    assert!(names.iter().any(|n| n.chars().count() == 300));
    assert_eq!(names.iter().filter(|n| *n == "doublon.pdf").count(), 2);
    let truth = sim.expected_files(false, false);
    let doublons: Vec<_> = truth
        .iter()
        .filter(|f| f.filename == "doublon.pdf")
        .collect();
    assert_eq!(
        doublons[0].champ_id, doublons[1].champ_id,
        "same name twice in one champ"
    );
    let empty = truth
        .iter()
        .find(|f| f.filename == "vide.txt")
        .ok_or_else(|| anyhow::anyhow!("vide.txt"))?;
    assert_eq!(
        (empty.byte_size, empty.checksum.as_str()),
        (0, "1B2M2Y8AsgTpgAmY7PhCfg==")
    );
    sim.shutdown().await;
    Ok(())
}
