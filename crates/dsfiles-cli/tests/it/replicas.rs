//! Two real `dsfiles serve` processes on one PostgreSQL database (`DSFILES_TEST_DATABASE_URL`,
//! exported by `cargo xtask test`; each test creates its own database with `psql`): a job
//! survives kill -9 of its runner, the 409 holds across replicas, webhooks arriving at either
//! replica coalesce into one job, a schedule in the config file of both runs once per tick and
//! never twice at once. Without the variable the tests print a skip notice; under
//! `CI=true` they fail.
//!
//! The replicas run with a 2-second lease (`--job-lease`, hidden): what takes a minute in
//! production takes seconds here. HTTP goes through `curl`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dsfiles_sim::{Fault, FaultPlan, SimConfig, Target};
use serde_json::Value;

use crate::sim::{Sim, verify};

const TOKEN: &str = "replica-test-token-0123456789";
const WEBHOOK_SECRET: &str = "whsec_replica_test";
const DATABASE_VAR: &str = "DSFILES_TEST_DATABASE_URL";
/// How long a test waits for a state before failing.
const PATIENCE: Duration = Duration::from_secs(120);

/// A fresh database on the test server, or `None` (skipped) without one.
#[expect(clippy::print_stderr, reason = "the skip notice is the point")]
fn fresh_database() -> Option<String> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(admin) = std::env::var(DATABASE_VAR).ok().filter(|v| !v.is_empty()) else {
        let message = format!("{DATABASE_VAR} is not set (run `cargo xtask test`)");
        assert!(!ci, "{message}");
        eprintln!("SKIPPED: {message}");
        return None;
    };
    let name = format!("dsfiles_replicas_{}_{}", std::process::id(), unique());
    let status = Command::new("psql")
        .args([
            admin.as_str(),
            "-q",
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .status()
        .expect("psql runs");
    assert!(status.success(), "CREATE DATABASE {name}");
    let (base, _) = admin.rsplit_once('/').expect("a database URL");
    Some(format!("{base}/{name}"))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// One `dsfiles serve` process; killed (SIGKILL) when dropped.
struct Replica {
    child: Child,
    base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the replicas of one test share.
struct Cluster {
    sim: Sim,
    database: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(database: String, slow_ms: u64) -> Cluster {
        let sim = Sim::start(SimConfig {
            dossiers: 12,
            files_per_dossier: 2..=3,
            ..SimConfig::default()
        });
        sim.handle.set_faults(FaultPlan::new().with(
            Fault::SlowFile { delay_ms: slow_ms },
            Target::Always,
            None,
        ));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tokens"), format!("{TOKEN}\n")).unwrap();
        std::fs::write(dir.path().join("webhook"), format!("{WEBHOOK_SECRET}\n")).unwrap();
        std::fs::create_dir_all(dir.path().join("dest")).unwrap();
        Cluster { sim, database, dir }
    }

    fn dest(&self, name: &str) -> PathBuf {
        self.dir.path().join("dest").join(name)
    }

    fn replica(&self, id: &str) -> Replica {
        self.replica_on(id, &self.database)
    }

    /// Replica `id` on `database`; its stderr goes to `<dir>/<id>.log`.
    fn replica_on(&self, id: &str, database: &str) -> Replica {
        self.replica_with(id, database, &[])
    }

    /// [`Cluster::replica_on`] with more arguments.
    fn replica_with(&self, id: &str, database: &str, extra: &[&str]) -> Replica {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        let webhook_dest = format!("{}={}", self.sim.demarche(), self.dest("hook").display());
        let child = self
            .sim
            .dsfiles(&["serve", "-v", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--api-tokens-file", &path("tokens")])
            .args(["--webhook-secret-file", &path("webhook")])
            .args(["--allow-dest", &path("dest")])
            .args(["--webhook-dest", &webhook_dest])
            .args(["--state-dir", &path(&format!("state-{id}"))])
            .args(["--database-url", database, "--replica-id", id])
            .args([
                "--job-lease",
                "2",
                "--jobs",
                "2",
                "--requests-per-minute",
                "0",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(path(&format!("{id}.log"))).unwrap())
            .spawn()
            .unwrap();
        let replica = Replica {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        wait_for(&format!("replica `{id}` ready"), || {
            let (status, _) = http(&replica, "GET", "/readyz", None);
            (status == 200).then_some(())
        });
        replica
    }

    /// `POST /v1/syncs` of the simulator's démarche into `dest` on `replica`.
    fn sync(&self, replica: &Replica, dest: &str) -> (u16, Value) {
        let body = serde_json::json!({
            "demarche": self.sim.handle.demarche(),
            "dest": self.dest(dest),
        });
        http(replica, "POST", "/v1/syncs", Some(&body.to_string()))
    }

    /// A legacy DS webhook for `dossier` delivered to `replica`.
    fn webhook(&self, replica: &Replica, dossier: u64) -> (u16, Value) {
        let form = format!(
            "procedure_id={}&dossier_id={dossier}&state=en_instruction",
            self.sim.demarche()
        );
        curl(
            replica,
            &["-X", "POST", "--data", &form],
            &format!("/v1/webhooks/ds/{WEBHOOK_SECRET}"),
        )
    }
}

/// `curl` against `replica`: the status and the JSON body (`Null` when there is none).
fn curl(replica: &Replica, args: &[&str], path: &str) -> (u16, Value) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(args)
        .arg(format!("{}{path}", replica.base))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let status = status.trim().parse().unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn http(replica: &Replica, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut args = vec!["-X", method];
    if let Some(body) = body {
        args.extend(["-H", "Content-Type: application/json", "--data", body]);
    }
    curl(replica, &args, path)
}

/// Polls `probe` until it answers, or fails after [`PATIENCE`] naming `what`.
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Job `id` as `replica` shows it, once `done` says so.
fn wait_job(replica: &Replica, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, || {
        let (status, job) = http(replica, "GET", &format!("/v1/syncs/{id}"), None);
        (status == 200 && done(&job)).then_some(job)
    })
}

fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != ".dsfiles")
        .map(|e| {
            if e.path().is_dir() {
                files_under(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// The messages of a job record's history, oldest first.
fn history(job: &Value) -> Vec<String> {
    job["history"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e["message"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_job_survives_kill_9_of_its_runner() {
    let Some(database) = fresh_database() else {
        return;
    };
    // About 30 files at 400 ms each, 2 at a time: a run of several seconds.
    let cluster = Cluster::start(database, 400);
    let mut a = cluster.replica("a");
    let (status, job) = cluster.sync(&a, "archive");
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    wait_job(&a, &id, "a runs the job", |j| j["runner"] == "a");
    let dest = cluster.dest("archive");
    wait_for("a few files stored", || {
        (files_under(&dest) >= 3).then_some(())
    });
    let b = cluster.replica("b");
    let (_, before) = http(&b, "GET", &format!("/v1/syncs/{id}"), None);
    assert_eq!(before["state"], "running", "killed mid-run: {before}");
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();
    let done = wait_job(&b, &id, "the job ends on b", |j| {
        j["state"] != "queued" && j["state"] != "running"
    });
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["runner"], "b", "{done}");
    let history = history(&done);
    assert!(
        history
            .iter()
            .any(|m| m == "resumed by b after a's lease expired"),
        "{history:?}"
    );
    assert_eq!(history.last().map(String::as_str), Some("succeeded on b"));
    let verified = verify(&dest);
    assert!(verified.status.success(), "{verified:?}");
}

#[test]
fn a_second_sync_of_a_destination_conflicts_on_the_other_replica() {
    let Some(database) = fresh_database() else {
        return;
    };
    let cluster = Cluster::start(database, 100);
    let a = cluster.replica("a");
    let b = cluster.replica("b");
    let (status, first) = cluster.sync(&a, "one");
    assert_eq!(status, 202, "{first}");
    let (status, refused) = cluster.sync(&b, "one");
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["job_id"], first["id"], "{refused}");
    // Every replica shows the job, and cancels it.
    let id = first["id"].as_str().unwrap();
    let (status, _) = http(&b, "DELETE", &format!("/v1/syncs/{id}"), None);
    assert_eq!(status, 202);
    let ended = wait_job(&a, id, "the job is cancelled", |j| {
        j["state"] == "cancelled"
    });
    assert_eq!(ended["cancel_requested"], true, "{ended}");
    let (status, again) = cluster.sync(&b, "one");
    assert_eq!(status, 202, "free again: {again}");
}

#[test]
fn webhooks_at_either_replica_make_one_follow_up_job() {
    let Some(database) = fresh_database() else {
        return;
    };
    let cluster = Cluster::start(database, 300);
    let a = cluster.replica("a");
    let b = cluster.replica("b");
    let dossiers = cluster.sim.handle.dossier_numbers();
    // A whole-démarche sync holds the webhook destination for a few seconds.
    let (status, first) = cluster.sync(&a, "hook");
    assert_eq!(status, 202, "{first}");
    let first_id = first["id"].as_str().unwrap().to_owned();
    wait_job(&b, &first_id, "the first job runs", |j| {
        j["state"] == "running"
    });
    // The destination is busy: both deliveries join one queued follow-up.
    let (_, second) = cluster.webhook(&b, dossiers[1]);
    let (_, third) = cluster.webhook(&a, dossiers[2]);
    let follow_up = second["jobs"][0].as_str().unwrap().to_owned();
    assert_ne!(follow_up, first_id);
    assert_eq!(third["jobs"][0], second["jobs"][0], "{third}");
    let done = wait_job(&a, &follow_up, "the follow-up ends", |j| {
        j["state"] == "succeeded"
    });
    assert_eq!(
        done["dossiers"],
        serde_json::json!([dossiers[1], dossiers[2]])
    );
    let (_, list) = http(&b, "GET", "/v1/syncs", None);
    assert_eq!(list["jobs"].as_array().map(Vec::len), Some(2), "{list}");
}

#[test]
fn the_database_password_is_never_printed() {
    let Some(database) = fresh_database() else {
        return;
    };
    // The test server trusts loopback connections: any password is accepted, and must not show.
    let with_password = database.replacen("://dsfiles@", "://dsfiles:hunter2-pg@", 1);
    assert_ne!(with_password, database, "a URL with a user: {database}");
    let cluster = Cluster::start(with_password.clone(), 0);
    let a = cluster.replica_on("a", &with_password);
    let (status, job) = cluster.sync(&a, "p");
    assert_eq!(status, 202, "{job}");
    drop(a);
    let log = std::fs::read_to_string(cluster.dir.path().join("a.log")).unwrap();
    assert!(log.contains("dsfiles:***@"), "{log}");
    assert!(!log.contains("hunter2-pg"), "{log}");
}

/// `started_at`..`finished_at` of a finished job, as RFC 3339 text (which sorts like time).
fn span(job: &Value) -> (String, String) {
    let at = |field: &str| job[field].as_str().unwrap_or_default().to_owned();
    (at("started_at"), at("finished_at"))
}

fn seconds_between(earlier: &Value, later: &Value) -> f64 {
    let at = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("a date: {v}: {e}"))
    };
    (at(later) - at(earlier)).num_milliseconds() as f64 / 1000.0
}

#[test]
fn a_schedule_of_both_replicas_runs_once_per_tick_never_overlapping() {
    let Some(database) = fresh_database() else {
        return;
    };
    // About 30 files at 300 ms, 2 at a time: the first run outlasts a 5 s tick; the later,
    // incremental ones are quick.
    let cluster = Cluster::start(database, 300);
    let config = cluster.dir.path().join("dsfiles.toml");
    let schedule = format!(
        "[[schedules]]\nname = \"often\"\nevery = \"5s\"\ndemarche = {}\ndest = \"{}\"\n",
        cluster.sim.handle.demarche(),
        cluster.dest("scheduled").display()
    );
    std::fs::write(&config, schedule).unwrap();
    let config = config.display().to_string();
    let a = cluster.replica_with("a", &cluster.database, &["--config", &config]);
    let b = cluster.replica_with("b", &cluster.database, &["--config", &config]);
    let runs = wait_for("three finished runs of the schedule", || {
        let (_, list) = http(&b, "GET", "/v1/syncs?schedule=often", None);
        let jobs = list["jobs"].as_array().cloned().unwrap_or_default();
        let finished = jobs.iter().filter(|j| !j["finished_at"].is_null()).count();
        (finished >= 3).then_some(jobs)
    });
    let mut finished: Vec<&Value> = runs
        .iter()
        .filter(|j| !j["finished_at"].is_null())
        .collect();
    finished.sort_by_key(|j| span(j));
    for job in &finished {
        assert_eq!(job["trigger"], "schedule", "{job}");
        assert_eq!(job["schedule"], "often", "{job}");
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    for pair in finished.windows(2) {
        let (earlier, later) = (span(pair[0]), span(pair[1]));
        assert!(
            earlier.1 <= later.0,
            "runs overlap: {earlier:?} and {later:?}"
        );
        // One run per tick: two runs are at least a tick apart (less the scheduler's 1 s round).
        let apart = seconds_between(&pair[0]["created_at"], &pair[1]["created_at"]);
        assert!(apart >= 4.0, "two runs {apart} s apart");
    }
    let (_, shown) = http(&a, "GET", "/v1/schedules/often", None);
    assert_eq!(shown["every"], "5s", "{shown}");
    assert_eq!(shown["failures"], 0, "{shown}");
    assert!(shown["last_success_at"].is_string(), "{shown}");
    let verified = verify(&cluster.dest("scheduled"));
    assert!(verified.status.success(), "{verified:?}");
}
