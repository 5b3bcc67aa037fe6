use chrono::TimeZone;

use dsfiles_extract::Source;

use super::*;

fn record(champ: &str, filename: &str, checksum: &str, scan: &str) -> FileRecord {
    FileRecord {
        demarche: 1,
        dossier: 7,
        state: "accepte".into(),
        source: Source::Champ,
        champ_id: Some(champ.into()),
        label: "Pièce".into(),
        row: None,
        index: 0,
        filename: filename.into(),
        content_type: "application/pdf".into(),
        byte_size: 3,
        checksum: checksum.into(),
        url: "http://files.test/x?sig=secret".into(),
        virus_scan: scan.into(),
        created_at: None,
    }
}

fn pdf() -> FileRecord {
    FileRecord {
        source: Source::Pdf,
        champ_id: None,
        label: "dossier".into(),
        filename: "dossier.pdf".into(),
        byte_size: 0,
        checksum: String::new(),
        ..record("-", "dossier.pdf", "", "safe")
    }
}

fn entry(record: &FileRecord, key: &str, status: FileStatus) -> ShardFile {
    ShardFile {
        file_id: record.file_id(),
        key: key.into(),
        source: record.source,
        label: record.label.clone(),
        filename: record.filename.clone(),
        content_type: record.content_type.clone(),
        checksum: record.checksum.clone(),
        sha256: "00".into(),
        size: record.byte_size,
        stored_at: chrono::Utc
            .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
            .single()
            .unwrap(),
        status,
    }
}

fn shard(updated_at: &str, files: Vec<ShardFile>) -> Shard {
    Shard {
        updated_at: Some(updated_at.into()),
        files,
        ..Shard::new(1, 7)
    }
}

struct Case<'a> {
    records: Vec<FileRecord>,
    shard: Option<Shard>,
    updated_at: &'a str,
    allow_unscanned: bool,
    /// Keys held by other dossiers of the run.
    taken: &'a [&'a str],
    layout: &'a str,
    context: Option<dsfiles_extract::DossierContext>,
}

impl Default for Case<'_> {
    fn default() -> Self {
        Case {
            records: vec![],
            shard: None,
            updated_at: "t1",
            allow_unscanned: false,
            taken: &[],
            layout: Layout::DEFAULT,
            context: None,
        }
    }
}

/// Plans `case` and compares a one-line summary of each action (and removal) with `expected`.
fn check(case: Case<'_>, expected: &[&str]) {
    let layout = Layout::parse(case.layout).unwrap();
    let mut keys = KeyAllocator::new();
    for (i, key) in case.taken.iter().enumerate() {
        keys.insert_existing(&format!("other/{i}"), RelKey::parse(key).unwrap())
            .unwrap();
    }
    if let Some(shard) = &case.shard {
        assert!(hold_shard_keys(shard, &mut keys).unwrap().is_empty());
    }
    let plan = plan(
        PlanInput {
            records: case.records,
            shard: case.shard.as_ref(),
            updated_at: Some(case.updated_at),
            allow_unscanned: case.allow_unscanned,
            context: case.context.as_ref(),
        },
        &layout,
        &mut keys,
    )
    .unwrap();
    let mut got: Vec<String> = plan
        .actions
        .iter()
        .map(|action| match action {
            Action::Unchanged { entry } => format!("unchanged {}", entry.key),
            Action::Update { entry } => format!("update {} {}", entry.key, entry.status),
            Action::Unscanned { record, entry } => format!(
                "unscanned {} {}{}",
                record.filename,
                record.virus_scan,
                if entry.is_some() { " (kept)" } else { "" }
            ),
            Action::Download(d) => format!(
                "download {} {}{}",
                d.key.as_ref().map_or("<after sha256>", RelKey::as_str),
                d.status,
                if d.new_key { " new" } else { "" }
            ),
            Action::Move { entry, to } => format!("move {} -> {to}", entry.key),
        })
        .collect();
    got.extend(
        plan.removed
            .iter()
            .map(|f| format!("removed {} {}", f.key, f.status)),
    );
    got.extend(plan.warnings.iter().map(|w| format!("warning {w}")));
    assert_eq!(got, expected);
}

const A: &str = "7/champ/Pièce/a.pdf";

#[test]
fn new_files_are_downloaded_with_fresh_keys() {
    let mut second = record("c1", "a.pdf", "BBB=", "safe");
    second.index = 1;
    check(
        Case {
            records: vec![record("c1", "a.pdf", "AAA=", "safe"), second],
            ..Case::default()
        },
        &[
            "download 7/champ/Pièce/a.pdf ok new",
            "download 7/champ/Pièce/a (2).pdf ok new",
        ],
    );
}

