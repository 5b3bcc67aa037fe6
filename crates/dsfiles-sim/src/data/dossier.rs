//! One dossier of the seeded démarche, built source by source: champs (with the repetition,
//! hostile names, external and big files, the SIRET), annotations, messages and avis, the
//! decision's files, the generated exports, the demandeur, then the dossier object around them.
//! Champs and annotations that only carry values come from [`values`], rendered for the API only.
//!
//! **Rule:** every random draw comes from the dossier's own [`Rng`], seeded by the démarche's
//! seed and the dossier's index, and the parts draw in a fixed order (the order of
//! [`State::add_dossier`]'s body). Reordering two calls changes every later value, which the
//! pinned hashes in `tests.rs` catch; the same seed must keep giving the same démarche.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{
    Dossier, DossierExtras, FileEntry, FileSource, NAMES, STATES, State, b64, base_time, ds_date,
    hostile_names, profile,
};
use crate::content::{Content, ContentKind, Digests, Rng, mix};

pub(super) mod values;

/// A dossier being rendered: the draws and counters its parts share.
struct Draft<'a> {
    dossier: &'a Dossier,
    rng: Rng,
    /// Champ ids are numbered in creation order, annotations included.
    next_champ: u64,
    /// The id the next file gets (ids are consecutive within a dossier).
    next_id: u64,
    /// Ids of the files created so far, in document order.
    files: Vec<u64>,
    /// The files themselves: kept when the dossier is built, dropped when it is rendered.
    new_files: Vec<FileEntry>,
}

/// Extras of the dossiers that have none.
static NO_EXTRAS: DossierExtras = DossierExtras {
    external: Vec::new(),
    hostile: false,
    big_files: Vec::new(),
};

/// A dossier's random stream and its first draws: the step to the next dossier number, then
/// the creation and update dates, drawn in the seeded past unless `given`.
fn opening(
    (seed, spacing_secs, number_gap): (u64, u64, u64),
    index: u64,
    given: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> (Rng, u64, (DateTime<Utc>, DateTime<Utc>)) {
    let mut rng = Rng::new(mix(&[seed, 2, index]));
    let step = super::number_step(&mut rng, number_gap);
    let dates = given.unwrap_or_else(|| {
        let created = base_time()
            + chrono::Duration::seconds((index * spacing_secs + rng.range(0, 3600)) as i64);
        let updated = created + chrono::Duration::seconds(rng.range(60, 40 * 24 * 3600) as i64);
        (created, updated)
    });
    (rng, step, dates)
}

impl Draft<'_> {
    fn decided(&self) -> bool {
        self.dossier.decided()
    }

    /// A champ's common fields, with the next champ id.
    fn champ(
        &mut self,
        typename: &str,
        label: &str,
        descriptor: u64,
        value: Value,
    ) -> Map<String, Value> {
        self.next_champ += 1;
        let mut map = Map::new();
        map.insert("__typename".into(), json!(typename));
        map.insert(
            "id".into(),
            json!(b64(&format!(
                "Champ-{}-{}",
                self.dossier.number, self.next_champ
            ))),
        );
        map.insert(
            "champDescriptorId".into(),
            json!(b64(&format!("TypeDeChamp-{descriptor}"))),
        );
        map.insert("label".into(), json!(label));
        map.insert("prefilled".into(), json!(false));
        map.insert("stringValue".into(), value);
        map.insert(
            "updatedAt".into(),
            json!(ds_date(self.dossier.champs_updated_at)),
        );
        map.insert("columns".into(), json!([]));
        map
    }

    fn text_champ(&mut self, descriptor: u64, label: &str, value: Value) -> Value {
        let mut text = self.champ("TextChamp", label, descriptor, value.clone());
        text.insert("value".into(), value);
        Value::Object(text)
    }

    /// How many random uploads go to each slot: identity PJ, repetition rows, annotation,
    /// messages, avis, second PJ. The first two dossiers get one of each first, so small
    /// démarches still show every source.
    fn slots(&mut self, (low, high): (usize, usize)) -> [usize; 6] {
        let n = self.rng.range(low as u64, high as u64);
        let mut slots = [0usize; 6];
        for j in 0..n {
            let slot = if j < 6 && self.dossier.index < 2 {
                j as usize
            } else {
                self.rng.range(0, 5) as usize
            };
            if let Some(count) = slots.get_mut(slot) {
                *count += 1;
            }
        }
        slots
    }
}

