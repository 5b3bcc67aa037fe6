//! The dossier context of the fixtures, as `dossier.json` serializes it.

use dsfiles_extract::context;
use serde_json::json;

use crate::{DEMARCHE, load};

#[track_caller]
fn check(fixture: &str, expected: serde_json::Value) {
    let got = context(DEMARCHE, &load(fixture)).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    let got = serde_json::to_value(&got).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, expected, "{fixture}:\n{got:#}");
}

#[test]
fn everything_ds_says_about_a_dossier() {
    let champ = |id: &str, label: &str, ty: &str, value: Option<&str>| json!({"id": id, "label": label, "type": ty, "value": value, "rows": null});
    let rows = json!([
        {"champs": [champ("Q2hhbXAtNg==", "Nom du bénéficiaire", "TextChamp", Some("Alice"))]},
        {"champs": [champ("Q2hhbXAtNw==", "Nom du bénéficiaire", "TextChamp", Some("Bob"))]},
    ]);
    check(
        "context.json",
        json!({
            "demarche": {"number": 4242, "title": "Subvention \"vie associative\" / 2024",
                         "service": "Service des associations", "revision": "UHJvY2VkdXJlUmV2aXNpb24tMQ=="},
            "dossier": {"number": 100004, "id": "RG9zc2llci0xMDAwMDQ=", "state": "accepte",
                        "groupe_instructeur": {"number": 42421, "label": "Région ../Nord"},
                        "deposited_at": "2024-03-01T09:00:00+01:00", "updated_at": "2024-03-20T18:30:00+01:00",
                        "instruction_started_at": "2024-03-02T10:00:00+01:00",
                        "processed_at": "2024-03-04T11:00:00+01:00"},
            "applicant": {"kind": "person", "civilite": "Mme", "nom": "Dupont/Durand", "prenom": "Zoé\u{7}"},
            "champs": [
                champ("Q2hhbXAtMQ==", "Nom du projet", "TextChamp", Some("Jardins ../../partagés")),
                champ("Q2hhbXAtMg==", "Date de début", "DateChamp", Some("1 avril 2024")),
                champ("Q2hhbXAtMw==", "Commentaire", "TextChamp", None),
                champ("Q2hhbXAtNA==", "Statuts", "PieceJustificativeChamp", Some("statuts.pdf")),
                {"id": "Q2hhbXAtNQ==", "label": "Bénéficiaires", "type": "RepetitionChamp",
                 "value": "Alice, Bob", "rows": rows},
            ],
            "annotations": [champ("Q2hhbXAtOA==", "Dossier prioritaire", "CheckboxChamp", Some("Oui"))],
            "messages": [{"id": "Q29tbWVudGFpcmUtMQ==", "created_at": "2024-03-01T09:05:00+01:00",
                          "sender": "contact@example.gouv.fr", "body": "Bonjour, votre dossier a bien été reçu."}],
            "avis": [{"id": "QXZpcy0x", "question": "Quel est votre avis ?", "answer": null,
                      "expert": "expert@example.org", "created_at": "2024-03-03T09:00:00+01:00"}],
            "decision": {"motivation": "Dossier complet.\nAccord donné.", "processed_at": "2024-03-04T11:00:00+01:00"},
        }),
    );
}

#[test]
fn no_url_is_read_into_the_context() {
    for fixture in [
        "complete.json",
        "context.json",
        "hostile.json",
        "deprecated.json",
    ] {
        let got = context(DEMARCHE, &load(fixture)).unwrap_or_else(|e| panic!("{fixture}: {e}"));
        let text = serde_json::to_string(&got).unwrap_or_else(|e| panic!("{e}"));
        assert!(!text.contains("://"), "{fixture}: {text}");
        assert!(!text.contains("Signature"), "{fixture}: {text}");
    }
}

#[test]
fn the_context_round_trips_through_json() {
    let got = context(DEMARCHE, &load("context.json")).unwrap_or_else(|e| panic!("{e}"));
    let text = serde_json::to_string(&got).unwrap_or_else(|e| panic!("{e}"));
    let back: dsfiles_extract::DossierContext =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, got);
}
