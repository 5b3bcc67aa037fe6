//! `dsfiles seda` on a destination synced from the simulator: packages, JSON report on stdout,
//! no DS call or token, exit codes (0 ok, 1 a dossier failed, 2 a bad profile), re-run
//! writes nothing.

use std::path::Path;
use std::process::Output;

use dsfiles_sim::SimConfig;

use crate::sim::{Sim, all_paths};
use crate::{dsfiles, stderr};

const PROFILE: &str = "archival_agreement = \"AA\"\narchival_agency = \"AD\"\n\
                       transferring_agency = \"TA\"\noriginating_agency = \"OA\"\n\
                       package_name = \"ds-{demarche}-{dossier}\"\n";

/// `dsfiles seda` with no token and a DS endpoint nothing listens on: it must need neither.
fn seda(dest: &Path, out: &Path, profile: &Path, args: &[&str]) -> Output {
    dsfiles()
        .env("DS_API_TOKEN", "")
        .env("DS_API_URL", "http://127.0.0.1:9/graphql")
        .args(["seda", "--dest", dest.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .args(["--profile", profile.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

fn report(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(output)))
}

/// Every DS state, so that the simulator's dossiers are all packaged.
const ALL_STATES: [&str; 2] = [
    "--states",
    "en_construction,en_instruction,accepte,refuse,sans_suite",
];

/// The simulator's démarche synced into `dest`, and a `profile` in `work` for packages in `out`.
struct Synced {
    sim: Sim,
    dest: tempfile::TempDir,
    work: tempfile::TempDir,
    profile: std::path::PathBuf,
    out: std::path::PathBuf,
}

fn synced() -> Synced {
    let sim = Sim::start(SimConfig::default());
    let dest = tempfile::tempdir().unwrap();
    let synced = sim.sync(dest.path(), &[]);
    assert_eq!(synced.status.code(), Some(0), "{}", stderr(&synced));
    let work = tempfile::tempdir().unwrap();
    let profile = work.path().join("profile.toml");
    std::fs::write(&profile, PROFILE).unwrap();
    let out = work.path().join("out");
    Synced {
        sim,
        dest,
        work,
        profile,
        out,
    }
}

#[test]
fn packages_then_nothing_then_a_failure() {
    let Synced {
        sim,
        dest,
        work,
        profile,
        out,
    } = synced();
    let all = ALL_STATES;

    let first = seda(dest.path(), &out, &profile, &all);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let first = report(&first);
    let packaged = first["packaged"].as_array().unwrap();
    assert!(!packaged.is_empty(), "{first:#}");
    let demarche = sim.demarche();
    for p in packaged {
        let key = p["key"].as_str().unwrap();
        assert!(key.starts_with(&format!("ds-{demarche}-")), "{key}");
        assert!(out.join(key).is_file(), "{key}");
    }

    // Another démarche's dossiers only: none here.
    let other = (sim.demarche().parse::<u64>().unwrap() + 1).to_string();
    let none = seda(
        dest.path(),
        &out,
        &profile,
        &[&all[..], &["--demarche", &other]].concat(),
    );
    assert_eq!(none.status.code(), Some(0), "{}", stderr(&none));
    assert_eq!(report(&none)["dossiers"], 0, "{}", stderr(&none));

    let again = seda(dest.path(), &out, &profile, &all);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let again = report(&again);
    assert_eq!(again["packaged"].as_array().unwrap().len(), 0, "{again:#}");
    assert_eq!(again["unchanged"].as_array().unwrap().len(), packaged.len());

    // A file missing in DEST: its dossier fails (exit 1), named on stderr.
    let victim = all_paths(dest.path())
        .into_iter()
        .find(|p| !p.starts_with(".dsfiles") && dest.path().join(p).is_file())
        .unwrap();
    std::fs::remove_file(dest.path().join(&victim)).unwrap();
    let other = work.path().join("other");
    let failed = seda(dest.path(), &other, &profile, &all);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(stderr(&failed).contains(&victim), "{}", stderr(&failed));
    assert_eq!(report(&failed)["failed"].as_array().unwrap().len(), 1);
}

#[test]
fn a_bad_profile_or_state_is_a_usage_error() {
    let dest = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let profile = work.path().join("profile.toml");
    std::fs::write(&profile, format!("{PROFILE}colour = \"blue\"\n")).unwrap();
    let out = work.path().join("out");
    let bad = seda(dest.path(), &out, &profile, &[]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("colour"), "{}", stderr(&bad));

    std::fs::write(&profile, PROFILE).unwrap();
    let bad = seda(dest.path(), &out, &profile, &["--states", "accepted"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("`accepted`"), "{}", stderr(&bad));

    let missing = seda(dest.path(), &out, &work.path().join("nope.toml"), &[]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("nope.toml"),
        "{}",
        stderr(&missing)
    );
}

/// Two `dsfiles seda` into one OUT at once: the second exits 5 naming the first (held inside
/// a package by a stored file replaced with a FIFO, which blocks its reader); after
/// `kill -9` of the first, a rerun on this machine takes its lease over at once.
#[test]
fn a_second_seda_into_one_out_exits_5_and_a_killed_runs_lease_is_taken_over() {
    // Bound, not `_`: the simulator and the profile's directory live to the end of the test.
    let Synced {
        sim: _sim,
        dest,
        work: _work,
        profile,
        out,
    } = synced();
    let all = ALL_STATES;
    let victim = all_paths(dest.path())
        .into_iter()
        .filter(|p| !p.starts_with(".dsfiles") && !p.ends_with("dossier.json"))
        .map(|p| dest.path().join(p))
        .find(|p| p.is_file())
        .unwrap();
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::remove_file(&victim).unwrap();
    let mkfifo = std::process::Command::new("mkfifo").arg(&victim).status();
    assert!(mkfifo.unwrap().success(), "mkfifo");

    let mut first = dsfiles()
        .env("DS_API_TOKEN", "")
        .args(["seda", "--dest", dest.path().to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .args(["--profile", profile.to_str().unwrap()])
        .args(all)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lease = out.join(".dsfiles/seda/lease");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !lease.exists() {
        assert!(std::time::Instant::now() < deadline, "no lease taken");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = seda(dest.path(), &out, &profile, &all);
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(5), "{err}");
    for part in [
        &format!("pid {}", first.id()),
        "writing SEDA packages into it",
        "--break-lease",
    ] {
        assert!(err.contains(part), "`{part}` missing from: {err}");
    }

    first.kill().unwrap(); // SIGKILL: nothing released
    first.wait().unwrap();
    assert!(lease.exists(), "the killed run left no lease");
    std::fs::remove_file(&victim).unwrap();
    std::fs::write(&victim, bytes).unwrap();
    let rerun = seda(dest.path(), &out, &profile, &[&all[..], &["-v"]].concat());
    let err = stderr(&rerun);
    assert_eq!(rerun.status.code(), Some(0), "{err}");
    assert!(err.contains("no longer exists"), "{err}");
    assert!(!report(&rerun)["packaged"].as_array().unwrap().is_empty());
    assert!(!lease.exists(), "the lease was not released");
}
