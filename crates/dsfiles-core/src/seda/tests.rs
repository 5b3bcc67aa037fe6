use chrono::{DateTime, TimeZone as _, Utc};

use super::format::identify;
use super::manifest::{self, DataObject, ManifestInput, Role, xml_text};
use super::*;
use crate::extract::Source;
use crate::wire::DossierData;

/// Validates `xml` against SEDA 2.2 (see [`crate::testing::assert_valid_seda`]).
pub(crate) fn validate(xml: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.xml");
    std::fs::write(&path, xml).unwrap();
    crate::testing::assert_valid_seda(&path);
}

fn profile(extra: &str) -> Profile {
    let text = format!(
        "archival_agreement = \"AA-DS\"\narchival_agency = \"AD-75\"\n\
         transferring_agency = \"PREF-75\"\noriginating_agency = \"DDT-75\"\n{extra}"
    );
    Profile::from_toml(&text, "profile.toml").unwrap()
}

fn date() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, 14, 0, 0).unwrap()
}

fn object(source: Source, label: &str, filename: &str, size: u64, mime: &str) -> DataObject {
    DataObject {
        role: Role::File {
            source,
            label: label.to_owned(),
        },
        uri: format!("Content/100004/{}/{filename}", source.as_str()),
        digest: "ab".repeat(64),
        size,
        content_type: mime.to_owned(),
        filename: filename.to_owned(),
        last_modified: Some(date()),
    }
}

const CONTEXT: &str = r#"{
  "version": 1,
  "demarche": { "number": 1, "title": "Subvention <associations> & clubs", "service": "DDT 75", "revision": null },
  "dossier": { "number": 100004, "id": "RG9zc2llci0xMDAwMDQ=", "state": "accepte",
    "groupe_instructeur": null, "deposited_at": "2026-01-02T10:00:00+01:00",
    "updated_at": null, "instruction_started_at": null, "processed_at": "2026-03-04T16:30:00.123+01:00" },
  "applicant": { "kind": "person", "civilite": "Mme", "nom": "Durand", "prenom": "Zoé" },
  "champs": [
    { "id": "c1", "label": "Pièce d'identité", "type": "PieceJustificativeChamp", "value": "id.pdf", "rows": null },
    { "id": "c2", "label": "Membres", "type": "RepetitionChamp", "value": null, "rows": [
      { "champs": [ { "id": "c3", "label": "Statuts", "type": "PieceJustificativeChamp", "value": "s\u0000.pdf", "rows": null } ] }
    ] }
  ],
  "annotations": [ { "id": "a1", "label": "Note", "type": "TextChamp", "value": "ok", "rows": null } ],
  "messages": [ { "id": "m1", "created_at": "2026-02-01T09:00:00+01:00", "sender": "zoe@example.org", "body": "Voici les statuts" } ],
  "avis": [ { "id": "v1", "question": "Avis ?", "answer": "Favorable", "expert": "expert@example.org", "created_at": "not a date" } ],
  "decision": { "motivation": "Conforme", "processed_at": "2026-03-04T16:30:00+01:00" },
  "files": []
}"#;

fn render(input: &ManifestInput<'_>) -> String {
    let mut xml = Vec::new();
    manifest::write(input, &mut xml).unwrap();
    validate(&xml);
    String::from_utf8(xml).unwrap()
}

#[test]
fn manifest_with_dossier_json_is_valid_and_stable() {
    let context = DossierData::parse(CONTEXT.as_bytes()).unwrap().context;
    let profile = profile(
        "submission_agency = \"DS\"\n[appraisal]\nrule = \"APP-10\"\nfinal_action = \"Keep\"\n\
         [access]\nrule = \"ACC-25\"\nstart_date = \"depot\"\n",
    );
    let mut json = object(Source::Pdf, "", "dossier.json", 10, "application/json");
    json.role = Role::DossierJson;
    let objects = vec![
        json,
        object(
            Source::Pdf,
            "dossier",
            "dossier.pdf",
            2048,
            "application/pdf",
        ),
        object(
            Source::Champ,
            "Pièce d'identité",
            "id.pdf",
            1234,
            "application/pdf",
        ),
        object(Source::Champ, "Statuts", "s\u{0}<&>\".docx", 0, ""),
        object(
            Source::Message,
            "message",
            "photo.JPG",
            99,
            "application/octet-stream",
        ),
        object(
            Source::Avis,
            "avis",
            "avis.odt",
            5,
            "application/vnd.oasis.opendocument.text",
        ),
        object(
            Source::Motivation,
            "motivation",
            "decision.pdf",
            7,
            "application/pdf; q=1",
        ),
        object(
            Source::Geojson,
            "carte",
            "carte.geojson",
            8,
            "application/geo+json",
        ),
    ];
    let input = ManifestInput {
        profile: &profile,
        message_id: "dsfiles-1-100004-v1-0123456789abcdef",
        date: date(),
        demarche: 1,
        dossier: 100004,
        state: "accepte",
        context: Some(&context),
        objects: &objects,
    };
    insta::assert_snapshot!(render(&input));
}

