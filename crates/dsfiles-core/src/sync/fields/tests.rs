use super::{group, wanted};
use crate::ds::DossierFields;
use crate::extract::{DOSSIER_PLACEHOLDERS, Layout};

/// `(demarche, groupe, applicant, values, exchanges)`.
type Groups = (bool, bool, bool, bool, bool);

fn check(template: &str, data: bool, expected: Groups) {
    let layout = Layout::parse(template).unwrap();
    let f = wanted(&layout, data);
    let got = (f.demarche, f.groupe, f.applicant, f.values, f.exchanges);
    assert_eq!(got, expected, "{template} (data: {data})");
}

const NONE: Groups = (false, false, false, false, false);
const ALL: Groups = (true, true, true, true, true);

#[test]
fn file_layouts_without_dossier_json_ask_for_no_dossier_value() {
    check(Layout::DEFAULT, false, NONE);
    check("ds-export", false, NONE);
    check("{demarche}/{dossier}/{state}/{sha256}.{ext}", false, NONE);
    check(
        "{deposited:%Y-%m}/{updated}/{processed}/{filename}",
        false,
        NONE,
    );
}

#[test]
fn dossier_json_asks_for_everything() {
    check(Layout::DEFAULT, true, ALL);
    check("ds-export", true, ALL);
    check("{groupe}/{filename}", true, ALL);
}

#[test]
fn each_placeholder_asks_for_its_group() {
    check(
        "{demarche_title}/{filename}",
        false,
        (true, false, false, false, false),
    );
    check(
        "{service}/{filename}",
        false,
        (true, false, false, false, false),
    );
    check(
        "{groupe}/{filename}",
        false,
        (false, true, false, false, false),
    );
    for applicant in [
        "civilite",
        "nom",
        "prenom",
        "siren",
        "siret",
        "raison_sociale",
        "tva",
        "adresse",
        "demandeur",
    ] {
        let template = format!("{{{applicant}}}/{{filename}}");
        check(&template, false, (false, false, true, false, false));
    }
    check(
        "{champ:Nom}/{filename}",
        false,
        (false, false, false, true, false),
    );
    check(
        "{annotation:Suivi}/{filename}",
        false,
        (false, false, false, true, false),
    );
    check(
        "{groupe}/{nom}-{champ:Nom}/{deposited}/{filename}",
        false,
        (false, true, true, true, false),
    );
}

#[test]
fn every_dossier_placeholder_has_its_group() {
    for placeholder in DOSSIER_PLACEHOLDERS {
        let name = placeholder.split(':').next().unwrap_or(placeholder);
        assert!(group(name).is_some(), "`{name}` has no group");
        assert_ne!(group(name), Some(DossierFields::ALL), "{name}");
    }
    assert_eq!(group("a_future_placeholder"), None);
}
