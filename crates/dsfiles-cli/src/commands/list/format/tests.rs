use dsfiles_core::extract::{FileRecord, Source};

use super::*;

fn record() -> FileRecord {
    FileRecord {
        demarche: 1234,
        dossier: 42,
        state: "en_instruction".into(),
        source: Source::Champ,
        champ_id: Some("Q2hhbXAtMQ==".into()),
        label: "Pièce, \"justificative\"".into(),
        row: Some(2),
        index: 0,
        filename: "a\nb.pdf".into(),
        content_type: "application/pdf".into(),
        byte_size: 3_000_000_000,
        checksum: "1B2M2Y8AsgTpgAmY7PhCfg==".into(),
        url: "https://files.example/a?sig=1".into(),
        virus_scan: "safe".into(),
        created_at: None,
    }
}

fn render(format: Format, records: &[FileRecord]) -> String {
    let mut writer = Writer::new(format, Vec::new());
    for record in records {
        writer.record(record).unwrap();
    }
    writer.finish().unwrap();
    String::from_utf8(writer.out).unwrap()
}

#[test]
fn csv_columns_cover_every_json_field() {
    let value = serde_json::to_value(record()).unwrap();
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in &keys {
        assert!(CSV_COLUMNS.contains(key), "CSV lacks the `{key}` column");
    }
    assert_eq!(
        keys.len(),
        CSV_COLUMNS.len(),
        "CSV has columns the JSON has not"
    );
}

#[test]
fn jsonl_is_the_record_serde_format() {
    let out = render(Format::Jsonl, &[record(), record()]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    let back: FileRecord = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(back, record());
    let value: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(value["byte_size"], 3_000_000_000u64);
    assert_eq!(value["source"], "champ");
}

#[test]
fn csv_quotes_what_needs_quoting() {
    let out = render(Format::Csv, &[record()]);
    let mut lines = out.split("\r\n");
    assert_eq!(lines.next().unwrap(), CSV_COLUMNS.join(","));
    assert_eq!(
        lines.next().unwrap(),
        "1234,42,en_instruction,champ,Q2hhbXAtMQ==,\"Pièce, \"\"justificative\"\"\",2,0,\"a\nb.pdf\",\
         application/pdf,3000000000,1B2M2Y8AsgTpgAmY7PhCfg==,https://files.example/a?sig=1,safe,"
    );
}

#[test]
fn empty_csv_still_has_its_header_and_empty_jsonl_is_empty() {
    assert_eq!(
        render(Format::Csv, &[]),
        format!("{}\r\n", CSV_COLUMNS.join(","))
    );
    assert_eq!(render(Format::Jsonl, &[]), "");
}

#[test]
fn csv_field_escaping() {
    let check = |field: &str, expected: &str| {
        let mut line = String::new();
        push_csv_field(&mut line, field);
        assert_eq!(line, expected, "{field:?}");
    };
    check("plain.pdf", "plain.pdf");
    check("", "");
    check("a,b", "\"a,b\"");
    check("say \"hi\"", "\"say \"\"hi\"\"\"");
    check("line\r\nbreak", "\"line\r\nbreak\"");
    check(" padded ", "\" padded \"");
}

#[test]
fn table_neutralises_control_characters() {
    let out = render(Format::Table, &[record()]);
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    let row = lines.next().unwrap();
    // The header's columns start where the values do.
    for (title, value) in [
        ("SOURCE", "champ"),
        ("LABEL", "Pièce"),
        ("SCAN", "safe"),
        ("FILENAME", "a\\u"),
    ] {
        let column = |line: &str, s: &str| line[..line.find(s).unwrap()].chars().count();
        assert_eq!(
            column(header, title),
            column(row, value),
            "{title}:\n{header}\n{row}"
        );
    }
    assert!(row.contains("a\\u{a}b.pdf"), "{row}");
    assert!(row.contains("2.8 GiB"), "{row}");
    assert!(lines.next().is_none());
}
