//! Extraction and layout from the fixture dossiers in `fixtures/dossiers/` (the shape the
//! queries in `queries/*.graphql` select).

mod context;
mod extract;
mod keys;

use dsfiles_extract::{FileRecord, Include, extract};

const DEMARCHE: u64 = 4242;

pub const ALL: Include = Include {
    generated: true,
    entreprise: true,
};

pub fn load(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../../fixtures/dossiers/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

pub fn records(fixture: &str, include: Include) -> Vec<FileRecord> {
    extract(DEMARCHE, &load(fixture), include).unwrap_or_else(|e| panic!("{fixture}: {e}"))
}
