//! The archival profile (`PROFILE.toml`): who archives, under which agreement and rules, and
//! how packages are named. Parsed strictly: an unknown key, a missing required key, an empty
//! identifier or an unknown placeholder in `package_name` is an error naming the key.

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::Error;

/// The digest algorithm written in `MessageDigest/@algorithm`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DigestAlgorithm {
    #[default]
    #[serde(rename = "SHA-512")]
    Sha512,
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl DigestAlgorithm {
    /// The name SEDA's `algorithm` attribute takes.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha512 => "SHA-512",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }
}

/// Which date of the dossier a rule starts from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleStart {
    /// DS's decision date (`processed_at`).
    #[default]
    Decision,
    /// The date the dossier was deposited (`deposited_at`).
    Depot,
    /// No `StartDate`: the archive computes it.
    None,
}

/// What happens when the appraisal period ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinalAction {
    Keep,
    Destroy,
}

/// `[appraisal]`: the `AppraisalRule` of `ManagementMetadata` (durée d'utilité administrative).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppraisalRule {
    /// The rule identifier in the archive's rule repository (e.g. `APP-00001`).
    pub rule: String,
    #[serde(default)]
    pub start_date: RuleStart,
    pub final_action: FinalAction,
}

/// `[access]`: the `AccessRule` of `ManagementMetadata` (communicabilité).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// The rule identifier in the archive's rule repository (e.g. `ACC-00003`).
    pub rule: String,
    #[serde(default)]
    pub start_date: RuleStart,
}

/// The default `package_name`.
pub const DEFAULT_PACKAGE_NAME: &str = "{dossier}";
/// The placeholders `package_name` may use.
pub const PACKAGE_NAME_PLACEHOLDERS: [&str; 3] = ["dossier", "demarche", "state"];

/// An archival profile; see `docs/seda.md` for a complete example.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `ArchivalAgreement`: the transfer agreement (contrat d'entrée) the archive knows.
    pub archival_agreement: String,
    /// `ArchivalAgency/Identifier`: the archive.
    pub archival_agency: String,
    /// `TransferringAgency/Identifier`: the service that transfers.
    pub transferring_agency: String,
    /// `ManagementMetadata/OriginatingAgencyIdentifier`: the service producing the records.
    pub originating_agency: String,
    /// `ManagementMetadata/SubmissionAgencyIdentifier`.
    #[serde(default)]
    pub submission_agency: Option<String>,
    #[serde(default)]
    pub digest: DigestAlgorithm,
    /// The package's name without `.zip`: placeholders `{dossier}`, `{demarche}`, `{state}`.
    #[serde(default = "default_package_name")]
    pub package_name: String,
    #[serde(default)]
    pub appraisal: Option<AppraisalRule>,
    #[serde(default)]
    pub access: Option<AccessRule>,
}

fn default_package_name() -> String {
    DEFAULT_PACKAGE_NAME.to_owned()
}

impl Profile {
    /// Parses and checks a profile; `origin` (a path) names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Profile, Error> {
        let parsed = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned());
        Profile::checked(parsed, origin)
    }

    /// A profile given as a JSON object with the same keys as the TOML file (unknown keys
    /// refused, the same checks); `origin` names it in errors.
    pub fn from_json(value: serde_json::Value, origin: &str) -> Result<Profile, Error> {
        Profile::checked(
            serde_json::from_value(value).map_err(|e| e.to_string()),
            origin,
        )
    }

    /// A parsed profile, checked; either failure is an error naming `origin`.
    fn checked(parsed: Result<Profile, String>, origin: &str) -> Result<Profile, Error> {
        let profile = parsed.and_then(|p| p.check().map(|()| p));
        profile.map_err(|reason| Error::InvalidOption {
            name: "profile",
            reason: format!("`{origin}`: {reason}"),
        })
    }

    /// Identifiers non-empty (SEDA's `NonEmptyTokenType`), `package_name` usable.
    fn check(&self) -> Result<(), String> {
        let mut ids = vec![
            ("archival_agreement", Some(&self.archival_agreement)),
            ("archival_agency", Some(&self.archival_agency)),
            ("transferring_agency", Some(&self.transferring_agency)),
            ("originating_agency", Some(&self.originating_agency)),
            ("submission_agency", self.submission_agency.as_ref()),
        ];
        ids.push(("appraisal.rule", self.appraisal.as_ref().map(|a| &a.rule)));
        ids.push(("access.rule", self.access.as_ref().map(|a| &a.rule)));
        for (key, value) in ids {
            if value.is_some_and(|v| v.trim().is_empty()) {
                return Err(format!("`{key}` is empty"));
            }
        }
        check_template(&self.package_name).map_err(|e| format!("`package_name`: {e}"))
    }

    /// Hex SHA-256 of the profile's canonical JSON: part of every package's fingerprint, so
    /// that a changed profile packages every dossier again.
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(sha2::Sha256::digest(json))
    }
}

/// Every `{…}` of `template` is a known placeholder, and braces are balanced.
fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("unmatched `}}` in `{template}`"));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in `{template}`"))?;
        let name = &rest[open + 1..open + close];
        if !PACKAGE_NAME_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder `{{{name}}}` (known: {})",
                PACKAGE_NAME_PLACEHOLDERS
                    .map(|p| format!("{{{p}}}"))
                    .join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// Longest package name, in bytes (without `.zip` and a version suffix): far below the
/// 255-byte file name limit of common file systems.
pub const PACKAGE_NAME_MAX: usize = 150;

/// The package name (without `.zip`) of a dossier: `template` rendered, then every character
/// outside `[A-Za-z0-9._-]` replaced by `_`, a leading `.` too, so that the name is one safe
/// path segment on every sink and archive; cut at [`PACKAGE_NAME_MAX`]; never empty.
pub fn package_name(template: &str, dossier: u64, demarche: u64, state: &str) -> String {
    let rendered = template
        .replace("{dossier}", &dossier.to_string())
        .replace("{demarche}", &demarche.to_string())
        .replace("{state}", state);
    let mut name: String = rendered
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with('.') {
        name.replace_range(0..1, "_");
    }
    // ASCII only by now: any byte index is a character boundary.
    name.truncate(PACKAGE_NAME_MAX);
    if name.is_empty() {
        name = dossier.to_string();
    }
    name
}
