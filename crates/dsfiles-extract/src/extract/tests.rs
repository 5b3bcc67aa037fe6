use serde_json::json;

use super::*;

#[test]
fn states_are_normalized() {
    for (input, expected) in [
        ("en_construction", "en_construction"),
        ("EN_CONSTRUCTION", "en_construction"),
        ("EnConstruction", "en_construction"),
        ("sans_suite", "sans_suite"),
        ("SansSuite", "sans_suite"),
        ("accepte", "accepte"),
        (" Refuse ", "refuse"),
        ("nouvel-etat", "nouvel_etat"),
    ] {
        assert_eq!(normalize_state(input), expected, "{input}");
    }
}

#[track_caller]
fn check_error(dossier: serde_json::Value, expected: &str) {
    let got = extract(
        1,
        &dossier,
        Include {
            generated: true,
            entreprise: true,
        },
    );
    match got {
        Ok(records) => panic!("expected an error, got {records:?}"),
        Err(e) => assert_eq!(e.to_string(), expected),
    }
}

fn file() -> serde_json::Value {
    json!({
        "filename": "a.pdf", "contentType": "application/pdf", "checksum": "rL0Y20zC+Fzt72VPzMSk2A==",
        "byteSizeBigInt": "3", "url": "https://f.example/a?sig=x", "createdAt": "2024-01-01T00:00:00Z",
        "virusScanResult": "safe"
    })
}

fn with_file_field(field: &str, value: Option<serde_json::Value>) -> serde_json::Value {
    let mut f = file();
    if let Some(object) = f.as_object_mut() {
        match value {
            Some(v) => object.insert(field.to_owned(), v),
            None => object.remove(field),
        };
    }
    json!({
        "number": 42, "state": "en_construction",
        "champs": [{ "__typename": "PieceJustificativeChamp", "id": "c1", "label": "PJ", "files": [file(), f] }]
    })
}

#[test]
fn bad_dossiers_give_errors_naming_the_dossier_and_field() {
    check_error(
        json!([]),
        "dossier JSON has no valid `number` (not a JSON object)",
    );
    check_error(
        json!({ "state": "accepte" }),
        "dossier JSON has no valid `number` (field absent)",
    );
    check_error(
        json!({ "number": -3 }),
        "dossier JSON has no valid `number` (`-3` is not a positive integer)",
    );
    check_error(
        json!({ "number": 42 }),
        "dossier `42`: invalid data at `state`: missing or empty `state`",
    );
    check_error(
        with_file_field("filename", None),
        "dossier `42`: file at `champs[0].files[1]` has no `filename`",
    );
    check_error(
        with_file_field("url", None),
        "dossier `42`: file at `champs[0].files[1]` has no `url`",
    );
    check_error(
        with_file_field("url", Some(json!(""))),
        "dossier `42`: file at `champs[0].files[1]` has no `url`",
    );
    check_error(
        with_file_field("checksum", None),
        "dossier `42`: file at `champs[0].files[1]` has no `checksum`",
    );
    check_error(
        with_file_field("byteSizeBigInt", None),
        "dossier `42`: file at `champs[0].files[1]` has no `byteSizeBigInt`",
    );
    check_error(
        with_file_field("byteSizeBigInt", Some(json!("12 Mo"))),
        "dossier `42`: file at `champs[0].files[1]` has an invalid `byteSizeBigInt`: `12 Mo`",
    );
    check_error(
        with_file_field("byteSizeBigInt", Some(json!(-1))),
        "dossier `42`: file at `champs[0].files[1]` has an invalid `byteSizeBigInt`: `-1`",
    );
    check_error(
        with_file_field("byteSizeBigInt", Some(json!(1.5))),
        "dossier `42`: file at `champs[0].files[1]` has an invalid `byteSizeBigInt`: `1.5`",
    );
    check_error(
        with_file_field("filename", Some(json!(7))),
        "dossier `42`: invalid data at `champs[0].files[1].filename`: invalid type: integer `7`, expected a string",
    );
    check_error(
        json!({ "number": 42, "state": "accepte", "champs": [{ "__typename": "PieceJustificativeChamp", "files": [file()] }] }),
        "dossier `42`: invalid data at `champs[0]`: `PieceJustificativeChamp` with files has no `id`",
    );
    check_error(
        json!({ "number": 42, "state": "accepte", "messages": [{ "attachments": [file()] }] }),
        "dossier `42`: invalid data at `messages[0]`: message with attachments has no `id`",
    );
    check_error(
        json!({ "number": 42, "state": "accepte", "champs": [{ "__typename": "FutureChamp", "id": "x", "files": "nope" }] }),
        "dossier `42`: invalid data at `champs[0].files`: invalid type: string \"nope\", expected a sequence",
    );
}

#[test]
fn a_number_size_and_a_string_number_are_accepted() {
    let mut dossier = with_file_field("byteSizeBigInt", Some(json!(3_221_225_472_u64)));
    dossier["number"] = json!("42");
    let records = extract(1, &dossier, Include::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        records.iter().map(|r| r.byte_size).collect::<Vec<_>>(),
        [3, 3_221_225_472]
    );
    assert!(records.iter().all(|r| r.dossier == 42));
}

#[test]
fn the_deprecated_byte_size_is_used_only_without_byte_size_big_int() {
    let mut dossier = with_file_field("byteSizeBigInt", None);
    dossier["champs"][0]["files"][1]["byteSize"] = json!(9);
    dossier["champs"][0]["files"][0]["byteSize"] = json!(-1);
    let records = extract(1, &dossier, Include::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        records.iter().map(|r| r.byte_size).collect::<Vec<_>>(),
        [3, 9]
    );
}

#[test]
fn the_error_path_does_not_leak_the_url() {
    let mut dossier = with_file_field("byteSizeBigInt", Some(json!("x")));
    dossier["champs"][0]["files"][1]["url"] = json!("https://f.example/a?sig=TOPSECRET");
    let message = extract(1, &dossier, Include::default())
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert!(message.is_err_and(|m| !m.contains("TOPSECRET")));
}

#[test]
fn hostile_sizes_are_a_clear_error_or_exact_never_a_panic() {
    let error = |shown: &str| {
        Err(format!(
            "dossier `42`: file at `champs[0].files[1]` has an invalid `byteSizeBigInt`: `{shown}`"
        ))
    };
    #[rustfmt::skip]
    let cases: Vec<(serde_json::Value, Result<u64, String>)> = vec![
        (json!("18446744073709551615"), Ok(u64::MAX)),
        (json!(" 18446744073709551614 "), Ok(u64::MAX - 1)),
        (json!(u64::MAX), Ok(u64::MAX)),
        (json!("18446744073709551616"), error("18446744073709551616")),
        (json!("99999999999999999999999999999999"), error("99999999999999999999999999999999")),
        (json!(1e20), error("1e+20")),
        (json!(-1), error("-1")),
        (json!("-1"), error("-1")),
        (json!(""), error("")),
        (json!("0x10"), error("0x10")),
        (json!("NaN"), error("NaN")),
        (json!(true), error("true")),
        (json!({"bytes": 1}), error(r#"{"bytes":1}"#)),
    ];
    for (value, expected) in cases {
        let dossier = with_file_field("byteSizeBigInt", Some(value.clone()));
        let got = extract(1, &dossier, Include::default())
            .map(|records| records.last().map_or(0, |r| r.byte_size))
            .map_err(|e| e.to_string());
        assert_eq!(got, expected, "{value}");
    }
}
