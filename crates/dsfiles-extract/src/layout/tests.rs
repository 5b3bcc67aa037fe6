use super::*;
use crate::{MAX_COMPONENT_BYTES, Source};

fn record() -> FileRecord {
    FileRecord {
        demarche: 7,
        dossier: 1234,
        state: "en_instruction".to_owned(),
        source: Source::Champ,
        champ_id: Some("Q2hhbXAtMQ==".to_owned()),
        label: "Pièce d'identité".to_owned(),
        row: None,
        index: 0,
        filename: "scan.pdf".to_owned(),
        content_type: "application/pdf".to_owned(),
        byte_size: 3,
        checksum: "rL0Y20zC+Fzt72VPzMSk2A==".to_owned(),
        url: "https://files.example/x?sig=secret".to_owned(),
        virus_scan: "safe".to_owned(),
        created_at: None,
    }
}

#[track_caller]
fn check(template: &str, edit: impl FnOnce(&mut FileRecord), sha256: Option<&str>, expected: &str) {
    let mut r = record();
    edit(&mut r);
    let layout = Layout::parse(template).unwrap_or_else(|e| panic!("{template}: {e}"));
    let key = layout.render(&r, sha256);
    assert_eq!(
        key.as_str(),
        expected,
        "template {template:?}, record {r:?}"
    );
    assert_eq!(
        RelKey::parse(key.as_str()).ok().as_ref(),
        Some(&key),
        "rendered key must validate"
    );
}

#[track_caller]
fn check_error(template: &str, expected: &str) {
    match Layout::parse(template) {
        Ok(layout) => panic!("{template:?} parsed as {layout:?}"),
        Err(e) => assert_eq!(e.to_string(), expected),
    }
}

#[test]
fn default_layout() {
    assert_eq!(Layout::default().template(), Layout::DEFAULT);
    check(
        Layout::DEFAULT,
        |_| {},
        None,
        "1234/champ/Pièce d'identité/scan.pdf",
    );
    check(
        Layout::DEFAULT,
        |r| {
            r.source = Source::Message;
            r.label = "message".to_owned();
        },
        None,
        "1234/message/message/scan.pdf",
    );
}

#[test]
fn every_placeholder() {
    check(
        "{demarche}-{dossier}-{state}-{source}/{champ_id}/{row}/{stem}~{ext}/{checksum}/{sha256}/{label}/{filename}",
        |r| r.row = Some(3),
        Some("ab12"),
        // The base64 champ id keeps its `=`; `{checksum}` is the hex of the MD5.
        "7-1234-en_instruction-champ/Q2hhbXAtMQ==/3/scan~pdf/acbd18db4cc2f85cedef654fccc4a4d8/ab12/Pièce d'identité/scan.pdf",
    );
}

#[test]
fn values_cannot_add_or_climb_levels() {
    check(
        Layout::DEFAULT,
        |r| r.filename = "../../x.pdf".to_owned(),
        None,
        "1234/champ/Pièce d'identité/.._.._x.pdf",
    );
    check(
        Layout::DEFAULT,
        |r| r.filename = "/etc/passwd".to_owned(),
        None,
        "1234/champ/Pièce d'identité/_etc_passwd",
    );
    check(
        Layout::DEFAULT,
        |r| r.label = "..".to_owned(),
        None,
        "1234/champ/_/scan.pdf",
    );
    check(
        Layout::DEFAULT,
        |r| r.label = "a/b\\c".to_owned(),
        None,
        "1234/champ/a_b_c/scan.pdf",
    );
    check(
        "{champ_id}/{filename}",
        |r| r.champ_id = Some("a/b".to_owned()),
        None,
        "a_b/scan.pdf",
    );
}

#[test]
fn empty_placeholders_drop_their_component_except_the_last() {
    check("{dossier}/{row}/{filename}", |_| {}, None, "1234/scan.pdf");
    check(
        "{dossier}/{row}/{filename}",
        |r| r.row = Some(0),
        None,
        "1234/0/scan.pdf",
    );
    check(
        "{dossier}/r{row}/{filename}",
        |_| {},
        None,
        "1234/r/scan.pdf",
    );
    check("{dossier}/{sha256}", |_| {}, None, "1234/_");
    check(
        "{dossier}/{champ_id}{row}/{filename}",
        |r| r.champ_id = None,
        None,
        "1234/scan.pdf",
    );
}

