//! Ctrl-C (SIGINT) and SIGTERM in the middle of `dsfiles sync`: exit 130 with a clear message,
//! no temporary file left behind, a consistent manifest, and a re-run that completes.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use dsfiles_sim::{Fault, FaultPlan, SimConfig, Target};

use crate::sim::{Sim, leftovers, stored_files, verify, wait_until_published};
use crate::stderr;

/// Sends `signal` (`INT`, `TERM`) to `pid` with the system's `kill`.
fn send(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid} failed");
}

#[test]
fn ctrl_c_or_sigterm_mid_sync_stops_cleanly_and_a_rerun_completes() {
    let sim = Sim::start(SimConfig {
        dossiers: 20,
        files_per_dossier: 2..=4,
        ..SimConfig::default()
    });
    let slow = || FaultPlan::new().with(Fault::SlowFile { delay_ms: 150 }, Target::Always, None);
    let total = sim.handle.expected_files(false, false).len();
    let dir = tempfile::tempdir().unwrap();
    let demarche = sim.demarche();
    let mut dests: Vec<PathBuf> = Vec::new();
    for (signal, named) in [("INT", "Ctrl-C"), ("TERM", "SIGTERM")] {
        sim.handle.set_faults(slow());
        let dest = dir.path().join(format!("archive-{signal}"));
        let mut child = sim
            .dsfiles(&[
                "sync",
                "--demarche",
                &demarche,
                "--dest",
                dest.to_str().unwrap(),
                "--jobs",
                "4",
                "--requests-per-minute",
                "0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Signal once some files are published and others are still in flight.
        let published = wait_until_published(&mut child, &dest, 3);
        assert!(published < total, "the run finished before the signal");
        send(signal, child.id());
        let output = child.wait_with_output().unwrap();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(130), "{signal}: {err}");
        assert!(
            err.contains(&format!("{named}: cancelling")),
            "{signal}: {err}"
        );
        assert!(
            err.contains("cancelled: synced part of démarche")
                && err.contains("run the same command again to finish"),
            "{signal}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        // Checked before anything else opens the destination (opening cleans temp files up).
        assert!(
            leftovers(&dest).is_empty(),
            "{signal}: {:?}",
            leftovers(&dest)
        );
        let stored = stored_files(&dest).len();
        assert!(
            stored >= published && stored < total,
            "{signal}: {stored} of {total}"
        );
        // Every file the manifest records is there, intact.
        let verified = verify(&dest);
        assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
        dests.push(dest);
    }

    sim.handle.set_faults(FaultPlan::new());
    for dest in &dests {
        let rerun = sim.sync(dest, &[]);
        assert_eq!(rerun.status.code(), Some(0), "{}", stderr(&rerun));
        assert_eq!(stored_files(dest).len(), total);
        assert!(leftovers(dest).is_empty(), "{:?}", leftovers(dest));
        let verified = verify(dest);
        assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
    }
}
