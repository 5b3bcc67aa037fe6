use chrono::TimeZone;
use dsfiles_extract::Source;

use super::*;
use crate::wire::FileStatus;

const SHA: &str = "aa";

fn entry(key: &str) -> ShardFile {
    ShardFile {
        file_id: "7/champ/c/-/0".into(),
        key: key.into(),
        source: Source::Champ,
        label: "Pièce".into(),
        filename: "a.pdf".into(),
        content_type: "application/pdf".into(),
        checksum: "md5".into(),
        sha256: SHA.into(),
        size: 3,
        stored_at: chrono::Utc.timestamp_opt(0, 0).unwrap(),
        status: FileStatus::Ok,
    }
}

fn present(size: u64, sha256: Option<&str>) -> Found {
    Found::Present {
        size,
        sha256: sha256.map(str::to_owned),
    }
}

/// `expected`: the verdict's kind, and a part of its reason.
fn check(key: &str, found: Found, expected: (&str, &str)) {
    let verdict = decide(&entry(key), &found);
    let got = match &verdict {
        Verdict::Ours => ("ours", ""),
        Verdict::Absent => ("absent", ""),
        Verdict::Foreign(reason) => ("foreign", reason.as_str()),
        Verdict::Unknown(reason) => ("unknown", reason.as_str()),
    };
    assert_eq!(got.0, expected.0, "{key} {found:?}: {verdict:?}");
    assert!(got.1.contains(expected.1), "{key} {found:?}: {verdict:?}");
}

#[test]
fn only_what_dsfiles_stored_may_go() {
    check("1/champ/a.pdf", present(3, Some(SHA)), ("ours", ""));
    check("1/champ/a.pdf", Found::Absent, ("absent", ""));
    check("1/champ/a.pdf", present(4, None), ("foreign", "`4` bytes"));
    check("1/champ/a.pdf", present(3, Some("bb")), ("foreign", "`bb`"));
    check("1/champ/a.pdf", present(3, None), ("unknown", "not read"));
    let unreadable = Found::Unreadable("permission denied".into());
    check(
        "1/champ/a.pdf",
        unreadable,
        ("unknown", "permission denied"),
    );
}

#[test]
fn state_and_invalid_keys_are_never_ours() {
    // Even holding exactly the recorded bytes.
    for key in [
        ".dsfiles/sync.json",
        ".DSFILES/dossiers/1.json",
        ".dsfiles",
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a//b",
        "",
    ] {
        check(key, present(3, Some(SHA)), ("foreign", ""));
        check(key, Found::Absent, ("foreign", ""));
    }
}

#[test]
fn unusable_entries_are_refused_when_the_shard_is_read() {
    let mut shard = Shard::new(1, 7);
    shard.files = vec![
        entry("7/champ/a.pdf"),
        entry(".dsfiles/sync.json"),
        entry("../x"),
        entry("other/precious.txt"),
    ];
    let warnings = refuse_unusable_entries(&mut shard);
    let keys: Vec<&str> = shard.files.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["7/champ/a.pdf", "other/precious.txt"]);
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings[0].contains("dossier `7`"), "{}", warnings[0]);
}
