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
use crate::content::{Content, ContentKind, Digests, Rng, mix, wrong_checksum};

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

#[derive(Debug)]
pub(crate) struct Dossier {
    pub(crate) number: u64,
    pub(crate) state: &'static str,
    pub(crate) archived: bool,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) groupe: u64,
    pub(crate) json: Value,
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
    /// `GroupeInstructeurWithDossiers` objects by number.
    pub(crate) groupes: BTreeMap<u64, Value>,
    pub(crate) dossiers: BTreeMap<u64, Dossier>,
    pub(crate) deleted: Vec<DeletedDossier>,
    pub(crate) files: Vec<FileEntry>,
    files_per_dossier: (usize, usize),
    max_file_size: u64,
    pending_scans: u64,
    next_number: u64,
    next_index: u64,
    next_id: u64,
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

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 8, 9, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

fn profile(email: &str) -> Value {
    json!({"__typename": "Profile", "id": b64(&format!("Profile-{email}")), "email": email})
}

/// Champs are built with a shared id counter per dossier.
struct ChampBuilder {
    dossier: u64,
    next: u64,
    updated: String,
}

impl ChampBuilder {
    fn base(
        &mut self,
        typename: &str,
        label: &str,
        descriptor: u64,
        string_value: Value,
    ) -> serde_json::Map<String, Value> {
        self.next += 1;
        let Value::Object(map) = json!({
            "__typename": typename,
            "id": b64(&format!("Champ-{}-{}", self.dossier, self.next)),
            "champDescriptorId": b64(&format!("TypeDeChamp-{descriptor}")),
            "label": label,
            "prefilled": false,
            "stringValue": string_value,
            "updatedAt": self.updated,
            "columns": [],
        }) else {
            unreachable!("json! object literal is an object")
        };
        map
    }
}

