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
        updated: 0,
        skipped_unscanned: vec![],
        flagged: vec![],
        failed: vec![],
        deleted_dossiers: vec![],
        removed_upstream: 0,
        pruned: false,
        kept: vec![],
        warnings: vec![],
        bytes_downloaded: 0,
        duration_secs: 0.0,
        mb_per_sec: 0.0,
        api: crate::ds::Stats::default(),
        api_calls: crate::wire::ApiCalls::default(),
        sync_point_advanced: false,
        cancelled: false,
        lease_lost: false,
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