/// A file's name and size; `None` draws them at random.
#[derive(Clone, Copy, Debug)]
struct Upload<'a> {
    name: Option<(&'a str, &'a str)>,
    size: Option<u64>,
}

impl Upload<'_> {
    const RANDOM: Upload<'static> = Upload {
        name: None,
        size: None,
    };
}

fn random(n: usize) -> Vec<Upload<'static>> {
    vec![Upload::RANDOM; n]
}

/// Where a new file goes.
#[derive(Clone, Copy, Debug)]
struct Slot<'a> {
    source: FileSource,
    champ_id: Option<&'a str>,
    label: &'a str,
    row: Option<u32>,
    upload: Upload<'a>,
}

impl<'a> Slot<'a> {
    fn new(source: FileSource, champ_id: Option<&'a str>, label: &'a str) -> Slot<'a> {
        Slot {
            source,
            champ_id,
            label,
            row: None,
            upload: Upload::RANDOM,
        }
    }

    fn named(self, filename: &'a str, content_type: &'a str) -> Slot<'a> {
        let upload = Upload {
            name: Some((filename, content_type)),
            ..self.upload
        };
        Slot { upload, ..self }
    }

    fn sized(self, size: u64) -> Slot<'a> {
        let upload = Upload {
            size: Some(size),
            ..self.upload
        };
        Slot { upload, ..self }
    }
}

/// The parts of a dossier object that hold files.
struct Parts {
    champs: Vec<Value>,
    annotations: Vec<Value>,
    messages: Vec<Value>,
    avis: Vec<Value>,
    attestation: Value,
    motivation: Value,
    pdf: Value,
    geojson: Value,
    demandeur: Value,
}

impl Dossier {
    fn decided(&self) -> bool {
        matches!(self.state, "accepte" | "refuse" | "sans_suite")
    }
}

impl State {
    /// Adds a dossier at the end, returning its number. Its identity and dates are decided
    /// here; its parts are rendered once to create its files, the same way
    /// [`State::dossier_json`] renders it again on every query.
    pub(crate) fn add_dossier(&mut self, extras: DossierExtras, now: Option<DateTime<Utc>>) -> u64 {
        let index = self.next_index;
        self.next_index += 1;
        let given = now.map(|now| {
            let at = self.next_instant(now);
            (at, at)
        });
        let (_, step, (created_at, updated_at)) = opening(
            (self.seed, self.spacing_secs, self.number_gap),
            index,
            given,
        );
        let number = self.next_number;
        self.next_number += step;
        // A dossier of external files holds nothing else, so it stays `en_construction`.
        let plain = extras.external.is_empty();
        let groupe_at = usize::try_from(index).unwrap_or_default() % self.groupes.len().max(1);
        let mut dossier = Dossier {
            number,
            index,
            state: if plain {
                STATES[(index % 5) as usize]
            } else {
                "en_construction"
            },
            archived: index % 7 == 6,
            created_at,
            updated_at,
            champs_updated_at: updated_at,
            born_now: given.is_some(),
            groupe: self
                .groupes
                .keys()
                .nth(groupe_at)
                .copied()
                .unwrap_or_default(),
            link: self.dossiers.keys().next_back().copied(),
            extras: (!extras.is_empty()).then(|| Box::new(extras)),
            files: Vec::new(),
        };
        let (_, draft) = self.render(&dossier, self.next_id);
        let Draft {
            next_id,
            files,
            new_files,
            ..
        } = draft;
        self.next_id = next_id;
        self.files.extend(new_files);
        dossier.files = files;
        self.dossiers.insert(number, dossier);
        number
    }

    /// The `Dossier` object as the API serves it, file slots as references.
    pub(crate) fn dossier_json(&self, dossier: &Dossier) -> Value {
        let first = dossier.files.first().copied().unwrap_or(self.next_id);
        let (mut parts, mut d) = self.render(dossier, first);
        let (champs, annotations) = values::champs(&mut d, self.seed);
        parts.champs.extend(champs);
        parts.annotations.extend(annotations);
        self.dossier_object(&d, parts)
    }

