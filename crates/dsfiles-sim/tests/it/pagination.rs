//! Relay pagination as DS does it: `first` capped at 100, cursors, filters, update ordering.

use anyhow::Result;
use dsfiles_sim::SimConfig;
use serde_json::{Value, json};

use crate::support::{all_dossiers, query_ok, sim};

const LIST: &str = r#"query l($d: Int!, $first: Int, $after: String, $updatedSince: ISO8601DateTime,
    $createdSince: ISO8601DateTime, $state: DossierState, $archived: Boolean) {
  demarche(number: $d) { dossiers(first: $first, after: $after, updatedSince: $updatedSince,
      createdSince: $createdSince, state: $state, archived: $archived) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { number } }
    nodes { number state archived dateDerniereModification dateDepot } } } }"#;

async fn numbers(sim: &dsfiles_sim::SimHandle, filters: Value) -> Result<Vec<u64>> {
    let mut after = Value::Null;
    let mut out = Vec::new();
    loop {
        let mut variables = json!({"d": sim.demarche(), "first": 100, "after": after});
        for (k, v) in filters.as_object().into_iter().flatten() {
            variables[k] = v.clone();
        }
        let data = query_ok(sim, LIST, None, variables).await?;
        let c = &data["demarche"]["dossiers"];
        out.extend(
            c["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["number"].as_u64()),
        );
        if c["pageInfo"]["hasNextPage"] != json!(true) {
            return Ok(out);
        }
        after = c["pageInfo"]["endCursor"].clone();
    }
}

#[tokio::test]
async fn two_hundred_fifty_dossiers_come_in_three_pages_and_first_is_capped() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 250,
        files_per_dossier: 0..=1,
        ..SimConfig::default()
    })
    .await;
    let (dossiers, pages) = all_dossiers(&sim, 100, false, false).await?;
    assert_eq!(pages, [100, 100, 50]);
    let got: Vec<u64> = dossiers
        .iter()
        .filter_map(|d| d["number"].as_u64())
        .collect();
    assert_eq!(got, sim.dossier_numbers());
    let (_, pages) = all_dossiers(&sim, 500, false, false).await?;
    assert_eq!(
        pages,
        [100, 100, 50],
        "first: 500 is capped to 100 silently"
    );
    let data = query_ok(&sim, LIST, None, json!({"d": sim.demarche()})).await?;
    assert_eq!(
        data["demarche"]["dossiers"]["nodes"]
            .as_array()
            .map(Vec::len),
        Some(100),
        "no first: 100"
    );
    let edges = &data["demarche"]["dossiers"]["edges"];
    assert_eq!(
        edges[99]["cursor"],
        data["demarche"]["dossiers"]["pageInfo"]["endCursor"]
    );
    assert_eq!(
        data["demarche"]["dossiers"]["pageInfo"]["hasPreviousPage"],
        json!(false)
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn filters_match_the_dossiers_fields() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 40,
        files_per_dossier: 0..=1,
        ..SimConfig::default()
    })
    .await;
    let data = query_ok(&sim, LIST, None, json!({"d": sim.demarche(), "first": 100})).await?;
    let all = data["demarche"]["dossiers"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let pick = |f: &dyn Fn(&Value) -> bool| -> Vec<u64> {
        all.iter()
            .filter(|n| f(n))
            .filter_map(|n| n["number"].as_u64())
            .collect()
    };

    let accepte = numbers(&sim, json!({"state": "accepte"})).await?;
    assert!(!accepte.is_empty());
    assert_eq!(accepte, pick(&|n| n["state"] == "accepte"));
    let archived = numbers(&sim, json!({"archived": true})).await?;
    assert!(!archived.is_empty());
    assert_eq!(archived, pick(&|n| n["archived"] == true));

    let since = "2024-02-01T00:00:00+01:00";
    let since_at = chrono::DateTime::parse_from_rfc3339(since)?;
    let after = |key: &str, n: &Value| {
        n[key]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .is_some_and(|d| d >= since_at)
    };
    let mut updated = numbers(&sim, json!({"updatedSince": since})).await?;
    updated.sort_unstable();
    assert_eq!(updated, pick(&|n| after("dateDerniereModification", n)));
    let created_since = "2024-01-12T00:00:00+01:00";
    let since_at = chrono::DateTime::parse_from_rfc3339(created_since)?;
    let after = |key: &str, n: &Value| {
        n[key]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .is_some_and(|d| d >= since_at)
    };
    let created = numbers(&sim, json!({"createdSince": created_since})).await?;
    assert_eq!(created, pick(&|n| after("dateDepot", n)));
    assert!(!created.is_empty() && created.len() < all.len());
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn updated_since_orders_by_update_so_a_touched_dossier_comes_again() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 5,
        files_per_dossier: 0..=1,
        ..SimConfig::default()
    })
    .await;
    let first = sim.dossier_numbers()[0];
    let vars = json!({"d": sim.demarche(), "first": 2, "updatedSince": "2000-01-01T00:00:00Z"});
    let page1 = query_ok(&sim, LIST, None, vars.clone()).await?;
    let seen: Vec<u64> = page1["demarche"]["dossiers"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["number"].as_u64())
        .collect();
    sim.touch_dossier(seen[0], false)?;
    let mut rest = Vec::new();
    let mut after = page1["demarche"]["dossiers"]["pageInfo"]["endCursor"].clone();
    loop {
        let mut v = vars.clone();
        v["after"] = after;
        let page = query_ok(&sim, LIST, None, v).await?;
        let c = &page["demarche"]["dossiers"];
        rest.extend(
            c["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["number"].as_u64()),
        );
        if c["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = c["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(
        rest.last(),
        Some(&seen[0]),
        "the touched dossier comes last, again"
    );
    assert_eq!(seen.len() + rest.len(), 6);
    let _ = first;
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn groupe_instructeur_and_deleted_dossiers() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 9,
        deleted_dossiers: 2,
        ..SimConfig::default()
    })
    .await;
    let q = r#"query g($g: Int!) { groupeInstructeur(number: $g) { number label
        dossiers(first: 100) { pageInfo { hasNextPage endCursor } nodes { number groupeInstructeur { number } } } } }"#;
    let mut total = 0;
    for groupe in sim.groupes() {
        let data = query_ok(&sim, q, None, json!({"g": groupe})).await?;
        let nodes = data["groupeInstructeur"]["dossiers"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            nodes
                .iter()
                .all(|n| n["groupeInstructeur"]["number"] == json!(groupe))
        );
        total += nodes.len();
    }
    assert_eq!(total, 9);
    let victim = sim.dossier_numbers()[3];
    sim.delete_dossier(victim)?;
    let d = r#"query d($d: Int!, $since: ISO8601DateTime) { demarche(number: $d) {
        deletedDossiers(first: 100, deletedSince: $since) { pageInfo { hasNextPage endCursor } nodes { id number state reason dateSupression } } } }"#;
    let data = query_ok(&sim, d, None, json!({"d": sim.demarche()})).await?;
    let deleted: Vec<u64> = data["demarche"]["deletedDossiers"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["number"].as_u64())
        .collect();
    assert_eq!(deleted.len(), 3);
    assert!(deleted.contains(&victim));
    let mut expected = sim.deleted_dossiers();
    expected.sort_unstable();
    let mut got = deleted.clone();
    got.sort_unstable();
    assert_eq!(got, expected);
    let recent = query_ok(
        &sim,
        d,
        None,
        json!({"d": sim.demarche(), "since": "2025-06-01T00:00:00Z"}),
    )
    .await?;
    assert_eq!(
        recent["demarche"]["deletedDossiers"]["nodes"],
        json!([{"id": recent["demarche"]["deletedDossiers"]["nodes"][0]["id"], "number": victim, "state": recent["demarche"]["deletedDossiers"]["nodes"][0]["state"], "reason": "user_request", "dateSupression": recent["demarche"]["deletedDossiers"]["nodes"][0]["dateSupression"]}])
    );
    assert!(!sim.dossier_numbers().contains(&victim));
    sim.shutdown().await;
    Ok(())
}
