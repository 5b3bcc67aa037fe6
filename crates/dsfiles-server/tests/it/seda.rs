//! Seda jobs through the API (`POST /v1/seda`): after a sync job, a seda job writes packages
//! whose manifests are valid SEDA 2.2 (xmllint), on the embedded job store and on the shared
//! PostgreSQL one; a second job on the same OUT is refused (409), and so are a bad profile
//! (naming its key) and an OUT outside the allow-list.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use dsfiles_core::testing::assert_valid_seda;
use dsfiles_server::api::{JobKind, JobRecord, JobState};
use serde_json::{Value, json};

use crate::replicas::{fresh_database, replica};
use crate::support::{
    Blocking, Dirs, TestServer, assert_terminal, config, error_code, pipeline_for, sim, small,
};

fn profile() -> Value {
    json!({"archival_agreement": "AA-DS", "archival_agency": "AD075",
           "transferring_agency": "DDT075", "originating_agency": "DDT075",
           "package_name": "ds-{demarche}-{dossier}",
           "appraisal": {"rule": "APP-00010", "final_action": "Keep"}})
}

/// Every state: the simulator's dossiers are in all of them.
const ALL_STATES: [&str; 5] = [
    "en_construction",
    "en_instruction",
    "accepte",
    "refuse",
    "sans_suite",
];

/// `POST /v1/seda`: the status and the body.
async fn post_seda(server: &TestServer, body: &Value) -> (u16, Value) {
    let response = server
        .post("/v1/seda")
        .json(body)
        .send()
        .await
        .expect("POST /v1/seda");
    let status = response.status().as_u16();
    let location = response.headers().get("location").cloned();
    let body: Value = response.json().await.expect("JSON body");
    if status == 202 {
        let id = body["id"].as_str().expect("id");
        assert_eq!(
            location.and_then(|l| l.to_str().ok().map(str::to_owned)),
            Some(format!("/v1/seda/{id}"))
        );
    }
    (status, body)
}

/// A sync of the simulator's démarche into `dest`, to its end.
async fn synced(server: &TestServer, demarche: u64, dest: &str) {
    let job = server
        .start_sync(json!({"demarche": demarche, "dest": dest}))
        .await;
    assert_terminal(&server.finish(&job.id).await, JobState::Succeeded);
}

/// Runs a seda job of `dest` into `out` to its end: its record, and the types of its
/// progress events.
async fn seda_job(
    server: &TestServer,
    demarche: u64,
    dest: &str,
    out: &str,
) -> (JobRecord, Vec<String>) {
    let body = json!({"demarche": demarche, "dest": dest, "out": out,
                      "profile": profile(), "states": ALL_STATES});
    let (status, queued) = post_seda(server, &body).await;
    assert_eq!(status, 202, "{queued}");
    let queued: JobRecord = serde_json::from_value(queued).expect("job record");
    assert_eq!(queued.kind, JobKind::Seda);
    let events = server.follow(&queued.id).await;
    let kinds: Vec<String> = events
        .iter()
        .filter_map(|(n, v)| (n == "progress").then(|| v["type"].as_str()).flatten())
        .map(str::to_owned)
        .collect();
    let response = server
        .get(&format!("/v1/seda/{}", queued.id))
        .send()
        .await
        .expect("GET /v1/seda/{id}");
    assert_eq!(response.status(), 200);
    (response.json().await.expect("job record"), kinds)
}

/// Every package of a finished seda job in `out`: a sound zip whose last entry is a
/// `manifest.xml` valid against SEDA 2.2. Returns how many.
fn check_packages(out: &Path) -> usize {
    let mut zips: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("out")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "zip"))
        .collect();
    zips.sort();
    for zip in &zips {
        let manifest = zip.with_extension("manifest.xml");
        let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\n\
                      assert z.testzip() is None\nassert z.namelist()[-1] == 'manifest.xml'\n\
                      open(sys.argv[2], 'wb').write(z.read('manifest.xml'))";
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(zip)
            .arg(&manifest)
            .output()
            .expect("python3 reads the zips");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_valid_seda(&manifest);
        std::fs::remove_file(&manifest).expect("rm manifest");
    }
    zips.len()
}

