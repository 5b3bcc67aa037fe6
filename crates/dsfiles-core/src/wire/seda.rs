//! What `dsfiles seda` keeps in its output and reports: the per-dossier packaging record
//! (`.dsfiles/seda/{dossier}.json` in OUT) and the run report.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where the packaging records live in OUT.
pub const SEDA_PREFIX: &str = ".dsfiles/seda/";

/// The key of `dossier`'s packaging record in OUT.
pub fn seda_record_key(dossier: u64) -> String {
    format!("{SEDA_PREFIX}{dossier}.json")
}

/// `.dsfiles/seda/{dossier}.json`: every package written for a dossier, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SedaRecord {
    pub version: u32,
    pub demarche: u64,
    pub dossier: u64,
    pub packages: Vec<SedaPackage>,
}

/// One package written to OUT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SedaPackage {
    /// The zip's key in OUT.
    pub key: String,
    /// Hex SHA-256 over the profile's hash, `dossier.json`'s SHA-256 and each packaged file's
    /// key and SHA-256 (sorted): equal fingerprints, equal package content.
    pub fingerprint: String,
    /// The manifest's `MessageIdentifier`.
    pub message_id: String,
    pub written_at: DateTime<Utc>,
    /// Data objects in the package (files, `dossier.json`).
    pub objects: u64,
    /// Size of the zip.
    pub bytes: u64,
}

/// A package written by the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packaged {
    pub dossier: u64,
    pub key: String,
    /// 1 for the dossier's first package, then 2, 3… (`{name}-v2.zip`).
    pub package_version: u64,
    pub objects: u64,
    pub bytes: u64,
}

/// A dossier that could not be packaged; nothing was written for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SedaFailure {
    pub dossier: u64,
    /// The key in DEST at fault (a file, a shard, `dossier.json`), when one is.
    pub key: Option<String>,
    pub reason: String,
}

/// The outcome of [`crate::seda::package`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SedaReport {
    pub version: u32,
    /// [`crate::sink::Sink::describe`] of the destination read.
    pub dest: String,
    /// [`crate::sink::Sink::describe`] of the output written.
    pub out: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Dossiers in a selected state that were considered.
    pub dossiers: u64,
    pub packaged: Vec<Packaged>,
    /// Dossiers whose latest package has the same fingerprint: nothing written.
    pub unchanged: Vec<u64>,
    pub failed: Vec<SedaFailure>,
    /// Packages built without `dossier.json`, requested dossiers in another state, ….
    pub warnings: Vec<String>,
    /// Bytes of the zips written.
    pub bytes_written: u64,
    pub cancelled: bool,
}

impl SedaReport {
    /// `Cancelled` if cancelled, `FilesFailed` if a dossier failed, else `Ok`.
    pub fn exit_status(&self) -> super::RunStatus {
        if self.cancelled {
            super::RunStatus::Cancelled
        } else if !self.failed.is_empty() {
            super::RunStatus::FilesFailed
        } else {
            super::RunStatus::Ok
        }
    }
}
