use bytes::Bytes;
use chrono::TimeZone as _;

use super::*;

fn file(dossier: u64, name: &str, status: FileStatus) -> ShardFile {
    ShardFile {
        file_id: format!("{dossier}/champ/Q2g=/-/{}", name.len()),
        key: format!("{dossier}/champ/Pièce/{name}"),
        source: Source::Champ,
        label: "Pièce".into(),
        filename: name.into(),
        content_type: "application/pdf".into(),
        checksum: "1B2M2Y8AsgTpgAmY7PhCfg==".into(),
        sha256: "e3b0".into(),
        size: 3,
        stored_at: Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).single().unwrap(),
        status,
    }
}

fn shard(demarche: u64, dossier: u64, files: Vec<ShardFile>) -> String {
    let mut shard = Shard::new(demarche, dossier);
    shard.state = "accepte".into();
    shard.files = files;
    serde_json::to_string(&shard).unwrap()
}

/// A destination holding `objects` (key, content), indexed with `opts`: each item as a line
/// (`dossier N (files)`, `record KEY STATUS`, `warning ...`, `error ...`).
async fn index_lines(objects: &[(&str, String)], opts: IndexOptions) -> Vec<String> {
    let sink = crate::sink::memory();
    for (key, content) in objects {
        sink.put_small(key, Bytes::from(content.clone()))
            .await
            .unwrap();
    }
    let items: Vec<_> = index(sink, opts, CancellationToken::new()).collect().await;
    items
        .into_iter()
        .map(|item| match item {
            Ok(IndexItem::Dossier { number, files }) => format!("dossier {number} ({files})"),
            Ok(IndexItem::Record(r)) => format!("record {} {}", r.key, r.status),
            Ok(IndexItem::Warning(w)) => format!("warning {w}"),
            Err(e) => format!("error {e}"),
        })
        .collect()
}

async fn check(objects: &[(&str, String)], opts: IndexOptions, expected: &[&str]) {
    assert_eq!(index_lines(objects, opts).await, expected);
}

/// Two démarches, a removed file, a corrupt shard and a non-shard object.
fn destination() -> Vec<(&'static str, String)> {
    vec![
        (
            ".dsfiles/dossiers/10.json",
            shard(1, 10, vec![file(10, "a.pdf", FileStatus::Ok)]),
        ),
        (".dsfiles/dossiers/11.json", "{ not json".into()),
        (
            ".dsfiles/dossiers/9.json",
            shard(
                2,
                9,
                vec![
                    file(9, "b.pdf", FileStatus::RemovedUpstream),
                    file(9, "c.pdf", FileStatus::Ok),
                ],
            ),
        ),
        (".dsfiles/dossiers/notes.txt", "not a shard".into()),
        ("10/champ/Pièce/a.pdf", "abc".into()),
    ]
}

#[tokio::test]
async fn every_file_in_key_order_with_warnings_for_unreadable_shards() {
    let opts = IndexOptions::default();
    let lines = index_lines(&destination(), opts).await;
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert_eq!(lines[0], "dossier 10 (1)");
    assert_eq!(lines[1], "record 10/champ/Pièce/a.pdf ok");
    assert!(
        lines[2].starts_with("warning unreadable manifest shard `.dsfiles/dossiers/11.json`: "),
        "{}",
        lines[2]
    );
    assert_eq!(
        lines[3..],
        [
            "dossier 9 (2)",
            "record 9/champ/Pièce/b.pdf removed_upstream",
            "record 9/champ/Pièce/c.pdf ok",
        ]
    );
}