/// The finished seda job: succeeded, its counts those of the packages in `out`.
fn assert_packaged(record: &JobRecord, out: &str) {
    assert_terminal(record, JobState::Succeeded);
    let result = record
        .seda
        .as_ref()
        .and_then(|s| s.result)
        .expect("seda result");
    assert!(result.packaged > 0, "{record:#?}");
    assert_eq!(result.failed, 0, "{record:#?}");
    assert_eq!(record.counters.files_stored, result.packaged);
    assert_eq!(check_packages(Path::new(out)), result.packaged as usize);
}

#[tokio::test]
async fn a_seda_job_after_a_sync_job_writes_valid_packages() {
    let sim = sim(small()).await;
    let dirs = Dirs::new();
    let server = TestServer::start(config(&dirs), pipeline_for(&sim)).await;
    let (dest, out) = (dirs.dest("archive"), dirs.dest("sip"));
    synced(&server, sim.demarche(), &dest).await;
    let (record, kinds) = seda_job(&server, sim.demarche(), &dest, &out).await;
    assert!(kinds.iter().any(|k| k == "package_written"), "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("finished"));
    assert_packaged(&record, &out);
    assert!(
        !Path::new(&out).join(".dsfiles/seda/lease").exists(),
        "the lease was not released"
    );
    // Again: every dossier unchanged, nothing written.
    let (again, kinds) = seda_job(&server, sim.demarche(), &dest, &out).await;
    assert!(kinds.iter().all(|k| k != "package_written"), "{kinds:?}");
    assert_terminal(&again, JobState::Succeeded);
    let result = again.seda.and_then(|s| s.result).expect("result");
    assert_eq!(
        (result.packaged, result.unchanged),
        (0, record.seda.and_then(|s| s.result).expect("r").packaged)
    );
    server.stop().await;
}

#[tokio::test]
async fn seda_requests_are_refused_with_the_reason() {
    let dirs = Dirs::new();
    let server = TestServer::start(config(&dirs), Arc::new(Blocking::default())).await;
    let (dest, out) = (dirs.dest("archive"), dirs.dest("sip"));
    let body = json!({"demarche": 7, "dest": dest, "out": out, "profile": profile()});
    let (status, first) = post_seda(&server, &body).await;
    assert_eq!(status, 202, "{first}");

    // The same OUT, whatever the démarche: 409 naming the job.
    for demarche in [7, 8] {
        let mut again = body.clone();
        again["demarche"] = json!(demarche);
        let (status, refused) = post_seda(&server, &again).await;
        assert_eq!(status, 409, "{refused}");
        assert_eq!(refused["error"]["code"], "seda_in_progress");
        assert_eq!(refused["error"]["job_id"], first["id"]);
    }
    // Another OUT is another job.
    let mut other = body.clone();
    other["out"] = json!(dirs.dest("sip2"));
    assert_eq!(post_seda(&server, &other).await.0, 202);

    let mut bad = body.clone();
    bad["out"] = json!(dirs.dest("sip3"));
    bad["profile"]["colour"] = json!("blue");
    let (status, refused) = post_seda(&server, &bad).await;
    assert_eq!(status, 422, "{refused}");
    let message = refused["error"]["message"].as_str().expect("message");
    assert!(message.contains("colour"), "{message}");
    bad["profile"] = profile();
    bad["profile"]["package_name"] = json!("{nope}");
    let (status, refused) = post_seda(&server, &bad).await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .expect("m")
            .contains("{nope}")
    );

    for (field, value) in [("out", "/etc/sip"), ("dest", "/etc")] {
        let mut outside = body.clone();
        outside[field] = json!(value);
        let response = server
            .post("/v1/seda")
            .json(&outside)
            .send()
            .await
            .expect("send");
        assert_eq!(error_code(response, 403).await, "destination_not_allowed");
    }
    let response = server
        .delete(&format!("/v1/seda/{}", first["id"].as_str().expect("id")))
        .send()
        .await
        .expect("cancel");
    assert_eq!(response.status(), 202);
    server.stop().await;
}

