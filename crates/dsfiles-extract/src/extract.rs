//! Dossier JSON → [`FileRecord`]s.
//!
//! The dossier is first deserialized into the `Raw*` types below (tolerant: unknown fields
//! and unknown champ `__typename`s are ignored, every field is optional at this level), then
//! walked in document order while each file is validated with its exact JSON path, so that
//! bad data gives an [`Error`] naming the dossier and the field, never a panic and never a
//! silently dropped file.
//!
//! Decisions worth knowing:
//! - A champ's files are taken from its `files` list whatever its `__typename`: today only
//!   `PieceJustificativeChamp` has one, and a future champ type that the queries select
//!   with `files` is a file source too. The queries use no aliases, so a `files` key always
//!   holds `File` objects; anything else is an error, not a skip. Likewise `file`, `rows`,
//!   `champs` and `etablissement` are read on any champ (in the schema only
//!   `PieceJustificativeChamp`, `RepetitionChamp` and `SiretChamp` have them); every other
//!   field of an unknown champ type is ignored.
//! - Deprecated copies are never counted twice: `PieceJustificativeChamp.file` and
//!   `Message.attachment`/`Avis.attachment` are used only when the plural list is absent
//!   (or null); `RepetitionChamp.champs` (flat) only when `rows` is absent (then without a
//!   row index); `columns` (`AttachmentsColumn`) are never read.
//! - `DossierLinkChamp.dossier` is never followed: another dossier's files are not this
//!   dossier's.
//! - Order: champs (API Entreprise attestations of a `SiretChamp` right after it), annotations,
//!   messages, avis, attestation, motivation, the demandeur's API Entreprise attestations,
//!   pdf, geojson.

use serde::Deserialize;
use serde_json::Value;

use crate::{Error, FileRecord, Include, Source};

/// Every file record of one dossier, in a deterministic order (see the module docs).
///
/// `dossier` is one `Dossier` object as the queries select it. Pdf and geojson are included
/// only with `include.generated`, API Entreprise attestations only with `include.entreprise`.
pub fn extract(demarche: u64, dossier: &Value, include: Include) -> Result<Vec<FileRecord>, Error> {
    let number = dossier_number(dossier)?;
    let raw: RawDossier = typed(number, dossier)?;
    let state = match raw.state.as_deref().map(normalize_state) {
        Some(state) if !state.is_empty() => state,
        _ => {
            return Err(Error::InvalidDossier {
                dossier: number,
                path: "state".to_owned(),
                reason: "missing or empty `state`".to_owned(),
            });
        }
    };
    let mut walker = Walker {
        demarche,
        dossier: number,
        state,
        include,
        out: Vec::new(),
    };
    walker.dossier(&raw)?;
    Ok(walker.out)
}

/// `dossier` (number `number`) read into the typed view `T`. A dossier that does not fit is
/// read again with its path tracked, so that the error names the field: tracking it on every
/// dossier cost 8–18% of a listing's CPU (`dsfiles list` of 10,000 files, 80 ms → 65–74).
pub(crate) fn typed<'a, T: Deserialize<'a>>(number: u64, dossier: &'a Value) -> Result<T, Error> {
    T::deserialize(dossier).or_else(|_| {
        serde_path_to_error::deserialize(dossier).map_err(|e| Error::InvalidDossier {
            dossier: number,
            path: e.path().to_string(),
            reason: e.inner().to_string(),
        })
    })
}

pub(crate) fn dossier_number(dossier: &Value) -> Result<u64, Error> {
    let Some(object) = dossier.as_object() else {
        return Err(Error::MissingDossierNumber {
            reason: "not a JSON object".to_owned(),
        });
    };
    match object.get("number") {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| Error::MissingDossierNumber {
            reason: format!("`{n}` is not a positive integer"),
        }),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| Error::MissingDossierNumber {
            reason: format!("`{s}` is not a positive integer"),
        }),
        Some(other) => Err(Error::MissingDossierNumber {
            reason: format!("unexpected value `{}`", short(&other.to_string())),
        }),
        None => Err(Error::MissingDossierNumber {
            reason: "field absent".to_owned(),
        }),
    }
}

