//! `dsfiles index` on a destination synced from the simulator: one record per stored file, in
//! every format, without DS or a token; unreadable shards warned about; no state is an error.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use dsfiles_sim::SimConfig;

use crate::sim::{Sim, stored_files};
use crate::{dsfiles, stderr};

/// `dsfiles index --dest DEST ARGS` with no token, and a DS endpoint nothing listens on: the
/// command must need neither.
fn index(dest: &Path, args: &[&str]) -> Output {
    dsfiles()
        .env("DS_API_TOKEN", "")
        .env("DS_API_URL", "http://127.0.0.1:9/graphql")
        .args(["index", "--dest", dest.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

/// A destination synced from a small simulated démarche.
fn synced() -> (Sim, tempfile::TempDir) {
    let sim = Sim::start(SimConfig {
        dossiers: 12,
        ..SimConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let output = sim.sync(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    (sim, dir)
}

/// The JSON Lines output as `key → (sha256, size)`, checking each record's shape.
fn jsonl_files(stdout: &[u8]) -> BTreeMap<String, (String, u64)> {
    let text = std::str::from_utf8(stdout).unwrap();
    let mut files = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["version"], 1, "{v}");
        assert!(
            v["dossier"].as_u64().is_some() && v["status"].is_string(),
            "{v}"
        );
        let key = v["key"].as_str().unwrap().to_owned();
        let sha = v["sha256"].as_str().unwrap().to_owned();
        let previous = files.insert(key, (sha, v["size"].as_u64().unwrap()));
        assert!(previous.is_none(), "a key indexed twice: {line}");
    }
    files
}

/// CSV records (not lines: a quoted field may hold a line break).
fn csv_records(text: &str) -> usize {
    let mut quoted = false;
    let mut records = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\r' if !quoted && chars.peek() == Some(&'\n') => records += 1,
            _ => {}
        }
    }
    records
}

#[test]
fn index_lists_every_stored_file_in_every_format_without_ds() {
    let (_sim, dir) = synced();
    let dest = dir.path();
    let output = index(dest, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let indexed = jsonl_files(&output.stdout);
    let stored = stored_files(dest);
    assert!(!stored.is_empty());
    let expected: BTreeMap<String, (String, u64)> = stored
        .into_iter()
        .map(|(key, sha)| {
            let size = std::fs::metadata(dest.join(&key)).unwrap().len();
            (key, (sha, size))
        })
        .collect();
    assert_eq!(indexed, expected, "the index differs from the files stored");
    assert!(stderr(&output).contains(&format!("{} files", expected.len())));

    let csv = index(dest, &["--format", "csv"]);
    assert_eq!(csv.status.code(), Some(0), "{}", stderr(&csv));
    let text = String::from_utf8(csv.stdout).unwrap();
    assert!(
        text.starts_with("version,demarche,dossier,state,"),
        "{text}"
    );
    assert_eq!(csv_records(&text), expected.len() + 1);

    let table = index(dest, &["--format", "table"]);
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.starts_with("  DOSSIER  SOURCE"), "{text}");
    assert_eq!(text.lines().count(), expected.len() + 1, "{text}");
    assert!(
        !text.contains(|c: char| c.is_control() && c != '\n'),
        "{text}"
    );
}

#[test]
fn index_filters_by_dossier_and_status_and_warns_about_corrupt_shards() {
    let (sim, dir) = synced();
    let dest = dir.path();
    let shards = dest.join(".dsfiles/dossiers");
    let mut numbers: Vec<u64> = std::fs::read_dir(&shards)
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".json").unwrap().parse().unwrap()
        })
        .collect();
    numbers.sort_unstable();
    let (first, second) = (numbers[0].to_string(), numbers[1].to_string());

    let one = index(dest, &["--dossier", &first, "--demarche", &sim.demarche()]);
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    let text = String::from_utf8(one.stdout).unwrap();
    assert!(!text.is_empty());
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["dossier"].to_string(), first, "{line}");
    }
    let other_demarche = index(dest, &["--demarche", "1"]);
    assert_eq!(other_demarche.status.code(), Some(0));
    assert!(other_demarche.stdout.is_empty());
    let none_removed = index(dest, &["--status", "removed_upstream"]);
    assert_eq!(none_removed.status.code(), Some(0));
    assert!(none_removed.stdout.is_empty());
    let bad_status = index(dest, &["--status", "gone"]);
    assert_eq!(bad_status.status.code(), Some(2), "{}", stderr(&bad_status));

    std::fs::write(shards.join(format!("{second}.json")), b"{ torn").unwrap();
    let all = index(dest, &[]);
    assert_eq!(all.status.code(), Some(1), "{}", stderr(&all));
    let err = stderr(&all);
    assert!(
        err.contains(&format!(
            "unreadable manifest shard `.dsfiles/dossiers/{second}.json`"
        )),
        "{err}"
    );
    let indexed = jsonl_files(&all.stdout);
    assert!(indexed.keys().any(|k| k.starts_with(&format!("{first}/"))));
    assert!(!indexed.keys().any(|k| k.starts_with(&format!("{second}/"))));
}

#[test]
fn index_of_a_destination_without_state_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let output = index(&missing, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("does not exist"),
        "{}",
        stderr(&output)
    );
    assert!(!missing.exists(), "index created the destination");

    let output = index(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("holds no dsfiles state"),
        "{}",
        stderr(&output)
    );
    assert!(output.stdout.is_empty());
}