#[test]
fn stem_and_ext() {
    check(
        "{stem}.{ext}",
        |r| r.filename = "README".to_owned(),
        None,
        "README",
    );
    check(
        "{stem}.{ext}",
        |r| r.filename = "a.tar.gz".to_owned(),
        None,
        "a.tar.gz",
    );
    check(
        "{ext}/{stem}",
        |r| r.filename = ".htaccess".to_owned(),
        None,
        ".htaccess",
    );
}

#[test]
fn checksum_is_path_safe() {
    // `+` and `/` in base64 would split the path.
    check(
        "{checksum}",
        |r| r.checksum = "+/8=".to_owned(),
        None,
        "fbff",
    );
    // Not base64: URL-safe characters instead.
    check(
        "{checksum}",
        |r| r.checksum = "a+b/c=!".to_owned(),
        None,
        "a-b_c!",
    );
    // pdf/geojson have no checksum: the component is dropped, the last one falls back.
    check(
        "{dossier}/{checksum}/{filename}",
        |r| r.checksum.clear(),
        None,
        "1234/scan.pdf",
    );
}

#[test]
fn the_state_directory_is_never_a_first_component() {
    check(".dsfiles/{filename}", |_| {}, None, "_dsfiles/scan.pdf");
    check(
        "{label}/{filename}",
        |r| r.label = ".DSFILES".to_owned(),
        None,
        "_DSFILES/scan.pdf",
    );
    check(
        "{label}/{filename}",
        |r| r.label = ".dsfiles.".to_owned(),
        None,
        "_dsfiles/scan.pdf",
    );
    check(
        "{dossier}/.dsfiles/{filename}",
        |_| {},
        None,
        "1234/.dsfiles/scan.pdf",
    );
}

#[test]
fn literal_text_is_sanitized_too() {
    check("../{filename}", |_| {}, None, "_/scan.pdf");
    check("CON/{filename}", |_| {}, None, "_CON/scan.pdf");
}

#[test]
fn long_filenames_keep_their_extension() {
    let name = format!("{}.pdf", "n".repeat(300));
    let layout = Layout::parse(Layout::DEFAULT).unwrap_or_else(|e| panic!("{e}"));
    let mut r = record();
    r.filename = name;
    let key = layout.render(&r, None);
    assert_eq!(key.file_name().len(), MAX_COMPONENT_BYTES);
    assert!(key.file_name().ends_with("n.pdf"));
}

#[test]
fn needs_sha256() {
    let parse = |t: &str| Layout::parse(t).unwrap_or_else(|e| panic!("{e}"));
    assert!(!parse(Layout::DEFAULT).needs_sha256());
    assert!(parse("{dossier}/{sha256}.{ext}").needs_sha256());
}

#[test]
fn parse_errors_name_the_problem() {
    check_error(
        "{dossier}/{nme}",
        "layout `{dossier}/{nme}`: unknown placeholder `{nme}` (known: {demarche} {dossier} {state} {source} {champ_id} {label} {row} {filename} {stem} {ext} {checksum} {sha256} {deposited} {updated} {processed} {demarche_title} {service} {groupe} {civilite} {nom} {prenom} {siren} {siret} {raison_sociale} {tva} {adresse} {demandeur} {champ:LABEL} {annotation:LABEL})",
    );
    check_error(
        "{}",
        "layout `{}`: unknown placeholder `{}` (known: {demarche} {dossier} {state} {source} {champ_id} {label} {row} {filename} {stem} {ext} {checksum} {sha256} {deposited} {updated} {processed} {demarche_title} {service} {groupe} {civilite} {nom} {prenom} {siren} {siret} {raison_sociale} {tva} {adresse} {demandeur} {champ:LABEL} {annotation:LABEL})",
    );
    check_error(
        "{dossier/{filename}",
        "layout `{dossier/{filename}`: unbalanced `{` at byte 0",
    );
    check_error(
        "a/{filename",
        "layout `a/{filename`: unbalanced `{` at byte 2",
    );
    check_error(
        "a}/{filename}",
        "layout `a}/{filename}`: unbalanced `}` at byte 1",
    );
    check_error("", "layout ``: the template is empty");
    check_error(
        "/{filename}",
        "layout `/{filename}`: empty path component (leading, trailing or doubled `/`)",
    );
    check_error(
        "a//{filename}",
        "layout `a//{filename}`: empty path component (leading, trailing or doubled `/`)",
    );
    check_error(
        "{filename}/",
        "layout `{filename}/`: empty path component (leading, trailing or doubled `/`)",
    );
}

