use chrono::TimeZone;
use serde_json::json;

use super::*;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).single().unwrap()
}

/// Serializes `value`, checks the JSON equals `expected`, and that it reads back unchanged.
fn check<T>(value: &T, expected: serde_json::Value)
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug,
{
    let json = serde_json::to_value(value).unwrap();
    assert_eq!(json, expected);
    let back: T = serde_json::from_value(json).unwrap();
    assert_eq!(&back, value);
}

#[test]
fn shard_round_trip() {
    let shard = Shard {
        version: WIRE_VERSION,
        demarche: 1234,
        dossier: 7,
        state: "accepte".into(),
        updated_at: Some("2025-03-01T12:00:00+01:00".into()),
        deleted_at: None,
        files: vec![ShardFile {
            file_id: "7/champ/Q2g=/-/0".into(),
            key: "7/champ/Pièce/a.pdf".into(),
            source: Source::Champ,
            label: "Pièce".into(),
            filename: "a.pdf".into(),
            content_type: "application/pdf".into(),
            checksum: "1B2M2Y8AsgTpgAmY7PhCfg==".into(),
            sha256: "e3b0".into(),
            size: 0,
            stored_at: at(),
            status: FileStatus::ChecksumMismatch,
        }],
        data: None,
    };
    check(
        &shard,
        json!({
            "version": 1, "demarche": 1234, "dossier": 7, "state": "accepte",
            "updated_at": "2025-03-01T12:00:00+01:00",
            "files": [{
                "file_id": "7/champ/Q2g=/-/0", "key": "7/champ/Pièce/a.pdf", "source": "champ",
                "label": "Pièce", "filename": "a.pdf", "content_type": "application/pdf",
                "checksum": "1B2M2Y8AsgTpgAmY7PhCfg==", "sha256": "e3b0", "size": 0,
                "stored_at": "2025-03-01T12:00:00Z", "status": "checksum_mismatch"
            }]
        }),
    );
}

#[test]
fn a_shard_records_its_dossier_json_and_older_shards_still_read() {
    let data = ShardData {
        key: "7/dossier.json".into(),
        sha256: "e3b0".into(),
        md5: "1B2M2Y8AsgTpgAmY7PhCfg==".into(),
        size: 12,
        stored_at: at(),
    };
    let shard = Shard {
        data: Some(data),
        ..Shard::new(1, 7)
    };
    check(
        &shard,
        json!({
            "version": 1, "demarche": 1, "dossier": 7, "state": "", "updated_at": null, "files": [],
            "data": {"key": "7/dossier.json", "sha256": "e3b0", "md5": "1B2M2Y8AsgTpgAmY7PhCfg==",
                     "size": 12, "stored_at": "2025-03-01T12:00:00Z"}
        }),
    );
    let old = json!({"version": 1, "demarche": 1, "dossier": 7, "state": "", "updated_at": null, "files": []});
    let old: Shard = serde_json::from_value(old).unwrap();
    assert_eq!(old, Shard::new(1, 7));
}

#[test]
fn sync_point_and_recheck_round_trip() {
    check(
        &SyncPoint {
            version: 1,
            demarche: 9,
            last_success_started_at: at(),
            last_run_id: "r".into(),
        },
        json!({"version": 1, "demarche": 9, "last_success_started_at": "2025-03-01T12:00:00Z", "last_run_id": "r"}),
    );
    check(
        &Recheck {
            version: 1,
            demarche: 9,
            dossiers: vec![3, 5],
        },
        json!({"version": 1, "demarche": 9, "dossiers": [3, 5]}),
    );
}

#[test]
fn events_are_tagged() {
    check(
        &Event::FileStored {
            key: "a/b.pdf".into(),
            bytes: 3,
            status: FileStatus::Pending,
        },
        json!({"type": "file_stored", "key": "a/b.pdf", "bytes": 3, "status": "pending"}),
    );
    check(&Event::Finished, json!({"type": "finished"}));
}

#[test]
fn shard_keys() {
    assert_eq!(shard_key(42), ".dsfiles/dossiers/42.json");
    assert_eq!(dossier_of_shard_key(".dsfiles/dossiers/42.json"), Some(42));
    assert_eq!(dossier_of_shard_key(".dsfiles/dossiers/x.json"), None);
    assert_eq!(dossier_of_shard_key(".dsfiles/sync.json"), None);
}

