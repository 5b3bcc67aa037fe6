//! `dsfiles sync` and `dsfiles verify` against the simulator: complete, byte-identical,
//! incremental, through every fault, crash-safe, and never leaking the token.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use dsfiles_sim::{Fault, SimConfig, Target};
use sha2::Digest as _;

use crate::sim::{
    Sim, all_paths, hex, leftovers, stored_data, stored_files, verify, wait_until_published,
};
use crate::stderr;

/// SHA-256 of the bytes the simulator serves for each expected file, as a multiset.
fn served(sim: &Sim, skip: &[u64]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for file in sim.handle.expected_files(false, false) {
        if skip.contains(&file.id) {
            continue;
        }
        let mut bytes = Vec::new();
        sim.handle
            .file_bytes(file.id)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        *out.entry(hex(&sha2::Sha256::digest(&bytes))).or_insert(0) += 1;
    }
    out
}

fn multiset(files: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for sha in files.values() {
        *out.entry(sha.clone()).or_insert(0) += 1;
    }
    out
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn sync_stores_everything_then_moves_nothing_and_verify_catches_damage() {
    let sim = Sim::start(SimConfig {
        dossiers: 30,
        ..SimConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive");
    let summary = dir.path().join("summary.json");
    let summary_arg = summary.to_str().unwrap();

    let first = sim.sync(&dest, &["--summary-json", summary_arg]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let stored = stored_files(&dest);
    assert_eq!(
        multiset(&stored),
        served(&sim, &[]),
        "stored bytes differ from the simulator's"
    );
    let first_report = report(&summary);
    assert!(first_report["bytes_downloaded"].as_u64().unwrap() > 0);
    // One dossier.json per dossier, next to its files, counted in the report.
    let data = stored_data(&dest);
    assert_eq!(data.len(), sim.handle.dossier_numbers().len(), "{data:?}");
    assert_eq!(
        first_report["data_stored"].as_u64(),
        Some(data.len() as u64)
    );
    for number in sim.handle.dossier_numbers() {
        assert!(
            data.contains_key(&format!("{number}/dossier.json")),
            "{number}"
        );
    }
    assert!(leftovers(&dest).is_empty());

    let again = sim.sync(&dest, &["--summary-json", summary_arg, "--full"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let again_report = report(&summary);
    assert_eq!(again_report["bytes_downloaded"], 0, "{again_report}");
    assert_eq!(again_report["stored"], 0);
    assert_eq!(again_report["data_stored"], 0, "{again_report}");

    let ok = verify(&dest);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));

    // Damage two files: flip a byte in one, delete another.
    let mut keys = stored
        .keys()
        .filter(|k| std::fs::metadata(dest.join(k)).unwrap().len() > 0);
    let corrupted = keys.next().unwrap().clone();
    let removed = keys.next().unwrap().clone();
    let mut bytes = std::fs::read(dest.join(&corrupted)).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(dest.join(&corrupted), bytes).unwrap();
    std::fs::remove_file(dest.join(&removed)).unwrap();
    let bad = verify(&dest);
    let err = stderr(&bad);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("corrupt `{corrupted}`")), "{err}");
    assert!(err.contains(&format!("missing `{removed}`")), "{err}");
}

/// `--dossier` naming a dossier DS deleted since the last sync: recorded as deleted (its files
/// marked `removed_upstream`, as a full run would), the others synced, exit 0. Naming one DS
/// never had: the others are synced, the unknown one is one warning (printed once) and the run
/// exits 4 (DS could not return some dossiers).
#[test]
fn named_dossiers_ds_deleted_or_never_had_do_not_hold_back_the_others() {
    let sim = Sim::start(SimConfig {
        dossiers: 4,
        deleted_dossiers: 0,
        ..SimConfig::default()
    });
    let numbers = sim.handle.dossier_numbers();
    let (deleted, kept) = (numbers[0], numbers[1]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive");
    let first = sim.sync(&dest, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let files = sim.handle.expected_files(false, false);
    let of_deleted = files.iter().filter(|f| f.dossier == deleted).count();
    assert!(of_deleted > 0);
    sim.handle.delete_dossier(deleted).unwrap();

    let summary_path = dir.path().join("summary.json");
    let (deleted_arg, kept_arg) = (deleted.to_string(), kept.to_string());
    let named = ["--dossier", &deleted_arg, "--dossier", &kept_arg];
    let summary_args = ["--summary-json", summary_path.to_str().unwrap()];
    let output = sim.sync(&dest, &[&named[..], &summary_args].concat());
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    let summary = report(&summary_path);
    let deleted_dossiers = serde_json::json!([deleted]);
    assert_eq!(summary["deleted_dossiers"], deleted_dossiers, "{summary}");
    assert_eq!(summary["removed_upstream"], of_deleted, "{summary}");

    let unknown = ["--dossier", "7", "--dossier", &kept_arg];
    let output = sim.sync(&dest, &[&unknown[..], &summary_args].concat());
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{err}");
    let warning = "WARN dossier `7` not found in DS, skipped: deleted more than 8 days ago";
    assert_eq!(err.matches(warning).count(), 1, "{err}");
    let summary = report(&summary_path);
    assert_eq!(summary["dossiers"], 1, "{summary}");
}

#[test]
fn fault_matrix_in_one_run() {
    let sim = Sim::start(SimConfig {
        dossiers: 12,
        files_per_dossier: 3..=5,
        wrong_checksums: 0,
        ..SimConfig::default()
    });
    let files = sim.handle.expected_files(false, false);
    let ids: Vec<u64> = files
        .iter()
        .filter(|f| f.byte_size > 1000)
        .map(|f| f.id)
        .collect();
    let h = &sim.handle;
    h.add_fault(
        Fault::RateLimited {
            reset_in_secs: 0,
            retry_after: false,
        },
        Target::Every { every: 2 },
        Some(1),
    );
    h.add_fault(Fault::BadGateway, Target::Every { every: 3 }, Some(1));
    h.add_fault(
        Fault::GraphqlTimeout { above_first: 5 },
        Target::Always,
        Some(1),
    );
    h.add_fault(Fault::ResetMidBody, Target::File { file: ids[0] }, Some(1));
    h.add_fault(Fault::TruncatedBody, Target::File { file: ids[1] }, Some(1));
    h.add_fault(
        Fault::Corrupt { varying: false },
        Target::File { file: ids[2] },
        Some(1),
    );
    h.add_fault(
        Fault::Corrupt { varying: true },
        Target::File { file: ids[3] },
        None,
    );
    h.add_fault(Fault::WrongChecksum, Target::File { file: ids[4] }, None);
    h.add_fault(Fault::ExpiredUrl, Target::File { file: ids[5] }, Some(1));
    h.add_fault(Fault::ExpireAllUrls, Target::Every { every: 20 }, Some(1));
    h.add_fault(
        Fault::ServiceUnavailable,
        Target::Every { every: 7 },
        Some(1),
    );

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive");
    let summary = dir.path().join("summary.json");
    let output = sim.sync(
        &dest,
        &["--summary-json", summary.to_str().unwrap(), "--jobs", "4"],
    );
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");

    let report = report(&summary);
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report}");
    let failed_key = failed[0]["key"].as_str().unwrap();
    assert!(
        !dest.join(failed_key).exists(),
        "a corrupt file sits at `{failed_key}`"
    );
    assert!(err.contains(failed_key), "{err}");
    let flagged = report["flagged"].as_array().unwrap();
    assert!(
        flagged.iter().any(|f| f["flag"] == "checksum_mismatch"),
        "{report}"
    );
    // Everything else is stored, byte-identical.
    assert_eq!(multiset(&stored_files(&dest)), served(&sim, &[ids[3]]));
    assert!(leftovers(&dest).is_empty(), "{:?}", leftovers(&dest));
    assert!(sim.handle.file_host_authorizations().is_empty());

    // Without the varying corruption, a re-run completes and the wrong checksum stays a flag.
    sim.handle.set_faults(dsfiles_sim::FaultPlan::new().with(
        Fault::WrongChecksum,
        Target::File { file: ids[4] },
        None,
    ));
    let rerun = sim.sync(&dest, &[]);
    assert_eq!(rerun.status.code(), Some(0), "{}", stderr(&rerun));
    assert_eq!(multiset(&stored_files(&dest)), served(&sim, &[]));
    let strict = sim.sync(&dest, &["--full", "--strict"]);
    assert_eq!(strict.status.code(), Some(1), "{}", stderr(&strict));
}

#[test]
fn hostile_filenames_stay_inside_dest() {
    let sim = Sim::start(SimConfig {
        dossiers: 2,
        hostile_filenames: true,
        ..SimConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive");
    let output = sim.sync(&dest, &["--layout", "{filename}"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // Nothing but the destination was created in the temporary directory.
    let mut top: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["archive"]);
    assert_eq!(multiset(&stored_files(&dest)), served(&sim, &[]));
    for path in all_paths(&dest) {
        assert!(
            !path
                .split('/')
                .any(|c| c == ".." || c.is_empty() || c.contains('\0')),
            "{path:?}"
        );
    }
}

#[test]
fn token_never_appears_and_never_reaches_the_file_host() {
    let token = "tok-5ecret-do-not-print";
    let sim = Sim::start(SimConfig {
        dossiers: 3,
        token: Some(token.into()),
        ..SimConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let demarche = sim.demarche();
    for (i, (flag, rust_log)) in [("-vv", None), ("-v", Some("trace"))]
        .into_iter()
        .enumerate()
    {
        let dest = dir.path().join(format!("d{i}"));
        let mut command = sim.dsfiles(&[
            "sync",
            "--demarche",
            &demarche,
            "--dest",
            dest.to_str().unwrap(),
            flag,
        ]);
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let output = command.output().unwrap();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(0), "{err}");
        assert!(err.len() > 1000, "expected verbose logs, got: {err}");
        assert!(!err.contains(token) && !String::from_utf8_lossy(&output.stdout).contains(token));
        let listed = sim
            .dsfiles(&["list", "--demarche", &demarche, flag])
            .output()
            .unwrap();
        assert!(!stderr(&listed).contains(token));
    }
    assert!(sim.handle.file_host_authorizations().is_empty());
}

#[test]
fn kill_9_mid_run_then_rerun_completes() {
    let sim = Sim::start(SimConfig {
        dossiers: 20,
        files_per_dossier: 2..=4,
        ..SimConfig::default()
    });
    sim.handle
        .add_fault(Fault::SlowFile { delay_ms: 150 }, Target::Always, None);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive");
    let demarche = sim.demarche();
    let mut child = sim
        .dsfiles(&[
            "sync",
            "--demarche",
            &demarche,
            "--dest",
            dest.to_str().unwrap(),
            "--jobs",
            "2",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once some files are published and others are still in flight.
    let total = sim.handle.expected_files(false, false).len();
    let published = wait_until_published(&mut child, &dest, 3);
    assert!(published < total, "the run finished before the kill");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal");

    sim.handle.set_faults(dsfiles_sim::FaultPlan::new());
    // The killed run's lease is still live, but its process is gone from this machine.
    let rerun = sim.sync(&dest, &[]);
    assert_eq!(rerun.status.code(), Some(0), "{}", stderr(&rerun));
    assert_eq!(multiset(&stored_files(&dest)), served(&sim, &[]));
    assert!(leftovers(&dest).is_empty(), "{:?}", leftovers(&dest));
    let verified = verify(&dest);
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
}

/// When stderr is not a terminal (cron, CI, `2> log`), progress is a plain line every
/// `--progress-interval`; the summary names what was stored, skipped and failed.
#[test]
fn plain_progress_lines_and_summary_when_stderr_is_not_a_terminal() {
    let sim = Sim::start(SimConfig {
        dossiers: 3,
        files_per_dossier: 2..=2,
        hostile_filenames: false,
        ..SimConfig::default()
    });
    // Every download waits a little, so the run outlasts a few intervals.
    sim.handle
        .add_fault(Fault::SlowFile { delay_ms: 60 }, Target::Always, None);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive");
    let total = sim.handle.expected_files(false, false).len();
    let output = sim.sync(&dest, &["--jobs", "1", "--progress-interval", "0.02"]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("sync [")).collect();
    assert!(
        lines.len() >= 2,
        "expected periodic progress lines in: {err}"
    );
    for line in &lines {
        assert!(
            line.contains(" pages, ") && line.contains("; files ") && line.contains(" MB/s"),
            "{line}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains(&format!("/{total} "))),
        "no line shows the {total} planned files: {err}"
    );
    // No terminal: no bar drawing characters, no ANSI escapes.
    assert!(!err.contains('\u{1b}') && !err.contains('\r'), "{err:?}");
    let summary = err
        .lines()
        .find(|l| l.starts_with("synced démarche"))
        .unwrap_or_else(|| panic!("no summary in: {err}"));
    for part in [
        &format!("{total} files stored"),
        "0 skipped as unchanged",
        "0 failed",
        " downloaded in ",
        " MB/s",
        " API calls",
    ] {
        assert!(summary.contains(part), "`{part}` missing from: {summary}");
    }

    // --quiet: no progress and no summary at all.
    sim.handle.set_faults(dsfiles_sim::FaultPlan::new());
    let quiet = sim.sync(
        &dest,
        &["--full", "--quiet", "--progress-interval", "0.001"],
    );
    assert_eq!(quiet.status.code(), Some(0), "{}", stderr(&quiet));
    assert_eq!(stderr(&quiet), "");
}

#[test]
fn demo_works_offline() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let output = crate::dsfiles()
        .args(["demo", "--dir", demo.to_str().unwrap(), "--dossiers", "5"])
        .output()
        .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert!(
        err.contains("The files are in") && err.contains("dsfiles verify --dest"),
        "{err}"
    );
    assert!(!stored_files(&demo).is_empty());
}

/// The simulator's file host is on loopback: refused unless allowed, by flag or environment.
#[test]
fn file_hosts_on_loopback_need_allowing() {
    let sim = Sim::start(SimConfig {
        dossiers: 2,
        wrong_checksums: 0,
        ..SimConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let summary_arg = summary.to_str().unwrap();
    let file_host = sim.handle.file_host().to_string();
    let demarche = sim.demarche();
    let sync = |dest: &str| {
        let dest = dir.path().join(dest);
        let mut command = sim.dsfiles(&[
            "sync",
            "--demarche",
            &demarche,
            "--requests-per-minute",
            "0",
            "--summary-json",
            summary_arg,
            "--retries",
            "0",
            "--dest",
        ]);
        command.arg(dest).env_remove("DSFILES_ALLOW_FILE_HOSTS");
        command
    };

    let refused = sync("refused").output().unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let failed = report(&summary)["failed"].as_array().cloned().unwrap();
    assert!(!failed.is_empty());
    for failure in &failed {
        assert_eq!(failure["code"], "blocked_address", "{failure}");
    }
    assert_eq!(sim.handle.stats().file_requests, 0);

    let by_flag = sync("flag")
        .args(["--allow-file-host", &file_host])
        .output()
        .unwrap();
    assert_eq!(by_flag.status.code(), Some(0), "{}", stderr(&by_flag));
    let by_env = sync("env")
        .env(
            "DSFILES_ALLOW_FILE_HOSTS",
            format!("other.example,{file_host}"),
        )
        .output()
        .unwrap();
    assert_eq!(by_env.status.code(), Some(0), "{}", stderr(&by_env));
}

#[test]
fn ds_export_layout_gives_ds_folders_even_for_hostile_names() {
    let sim = Sim::start(SimConfig {
        dossiers: 2,
        hostile_filenames: true,
        ..SimConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive");
    let output = sim.sync(&dest, &["--layout", "ds-export"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let files = stored_files(&dest);
    assert_eq!(multiset(&files), served(&sim, &[]));
    let folders = ["messagerie", "avis", "dossier", "pieces_justificatives"];
    for path in files.keys() {
        let parts: Vec<&str> = path.split('/').collect();
        let dossier = parts[0].strip_prefix("dossier-").unwrap_or("");
        assert!(
            !dossier.is_empty() && dossier.bytes().all(|b| b.is_ascii_digit()),
            "{path:?} is not under `dossier-<n>/`"
        );
        match parts.len() {
            2 => {}
            3 => assert!(folders.contains(&parts[1]), "{path:?}"),
            _ => panic!("{path:?} is deeper than DS's export"),
        }
        assert!(
            !parts.iter().any(|c| *c == ".." || c.is_empty()),
            "{path:?}"
        );
    }
    let verified = verify(&dest);
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
}

#[test]
fn a_sync_without_layout_keeps_the_one_dest_was_synced_with() {
    let sim = Sim::start(SimConfig {
        dossiers: 3,
        ..SimConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive");
    let under_ds_folders = |files: &BTreeMap<String, String>| {
        !files.is_empty() && files.keys().all(|k| k.starts_with("dossier-"))
    };
    let first = sim.sync(&dest, &["--layout", "ds-export", "--no-data"]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(
        stderr(&first)
            .contains("layout `ds-export` (given); dossier.json none (--no-data) (given)"),
        "{}",
        stderr(&first)
    );
    let before = stored_files(&dest);
    assert!(under_ds_folders(&before), "{before:#?}");

    // A plain run, incremental then full: the new dossier follows DS's names, no dossier.json
    // appears, nothing moves.
    sim.handle.add_dossier();
    for extra in [&[][..], &["--full"]] {
        let plain = sim.sync(&dest, extra);
        assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));
        let err = stderr(&plain);
        assert!(
            err.contains("layout `ds-export` (what the destination was last synced with)"),
            "{err}"
        );
        let after = stored_files(&dest);
        assert!(under_ds_folders(&after), "{after:#?}");
        assert!(
            before.iter().all(|(k, v)| after.get(k) == Some(v)),
            "{after:#?}"
        );
        assert!(after.len() > before.len(), "{after:#?}");
        assert!(stored_data(&dest).is_empty());
    }
    assert_eq!(multiset(&stored_files(&dest)), served(&sim, &[]));
}