impl State {
    pub(crate) fn build(config: &SimConfig) -> State {
        let demarche = config.demarche;
        let groupes: BTreeMap<u64, Value> = (1..=config.groupes.max(1) as u64)
            .map(|i| {
                let number = demarche * 10 + i;
                (
                    number,
                    json!({
                        "__typename": "GroupeInstructeurWithDossiers",
                        "id": b64(&format!("GroupeInstructeur-{number}")),
                        "number": number,
                        "label": format!("Groupe {i}"),
                        "closed": false,
                        "instructeurs": [profile(&format!("instructeur{i}@example.gouv.fr"))],
                    }),
                )
            })
            .collect();
        let created = ds_date(base_time() - chrono::Duration::days(30));
        let revision = json!({
            "__typename": "Revision",
            "id": b64(&format!("ProcedureRevision-{demarche}")),
            "dateCreation": created,
            "datePublication": created,
            "champDescriptors": [
                {"__typename": "PieceJustificativeChampDescriptor", "id": b64("TypeDeChamp-1"), "label": "Pièce d'identité", "required": true, "description": null, "type": "piece_justificative"},
                {"__typename": "RepetitionChampDescriptor", "id": b64("TypeDeChamp-3"), "label": "Bénéficiaires", "required": false, "description": null, "type": "repetition",
                 "champDescriptors": [{"__typename": "PieceJustificativeChampDescriptor", "id": b64("TypeDeChamp-4"), "label": "Justificatif", "required": false, "description": null, "type": "piece_justificative"}]},
                {"__typename": "TextChampDescriptor", "id": b64("TypeDeChamp-6"), "label": "Commentaire", "required": false, "description": null, "type": "text"},
            ],
            "annotationDescriptors": [
                {"__typename": "PieceJustificativeChampDescriptor", "id": b64("TypeDeChamp-20"), "label": "Rapport d'instruction", "required": false, "description": null, "type": "piece_justificative"},
            ],
        });
        let demarche_json = json!({
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
        });
        let mut state = State {
            seed: config.seed,
            demarche,
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
        // Wrong checksums over stable bytes: spread over the démarche, on uploaded files.
        let candidates: Vec<u64> = state
            .files
            .iter()
            .filter(|f| {
                matches!(f.source, FileSource::Champ | FileSource::Message) && f.content.size > 0
            })
            .map(|f| f.id)
            .collect();
        let wanted = config.wrong_checksums.min(candidates.len());
        for k in 0..wanted {
            // Evenly spread, starting a third of the way in (not the hostile dossier's files).
            let mut at = (candidates.len() / 3 + k * candidates.len() / wanted) % candidates.len();
            while state.files[candidates[at] as usize].wrong_checksum {
                at = (at + 1) % candidates.len();
            }
            state.files[candidates[at] as usize].wrong_checksum = true;
        }
        let mut rng = Rng::new(mix(&[config.seed, 3]));
        for _ in 0..config.deleted_dossiers {
            let number = state.next_number;
            state.next_number += 1 + rng.range(0, 2);
            state.deleted.push(DeletedDossier {
                number,
                state: STATES[rng.range(0, 4) as usize],
                reason: ["user_request", "expired", "instructeur_request"]
                    [rng.range(0, 2) as usize],
                deleted_at: base_time() + chrono::Duration::days(rng.range(1, 60) as i64),
            });
        }
        state
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

    /// Adds one file slot to the dossier being built and returns its reference.
    fn upload(&mut self, up: &mut Uploads, rng: &mut Rng, slot: Slot<'_>) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let (filename, content_type) = slot
            .name
            .unwrap_or_else(|| NAMES[rng.range(0, NAMES.len() as u64 - 1) as usize]);
        let size = slot
            .size
            .unwrap_or_else(|| rng.range(1, self.max_file_size));
        let virus_scan = if rng.chance(self.pending_scans) {
            "pending"
        } else {
            "safe"
        };
        let created_at = up.created_at + chrono::Duration::seconds(rng.range(0, 3600) as i64);
        let kind = match slot.source {
            FileSource::Pdf => ContentKind::Pdf,
            FileSource::Geojson => ContentKind::GeoJson,
            _ => ContentKind::Random,
        };
        self.files.push(FileEntry {
            id,
            dossier: up.dossier,
            source: slot.source,
            champ_id: slot.champ_id.map(str::to_owned),
            label: slot.label.to_owned(),
            row: slot.row,
            filename: filename.to_owned(),
            content_type: content_type.to_owned(),
            content: Content {
                kind,
                key: mix(&[self.seed, id, 0]),
                size,
                dossier: up.dossier,
            },
            generation: 0,
            created_at,
            virus_scan,
            wrong_checksum: false,
            digests: OnceLock::new(),
            external_url: None,
        });
        up.files.push(id);
        json!({"__file": id})
    }

    /// Adds a dossier at the end, returning its number.
    pub(crate) fn add_dossier(&mut self, extras: DossierExtras, now: Option<DateTime<Utc>>) -> u64 {
        let index = self.next_index;
        self.next_index += 1;
        let mut rng = Rng::new(mix(&[self.seed, 2, index]));
        let number = self.next_number;
        self.next_number += 1 + rng.range(0, 2);
        // A dossier of external files holds nothing else: no attestation or motivation.
        let state = if extras.external.is_empty() {
            STATES[(index % 5) as usize]
        } else {
            "en_construction"
        };
        let archived = index % 7 == 6;
        let (created_at, updated_at) = match now {
            Some(now) => {
                let at = self.next_instant(now);
                (at, at)
            }
            None => {
                let created = base_time()
                    + chrono::Duration::seconds((index * 6 * 3600 + rng.range(0, 3600)) as i64);
                (
                    created,
                    created + chrono::Duration::seconds(rng.range(60, 40 * 24 * 3600) as i64),
                )
            }
        };
        let groupe_numbers: Vec<u64> = self.groupes.keys().copied().collect();
        let groupe = groupe_numbers[(index as usize) % groupe_numbers.len()];
        let mut groupe_json = self.groupes[&groupe].clone();
        groupe_json["__typename"] = json!("GroupeInstructeur");
        let mut b = ChampBuilder {
            dossier: number,
            next: 0,
            updated: ds_date(updated_at),
        };
        let mut up = Uploads {
            dossier: number,
            created_at,
            files: Vec::new(),
        };

        // How many uploaded files go to each slot.
        let n = rng.range(
            self.files_per_dossier.0 as u64,
            self.files_per_dossier.1 as u64,
        ) as usize;
        let mut slots = [0usize; 6];
        for j in 0..n {
            let slot = if j < 6 && index < 2 {
                j
            } else {
                rng.range(0, 5) as usize
            };
            slots[slot] += 1;
        }

        let mut champs = Vec::new();
        let mut annotations = Vec::new();

        // 0: top-level PJ champ.
        let mut pj = b.base(
            "PieceJustificativeChamp",
            "Pièce d'identité",
            1,
            Value::Null,
        );
        let pj_id = pj["id"].as_str().unwrap_or_default().to_owned();
        let refs: Vec<Value> = (0..slots[0])
            .map(|_| {
                self.upload(
                    &mut up,
                    &mut rng,
                    Slot::new(
                        FileSource::Champ,
                        Some(&pj_id),
                        "Pièce d'identité",
                        None,
                        None,
                        None,
                    ),
                )
            })
            .collect();
        pj.insert("file".into(), refs.first().cloned().unwrap_or(Value::Null));
        pj.insert("files".into(), Value::Array(refs));
        champs.push(Value::Object(pj));

        // Text champ, unknown to a file extractor.
        let mut text = b.base("TextChamp", "Commentaire", 6, json!("Rien à signaler"));
        text.insert("value".into(), json!("Rien à signaler"));
        champs.push(Value::Object(text));

        // 1: repetition, one row per file, plus an empty row now and then.
        let mut rep = b.base("RepetitionChamp", "Bénéficiaires", 3, Value::Null);
        let mut rows = Vec::new();
        let mut flat = Vec::new();
        for r in 0..(slots[1] + usize::from(index % 4 == 3)) {
            let mut row_pj = b.base("PieceJustificativeChamp", "Justificatif", 4, Value::Null);
            let row_pj_id = row_pj["id"].as_str().unwrap_or_default().to_owned();
            let refs: Vec<Value> = if r < slots[1] {
                vec![self.upload(
                    &mut up,
                    &mut rng,
                    Slot::new(
                        FileSource::Champ,
                        Some(&row_pj_id),
                        "Justificatif",
                        Some(r as u32),
                        None,
                        None,
                    ),
                )]
            } else {
                Vec::new()
            };
            row_pj.insert("file".into(), refs.first().cloned().unwrap_or(Value::Null));
            row_pj.insert("files".into(), Value::Array(refs));
            let mut row_text = b.base(
                "TextChamp",
                "Nom du bénéficiaire",
                5,
                json!(format!("Bénéficiaire {r}")),
            );
            row_text.insert("value".into(), json!(format!("Bénéficiaire {r}")));
            let row_champs = vec![Value::Object(row_pj), Value::Object(row_text)];
            flat.extend(row_champs.iter().cloned());
            rows.push(json!({"__typename": "Row", "id": b64(&format!("Row-{number}-{r}")), "champs": row_champs}));
        }
        rep.insert("rows".into(), Value::Array(rows));
        rep.insert("champs".into(), Value::Array(flat));
        champs.push(Value::Object(rep));

        // 5: a second PJ champ.
        if slots[5] > 0 {
            let mut pj2 = b.base(
                "PieceJustificativeChamp",
                "Justificatif de domicile",
                2,
                Value::Null,
            );
            let id = pj2["id"].as_str().unwrap_or_default().to_owned();
            let refs: Vec<Value> = (0..slots[5])
                .map(|_| {
                    self.upload(
                        &mut up,
                        &mut rng,
                        Slot::new(
                            FileSource::Champ,
                            Some(&id),
                            "Justificatif de domicile",
                            None,
                            None,
                            None,
                        ),
                    )
                })
                .collect();
            pj2.insert("file".into(), refs.first().cloned().unwrap_or(Value::Null));
            pj2.insert("files".into(), Value::Array(refs));
            champs.push(Value::Object(pj2));
        }

        // Hostile names, all in one champ (two of them identical).
        let hostile: Vec<String> = if extras.hostile {
            hostile_names()
        } else {
            Vec::new()
        };
        if !hostile.is_empty() {
            let mut h = b.base("PieceJustificativeChamp", "Pièces diverses", 7, Value::Null);
            let id = h["id"].as_str().unwrap_or_default().to_owned();
            let refs: Vec<Value> = hostile
                .iter()
                .map(|name| {
                    let size = if name == "vide.txt" { Some(0) } else { None };
                    self.upload(
                        &mut up,
                        &mut rng,
                        Slot::new(
                            FileSource::Champ,
                            Some(&id),
                            "Pièces diverses",
                            None,
                            Some((name, "application/octet-stream")),
                            size,
                        ),
                    )
                })
                .collect();
            h.insert("file".into(), refs.first().cloned().unwrap_or(Value::Null));
            h.insert("files".into(), Value::Array(refs));
            champs.push(Value::Object(h));
        }

        if !extras.external.is_empty() {
            let mut annexes = b.base("PieceJustificativeChamp", "Annexes", 11, Value::Null);
            let id = annexes["id"].as_str().unwrap_or_default().to_owned();
            let mut refs = Vec::with_capacity(extras.external.len());
            for (file, url) in &extras.external {
                let slot = Slot::new(
                    FileSource::Champ,
                    Some(&id),
                    "Annexes",
                    None,
                    Some((file.filename(), &file.content_type)),
                    Some(file.size),
                );
                refs.push(self.upload(&mut up, &mut rng, slot));
                if let Some(entry) = self.files.last_mut() {
                    entry.virus_scan = "safe";
                    entry.external_url = Some(url.clone());
                    entry.digests = OnceLock::from(Digests {
                        md5_base64: file.md5_base64.clone(),
                        sha256_hex: String::new(),
                    });
                }
            }
            annexes.insert("file".into(), refs.first().cloned().unwrap_or(Value::Null));
            annexes.insert("files".into(), Value::Array(refs));
            champs.push(Value::Object(annexes));
        }

        if !extras.big_files.is_empty() {
            let mut big = b.base(
                "PieceJustificativeChamp",
                "Annexes volumineuses",
                8,
                Value::Null,
            );
            let id = big["id"].as_str().unwrap_or_default().to_owned();
            let refs: Vec<Value> = extras
                .big_files
                .iter()
                .enumerate()
                .map(|(k, &size)| {
                    self.upload(
                        &mut up,
                        &mut rng,
                        Slot::new(
                            FileSource::Champ,
                            Some(&id),
                            "Annexes volumineuses",
                            None,
                            Some((&format!("annexe-{k}.bin"), "application/octet-stream")),
                            Some(size),
                        ),
                    )
                })
                .collect();
            big.insert("file".into(), refs.first().cloned().unwrap_or(Value::Null));
            big.insert("files".into(), Value::Array(refs));
            champs.push(Value::Object(big));
        }

        // Entreprise attestations, through a SiretChamp, on every fifth dossier.
        let entreprise = index.is_multiple_of(5) && extras.external.is_empty();
        let personne_morale = |this: &mut State,
                               up: &mut Uploads,
                               rng: &mut Rng,
                               champ_id: Option<&str>| {
            let siret = format!("{:014}", mix(&[this.seed, number]) % 100_000_000_000_000);
            // Named by kind and SIRET, as dsfiles labels them (the SIRET is always present here).
            let fiscale = this.upload(
                up,
                rng,
                Slot::new(
                    FileSource::Entreprise,
                    champ_id,
                    &format!("attestation fiscale {siret}"),
                    None,
                    Some(("attestation_fiscale.pdf", "application/pdf")),
                    None,
                ),
            );
            let sociale = this.upload(
                up,
                rng,
                Slot::new(
                    FileSource::Entreprise,
                    champ_id,
                    &format!("attestation sociale {siret}"),
                    None,
                    Some(("attestation_sociale.pdf", "application/pdf")),
                    None,
                ),
            );
            json!({
                "__typename": "PersonneMorale",
                "id": b64(&format!("Etablissement-{number}")),
                "siret": siret,
                "siegeSocial": true,
                "naf": "9499Z",
                "libelleNaf": "Autres organisations fonctionnant par adhésion volontaire",
                "adresse": "1 rue de la Paix 75002 Paris",
                "numeroVoie": "1", "typeVoie": "rue", "nomVoie": "de la Paix", "complementAdresse": null,
                "codePostal": "75002", "localite": "Paris", "codeInseeLocalite": "75102",
                "address": {"__typename": "Address", "label": "1 rue de la Paix 75002 Paris", "type": "housenumber", "streetAddress": "1 rue de la Paix", "streetNumber": "1", "streetName": "rue de la Paix", "postalCode": "75002", "cityName": "Paris", "cityCode": "75102", "departmentName": "Paris", "departmentCode": "75", "regionName": "Île-de-France", "regionCode": "11"},
                "association": null,
                "entreprise": {
                    "__typename": "Entreprise",
                    "siren": &siret[..9],
                    "siretSiegeSocial": siret,
                    "raisonSociale": format!("Association simulée {number}"),
                    "nomCommercial": "",
                    "inlineAdresse": "1 rue de la Paix 75002 Paris",
                    "formeJuridique": "Association déclarée",
                    "formeJuridiqueCode": "9220",
                    "capitalSocial": "-1",
                    "etatAdministratif": "Actif",
                    "dateCreation": "2001-05-04",
                    "attestationFiscaleAttachment": fiscale,
                    "attestationSocialeAttachment": sociale,
                },
            })
        };
        if entreprise {
            let mut siret = b.base("SiretChamp", "SIRET de l'association", 9, Value::Null);
            let id = siret["id"].as_str().unwrap_or_default().to_owned();
            let etab = personne_morale(self, &mut up, &mut rng, Some(&id));
            siret.insert("stringValue".into(), etab["siret"].clone());
            siret.insert("etablissement".into(), etab);
            champs.push(Value::Object(siret));
        }

        // A link to the previous dossier: must not be followed for files.
        if index > 0 && index.is_multiple_of(3) {
            let target = self.dossiers.keys().next_back().copied();
            let mut link = b.base(
                "DossierLinkChamp",
                "Dossier lié",
                10,
                json!(target.map(|t| t.to_string())),
            );
            link.insert(
                "dossier".into(),
                target.map_or(Value::Null, |t| json!({"__dossier": t})),
            );
            champs.push(Value::Object(link));
        }

        // 2: annotation PJ.
        let mut ann = b.base(
            "PieceJustificativeChamp",
            "Rapport d'instruction",
            20,
            Value::Null,
        );
        let ann_id = ann["id"].as_str().unwrap_or_default().to_owned();
        let refs: Vec<Value> = (0..slots[2])
            .map(|_| {
                self.upload(
                    &mut up,
                    &mut rng,
                    Slot::new(
                        FileSource::Annotation,
                        Some(&ann_id),
                        "Rapport d'instruction",
                        None,
                        None,
                        None,
                    ),
                )
            })
            .collect();
        ann.insert("file".into(), refs.first().cloned().unwrap_or(Value::Null));
        ann.insert("files".into(), Value::Array(refs));
        annotations.push(Value::Object(ann));
        let mut ann_text = b.base("TextChamp", "Avis du service", 21, Value::Null);
        ann_text.insert("value".into(), Value::Null);
        annotations.push(Value::Object(ann_text));

        // 3: messages, one attachment each, plus a message without attachment.
        let mut messages = vec![json!({
            "__typename": "Message", "id": b64(&format!("Commentaire-{number}-0")),
            "body": "Bonjour, votre dossier a bien été reçu.", "email": "contact@example.gouv.fr",
            "createdAt": ds_date(created_at), "discardedAt": null, "correction": null,
            "attachment": null, "attachments": [],
        })];
        for k in 0..slots[3] {
            let id = b64(&format!("Commentaire-{number}-{}", k + 1));
            let r = self.upload(
                &mut up,
                &mut rng,
                Slot::new(FileSource::Message, Some(&id), "message", None, None, None),
            );
            messages.push(json!({
                "__typename": "Message", "id": id,
                "body": "Veuillez trouver ci-joint le document demandé.", "email": "usager@example.org",
                "createdAt": ds_date(created_at + chrono::Duration::hours(k as i64 + 1)), "discardedAt": null, "correction": null,
                "attachment": r, "attachments": [r],
            }));
        }

        // 4: avis.
        let avis: Vec<Value> = (0..slots[4])
            .map(|k| {
                let id = b64(&format!("Avis-{number}-{k}"));
                let r = self.upload(&mut up, &mut rng, Slot::new(FileSource::Avis, Some(&id), "avis", None, None, None));
                json!({
                    "__typename": "Avis", "id": id,
                    "question": "Quel est votre avis sur ce dossier ?", "questionLabel": null, "questionAnswer": null,
                    "reponse": "Favorable.", "dateQuestion": ds_date(created_at + chrono::Duration::days(1)),
                    "dateReponse": ds_date(created_at + chrono::Duration::days(2)),
                    "claimant": profile("instructeur1@example.gouv.fr"), "instructeur": profile("instructeur1@example.gouv.fr"),
                    "expert": profile("expert@example.org"),
                    "attachment": r, "attachments": [r],
                })
            })
            .collect();

        let decided = matches!(state, "accepte" | "refuse" | "sans_suite");
        let attestation = if state == "accepte" {
            self.upload(
                &mut up,
                &mut rng,
                Slot::new(
                    FileSource::Attestation,
                    None,
                    "attestation",
                    None,
                    Some(("attestation.pdf", "application/pdf")),
                    None,
                ),
            )
        } else {
            Value::Null
        };
        let motivation_attachment = if decided && index.is_multiple_of(2) {
            self.upload(
                &mut up,
                &mut rng,
                Slot::new(
                    FileSource::Motivation,
                    None,
                    "motivation",
                    None,
                    Some(("motivation.pdf", "application/pdf")),
                    None,
                ),
            )
        } else {
            Value::Null
        };
        let pdf = self.upload(
            &mut up,
            &mut rng,
            Slot::new(
                FileSource::Pdf,
                None,
                "dossier",
                None,
                Some((&format!("dossier-{number}.pdf"), "application/pdf")),
                Some(0),
            ),
        );
        let geojson = self.upload(
            &mut up,
            &mut rng,
            Slot::new(
                FileSource::Geojson,
                None,
                "geojson",
                None,
                Some((&format!("dossier-{number}.geojson"), "application/geo+json")),
                Some(0),
            ),
        );

        let demandeur = if entreprise && index.is_multiple_of(10) {
            personne_morale(self, &mut up, &mut rng, None)
        } else {
            json!({
                "__typename": "PersonnePhysique", "id": b64(&format!("Individual-{number}")),
                "civilite": if index.is_multiple_of(2) { "M" } else { "Mme" },
                "nom": format!("Nom{index}"), "prenom": format!("Prénom{index}"),
                "email": format!("usager{index}@example.org"), "dateDeNaissance": null,
            })
        };
        let instruction =
            (state != "en_construction").then(|| ds_date(created_at + chrono::Duration::days(1)));
        let traitement = decided.then(|| ds_date(created_at + chrono::Duration::days(3)));
        let mut traitements = vec![json!({
            "__typename": "Traitement", "id": b64(&format!("Traitement-{number}-0")),
            "state": "en_construction", "event": "depose", "dateTraitement": ds_date(created_at),
            "emailAgentTraitant": null, "motivation": null, "revision": null,
        })];
        if let Some(at) = &traitement {
            traitements.push(json!({
                "__typename": "Traitement", "id": b64(&format!("Traitement-{number}-1")),
                "state": state, "event": match state { "accepte" => "accepte", "refuse" => "refuse", _ => "classe_sans_suite" },
                "dateTraitement": at, "emailAgentTraitant": "instructeur1@example.gouv.fr",
                "motivation": "Décision motivée.", "revision": null,
            }));
        }
        let demarche_descriptor = json!({
            "__typename": "DemarcheDescriptor",
            "id": self.demarche_json["id"], "number": self.demarche, "title": self.demarche_json["title"],
            "description": self.demarche_json["description"], "state": "publiee", "declarative": null,
            "dateCreation": self.demarche_json["dateCreation"], "datePublication": self.demarche_json["datePublication"],
            "dateDerniereModification": self.demarche_json["dateDerniereModification"],
            "dateFermeture": null, "dateDepublication": null,
            "dureeConservationDossiers": 12, "opendata": false, "tags": [], "zones": [],
            "revision": self.demarche_json["activeRevision"], "service": self.demarche_json["service"],
        });
        let json = json!({
            "__typename": "Dossier",
            "id": b64(&format!("Dossier-{number}")),
            "number": number,
            "state": state,
            "archived": archived,
            "prefilled": false,
            "deposeParUnTiers": false,
            "nomMandataire": null,
            "prenomMandataire": null,
            "connectionUsager": "password",
            "dateDepot": ds_date(created_at),
            "datePassageEnConstruction": ds_date(created_at),
            "datePassageEnInstruction": instruction,
            "dateTraitement": traitement,
            "dateExpiration": null,
            "dateSuppressionParUsager": null,
            "dateSuppressionParAdministration": null,
            "dateDerniereCorrectionEnAttente": null,
            "datePrevisionnelleDecisionSVASVR": null,
            "dateTraitementSVASVR": null,
            "dateDerniereModification": ds_date(updated_at),
            "dateDerniereModificationChamps": ds_date(updated_at),
            "dateDerniereModificationAnnotations": ds_date(updated_at),
            "motivation": if decided { json!("Décision motivée.") } else { Value::Null },
            "motivationAttachment": motivation_attachment,
            "attestation": attestation,
            "pdf": pdf,
            "geojson": geojson,
            "usager": profile(&format!("usager{index}@example.org")),
            "demandeur": demandeur,
            "groupeInstructeur": groupe_json,
            "instructeurs": [profile("instructeur1@example.gouv.fr")],
            "labels": [],
            "traitements": traitements,
            "demarche": demarche_descriptor,
            "revision": self.demarche_json["activeRevision"],
            "champs": champs,
            "annotations": annotations,
            "messages": messages,
            "avis": avis,
        });
        self.dossiers.insert(
            number,
            Dossier {
                number,
                state,
                archived,
                created_at,
                updated_at,
                groupe,
                json,
                files: up.files,
            },
        );
        number
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
        for key in [
            "dateDerniereModification",
            "dateDerniereModificationChamps",
            "dateDerniereModificationAnnotations",
        ] {
            dossier.json[key] = json!(ds_date(at));
        }
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

/// The dossier whose files are being created.
struct Uploads {
    dossier: u64,
    created_at: DateTime<Utc>,
    files: Vec<u64>,
}

/// Where a new file goes; `name`/`size` default to random picks.
struct Slot<'a> {
    source: FileSource,
    champ_id: Option<&'a str>,
    label: &'a str,
    row: Option<u32>,
    name: Option<(&'a str, &'a str)>,
    size: Option<u64>,
}

impl<'a> Slot<'a> {
    fn new(
        source: FileSource,
        champ_id: Option<&'a str>,
        label: &'a str,
        row: Option<u32>,
        name: Option<(&'a str, &'a str)>,
        size: Option<u64>,
    ) -> Slot<'a> {
        Slot {
            source,
            champ_id,
            label,
            row,
            name,
            size,
        }
    }
}
