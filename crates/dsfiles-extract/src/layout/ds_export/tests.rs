use super::*;
use crate::{KeyAllocator, Layout, MAX_COMPONENT_BYTES, RelKey};

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn record(source: Source) -> FileRecord {
    FileRecord {
        demarche: 7,
        dossier: 1234,
        state: "accepte".to_owned(),
        source,
        champ_id: Some(b64("Champ-42")),
        label: "Pièce justificative".to_owned(),
        row: None,
        index: 0,
        filename: "statuts.pdf".to_owned(),
        content_type: "application/pdf".to_owned(),
        byte_size: 3,
        checksum: "rL0Y20zC+Fzt72VPzMSk2A==".to_owned(),
        url: "https://files.example/x?sig=secret".to_owned(),
        virus_scan: "safe".to_owned(),
        created_at: Some("2024-03-07T14:05:09+01:00".to_owned()),
    }
}

/// Renders through `Layout::parse("ds-export")`, as every front end does, and checks that
/// the key is a valid `RelKey`.
#[track_caller]
fn check(source: Source, edit: impl FnOnce(&mut FileRecord), expected: &str) {
    let mut r = record(source);
    edit(&mut r);
    let layout = Layout::parse("ds-export").expect("ds-export parses");
    let key = layout.render(&r, None);
    assert_eq!(key.as_str(), expected, "record {r:?}");
    assert_eq!(RelKey::parse(key.as_str()).ok().as_ref(), Some(&key));
}

#[test]
fn each_source_goes_where_ds_puts_it() {
    let table: &[(Source, &str)] = &[
        (
            Source::Champ,
            "dossier-1234/piece-justificative-1234-01.pdf",
        ),
        (
            Source::Annotation,
            "dossier-1234/piece-justificative-1234-01.pdf",
        ),
        (Source::Pdf, "dossier-1234/export-1234.pdf"),
        (Source::Attestation, "dossier-1234/attestation-1234.pdf"),
        (
            Source::Motivation,
            "dossier-1234/dossier/statuts-07-03-2024-14-05.pdf",
        ),
        (
            Source::Entreprise,
            "dossier-1234/pieces_justificatives/statuts-07-03-2024-14-05.pdf",
        ),
        (Source::Geojson, "dossier-1234/statuts.pdf"),
    ];
    for (source, expected) in table {
        check(*source, |_| {}, expected);
    }
}

#[test]
fn messages_and_avis_carry_their_date_and_id() {
    check(
        Source::Message,
        |r| r.champ_id = Some(b64("Commentaire-98765")),
        "dossier-1234/messagerie/statuts-07-03-2024-14-05-98765.pdf",
    );
    check(
        Source::Avis,
        |r| r.champ_id = Some(b64("Avis-45")),
        "dossier-1234/avis/statuts-07-03-2024-14-05-45.pdf",
    );
    // An id that is not base64 of `Type-id` is kept (sanitized: `/` is not a level).
    check(
        Source::Message,
        |r| r.champ_id = Some("a/b".to_owned()),
        "dossier-1234/messagerie/statuts-07-03-2024-14-05-a_b.pdf",
    );
    // No date, or an unreadable one: the name goes without it.
    check(
        Source::Avis,
        |r| {
            r.champ_id = Some(b64("Avis-45"));
            r.created_at = None;
        },
        "dossier-1234/avis/statuts-45.pdf",
    );
    check(
        Source::Motivation,
        |r| r.created_at = Some("07/03/2024".to_owned()),
        "dossier-1234/dossier/statuts.pdf",
    );
    // UTC as written: DS's own API writes Paris times, dsfiles does not convert.
    check(
        Source::Message,
        |r| {
            r.champ_id = Some(b64("Commentaire-1"));
            r.created_at = Some("2024-12-31T23:59:00Z".to_owned());
        },
        "dossier-1234/messagerie/statuts-31-12-2024-23-59-1.pdf",
    );
}

#[test]
fn rows_and_indexes_count_from_one_on_two_digits() {
    let table: &[(Option<u32>, u32, &str)] = &[
        (None, 0, "dossier-1234/piece-justificative-1234-01.pdf"),
        (None, 2, "dossier-1234/piece-justificative-1234-03.pdf"),
        (
            Some(0),
            0,
            "dossier-1234/piece-justificative-1234-01-01.pdf",
        ),
        (
            Some(4),
            1,
            "dossier-1234/piece-justificative-1234-05-02.pdf",
        ),
        (
            Some(99),
            0,
            "dossier-1234/piece-justificative-1234-100-01.pdf",
        ),
    ];
    for (row, index, expected) in table {
        check(
            Source::Champ,
            |r| {
                r.row = *row;
                r.index = *index;
            },
            expected,
        );
    }
}

#[test]
fn the_extension_is_the_files_own() {
    let table = [
        ("scan.JPG", "dossier-1234/piece-justificative-1234-01.JPG"),
        (
            "archive.tar.gz",
            "dossier-1234/piece-justificative-1234-01.gz",
        ),
        ("README", "dossier-1234/piece-justificative-1234-01"),
        (".htaccess", "dossier-1234/piece-justificative-1234-01"),
    ];
    for (filename, expected) in table {
        check(
            Source::Champ,
            |r| r.filename = filename.to_owned(),
            expected,
        );
    }
    // The PDF is always `.pdf`, whatever DS calls it.
    check(
        Source::Pdf,
        |r| r.filename = "dossier.bin".to_owned(),
        "dossier-1234/export-1234.pdf",
    );
}

