//! The seeded démarche: dossiers as JSON object graphs, files as generated content.
//!
//! File slots in the JSON are references (`{"__file": id}`), dossiers inside connections and
//! `DossierLinkChamp` are references too (`{"__dossier": number}`): the GraphQL layer expands
//! them at resolution time, so URLs are signed fresh and mutations show up immediately.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use base64::Engine as _;
use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone as _, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::SimConfig;
use crate::content::{Content, Digests, Rng, mix, wrong_checksum};

mod dossier;
#[cfg(test)]
mod tests;

/// Where a file sits in a dossier; `as_str` is the spelling of the list output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileSource {
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

impl FileSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FileSource::Champ => "champ",
            FileSource::Annotation => "annotation",
            FileSource::Message => "message",
            FileSource::Avis => "avis",
            FileSource::Attestation => "attestation",
            FileSource::Motivation => "motivation",
            FileSource::Pdf => "pdf",
            FileSource::Geojson => "geojson",
            FileSource::Entreprise => "entreprise",
        }
    }

    /// Generated on demand by DS (no checksum, size 0 in the API).
    pub fn is_generated(self) -> bool {
        matches!(self, FileSource::Pdf | FileSource::Geojson)
    }
}

/// One file of the démarche as the simulator knows it: the ground truth tests compare with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExpectedFile {
    /// Simulator id of the file slot (targets faults, [`SimHandle::file_bytes`](crate::SimHandle::file_bytes)).
    pub id: u64,
    pub dossier: u64,
    /// Dossier state as DS spells it (`en_construction`, `accepte`, ...).
    pub state: String,
    pub source: FileSource,
    /// Champ/annotation id; message or avis id for those sources.
    pub champ_id: Option<String>,
    /// Champ label; "message", "avis", "attestation", "motivation", "dossier" (pdf), "geojson",
    /// or `attestation fiscale <siret>` / `attestation sociale <siret>` for API Entreprise
    /// attestations (the product's naming, see `dsfiles-extract`'s `FileRecord::label`).
    pub label: String,
    pub row: Option<u32>,
    pub filename: String,
    pub content_type: String,
    /// Size as the API reports it (`byteSizeBigInt`; 0 for pdf/geojson).
    pub byte_size: u64,
    /// Number of bytes the file host serves.
    pub served_size: u64,
    /// Checksum as the API reports it ("" for pdf/geojson; deliberately wrong for some).
    pub checksum: String,
    /// base64 MD5 of the served bytes.
    pub true_md5_base64: String,
    pub sha256_hex: String,
    pub virus_scan: String,
    pub created_at: String,
}

/// One file slot and the current version of its content.
#[derive(Debug)]
pub(crate) struct FileEntry {
    pub(crate) id: u64,
    pub(crate) dossier: u64,
    pub(crate) source: FileSource,
    pub(crate) champ_id: Option<String>,
    pub(crate) label: String,
    pub(crate) row: Option<u32>,
    pub(crate) filename: String,
    pub(crate) content_type: String,
    pub(crate) content: Content,
    pub(crate) generation: u32,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) virus_scan: &'static str,
    pub(crate) wrong_checksum: bool,
    digests: OnceLock<Digests>,
    /// Hosted elsewhere ([`crate::ExternalFiles`]): the URL the API gives, unsigned.
    pub(crate) external_url: Option<String>,
}

impl FileEntry {
    pub(crate) fn digests(&self) -> &Digests {
        self.digests.get_or_init(|| self.content.digests())
    }

    /// `byteSizeBigInt` as DS reports it.
    pub(crate) fn api_size(&self) -> u64 {
        if self.source.is_generated() {
            0
        } else {
            self.content.len()
        }
    }

    /// `checksum` as DS reports it, `force_wrong` adding the fault plan's wrong checksums.
    pub(crate) fn api_checksum(&self, force_wrong: bool) -> String {
        if self.source.is_generated() {
            return String::new();
        }
        let md5 = &self.digests().md5_base64;
        if self.wrong_checksum || force_wrong {
            wrong_checksum(md5)
        } else {
            md5.clone()
        }
    }
}

