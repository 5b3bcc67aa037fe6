use chrono::TimeZone as _;
use dsfiles_core::extract::Source;

use super::*;

fn record() -> IndexRecord {
    IndexRecord {
        version: 1,
        demarche: 1234,
        dossier: 42,
        state: "accepte".into(),
        updated_at: Some("2025-03-01T12:00:00+01:00".into()),
        deleted_at: None,
        file_id: "42/champ/Q2g=/-/0".into(),
        key: "42/champ/Pièce, \"a\"/a\u{1b}[2Jb.pdf".into(),
        source: Source::Champ,
        label: "Pièce, \"a\"".into(),
        filename: "a\u{1b}[2Jb.pdf".into(),
        content_type: "application/pdf".into(),
        size: 3_000_000_000,
        checksum: "1B2M2Y8AsgTpgAmY7PhCfg==".into(),
        sha256: "e3b0".into(),
        status: FileStatus::RemovedUpstream,
        stored_at: chrono::Utc
            .with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
            .single()
            .unwrap(),
        fields: dsfiles_core::index::DossierFields {
            groupe: Some("Nord, Est".into()),
            applicant: Some("person".into()),
            demandeur: Some("Dupont Zoé".into()),
            ..Default::default()
        },
    }
}

fn render(format: Format) -> String {
    let mut out = Vec::new();
    let mut writer = Writer::new(format, &mut out);
    writer.record(&record()).unwrap();
    writer.finish().unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn csv_columns_are_the_json_fields_in_order() {
    let value = serde_json::to_value(record()).unwrap();
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut columns = IndexRecord::CSV_COLUMNS.to_vec();
    columns.sort_unstable();
    keys.sort_unstable();
    assert_eq!(columns, keys);
}

#[test]
fn csv_has_the_header_and_quotes_the_key() {
    let out = render(Format::Csv);
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(lines[0], IndexRecord::CSV_COLUMNS.join(","));
    assert_eq!(
        lines[1],
        "1,1234,42,accepte,2025-03-01T12:00:00+01:00,,42/champ/Q2g=/-/0,\
         \"42/champ/Pièce, \"\"a\"\"/a\u{1b}[2Jb.pdf\",champ,\"Pièce, \"\"a\"\"\",\
         a\u{1b}[2Jb.pdf,application/pdf,3000000000,1B2M2Y8AsgTpgAmY7PhCfg==,e3b0,\
         removed_upstream,2025-03-01T12:00:00Z,,,\"Nord, Est\",,,,person,Dupont Zoé,,,,,,,,"
    );
    assert_eq!(lines[2..], [""]);
}

#[test]
fn table_aligns_columns_and_neutralises_control_characters() {
    let out = render(Format::Table);
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    let row = lines.next().unwrap();
    for (title, value) in [
        ("SOURCE", "champ"),
        ("STATUS", "removed_upstream"),
        ("KEY", "42/champ"),
    ] {
        let column = |line: &str, s: &str| line[..line.find(s).unwrap()].chars().count();
        assert_eq!(
            column(header, title),
            column(row, value),
            "{title}:\n{header}\n{row}"
        );
    }
    assert!(!row.contains('\u{1b}'), "{row:?}");
    assert!(row.contains("a\\u{1b}[2Jb.pdf"), "{row}");
    assert!(row.contains("2.8 GiB"), "{row}");
    assert!(lines.next().is_none());
}

#[test]
fn status_names_are_the_manifest_ones() {
    for status in STATUSES {
        assert_eq!(parse_status(status.as_str()), Ok(status));
    }
    let err = parse_status("OK").unwrap_err();
    assert!(
        err.contains("`OK` is not a file status (ok, checksum_mismatch"),
        "{err}"
    );
}