#[test]
fn non_ascii_literals_parse() {
    check("é{dossier}ü/{filename}", |_| {}, None, "é1234ü/scan.pdf");
}

#[test]
fn rel_key_parse() {
    assert!(RelKey::parse("a/b (2).pdf").is_ok());
    for bad in [
        "",
        "/a",
        "a/",
        "a//b",
        "a/../b",
        "a/./b",
        "a/CON",
        "a/x\0y",
        "a/b\\c",
        ".dsfiles/m",
        ".DSFILES",
        "a/trail.",
    ] {
        assert!(RelKey::parse(bad).is_err(), "{bad:?} should be rejected");
    }
    let err = RelKey::parse("x/..").map(|k| k.into_string());
    assert_eq!(
        err.map_err(|e| e.to_string()),
        Err(
            "invalid relative key `x/..`: component `..` is not sanitized (would be `_`)"
                .to_owned()
        )
    );
}

#[test]
fn rel_key_serde_validates() {
    let key: Result<RelKey, _> = serde_json::from_str("\"a/b.pdf\"");
    assert_eq!(
        key.ok().map(RelKey::into_string),
        Some("a/b.pdf".to_owned())
    );
    let bad: Result<RelKey, _> = serde_json::from_str("\"../etc\"");
    assert!(bad.is_err());
}

#[test]
fn with_suffix() {
    let key = |s: &str| RelKey::parse(s).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(key("12/a.pdf").with_suffix(2).as_str(), "12/a (2).pdf");
    assert_eq!(key("a.tar.gz").with_suffix(3).as_str(), "a.tar (3).gz");
    assert_eq!(
        key("d.v1/README").with_suffix(2).as_str(),
        "d.v1/README (2)"
    );
    let long = key(&format!("d/{}.pdf", "é".repeat(125)));
    let suffixed = long.with_suffix(10);
    assert!(suffixed.file_name().len() <= MAX_COMPONENT_BYTES);
    assert!(suffixed.file_name().ends_with(" (10).pdf"));
    assert!(RelKey::parse(suffixed.as_str()).is_ok());
}

/// Property: whatever the record holds, the key is a safe relative path.
#[test]
fn property_rendered_keys_are_safe() {
    const PIECES: &[&str] = &[
        "..", ".", "/", "\\", "\0", "\u{1}", "\u{9f}", " ", "CON", "nul.txt", "LPT1", "e\u{301}",
        "日本", ".pdf", ".dsfiles", "{", "}", "%2e%2e", "~", "a", "\u{202E}",
    ];
    let mut next = crate::random::xorshift(0x2545_F491_4F6C_DD1D);
    let mut gen_string = |max: u64| {
        let mut s = crate::random::joined(PIECES, max, &mut next);
        if next().is_multiple_of(10) {
            s.push_str(&"\u{e9}".repeat(200));
        }
        s
    };
    let layouts: Vec<Layout> = [
        Layout::DEFAULT,
        "{label}/{filename}",
        "{champ_id}/{row}/{stem}.{ext}",
        "{state}/{label}{filename}/{checksum}",
        "..{label}/../{filename}",
    ]
    .iter()
    .map(|t| Layout::parse(t).unwrap_or_else(|e| panic!("{t}: {e}")))
    .collect();
    for i in 0..3_000 {
        let mut r = record();
        r.filename = gen_string(30);
        r.label = gen_string(12);
        r.champ_id = Some(gen_string(6));
        r.checksum = gen_string(4);
        r.row = (i % 3 == 0).then_some(i);
        for layout in &layouts {
            let key = layout.render(&r, None);
            let ctx = format!("{layout} on {r:?} gave {key:?}");
            assert!(!key.as_str().starts_with('/'), "{ctx}");
            assert!(!key.as_str().contains(['\\', '\0']), "{ctx}");
            assert!(!key.as_str().chars().any(char::is_control), "{ctx}");
            for component in key.components() {
                assert!(
                    !component.is_empty() && component != "." && component != "..",
                    "{ctx}"
                );
                assert!(component.len() <= MAX_COMPONENT_BYTES, "{ctx}");
            }
            assert!(
                !key.components()
                    .next()
                    .is_some_and(|c| c.eq_ignore_ascii_case(".dsfiles")),
                "{ctx}"
            );
            assert_eq!(
                RelKey::parse(key.as_str()).ok().as_ref(),
                Some(&key),
                "{ctx}"
            );
        }
    }
}