#[test]
fn same_checksum_is_unchanged() {
    let r = record("c1", "a.pdf", "AAA=", "safe");
    for status in [FileStatus::Ok, FileStatus::ChecksumMismatch] {
        check(
            Case {
                shard: Some(shard("t0", vec![entry(&r, A, status)])),
                records: vec![r.clone()],
                ..Case::default()
            },
            &["unchanged 7/champ/Pièce/a.pdf"],
        );
    }
}

#[test]
fn changed_checksum_keeps_the_key() {
    let r = record("c1", "a.pdf", "AAA=", "safe");
    let old = ShardFile {
        checksum: "OLD=".into(),
        ..entry(&r, A, FileStatus::Ok)
    };
    check(
        Case {
            shard: Some(shard("t0", vec![old])),
            records: vec![r],
            ..Case::default()
        },
        &["download 7/champ/Pièce/a.pdf ok"],
    );
}

#[test]
fn a_suffixed_key_is_kept() {
    let r = record("c1", "a.pdf", "AAA=", "safe");
    let old = ShardFile {
        checksum: "OLD=".into(),
        ..entry(&r, "7/champ/Pièce/a (2).pdf", FileStatus::Ok)
    };
    check(
        Case {
            shard: Some(shard("t0", vec![old])),
            records: vec![r],
            ..Case::default()
        },
        &["download 7/champ/Pièce/a (2).pdf ok"],
    );
}

#[test]
fn keys_reserved_by_the_run_are_not_reused() {
    check(
        Case {
            records: vec![record("c1", "A.pdf", "AAA=", "safe")],
            taken: &[A],
            ..Case::default()
        },
        &["download 7/champ/Pièce/A (2).pdf ok new"],
    );
}

#[test]
fn pending_scan() {
    let pending = record("c1", "a.pdf", "AAA=", "pending");
    let safe = record("c1", "a.pdf", "AAA=", "safe");
    // New and pending: downloaded, stored as pending.
    check(
        Case {
            records: vec![pending.clone()],
            ..Case::default()
        },
        &["download 7/champ/Pièce/a.pdf pending new"],
    );
    // Still pending, same bytes: kept (re-checked next run).
    check(
        Case {
            shard: Some(shard("t0", vec![entry(&pending, A, FileStatus::Pending)])),
            records: vec![pending.clone()],
            ..Case::default()
        },
        &["unchanged 7/champ/Pièce/a.pdf"],
    );
    // Now safe, same checksum: status updated, no download.
    check(
        Case {
            shard: Some(shard("t0", vec![entry(&pending, A, FileStatus::Pending)])),
            records: vec![safe.clone()],
            ..Case::default()
        },
        &["update 7/champ/Pièce/a.pdf ok"],
    );
    // Rewritten by DS after its scan: downloaded again.
    let rewritten = record("c1", "a.pdf", "NEW=", "safe");
    check(
        Case {
            shard: Some(shard("t0", vec![entry(&pending, A, FileStatus::Pending)])),
            records: vec![rewritten],
            ..Case::default()
        },
        &["download 7/champ/Pièce/a.pdf ok"],
    );
}

#[test]
fn unscanned_files_are_skipped_unless_allowed() {
    let infected = record("c1", "a.pdf", "AAA=", "infected");
    check(
        Case {
            records: vec![infected.clone()],
            ..Case::default()
        },
        &["unscanned a.pdf infected"],
    );
    check(
        Case {
            shard: Some(shard("t0", vec![entry(&infected, A, FileStatus::Ok)])),
            records: vec![infected.clone()],
            ..Case::default()
        },
        &["unscanned a.pdf infected (kept)"],
    );
    check(
        Case {
            records: vec![infected],
            allow_unscanned: true,
            ..Case::default()
        },
        &["download 7/champ/Pièce/a.pdf ok new"],
    );
}

#[test]
fn unverifiable_files_follow_the_dossier_update_time() {
    let p = pdf();
    let stored = || {
        Some(shard(
            "t1",
            vec![entry(
                &pdf(),
                "7/pdf/dossier/dossier.pdf",
                FileStatus::Unverified,
            )],
        ))
    };
    check(
        Case {
            records: vec![p.clone()],
            ..Case::default()
        },
        &["download 7/pdf/dossier/dossier.pdf unverified new"],
    );
    check(
        Case {
            records: vec![p.clone()],
            shard: stored(),
            updated_at: "t1",
            ..Case::default()
        },
        &["unchanged 7/pdf/dossier/dossier.pdf"],
    );
    check(
        Case {
            records: vec![p],
            shard: stored(),
            updated_at: "t2",
            ..Case::default()
        },
        &["download 7/pdf/dossier/dossier.pdf unverified"],
    );
}

