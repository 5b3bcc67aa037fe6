//! The layout's dossier placeholders: values read from the dossier's [`DossierContext`]
//! (dates, démarche, groupe, applicant, champ and annotation values), as DS's export templates
//! offer them (`export_template.rb`, `tags_substitution_concern.rb`), plus champ values.
//!
//! Rules:
//! - A missing or empty value renders as `sans-{name}` (`sans-groupe`, `sans-siret`,
//!   `sans-deposited`, `sans-champ`): never an empty path component, and a reader sees what
//!   was missing. The value is then sanitized with the rest of its component by the layout.
//! - Dates (`{deposited}`, `{updated}`, `{processed}`) are DS's RFC 3339 instants shown in
//!   Europe/Paris time, `%Y-%m-%d` unless a strftime format follows a colon
//!   (`{deposited:%Y-%m}`). A format chrono cannot render is refused when the template is
//!   parsed, naming it. Paris time follows the IANA time zone database (`chrono-tz`'s
//!   `Europe/Paris`): UTC+1, UTC+2 in summer time, from the last Sunday of March 01:00 UTC to
//!   the last Sunday of October 01:00 UTC since 1996, and whatever the rules were before (or
//!   become, with a newer `chrono-tz`).
//! - `{champ:LABEL}` / `{annotation:LABEL}`: the `stringValue` of the first root champ
//!   (annotation) with exactly that label; a label no champ has renders the fallback.

use chrono::DateTime;
use chrono::format::{Item, StrftimeItems};
use chrono_tz::Europe::Paris;

use crate::{Applicant, DossierContext};

/// Every dossier placeholder, without braces (the dates also take `:FORMAT`, champs and
/// annotations `:LABEL`).
pub const DOSSIER_PLACEHOLDERS: [&str; 17] = [
    "deposited",
    "updated",
    "processed",
    "demarche_title",
    "service",
    "groupe",
    "civilite",
    "nom",
    "prenom",
    "siren",
    "siret",
    "raison_sociale",
    "tva",
    "adresse",
    "demandeur",
    "champ:LABEL",
    "annotation:LABEL",
];