    /// Builds the parts of the dossier that hold files, its files numbered from `first_file`.
    /// (The object around them is left to [`State::dossier_json`]: building a dossier only
    /// needs its files, and the démarche descriptor is most of the cost of a dossier.)
    fn render<'a>(&self, dossier: &'a Dossier, first_file: u64) -> (Parts, Draft<'a>) {
        let given = dossier
            .born_now
            .then_some((dossier.created_at, dossier.champs_updated_at));
        let (rng, _, _) = opening(
            (self.seed, self.spacing_secs, self.number_gap),
            dossier.index,
            given,
        );
        let mut d = Draft {
            dossier,
            rng,
            next_champ: 0,
            next_id: first_file,
            files: Vec::new(),
            new_files: Vec::new(),
        };
        let extras = dossier.extras.as_deref().unwrap_or(&NO_EXTRAS);
        let slots = d.slots(self.files_per_dossier);
        // Entreprise attestations, through a SiretChamp, on every fifth dossier.
        let entreprise = dossier.index.is_multiple_of(5) && extras.external.is_empty();
        let champs = self.champs(&mut d, slots, extras, entreprise);
        let annotations = vec![
            self.pj_champ(
                &mut d,
                FileSource::Annotation,
                20,
                "Rapport d'instruction",
                None,
                &random(slots[2]),
            ),
            d.text_champ(21, "Avis du service", Value::Null),
        ];
        let messages = self.messages(&mut d, slots[3]);
        let avis = self.avis(&mut d, slots[4]);
        let (attestation, motivation) = self.decision(&mut d);
        let (pdf, geojson) = self.exports(&mut d);
        let demandeur = self.demandeur(&mut d, entreprise);
        let parts = Parts {
            champs,
            annotations,
            messages,
            avis,
            attestation,
            motivation,
            pdf,
            geojson,
            demandeur,
        };
        (parts, d)
    }

    /// Adds one file to the dossier being built and returns its reference.
    fn upload(&self, d: &mut Draft<'_>, slot: Slot<'_>) -> Value {
        let id = d.next_id;
        d.next_id += 1;
        let (filename, content_type) = slot
            .upload
            .name
            .unwrap_or_else(|| NAMES[d.rng.range(0, NAMES.len() as u64 - 1) as usize]);
        let size = slot
            .upload
            .size
            .unwrap_or_else(|| d.rng.range(1, self.max_file_size));
        let virus_scan = if d.rng.chance(self.pending_scans) {
            "pending"
        } else {
            "safe"
        };
        let created_at =
            d.dossier.created_at + chrono::Duration::seconds(d.rng.range(0, 3600) as i64);
        let kind = match slot.source {
            FileSource::Pdf => ContentKind::Pdf,
            FileSource::Geojson => ContentKind::GeoJson,
            _ => ContentKind::Random,
        };
        d.new_files.push(FileEntry {
            id,
            dossier: d.dossier.number,
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
                dossier: d.dossier.number,
            },
            generation: 0,
            created_at,
            virus_scan,
            wrong_checksum: false,
            digests: OnceLock::new(),
            external_url: None,
        });
        d.files.push(id);
        json!({"__file": id})
    }

    /// A `PieceJustificativeChamp` with one file per upload (`file` is the first, or null).
    fn pj_champ(
        &self,
        d: &mut Draft<'_>,
        source: FileSource,
        descriptor: u64,
        label: &str,
        row: Option<u32>,
        uploads: &[Upload<'_>],
    ) -> Value {
        let mut champ = d.champ("PieceJustificativeChamp", label, descriptor, Value::Null);
        let id = champ["id"].as_str().unwrap_or_default().to_owned();
        let refs: Vec<Value> = uploads
            .iter()
            .map(|&upload| {
                let slot = Slot {
                    row,
                    upload,
                    ..Slot::new(source, Some(&id), label)
                };
                self.upload(d, slot)
            })
            .collect();
        champ.insert("file".into(), refs.first().cloned().unwrap_or(Value::Null));
        champ.insert("files".into(), Value::Array(refs));
        Value::Object(champ)
    }

    /// The champs, in the order DS lists them: identity PJ, a text (unknown to a file
    /// extractor), the repetition, then those only some dossiers have.
    fn champs(
        &self,
        d: &mut Draft<'_>,
        slots: [usize; 6],
        extras: &DossierExtras,
        entreprise: bool,
    ) -> Vec<Value> {
        let mut champs = vec![
            self.pj_champ(
                d,
                FileSource::Champ,
                1,
                "Pièce d'identité",
                None,
                &random(slots[0]),
            ),
            d.text_champ(6, "Commentaire", json!("Rien à signaler")),
            self.repetition(d, slots[1]),
        ];
        if slots[5] > 0 {
            champs.push(self.pj_champ(
                d,
                FileSource::Champ,
                2,
                "Justificatif de domicile",
                None,
                &random(slots[5]),
            ));
        }
        if extras.hostile {
            champs.push(self.hostile_champ(d));
        }
        if !extras.external.is_empty() {
            champs.push(self.external_champ(d, &extras.external));
        }
        if !extras.big_files.is_empty() {
            champs.push(self.big_files_champ(d, &extras.big_files));
        }
        if entreprise {
            champs.push(self.siret_champ(d));
        }
        // A link to the previous dossier: must not be followed for files.
        if d.dossier.index > 0 && d.dossier.index.is_multiple_of(3) {
            champs.push(Self::link_champ(d));
        }
        champs
    }

    /// The repetition: one row per file, plus an empty row now and then.
    fn repetition(&self, d: &mut Draft<'_>, files: usize) -> Value {
        let mut rep = d.champ("RepetitionChamp", "Bénéficiaires", 3, Value::Null);
        let (mut rows, mut flat) = (Vec::new(), Vec::new());
        for r in 0..files + usize::from(d.dossier.index % 4 == 3) {
            let uploads = if r < files { random(1) } else { Vec::new() };
            let pj = self.pj_champ(
                d,
                FileSource::Champ,
                4,
                "Justificatif",
                u32::try_from(r).ok(),
                &uploads,
            );
            let text = d.text_champ(5, "Nom du bénéficiaire", json!(format!("Bénéficiaire {r}")));
            let row_champs = vec![pj, text];
            flat.extend(row_champs.iter().cloned());
            let id = b64(&format!("Row-{}-{r}", d.dossier.number));
            rows.push(json!({"__typename": "Row", "id": id, "champs": row_champs}));
        }
        rep.insert("rows".into(), Value::Array(rows));
        rep.insert("champs".into(), Value::Array(flat));
        Value::Object(rep)
    }

    /// The hostile names, all in one champ (two of them identical, one empty file).
    fn hostile_champ(&self, d: &mut Draft<'_>) -> Value {
        let names = hostile_names();
        let uploads: Vec<Upload<'_>> = names
            .iter()
            .map(|name| Upload {
                name: Some((name, "application/octet-stream")),
                size: (name == "vide.txt").then_some(0),
            })
            .collect();
        self.pj_champ(d, FileSource::Champ, 7, "Pièces diverses", None, &uploads)
    }

    /// Files hosted elsewhere: their size and checksum are given, their URL is not signed.
    fn external_champ(
        &self,
        d: &mut Draft<'_>,
        external: &[(crate::ExternalFile, String)],
    ) -> Value {
        let first = d.new_files.len();
        let uploads: Vec<Upload<'_>> = external
            .iter()
            .map(|(file, _)| Upload {
                name: Some((file.filename(), &file.content_type)),
                size: Some(file.size),
            })
            .collect();
        let champ = self.pj_champ(d, FileSource::Champ, 11, "Annexes", None, &uploads);
        for (entry, (file, url)) in d.new_files.iter_mut().skip(first).zip(external) {
            entry.virus_scan = "safe";
            entry.external_url = Some(url.clone());
            entry.digests = OnceLock::from(Digests {
                md5_base64: file.md5_base64.clone(),
                sha256_hex: String::new(),
            });
        }
        champ
    }

    fn big_files_champ(&self, d: &mut Draft<'_>, sizes: &[u64]) -> Value {
        let names: Vec<String> = (0..sizes.len())
            .map(|k| format!("annexe-{k}.bin"))
            .collect();
        let uploads: Vec<Upload<'_>> = names
            .iter()
            .zip(sizes)
            .map(|(name, &size)| Upload {
                name: Some((name, "application/octet-stream")),
                size: Some(size),
            })
            .collect();
        self.pj_champ(
            d,
            FileSource::Champ,
            8,
            "Annexes volumineuses",
            None,
            &uploads,
        )
    }

    /// A `SiretChamp` whose établissement carries the API Entreprise attestations.
    fn siret_champ(&self, d: &mut Draft<'_>) -> Value {
        let mut siret = d.champ("SiretChamp", "SIRET de l'association", 9, Value::Null);
        let id = siret["id"].as_str().unwrap_or_default().to_owned();
        let etablissement = self.personne_morale(d, Some(&id));
        siret.insert("stringValue".into(), etablissement["siret"].clone());
        siret.insert("etablissement".into(), etablissement);
        Value::Object(siret)
    }

    /// A `DossierLinkChamp` to the latest dossier built so far.
    fn link_champ(d: &mut Draft<'_>) -> Value {
        let target = d.dossier.link;
        let mut link = d.champ(
            "DossierLinkChamp",
            "Dossier lié",
            10,
            json!(target.map(|t| t.to_string())),
        );
        link.insert(
            "dossier".into(),
            target.map_or(Value::Null, |t| json!({"__dossier": t})),
        );
        Value::Object(link)
    }

    /// A message without attachment, then one message per attachment.
    fn messages(&self, d: &mut Draft<'_>, files: usize) -> Vec<Value> {
        let number = d.dossier.number;
        let mut messages = vec![json!({
            "__typename": "Message", "id": b64(&format!("Commentaire-{number}-0")),
            "body": "Bonjour, votre dossier a bien été reçu.", "email": "contact@example.gouv.fr",
            "createdAt": ds_date(d.dossier.created_at), "discardedAt": null, "correction": null,
            "attachment": null, "attachments": [],
        })];
        for k in 0..files {
            let id = b64(&format!("Commentaire-{number}-{}", k + 1));
            let r = self.upload(d, Slot::new(FileSource::Message, Some(&id), "message"));
            let at = d.dossier.created_at + chrono::Duration::hours(k as i64 + 1);
            messages.push(json!({
                "__typename": "Message", "id": id,
                "body": "Veuillez trouver ci-joint le document demandé.", "email": "usager@example.org",
                "createdAt": ds_date(at), "discardedAt": null, "correction": null,
                "attachment": r, "attachments": [r],
            }));
        }
        messages
    }

    /// One avis per attachment.
    fn avis(&self, d: &mut Draft<'_>, files: usize) -> Vec<Value> {
        (0..files)
            .map(|k| {
                let id = b64(&format!("Avis-{}-{k}", d.dossier.number));
                let r = self.upload(d, Slot::new(FileSource::Avis, Some(&id), "avis"));
                json!({
                    "__typename": "Avis", "id": id,
                    "question": "Quel est votre avis sur ce dossier ?", "questionLabel": null, "questionAnswer": null,
                    "reponse": "Favorable.", "dateQuestion": ds_date(d.dossier.created_at + chrono::Duration::days(1)),
                    "dateReponse": ds_date(d.dossier.created_at + chrono::Duration::days(2)),
                    "claimant": profile("instructeur1@example.gouv.fr"), "instructeur": profile("instructeur1@example.gouv.fr"),
                    "expert": profile("expert@example.org"),
                    "attachment": r, "attachments": [r],
                })
            })
            .collect()
    }

    /// The decision's files: the attestation of an accepted dossier, and the motivation
    /// attachment of every other decided dossier.
    fn decision(&self, d: &mut Draft<'_>) -> (Value, Value) {
        let attestation = if d.dossier.state == "accepte" {
            let slot = Slot::new(FileSource::Attestation, None, "attestation");
            self.upload(d, slot.named("attestation.pdf", "application/pdf"))
        } else {
            Value::Null
        };
        let motivation = if d.decided() && d.dossier.index.is_multiple_of(2) {
            let slot = Slot::new(FileSource::Motivation, None, "motivation");
            self.upload(d, slot.named("motivation.pdf", "application/pdf"))
        } else {
            Value::Null
        };
        (attestation, motivation)
    }

    /// The exports DS generates on demand (`pdf`, `geojson`): no checksum, size 0 in the API.
    fn exports(&self, d: &mut Draft<'_>) -> (Value, Value) {
        let (pdf_name, geojson_name) = (
            format!("dossier-{}.pdf", d.dossier.number),
            format!("dossier-{}.geojson", d.dossier.number),
        );
        let pdf = Slot::new(FileSource::Pdf, None, "dossier").named(&pdf_name, "application/pdf");
        let pdf = self.upload(d, pdf.sized(0));
        let geojson = Slot::new(FileSource::Geojson, None, "geojson")
            .named(&geojson_name, "application/geo+json");
        let geojson = self.upload(d, geojson.sized(0));
        (pdf, geojson)
    }

    /// A company with its API Entreprise attestations (every tenth dossier), a company
    /// without them (one in three of the others), or a person.
    fn demandeur(&self, d: &mut Draft<'_>, entreprise: bool) -> Value {
        let index = d.dossier.index;
        if entreprise && index.is_multiple_of(10) {
            return self.personne_morale(d, None);
        }
        let number = d.dossier.number;
        if index % 3 == 1 {
            let siret = siret(mix(&[self.seed, number, 5]));
            let name = format!("SCOP Dupont / Fils & Cie {number}");
            return etablissement(number, &siret, &name, [Value::Null, Value::Null]);
        }
        json!({
            "__typename": "PersonnePhysique", "id": b64(&format!("Individual-{number}")),
            "civilite": if index.is_multiple_of(2) { "M" } else { "Mme" },
            "nom": format!("Nom{index}"), "prenom": format!("Prénom{index}"),
            "email": format!("usager{index}@example.org"),
            "dateDeNaissance": format!("19{:02}-{:02}-{:02}", 50 + index % 50, 1 + index % 12, 1 + index % 28),
        })
    }

    /// An établissement with its two API Entreprise attestations, labelled by kind and SIRET
    /// as dsfiles names them (the SIRET is always present here).
    fn personne_morale(&self, d: &mut Draft<'_>, champ_id: Option<&str>) -> Value {
        let number = d.dossier.number;
        let siret = siret(mix(&[self.seed, number]));
        let (fiscale_label, sociale_label) = (
            format!("attestation fiscale {siret}"),
            format!("attestation sociale {siret}"),
        );
        let fiscale = Slot::new(FileSource::Entreprise, champ_id, &fiscale_label);
        let fiscale = self.upload(
            d,
            fiscale.named("attestation_fiscale.pdf", "application/pdf"),
        );
        let sociale = Slot::new(FileSource::Entreprise, champ_id, &sociale_label);
        let sociale = self.upload(
            d,
            sociale.named("attestation_sociale.pdf", "application/pdf"),
        );
        let name = format!("Association simulée {number}");
        etablissement(number, &siret, &name, [fiscale, sociale])
    }

    /// The `Dossier` object around its parts.
    fn dossier_object(&self, d: &Draft<'_>, parts: Parts) -> Value {
        let mut groupe = self
            .groupes
            .get(&d.dossier.groupe)
            .cloned()
            .unwrap_or(Value::Null);
        groupe["__typename"] = json!("GroupeInstructeur");
        let mut json = json!({
            "__typename": "Dossier",
            "id": b64(&format!("Dossier-{}", d.dossier.number)),
            "number": d.dossier.number,
            "state": d.dossier.state,
            "archived": d.dossier.archived,
            "prefilled": false,
            "deposeParUnTiers": false,
            "nomMandataire": null,
            "prenomMandataire": null,
            "connectionUsager": "password",
            "motivation": if d.decided() { json!("Décision motivée.") } else { Value::Null },
            "motivationAttachment": parts.motivation,
            "attestation": parts.attestation,
            "pdf": parts.pdf,
            "geojson": parts.geojson,
            "usager": profile(&format!("usager{}@example.org", d.dossier.index)),
            "demandeur": parts.demandeur,
            "groupeInstructeur": groupe,
            "instructeurs": [profile("instructeur1@example.gouv.fr")],
            "labels": [],
            "traitements": traitements(d),
            // References, expanded by the resolver: the démarche is the same for every dossier.
            "demarche": {"__demarche": "descriptor"},
            "revision": {"__demarche": "revision"},
            "champs": parts.champs,
            "annotations": parts.annotations,
            "messages": parts.messages,
            "avis": parts.avis,
        });
        if let Value::Object(map) = &mut json {
            map.extend(dates(d));
        }
        json
    }
}