/// A live dossier: what its JSON is rendered from ([`State::dossier_json`]), never the JSON
/// itself, so a démarche of 100 000 dossiers fits in memory.
#[derive(Debug)]
pub(crate) struct Dossier {
    pub(crate) number: u64,
    /// Position in creation order: seeds the dossier's random draws.
    index: u64,
    pub(crate) state: &'static str,
    pub(crate) archived: bool,
    pub(crate) created_at: DateTime<Utc>,
    /// Last modification (`dateDerniereModification`), moved by [`State::touch`].
    pub(crate) updated_at: DateTime<Utc>,
    /// The champs' `updatedAt`: the modification time when the dossier was built.
    champs_updated_at: DateTime<Utc>,
    /// Built "now" (dates given) rather than in the seeded past (dates drawn).
    born_now: bool,
    pub(crate) groupe: u64,
    /// The dossier its `DossierLinkChamp` points to (the latest one when it was built).
    link: Option<u64>,
    /// Rare extra content (hostile names, external or big files), boxed to keep dossiers small.
    extras: Option<Box<DossierExtras>>,
    /// Ids of its files, in document order (consecutive, from the first).
    pub(crate) files: Vec<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct DeletedDossier {
    pub(crate) number: u64,
    pub(crate) state: &'static str,
    pub(crate) reason: &'static str,
    pub(crate) deleted_at: DateTime<Utc>,
}

/// The whole simulated démarche.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) seed: u64,
    pub(crate) demarche: u64,
    pub(crate) demarche_json: Value,
    /// The `DemarcheDescriptor` every dossier points to (`{"__demarche": "descriptor"}`).
    pub(crate) demarche_descriptor: Value,
    /// `GroupeInstructeurWithDossiers` objects by number.
    pub(crate) groupes: BTreeMap<u64, Value>,
    pub(crate) dossiers: BTreeMap<u64, Dossier>,
    pub(crate) deleted: Vec<DeletedDossier>,
    pub(crate) files: Vec<FileEntry>,
    files_per_dossier: (usize, usize),
    max_file_size: u64,
    pending_scans: u64,
    /// Seconds between two dossiers' creation dates ([`dossier_spacing`]).
    pub(crate) spacing_secs: u64,
    /// The mean step between two dossier numbers ([`SimConfig::number_gap`]).
    pub(crate) number_gap: u64,
    next_number: u64,
    next_index: u64,
    next_id: u64,
}

/// The step from one dossier number to the next: drawn in `1..=2 × gap - 1`, so `gap` on
/// average (with the default gap of 2, the draws of every earlier version of the simulator).
pub(crate) fn number_step(rng: &mut Rng, gap: u64) -> u64 {
    1 + rng.range(0, 2 * (gap.max(1) - 1))
}

const STATES: [&str; 5] = [
    "en_construction",
    "en_instruction",
    "accepte",
    "refuse",
    "sans_suite",
];

