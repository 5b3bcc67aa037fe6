//! The fault plan, through the handle and through the admin endpoint.

use anyhow::Result;
use dsfiles_sim::{Fault, FaultPlan, SimClock, SimConfig, Target};
use serde_json::{Value, json};

use crate::support::{get, post, query_ok, sim, storage_url};

const PAGE: &str = "query p($d: Int!, $first: Int) { demarche(number: $d) { dossiers(first: $first) { nodes { number } } } }";

#[tokio::test]
async fn rate_limit_then_success_with_ratelimit_reset() -> Result<()> {
    let clock =
        SimClock::fixed(chrono::DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default());
    let faults = FaultPlan::new().with(
        Fault::RateLimited {
            reset_in_secs: 7,
            retry_after: false,
        },
        Target::Always,
        Some(2),
    );
    let sim = sim(SimConfig {
        dossiers: 2,
        clock,
        faults,
        ..SimConfig::default()
    })
    .await;
    for _ in 0..2 {
        let reply = post(&sim, Some("t"), PAGE, None, json!({"d": sim.demarche()})).await?;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.headers["ratelimit-reset"], "1750000007");
        assert!(
            reply.headers.get("retry-after").is_none(),
            "DS sends no Retry-After"
        );
        assert!(reply.body.is_null(), "the body is text: {}", reply.text);
    }
    query_ok(&sim, PAGE, None, json!({"d": sim.demarche()})).await?;
    let stats = sim.stats();
    assert_eq!((stats.rate_limited, stats.graphql_requests), (2, 3));
    sim.set_faults(FaultPlan::new().with(
        Fault::RateLimited {
            reset_in_secs: 3,
            retry_after: true,
        },
        Target::Always,
        Some(1),
    ));
    let reply = post(&sim, Some("t"), PAGE, None, json!({"d": sim.demarche()})).await?;
    assert_eq!(reply.headers["retry-after"], "3");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn every_kth_request_gets_an_html_502_or_503() -> Result<()> {
    let faults = FaultPlan::new()
        .with(Fault::BadGateway, Target::Every { every: 2 }, None)
        .with(
            Fault::ServiceUnavailable,
            Target::Every { every: 5 },
            Some(1),
        );
    let sim = sim(SimConfig {
        dossiers: 1,
        faults,
        ..SimConfig::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let reply = post(&sim, Some("t"), PAGE, None, json!({"d": sim.demarche()})).await?;
        if reply.status != 200 {
            assert!(reply.text.contains("<html>"), "{}", reply.text);
        }
        statuses.push(reply.status);
    }
    assert_eq!(statuses, [200, 502, 200, 502, 503, 502]);
    assert_eq!(sim.stats().server_errors, 4);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn graphql_timeout_above_a_page_size() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 3,
        ..SimConfig::default()
    })
    .await;
    sim.add_fault(
        Fault::GraphqlTimeout { above_first: 50 },
        Target::Always,
        None,
    );
    for first in [100, 500] {
        let reply = post(
            &sim,
            Some("t"),
            PAGE,
            None,
            json!({"d": sim.demarche(), "first": first}),
        )
        .await?;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.body["data"],
            Value::Null,
            "Demarche! and DossierConnection! are non-null"
        );
        assert_eq!(reply.body["errors"][0]["extensions"]["code"], "timeout");
        assert_eq!(
            reply.body["errors"][0]["path"],
            json!(["demarche", "dossiers"])
        );
    }
    query_ok(&sim, PAGE, None, json!({"d": sim.demarche(), "first": 50})).await?;
    assert_eq!(sim.stats().timeouts, 2);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn invalid_null_gives_data_with_a_null_node_and_an_error() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 3,
        ..SimConfig::default()
    })
    .await;
    let victim = sim.dossier_numbers()[1];
    sim.add_fault(
        Fault::InvalidNull,
        Target::Dossier { dossier: victim },
        Some(1),
    );
    let reply = post(&sim, Some("t"), PAGE, None, json!({"d": sim.demarche()})).await?;
    assert_eq!(reply.status, 200);
    let nodes = &reply.body["data"]["demarche"]["dossiers"]["nodes"];
    assert_eq!(nodes.as_array().map(Vec::len), Some(3));
    assert_eq!(nodes[1], Value::Null);
    assert_eq!(
        reply.body["errors"][0]["extensions"]["code"],
        "invalid_null"
    );
    assert_eq!(
        reply.body["errors"][0]["path"],
        json!(["demarche", "dossiers", "nodes", 1, "demandeur", "nom"])
    );
    query_ok(&sim, PAGE, None, json!({"d": sim.demarche()})).await?;
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn admin_endpoint_replaces_the_plan() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 1,
        ..SimConfig::default()
    })
    .await;
    let plan = json!({"rules": [{"fault": {"kind": "service_unavailable"}, "target": {"kind": "always"}, "times": 1}]});
    let response = crate::support::http()
        .post(sim.admin_faults_url())
        .json(&plan)
        .send()
        .await?;
    assert_eq!(response.status(), 204);
    assert_eq!(
        post(&sim, Some("t"), PAGE, None, json!({"d": sim.demarche()}))
            .await?
            .status,
        503
    );
    assert_eq!(
        post(&sim, Some("t"), PAGE, None, json!({"d": sim.demarche()}))
            .await?
            .status,
        200
    );
    assert_eq!(sim.faults().rules[0].times, Some(0));
    let stats: Value = crate::support::http()
        .get(sim.admin_faults_url().join("stats")?)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(stats["server_errors"], 1);
    sim.shutdown().await;
    Ok(())
}

