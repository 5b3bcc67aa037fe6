use serde_json::{Value, json};

use super::*;

#[track_caller]
fn check_applicant(demandeur: Value, expected: Option<Applicant>) {
    let dossier = json!({"number": 7, "state": "en_construction", "demandeur": demandeur});
    let got = context(1, &dossier).map(|c| c.applicant);
    assert_eq!(got.ok().flatten(), expected);
}

fn company(siret: &str) -> Applicant {
    Applicant::Company {
        siret: siret.to_owned(),
        siren: None,
        raison_sociale: None,
        tva: None,
        adresse: None,
    }
}

fn person(nom: &str, prenom: &str) -> Applicant {
    Applicant::Person {
        civilite: None,
        nom: nom.to_owned(),
        prenom: prenom.to_owned(),
    }
}

#[test]
fn applicants_of_every_type() {
    check_applicant(
        json!({"__typename": "PersonnePhysique", "civilite": "M", "nom": "Martin", "prenom": "Léo"}),
        Some(Applicant::Person {
            civilite: Some("M".into()),
            nom: "Martin".into(),
            prenom: "Léo".into(),
        }),
    );
    check_applicant(
        json!({"__typename": "PersonneMorale", "siret": "13002526500013",
               "address": {"label": "1 rue de la Paix 75002 Paris"},
               "entreprise": {"siren": "130025265", "raisonSociale": "ACME", "numeroTvaIntracommunautaire": "FR12130025265"}}),
        Some(Applicant::Company {
            siret: "13002526500013".into(),
            siren: Some("130025265".into()),
            raison_sociale: Some("ACME".into()),
            tva: Some("FR12130025265".into()),
            adresse: Some("1 rue de la Paix 75002 Paris".into()),
        }),
    );
    check_applicant(
        json!({"__typename": "PersonneMoraleIncomplete", "siret": "13002526500013"}),
        Some(company("13002526500013")),
    );
    // Selected without its fields (a query that asked only for the attestations).
    check_applicant(json!({"__typename": "PersonneMorale"}), None);
    check_applicant(
        json!({"__typename": "PersonnePhysique"}),
        Some(person("", "")),
    );
    check_applicant(json!({"nom": "Martin"}), Some(person("Martin", "")));
    check_applicant(Value::Null, None);
}

#[test]
fn display_names() {
    assert_eq!(person("Martin", "Léo").display_name(), "Martin Léo");
    assert_eq!(person("", "Léo").display_name(), "Léo");
    assert_eq!(company("130").display_name(), "130");
    let named = Applicant::Company {
        siret: "130".into(),
        siren: None,
        raison_sociale: Some("ACME".into()),
        tva: None,
        adresse: None,
    };
    assert_eq!(named.display_name(), "ACME");
}

#[test]
fn a_minimal_dossier_has_an_empty_context() {
    let got = context(9, &json!({"number": 7, "state": "EnConstruction"}));
    let got = got.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.demarche.number, 9);
    assert_eq!(got.demarche.title, "");
    assert_eq!(got.dossier.state, "en_construction");
    assert_eq!(got.dossier.deposited_at, None);
    assert_eq!(got.decision, None);
    assert!(got.champs.is_empty() && got.messages.is_empty() && got.avis.is_empty());
}

#[track_caller]
fn check_error(dossier: Value, expected: &str) {
    match context(1, &dossier) {
        Ok(got) => panic!("expected an error, got {got:?}"),
        Err(e) => assert_eq!(e.to_string(), expected),
    }
}

#[test]
fn a_value_of_the_wrong_type_is_an_error_naming_its_path() {
    check_error(
        json!({"number": 7, "champs": [{"label": "A", "stringValue": 3}]}),
        "dossier `7`: invalid data at `champs[0].stringValue`: invalid type: integer `3`, expected a string",
    );
    check_error(
        json!({"number": 7, "groupeInstructeur": {"number": "deux"}}),
        "dossier `7`: invalid data at `groupeInstructeur.number`: invalid type: string \"deux\", expected u64",
    );
    check_error(
        json!({"state": "accepte"}),
        "dossier JSON has no valid `number` (field absent)",
    );
}

#[test]
fn champ_lookup_takes_the_first_root_champ_with_the_label() {
    let dossier = json!({"number": 7, "champs": [
        {"__typename": "RepetitionChamp", "id": "r", "label": "Rep", "stringValue": null,
         "rows": [{"champs": [{"__typename": "TextChamp", "id": "n", "label": "Nom", "stringValue": "dans la ligne"}]}]},
        {"__typename": "TextChamp", "id": "a", "label": "Nom", "stringValue": "premier"},
        {"__typename": "TextChamp", "id": "b", "label": "Nom", "stringValue": "second"},
        {"__typename": "TextChamp", "id": "c", "label": "Vide", "stringValue": null},
    ]});
    let got = context(1, &dossier).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.champ("Nom"), Some(Some("premier")));
    assert_eq!(got.champ("Vide"), Some(None));
    assert_eq!(got.champ("Absent"), None);
    assert_eq!(got.annotation("Nom"), None);
}