#[test]
fn labels_are_parameterized_as_ds_does() {
    let table = [
        ("Pièce d'identité", "piece-d-identite"),
        ("ÉTAT CIVIL", "etat-civil"),
        // NFD (as macOS types it) is one letter too: ActiveSupport normalizes to NFC first.
        ("E\u{301}tat", "etat"),
        ("Cœur & Âme", "coeur-ame"),
        ("Straße", "strasse"),
        ("Ærø", "aero"),
        ("50 × 20 ÷ 2", "50-x-20-2"),
        ("日本語", ""),
        ("--déjà--vu--", "deja-vu"),
        ("snake_case label", "snake_case-label"),
        ("tab\there\u{a0}nbsp", "tab-here-nbsp"),
        ("", ""),
    ];
    for (label, expected) in table {
        assert_eq!(libelle_as_filename(label), expected, "{label:?}");
    }
}

#[test]
fn labels_are_cut_at_30_characters_on_a_space() {
    let table = [
        // 30 characters exactly: kept whole.
        (
            "abcdefghij abcdefghij abcdefgh",
            "abcdefghij-abcdefghij-abcdefgh",
        ),
        // A space at index 31 is too far: cut at the one before.
        (
            "abcdefghij abcdefghij abcdefghi jkl",
            "abcdefghij-abcdefghij",
        ),
        // Longer: cut before the last space at or before the 30th character.
        (
            "Justificatif de domicile de moins de trois mois",
            "justificatif-de-domicile-de",
        ),
        // A space at index 30 keeps the first 30 characters.
        (
            "abcdefghij abcdefghij abcdefgh jkl",
            "abcdefghij-abcdefghij-abcdefgh",
        ),
        // No space: cut at 30 characters (not bytes: `é` is one).
        (
            "ééééééééééééééééééééééééééééééééééé",
            "eeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
        ),
        // Whitespace runs count as one space.
        ("a    b", "a-b"),
    ];
    for (label, expected) in table {
        assert_eq!(libelle_as_filename(label), expected, "{label:?}");
    }
}

#[test]
fn hostile_names_stay_in_the_dossier_folder() {
    let hostile_labels = [
        "../../etc/passwd",
        "a/b\\c",
        "..",
        "ctrl\u{0}\u{1b}\u{7f}chars",
        "\u{202e}fdp.exe",
    ];
    for label in hostile_labels {
        let mut r = record(Source::Champ);
        r.label = label.to_owned();
        let key = Layout::parse("ds-export").expect("parses").render(&r, None);
        let parts: Vec<&str> = key.components().collect();
        assert_eq!(parts.len(), 2, "{label:?} gave {key}");
        assert_eq!(parts[0], "dossier-1234");
        assert!(
            parts[1]
                .trim_end_matches(".pdf")
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{label:?} gave {key}"
        );
    }
    check(
        Source::Message,
        |r| {
            r.champ_id = Some(b64("Commentaire-7"));
            r.filename = "../../x\u{1}y.pdf".to_owned();
        },
        "dossier-1234/messagerie/.._.._x_y-07-03-2024-14-05-7.pdf",
    );
    check(
        Source::Avis,
        |r| {
            r.champ_id = Some(b64("Avis-7"));
            r.filename = "..".to_owned();
        },
        "dossier-1234/avis/..-07-03-2024-14-05-7",
    );
    check(
        Source::Geojson,
        |r| r.filename = "..".to_owned(),
        "dossier-1234/_",
    );
    // A 300-byte name is cut in its stem: the date, the id and the extension stay.
    let mut r = record(Source::Message);
    r.champ_id = Some(b64("Commentaire-98765"));
    r.filename = format!("{}.pdf", "é".repeat(150));
    let key = Layout::parse("ds-export").expect("parses").render(&r, None);
    assert!(key.file_name().len() <= MAX_COMPONENT_BYTES, "{key}");
    assert!(
        key.file_name().ends_with("é-07-03-2024-14-05-98765.pdf"),
        "{key}"
    );
    let mut r = record(Source::Champ);
    r.label = "x".repeat(300);
    check(
        Source::Champ,
        |rec| rec.label = r.label.clone(),
        &format!("dossier-1234/{}-1234-01.pdf", "x".repeat(30)),
    );
}

#[test]
fn labels_that_agree_on_30_characters_do_not_collide() {
    // DS gives both the same name inside its ZIP; the allocator numbers the second.
    let layout = Layout::parse("ds-export").expect("parses");
    let mut keys = KeyAllocator::default();
    let mut first = record(Source::Champ);
    first.label = "Justificatif de domicile de moins de 3 mois".to_owned();
    let mut second = record(Source::Champ);
    second.label = "Justificatif de domicile de plus de 3 mois".to_owned();
    second.champ_id = Some(b64("Champ-43"));
    let mut allocate = |r: &FileRecord| {
        keys.allocate(&r.file_id(), &layout.render(r, None))
            .expect("a memory store does not fail")
    };
    let a = allocate(&first);
    let b = allocate(&second);
    assert_eq!(
        a.as_str(),
        "dossier-1234/justificatif-de-domicile-de-1234-01.pdf"
    );
    assert_eq!(
        b.as_str(),
        "dossier-1234/justificatif-de-domicile-de-1234-01 (2).pdf"
    );
}

#[test]
fn ds_export_is_a_name_not_a_template() {
    let layout = Layout::parse("ds-export").expect("parses");
    assert_eq!(layout.template(), "ds-export");
    assert_eq!(layout.to_string(), "ds-export");
    assert!(!layout.needs_sha256());
    // Anything else is still a template: a literal `ds-export` directory, for instance.
    let literal = Layout::parse("ds-export/{filename}").expect("parses");
    assert_eq!(
        literal.render(&record(Source::Champ), None).as_str(),
        "ds-export/statuts.pdf"
    );
}