#[test]
fn files_gone_from_ds_are_removed_upstream() {
    let kept = record("c1", "a.pdf", "AAA=", "safe");
    let gone = record("c2", "b.pdf", "BBB=", "safe");
    check(
        Case {
            shard: Some(shard(
                "t0",
                vec![
                    entry(&kept, A, FileStatus::Ok),
                    entry(&gone, "7/champ/Pièce/b.pdf", FileStatus::Ok),
                ],
            )),
            records: vec![kept],
            ..Case::default()
        },
        &[
            "unchanged 7/champ/Pièce/a.pdf",
            "removed 7/champ/Pièce/b.pdf removed_upstream",
        ],
    );
}

#[test]
fn duplicate_file_ids_are_reported() {
    let r = record("c1", "a.pdf", "AAA=", "safe");
    check(
        Case {
            records: vec![r.clone(), r],
            ..Case::default()
        },
        &[
            "download 7/champ/Pièce/a.pdf ok new",
            "warning dossier `7`: file `7/champ/c1/-/0` listed twice; the second (`a.pdf`) is ignored",
        ],
    );
}

#[test]
fn sha256_layouts_allocate_after_the_download() {
    check(
        Case {
            records: vec![record("c1", "a.pdf", "AAA=", "safe")],
            layout: "{dossier}/{sha256}",
            ..Case::default()
        },
        &["download <after sha256> ok new"],
    );
}

fn groupe(label: &str) -> Option<dsfiles_extract::DossierContext> {
    let dossier = serde_json::json!({"number": 7, "state": "accepte",
        "groupeInstructeur": {"number": 1, "label": label}});
    Some(dsfiles_extract::context(1, &dossier).unwrap())
}

#[test]
fn a_changed_dossier_value_moves_stored_files() {
    let r = record("c1", "a.pdf", "AAA=", "safe");
    let pending = record("c2", "b.pdf", "BBB=", "safe");
    let layout = "{groupe}/{dossier}/{filename}";
    let stored = |key: &str, r: &FileRecord, status| entry(r, key, status);
    // (groupe now, key stored, other stored files, keys of other dossiers, expected)
    type MoveCase<'a> = (
        &'a str,
        &'a str,
        Vec<ShardFile>,
        &'a [&'a str],
        Vec<&'a str>,
    );
    let cases: Vec<MoveCase<'_>> = vec![
        // Same value: nothing moves.
        (
            "Nord",
            "Nord/7/a.pdf",
            vec![],
            &[],
            vec!["unchanged Nord/7/a.pdf"],
        ),
        // A numbered variant of the rendered key is the same key.
        (
            "Nord",
            "Nord/7/a (2).pdf",
            vec![],
            &[],
            vec!["unchanged Nord/7/a (2).pdf"],
        ),
        // The groupe changed: the file moves; an unusable value falls back.
        (
            "Sud",
            "Nord/7/a.pdf",
            vec![],
            &[],
            vec!["move Nord/7/a.pdf -> Sud/7/a.pdf"],
        ),
        (
            "",
            "Nord/7/a.pdf",
            vec![],
            &[],
            vec!["move Nord/7/a.pdf -> sans-groupe/7/a.pdf"],
        ),
        // The new key is another dossier's: the next number.
        (
            "Sud",
            "Nord/7/a.pdf",
            vec![],
            &["Sud/7/a.pdf"],
            vec!["move Nord/7/a.pdf -> Sud/7/a (2).pdf"],
        ),
        // A pending file whose scan is now safe moves with its status updated.
        (
            "Sud",
            "Nord/7/a.pdf",
            vec![stored("Nord/7/b.pdf", &pending, FileStatus::Pending)],
            &[],
            vec![
                "move Nord/7/a.pdf -> Sud/7/a.pdf",
                "move Nord/7/b.pdf -> Sud/7/b.pdf",
            ],
        ),
    ];
    for (label, key, extra, taken, expected) in cases {
        let mut files = vec![stored(key, &r, FileStatus::Ok)];
        files.extend(extra.clone());
        let mut records = vec![r.clone()];
        if !extra.is_empty() {
            records.push(pending.clone());
        }
        check(
            Case {
                shard: Some(shard("t0", files)),
                records,
                layout,
                taken,
                context: groupe(label),
                ..Case::default()
            },
            &expected,
        );
    }
    // A layout of file values only never moves a stored file.
    check(
        Case {
            shard: Some(shard(
                "t0",
                vec![stored("old/place/a.pdf", &r, FileStatus::Ok)],
            )),
            records: vec![r.clone()],
            context: groupe("Sud"),
            ..Case::default()
        },
        &["unchanged old/place/a.pdf"],
    );
}
