//! Which of a dossier's values a run asks DS for ([`ds::DossierFields`], the `$include…`
//! variables of the dossier queries): only what the run uses.
//!
//! Rules, a pure function of the layout and whether dossier.json is written:
//! - dossier.json written → every group (it records them all);
//! - otherwise each dossier placeholder of the layout asks for its group: `{demarche_title}`
//!   `{service}` → démarche; `{groupe}` → groupe; `{civilite}` `{nom}` `{prenom}` `{siren}`
//!   `{siret}` `{raison_sociale}` `{tva}` `{adresse}` `{demandeur}` → applicant;
//!   `{champ:…}` `{annotation:…}` → values; the dates `{deposited}` `{updated}` `{processed}`
//!   → none (dates are always selected: a few bytes, and `dateDerniereModification` decides
//!   what is downloaded again);
//! - exchanges (message bodies, avis texts, the motivation) are read by dossier.json alone;
//! - a placeholder this table does not know → every group: a placeholder added to the layout
//!   later must never render its `sans-…` fallback because its value was not asked for (a
//!   test walks [`extract::DOSSIER_PLACEHOLDERS`]).
//!
//! Files, and what names them (labels, ids, dates, states), are selected whatever this says.

use crate::{ds, extract};

use ds::DossierFields;

/// The groups a run of `layout` needs, `data` saying whether it writes dossier.json.
pub(super) fn wanted(layout: &extract::Layout, data: bool) -> DossierFields {
    if data {
        return DossierFields::ALL;
    }
    let needs = layout.dossier_placeholders().into_iter().map(group);
    needs.fold(DossierFields::NONE, |acc, one| {
        union(acc, one.unwrap_or(DossierFields::ALL))
    })
}

/// The group dossier placeholder `name` reads; `None` for a name this table does not know.
fn group(name: &str) -> Option<DossierFields> {
    let none = DossierFields::NONE;
    Some(match name {
        "deposited" | "updated" | "processed" => none,
        "demarche_title" | "service" => DossierFields {
            demarche: true,
            ..none
        },
        "groupe" => DossierFields {
            groupe: true,
            ..none
        },
        "civilite" | "nom" | "prenom" | "siren" | "siret" | "raison_sociale" | "tva"
        | "adresse" | "demandeur" => DossierFields {
            applicant: true,
            ..none
        },
        "champ" | "annotation" => DossierFields {
            values: true,
            ..none
        },
        _ => return None,
    })
}

fn union(a: DossierFields, b: DossierFields) -> DossierFields {
    DossierFields {
        demarche: a.demarche || b.demarche,
        groupe: a.groupe || b.groupe,
        applicant: a.applicant || b.applicant,
        values: a.values || b.values,
        exchanges: a.exchanges || b.exchanges,
    }
}

#[cfg(test)]
mod tests;
