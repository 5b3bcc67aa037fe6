//! The simulator's answers are valid for the real DS schema, for every query the project sends.

use anyhow::{Context as _, Result};
use apollo_compiler::ast::Type;
use apollo_compiler::{ExecutableDocument, Schema};
use dsfiles_sim::SimConfig;
use serde_json::{Map, Value, json};

use crate::support::{FULL_QUERY, all_dossiers, files_of, post, query_ok, sim};

/// (dossier, source, label, row, filename, checksum, byte_size)
type FileView = (u64, String, String, Option<u32>, String, String, u64);

fn expected_view(sim: &dsfiles_sim::SimHandle, generated: bool, entreprise: bool) -> Vec<FileView> {
    let mut v: Vec<_> = sim
        .expected_files(generated, entreprise)
        .into_iter()
        .map(|f| {
            (
                f.dossier,
                f.source.as_str().to_owned(),
                f.label,
                f.row,
                f.filename,
                f.checksum,
                f.byte_size,
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn full_query_finds_exactly_the_ground_truth_for_every_switch() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 30,
        ..SimConfig::default()
    })
    .await;
    for generated in [false, true] {
        for entreprise in [false, true] {
            let (dossiers, _) = all_dossiers(&sim, 100, generated, entreprise).await?;
            assert_eq!(dossiers.len(), 30);
            let mut found: Vec<_> = dossiers
                .iter()
                .flat_map(files_of)
                .map(|f| {
                    (
                        f.dossier,
                        f.source,
                        f.label,
                        f.row,
                        f.filename,
                        f.checksum,
                        f.byte_size,
                    )
                })
                .collect();
            found.sort();
            assert_eq!(
                found,
                expected_view(&sim, generated, entreprise),
                "generated={generated} entreprise={entreprise}"
            );
        }
    }
    // Every source is present in the default démarche.
    let sources: std::collections::BTreeSet<&str> = sim
        .expected_files(true, true)
        .iter()
        .map(|f| f.source.as_str())
        .collect();
    assert_eq!(sources.len(), 9, "{sources:?}");
    assert_eq!(sim.stats().sim_bugs, 0);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn dossier_by_number_for_every_dossier() -> Result<()> {
    let sim = sim(SimConfig::default()).await;
    for number in sim.dossier_numbers() {
        let data = query_ok(
            &sim,
            FULL_QUERY,
            Some("dossierFiles"),
            json!({"number": number, "includeGenerated": true, "includeEntreprise": true}),
        )
        .await?;
        assert_eq!(data["dossier"]["number"], json!(number));
    }
    sim.shutdown().await;
    Ok(())
}

/// Variables for a project query: booleans take both values, numbers point at real objects.
fn variable_sets(
    document: &ExecutableDocument,
    operation: &str,
    sim: &dsfiles_sim::SimHandle,
) -> Vec<Map<String, Value>> {
    let Ok(op) = document.operations.get(Some(operation)) else {
        return Vec::new();
    };
    let numbers = sim.dossier_numbers();
    let mut sets = vec![Map::new()];
    for definition in &op.variables {
        let name = definition.name.as_str();
        let lower = name.to_lowercase();
        let (ty_name, non_null) = match definition.ty.as_ref() {
            Type::NonNullNamed(n) => (n.as_str(), true),
            Type::Named(n) => (n.as_str(), false),
            _ => ("", false),
        };
        let choices: Vec<Value> = match ty_name {
            "Boolean" => vec![json!(false), json!(true)],
            "Int" | "ID" | "BigInt" if lower.contains("demarche") => vec![json!(sim.demarche())],
            "Int" | "ID" | "BigInt" if lower.contains("groupe") => {
                sim.groupes().into_iter().map(|g| json!(g)).collect()
            }
            "Int" | "ID" | "BigInt" if lower.contains("dossier") || lower == "number" => {
                numbers.iter().take(6).map(|n| json!(n)).collect()
            }
            "Int" => vec![json!(100), json!(1)],
            "ISO8601DateTime" if !non_null => vec![Value::Null, json!("2024-02-01T00:00:00+01:00")],
            "ISO8601DateTime" => vec![json!("2024-02-01T00:00:00+01:00")],
            "DossierState" if !non_null => vec![Value::Null, json!("accepte")],
            _ if !non_null => vec![Value::Null],
            "String" | "ID" => vec![json!("")],
            other => panic!("no sample value for `${name}: {other}!`"),
        };
        sets = sets
            .into_iter()
            .flat_map(|set| {
                choices.iter().map(move |choice| {
                    let mut set = set.clone();
                    set.insert(name.to_owned(), choice.clone());
                    set
                })
            })
            .collect();
    }
    sets
}

/// The project's queries (`queries/*.graphql`, what the client embeds) with every variable combination.
#[tokio::test]
async fn every_project_query_executes_without_type_errors() -> Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../queries");
    let schema = Schema::parse_and_validate(
        include_str!("../../../../fixtures/ds/schema.graphql"),
        "schema.graphql",
    )
    .map_err(|e| anyhow::anyhow!("{}", e.errors))?;
    let mut sources = vec![(
        "tests/it/support.rs FULL_QUERY".to_owned(),
        FULL_QUERY.to_owned(),
    )];
    // Like the client: an operation file is completed by `fragments.graphql` when it needs it.
    let fragments = std::fs::read_to_string(dir.join("fragments.graphql")).unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.extension().is_none_or(|e| e != "graphql")
                || path.ends_with("fragments.graphql")
            {
                continue;
            }
            let alone = std::fs::read_to_string(&path)?;
            let name = path.display().to_string();
            let source =
                if ExecutableDocument::parse_and_validate(&schema, &alone, name.as_str()).is_ok() {
                    alone
                } else {
                    format!("{alone}\n{fragments}")
                };
            sources.push((name, source));
        }
    }
    let sim = sim(SimConfig {
        dossiers: 25,
        ..SimConfig::default()
    })
    .await;
    let mut executed = 0;
    for (name, source) in &sources {
        let document = ExecutableDocument::parse_and_validate(&schema, source, name.as_str())
            .map_err(|e| anyhow::anyhow!("{name} does not validate: {}", e.errors))?;
        for operation in document.operations.iter() {
            let op_name = operation
                .name
                .as_ref()
                .map(|n| n.to_string())
                .context("project operations are named")?;
            for variables in variable_sets(&document, &op_name, &sim) {
                let reply = post(
                    &sim,
                    Some(&sim.token()),
                    source,
                    Some(&op_name),
                    Value::Object(variables.clone()),
                )
                .await?;
                assert_eq!(
                    reply.status, 200,
                    "{name} {op_name} {variables:?}: {}",
                    reply.text
                );
                assert!(
                    reply.body.get("errors").is_none(),
                    "{name} {op_name} {variables:?}: {}",
                    reply.body["errors"]
                );
                assert!(reply.body["data"].is_object());
                executed += 1;
            }
        }
    }
    assert!(
        executed >= 2,
        "at least the test query's two operations ran"
    );
    assert_eq!(sim.stats().sim_bugs, 0);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn invalid_queries_get_ds_error_shapes() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 1,
        ..SimConfig::default()
    })
    .await;
    let token = sim.token();
    let parse = post(
        &sim,
        Some(&token),
        "query { demarche(number: 1) { ",
        None,
        json!({}),
    )
    .await?;
    assert_eq!(parse.status, 200);
    assert_eq!(
        parse.body["errors"][0]["extensions"]["code"], "graphql_parse_failed",
        "{}",
        parse.text
    );
    assert!(parse.body.get("data").is_none());
    let invalid = post(
        &sim,
        Some(&token),
        "query { demarche(number: 1) { nope } }",
        None,
        json!({}),
    )
    .await?;
    assert_eq!(invalid.status, 200);
    assert_eq!(
        invalid.body["errors"][0]["extensions"]["code"], "graphql_validation_failed",
        "{}",
        invalid.text
    );
    assert!(invalid.body["errors"][0]["locations"][0]["line"].is_number());
    let missing_var = post(
        &sim,
        Some(&token),
        "query q($n: Int!) { demarche(number: $n) { id } }",
        None,
        json!({}),
    )
    .await?;
    assert_eq!(
        missing_var.body["errors"][0]["extensions"]["code"], "invalid_variables",
        "{}",
        missing_var.text
    );
    let not_found = post(
        &sim,
        Some(&token),
        "query { dossier(number: 1) { id } }",
        None,
        json!({}),
    )
    .await?;
    assert_eq!(not_found.status, 200);
    assert_eq!(not_found.body["data"], Value::Null);
    assert_eq!(
        not_found.body["errors"][0]["extensions"]["code"],
        "not_found"
    );
    assert_eq!(not_found.body["errors"][0]["path"], json!(["dossier"]));
    sim.shutdown().await;
    Ok(())
}
