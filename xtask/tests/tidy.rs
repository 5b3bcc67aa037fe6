//! Project-wide checks that are cheaper as tests than as review comments (rust-analyzer's
//! `tidy`): crate docs, dependency direction between the workspace crates, the vendored
//! DS schema, and the documentation set.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn crates() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root().join("crates"))
        .expect("crates/ exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Workspace crates named in one `[section]` of a crate's Cargo.toml.
fn internal_deps(krate: &str, section: &str) -> BTreeSet<String> {
    let manifest =
        fs::read_to_string(root().join("crates").join(krate).join("Cargo.toml")).expect("manifest");
    let mut in_section = false;
    let mut deps = BTreeSet::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == format!("[{section}]");
            continue;
        }
        if in_section && line.starts_with("dsfiles-") {
            let name = line
                .split(|c: char| c == '.' || c == '=' || c.is_whitespace())
                .next()
                .unwrap_or_default();
            deps.insert(name.to_string());
        }
    }
    deps
}

#[test]
fn every_crate_opens_with_a_module_doc_and_is_listed() {
    let readme = fs::read_to_string(root().join("crates/README.md")).expect("crates/README.md");
    for krate in crates() {
        let src = root().join("crates").join(&krate).join("src");
        let entry = if src.join("lib.rs").exists() {
            src.join("lib.rs")
        } else {
            src.join("main.rs")
        };
        let text = fs::read_to_string(&entry).expect("crate root");
        assert!(
            text.starts_with("//!"),
            "{} must open with a `//!` doc saying what the crate owns",
            entry.display()
        );
        assert!(
            readme.contains(&format!("`{krate}`")),
            "crates/README.md must describe `{krate}`"
        );
    }
}

#[test]
fn dependency_edges_point_one_way() {
    let allowed: &[(&str, &[&str])] = &[
        ("dsfiles-ds-client", &[]),
        ("dsfiles-extract", &[]),
        ("dsfiles-sink", &[]),
        ("dsfiles-sim", &[]),
        (
            "dsfiles-core",
            &["dsfiles-ds-client", "dsfiles-extract", "dsfiles-sink"],
        ),
        ("dsfiles-server", &["dsfiles-core"]),
        (
            "dsfiles-cli",
            &["dsfiles-core", "dsfiles-server", "dsfiles-sim"],
        ),
    ];
    for krate in crates() {
        let Some((_, ok)) = allowed.iter().find(|(name, _)| *name == krate) else {
            panic!(
                "new crate `{krate}`: add it to the allowed edges in xtask/tests/tidy.rs and crates/README.md"
            );
        };
        for dep in internal_deps(&krate, "dependencies") {
            assert!(
                ok.contains(&dep.as_str()),
                "`{krate}` must not depend on `{dep}` (allowed: {ok:?})"
            );
        }
    }
    // The simulator and the client must not agree on a mistake: no shared code at run time.
    assert!(!internal_deps("dsfiles-sim", "dependencies").contains("dsfiles-ds-client"));
}

#[test]
fn vendored_schema_matches_shared() {
    let vendored =
        fs::read(root().join("fixtures/ds/schema.graphql")).expect("fixtures/ds/schema.graphql");
    let shared = root().join("../shared/ds/schema.graphql");
    if let Ok(shared) = fs::read(&shared) {
        assert!(
            vendored == shared,
            "fixtures/ds/schema.graphql differs from ../shared/ds/schema.graphql: copy it again"
        );
    }
}

#[test]
fn vendored_seda_schemas_match_shared() {
    let shared = root().join("../shared/seda/2.2");
    let Ok(entries) = fs::read_dir(&shared) else {
        return;
    };
    for entry in entries {
        let name = entry.expect("listing ../shared/seda/2.2").file_name();
        let vendored = root().join("fixtures/seda/2.2").join(&name);
        assert!(
            fs::read(&vendored).ok() == fs::read(shared.join(&name)).ok(),
            "fixtures/seda/2.2/{} differs from ../shared/seda/2.2: copy it again",
            name.to_string_lossy()
        );
    }
}

#[test]
fn documentation_set_exists() {
    for doc in [
        "README.md",
        "docs/architecture.md",
        "docs/cli.md",
        "docs/storage.md",
        "docs/http-api.md",
        "docs/benchmarks.md",
        "docs/security.md",
        "docs/simulator.md",
        "docs/seda.md",
        "docs/deploy.md",
    ] {
        let text = fs::read_to_string(root().join(doc)).unwrap_or_else(|e| panic!("{doc}: {e}"));
        assert!(text.len() > 200, "{doc} is too short to be documentation");
    }
}
