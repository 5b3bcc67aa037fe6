//! The dossier's data that holds no file: root champs of the common types with their values,
//! annotations with values, and the revision's descriptors of both — what naming files from
//! dossier data (`{champ:LABEL}`, `{annotation:LABEL}`) and a `dossier.json` read.
//!
//! **Rule:** nothing here uploads a file or draws from the dossier's file stream. Values come
//! from their own stream (`mix(seed, 4, index)`), and these champs are numbered after every
//! champ and annotation that holds files. So adding or changing a value never moves a file,
//! its id, name, size or bytes, and building a dossier (which only needs its files) skips this
//! part; only [`State::dossier_json`](super::State::dossier_json) renders it.
//!
//! One table, [`CHAMPS`] (and [`ANNOTATIONS`]), drives both the descriptors and the champs, so
//! a champ's label and type always match the revision's.

use serde_json::{Map, Value, json};

use super::Draft;
use crate::content::{Rng, mix};
use crate::data::b64;

/// One champ with a value: its descriptor in the revision and its champ in every dossier.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kind {
    /// Descriptor number (`TypeDeChamp-N`).
    descriptor: u64,
    label: &'static str,
    /// The champ's GraphQL type.
    champ: &'static str,
    /// The descriptor's GraphQL type and its `TypeDeChamp` (email and phone are `TextChamp`s).
    descriptor_type: &'static str,
    type_de_champ: &'static str,
}

const fn kind(
    descriptor: u64,
    label: &'static str,
    champ: &'static str,
    descriptor_type: &'static str,
    type_de_champ: &'static str,
) -> Kind {
    Kind {
        descriptor,
        label,
        champ,
        descriptor_type,
        type_de_champ,
    }
}

/// Root champs with a value, after the champs that hold files.
pub(crate) const CHAMPS: [Kind; 15] = [
    kind(
        30,
        "Nom du projet",
        "TextChamp",
        "TextChampDescriptor",
        "text",
    ),
    kind(
        31,
        "Description / résumé",
        "TextChamp",
        "TextareaChampDescriptor",
        "textarea",
    ),
    kind(
        32,
        "Courriel de contact",
        "TextChamp",
        "EmailChampDescriptor",
        "email",
    ),
    kind(
        33,
        "Téléphone",
        "TextChamp",
        "PhoneChampDescriptor",
        "phone",
    ),
    kind(
        34,
        "Nombre d'adhérents",
        "IntegerNumberChamp",
        "IntegerNumberChampDescriptor",
        "integer_number",
    ),
    kind(
        35,
        "Montant demandé",
        "DecimalNumberChamp",
        "DecimalNumberChampDescriptor",
        "decimal_number",
    ),
    kind(
        36,
        "Date de début",
        "DateChamp",
        "DateChampDescriptor",
        "date",
    ),
    kind(
        37,
        "Rendez-vous",
        "DatetimeChamp",
        "DatetimeChampDescriptor",
        "datetime",
    ),
    kind(
        38,
        "Type de structure",
        "DropDownListChamp",
        "DropDownListChampDescriptor",
        "drop_down_list",
    ),
    kind(
        39,
        "Thématiques",
        "MultipleDropDownListChamp",
        "MultipleDropDownListChampDescriptor",
        "multiple_drop_down_list",
    ),
    kind(
        40,
        "J'atteste l'exactitude des informations",
        "CheckboxChamp",
        "CheckboxChampDescriptor",
        "checkbox",
    ),
    kind(
        41,
        "Première demande",
        "YesNoChamp",
        "YesNoChampDescriptor",
        "yes_no",
    ),
    kind(
        42,
        "Civilité du représentant",
        "CiviliteChamp",
        "CiviliteChampDescriptor",
        "civilite",
    ),
    kind(
        43,
        "Commune du siège",
        "CommuneChamp",
        "CommuneChampDescriptor",
        "communes",
    ),
    kind(
        44,
        "SIRET du siège",
        "SiretChamp",
        "SiretChampDescriptor",
        "siret",
    ),
];

