use dsfiles_extract::{Include, Source};

use crate::{ALL, DEMARCHE, load, records};

/// One line per record: `file_id "label" "filename" byte_size virus_scan`.
#[track_caller]
fn check(fixture: &str, include: Include, expected: &str) {
    let got: Vec<String> = records(fixture, include)
        .iter()
        .map(|r| {
            format!(
                "{} {:?} {:?} {} {}",
                r.file_id(),
                r.label,
                r.filename,
                r.byte_size,
                r.virus_scan
            )
        })
        .collect();
    assert_eq!(
        got.join("\n"),
        expected.trim(),
        "{fixture} with {include:?}"
    );
}

#[test]
fn every_source() {
    check(
        "complete.json",
        ALL,
        r#"
1001/champ/Q2hhbXAtMg==/-/0 "Pièce d'identité" "identite.pdf" 204800 safe
1001/champ/Q2hhbXAtMg==/-/1 "Pièce d'identité" "identite.pdf" 198000 safe
1001/champ/Q2hhbXAtNg==/0/0 "Justificatif associé" "kbis.pdf" 1024 safe
1001/champ/Q2hhbXAtNg==/2/0 "Justificatif associé" "statuts.pdf" 1024 safe
1001/champ/Q2hhbXAtNg==/2/1 "Justificatif associé" "annexe.pdf" 77 safe
1001/champ/Q2hhbXAtOA==/-/0 "Vidéo de présentation" "presentation.mp4" 3221225472 safe
1001/entreprise/Q2hhbXAtOQ==/-/0 "attestation fiscale 41816609600069" "attestation_fiscale.pdf" 1024 safe
1001/champ/Q2hhbXAtMTM=/-/0 "Type futur avec des fichiers" "passeport.jpg" 5000 safe
1001/annotation/Q2hhbXAtMjA=/-/0 "Rapport d'instruction" "rapport.docx" 4096 safe
1001/annotation/Q2hhbXAtMjI=/0/0 "Photo" "photo.jpg" 2048 safe
1001/message/Q29tbWVudGFpcmUtMQ==/-/0 "message" "courrier.pdf" 1024 safe
1001/message/Q29tbWVudGFpcmUtMQ==/-/1 "message" "annexe.pdf" 1024 pending
1001/message/Q29tbWVudGFpcmUtMw==/-/0 "message" "réponse.odt" 1024 safe
1001/avis/QXZpcy0x/-/0 "avis" "avis-expert.pdf" 1024 safe
1001/attestation/-/-/0 "attestation" "attestation.pdf" 1024 safe
1001/motivation/-/-/0 "motivation" "motivation.pdf" 1024 safe
1001/entreprise/-/-/0 "attestation fiscale 13002526500013" "attestation_fiscale.pdf" 1024 safe
1001/entreprise/-/-/1 "attestation sociale 13002526500013" "attestation_sociale.pdf" 1024 safe
1001/pdf/-/-/0 "dossier" "dossier-1001.pdf" 0 safe
1001/geojson/-/-/0 "geojson" "dossier_1001.geojson" 0 safe
"#,
    );
}

#[test]
fn optional_sources_are_off_by_default() {
    check(
        "complete.json",
        Include::default(),
        r#"
1001/champ/Q2hhbXAtMg==/-/0 "Pièce d'identité" "identite.pdf" 204800 safe
1001/champ/Q2hhbXAtMg==/-/1 "Pièce d'identité" "identite.pdf" 198000 safe
1001/champ/Q2hhbXAtNg==/0/0 "Justificatif associé" "kbis.pdf" 1024 safe
1001/champ/Q2hhbXAtNg==/2/0 "Justificatif associé" "statuts.pdf" 1024 safe
1001/champ/Q2hhbXAtNg==/2/1 "Justificatif associé" "annexe.pdf" 77 safe
1001/champ/Q2hhbXAtOA==/-/0 "Vidéo de présentation" "presentation.mp4" 3221225472 safe
1001/champ/Q2hhbXAtMTM=/-/0 "Type futur avec des fichiers" "passeport.jpg" 5000 safe
1001/annotation/Q2hhbXAtMjA=/-/0 "Rapport d'instruction" "rapport.docx" 4096 safe
1001/annotation/Q2hhbXAtMjI=/0/0 "Photo" "photo.jpg" 2048 safe
1001/message/Q29tbWVudGFpcmUtMQ==/-/0 "message" "courrier.pdf" 1024 safe
1001/message/Q29tbWVudGFpcmUtMQ==/-/1 "message" "annexe.pdf" 1024 pending
1001/message/Q29tbWVudGFpcmUtMw==/-/0 "message" "réponse.odt" 1024 safe
1001/avis/QXZpcy0x/-/0 "avis" "avis-expert.pdf" 1024 safe
1001/attestation/-/-/0 "attestation" "attestation.pdf" 1024 safe
1001/motivation/-/-/0 "motivation" "motivation.pdf" 1024 safe
"#,
    );
}

