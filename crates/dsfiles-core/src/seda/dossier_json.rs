//! Reading `dossier.json` (format version 1, written next to a dossier's files by the sync's
//! dossier-context step): the data a package describes beyond the files. Only what the
//! manifest uses is read; other fields are ignored, an unknown `version` is an error.
//!
//! The format is fixed and shared with the writer (`docs/seda.md` quotes it); once the
//! writer's types are in `wire`, these read-side types should give way to them.

use serde::Deserialize;

/// The version this build reads.
pub const DOSSIER_JSON_VERSION: u32 = 1;

#[derive(Clone, Debug, Deserialize)]
pub struct DossierJson {
    pub version: u32,
    pub demarche: Demarche,
    pub dossier: Dossier,
    pub applicant: Option<Applicant>,
    #[serde(default)]
    pub champs: Vec<Champ>,
    #[serde(default)]
    pub annotations: Vec<Champ>,
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub avis: Vec<Avis>,
    pub decision: Option<Decision>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Demarche {
    pub number: u64,
    pub title: String,
    pub service: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Dossier {
    pub number: u64,
    pub state: String,
    pub deposited_at: Option<String>,
    pub processed_at: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Applicant {
    Person {
        civilite: Option<String>,
        nom: String,
        prenom: String,
    },
    Company {
        siret: String,
        raison_sociale: Option<String>,
        adresse: Option<String>,
    },
}

#[derive(Clone, Debug, Deserialize)]
pub struct Champ {
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: Option<String>,
    pub rows: Option<Vec<Row>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Row {
    pub champs: Vec<Champ>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Message {
    pub created_at: String,
    pub sender: String,
    pub body: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Avis {
    pub question: Option<String>,
    pub answer: Option<String>,
    pub expert: Option<String>,
    pub created_at: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Decision {
    pub motivation: Option<String>,
    pub processed_at: Option<String>,
}

impl DossierJson {
    /// Parses `bytes` read at `key`, checking the version first.
    pub fn parse(key: &str, bytes: &[u8]) -> Result<DossierJson, String> {
        #[derive(Deserialize)]
        struct Versioned {
            version: Option<u64>,
        }
        let head: Versioned =
            serde_json::from_slice(bytes).map_err(|e| format!("`{key}` is not JSON: {e}"))?;
        match head.version {
            Some(v) if v == u64::from(DOSSIER_JSON_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "`{key}` has version `{v}` (this build reads `{DOSSIER_JSON_VERSION}`)"
                ));
            }
            None => return Err(format!("`{key}` has no `version`")),
        }
        serde_json::from_slice(bytes).map_err(|e| format!("`{key}` is not a dossier.json: {e}"))
    }
}
