//! What `dsfiles seda` keeps in its output and reports: the per-dossier packaging record
//! (`.dsfiles/seda/{dossier}.json` in OUT) and the run report.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where the packaging records live in OUT.
pub const SEDA_PREFIX: &str = ".dsfiles/seda/";

/// The key of the lease `dsfiles seda` holds on OUT while it writes ([`crate::lease::LeaseScope::Seda`]).
/// One per OUT, not per démarche: a run packages every dossier DEST holds, whatever its
/// démarche, and the records under [`SEDA_PREFIX`] are per dossier, so two runs into one OUT
/// would race on the same records and package names whichever démarches they read.
pub const SEDA_LEASE_KEY: &str = ".dsfiles/seda/lease";

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

/// A dossier in a selected state that was not packaged, and why: nothing was written for it,
/// and it is no failure (a later run packages it once it has something).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SedaSkipped {
    pub dossier: u64,
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
    /// Dossiers with nothing to package (no stored file and no `dossier.json`): no package
    /// (absent in reports of earlier versions: empty).
    #[serde(default)]
    pub skipped: Vec<SedaSkipped>,
    /// Packages built without `dossier.json`, requested dossiers in another state, ….
    pub warnings: Vec<String>,
    /// Bytes of the zips written.
    pub bytes_written: u64,
    pub cancelled: bool,
    /// Whether another writer took OUT's lease over during the run, which then stopped
    /// writing (absent in reports of earlier versions: false).
    #[serde(default)]
    pub lease_lost: bool,
}

impl SedaReport {
    /// `LeaseLost` if the run lost OUT's lease, `Cancelled` if cancelled, `FilesFailed` if a
    /// dossier failed, else `Ok` (skipped dossiers are no failure).
    pub fn exit_status(&self) -> super::RunStatus {
        if self.lease_lost {
            super::RunStatus::LeaseLost
        } else if self.cancelled {
            super::RunStatus::Cancelled
        } else if !self.failed.is_empty() {
            super::RunStatus::FilesFailed
        } else {
            super::RunStatus::Ok
        }
    }
}