#[test]
fn manifest_from_the_shard_alone_is_valid() {
    let profile = profile("digest = \"SHA-256\"\npackage_name = \"ds-{demarche}-{dossier}\"\n");
    let mut objects = vec![
        object(Source::Champ, "Justificatif", "a.pdf", 3, "application/pdf"),
        object(Source::Champ, "Justificatif", "b.png", 4, "image/png"),
        object(Source::Annotation, "Rapport", "r.xlsx", 0, ""),
        object(
            Source::Attestation,
            "attestation",
            "att.pdf",
            9,
            "application/pdf",
        ),
    ];
    objects[0].digest = "cd".repeat(32);
    let input = ManifestInput {
        profile: &profile,
        message_id: "m-1",
        date: date(),
        demarche: 7,
        dossier: 42,
        state: "sans_suite",
        context: None,
        objects: &objects,
    };
    let xml = render(&input);
    assert!(
        xml.contains("<Title>Dossier 42 — démarche 7</Title>"),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<MessageDigest algorithm="SHA-256">"#),
        "{xml}"
    );
    assert!(!xml.contains("<Sender>"), "{xml}");
}

#[test]
fn company_applicant_and_empty_package_are_valid() {
    let context = CONTEXT.replace(
        r#"{ "kind": "person", "civilite": "Mme", "nom": "Durand", "prenom": "Zoé" }"#,
        r#"{ "kind": "company", "siret": "12345678900011", "siren": null, "raison_sociale": null, "tva": null, "adresse": null }"#,
    );
    let context = DossierData::parse(context.as_bytes()).unwrap().context;
    let profile = profile(
        "[appraisal]\nrule = \"APP-1\"\nstart_date = \"none\"\nfinal_action = \"Destroy\"\n",
    );
    let input = ManifestInput {
        profile: &profile,
        message_id: "m-2",
        date: date(),
        demarche: 1,
        dossier: 100004,
        state: "refuse",
        context: Some(&context),
        objects: &[],
    };
    let xml = render(&input);
    assert!(xml.contains("<Corpname>12345678900011</Corpname>"), "{xml}");
    assert!(xml.contains("<FinalAction>Destroy</FinalAction>"), "{xml}");
}

#[test]
fn xml_text_replaces_what_xml_cannot_carry() {
    for (input, expected) in [
        ("plain é 🦀", "plain é 🦀"),
        ("tab\tnl\ncr\r", "tab\tnl\ncr\r"),
        ("nul\u{0}bell\u{7}", "nul\u{FFFD}bell\u{FFFD}"),
        ("\u{FFFE}\u{FFFF}", "\u{FFFD}\u{FFFD}"),
    ] {
        assert_eq!(xml_text(input), expected, "{input:?}");
    }
}

#[test]
fn formats_by_mime_then_extension() {
    for (mime, filename, expected_mime, puid) in [
        (
            "application/pdf",
            "x.bin",
            Some("application/pdf"),
            Some("fmt/276"),
        ),
        (
            "Application/PDF; charset=binary",
            "x",
            Some("application/pdf"),
            Some("fmt/276"),
        ),
        (
            "application/octet-stream",
            "scan.JPEG",
            Some("image/jpeg"),
            Some("fmt/43"),
        ),
        ("", "notes.txt", Some("text/plain"), Some("x-fmt/111")),
        ("", "archive", None, None),
        (
            "application/octet-stream",
            "archive",
            Some("application/octet-stream"),
            None,
        ),
        ("image/png", "x.jpg", Some("image/png"), Some("fmt/11")),
        ("text/xml", "x", Some("text/xml"), Some("fmt/101")),
        (
            "application/x-custom",
            "x.pdf",
            Some("application/x-custom"),
            None,
        ),
        (
            "not a mime",
            "x.docx",
            Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            Some("fmt/412"),
        ),
    ] {
        let id = identify(mime, filename);
        assert_eq!(id.mime.as_deref(), expected_mime, "{mime} {filename}");
        assert_eq!(id.format.map(|f| f.puid), puid, "{mime} {filename}");
    }
}

