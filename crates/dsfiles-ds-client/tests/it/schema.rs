//! Every embedded query is valid against DS's real schema, checked by a real GraphQL
//! validator (apollo-compiler), not by string matching.

use std::path::{Path, PathBuf};

use apollo_compiler::{ExecutableDocument, Schema};
use dsfiles_ds_client::QUERIES;

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
    assert_eq!(QUERIES.len(), 4);
    let mut failures = Vec::new();
    for (name, document) in QUERIES {
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
