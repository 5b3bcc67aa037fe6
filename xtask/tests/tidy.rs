//! Project-wide checks that are cheaper as tests than as review comments (rust-analyzer's
//! `tidy`): crate docs, dependency direction between the workspace crates, the vendored
//! DS schema, the documentation set, and functions short enough to read at once.

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

/// Lines a function may span (signature to closing brace, rustfmt's layout) before it stops
/// reading at once. Test code is exempt: a table of cases is long and still flat.
const FUNCTION_LINES: usize = 80;

/// Functions over [`FUNCTION_LINES`] today, each with the length it may not exceed: the list
/// only shrinks. Splitting one below the limit means deleting its line here (the test says so).
const LONG_FUNCTIONS: &[(&str, usize)] = &[
    // MD5's 64 steps written out in RFC 1321's order, four rounds of sixteen: one table to check
    // against the RFC, kept whole on purpose (see the module doc of hash/md5.rs).
    ("crates/dsfiles-core/src/hash/md5.rs::compress", 111),
];

/// Which `.rs` files a rule reads: the shipped code only, or test code too.
#[derive(Clone, Copy, PartialEq)]
enum Tests {
    Skipped,
    Included,
}

/// Every `.rs` file under `dir`, skipping build output (and with [`Tests::Skipped`], the
/// `tests` directories and `tests.rs` files).
fn rust_files(dir: &Path, tests: Tests, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let skipped = |name: &str| tests == Tests::Skipped && matches!(name, "tests" | "tests.rs");
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if skipped(&name) || matches!(name.as_str(), "target" | ".git" | ".emulators") {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, tests, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// `(name, first line, lines)` of each function with a body in `text`, outside `mod tests`,
/// read from rustfmt's layout: a body ends at the first `}` line at the signature's indentation.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let closes_at = |from: usize, depth: usize| {
        (from..lines.len())
            .find(|&k| lines[k].trim_start().starts_with('}') && indent(lines[k]) == depth)
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.trim_start().starts_with("mod tests {") {
            i = closes_at(i + 1, indent(line)).map_or(lines.len(), |k| k + 1);
            continue;
        }
        let Some(at) = words.iter().position(|w| *w == "fn") else {
            i += 1;
            continue;
        };
        let header = (i..lines.len()).find(|&k| {
            let t = lines[k].trim_end();
            t.ends_with('{') || t.ends_with(';')
        });
        match header {
            Some(h)
                if lines[h].trim_end().ends_with('{') && !line.trim_start().starts_with("//") =>
            {
                let name = words
                    .get(at + 1)
                    .map_or("", |w| w.split(['(', '<']).next().unwrap_or(""));
                let end = closes_at(h + 1, indent(line)).unwrap_or(lines.len() - 1);
                found.push((name.to_string(), i + 1, end - i + 1));
                i = end + 1;
            }
            Some(h) => i = h + 1,
            None => break,
        }
    }
    found
}

#[test]
fn functions_read_at_once() {
    let root = root();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), Tests::Skipped, &mut files);
    rust_files(&root.join("xtask/src"), Tests::Skipped, &mut files);
    let mut long = Vec::new();
    let mut seen = BTreeSet::new();
    for file in files {
        let rel = file
            .strip_prefix(&root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        let text = fs::read_to_string(&file).expect("source file");
        for (name, line, len) in functions(&text) {
            let key = format!("{rel}::{name}");
            let allowed = LONG_FUNCTIONS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, n)| *n);
            if allowed.is_some() && len > FUNCTION_LINES {
                seen.insert(key.clone());
            }
            if len > allowed.unwrap_or(FUNCTION_LINES) {
                long.push(format!(
                    "{rel}:{line} `{name}`: {len} lines (limit {})",
                    allowed.unwrap_or(FUNCTION_LINES)
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these functions:\n{}",
        long.join("\n")
    );
    for (key, _) in LONG_FUNCTIONS {
        assert!(
            seen.contains(*key),
            "{key} is gone or within {FUNCTION_LINES} lines now: delete its line in LONG_FUNCTIONS"
        );
    }
}

#[test]
fn the_function_scanner_reads_rustfmt_layout() {
    let text = "fn a() {\n    x();\n}\n\npub(crate) async fn b<T>(\n    t: T,\n) -> u8 {\n    if t {\n    }\n    1\n}\nfn c();\n#[cfg(test)]\nmod tests {\n    fn d() {\n    }\n}\n";
    let found = functions(text);
    assert_eq!(
        found,
        vec![("a".to_string(), 1, 3), ("b".to_string(), 5, 7)],
    );
}

/// The one module allowed `unsafe` (multi-buffer MD5; docs/architecture.md, "Unsafe code").
const UNSAFE_MODULE: &str = "crates/dsfiles-core/src/hash/simd.rs";

#[test]
fn unsafe_code_lives_in_one_module() {
    let root = root();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), Tests::Included, &mut files);
    rust_files(&root.join("xtask"), Tests::Included, &mut files);
    let this_file = root.join("xtask/tests/tidy.rs");
    let word = "unsafe";
    let mut offenders = Vec::new();
    let mut seen_module = false;
    for file in files {
        let rel = file.strip_prefix(&root).expect("under root");
        let text = fs::read_to_string(&file).expect("source file");
        if rel == Path::new(UNSAFE_MODULE) {
            seen_module = text.contains(word);
        } else if file != this_file && text.contains(word) {
            offenders.push(rel.display().to_string());
        }
    }
    assert!(
        offenders.is_empty(),
        "`{word}` outside {UNSAFE_MODULE} (move it there, or argue a second module in docs/architecture.md and here): {offenders:?}"
    );
    assert!(
        seen_module,
        "{UNSAFE_MODULE} has no `{word}` any more: delete UNSAFE_MODULE and set `unsafe_code = \"forbid\"` again"
    );
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains("unsafe_code = \"deny\"")
            || manifest.contains("unsafe_code = \"forbid\""),
        "the workspace must deny `{word}` code"
    );
}