/// A 14-digit SIRET drawn from `draw`.
fn siret(draw: u64) -> String {
    format!("{:014}", draw % 100_000_000_000_000)
}

/// The intra-community VAT number of a SIREN: `FR`, its key, the SIREN.
fn tva(siren: &str) -> Option<String> {
    let n: u64 = siren.parse().ok()?;
    Some(format!("FR{:02}{siren}", (12 + 3 * (n % 97)) % 97))
}

/// A `PersonneMorale`: the établissement `siret` of company `name`, with its attestations
/// (`[fiscale, sociale]`, file references or null).
fn etablissement(number: u64, siret: &str, name: &str, [fiscale, sociale]: [Value; 2]) -> Value {
    let siren = siret.get(..9).unwrap_or(siret);
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
            "siren": siren,
            "siretSiegeSocial": siret,
            "raisonSociale": name,
            "nomCommercial": "",
            "numeroTvaIntracommunautaire": tva(siren),
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
}

/// The démarche as a dossier sees it.
pub(super) fn demarche_descriptor(number: u64, demarche: &Value) -> Value {
    json!({
        "__typename": "DemarcheDescriptor",
        "id": demarche["id"], "number": number, "title": demarche["title"],
        "description": demarche["description"], "state": "publiee", "declarative": null,
        "dateCreation": demarche["dateCreation"], "datePublication": demarche["datePublication"],
        "dateDerniereModification": demarche["dateDerniereModification"],
        "dateFermeture": null, "dateDepublication": null,
        "dureeConservationDossiers": 12, "opendata": false, "tags": [], "zones": [],
        "revision": demarche["activeRevision"], "service": demarche["service"],
    })
}