fn report() -> SyncReport {
    SyncReport {
        version: 1,
        run_id: "r".into(),
        demarche: 1,
        dest: "mem".into(),
        since: None,
        started_at: at(),
        finished_at: at(),
        dossiers: 0,
        files_planned: 0,
        stored: 0,
        skipped_unchanged: 0,
        data_stored: 0,
        data_unchanged: 0,
        moved: 0,
        updated: 0,
        skipped_unscanned: vec![],
        flagged: vec![],
        failed: vec![],
        deleted_dossiers: vec![],
        counts: crate::wire::ListCounts::default(),
        lists: None,
        removed_upstream: 0,
        pruned: false,
        kept: vec![],
        warnings: vec![],
        bytes_downloaded: 0,
        duration_secs: 0.0,
        mb_per_sec: 0.0,
        api: crate::ds::Stats::default(),
        api_calls: crate::wire::ApiCalls::default(),
        state_objects: crate::wire::StateObjects::default(),
        sync_point_advanced: false,
        cancelled: false,
        lease_lost: false,
        layout: None,
    }
}

#[test]
fn exit_status() {
    let ok = report();
    assert_eq!(ok.exit_status(true), RunStatus::Ok);
    let flagged = SyncReport {
        flagged: vec![Flagged {
            dossier: 1,
            file_id: "f".into(),
            key: "k".into(),
            flag: FileStatus::ChecksumMismatch,
            detail: String::new(),
        }],
        ..report()
    };
    assert_eq!(flagged.exit_status(false), RunStatus::Ok);
    assert_eq!(flagged.exit_status(true), RunStatus::FilesFailed);
    let failed = SyncReport {
        failed: vec![Failure {
            dossier: 1,
            file_id: None,
            key: "k".into(),
            reason: "r".into(),
            code: None,
        }],
        ..report()
    };
    assert_eq!(failed.exit_status(false), RunStatus::FilesFailed);
    let cancelled = SyncReport {
        cancelled: true,
        ..failed
    };
    assert_eq!(cancelled.exit_status(false), RunStatus::Cancelled);
    let back: SyncReport =
        serde_json::from_value(serde_json::to_value(&cancelled).unwrap()).unwrap();
    assert_eq!(back, cancelled);
    // A lost lease wins over everything: the run stopped writing because of another writer.
    let lost = SyncReport {
        lease_lost: true,
        ..cancelled
    };
    assert_eq!(lost.exit_status(false), RunStatus::LeaseLost);
}

/// The counts decide, not the (capped) lists: a run whose failures or mismatches are all past
/// the listed ones still fails.
#[test]
fn exit_status_counts_what_the_lists_do_not_show() {
    let counted = |counts| SyncReport { counts, ..report() };
    let failed = counted(crate::wire::ListCounts {
        failed: 1,
        ..Default::default()
    });
    assert_eq!(failed.exit_status(false), RunStatus::FilesFailed);
    let warned = counted(crate::wire::ListCounts {
        warnings: 1,
        ..Default::default()
    });
    assert_eq!(warned.exit_status(false), RunStatus::FilesFailed);
    let mismatch = counted(crate::wire::ListCounts {
        flagged: 1,
        checksum_mismatch: 1,
        ..Default::default()
    });
    assert_eq!(mismatch.exit_status(false), RunStatus::Ok);
    assert_eq!(mismatch.exit_status(true), RunStatus::FilesFailed);
    let pending = counted(crate::wire::ListCounts {
        flagged: 5,
        ..Default::default()
    });
    assert_eq!(pending.exit_status(true), RunStatus::Ok);
}

#[test]
fn lease_key_and_format() {
    assert_eq!(lease_key(42), ".dsfiles/demarches/42/lease");
    let lease = Lease {
        version: WIRE_VERSION,
        holder: Holder {
            host: "h".into(),
            pid: 7,
            replica: None,
            tool: "dsfiles 0.1.0".into(),
            process: None,
        },
        token: "t".into(),
        acquired_at: at(),
        renewed_at: at(),
        expires_at: at(),
    };
    let json = serde_json::to_value(&lease).unwrap();
    assert!(json["holder"].get("replica").is_none(), "{json}");
    assert_eq!(lease.holder.to_string(), "host `h`, pid 7, dsfiles 0.1.0");
    let replica = Holder {
        replica: Some("r-1".into()),
        ..lease.holder.clone()
    };
    assert_eq!(
        replica.to_string(),
        "replica `r-1` (host `h`, pid 7), dsfiles 0.1.0"
    );
    let back: Lease = serde_json::from_value(json).unwrap();
    assert_eq!(back, lease);
}

