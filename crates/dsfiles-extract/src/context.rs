//! Dossier JSON → [`DossierContext`]: what DS knows about a dossier besides its files — the
//! démarche, dates, groupe instructeur, applicant, champ and annotation values, messages, avis
//! and decision. It feeds `dossier.json` (whose wire type in `dsfiles-core` embeds these types,
//! so their serde shape is that file's format: field names are stable) and the layout's
//! dossier placeholders.
//!
//! Rules:
//! - Nothing here holds a URL: the context is read from fields that carry none (`File.url`
//!   is never read), so a `dossier.json` cannot leak a signed URL.
//! - Tolerant of absence, strict on shape: a field the queries did not select (an older
//!   query, a fixture) reads as `null` or empty, while a field of the wrong JSON type is an
//!   [`Error::InvalidDossier`] naming its path — never a panic, never a guess.
//! - Champs keep DS's order and nesting: a `RepetitionChamp` carries its rows, each with its
//!   champs; other champs have `rows: null`. `value` is DS's `stringValue` unchanged (hostile
//!   characters included: sanitizing is the layout's job, not the data's).
//! - The applicant is a `person` (`PersonnePhysique`), a `company` (`PersonneMorale`, or
//!   `PersonneMoraleIncomplete` with only its SIRET), or `null` when DS gives neither.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::extract::normalize_state;

/// What DS knows about one dossier, files aside; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DossierContext {
    pub demarche: DemarcheInfo,
    pub dossier: DossierInfo,
    pub applicant: Option<Applicant>,
    pub champs: Vec<ChampValue>,
    pub annotations: Vec<ChampValue>,
    pub messages: Vec<MessageInfo>,
    pub avis: Vec<AvisInfo>,
    /// Present when DS gives a decision date or a motivation.
    pub decision: Option<Decision>,
}

/// The démarche as the dossier sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemarcheInfo {
    pub number: u64,
    /// `""` when DS did not give it.
    pub title: String,
    /// The service's `nom`.
    pub service: Option<String>,
    /// The id of the démarche's revision the dossier was read with.
    pub revision: Option<String>,
}

/// The dossier's identity, state, groupe and dates (RFC 3339 strings as DS gives them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DossierInfo {
    pub number: u64,
    /// DS's GraphQL id (`RG9zc2llci0xMDAwMDQ=`); `""` when DS did not give it.
    pub id: String,
    /// DS's state in snake_case (`accepte`, …).
    pub state: String,
    pub groupe_instructeur: Option<Groupe>,
    /// `dateDepot`.
    pub deposited_at: Option<String>,
    /// `dateDerniereModification`.
    pub updated_at: Option<String>,
    /// `datePassageEnInstruction`.
    pub instruction_started_at: Option<String>,
    /// `dateTraitement`.
    pub processed_at: Option<String>,
}

/// A groupe instructeur.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Groupe {
    pub number: u64,
    pub label: String,
}

/// Who applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Applicant {
    /// A `PersonnePhysique`; `civilite` is DS's `M` or `Mme`.
    Person {
        civilite: Option<String>,
        nom: String,
        prenom: String,
    },
    /// A `PersonneMorale` (or a `PersonneMoraleIncomplete`, with only its SIRET).
    Company {
        siret: String,
        siren: Option<String>,
        raison_sociale: Option<String>,
        /// `numeroTvaIntracommunautaire`.
        tva: Option<String>,
        /// `address.label`.
        adresse: Option<String>,
    },
}

impl Applicant {
    /// The company's raison sociale (else its SIRET), or `Nom Prénom` for a person; `""`
    /// when nothing is known.
    pub fn display_name(&self) -> String {
        match self {
            Applicant::Person { nom, prenom, .. } => format!("{nom} {prenom}").trim().to_owned(),
            Applicant::Company {
                siret,
                raison_sociale,
                ..
            } => raison_sociale
                .as_deref()
                .filter(|name| !name.trim().is_empty())
                .unwrap_or(siret)
                .to_owned(),
        }
    }
}