const NAMES: [(&str, &str); 10] = [
    ("piece-identite.pdf", "application/pdf"),
    ("justificatif_domicile.jpg", "image/jpeg"),
    ("Relevé d'identité bancaire.pdf", "application/pdf"),
    ("scan 2023-04.png", "image/png"),
    (
        "statuts.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    (
        "budget prévisionnel.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("photo.jpeg", "image/jpeg"),
    ("attestation_employeur.pdf", "application/pdf"),
    ("notes.txt", "text/plain"),
    ("plan.pdf", "application/pdf"),
];

/// The hostile filenames every client must survive, in one champ of the first dossier.
pub(crate) fn hostile_names() -> Vec<String> {
    vec![
        "../../x.pdf".to_owned(),
        "/etc/passwd".to_owned(),
        "a/b\\c".to_owned(),
        "CON".to_owned(),
        "nul\u{0}octet.pdf".to_owned(),
        format!("{}.pdf", "n".repeat(296)),
        "e\u{301}te\u{301} re\u{301}sume\u{301}.pdf".to_owned(),
        "doublon.pdf".to_owned(),
        "doublon.pdf".to_owned(),
        " point final. ".to_owned(),
        "vide.txt".to_owned(),
    ]
}

/// Dates as DS writes them: RFC 3339 with the Paris winter offset.
pub(crate) fn ds_date(at: DateTime<Utc>) -> String {
    let paris = FixedOffset::east_opt(3600).expect("+01:00 is a valid offset");
    at.with_timezone(&paris)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Seconds between two dossiers' creation dates: six hours, closer for démarches of more
/// than about 2,900 dossiers so that every date stays within two years of [`base_time`] (in
/// the past: a date in the future would make every incremental run list the dossier again).
fn dossier_spacing(dossiers: usize) -> u64 {
    const SIX_HOURS: u64 = 6 * 3600;
    const TWO_YEARS: u64 = 2 * 365 * 24 * 3600;
    let dossiers = u64::try_from(dossiers.max(1)).unwrap_or(u64::MAX);
    (TWO_YEARS / dossiers).clamp(1, SIX_HOURS)
}

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 8, 9, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

fn profile(email: &str) -> Value {
    json!({"__typename": "Profile", "id": b64(&format!("Profile-{email}")), "email": email})
}

/// The label of groupe `i`: distinct ones, the second hostile — a path separator, `..`,
/// control characters, 300 bytes — since it may name directories.
fn groupe_label(i: u64) -> String {
    match i {
        1 => "Île-de-France".to_owned(),
        2 => {
            let label = "Nord/Sud ../.. \u{1}\t\u{7f}".to_owned();
            let padding = 300usize.saturating_sub(label.len());
            label + &"x".repeat(padding)
        }
        3 => "Outre-mer (DROM / COM)".to_owned(),
        i => format!("Groupe {i}"),
    }
}

/// The groupes instructeurs, numbered `démarche × 10 + i`.
fn groupes_json(demarche: u64, count: usize) -> BTreeMap<u64, Value> {
    (1..=count.max(1) as u64)
        .map(|i| {
            let number = demarche * 10 + i;
            (
                number,
                json!({
                    "__typename": "GroupeInstructeurWithDossiers",
                    "id": b64(&format!("GroupeInstructeur-{number}")),
                    "number": number,
                    "label": groupe_label(i),
                    "closed": false,
                    "instructeurs": [profile(&format!("instructeur{i}@example.gouv.fr"))],
                }),
            )
        })
        .collect()
}

/// A descriptor of the champs that hold files or links.
fn plain_descriptor(id: u64, typename: &str, label: &str, ty: &str) -> Value {
    json!({"__typename": typename, "id": b64(&format!("TypeDeChamp-{id}")), "label": label,
           "required": id == 1, "description": null, "type": ty})
}

/// The revision's root champs, in the order dossiers list them.
fn champ_descriptors() -> Vec<Value> {
    let pj = "PieceJustificativeChampDescriptor";
    let mut repetition = plain_descriptor(
        3,
        "RepetitionChampDescriptor",
        "Bénéficiaires",
        "repetition",
    );
    repetition["champDescriptors"] = json!([
        plain_descriptor(4, pj, "Justificatif", "piece_justificative"),
        plain_descriptor(5, "TextChampDescriptor", "Nom du bénéficiaire", "text"),
    ]);
    let mut descriptors = vec![
        plain_descriptor(1, pj, "Pièce d'identité", "piece_justificative"),
        plain_descriptor(6, "TextChampDescriptor", "Commentaire", "text"),
        repetition,
        plain_descriptor(2, pj, "Justificatif de domicile", "piece_justificative"),
        plain_descriptor(7, pj, "Pièces diverses", "piece_justificative"),
        plain_descriptor(11, pj, "Annexes", "piece_justificative"),
        plain_descriptor(8, pj, "Annexes volumineuses", "piece_justificative"),
        plain_descriptor(9, "SiretChampDescriptor", "SIRET de l'association", "siret"),
        plain_descriptor(
            10,
            "DossierLinkChampDescriptor",
            "Dossier lié",
            "dossier_link",
        ),
    ];
    descriptors.extend(
        dossier::values::CHAMPS
            .iter()
            .map(dossier::values::descriptor),
    );
    descriptors
}

/// The revision's annotations, in the order dossiers list them.
fn annotation_descriptors() -> Vec<Value> {
    let mut descriptors = vec![
        plain_descriptor(
            20,
            "PieceJustificativeChampDescriptor",
            "Rapport d'instruction",
            "piece_justificative",
        ),
        plain_descriptor(21, "TextChampDescriptor", "Avis du service", "text"),
    ];
    descriptors.extend(
        dossier::values::ANNOTATIONS
            .iter()
            .map(dossier::values::descriptor),
    );
    descriptors
}

/// The `Demarche` object, with its one revision.
fn demarche_json(demarche: u64, groupes: &BTreeMap<u64, Value>) -> Value {
    let created = ds_date(base_time() - chrono::Duration::days(30));
    let revision = json!({
        "__typename": "Revision",
        "id": b64(&format!("ProcedureRevision-{demarche}")),
        "dateCreation": created,
        "datePublication": created,
        "champDescriptors": champ_descriptors(),
        "annotationDescriptors": annotation_descriptors(),
    });
    json!({
        "__typename": "Demarche",
        "id": b64(&format!("Procedure-{demarche}")),
        "number": demarche,
        "title": "Subvention aux associations (simulée)",
        "description": "Démarche simulée par dsfiles-sim.",
        "state": "publiee",
        "declarative": null,
        "dateCreation": created,
        "datePublication": created,
        "dateDerniereModification": created,
        "dateFermeture": null,
        "dateDepublication": null,
        "activeRevision": revision,
        "publishedRevision": revision,
        "draftRevision": revision,
        "revisions": [revision],
        "champDescriptors": revision["champDescriptors"],
        "annotationDescriptors": revision["annotationDescriptors"],
        "groupeInstructeurs": groupes.values().map(|g| {
            let mut g = g.clone();
            g["__typename"] = json!("GroupeInstructeur");
            g
        }).collect::<Vec<_>>(),
        "administrateurs": [profile("admin@example.gouv.fr")],
        "labels": [],
        "service": {"__typename": "Service", "id": b64("Service-1"), "nom": "Service simulé", "organisme": "dsfiles", "typeOrganisme": "administration_centrale"},
    })
}

impl State {
    pub(crate) fn build(config: &SimConfig) -> State {
        let demarche = config.demarche;
        let groupes = groupes_json(demarche, config.groupes);
        let demarche_json = demarche_json(demarche, &groupes);
        let mut state = State {
            seed: config.seed,
            demarche,
            demarche_descriptor: dossier::demarche_descriptor(demarche, &demarche_json),
            demarche_json,
            groupes,
            dossiers: BTreeMap::new(),
            deleted: Vec::new(),
            files: Vec::new(),
            files_per_dossier: (
                *config.files_per_dossier.start(),
                *config.files_per_dossier.end(),
            ),
            max_file_size: config.max_file_size.max(1),
            pending_scans: u64::from(config.pending_scans),
            spacing_secs: dossier_spacing(config.dossiers),
            number_gap: config.number_gap.max(1),
            next_number: 1_000_000 + mix(&[config.seed, 1]) % 1000,
            next_index: 0,
            next_id: 0,
        };
        for i in 0..config.dossiers {
            let extras = DossierExtras {
                external: crate::external::dossier_files(config.external.as_ref(), i),
                hostile: config.hostile_filenames && i == 0,
                big_files: if i == 1.min(config.dossiers.saturating_sub(1)) {
                    config.big_files.clone()
                } else {
                    Vec::new()
                },
            };
            state.add_dossier(extras, None);
        }
        state.mark_wrong_checksums(config.wrong_checksums);
        state.add_deleted(config.deleted_dossiers);
        state
    }

    /// Wrong checksums over stable bytes: spread over the démarche, on uploaded files.
    fn mark_wrong_checksums(&mut self, wanted: usize) {
        let candidates: Vec<usize> = self
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                matches!(f.source, FileSource::Champ | FileSource::Message) && f.content.size > 0
            })
            .map(|(at, _)| at)
            .collect();
        let n = candidates.len();
        let wanted = wanted.min(n);
        for k in 0..wanted {
            // Evenly spread, starting a third of the way in (not the hostile dossier's files);
            // `wanted <= n` files are marked, so an unmarked one is always found.
            let mut at = (n / 3 + k * n / wanted) % n;
            while candidates
                .get(at)
                .and_then(|&i| self.files.get(i))
                .is_some_and(|f| f.wrong_checksum)
            {
                at = (at + 1) % n;
            }
            if let Some(file) = candidates.get(at).and_then(|&i| self.files.get_mut(i)) {
                file.wrong_checksum = true;
            }
        }
    }

    /// Dossiers deleted before the simulator started, numbered after the live ones.
    fn add_deleted(&mut self, count: usize) {
        let mut rng = Rng::new(mix(&[self.seed, 3]));
        for _ in 0..count {
            let number = self.next_number;
            self.next_number += number_step(&mut rng, self.number_gap);
            self.deleted.push(DeletedDossier {
                number,
                state: STATES[rng.range(0, 4) as usize],
                reason: ["user_request", "expired", "instructeur_request"]
                    [rng.range(0, 2) as usize],
                deleted_at: base_time() + chrono::Duration::days(rng.range(1, 60) as i64),
            });
        }
    }

    /// Latest modification instant across the démarche (for strictly increasing touches).
    fn latest_update(&self) -> DateTime<Utc> {
        self.dossiers
            .values()
            .map(|d| d.updated_at)
            .max()
            .unwrap_or(base_time())
    }

    /// A fresh instant after every existing modification, at second precision.
    fn next_instant(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let now = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        now.max(self.latest_update() + chrono::Duration::seconds(1))
    }

    /// Marks a dossier modified now; with `replace_file`, its first uploaded file gets new bytes.
    pub(crate) fn touch(
        &mut self,
        number: u64,
        now: DateTime<Utc>,
        replace_file: bool,
    ) -> Option<Option<u64>> {
        let at = self.next_instant(now);
        let dossier = self.dossiers.get_mut(&number)?;
        dossier.updated_at = at;
        if !replace_file {
            return Some(None);
        }
        let target = dossier.files.iter().copied().find(|&id| {
            self.files.get(id as usize).is_some_and(|f| {
                !f.source.is_generated()
                    && f.source != FileSource::Entreprise
                    && f.external_url.is_none()
            })
        })?;
        let seed = self.seed;
        let entry = &mut self.files[target as usize];
        entry.generation += 1;
        entry.content.key = mix(&[seed, entry.id, u64::from(entry.generation)]);
        entry.created_at = at;
        entry.digests = OnceLock::new();
        Some(Some(target))
    }

    /// Moves a live dossier to the deleted list.
    pub(crate) fn delete(&mut self, number: u64, now: DateTime<Utc>) -> bool {
        let Some(dossier) = self.dossiers.remove(&number) else {
            return false;
        };
        self.deleted.push(DeletedDossier {
            number,
            state: dossier.state,
            reason: "user_request",
            deleted_at: self.next_instant(now),
        });
        true
    }

    /// Counts what [`State::expected`] lists with neither generated nor entreprise files,
    /// without hashing anything (it must stay cheap for a million files).
    pub(crate) fn totals(&self) -> crate::Totals {
        let mut totals = crate::Totals {
            dossiers: self.dossiers.len() as u64,
            ..crate::Totals::default()
        };
        for dossier in self.dossiers.values() {
            for &id in &dossier.files {
                let Some(f) = self.files.get(id as usize) else {
                    continue;
                };
                if !f.source.is_generated() && f.source != FileSource::Entreprise {
                    totals.files += 1;
                    totals.bytes = totals.bytes.saturating_add(f.content.len());
                }
            }
        }
        totals
    }

    pub(crate) fn expected(
        &self,
        include_generated: bool,
        include_entreprise: bool,
    ) -> Vec<ExpectedFile> {
        let mut out = Vec::new();
        for dossier in self.dossiers.values() {
            for &id in &dossier.files {
                let Some(f) = self.files.get(id as usize) else {
                    continue;
                };
                if (f.source.is_generated() && !include_generated)
                    || (f.source == FileSource::Entreprise && !include_entreprise)
                {
                    continue;
                }
                let digests = f.digests();
                out.push(ExpectedFile {
                    id,
                    dossier: dossier.number,
                    state: dossier.state.to_owned(),
                    source: f.source,
                    champ_id: f.champ_id.clone(),
                    label: f.label.clone(),
                    row: f.row,
                    filename: f.filename.clone(),
                    content_type: f.content_type.clone(),
                    byte_size: f.api_size(),
                    served_size: f.content.len(),
                    checksum: f.api_checksum(false),
                    true_md5_base64: digests.md5_base64.clone(),
                    sha256_hex: digests.sha256_hex.clone(),
                    virus_scan: f.virus_scan.to_owned(),
                    created_at: ds_date(f.created_at),
                });
            }
        }
        out
    }
}

/// Extra content for a dossier being built.
#[derive(Debug, Default)]
pub(crate) struct DossierExtras {
    /// Files hosted elsewhere, with their URLs, in an "Annexes" champ.
    pub(crate) external: Vec<(crate::ExternalFile, String)>,
    pub(crate) hostile: bool,
    pub(crate) big_files: Vec<u64>,
}

impl DossierExtras {
    fn is_empty(&self) -> bool {
        self.external.is_empty() && !self.hostile && self.big_files.is_empty()
    }
}