/// Private annotations with a value, after the annotations that hold files.
pub(crate) const ANNOTATIONS: [Kind; 4] = [
    kind(
        22,
        "Dossier complet",
        "CheckboxChamp",
        "CheckboxChampDescriptor",
        "checkbox",
    ),
    kind(
        23,
        "Date de passage en commission",
        "DateChamp",
        "DateChampDescriptor",
        "date",
    ),
    kind(
        24,
        "Priorité",
        "DropDownListChamp",
        "DropDownListChampDescriptor",
        "drop_down_list",
    ),
    kind(
        25,
        "Montant accordé",
        "IntegerNumberChamp",
        "IntegerNumberChampDescriptor",
        "integer_number",
    ),
];

/// Texts every consumer of champ values must survive: path separators, `..`, control
/// characters (never NUL: DS strips it), markup, a 300-byte value, an empty one.
pub(crate) fn hostile_texts() -> Vec<String> {
    vec![
        "Projet ../../etc/passwd".to_owned(),
        "Fête de l'été / édition 2024".to_owned(),
        String::new(),
        "ligne 1\nligne 2\ttab\u{1}\u{7}\u{1b}[31m".to_owned(),
        "é".repeat(150),
        "..".to_owned(),
        "  espaces  autour  ".to_owned(),
        "C:\\Windows\\System32\\CON".to_owned(),
        "<script>alert(1)</script> & \"guillemets\"".to_owned(),
    ]
}

const STRUCTURES: [&str; 4] = [
    "Association",
    "Collectivité territoriale",
    "Entreprise / autre",
    "Autre (préciser)",
];
const THEMES: [&str; 4] = ["Culture", "Sport", "Social / solidarité", "Environnement"];
const PRIORITIES: [&str; 3] = ["Haute", "Normale", "Basse"];
/// (name, INSEE code, postal code, département code, département name)
const COMMUNES: [(&str, &str, &str, &str, &str); 4] = [
    ("Paris", "75056", "75001", "75", "Paris"),
    ("Lyon", "69123", "69001", "69", "Rhône"),
    ("Saint-Étienne", "42218", "42000", "42", "Loire"),
    ("L'Haÿ-les-Roses", "94038", "94240", "94", "Val-de-Marne"),
];
const MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> Option<T> {
    let len = u64::try_from(items.len()).ok()?.checked_sub(1)?;
    items.get(usize::try_from(rng.range(0, len)).ok()?).copied()
}

/// The options of a drop-down descriptor.
fn options(kind: &Kind) -> Option<&'static [&'static str]> {
    match kind.descriptor {
        38 => Some(&STRUCTURES),
        39 => Some(&THEMES),
        24 => Some(&PRIORITIES),
        _ => None,
    }
}

/// The revision's descriptor of `kind`.
pub(crate) fn descriptor(kind: &Kind) -> Value {
    let mut descriptor = json!({
        "__typename": kind.descriptor_type, "id": b64(&format!("TypeDeChamp-{}", kind.descriptor)),
        "label": kind.label, "required": false, "description": null, "type": kind.type_de_champ,
    });
    if let Some(options) = options(kind) {
        descriptor["options"] = json!(options);
    }
    if kind.descriptor_type == "DropDownListChampDescriptor" {
        descriptor["otherOption"] = json!(false);
    }
    descriptor
}

/// The champs of [`CHAMPS`] then the annotations of [`ANNOTATIONS`], numbered after the others.
pub(super) fn champs(d: &mut Draft<'_>, seed: u64) -> (Vec<Value>, Vec<Value>) {
    let mut rng = Rng::new(mix(&[seed, 4, d.dossier.index]));
    let champs = CHAMPS.iter().map(|k| champ(d, &mut rng, k)).collect();
    let annotations = ANNOTATIONS.iter().map(|k| champ(d, &mut rng, k)).collect();
    (champs, annotations)
}

fn champ(d: &mut Draft<'_>, rng: &mut Rng, kind: &Kind) -> Value {
    let (string_value, typed) = value(d, rng, kind);
    let mut champ = d.champ(kind.champ, kind.label, kind.descriptor, json!(string_value));
    champ.extend(typed);
    Value::Object(champ)
}

