//! [`package`]: SEDA 2.2 archival packages (SIPs) of the terminated dossiers a sync stored in
//! a destination DEST, written to an output OUT (any sink). No DS call: everything comes from
//! DEST's manifest shards, stored files and `dossier.json`.
//!
//! Rules:
//! - a dossier is packaged when its shard's state is one of [`SedaOptions::states`] (default
//!   `accepte`, `refuse`, `sans_suite`) and, with [`SedaOptions::dossiers`], it is one of
//!   them; files marked `removed_upstream` are not part of it; a dossier DS reported deleted
//!   (its shard has `deleted_at`) is packaged like the others while its files are stored:
//!   what DS deletes after its retention period is what the archive must keep;
//! - the package is one zip: every file at `Content/{its key in DEST}`, `dossier.json` at
//!   `Content/{its key}`, and `manifest.xml` ([`manifest`]) as the last entry — the digests it
//!   lists are known only once the bytes went through, and SEDA sets no order for the
//!   entries of a SIP (archives extract the whole zip before reading the manifest);
//! - the shard is the authority on which files exist, their keys and digests, and on where
//!   `dossier.json` is (`Shard.data`: its key and SHA-256, checked like a file's; only a shard
//!   without `data` falls back to [`SedaOptions::dossier_json`]); `dossier.json`
//!   adds the description (applicant, dates, champs, messages, avis, decision). Without it
//!   the package is built from the shard alone and the report warns;
//! - a file missing in DEST, or whose bytes are not what the shard recorded, fails its
//!   dossier with a reason naming the key; the other dossiers go on. A failure of OUT stops
//!   the run (`Err`);
//! - a dossier in a selected state with nothing to package (no stored file, no
//!   `dossier.json`) gets no package: it is `skipped` in the report with the reason, and is
//!   no failure. SEDA 2.2 would accept a message without data object (it exists to transfer
//!   a classification plan), but what an archive ingests is a package with content: Vitam's
//!   `CHECK_SEDA` refuses a SIP without its `Content` directory, and a unit describing
//!   nothing is no record. A later run packages the dossier once a sync stored something;
//! - one run at a time per OUT: the run holds OUT's lease ([`crate::lease::LeaseScope::Seda`],
//!   `.dsfiles/seda/lease`) and writes through a [`crate::lease::FencedSink`], so a run that
//!   loses it stops writing (report `lease_lost`);
//! - atomic: the zip is an [`crate::sink::Upload`], committed only once complete;
//! - incremental: OUT keeps `.dsfiles/seda/{dossier}.json` ([`crate::wire::SedaRecord`]),
//!   with the fingerprint of each package written (profile, `dossier.json`, files). A dossier
//!   whose latest package has the same fingerprint is `unchanged`; a changed one gets a new
//!   package `{name}-v{k}.zip` beside the old ones, which are never overwritten;
//! - memory does not grow with file or package size: one chunk of a file at a time goes
//!   through the digests into the zip and on to OUT (see [`zip_out`]); only `manifest.xml`
//!   (about 1 KB per file) and `dossier.json` are held whole.

pub mod format;
pub mod manifest;
mod profile;
mod run;
pub mod tree;
mod write;
mod zip_out;

pub use profile::{
    AccessRule, AppraisalRule, DEFAULT_PACKAGE_NAME, DigestAlgorithm, FinalAction,
    PACKAGE_NAME_PLACEHOLDERS, Profile, RuleStart, package_name,
};
pub use run::package;
pub use write::CONTENT_DIR;

/// The states packaged by default: the dossiers DS has decided.
pub const DEFAULT_STATES: [&str; 3] = ["accepte", "refuse", "sans_suite"];
/// The default key of a dossier's `dossier.json` in DEST.
pub const DEFAULT_DOSSIER_JSON: &str = "{dossier}/dossier.json";
/// Every DS state, as the manifest shards spell them.
pub const STATES: [&str; 5] = [
    "en_construction",
    "en_instruction",
    "accepte",
    "refuse",
    "sans_suite",
];

/// What to package and how.
#[derive(Clone, Debug)]
pub struct SedaOptions {
    pub profile: Profile,
    /// DS states (snake_case) to package.
    pub states: Vec<String>,
    /// Only these dossiers; empty: every dossier in DEST.
    pub dossiers: Vec<u64>,
    /// Only dossiers of this démarche (as their shards name it); `None`: every démarche in
    /// DEST. A dossier of another démarche is skipped like one in another state.
    pub demarche: Option<u64>,
    /// The key of a dossier's `dossier.json` in DEST: `{dossier}` and `{demarche}` replaced.
    /// Only for a dossier whose shard has no `data` (synced before the sync wrote it).
    pub dossier_json: String,
    /// How the run takes OUT's lease ([`crate::lease::LeaseScope::Seda`]).
    pub lease: crate::lease::LeaseOptions,
}

impl SedaOptions {
    pub fn new(profile: Profile) -> SedaOptions {
        SedaOptions {
            profile,
            states: DEFAULT_STATES.map(str::to_owned).to_vec(),
            dossiers: Vec::new(),
            demarche: None,
            dossier_json: DEFAULT_DOSSIER_JSON.to_owned(),
            lease: crate::lease::LeaseOptions::default(),
        }
    }

    /// Known states, at least one.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let invalid = |reason: String| crate::Error::InvalidOption {
            name: "states",
            reason,
        };
        if self.states.is_empty() {
            return Err(invalid("no state given".to_owned()));
        }
        if let Some(s) = self.states.iter().find(|s| !STATES.contains(&s.as_str())) {
            return Err(invalid(format!(
                "`{s}` is not a DS state ({})",
                STATES.join(", ")
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