/// On replicas sharing PostgreSQL: the job is queued on one and runs on either; the second
/// replica answers 409 for the same OUT.
#[tokio::test]
async fn a_seda_job_runs_through_the_shared_job_store() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let sim = sim(small()).await;
    let dirs = Dirs::new();
    let a = replica(&sim, &dirs, &database, "replica-a").await;
    let b = replica(&sim, &dirs, &database, "replica-b").await;
    let (dest, out) = (dirs.dest("archive"), dirs.dest("sip"));
    synced(&a, sim.demarche(), &dest).await;
    let body = json!({"demarche": sim.demarche(), "dest": dest, "out": out,
                      "profile": profile(), "states": ALL_STATES});
    let (status, queued) = post_seda(&a, &body).await;
    assert_eq!(status, 202, "{queued}");
    let id = queued["id"].as_str().expect("id");
    let (status, refused) = post_seda(&b, &body).await;
    if status == 202 {
        // Only once the first ended (a small démarche packages fast): then it is terminal.
        let first: JobRecord = serde_json::from_value(
            b.get(&format!("/v1/seda/{id}"))
                .send()
                .await
                .expect("GET")
                .json()
                .await
                .expect("json"),
        )
        .expect("record");
        assert!(
            first.state.is_terminal(),
            "two seda jobs on one OUT: {first:#?}"
        );
        b.finish(refused["id"].as_str().expect("id")).await;
    } else {
        assert_eq!(
            (status, &refused["error"]["code"]),
            (409, &json!("seda_in_progress"))
        );
    }
    let record = b.finish(id).await;
    assert_eq!(record.kind, JobKind::Seda);
    assert!(record.runner.is_some(), "{record:#?}");
    assert_packaged(&record, &out);
    a.stop().await;
    b.stop().await;
}

/// A live seda lease on OUT held by another writer (a `dsfiles seda` on another machine):
/// `POST /v1/seda` answers 409 `destination_busy` naming it; `break_lease: true` queues, and
/// the job takes the lease over and packages.
#[tokio::test]
async fn another_writers_lease_on_out_answers_409_unless_broken() {
    let sim = sim(small()).await;
    let dirs = Dirs::new();
    let server = TestServer::start(config(&dirs), pipeline_for(&sim)).await;
    let (dest, out) = (dirs.dest("archive"), dirs.dest("sip"));
    synced(&server, sim.demarche(), &dest).await;
    let now = chrono::Utc::now();
    let lease = json!({"version": 1,
        "holder": {"host": "archive-box", "pid": 4321, "tool": "dsfiles 0.0.9"},
        "token": "another-run", "acquired_at": now, "renewed_at": now,
        "expires_at": now + chrono::Duration::minutes(2)});
    let path = Path::new(&out).join(".dsfiles/seda/lease");
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    std::fs::write(&path, lease.to_string()).expect("lease");
    let mut body = json!({"demarche": sim.demarche(), "dest": dest, "out": out,
                          "profile": profile(), "states": ALL_STATES});
    let (status, refused) = post_seda(&server, &body).await;
    assert_eq!(status, 409, "{refused}");
    let error = &refused["error"];
    assert_eq!(error["code"], "destination_busy", "{refused}");
    assert_eq!(error["holder"]["host"], "archive-box", "{refused}");
    let message = error["message"].as_str().expect("message");
    assert!(message.contains("writing SEDA packages"), "{message}");

    body["break_lease"] = json!(true);
    let (status, queued) = post_seda(&server, &body).await;
    assert_eq!(status, 202, "{queued}");
    let record = server.finish(queued["id"].as_str().expect("id")).await;
    assert_packaged(&record, &out);
    assert!(!path.exists(), "the lease was not released");
    server.stop().await;
}
