//! `dsfiles list` against the simulator: the output equals its ground truth exactly, even
//! through rate limiting, bad gateways and page timeouts.

use std::collections::BTreeSet;

use dsfiles_sim::{Fault, FaultPlan, SimConfig, Target};

use crate::sim::Sim;
use crate::stderr;

/// What identifies a file in the comparison with the ground truth.
type Key = (u64, String, String, Option<u64>, String, u64, String);

fn truth(sim: &Sim, generated: bool, entreprise: bool) -> BTreeSet<Key> {
    sim.handle
        .expected_files(generated, entreprise)
        .into_iter()
        .map(|f| {
            let row = f.row.map(u64::from);
            (
                f.dossier,
                f.source.as_str().to_owned(),
                f.label,
                row,
                f.filename,
                f.byte_size,
                f.checksum,
            )
        })
        .collect()
}

fn parse_jsonl(stdout: &[u8]) -> Vec<Key> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_owned();
            (
                v["dossier"].as_u64().unwrap(),
                s("source"),
                s("label"),
                v["row"].as_u64(),
                s("filename"),
                v["byte_size"].as_u64().unwrap(),
                s("checksum"),
            )
        })
        .collect()
}

#[test]
fn list_equals_ground_truth_through_429_502_and_timeouts() {
    let faults = FaultPlan::new()
        .with(
            Fault::RateLimited {
                reset_in_secs: 0,
                retry_after: false,
            },
            Target::Every { every: 2 },
            Some(1),
        )
        .with(Fault::BadGateway, Target::Every { every: 3 }, Some(1))
        .with(
            Fault::GraphqlTimeout { above_first: 50 },
            Target::Always,
            Some(1),
        );
    let sim = Sim::start(SimConfig {
        dossiers: 260,
        files_per_dossier: 0..=3,
        faults,
        ..SimConfig::default()
    });
    let demarche = sim.demarche();
    let output = sim
        .dsfiles(&[
            "list",
            "--demarche",
            &demarche,
            "--requests-per-minute",
            "0",
        ])
        .output()
        .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");

    let listed = parse_jsonl(&output.stdout);
    let set: BTreeSet<Key> = listed.iter().cloned().collect();
    assert_eq!(set.len(), listed.len(), "duplicate records");
    let expected = truth(&sim, false, false);
    assert!(expected.len() > 250);
    assert_eq!(set, expected);

    let stats = sim.handle.stats();
    assert!(stats.pages >= 3, "{stats:?}");
    assert!(
        stats.rate_limited >= 1 && stats.server_errors >= 1 && stats.timeouts >= 1,
        "{stats:?}"
    );
    assert!(
        err.contains("260 dossiers") && err.contains(&format!("{} files", expected.len())),
        "{err}"
    );
}

#[test]
fn include_and_formats() {
    let sim = Sim::start(SimConfig {
        dossiers: 5,
        ..SimConfig::default()
    });
    let demarche = sim.demarche();
    let jsonl = sim
        .dsfiles(&[
            "list",
            "--demarche",
            &demarche,
            "--include",
            "pdf,entreprise",
        ])
        .output()
        .unwrap();
    assert!(jsonl.status.success(), "{}", stderr(&jsonl));
    let listed: BTreeSet<Key> = parse_jsonl(&jsonl.stdout).into_iter().collect();
    assert_eq!(listed, truth(&sim, true, true));

    let csv = sim
        .dsfiles(&["list", "--demarche", &demarche, "--format", "csv"])
        .output()
        .unwrap();
    assert!(csv.status.success(), "{}", stderr(&csv));
    let text = String::from_utf8(csv.stdout).unwrap();
    assert!(text.starts_with("demarche,dossier,state,source,"), "{text}");
    // One header plus one line per record (quoted fields may hold line breaks: count records
    // by their démarche prefix at the start of a CRLF line).
    let records = text
        .split("\r\n")
        .filter(|l| l.starts_with(&format!("{demarche},")))
        .count();
    assert_eq!(records, truth(&sim, false, false).len());

    let table = sim
        .dsfiles(&["list", "--demarche", &demarche, "--format", "table"])
        .output()
        .unwrap();
    assert!(table.status.success());
    assert!(
        String::from_utf8(table.stdout)
            .unwrap()
            .contains("FILENAME")
    );
}

#[test]
fn dossiers_ds_cannot_return_are_warnings_and_exit_4() {
    let sim = Sim::start(SimConfig {
        dossiers: 6,
        ..SimConfig::default()
    });
    let victim = sim.handle.dossier_numbers()[2];
    sim.handle.add_fault(
        Fault::InvalidNull,
        Target::Dossier { dossier: victim },
        None,
    );
    let demarche = sim.demarche();
    let output = sim
        .dsfiles(&["list", "--demarche", &demarche])
        .output()
        .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{err}");
    assert!(
        err.contains("invalid_null") || err.contains("incomplete"),
        "{err}"
    );
    let listed = parse_jsonl(&output.stdout);
    assert!(!listed.is_empty() && listed.iter().all(|k| k.0 != victim));
}

#[test]
fn refused_tokens_exit_3_with_one_line() {
    let sim = Sim::start(SimConfig {
        dossiers: 2,
        token: Some("the-good-token".into()),
        expired_tokens: vec!["an-expired-token".into()],
        ..SimConfig::default()
    });
    let demarche = sim.demarche();
    for token in ["a-bad-token", "an-expired-token"] {
        let output = sim
            .dsfiles(&["list", "--demarche", &demarche])
            .env("DS_API_TOKEN", token)
            .output()
            .unwrap();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{token}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(!err.contains("panicked") && !err.contains(token), "{err}");
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn unknown_demarche_exits_3() {
    let sim = Sim::start(SimConfig {
        dossiers: 1,
        ..SimConfig::default()
    });
    let output = sim
        .dsfiles(&["list", "--demarche", "999999"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
}