/// The dossier's dates: deposit, instruction a day later, decision two days after that.
fn dates(d: &Draft<'_>) -> Map<String, Value> {
    let created = ds_date(d.dossier.created_at);
    let updated = ds_date(d.dossier.updated_at);
    let instruction = (d.dossier.state != "en_construction")
        .then(|| ds_date(d.dossier.created_at + chrono::Duration::days(1)));
    let traitement = d
        .decided()
        .then(|| ds_date(d.dossier.created_at + chrono::Duration::days(3)));
    let Value::Object(map) = json!({
        "dateDepot": created,
        "datePassageEnConstruction": created,
        "datePassageEnInstruction": instruction,
        "dateTraitement": traitement,
        "dateExpiration": null,
        "dateSuppressionParUsager": null,
        "dateSuppressionParAdministration": null,
        "dateDerniereCorrectionEnAttente": null,
        "datePrevisionnelleDecisionSVASVR": null,
        "dateTraitementSVASVR": null,
        "dateDerniereModification": updated,
        "dateDerniereModificationChamps": updated,
        "dateDerniereModificationAnnotations": updated,
    }) else {
        return Map::new();
    };
    map
}

/// The deposit, then the decision of a decided dossier.
fn traitements(d: &Draft<'_>) -> Vec<Value> {
    let number = d.dossier.number;
    let mut traitements = vec![json!({
        "__typename": "Traitement", "id": b64(&format!("Traitement-{number}-0")),
        "state": "en_construction", "event": "depose", "dateTraitement": ds_date(d.dossier.created_at),
        "emailAgentTraitant": null, "motivation": null, "revision": null,
    })];
    if d.decided() {
        let event = match d.dossier.state {
            "accepte" => "accepte",
            "refuse" => "refuse",
            _ => "classe_sans_suite",
        };
        traitements.push(json!({
            "__typename": "Traitement", "id": b64(&format!("Traitement-{number}-1")),
            "state": d.dossier.state, "event": event,
            "dateTraitement": ds_date(d.dossier.created_at + chrono::Duration::days(3)),
            "emailAgentTraitant": "instructeur1@example.gouv.fr",
            "motivation": "Décision motivée.", "revision": null,
        }));
    }
    traitements
}
