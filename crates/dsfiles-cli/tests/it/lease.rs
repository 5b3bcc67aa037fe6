//! The destination lease through the real binary: a second `dsfiles sync` of the same démarche
//! into the same directory while the first runs exits 5 naming the first; after a `kill -9`
//! the dead run's lease is taken over by a rerun on the same machine at once.

use std::process::{Child, Stdio};

use dsfiles_sim::{Fault, FaultPlan, SimConfig, Target};

use crate::sim::{Sim, stored_files, verify, wait_until_published};
use crate::stderr;

fn slow_sim() -> Sim {
    let sim = Sim::start(SimConfig {
        dossiers: 20,
        files_per_dossier: 2..=4,
        ..SimConfig::default()
    });
    sim.handle.set_faults(FaultPlan::new().with(
        Fault::SlowFile { delay_ms: 150 },
        Target::Always,
        None,
    ));
    sim
}

/// `dsfiles sync` into `dest` in the background, started.
fn spawn_sync(sim: &Sim, dest: &std::path::Path) -> Child {
    let demarche = sim.demarche();
    sim.dsfiles(&[
        "sync",
        "--demarche",
        &demarche,
        "--dest",
        dest.to_str().unwrap(),
        "--jobs",
        "2",
        "--requests-per-minute",
        "0",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

#[test]
fn a_second_sync_while_the_first_runs_exits_5_naming_it() {
    let sim = slow_sim();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive");
    let mut first = spawn_sync(&sim, &dest);
    wait_until_published(&mut first, &dest, 1);
    let second = sim.sync(&dest, &[]);
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(5), "{err}");
    for part in [
        "is busy: host `",
        &format!("pid {}", first.id()),
        &format!("démarche {}", sim.demarche()),
        "since ",
        "--break-lease",
    ] {
        assert!(err.contains(part), "`{part}` missing from: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    let output = first.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let total = sim.handle.expected_files(false, false).len();
    assert_eq!(stored_files(&dest).len(), total);
    assert_eq!(verify(&dest).status.code(), Some(0));
    assert!(
        !dest
            .join(".dsfiles/demarches")
            .join(sim.demarche())
            .join("lease")
            .exists(),
        "the lease was not released"
    );
}

#[test]
fn after_kill_9_a_rerun_on_this_machine_takes_the_lease_over() {
    let sim = slow_sim();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive");
    let mut first = spawn_sync(&sim, &dest);
    wait_until_published(&mut first, &dest, 1);
    first.kill().unwrap(); // SIGKILL: nothing released
    first.wait().unwrap();
    let lease = dest
        .join(".dsfiles/demarches")
        .join(sim.demarche())
        .join("lease");
    assert!(lease.exists(), "the killed run left no lease");
    sim.handle.set_faults(FaultPlan::new());
    let rerun = sim.sync(&dest, &["-v"]);
    let err = stderr(&rerun);
    assert_eq!(rerun.status.code(), Some(0), "{err}");
    assert!(err.contains("no longer exists"), "{err}");
    let total = sim.handle.expected_files(false, false).len();
    assert_eq!(stored_files(&dest).len(), total);
    assert!(!lease.exists(), "the lease was not released");
}
