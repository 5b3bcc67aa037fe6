use std::fmt;

use serde::{Deserialize, Serialize};

/// One file of one dossier, as `dsfiles list` prints it (one JSON object per line) and as the
/// pipeline plans it. Field names are the wire format: keep them stable.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub demarche: u64,
    pub dossier: u64,
    /// DS's `DossierState` in snake_case: `en_construction`, `en_instruction`, `accepte`,
    /// `refuse`, `sans_suite` (an unknown future state is kept, normalized to snake_case).
    pub state: String,
    pub source: Source,
    /// Champ or annotation id; message or avis id for those sources; the `SiretChamp` id for
    /// its API Entreprise attestations; `None` for dossier-level files.
    pub champ_id: Option<String>,
    /// Champ label; `message`, `avis`, `attestation`, `motivation`, `dossier` (pdf),
    /// `geojson`; `attestation fiscale <siret>` / `attestation sociale <siret>` for
    /// API Entreprise attestations.
    pub label: String,
    /// Index (0-based) of the row inside a `RepetitionChamp`.
    pub row: Option<u32>,
    /// Position (0-based) of the file inside its container (the champ's `files`, the message's
    /// or avis' `attachments`); 0 for single-file sources; for API Entreprise attestations
    /// 0 is the fiscal one and 1 the social one. Part of [`FileRecord::file_id`].
    #[serde(default)]
    pub index: u32,
    /// The file name as DS gives it: untrusted, possibly hostile. See [`crate::Layout`].
    pub filename: String,
    pub content_type: String,
    /// Parsed from `byteSizeBigInt` (a JSON string); 0 for pdf/geojson.
    pub byte_size: u64,
    /// Base64 MD5 as DS gives it, unchanged; `""` for pdf/geojson.
    pub checksum: String,
    /// Signed and expiring: never log it with its query ([`FileRecord::url_without_query`]).
    pub url: String,
    /// `virusScanResult`: `safe`, `pending`, `infected`, `blocked`, ...
    pub virus_scan: String,
    pub created_at: Option<String>,
}

/// Where in the dossier a file comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Champ,
    Annotation,
    Message,
    Avis,
    Attestation,
    Motivation,
    Pdf,
    Geojson,
    Entreprise,
}

impl Source {
    /// Every source, in the order [`crate::extract`] visits them (Entreprise aside).
    pub const ALL: [Source; 9] = [
        Source::Champ,
        Source::Annotation,
        Source::Message,
        Source::Avis,
        Source::Attestation,
        Source::Motivation,
        Source::Pdf,
        Source::Geojson,
        Source::Entreprise,
    ];

    /// The snake_case name used on the wire, in file ids and by the `{source}` placeholder.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Champ => "champ",
            Source::Annotation => "annotation",
            Source::Message => "message",
            Source::Avis => "avis",
            Source::Attestation => "attestation",
            Source::Motivation => "motivation",
            Source::Pdf => "pdf",
            Source::Geojson => "geojson",
            Source::Entreprise => "entreprise",
        }
    }

    /// Whether DS gives a checksum and size for files of this source (not for the generated
    /// PDF and GeoJSON).
    pub fn verifiable(self) -> bool {
        !matches!(self, Source::Pdf | Source::Geojson)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Optional sources, off by default (`--include pdf,geojson,entreprise`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Include {
    /// The generated dossier PDF and GeoJSON (no checksum: cannot be verified).
    pub generated: bool,
    /// API Entreprise attestations (`attestationFiscaleAttachment`,
    /// `attestationSocialeAttachment`) of `SiretChamp`s and `PersonneMorale` demandeurs.
    pub entreprise: bool,
}

impl FileRecord {
    /// Stable identity of this file *slot* across runs:
    /// `{dossier}/{source}/{champ_id or -}/{row or -}/{index}`, e.g. `1234/champ/Q2hhbXAtMQ==/-/0`.
    ///
    /// It never includes the URL (which changes on every request), the filename or the
    /// checksum: it is content-independent, so a file re-uploaded in the same slot keeps the
    /// same id and replaces the old one, while two files with the same name in one champ have
    /// different indexes and so different ids. The démarche is not part of it because DS
    /// dossier numbers are global. Only `champ_id` may contain `/` (DS ids are base64), and it
    /// sits between two fixed-count parts on each side, so the id can be split unambiguously.
    pub fn file_id(&self) -> String {
        let champ = self.champ_id.as_deref().unwrap_or("-");
        match self.row {
            Some(row) => format!(
                "{}/{}/{champ}/{row}/{}",
                self.dossier, self.source, self.index
            ),
            None => format!("{}/{}/{champ}/-/{}", self.dossier, self.source, self.index),
        }
    }

    /// False for pdf/geojson: DS gives them no checksum and size 0.
    pub fn verifiable(&self) -> bool {
        self.source.verifiable()
    }

    /// The URL with its query (the signature) and fragment removed: safe to log.
    pub fn url_without_query(&self) -> &str {
        strip_query(&self.url)
    }
}

/// `url` up to its first `?` or `#`.
fn strip_query(url: &str) -> &str {
    match url.find(['?', '#']) {
        Some(i) => &url[..i],
        None => url,
    }
}

/// Written by hand so that the signed URL's query never reaches logs through `{:?}`.
impl fmt::Debug for FileRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = if self.url.len() > strip_query(&self.url).len() {
            format!("{}?<redacted>", strip_query(&self.url))
        } else {
            self.url.clone()
        };
        f.debug_struct("FileRecord")
            .field("demarche", &self.demarche)
            .field("dossier", &self.dossier)
            .field("state", &self.state)
            .field("source", &self.source)
            .field("champ_id", &self.champ_id)
            .field("label", &self.label)
            .field("row", &self.row)
            .field("index", &self.index)
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("byte_size", &self.byte_size)
            .field("checksum", &self.checksum)
            .field("url", &url)
            .field("virus_scan", &self.virus_scan)
            .field("created_at", &self.created_at)
            .finish()
    }
}

#[cfg(test)]
mod tests;
