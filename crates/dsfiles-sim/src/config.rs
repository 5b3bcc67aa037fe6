//! Simulator configuration.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::{FaultPlan, SimClock};

/// How to build the seeded démarche and how to behave. Same config (seed) → same data.
#[derive(Clone)]
pub struct SimConfig {
    /// Seed of every generated value (dossiers, names, sizes, file bytes).
    pub seed: u64,
    /// The démarche number served by `demarche(number:)` (must fit a GraphQL `Int`).
    pub demarche: u64,
    /// Number of live dossiers.
    pub dossiers: usize,
    /// Uploaded files per dossier (champs, repetitions, annotations, messages, avis), drawn
    /// in this range; attestation, motivation, entreprise and generated files come on top.
    pub files_per_dossier: RangeInclusive<usize>,
    /// Largest size of an ordinary generated file, in bytes.
    pub max_file_size: u64,
    /// Sizes of extra large files, attached to the second dossier's "Annexes volumineuses" champ.
    pub big_files: Vec<u64>,
    /// Number of groupes instructeurs the dossiers are spread over.
    pub groupes: usize,
    /// Number of dossiers already deleted (reported by `deletedDossiers`).
    pub deleted_dossiers: usize,
    /// The mean step between consecutive dossier numbers (at least 1). DS numbers dossiers
    /// across the whole platform, so a démarche's numbers are sparse: a démarche that took
    /// 100,000 of the 4 million dossiers filed in its year has a gap of 40.
    pub number_gap: u64,
    /// Percentage of files whose virus scan is still `pending` (each file drawn independently).
    pub pending_scans: u8,
    /// Number of files whose API checksum is wrong over stable bytes (DS legacy).
    pub wrong_checksums: usize,
    /// Whether the first dossier carries the hostile filenames.
    pub hostile_filenames: bool,
    /// `None`: any non-empty bearer token is accepted. `Some`: exactly this one.
    pub token: Option<String>,
    /// Tokens answered with HTTP 401 (expired).
    pub expired_tokens: Vec<String>,
    /// Lifetime of signed file URLs (DS: one hour).
    pub url_ttl: Duration,
    /// The clock (default: real time). Share a clone to move time in tests.
    pub clock: SimClock,
    /// Faults active from the start.
    pub faults: FaultPlan,
    /// A catalogue of files hosted elsewhere (see [`SimConfig::external_files`]).
    pub external: Option<crate::ExternalFiles>,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            seed: 42,
            demarche: 1234,
            dossiers: 12,
            files_per_dossier: 1..=5,
            max_file_size: 32 * 1024,
            big_files: Vec::new(),
            groupes: 2,
            deleted_dossiers: 3,
            number_gap: 2,
            pending_scans: 3,
            wrong_checksums: 1,
            hostile_filenames: true,
            token: None,
            expired_tokens: Vec::new(),
            url_ttl: Duration::from_secs(3600),
            clock: SimClock::real(),
            faults: FaultPlan::default(),
            external: None,
        }
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("seed", &self.seed)
            .field("demarche", &self.demarche)
            .field("dossiers", &self.dossiers)
            .field("files_per_dossier", &self.files_per_dossier)
            .field("max_file_size", &self.max_file_size)
            .field("big_files", &self.big_files)
            .field("groupes", &self.groupes)
            .field("deleted_dossiers", &self.deleted_dossiers)
            .field("number_gap", &self.number_gap)
            .field("pending_scans", &self.pending_scans)
            .field("wrong_checksums", &self.wrong_checksums)
            .field("hostile_filenames", &self.hostile_filenames)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("expired_tokens", &self.expired_tokens.len())
            .field("url_ttl", &self.url_ttl)
            .field("faults", &self.faults)
            .field(
                "external",
                &self.external.as_ref().map(|e| e.base_url.as_str()),
            )
            .finish_non_exhaustive()
    }
}
