use super::*;

fn record() -> FileRecord {
    FileRecord {
        demarche: 7,
        dossier: 1234,
        state: "accepte".to_owned(),
        source: Source::Champ,
        champ_id: Some("Q2hhbXAtMQ==".to_owned()),
        label: "Justificatif".to_owned(),
        row: None,
        index: 1,
        filename: "a.pdf".to_owned(),
        content_type: "application/pdf".to_owned(),
        byte_size: 3_221_225_472,
        checksum: "rL0Y20zC+Fzt72VPzMSk2A==".to_owned(),
        url: "https://files.example/blob/a.pdf?X-Signature=s3cr3t&expires=1".to_owned(),
        virus_scan: "safe".to_owned(),
        created_at: Some("2024-05-01T10:00:00+02:00".to_owned()),
    }
}

#[test]
fn file_id_is_the_slot() {
    let r = record();
    assert_eq!(r.file_id(), "1234/champ/Q2hhbXAtMQ==/-/1");
    let in_row = FileRecord {
        row: Some(2),
        ..record()
    };
    assert_eq!(in_row.file_id(), "1234/champ/Q2hhbXAtMQ==/2/1");
    let attestation = FileRecord {
        source: Source::Attestation,
        champ_id: None,
        index: 0,
        ..record()
    };
    assert_eq!(attestation.file_id(), "1234/attestation/-/-/0");
}

#[test]
fn file_id_ignores_content_and_url() {
    let reuploaded = FileRecord {
        filename: "other.pdf".to_owned(),
        checksum: "AAAAAAAAAAAAAAAAAAAAAA==".to_owned(),
        byte_size: 1,
        url: "https://elsewhere.example/b?sig=2".to_owned(),
        label: "Renamed champ".to_owned(),
        state: "refuse".to_owned(),
        ..record()
    };
    assert_eq!(reuploaded.file_id(), record().file_id());
    let sibling = FileRecord {
        index: 0,
        ..record()
    };
    assert_ne!(sibling.file_id(), record().file_id());
}

#[test]
fn verifiable_by_source() {
    for source in Source::ALL {
        let r = FileRecord { source, ..record() };
        assert_eq!(
            r.verifiable(),
            !matches!(source, Source::Pdf | Source::Geojson),
            "{source}"
        );
    }
}

#[test]
fn wire_format() {
    let json = serde_json::to_value(record()).unwrap_or_default();
    let expected = serde_json::json!({
        "demarche": 7,
        "dossier": 1234,
        "state": "accepte",
        "source": "champ",
        "champ_id": "Q2hhbXAtMQ==",
        "label": "Justificatif",
        "row": null,
        "index": 1,
        "filename": "a.pdf",
        "content_type": "application/pdf",
        "byte_size": 3_221_225_472_u64,
        "checksum": "rL0Y20zC+Fzt72VPzMSk2A==",
        "url": "https://files.example/blob/a.pdf?X-Signature=s3cr3t&expires=1",
        "virus_scan": "safe",
        "created_at": "2024-05-01T10:00:00+02:00",
    });
    assert_eq!(json, expected);
    let back: Option<FileRecord> = serde_json::from_value(json).ok();
    assert_eq!(back, Some(record()));
}

#[test]
fn source_names_match_serde() {
    for source in Source::ALL {
        assert_eq!(
            serde_json::to_value(source).ok(),
            Some(serde_json::Value::from(source.as_str()))
        );
    }
}

#[test]
fn debug_hides_the_signature() {
    let debug = format!("{:?}", record());
    assert!(!debug.contains("s3cr3t"), "{debug}");
    assert!(
        debug.contains("https://files.example/blob/a.pdf?<redacted>"),
        "{debug}"
    );
    assert_eq!(
        record().url_without_query(),
        "https://files.example/blob/a.pdf"
    );
}