#[test]
fn the_data_layout_follows_the_directory_that_holds_the_dossier() {
    for (layout, expected) in [
        (Layout::DEFAULT, "{dossier}/dossier.json"),
        (
            "{demarche}/{dossier}/{filename}",
            "{demarche}/{dossier}/dossier.json",
        ),
        (
            "{state}/dossier-{dossier}/{source}/{filename}",
            "{state}/dossier-{dossier}/dossier.json",
        ),
        // Only in the file name, absent, or under a file's directory: the fallback.
        ("{demarche}/{dossier}-{filename}", DataLayout::FALLBACK),
        ("{source}/{filename}", DataLayout::FALLBACK),
        ("{source}/{dossier}/{filename}", DataLayout::FALLBACK),
    ] {
        let layout = Layout::parse(layout).unwrap();
        assert_eq!(
            DataLayout::for_layout(&layout).template(),
            expected,
            "{layout}"
        );
    }
}

#[test]
fn data_layouts_render_sanitized_keys() {
    for (template, state, expected) in [
        ("{dossier}/dossier.json", "accepte", "12/dossier.json"),
        (
            "{demarche}/{state}/{dossier}.json",
            "accepte",
            "4/accepte/12.json",
        ),
        ("{state}/{dossier}/d.json", "../x", ".._x/12/d.json"),
        ("{state}/{dossier}/d.json", "..", "_/12/d.json"),
        (".dsfiles/{dossier}.json", "accepte", "_dsfiles/12.json"),
    ] {
        let layout = DataLayout::parse(template).unwrap();
        assert_eq!(layout.render(4, 12, state).as_str(), expected, "{template}");
    }
}

#[test]
fn bad_data_layouts_are_refused_naming_the_problem() {
    for (template, expected) in [
        (
            "{demarche}/dossier.json",
            "layout `{demarche}/dossier.json`: it must contain `{dossier}`, or every dossier would share one file",
        ),
        (
            "{dossier}/{filename}",
            "layout `{dossier}/{filename}`: `{filename}` names a file's or a dossier's value; a dossier.json template may use only `{demarche}`, `{dossier}`, `{state}`",
        ),
        (
            "{groupe}/{dossier}.json",
            "layout `{groupe}/{dossier}.json`: `{groupe}` names a file's or a dossier's value; a dossier.json template may use only `{demarche}`, `{dossier}`, `{state}`",
        ),
        (
            "{dosier}/d.json",
            "layout `{dosier}/d.json`: unknown placeholder `{dosier}` (known: {demarche} {dossier} {state} {source} {champ_id} {label} {row} {filename} {stem} {ext} {checksum} {sha256} {deposited} {updated} {processed} {demarche_title} {service} {groupe} {civilite} {nom} {prenom} {siren} {siret} {raison_sociale} {tva} {adresse} {demandeur} {champ:LABEL} {annotation:LABEL})",
        ),
    ] {
        let got = DataLayout::parse(template).map(|l| l.template().to_owned());
        assert_eq!(
            got.map_err(|e| e.to_string()),
            Err(expected.to_owned()),
            "{template}"
        );
    }
}

