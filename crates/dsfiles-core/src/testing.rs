//! Test support for this crate's tests and the crates above it (feature `testing`, also on
//! under `cfg(test)`): not part of the library's API. Like `dsfiles_sink::testing`, it may read
//! the environment (`CI`) and print, which the library proper never does.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The SEDA 2.2 schemas: `DSFILES_SEDA_SCHEMAS`, else the copy in `fixtures/seda/2.2`.
pub fn seda_schemas() -> PathBuf {
    match std::env::var_os("DSFILES_SEDA_SCHEMAS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/seda/2.2"),
    }
}

/// Asserts that `manifest` is valid SEDA 2.2, by xmllint (offline, through the schemas'
/// catalog; see `fixtures/seda/README.md`). Without xmllint: a failure under `CI=true`, else
/// skipped with a note.
pub fn assert_valid_seda(manifest: &Path) {
    let schemas = seda_schemas();
    let out = Command::new("xmllint")
        .env("XML_CATALOG_FILES", schemas.join("catalog.xml"))
        .args(["--nonet", "--noout", "--schema"])
        .arg(schemas.join("seda-2.2-main.xsd"))
        .arg(manifest)
        .output();
    match out {
        Ok(out) => assert!(
            out.status.success(),
            "{} is not valid SEDA 2.2:\n{}\n{}",
            manifest.display(),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(manifest).unwrap_or_default()
        ),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "xmllint is required under CI=true: {e}"
            );
            #[allow(clippy::print_stderr, reason = "the test says what it skipped")]
            {
                eprintln!("xmllint not found ({e}): schema validation skipped");
            }
        }
    }
}