/// Downloads through the redirect; returns (status, bytes or error).
async fn download(url: &str) -> Result<(u16, Result<Vec<u8>, String>)> {
    let storage = storage_url(url).await?;
    let response = get(&storage, &[]).await?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| format!("{e:?}"));
    Ok((status, body))
}

async fn url_of(sim: &dsfiles_sim::SimHandle, file: &dsfiles_sim::ExpectedFile) -> Result<String> {
    let data = query_ok(
        sim,
        crate::support::FULL_QUERY,
        Some("dossierFiles"),
        json!({"number": file.dossier, "includeGenerated": true, "includeEntreprise": true}),
    )
    .await?;
    let found = crate::support::files_of(&data["dossier"]);
    let hit = found
        .iter()
        .find(|f| f.filename == file.filename && f.label == file.label && f.row == file.row)
        .ok_or_else(|| anyhow::anyhow!("file {} not in response", file.id))?;
    Ok(hit.url.clone())
}

#[tokio::test]
async fn download_faults_truncate_reset_and_corrupt() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 4,
        max_file_size: 200_000,
        ..SimConfig::default()
    })
    .await;
    let files: Vec<_> = sim
        .expected_files(false, false)
        .into_iter()
        .filter(|f| f.served_size > 1000 && !f.filename.contains('\0'))
        .take(4)
        .collect();
    assert_eq!(files.len(), 4);
    let (truncated, reset, once, varying) = (&files[0], &files[1], &files[2], &files[3]);
    sim.add_fault(
        Fault::TruncatedBody,
        Target::File { file: truncated.id },
        Some(1),
    );
    sim.add_fault(
        Fault::ResetMidBody,
        Target::File { file: reset.id },
        Some(1),
    );
    sim.add_fault(
        Fault::Corrupt { varying: false },
        Target::File { file: once.id },
        Some(1),
    );
    sim.add_fault(
        Fault::Corrupt { varying: true },
        Target::File { file: varying.id },
        None,
    );

    for broken in [truncated, reset] {
        let url = url_of(&sim, broken).await?;
        let (status, body) = download(&url).await?;
        assert_eq!(status, 200);
        assert!(body.is_err(), "file {} must fail mid-body", broken.id);
        let (_, body) = download(&url).await?;
        assert_eq!(
            crate::support::md5_base64(&body.map_err(anyhow::Error::msg)?),
            broken.true_md5_base64,
            "then correct"
        );
    }
    let url = url_of(&sim, once).await?;
    let first = download(&url).await?.1.map_err(anyhow::Error::msg)?;
    let second = download(&url).await?.1.map_err(anyhow::Error::msg)?;
    assert_eq!(first.len(), second.len());
    assert_ne!(crate::support::md5_base64(&first), once.true_md5_base64);
    assert_eq!(crate::support::md5_base64(&second), once.true_md5_base64);

    let url = url_of(&sim, varying).await?;
    let digests: std::collections::BTreeSet<String> = {
        let mut set = std::collections::BTreeSet::new();
        for _ in 0..3 {
            set.insert(crate::support::md5_base64(
                &download(&url).await?.1.map_err(anyhow::Error::msg)?,
            ));
        }
        set
    };
    assert_eq!(digests.len(), 3, "different corruption on every try");
    assert!(!digests.contains(&varying.true_md5_base64));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn urls_expire_after_n_downloads_or_immediately() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 2,
        ..SimConfig::default()
    })
    .await;
    let files: Vec<_> = sim
        .expected_files(false, false)
        .into_iter()
        .filter(|f| !f.filename.contains('\0'))
        .take(3)
        .collect();
    let urls = [
        url_of(&sim, &files[0]).await?,
        url_of(&sim, &files[1]).await?,
        url_of(&sim, &files[2]).await?,
    ];
    sim.add_fault(Fault::ExpireAllUrls, Target::Every { every: 2 }, Some(1));
    assert_eq!(download(&urls[0]).await?.0, 200);
    assert_eq!(
        download(&urls[1]).await?.0,
        401,
        "the second download expires everything"
    );
    // Already-issued URLs are dead at the API host too.
    assert_eq!(get(&urls[2], &[]).await?.status(), 401);
    let fresh = url_of(&sim, &files[2]).await?;
    assert_eq!(download(&fresh).await?.0, 200);
    sim.add_fault(
        Fault::ExpiredUrl,
        Target::File { file: files[2].id },
        Some(1),
    );
    assert_eq!(download(&fresh).await?.0, 401);
    assert_eq!(download(&fresh).await?.0, 200);
    assert_eq!(sim.stats().expired_urls, 3);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn wrong_checksum_fault_over_stable_bytes() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 2,
        wrong_checksums: 0,
        ..SimConfig::default()
    })
    .await;
    let file = sim
        .expected_files(false, false)
        .into_iter()
        .find(|f| f.served_size > 0)
        .ok_or_else(|| anyhow::anyhow!("a file"))?;
    assert_eq!(file.checksum, file.true_md5_base64);
    sim.add_fault(
        Fault::WrongChecksum,
        Target::File { file: file.id },
        Some(1),
    );
    let data = query_ok(
        &sim,
        crate::support::FULL_QUERY,
        Some("dossierFiles"),
        json!({"number": file.dossier, "includeGenerated": false, "includeEntreprise": false}),
    )
    .await?;
    let found = crate::support::files_of(&data["dossier"]);
    let hit = found
        .iter()
        .find(|f| f.filename == file.filename && f.label == file.label && f.row == file.row)
        .ok_or_else(|| anyhow::anyhow!("found"))?;
    assert_ne!(hit.checksum, file.true_md5_base64);
    let (_, body) = download(&hit.url).await?;
    assert_eq!(
        crate::support::md5_base64(&body.map_err(anyhow::Error::msg)?),
        file.true_md5_base64
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn hostile_rate_limit_sends_the_raw_values_and_gigantic_page_pads_valid_json() -> Result<()> {
    let faults = FaultPlan::new()
        .with(
            Fault::HostileRateLimit {
                reset: "10000000000000000000".to_owned(),
                retry_after: Some("Fri, 31 Dec 9999 23:59:59 GMT".to_owned()),
            },
            Target::Always,
            Some(1),
        )
        .with(
            Fault::HostileRateLimit {
                reset: "bad\nvalue".to_owned(),
                retry_after: None,
            },
            Target::Every { every: 2 },
            Some(1),
        )
        .with(
            Fault::GiganticPage { bytes: 300_000 },
            Target::Every { every: 3 },
            Some(1),
        );
    let sim = sim(SimConfig {
        dossiers: 2,
        faults,
        ..SimConfig::default()
    })
    .await;
    let variables = json!({"d": sim.demarche()});
    let reply = post(&sim, Some("t"), PAGE, None, variables.clone()).await?;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.headers["ratelimit-reset"], "10000000000000000000");
    assert_eq!(
        reply.headers["retry-after"],
        "Fri, 31 Dec 9999 23:59:59 GMT"
    );
    let reply = post(&sim, Some("t"), PAGE, None, variables.clone()).await?;
    assert_eq!(reply.status, 429);
    assert!(
        reply.headers.get("ratelimit-reset").is_none(),
        "invalid value left out"
    );
    let reply = post(&sim, Some("t"), PAGE, None, variables.clone()).await?;
    assert_eq!((reply.status, reply.text.len()), (200, 300_000));
    assert!(reply.text.starts_with("   "));
    let nodes = reply.body.pointer("/data/demarche/dossiers/nodes");
    assert_eq!(nodes.and_then(Value::as_array).map(Vec::len), Some(2));
    let normal = post(&sim, Some("t"), PAGE, None, variables).await?;
    assert!(normal.text.len() < 1000, "{}", normal.text.len());
    assert_eq!(sim.stats().rate_limited, 2);
    sim.shutdown().await;
    Ok(())
}