/// Dossier placeholders render through the same sanitizing as file ones: hostile values
/// (slashes, `..`, control characters, 300 bytes, empty) never add a level, climb out, or
/// leave an empty component.
#[test]
fn dossier_placeholders_are_sanitized_with_fallbacks() {
    let dossier = serde_json::json!({
        "number": 1234, "state": "accepte", "dateDepot": "2024-05-02T10:00:00+02:00",
        "groupeInstructeur": {"number": 1, "label": "../Nord/Est\u{1b}[2J"},
        "demandeur": {"__typename": "PersonnePhysique", "nom": "..", "prenom": ""},
        "champs": [
            {"__typename": "TextChamp", "id": "a", "label": "Long", "stringValue": "é".repeat(150)},
            {"__typename": "TextChamp", "id": "b", "label": "Vide", "stringValue": "   "},
        ],
    });
    let context = crate::context(7, &dossier).unwrap();
    let render = |template: &str| {
        let layout = Layout::parse(template).unwrap_or_else(|e| panic!("{e}"));
        layout
            .render_in(&record(), None, Some(&context))
            .into_string()
    };
    assert_eq!(
        render("{groupe}/{deposited:%Y-%m}/{filename}"),
        ".._Nord_Est_[2J/2024-05/scan.pdf"
    );
    assert_eq!(
        render("{nom}/{prenom}/{filename}"),
        "_/sans-prenom/scan.pdf"
    );
    assert_eq!(
        render("{champ:Vide}/{processed}/{filename}"),
        "sans-champ/sans-processed/scan.pdf"
    );
    let long = render("{champ:Long}/{filename}");
    let first = long.split('/').next().unwrap();
    assert!(
        first.len() <= MAX_COMPONENT_BYTES && first.starts_with("éé"),
        "{long}"
    );
    // Without the dossier, every dossier placeholder falls back.
    let layout = Layout::parse("{demandeur}/{filename}").unwrap();
    assert!(layout.needs_context());
    assert_eq!(
        layout.render(&record(), None).as_str(),
        "sans-demandeur/scan.pdf"
    );
    assert!(!Layout::default().needs_context());
}

#[test]
fn dossier_placeholders_are_listed_by_name() {
    let names = |template: &str| Layout::parse(template).unwrap().dossier_placeholders();
    assert!(names(Layout::DEFAULT).is_empty());
    assert!(names("ds-export").is_empty());
    assert_eq!(
        names("{groupe}/{deposited:%Y-%m}-{nom}/{champ:Nom du projet}/{annotation:A}/{filename}"),
        ["groupe", "deposited", "nom", "champ", "annotation"]
    );
}

/// The worked examples of docs/cli.md, "Naming your files".
#[test]
fn naming_examples_of_the_documentation() {
    let dossier = serde_json::json!({
        "number": 100004, "state": "accepte",
        "dateDepot": "2024-03-01T09:00:00+01:00", "dateTraitement": "2024-03-04T11:00:00+01:00",
        "groupeInstructeur": {"number": 1, "label": "Région Nord"},
        "demandeur": {"__typename": "PersonneMorale", "siret": "13002526500013",
                      "entreprise": {"siren": "130025265", "raisonSociale": "ACME"}},
        "champs": [{"__typename": "TextChamp", "id": "a", "label": "Nom du projet", "stringValue": "Jardins / partagés"}],
    });
    let context = crate::context(7, &dossier).unwrap();
    let statuts = FileRecord {
        dossier: 100004,
        state: "accepte".to_owned(),
        label: "Statuts".to_owned(),
        filename: "statuts.pdf".to_owned(),
        ..record()
    };
    for (template, expected) in [
        (
            "{groupe}/{deposited:%Y-%m}/{dossier}/{filename}",
            "Région Nord/2024-03/100004/statuts.pdf",
        ),
        (
            "{demandeur}/{siret}/{dossier}/{label}/{filename}",
            "ACME/13002526500013/100004/Statuts/statuts.pdf",
        ),
        (
            "{state}/{processed:%Y}/{dossier}-{champ:Nom du projet}/{filename}",
            "accepte/2024/100004-Jardins _ partagés/statuts.pdf",
        ),
    ] {
        let layout = Layout::parse(template).unwrap_or_else(|e| panic!("{e}"));
        let key = layout.render_in(&statuts, None, Some(&context));
        assert_eq!(key.as_str(), expected, "{template}");
    }
}