/// A champ or an annotation with its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChampValue {
    pub id: String,
    pub label: String,
    /// DS's `__typename` (`TextChamp`, `RepetitionChamp`, …).
    #[serde(rename = "type")]
    pub typename: String,
    /// DS's `stringValue`.
    pub value: Option<String>,
    /// A repetition's rows; `None` for any other champ.
    pub rows: Option<Vec<Row>>,
}

/// One row of a repetition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub champs: Vec<ChampValue>,
}

/// A message of the messagerie.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageInfo {
    pub id: String,
    pub created_at: String,
    /// The sender's email.
    pub sender: String,
    pub body: String,
}

/// An expert's avis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvisInfo {
    pub id: String,
    pub question: Option<String>,
    /// DS's `reponse`.
    pub answer: Option<String>,
    /// The expert's email.
    pub expert: Option<String>,
    /// `dateQuestion`.
    pub created_at: Option<String>,
}

/// The decision on a dossier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub motivation: Option<String>,
    pub processed_at: Option<String>,
}

impl DossierContext {
    /// The value (`stringValue`) of the first root champ labelled `label`; `None` when no
    /// root champ has that label, `Some(None)` when it has no value.
    pub fn champ(&self, label: &str) -> Option<Option<&str>> {
        first_value(&self.champs, label)
    }

    /// Like [`DossierContext::champ`], among the annotations.
    pub fn annotation(&self, label: &str) -> Option<Option<&str>> {
        first_value(&self.annotations, label)
    }
}

fn first_value<'a>(champs: &'a [ChampValue], label: &str) -> Option<Option<&'a str>> {
    champs
        .iter()
        .find(|c| c.label == label)
        .map(|c| c.value.as_deref())
}

/// The context of `dossier`, one `Dossier` object as the queries select it; `demarche` is
/// the number used when the dossier does not name its démarche.
pub fn context(demarche: u64, dossier: &Value) -> Result<DossierContext, Error> {
    let number = crate::extract::dossier_number(dossier)?;
    let raw: RawDossier = crate::extract::typed(number, dossier)?;
    let decision = (raw.date_traitement.is_some() || raw.motivation.is_some()).then(|| Decision {
        motivation: raw.motivation.clone(),
        processed_at: raw.date_traitement.clone(),
    });
    Ok(DossierContext {
        demarche: demarche_info(demarche, raw.demarche),
        applicant: raw.demandeur.and_then(applicant),
        champs: champ_values(raw.champs),
        annotations: champ_values(raw.annotations),
        messages: raw.messages.into_iter().flatten().map(message).collect(),
        avis: raw.avis.into_iter().flatten().map(avis).collect(),
        decision,
        dossier: DossierInfo {
            number,
            id: raw.id.unwrap_or_default(),
            state: raw
                .state
                .as_deref()
                .map(normalize_state)
                .unwrap_or_default(),
            groupe_instructeur: raw.groupe_instructeur.map(|g| Groupe {
                number: g.number.unwrap_or_default(),
                label: g.label.unwrap_or_default(),
            }),
            deposited_at: raw.date_depot,
            updated_at: raw.date_derniere_modification,
            instruction_started_at: raw.date_passage_en_instruction,
            processed_at: raw.date_traitement,
        },
    })
}

fn demarche_info(demarche: u64, raw: Option<RawDemarche>) -> DemarcheInfo {
    let raw = raw.unwrap_or_default();
    DemarcheInfo {
        number: raw.number.unwrap_or(demarche),
        title: raw.title.unwrap_or_default(),
        service: raw.service.and_then(|s| s.nom),
        revision: raw.revision.and_then(|r| r.id),
    }
}

fn applicant(raw: RawDemandeur) -> Option<Applicant> {
    let person = match raw.typename.as_deref() {
        Some("PersonnePhysique") => true,
        Some("PersonneMorale" | "PersonneMoraleIncomplete") => false,
        // Without a `__typename` (a fixture, a mock): whatever the fields say.
        _ => raw.nom.is_some() || raw.prenom.is_some(),
    };
    if person {
        return Some(Applicant::Person {
            civilite: raw.civilite,
            nom: raw.nom.unwrap_or_default(),
            prenom: raw.prenom.unwrap_or_default(),
        });
    }
    let siret = raw.siret?;
    let entreprise = raw.entreprise.unwrap_or_default();
    Some(Applicant::Company {
        siret,
        siren: entreprise.siren,
        raison_sociale: entreprise.raison_sociale,
        tva: entreprise.numero_tva_intracommunautaire,
        adresse: raw.address.and_then(|a| a.label),
    })
}

