//! The archive units of one dossier, as data: what `DescriptiveMetadata` holds, decided from
//! the dossier's `dossier.json` (when there is one) and its stored files. Pure.
//!
//! Rules:
//! - the root unit (`RecordGrp`) is the dossier; its children are one `SubGrp` per source that
//!   has something: `Champs`, `Annotations privées`, `Messagerie`, `Avis`, `Décision`,
//!   `Autres pièces` (GeoJSON, entreprise documents), in that order;
//! - each champ or annotation is a unit titled by its label, its value as `Description`; a
//!   répétition's rows are units `Ligne k` holding their champs; without `dossier.json`, there
//!   is one unit per distinct file label;
//! - each message and avis is a unit (`CreatedDate` = its date); the decision unit carries the
//!   motivation;
//! - each file is an `Item` unit titled by its filename, pointing at its own object group,
//!   placed under the first champ (depth first) whose label is the file's label, else under
//!   its source's unit; DS's PDF of the dossier is not a unit: it joins `dossier.json` in the
//!   root unit's object group.

use crate::extract::{ChampValue, DossierContext, Source};

/// One `ArchiveUnit`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unit {
    pub level: &'static str,
    pub title: String,
    pub description: Option<String>,
    /// RFC 3339, for `CreatedDate` (messages, avis).
    pub created: Option<String>,
    /// The `DataObjectGroup` id this unit points at.
    pub group: Option<String>,
    pub children: Vec<Unit>,
}

/// A file as the tree needs it: where it comes from and the group holding its object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileLeaf {
    pub source: Source,
    pub label: String,
    pub filename: String,
    pub group: String,
}

impl Unit {
    fn new(level: &'static str, title: impl Into<String>) -> Unit {
        Unit {
            level,
            title: title.into(),
            ..Unit::default()
        }
    }
}

/// The children of the root unit (see the module doc).
pub fn children(context: Option<&DossierContext>, files: &[FileLeaf]) -> Vec<Unit> {
    let mut champs = labelled(context.map(|c| c.champs.as_slice()), files, Source::Champ);
    let mut annotations = labelled(
        context.map(|c| c.annotations.as_slice()),
        files,
        Source::Annotation,
    );
    let mut messages = group("Messagerie", context.map(messages).unwrap_or_default());
    let mut avis = group("Avis", context.map(avis).unwrap_or_default());
    let mut decision = group("Décision", Vec::new());
    if let Some(d) = context.and_then(|c| c.decision.as_ref()) {
        decision.description = d.motivation.clone().filter(|m| !m.trim().is_empty());
        decision.created = d.processed_at.clone();
    }
    let mut others = group("Autres pièces", Vec::new());
    for file in files {
        let unit = file_unit(file);
        match file.source {
            Source::Champ => attach(&mut champs, &file.label, unit),
            Source::Annotation => attach(&mut annotations, &file.label, unit),
            Source::Message => messages.children.push(unit),
            Source::Avis => avis.children.push(unit),
            Source::Motivation | Source::Attestation => decision.children.push(unit),
            Source::Pdf => {}
            Source::Geojson | Source::Entreprise => others.children.push(unit),
        }
    }
    let decided = decision.description.is_some() || !decision.children.is_empty();
    let mut out = Vec::new();
    for unit in [champs, annotations, messages, avis] {
        if !unit.children.is_empty() {
            out.push(unit);
        }
    }
    if decided {
        out.push(decision);
    }
    if !others.children.is_empty() {
        out.push(others);
    }
    out
}

fn group(title: &str, children: Vec<Unit>) -> Unit {
    Unit {
        children,
        ..Unit::new("SubGrp", title)
    }
}

fn file_unit(file: &FileLeaf) -> Unit {
    Unit {
        group: Some(file.group.clone()),
        ..Unit::new("Item", file.filename.clone())
    }
}

/// The `Champs` or `Annotations privées` unit: one unit per champ (from `dossier.json`), or
/// per distinct file label without it.
fn labelled(champs: Option<&[ChampValue]>, files: &[FileLeaf], source: Source) -> Unit {
    let title = match source {
        Source::Annotation => "Annotations privées",
        _ => "Champs",
    };
    let children = match champs {
        Some(champs) => champs.iter().map(champ_unit).collect(),
        None => {
            let mut labels: Vec<&str> = Vec::new();
            for f in files.iter().filter(|f| f.source == source) {
                if !labels.contains(&f.label.as_str()) {
                    labels.push(&f.label);
                }
            }
            labels.into_iter().map(|l| Unit::new("Item", l)).collect()
        }
    };
    group(title, children)
}

fn champ_unit(champ: &ChampValue) -> Unit {
    let rows = champ.rows.as_deref().unwrap_or_default();
    let children = rows
        .iter()
        .enumerate()
        .map(|(k, row)| Unit {
            children: row.champs.iter().map(champ_unit).collect(),
            ..Unit::new("SubGrp", format!("Ligne {}", k + 1))
        })
        .collect();
    let level = if rows.is_empty() { "Item" } else { "SubGrp" };
    Unit {
        description: champ.value.clone().filter(|v| !v.trim().is_empty()),
        children,
        ..Unit::new(level, champ.label.clone())
    }
}

fn messages(context: &DossierContext) -> Vec<Unit> {
    context
        .messages
        .iter()
        .map(|m| Unit {
            description: Some(m.body.clone()).filter(|b| !b.trim().is_empty()),
            created: Some(m.created_at.clone()),
            ..Unit::new("Item", format!("Message de {}", m.sender))
        })
        .collect()
}

fn avis(context: &DossierContext) -> Vec<Unit> {
    context
        .avis
        .iter()
        .map(|a| {
            let title = match &a.expert {
                Some(expert) => format!("Avis de {expert}"),
                None => "Avis".to_owned(),
            };
            let text = [a.question.as_deref(), a.answer.as_deref()]
                .into_iter()
                .flatten()
                .filter(|t| !t.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n\n");
            Unit {
                description: Some(text).filter(|t| !t.is_empty()),
                created: a.created_at.clone(),
                ..Unit::new("Item", title)
            }
        })
        .collect()
}

/// Puts `unit` under the first unit below `parent` titled `label` (depth first), else under
/// `parent` itself.
fn attach(parent: &mut Unit, label: &str, unit: Unit) {
    if let Some(target) = find(parent, label) {
        if target.level == "Item" {
            target.level = "SubGrp";
        }
        target.children.push(unit);
    } else {
        parent.children.push(unit);
    }
}

fn find<'u>(parent: &'u mut Unit, label: &str) -> Option<&'u mut Unit> {
    let index = parent
        .children
        .iter()
        .position(|c| c.group.is_none() && (c.title == label || contains(c, label)))?;
    let child = &mut parent.children[index];
    if child.title == label {
        return Some(child);
    }
    find(child, label)
}

fn contains(unit: &Unit, label: &str) -> bool {
    unit.children
        .iter()
        .any(|c| c.group.is_none() && (c.title == label || contains(c, label)))
}
