//! `dossier.json` (version 1): what DS knows about a dossier, written next to its files by
//! [`crate::sync`] and read by `dsfiles index` and `dsfiles seda` (`docs/storage.md`,
//! "dossier.json").
//!
//! The format is fixed: fields may be added, never renamed or removed. Most of it is
//! [`DossierContext`] (from `dsfiles-extract`) flattened into the top level, so the serde
//! shape of those types is part of this format; `tests.rs` pins the whole document. Absent
//! values are `null`, never omitted. No signed URL can appear: the context is read from
//! fields that hold none, and [`DataFile`] is built from the manifest, which keeps none.

use serde::{Deserialize, Serialize};

use crate::extract::{DossierContext, Source};
use crate::wire::{FileStatus, ShardFile};

/// The version written in every `dossier.json`; readers reject any other.
pub const DOSSIER_DATA_VERSION: u32 = 1;

/// One `dossier.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DossierData {
    pub version: u32,
    /// `demarche`, `dossier`, `applicant`, `champs`, `annotations`, `messages`, `avis`,
    /// `decision`.
    #[serde(flatten)]
    pub context: DossierContext,
    /// The dossier's stored files, as its manifest shard records them, sorted by key.
    pub files: Vec<DataFile>,
}

/// A stored file of the dossier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// Where the file is stored, relative to the destination.
    pub key: String,
    pub source: Source,
    pub label: String,
    /// The file name as DS gives it.
    pub filename: String,
    pub size: u64,
    /// DS's base64 MD5 checksum; `null` when DS gives none (generated PDF and GeoJSON).
    pub md5: Option<String>,
    /// Hex SHA-256 of the stored bytes.
    pub sha256: String,
    pub content_type: String,
    /// The file's status in the manifest (`ok`, `pending`, `removed_upstream`, …).
    pub status: FileStatus,
}

impl DossierData {
    /// The `dossier.json` of a dossier with `context` whose stored files are `files`.
    pub fn new(context: DossierContext, files: &[ShardFile]) -> DossierData {
        let mut files: Vec<DataFile> = files.iter().map(DataFile::from).collect();
        files.sort_by(|a, b| a.key.cmp(&b.key));
        DossierData {
            version: DOSSIER_DATA_VERSION,
            context,
            files,
        }
    }

    /// The bytes written: pretty JSON and a final newline, the same for the same data.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing these types cannot fail: no map has non-string keys.
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

impl From<&ShardFile> for DataFile {
    fn from(file: &ShardFile) -> DataFile {
        DataFile {
            key: file.key.clone(),
            source: file.source,
            label: file.label.clone(),
            filename: file.filename.clone(),
            size: file.size,
            md5: (!file.checksum.is_empty()).then(|| file.checksum.clone()),
            sha256: file.sha256.clone(),
            content_type: file.content_type.clone(),
            status: file.status,
        }
    }
}

/// Why a `dossier.json` cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DossierDataError {
    #[error("not JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("version `{found}` is not supported (this build reads `{DOSSIER_DATA_VERSION}`)")]
    Version { found: String },
    #[error("not a dossier.json: {0}")]
    Shape(#[source] serde_json::Error),
}

impl DossierData {
    /// Reads a `dossier.json`, rejecting any version but [`DOSSIER_DATA_VERSION`].
    pub fn parse(bytes: &[u8]) -> Result<DossierData, DossierDataError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(DossierDataError::Json)?;
        match value.get("version") {
            Some(v) if v.as_u64() == Some(u64::from(DOSSIER_DATA_VERSION)) => {}
            other => {
                return Err(DossierDataError::Version {
                    found: other.map_or_else(|| "none".to_owned(), ToString::to_string),
                });
            }
        }
        serde_json::from_value(value).map_err(DossierDataError::Shape)
    }
}