/// A date in 2024 drawn from `rng`: (`YYYY-MM-DD`, DS's `%d %B %Y`).
fn date(rng: &mut Rng) -> (String, String) {
    let month = rng.range(1, 12);
    let day = rng.range(1, 28);
    let name = pick_month(month);
    (
        format!("2024-{month:02}-{day:02}"),
        format!("{day:02} {name} 2024"),
    )
}

fn pick_month(month: u64) -> &'static str {
    usize::try_from(month.saturating_sub(1))
        .ok()
        .and_then(|m| MONTHS.get(m))
        .copied()
        .unwrap_or_default()
}

/// The champ's `stringValue` and its typed fields.
fn value(d: &Draft<'_>, rng: &mut Rng, kind: &Kind) -> (String, Map<String, Value>) {
    let index = d.dossier.index;
    let typed = |pairs: Value| match pairs {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    match kind.descriptor {
        30 => {
            let texts = hostile_texts();
            let at = usize::try_from(index).unwrap_or_default() % texts.len();
            let text = texts.into_iter().nth(at).unwrap_or_default();
            (text.clone(), typed(json!({ "value": text })))
        }
        31 => {
            let text = format!("Première ligne.\nDeuxième ligne : « {index} ».");
            (text.clone(), typed(json!({ "value": text })))
        }
        32 => text(format!("contact{index}@example.org")),
        33 => text(format!(
            "06 12 34 {:02} {:02}",
            index % 100,
            rng.range(0, 99)
        )),
        34 | 25 => {
            let n = rng.range(0, 5000);
            (n.to_string(), typed(json!({ "value": n.to_string() })))
        }
        35 => {
            let cents = rng.range(0, 10_000_000);
            let amount = format!("{}.{:02}", cents / 100, cents % 100);
            let float = amount.parse::<f64>().unwrap_or_default();
            (amount, typed(json!({ "value": float })))
        }
        36 | 23 => {
            let (iso, text) = date(rng);
            let at = format!("{iso}T00:00:00+01:00");
            (text, typed(json!({ "date": iso, "value": at })))
        }
        37 => {
            let (iso, text) = date(rng);
            let hour = rng.range(8, 18);
            let at = format!("{iso}T{hour:02}:30:00+01:00");
            (
                format!("{text} {hour:02}:30"),
                typed(json!({ "datetime": at })),
            )
        }
        38 | 24 => {
            let choice = options(kind).and_then(|o| pick(rng, o)).unwrap_or_default();
            text(choice.to_owned())
        }
        39 => {
            let values: Vec<&str> = THEMES.iter().copied().filter(|_| rng.chance(50)).collect();
            (values.join(", "), typed(json!({ "values": values })))
        }
        40 | 22 => {
            let checked = rng.chance(70);
            let text = if checked { "Oui" } else { "Non" };
            (text.to_owned(), typed(json!({ "value": checked })))
        }
        41 => {
            let yes = rng.chance(50);
            let text = if yes { "Oui" } else { "Non" };
            (text.to_owned(), typed(json!({ "value": yes })))
        }
        42 => {
            let civilite = if index.is_multiple_of(2) { "Mme" } else { "M" };
            (civilite.to_owned(), typed(json!({ "value": civilite })))
        }
        43 => commune(rng),
        44 => {
            let siret = format!("{:014}", rng.next_u64() % 100_000_000_000_000);
            (siret, typed(json!({ "etablissement": null })))
        }
        _ => (String::new(), Map::new()),
    }
}

/// A `TextChamp`-shaped value (`value` = `stringValue`).
fn text(value: String) -> (String, Map<String, Value>) {
    let mut map = Map::new();
    map.insert("value".into(), json!(value));
    (value, map)
}

fn commune(rng: &mut Rng) -> (String, Map<String, Value>) {
    let (name, code, postal, dep_code, dep_name) =
        pick(rng, &COMMUNES).unwrap_or(("Paris", "75056", "75001", "75", "Paris"));
    let mut map = Map::new();
    map.insert(
        "commune".into(),
        json!({"__typename": "Commune", "name": name, "code": code, "postalCode": postal}),
    );
    map.insert(
        "departement".into(),
        json!({"__typename": "Departement", "code": dep_code, "name": dep_name}),
    );
    (format!("{name} ({postal})"), map)
}