/// A label a layout names: `{champ:LABEL}` or `{annotation:LABEL}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelRef<'a> {
    Champ(&'a str),
    Annotation(&'a str),
}

/// The default format of the dates.
const DEFAULT_DATE_FORMAT: &str = "%Y-%m-%d";

/// One dossier placeholder of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DossierPlaceholder {
    /// Its name as written (`deposited`, `champ`, …), for the fallback.
    name: &'static str,
    value: Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Date { which: DateField, format: String },
    Text(TextField),
    Champ(String),
    Annotation(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DateField {
    Deposited,
    Updated,
    Processed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TextField {
    DemarcheTitle,
    Service,
    Groupe,
    Civilite,
    Nom,
    Prenom,
    Siren,
    Siret,
    RaisonSociale,
    Tva,
    Adresse,
    Demandeur,
}

const TEXT_FIELDS: [(&str, TextField); 12] = [
    ("demarche_title", TextField::DemarcheTitle),
    ("service", TextField::Service),
    ("groupe", TextField::Groupe),
    ("civilite", TextField::Civilite),
    ("nom", TextField::Nom),
    ("prenom", TextField::Prenom),
    ("siren", TextField::Siren),
    ("siret", TextField::Siret),
    ("raison_sociale", TextField::RaisonSociale),
    ("tva", TextField::Tva),
    ("adresse", TextField::Adresse),
    ("demandeur", TextField::Demandeur),
];

impl DossierPlaceholder {
    /// The placeholder written `{text}`: `Ok(None)` when `text` names none of them, `Err`
    /// (the reason) when it does but its argument is wrong.
    pub(crate) fn parse(text: &str) -> Result<Option<DossierPlaceholder>, String> {
        let (name, arg) = match text.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (text, None),
        };
        let date = |which, name| date(which, name, arg);
        let parsed = match name {
            "deposited" => date(DateField::Deposited, "deposited")?,
            "updated" => date(DateField::Updated, "updated")?,
            "processed" => date(DateField::Processed, "processed")?,
            "champ" => labelled("champ", arg, Value::Champ)?,
            "annotation" => labelled("annotation", arg, Value::Annotation)?,
            _ => match TEXT_FIELDS.iter().find(|(n, _)| *n == name) {
                Some(_) if arg.is_some() => {
                    return Err(format!("`{{{name}}}` takes no `:` argument"));
                }
                Some((name, field)) => DossierPlaceholder {
                    name,
                    value: Value::Text(*field),
                },
                None => return Ok(None),
            },
        };
        Ok(Some(parsed))
    }

    /// Its name as written, without argument (`deposited`, `champ`, …).
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The champ label of `{champ:LABEL}` (`Champ`) or `{annotation:LABEL}` (`Annotation`).
    pub(crate) fn label(&self) -> Option<LabelRef<'_>> {
        match &self.value {
            Value::Champ(label) => Some(LabelRef::Champ(label)),
            Value::Annotation(label) => Some(LabelRef::Annotation(label)),
            _ => None,
        }
    }

    /// The value for the dossier of `context`, or the fallback (see the module doc).
    pub(crate) fn render(&self, context: Option<&DossierContext>) -> String {
        let value = context.and_then(|c| self.value(c));
        match value {
            Some(value) if !value.trim().is_empty() => value,
            _ => format!("sans-{}", self.name),
        }
    }

    fn value(&self, context: &DossierContext) -> Option<String> {
        let dossier = &context.dossier;
        match &self.value {
            Value::Date { which, format } => {
                let at = match which {
                    DateField::Deposited => &dossier.deposited_at,
                    DateField::Updated => &dossier.updated_at,
                    DateField::Processed => &dossier.processed_at,
                };
                paris_date(at.as_deref()?, format)
            }
            Value::Text(field) => text(*field, context),
            Value::Champ(label) => context.champ(label).flatten().map(str::to_owned),
            Value::Annotation(label) => context.annotation(label).flatten().map(str::to_owned),
        }
    }
}

fn date(
    which: DateField,
    name: &'static str,
    format: Option<&str>,
) -> Result<DossierPlaceholder, String> {
    let format = format.unwrap_or(DEFAULT_DATE_FORMAT);
    let bad = StrftimeItems::new(format).any(|item| matches!(item, Item::Error));
    if format.is_empty() || bad {
        return Err(format!(
            "`{{{name}:{format}}}`: `{format}` is not a strftime format (e.g. `%Y-%m`)"
        ));
    }
    Ok(DossierPlaceholder {
        name,
        value: Value::Date {
            which,
            format: format.to_owned(),
        },
    })
}

fn labelled(
    name: &'static str,
    label: Option<&str>,
    value: fn(String) -> Value,
) -> Result<DossierPlaceholder, String> {
    match label {
        Some(label) if !label.trim().is_empty() => Ok(DossierPlaceholder {
            name,
            value: value(label.to_owned()),
        }),
        _ => Err(format!(
            "`{{{name}:LABEL}}` needs the champ's label after `:`"
        )),
    }
}

fn text(field: TextField, context: &DossierContext) -> Option<String> {
    let (person, company) = match &context.applicant {
        Some(Applicant::Person {
            civilite,
            nom,
            prenom,
        }) => (Some((civilite, nom, prenom)), None),
        Some(Applicant::Company {
            siret,
            siren,
            raison_sociale,
            tva,
            adresse,
        }) => (None, Some((siret, siren, raison_sociale, tva, adresse))),
        None => (None, None),
    };
    match field {
        TextField::DemarcheTitle => Some(context.demarche.title.clone()),
        TextField::Service => context.demarche.service.clone(),
        TextField::Groupe => (context.dossier.groupe_instructeur.as_ref()).map(|g| g.label.clone()),
        TextField::Civilite => person.and_then(|p| p.0.clone()),
        TextField::Nom => person.map(|p| p.1.clone()),
        TextField::Prenom => person.map(|p| p.2.clone()),
        TextField::Siret => company.map(|c| c.0.clone()),
        TextField::Siren => company.and_then(|c| c.1.clone()),
        TextField::RaisonSociale => company.and_then(|c| c.2.clone()),
        TextField::Tva => company.and_then(|c| c.3.clone()),
        TextField::Adresse => company.and_then(|c| c.4.clone()),
        TextField::Demandeur => context.applicant.as_ref().map(Applicant::display_name),
    }
}

/// `at` (RFC 3339) in Europe/Paris time, formatted; `None` when DS's date does not parse.
fn paris_date(at: &str, format: &str) -> Option<String> {
    let instant = DateTime::parse_from_rfc3339(at).ok()?;
    Some(instant.with_timezone(&Paris).format(format).to_string())
}

#[cfg(test)]
mod tests;