fn champ_values(raw: Option<Vec<RawChamp>>) -> Vec<ChampValue> {
    raw.into_iter().flatten().map(champ_value).collect()
}

fn champ_value(raw: RawChamp) -> ChampValue {
    let rows = raw.rows.map(|rows| {
        rows.into_iter()
            .map(|row| Row {
                champs: champ_values(row.champs),
            })
            .collect()
    });
    ChampValue {
        id: raw.id.unwrap_or_default(),
        label: raw.label.unwrap_or_default(),
        typename: raw.typename.unwrap_or_default(),
        value: raw.string_value,
        rows,
    }
}

fn message(raw: RawMessage) -> MessageInfo {
    MessageInfo {
        id: raw.id.unwrap_or_default(),
        created_at: raw.created_at.unwrap_or_default(),
        sender: raw.email.unwrap_or_default(),
        body: raw.body.unwrap_or_default(),
    }
}

fn avis(raw: RawAvis) -> AvisInfo {
    AvisInfo {
        id: raw.id.unwrap_or_default(),
        question: raw.question,
        answer: raw.reponse,
        expert: raw.expert.and_then(|p| p.email),
        created_at: raw.date_question,
    }
}

// --- Raw types: the fields the queries select, all optional, unknown ones ignored ---

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDossier {
    id: Option<String>,
    state: Option<String>,
    date_depot: Option<String>,
    date_derniere_modification: Option<String>,
    date_passage_en_instruction: Option<String>,
    date_traitement: Option<String>,
    motivation: Option<String>,
    demarche: Option<RawDemarche>,
    groupe_instructeur: Option<RawGroupe>,
    demandeur: Option<RawDemandeur>,
    champs: Option<Vec<RawChamp>>,
    annotations: Option<Vec<RawChamp>>,
    messages: Option<Vec<RawMessage>>,
    avis: Option<Vec<RawAvis>>,
}

#[derive(Default, Deserialize)]
struct RawDemarche {
    number: Option<u64>,
    title: Option<String>,
    service: Option<RawService>,
    revision: Option<RawRevision>,
}

#[derive(Deserialize)]
struct RawService {
    nom: Option<String>,
}

#[derive(Deserialize)]
struct RawRevision {
    id: Option<String>,
}

#[derive(Deserialize)]
struct RawGroupe {
    number: Option<u64>,
    label: Option<String>,
}

/// Any `Demandeur`: the fields of every type, optional.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDemandeur {
    #[serde(rename = "__typename")]
    typename: Option<String>,
    civilite: Option<String>,
    nom: Option<String>,
    prenom: Option<String>,
    siret: Option<String>,
    address: Option<RawAddress>,
    entreprise: Option<RawEntreprise>,
}

#[derive(Deserialize)]
struct RawAddress {
    label: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntreprise {
    siren: Option<String>,
    raison_sociale: Option<String>,
    numero_tva_intracommunautaire: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawChamp {
    #[serde(rename = "__typename")]
    typename: Option<String>,
    id: Option<String>,
    label: Option<String>,
    string_value: Option<String>,
    rows: Option<Vec<RawRow>>,
}

#[derive(Deserialize)]
struct RawRow {
    champs: Option<Vec<RawChamp>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessage {
    id: Option<String>,
    created_at: Option<String>,
    email: Option<String>,
    body: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAvis {
    id: Option<String>,
    date_question: Option<String>,
    question: Option<String>,
    reponse: Option<String>,
    expert: Option<RawProfile>,
}

#[derive(Deserialize)]
struct RawProfile {
    email: Option<String>,
}

#[cfg(test)]
mod tests;