#[tokio::test]
async fn filters_select_demarche_dossiers_and_status() {
    let dest = destination();
    let demarche_2 = IndexOptions {
        demarche: Some(2),
        ..IndexOptions::default()
    };
    let lines = index_lines(&dest, demarche_2).await;
    assert_eq!(lines.len(), 4, "the corrupt shard still warns: {lines:#?}");
    assert_eq!(lines[3], "record 9/champ/Pièce/c.pdf ok");

    let dossiers = IndexOptions {
        dossiers: vec![12, 10, 9, 10],
        ..IndexOptions::default()
    };
    check(
        &dest,
        dossiers,
        &[
            "dossier 9 (2)",
            "record 9/champ/Pièce/b.pdf removed_upstream",
            "record 9/champ/Pièce/c.pdf ok",
            "dossier 10 (1)",
            "record 10/champ/Pièce/a.pdf ok",
            "warning dossier `12` has no manifest shard (`.dsfiles/dossiers/12.json`): \
             nothing of it is stored",
        ],
    )
    .await;

    let removed = IndexOptions {
        dossiers: vec![9, 10],
        status: Some(FileStatus::RemovedUpstream),
        ..IndexOptions::default()
    };
    check(
        &dest,
        removed,
        &[
            "dossier 9 (1)",
            "record 9/champ/Pièce/b.pdf removed_upstream",
            "dossier 10 (0)",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_destination_without_state_is_an_error() {
    let expected = "error invalid option `dest`: `memory://` holds no dsfiles state (nothing \
                    under `.dsfiles/`): it is not a destination `dsfiles sync` wrote";
    check(&[], IndexOptions::default(), &[expected]).await;
    let only_files = [("a/b.pdf", "abc".to_owned())];
    let opts = IndexOptions {
        dossiers: vec![1],
        ..IndexOptions::default()
    };
    check(&only_files, opts, &[expected]).await;
    // A synced destination with no dossier yet is an empty index, not an error.
    let run = [(".dsfiles/runs/r.json", "{}".to_owned())];
    check(&run, IndexOptions::default(), &[]).await;
}

#[tokio::test]
async fn deleted_dossiers_carry_their_deletion_time() {
    let mut deleted = Shard::new(1, 5);
    deleted.deleted_at = Some("2025-03-02T00:00:00Z".into());
    deleted.files = vec![file(5, "d.pdf", FileStatus::Ok)];
    let sink = crate::sink::memory();
    let json = serde_json::to_vec(&deleted).unwrap();
    sink.put_small(&shard_key(5), Bytes::from(json))
        .await
        .unwrap();
    let items: Vec<_> = index(sink, IndexOptions::default(), CancellationToken::new())
        .collect()
        .await;
    let Some(Ok(IndexItem::Record(record))) = items.get(1) else {
        panic!("{items:#?}");
    };
    assert_eq!(record.deleted_at.as_deref(), Some("2025-03-02T00:00:00Z"));
    assert_eq!(record.version, WIRE_VERSION);
}

/// [`STATUSES`] holds each status once, in order; the exhaustive match makes a new
/// [`FileStatus`] variant come here, to be added to both.
#[test]
fn statuses_lists_every_status() {
    for status in STATUSES {
        let position = match status {
            FileStatus::Ok => 0,
            FileStatus::ChecksumMismatch => 1,
            FileStatus::Pending => 2,
            FileStatus::Unverified => 3,
            FileStatus::RemovedUpstream => 4,
        };
        assert_eq!(STATUSES.get(position), Some(&status));
    }
    assert_eq!(STATUSES.len(), 5);
}

/// A shard naming its dossier.json at `{dossier}/dossier.json`.
fn shard_with_data(dossier: u64, files: Vec<ShardFile>) -> String {
    let mut shard = Shard::new(1, dossier);
    shard.files = files;
    shard.data = Some(crate::wire::ShardData {
        key: format!("{dossier}/dossier.json"),
        sha256: "ab".into(),
        md5: "cd".into(),
        size: 2,
        stored_at: Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).single().unwrap(),
    });
    serde_json::to_string(&shard).unwrap()
}

fn dossier_json(dossier: u64, demandeur: serde_json::Value) -> String {
    let json = serde_json::json!({
        "number": dossier, "state": "accepte", "dateDepot": "2024-03-01T09:00:00+01:00",
        "dateTraitement": "2024-03-04T11:00:00+01:00",
        "demarche": {"number": 1, "title": "Aides", "service": {"nom": "Service"}},
        "groupeInstructeur": {"number": 11, "label": "Nord/Est"},
        "demandeur": demandeur,
    });
    let context = crate::extract::context(1, &json).unwrap();
    String::from_utf8(DossierData::new(context, &[]).to_bytes()).unwrap()
}

#[tokio::test]
async fn records_carry_their_dossier_fields_from_dossier_json() {
    let sink = crate::sink::memory();
    let person = serde_json::json!({"__typename": "PersonnePhysique", "civilite": "Mme", "nom": "Dupont", "prenom": "Zoé"});
    let company = serde_json::json!({"__typename": "PersonneMorale", "siret": "13002526500013",
        "entreprise": {"siren": "130025265", "raisonSociale": "ACME"}});
    let objects = [
        (
            ".dsfiles/dossiers/7.json",
            shard_with_data(
                7,
                vec![
                    file(7, "a.pdf", FileStatus::Ok),
                    file(7, "bb.pdf", FileStatus::Ok),
                ],
            ),
        ),
        ("7/dossier.json", dossier_json(7, person)),
        (
            ".dsfiles/dossiers/8.json",
            shard_with_data(8, vec![file(8, "c.pdf", FileStatus::Ok)]),
        ),
        ("8/dossier.json", dossier_json(8, company)),
        (
            ".dsfiles/dossiers/9.json",
            shard_with_data(9, vec![file(9, "d.pdf", FileStatus::Ok)]),
        ),
        ("9/dossier.json", "{\"version\": 2}".to_owned()),
        (
            ".dsfiles/dossiers/6.json",
            shard(1, 6, vec![file(6, "e.pdf", FileStatus::Ok)]),
        ),
    ];
    for (key, content) in &objects {
        sink.put_small(key, Bytes::from(content.clone()))
            .await
            .unwrap();
    }
    let items: Vec<_> = index(sink, IndexOptions::default(), CancellationToken::new())
        .collect()
        .await;
    let mut fields = std::collections::BTreeMap::new();
    let mut warnings = Vec::new();
    for item in items {
        match item.unwrap() {
            IndexItem::Record(r) => {
                let f = &r.fields;
                let line = format!(
                    "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                    f.demandeur,
                    f.applicant,
                    f.groupe,
                    f.deposited_at,
                    f.processed_at,
                    f.siren,
                    f.civilite
                );
                fields.insert(r.key.clone(), line);
            }
            IndexItem::Warning(w) => warnings.push(w),
            IndexItem::Dossier { .. } => {}
        }
    }
    let person = r#"Some("Dupont Zoé") Some("person") Some("Nord/Est") Some("2024-03-01T09:00:00+01:00") Some("2024-03-04T11:00:00+01:00") None Some("Mme")"#;
    let company = r#"Some("ACME") Some("company") Some("Nord/Est") Some("2024-03-01T09:00:00+01:00") Some("2024-03-04T11:00:00+01:00") Some("130025265") None"#;
    let none = "None None None None None None None";
    assert_eq!(fields["7/champ/Pièce/a.pdf"], person);
    assert_eq!(fields["7/champ/Pièce/bb.pdf"], person);
    assert_eq!(fields["8/champ/Pièce/c.pdf"], company);
    assert_eq!(fields["9/champ/Pièce/d.pdf"], none);
    assert_eq!(fields["6/champ/Pièce/e.pdf"], none);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("dossier `9`: cannot read its dossier.json `9/dossier.json` (version `2` is not supported"),
        "{warnings:?}"
    );
}
