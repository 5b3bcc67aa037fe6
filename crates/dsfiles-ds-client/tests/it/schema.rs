//! Every embedded query is valid against DS's real schema, checked by a real GraphQL
//! validator (apollo-compiler), not by string matching.

use std::path::{Path, PathBuf};

use apollo_compiler::{ExecutableDocument, Schema};
use dsfiles_ds_client::{DOSSIERS_PER_REQUEST, QUERIES, dossiers_by_number_query};

use crate::cost::{Cost, MAX_COMPLEXITY, MAX_DEPTH, MAX_TOKENS, tokens};

/// DS's schema as shared by the project (`../shared/ds/schema.graphql` from the repository root).
fn shared_schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/ds/schema.graphql")
}

/// The byte-identical copy vendored in the repository.
fn vendored_schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/ds/schema.graphql")
}

fn schema_path() -> PathBuf {
    let shared = shared_schema();
    if shared.exists() {
        shared
    } else {
        vendored_schema()
    }
}

#[test]
fn every_query_is_valid_against_the_ds_schema() -> anyhow::Result<()> {
    let path = schema_path();
    let sdl = std::fs::read_to_string(&path)?;
    let schema = Schema::parse_and_validate(sdl, &path)
        .map_err(|e| anyhow::anyhow!("schema `{}` is invalid:\n{}", path.display(), e.errors))?;
    assert_eq!(QUERIES.len(), 5);
    let batch = dossiers_by_number_query(&[1, 2, 3]);
    let by_number = [("DossiersByNumber", batch.as_str())];
    let mut failures = Vec::new();
    for (name, document) in QUERIES.iter().chain(&by_number) {
        match ExecutableDocument::parse_and_validate(&schema, *document, format!("{name}.graphql"))
        {
            Ok(doc) => {
                let operation = doc.operations.get(Some(name)).map_err(|_| {
                    anyhow::anyhow!("document `{name}` has no operation named `{name}`")
                })?;
                assert_eq!(
                    doc.operations.len(),
                    1,
                    "`{name}` must hold exactly one operation"
                );
                assert!(operation.is_query(), "`{name}` must be a query");
            }
            Err(e) => failures.push(format!("`{name}`:\n{}", e.errors)),
        }
    }
    assert!(
        failures.is_empty(),
        "invalid queries:\n{}",
        failures.join("\n")
    );
    Ok(())
}

#[test]
fn an_invalid_query_is_rejected_by_the_validator() -> anyhow::Result<()> {
    // Guards the test above against a validator that accepts anything.
    let path = schema_path();
    let schema = Schema::parse_and_validate(std::fs::read_to_string(&path)?, &path)
        .map_err(|e| anyhow::anyhow!("{}", e.errors))?;
    let bad = "query Bad { dossier(number: 1) { number fileName } }";
    assert!(ExecutableDocument::parse_and_validate(&schema, bad, "bad.graphql").is_err());
    Ok(())
}

#[test]
fn vendored_schema_is_identical_to_the_shared_one() -> anyhow::Result<()> {
    let vendored = std::fs::read(vendored_schema())?;
    let shared = shared_schema();
    if shared.exists() {
        assert!(
            std::fs::read(&shared)? == vendored,
            "fixtures/ds/schema.graphql differs from `{}`",
            shared.display()
        );
    } else {
        // Outside the shared workspace only the vendored copy exists: it must at least parse.
        Schema::parse_and_validate(String::from_utf8(vendored)?, "schema.graphql")
            .map_err(|e| anyhow::anyhow!("{}", e.errors))?;
    }
    Ok(())
}

fn ds_schema() -> anyhow::Result<apollo_compiler::validation::Valid<Schema>> {
    let path = schema_path();
    Schema::parse_and_validate(std::fs::read_to_string(&path)?, &path)
        .map_err(|e| anyhow::anyhow!("{}", e.errors))
}

/// Complexity, depth and tokens of operation `name` in `document`, by DS's rules.
fn measure(document: &str, name: &str, first: u64) -> anyhow::Result<(u64, u64, usize)> {
    let schema = ds_schema()?;
    let doc = ExecutableDocument::parse_and_validate(&schema, document, format!("{name}.graphql"))
        .map_err(|e| anyhow::anyhow!("`{name}` is invalid:\n{}", e.errors))?;
    let operation = doc
        .operations
        .get(Some(name))
        .map_err(|_| anyhow::anyhow!("no operation `{name}`"))?;
    let cost = Cost {
        schema: &schema,
        document: &doc,
        ints: &[("first", first)],
    };
    Ok((
        cost.complexity(&operation.selection_set),
        cost.depth(&operation.selection_set),
        tokens(document),
    ))
}

#[test]
fn a_full_batch_of_dossiers_by_number_is_valid_and_within_ds_limits() -> anyhow::Result<()> {
    let numbers: Vec<u64> = (1..=DOSSIERS_PER_REQUEST as u64)
        .map(|n| 100_000 + n)
        .collect();
    let document = dossiers_by_number_query(&numbers);
    let (complexity, depth, tokens) = measure(&document, "DossiersByNumber", 0)?;
    let (one, one_depth, _) = measure(
        &dossiers_by_number_query(&numbers[..1]),
        "DossiersByNumber",
        0,
    )?;
    // Aliases add cost linearly and no depth.
    assert_eq!(complexity, one * DOSSIERS_PER_REQUEST as u64);
    assert_eq!(depth, one_depth);
    const { assert!(DOSSIERS_PER_REQUEST >= 20) };
    assert!(complexity <= MAX_COMPLEXITY, "complexity {complexity}");
    assert!(depth <= MAX_DEPTH, "depth {depth}");
    assert!(tokens <= MAX_TOKENS, "tokens {tokens}");
    // The figures quoted in `DOSSIERS_PER_REQUEST`'s documentation.
    assert_eq!(
        (one, depth),
        (172, 8),
        "update the doc of DOSSIERS_PER_REQUEST"
    );
    Ok(())
}

#[test]
fn a_full_page_of_the_listing_is_within_ds_limits_too() -> anyhow::Result<()> {
    for (name, document) in QUERIES {
        let (complexity, depth, tokens) = measure(document, name, 100)?;
        assert!(
            complexity <= MAX_COMPLEXITY,
            "{name}: complexity {complexity}"
        );
        assert!(depth <= MAX_DEPTH, "{name}: depth {depth}");
        assert!(tokens <= MAX_TOKENS, "{name}: tokens {tokens}");
    }
    // A connection multiplies its nodes by `first`: the measure is not blind to it.
    let (small, _, _) = measure(QUERIES[0].1, QUERIES[0].0, 1)?;
    let (full, _, _) = measure(QUERIES[0].1, QUERIES[0].0, 100)?;
    assert!(full > 50 * small, "{small} {full}");
    Ok(())
}