/// DS sends `DossierState` values as their GraphQL names (`en_construction`); accept
/// `EN_CONSTRUCTION` and `EnConstruction` too, and keep unknown future states (snake_cased).
pub(crate) fn normalize_state(state: &str) -> String {
    let mut out = String::with_capacity(state.len() + 4);
    let mut previous_lower = false;
    for c in state.trim().chars() {
        if c == '-' || c == ' ' {
            out.push('_');
            previous_lower = false;
        } else if c.is_uppercase() {
            if previous_lower {
                out.push('_');
            }
            out.extend(c.to_lowercase());
            previous_lower = false;
        } else {
            out.push(c);
            previous_lower = c.is_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

/// At most 80 characters of `s`, for error messages.
fn short(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

// --- Raw types: exactly the fields the queries select, all optional, unknown ones ignored ---

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDossier {
    state: Option<String>,
    champs: Option<Vec<RawChamp>>,
    annotations: Option<Vec<RawChamp>>,
    messages: Option<Vec<RawContainer>>,
    avis: Option<Vec<RawContainer>>,
    attestation: Option<RawFile>,
    motivation_attachment: Option<RawFile>,
    pdf: Option<RawFile>,
    geojson: Option<RawFile>,
    demandeur: Option<RawPersonneMorale>,
}

/// Any champ. Not an enum on `__typename`: unknown types must parse, and a future type with
/// `files` is still a file source. `dossier` (DossierLinkChamp) and `columns` are not
/// declared, hence never read.
#[derive(Deserialize)]
struct RawChamp {
    #[serde(rename = "__typename")]
    typename: Option<String>,
    id: Option<String>,
    label: Option<String>,
    files: Option<Vec<RawFile>>,
    /// Deprecated copy of `files[0]`.
    file: Option<RawFile>,
    rows: Option<Vec<RawRow>>,
    /// Deprecated flat copy of every row's champs (RepetitionChamp).
    champs: Option<Vec<RawChamp>>,
    /// `SiretChamp.etablissement` (a `PersonneMorale`).
    etablissement: Option<RawPersonneMorale>,
}

#[derive(Deserialize)]
struct RawRow {
    champs: Option<Vec<RawChamp>>,
}

/// A `Message` or an `Avis`.
#[derive(Deserialize)]
struct RawContainer {
    id: Option<String>,
    attachments: Option<Vec<RawFile>>,
    /// Deprecated copy of `attachments[0]`.
    attachment: Option<RawFile>,
}

/// A demandeur (any type) or a `SiretChamp.etablissement`; only a `PersonneMorale` has
/// `entreprise`.
#[derive(Deserialize)]
struct RawPersonneMorale {
    siret: Option<String>,
    entreprise: Option<RawEntreprise>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntreprise {
    attestation_fiscale_attachment: Option<RawFile>,
    attestation_sociale_attachment: Option<RawFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFile {
    filename: Option<String>,
    content_type: Option<String>,
    checksum: Option<String>,
    /// A JSON string per the schema (`BigInt`); a number is accepted too.
    byte_size_big_int: Option<Value>,
    /// Deprecated `Int` (wrong above 2^31): used only when `byteSizeBigInt` is absent.
    byte_size: Option<Value>,
    url: Option<String>,
    created_at: Option<String>,
    virus_scan_result: Option<String>,
}

// --- Walk ---

/// Where a file sits: everything of a record that is not the file's own data.
struct Slot<'a> {
    source: Source,
    champ_id: Option<&'a str>,
    label: String,
    row: Option<u32>,
    index: usize,
}

struct Walker {
    demarche: u64,
    dossier: u64,
    state: String,
    include: Include,
    out: Vec<FileRecord>,
}

impl Walker {
    fn dossier(&mut self, raw: &RawDossier) -> Result<(), Error> {
        if let Some(champs) = &raw.champs {
            self.champs(champs, "champs", Source::Champ, None)?;
        }
        if let Some(annotations) = &raw.annotations {
            self.champs(annotations, "annotations", Source::Annotation, None)?;
        }
        if let Some(messages) = &raw.messages {
            self.containers(messages, "messages", Source::Message)?;
        }
        if let Some(avis) = &raw.avis {
            self.containers(avis, "avis", Source::Avis)?;
        }
        let single = [
            (
                &raw.attestation,
                "attestation",
                Source::Attestation,
                "attestation",
            ),
            (
                &raw.motivation_attachment,
                "motivationAttachment",
                Source::Motivation,
                "motivation",
            ),
        ];
        for (file, path, source, label) in single {
            if let Some(file) = file {
                self.file(file, path, Slot::single(source, label))?;
            }
        }
        if self.include.entreprise
            && let Some(demandeur) = &raw.demandeur
        {
            let siret = demandeur.siret.as_deref().unwrap_or("demandeur");
            self.entreprise(demandeur, "demandeur", None, siret, None)?;
        }
        if self.include.generated {
            let generated = [
                (&raw.pdf, "pdf", Source::Pdf, "dossier"),
                (&raw.geojson, "geojson", Source::Geojson, "geojson"),
            ];
            for (file, path, source, label) in generated {
                if let Some(file) = file {
                    self.file(file, path, Slot::single(source, label))?;
                }
            }
        }
        Ok(())
    }

    fn champs(
        &mut self,
        champs: &[RawChamp],
        path: &str,
        source: Source,
        row: Option<u32>,
    ) -> Result<(), Error> {
        for (i, champ) in champs.iter().enumerate() {
            let path = format!("{path}[{i}]");
            let files: Vec<(String, &RawFile)> = match (&champ.files, &champ.file) {
                (Some(files), _) => files
                    .iter()
                    .enumerate()
                    .map(|(j, f)| (format!("{path}.files[{j}]"), f))
                    .collect(),
                (None, Some(file)) => vec![(format!("{path}.file"), file)],
                (None, None) => Vec::new(),
            };
            if !files.is_empty() {
                let champ_id = self.champ_id(champ, &path)?;
                for (index, (file_path, file)) in files.into_iter().enumerate() {
                    let slot = Slot {
                        source,
                        champ_id: Some(champ_id),
                        label: champ.label.clone().unwrap_or_default(),
                        row,
                        index,
                    };
                    self.file(file, &file_path, slot)?;
                }
            }
            match (&champ.rows, &champ.champs) {
                (Some(rows), _) => {
                    for (r, raw_row) in rows.iter().enumerate() {
                        let row_path = format!("{path}.rows[{r}]");
                        let r = u32::try_from(r)
                            .map_err(|_| self.invalid(&row_path, "too many rows"))?;
                        if let Some(champs) = &raw_row.champs {
                            self.champs(champs, &format!("{row_path}.champs"), source, Some(r))?;
                        }
                    }
                }
                (None, Some(flat)) => self.champs(flat, &format!("{path}.champs"), source, row)?,
                (None, None) => {}
            }
            if self.include.entreprise
                && let Some(etablissement) = &champ.etablissement
            {
                let champ_id = self.champ_id(champ, &path)?;
                let name = etablissement
                    .siret
                    .as_deref()
                    .or(champ.label.as_deref())
                    .unwrap_or("siret");
                self.entreprise(
                    etablissement,
                    &format!("{path}.etablissement"),
                    Some(champ_id),
                    name,
                    row,
                )?;
            }
        }
        Ok(())
    }

    fn champ_id<'c>(&self, champ: &'c RawChamp, path: &str) -> Result<&'c str, Error> {
        champ.id.as_deref().ok_or_else(|| {
            let typename = champ
                .typename
                .as_deref()
                .unwrap_or("champ without __typename");
            self.invalid(path, &format!("`{typename}` with files has no `id`"))
        })
    }

    fn containers(
        &mut self,
        containers: &[RawContainer],
        path: &str,
        source: Source,
    ) -> Result<(), Error> {
        for (i, container) in containers.iter().enumerate() {
            let path = format!("{path}[{i}]");
            let files: Vec<(String, &RawFile)> =
                match (&container.attachments, &container.attachment) {
                    (Some(files), _) => files
                        .iter()
                        .enumerate()
                        .map(|(j, f)| (format!("{path}.attachments[{j}]"), f))
                        .collect(),
                    (None, Some(file)) => vec![(format!("{path}.attachment"), file)],
                    (None, None) => Vec::new(),
                };
            if files.is_empty() {
                continue;
            }
            let id = container.id.as_deref().ok_or_else(|| {
                self.invalid(&path, &format!("{source} with attachments has no `id`"))
            })?;
            for (index, (file_path, file)) in files.into_iter().enumerate() {
                let slot = Slot {
                    source,
                    champ_id: Some(id),
                    label: source.as_str().to_owned(),
                    row: None,
                    index,
                };
                self.file(file, &file_path, slot)?;
            }
        }
        Ok(())
    }

    /// The two API Entreprise attestations; index 0 is always the fiscal one and 1 the
    /// social one, present or not, so that each keeps its file id.
    fn entreprise(
        &mut self,
        holder: &RawPersonneMorale,
        path: &str,
        champ_id: Option<&str>,
        name: &str,
        row: Option<u32>,
    ) -> Result<(), Error> {
        let Some(entreprise) = &holder.entreprise else {
            return Ok(());
        };
        let attestations = [
            (
                &entreprise.attestation_fiscale_attachment,
                "attestationFiscaleAttachment",
                "fiscale",
            ),
            (
                &entreprise.attestation_sociale_attachment,
                "attestationSocialeAttachment",
                "sociale",
            ),
        ];
        for (index, (file, field, kind)) in attestations.into_iter().enumerate() {
            if let Some(file) = file {
                let slot = Slot {
                    source: Source::Entreprise,
                    champ_id,
                    label: format!("attestation {kind} {name}").trim_end().to_owned(),
                    row,
                    index,
                };
                self.file(file, &format!("{path}.entreprise.{field}"), slot)?;
            }
        }
        Ok(())
    }

    fn file(&mut self, file: &RawFile, path: &str, slot: Slot<'_>) -> Result<(), Error> {
        let missing = |field| Error::MissingFileField {
            dossier: self.dossier,
            path: path.to_owned(),
            field,
        };
        let filename = file.filename.clone().ok_or_else(|| missing("filename"))?;
        let url = match &file.url {
            Some(url) if !url.trim().is_empty() => url.clone(),
            _ => return Err(missing("url")),
        };
        let (byte_size, checksum) = if slot.source.verifiable() {
            let size = match (&file.byte_size_big_int, &file.byte_size) {
                (Some(v), _) => self.size(v, path, "byteSizeBigInt")?,
                (None, Some(v)) => self.size(v, path, "byteSize")?,
                (None, None) => return Err(missing("byteSizeBigInt")),
            };
            let checksum = file.checksum.clone().ok_or_else(|| missing("checksum"))?;
            (size, checksum)
        } else {
            // DS gives the generated PDF and GeoJSON size 0 and no checksum.
            (0, String::new())
        };
        let index = u32::try_from(slot.index).map_err(|_| self.invalid(path, "too many files"))?;
        self.out.push(FileRecord {
            demarche: self.demarche,
            dossier: self.dossier,
            state: self.state.clone(),
            source: slot.source,
            champ_id: slot.champ_id.map(str::to_owned),
            label: slot.label,
            row: slot.row,
            index,
            filename,
            content_type: file.content_type.clone().unwrap_or_default(),
            byte_size,
            checksum,
            url,
            virus_scan: file.virus_scan_result.clone().unwrap_or_default(),
            created_at: file.created_at.clone(),
        });
        Ok(())
    }

    fn size(&self, value: &Value, path: &str, field: &'static str) -> Result<u64, Error> {
        let parsed = match value {
            Value::String(s) => s.trim().parse::<u64>().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        };
        parsed.ok_or_else(|| Error::InvalidFileField {
            dossier: self.dossier,
            path: path.to_owned(),
            field,
            value: match value {
                Value::String(s) => short(s),
                other => short(&other.to_string()),
            },
        })
    }

    fn invalid(&self, path: &str, reason: &str) -> Error {
        Error::InvalidDossier {
            dossier: self.dossier,
            path: path.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

impl Slot<'static> {
    fn single(source: Source, label: &str) -> Self {
        Slot {
            source,
            champ_id: None,
            label: label.to_owned(),
            row: None,
            index: 0,
        }
    }
}

#[cfg(test)]
mod tests;