#[test]
fn profile_errors_name_the_key() {
    let base = "archival_agreement = \"A\"\narchival_agency = \"B\"\n\
                transferring_agency = \"C\"\noriginating_agency = \"D\"\n";
    for (text, expected) in [
        ("archival_agency = \"B\"\n".to_owned(), "archival_agreement"),
        (format!("{base}unknown = 1\n"), "unknown"),
        (format!("{base}digest = \"MD5\"\n"), "MD5"),
        (
            base.replace("\"C\"", "\" \""),
            "`transferring_agency` is empty",
        ),
        (
            format!("{base}package_name = \"{{nope}}\"\n"),
            "unknown placeholder `{nope}`",
        ),
        (format!("{base}package_name = \"{{dossier\"\n"), "unclosed"),
        (format!("{base}[appraisal]\nrule = \"R\"\n"), "final_action"),
        (
            format!("{base}[appraisal]\nrule = \"R\"\nfinal_action = \"Burn\"\n"),
            "Burn",
        ),
        (
            format!("{base}[access]\nrule = \"R\"\nextra = 1\n"),
            "extra",
        ),
    ] {
        let err = Profile::from_toml(&text, "p.toml").unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
        assert!(err.contains("`p.toml`"), "{err}");
    }
    let ok = Profile::from_toml(base, "p.toml").unwrap();
    assert_eq!(ok.digest, DigestAlgorithm::Sha512);
    assert_eq!(ok.package_name, DEFAULT_PACKAGE_NAME);
}

/// The JSON form takes the same keys and checks, and names the key at fault.
#[test]
fn json_profiles_are_checked_like_toml_ones() {
    let base = serde_json::json!({"archival_agreement": "A", "archival_agency": "B",
        "transferring_agency": "C", "originating_agency": "D"});
    let with = |key: &str, value: serde_json::Value| {
        let mut v = base.clone();
        v[key] = value;
        v
    };
    for (value, expected) in [
        (with("colour", "blue".into()), "unknown field `colour`"),
        (
            with("transferring_agency", " ".into()),
            "`transferring_agency` is empty",
        ),
        (with("digest", "MD5".into()), "MD5"),
        (
            with("package_name", "{nope}".into()),
            "unknown placeholder `{nope}`",
        ),
        (
            with("access", serde_json::json!({"rule": "R", "x": 1})),
            "unknown field `x`",
        ),
        (
            serde_json::json!({"archival_agency": "B"}),
            "archival_agreement",
        ),
        (serde_json::json!("a string"), "expected struct Profile"),
    ] {
        let err = Profile::from_json(value.clone(), "profile")
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{value}: {err}");
    }
    let ok = Profile::from_json(base, "profile").unwrap();
    assert_eq!(ok, Profile::from_toml("archival_agreement = \"A\"\narchival_agency = \"B\"\ntransferring_agency = \"C\"\noriginating_agency = \"D\"\n", "p").unwrap());
}

#[test]
fn package_names_are_one_safe_segment() {
    for (template, expected) in [
        ("{dossier}", "100004"),
        ("ds-{demarche}-{dossier}-{state}", "ds-1-100004-accepte"),
        ("../{dossier}/x y", "_._100004_x_y"),
        (".hidden", "_hidden"),
        ("", "100004"),
        ("é", "_"),
    ] {
        assert_eq!(
            package_name(template, 100004, 1, "accepte"),
            expected,
            "{template}"
        );
    }
}

#[test]
fn states_are_checked() {
    let mut opts = SedaOptions::new(profile(""));
    assert!(opts.validate().is_ok());
    opts.states = vec!["accepted".into()];
    assert!(
        opts.validate()
            .unwrap_err()
            .to_string()
            .contains("`accepted`")
    );
    opts.states.clear();
    assert!(opts.validate().is_err());
}