/// The `dossier.json` of `fixtures/dossiers/context.json` with one stored file: the whole
/// document, as the format (docs/storage.md) fixes it.
#[test]
fn dossier_json_format_version_1() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/dossiers/context.json"
    );
    let dossier: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let context = crate::extract::context(4242, &dossier).unwrap();
    let file = ShardFile {
        file_id: "100004/champ/Q2hhbXAtNA==/-/0".into(),
        key: "100004/champ/Statuts/statuts.pdf".into(),
        source: Source::Champ,
        label: "Statuts".into(),
        filename: "statuts.pdf".into(),
        content_type: "application/pdf".into(),
        checksum: "3w+d9TZa8qEsOJdPZlUArA==".into(),
        sha256: "ab12".into(),
        size: 1024,
        stored_at: at(),
        status: FileStatus::Ok,
    };
    let generated = ShardFile {
        file_id: "100004/pdf/-/-/0".into(),
        key: "100004/pdf/dossier/dossier-100004.pdf".into(),
        source: Source::Pdf,
        label: "dossier".into(),
        filename: "dossier-100004.pdf".into(),
        content_type: "application/pdf".into(),
        checksum: String::new(),
        sha256: "cd34".into(),
        size: 2048,
        stored_at: at(),
        status: FileStatus::Unverified,
    };
    let data = DossierData::new(context, &[generated, file]);
    let champ = |id: &str, label: &str, ty: &str, value: Option<&str>| json!({"id": id, "label": label, "type": ty, "value": value, "rows": null});
    check(
        &data,
        json!({
            "version": 1,
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
                {"id": "Q2hhbXAtNQ==", "label": "Bénéficiaires", "type": "RepetitionChamp", "value": "Alice, Bob",
                 "rows": [
                    {"champs": [champ("Q2hhbXAtNg==", "Nom du bénéficiaire", "TextChamp", Some("Alice"))]},
                    {"champs": [champ("Q2hhbXAtNw==", "Nom du bénéficiaire", "TextChamp", Some("Bob"))]},
                 ]},
            ],
            "annotations": [champ("Q2hhbXAtOA==", "Dossier prioritaire", "CheckboxChamp", Some("Oui"))],
            "messages": [{"id": "Q29tbWVudGFpcmUtMQ==", "created_at": "2024-03-01T09:05:00+01:00",
                          "sender": "contact@example.gouv.fr", "body": "Bonjour, votre dossier a bien été reçu."}],
            "avis": [{"id": "QXZpcy0x", "question": "Quel est votre avis ?", "answer": null,
                      "expert": "expert@example.org", "created_at": "2024-03-03T09:00:00+01:00"}],
            "decision": {"motivation": "Dossier complet.\nAccord donné.", "processed_at": "2024-03-04T11:00:00+01:00"},
            "files": [
                {"key": "100004/champ/Statuts/statuts.pdf", "source": "champ", "label": "Statuts",
                 "filename": "statuts.pdf", "size": 1024, "md5": "3w+d9TZa8qEsOJdPZlUArA==",
                 "sha256": "ab12", "content_type": "application/pdf", "status": "ok"},
                {"key": "100004/pdf/dossier/dossier-100004.pdf", "source": "pdf", "label": "dossier",
                 "filename": "dossier-100004.pdf", "size": 2048, "md5": null,
                 "sha256": "cd34", "content_type": "application/pdf", "status": "unverified"},
            ],
        }),
    );
    let company = json!({"kind": "company", "siret": "13002526500013", "siren": null,
                         "raison_sociale": null, "tva": null, "adresse": null});
    let mut json = serde_json::to_value(&data).unwrap();
    json["applicant"] = company.clone();
    json["decision"] = serde_json::Value::Null;
    let back: DossierData = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), json);
    assert_eq!(data.to_bytes(), data.to_bytes());
    assert!(data.to_bytes().ends_with(b"}\n"));
}