#[test]
fn dossier_dirs_are_found_only_where_dossiers_cannot_meet() {
    let dir = |parents: &[&str], before: &str, after: &str| {
        Some(DossierDir {
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
            before: before.to_owned(),
            after: after.to_owned(),
        })
    };
    let cases: &[(&str, Option<DossierDir>)] = &[
        (Layout::DEFAULT, dir(&[], "", "")),
        ("ds-export", dir(&[], "dossier-", "")),
        ("{demarche}/{dossier}/{filename}", dir(&["7"], "", "")),
        (
            "archives/d{demarche}/{dossier}/{filename}",
            dir(&["archives", "d7"], "", ""),
        ),
        (".dsfiles/{dossier}/{filename}", dir(&["_dsfiles"], "", "")),
        ("dossier-{dossier}/{filename}", dir(&[], "dossier-", "")),
        ("d_{dossier}-x/{filename}", dir(&[], "d_", "-x")),
        ("{dossier}/dossier.json", dir(&[], "", "")),
        // Nothing keeps the dossiers apart.
        ("{label}/{filename}", None),
        ("{filename}", None),
        // Something before the dossier varies, or may be dropped.
        ("{state}/{dossier}/{filename}", None),
        ("{row}/{dossier}/{filename}", None),
        ("{groupe}/{dossier}/{filename}", None),
        // The dossier's component mixes in other values, or text that sanitizing may change.
        ("{dossier}-{label}/{filename}", None),
        ("{label}{dossier}/{filename}", None),
        ("d{dossier}/{filename}", None),
        ("COM{dossier}/{filename}", None),
        ("d.{dossier}/{filename}", None),
        ("{dossier} /{filename}", None),
        ("{dossier}{dossier}/{filename}", None),
    ];
    for (template, expected) in cases {
        let layout = Layout::parse(template).unwrap_or_else(|e| panic!("{template}: {e}"));
        assert_eq!(&layout.dossier_dir(7), expected, "{template}");
    }
    let data = DataLayout::parse("{demarche}/{dossier}/dossier.json").expect("parses");
    assert_eq!(data.dossier_dir(7), dir(&["7"], "", ""));
}

/// For every layout with a dossier directory, keys of different dossiers never meet: neither
/// equal once case-folded, nor one a directory of the other.
#[test]
fn property_dossier_dirs_keep_dossiers_apart() {
    let layouts = [
        Layout::DEFAULT,
        "ds-export",
        "{demarche}/{dossier}/{label}{filename}",
        "dossier-{dossier}/{filename}",
        "{dossier}",
    ];
    let names = [
        "a.pdf",
        "A.PDF",
        "12",
        "12/x",
        "..",
        "dossier-12",
        "",
        "é.pdf",
    ];
    let dossiers = [1, 2, 12, 21, 112, 121];
    for template in layouts {
        let layout = Layout::parse(template).unwrap_or_else(|e| panic!("{template}: {e}"));
        assert!(layout.dossier_dir(7).is_some(), "{template}");
        let mut keys = Vec::new();
        for dossier in dossiers {
            for name in names {
                let mut r = record();
                (r.dossier, r.filename, r.label) = (dossier, name.to_owned(), name.to_owned());
                keys.push((dossier, layout.render(&r, None).as_str().to_lowercase()));
            }
        }
        for (d1, k1) in &keys {
            for (d2, k2) in keys.iter().filter(|(d2, _)| d2 != d1) {
                let meet = k1 == k2 || k2.starts_with(&format!("{k1}/"));
                assert!(
                    !meet,
                    "{template}: dossier {d1}'s `{k1}` meets dossier {d2}'s `{k2}`"
                );
            }
        }
    }
}