#[test]
fn generated_only() {
    let got = records(
        "complete.json",
        Include {
            generated: true,
            entreprise: false,
        },
    );
    let generated: Vec<_> = got.iter().filter(|r| !r.verifiable()).collect();
    assert_eq!(generated.len(), 2);
    for r in generated {
        assert!(matches!(r.source, Source::Pdf | Source::Geojson));
        assert_eq!((r.checksum.as_str(), r.byte_size), ("", 0));
    }
    assert!(got.iter().all(|r| r.source != Source::Entreprise));
}

#[test]
fn deprecated_copies_are_never_counted_twice() {
    check(
        "deprecated.json",
        ALL,
        r#"
1002/champ/Q2hhbXAtMzA=/-/0 "Both files and file" "un.pdf" 1024 safe
1002/champ/Q2hhbXAtMzA=/-/1 "Both files and file" "deux.pdf" 1024 safe
1002/champ/Q2hhbXAtMzE=/-/0 "Only file" "seul.pdf" 1024 safe
1002/champ/Q2hhbXAtMzI=/-/0 "Files null, file set" "fallback.pdf" 1024 safe
1002/champ/Q2hhbXAtMzM=/-/0 "Big file" "archive.zip" 3221225472 safe
1002/champ/Q2hhbXAtMzQ=/-/0 "Size as a JSON number" "nombre.pdf" 12345 safe
1002/champ/Q2hhbXAtMzc=/0/0 "In row" "ligne.pdf" 1024 safe
1002/champ/Q2hhbXAtMzk=/-/0 "Flat" "plat.pdf" 1024 safe
1002/message/Q29tbWVudGFpcmUtMTA=/-/0 "message" "piece.pdf" 1024 safe
1002/message/Q29tbWVudGFpcmUtMTE=/-/0 "message" "ancien.pdf" 1024 safe
1002/avis/QXZpcy0xMQ==/-/0 "avis" "a.pdf" 1024 safe
1002/avis/QXZpcy0xMQ==/-/1 "avis" "b.pdf" 1024 safe
"#,
    );
}

#[test]
fn a_dossier_without_files() {
    check("empty.json", ALL, "");
}

#[test]
fn linked_dossiers_are_not_followed() {
    let got = records("complete.json", ALL);
    assert!(got.iter().all(|r| r.dossier == 1001));
    assert!(
        !got.iter()
            .any(|r| r.filename.contains("autre-dossier") || r.filename.contains("999"))
    );
}

#[test]
fn hostile_names_are_kept_verbatim_in_records() {
    let dossier = load("hostile.json");
    let got = records("hostile.json", ALL);
    let expected: Vec<&str> = dossier["champs"][0]["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter_map(|f| f["filename"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(expected.len(), 17);
    let names: Vec<&str> = got.iter().take(17).map(|r| r.filename.as_str()).collect();
    assert_eq!(names, expected);
    assert!(names.contains(&"bad\0name.pdf"));
    assert!(names.contains(&"e\u{301}te\u{301}.pdf"));
    assert_eq!(got.len(), 20);
}

#[test]
fn records_carry_every_field() {
    let got = records("complete.json", ALL);
    let video = got.iter().find(|r| r.filename == "presentation.mp4");
    let json = video.map(|r| serde_json::to_value(r).unwrap_or_default());
    let expected = serde_json::json!({
        "demarche": DEMARCHE,
        "dossier": 1001,
        "state": "en_instruction",
        "source": "champ",
        "champ_id": "Q2hhbXAtOA==",
        "label": "Vidéo de présentation",
        "row": null,
        "index": 0,
        "filename": "presentation.mp4",
        "content_type": "video/mp4",
        "byte_size": 3_221_225_472_u64,
        "checksum": "0sdZqtyg01LTEhGhezArqA==",
        "url": "https://storage.example.invalid/blobs/6?X-Amz-Expires=3600&X-Amz-Signature=sig6",
        "virus_scan": "safe",
        "created_at": "2024-03-07T10:00:00+01:00",
    });
    assert_eq!(json, Some(expected));
}

#[test]
fn file_ids_are_unique_within_a_dossier() {
    for fixture in ["complete.json", "deprecated.json", "hostile.json"] {
        let got = records(fixture, ALL);
        let ids: std::collections::HashSet<String> = got.iter().map(|r| r.file_id()).collect();
        assert_eq!(ids.len(), got.len(), "{fixture}");
    }
}

#[test]
fn extraction_is_deterministic() {
    assert_eq!(records("complete.json", ALL), records("complete.json", ALL));
}
