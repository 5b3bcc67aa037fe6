//! The rules of `postgres.rs` against a real PostgreSQL (`DSFILES_TEST_DATABASE_URL`, set by
//! `cargo xtask test`; each test gets its own fresh database). Without the variable the tests
//! print a skip notice, under `CI=true` they fail.

use chrono::Utc;
use sqlx::Executor as _;

use super::*;
use crate::api::{Counters, Since, Trigger};

const DATABASE_VAR: &str = "DSFILES_TEST_DATABASE_URL";

/// A new empty database on the test server, or `None` (skipped) without one.
#[expect(clippy::print_stderr, reason = "the skip notice is the point")]
async fn fresh_database() -> Option<Secret> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(admin) = std::env::var(DATABASE_VAR).ok().filter(|v| !v.is_empty()) else {
        let message = format!("{DATABASE_VAR} is not set (run `cargo xtask test`)");
        assert!(!ci, "{message}");
        eprintln!("SKIPPED: {message}");
        return None;
    };
    let name = format!("dsfiles_test_{}", uuid::Uuid::new_v4().simple());
    let pool = PgPool::connect(&admin).await.expect("test database server");
    pool.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create database");
    pool.close().await;
    let mut url = url::Url::parse(&admin).expect("database URL");
    url.set_path(&name);
    Some(Secret::new(url.to_string()))
}

pub(super) async fn db(replica: &str) -> Option<JobDb> {
    let url = fresh_database().await?;
    Some(JobDb::connect(&url, replica).await.expect("connect"))
}

fn job(demarche: u64, dest: &str) -> JobRecord {
    JobRecord {
        id: uuid::Uuid::new_v4().to_string(),
        kind: crate::api::JobKind::Sync,
        state: JobState::Queued,
        demarche,
        dest: dest.into(),
        since: Since::Auto,
        include: Vec::new(),
        dossiers: Vec::new(),
        layout: None,
        data_layout: None,
        no_data: None,
        trigger: Trigger::Api,
        schedule: None,
        created_at: Utc::now(),
        started_at: None,
        finished_at: None,
        cancel_requested: false,
        runner: None,
        history: Vec::new(),
        counters: Counters::default(),
        failures: Vec::new(),
        error: None,
        seda: None,
    }
}

async fn queue(db: &JobDb, record: &JobRecord) {
    assert!(matches!(
        db.insert(record, false).await.expect("insert"),
        Inserted::Queued
    ));
}

fn events(history: &[HistoryEntry]) -> Vec<(&str, &str)> {
    history
        .iter()
        .map(|e| (e.event.as_str(), e.replica.as_str()))
        .collect()
}

#[test]
fn passwords_never_show_in_urls() {
    let check = |url: &str, shown: &str| assert_eq!(redact_url(url), shown, "{url}");
    check(
        "postgres://app:s3cret@db:5432/jobs",
        "postgres://app:***@db:5432/jobs",
    );
    check("postgres://app@db/jobs", "postgres://app@db/jobs");
    check(
        "postgres://db/jobs?user=app&password=s3cret&sslmode=require",
        "postgres://db/jobs?user=app&password=***&sslmode=require",
    );
    check("not a url s3cret", "<unparsable database URL>");
}

#[tokio::test]
async fn the_migrations_apply_twice() {
    let Some(url) = fresh_database().await else {
        return;
    };
    JobDb::connect(&url, "a").await.expect("first start");
    let again = JobDb::connect(&url, "b").await.expect("second start");
    assert!(again.recent(10, None, None).await.expect("list").is_empty());
}

#[tokio::test]
async fn a_second_sync_of_a_destination_conflicts_across_replicas() {
    let Some(a) = db("a").await else { return };
    let b = a.as_replica("b");
    let first = job(1, "/d/x");
    queue(&a, &first).await;
    let Inserted::Conflict(existing) = b.insert(&job(1, "/d/x"), false).await.expect("insert")
    else {
        panic!("expected a conflict");
    };
    assert_eq!(existing.id, first.id);
    // Running, it still conflicts; another destination does not.
    b.claim().await.expect("claim").expect("a job");
    assert!(matches!(
        a.insert(&job(1, "/d/x"), false).await.expect("insert"),
        Inserted::Conflict(c) if c.id == first.id && c.state == JobState::Running
    ));
    queue(&a, &job(1, "/d/other")).await;
}

#[tokio::test]
async fn each_job_is_claimed_by_exactly_one_replica() {
    let Some(a) = db("a").await else { return };
    let ids: Vec<String> = futures::future::join_all((0..6).map(|n| {
        let a = a.clone();
        async move {
            let record = job(n + 1, "/d/x");
            queue(&a, &record).await;
            record.id
        }
    }))
    .await;
    let replicas: Vec<JobDb> = (0..4).map(|n| a.as_replica(format!("r{n}"))).collect();
    let claims = futures::future::join_all(replicas.iter().map(|r| async move {
        let mut mine = Vec::new();
        while let Some(claimed) = r.claim().await.expect("claim") {
            mine.push(claimed.record.id);
        }
        mine
    }))
    .await;
    let mut claimed: Vec<String> = claims.into_iter().flatten().collect();
    claimed.sort();
    let mut expected = ids;
    expected.sort();
    assert_eq!(claimed, expected, "every job once, none twice");
}

#[tokio::test]
async fn a_queued_job_waits_for_the_running_one_on_its_destination() {
    let Some(a) = db("a").await else { return };
    let running = job(7, "/d/w");
    queue(&a, &running).await;
    let claimed = a.claim().await.expect("claim").expect("a job");
    // A webhook follow-up may wait behind a running job (the API's insert may not), once.
    let mut follow = job(7, "/d/w");
    follow.trigger = Trigger::Webhook;
    assert!(matches!(
        a.insert(&follow, false).await.expect("insert"),
        Inserted::Conflict(c) if c.id == running.id
    ));
    assert!(matches!(
        a.insert(&follow, true).await.expect("insert"),
        Inserted::Queued
    ));
    let waiting = a.queued(7, "/d/w").await.expect("queued").expect("a job");
    assert_eq!(waiting.id, follow.id, "the queued one, not the running one");
    // A second follow-up is refused (webhooks merge into the first instead).
    assert!(matches!(
        a.insert(&job(7, "/d/w"), true).await.expect("insert"),
        Inserted::Conflict(_)
    ));
    assert!(a.as_replica("b").claim().await.expect("claim").is_none());
    let mut done = claimed.record;
    done.state = JobState::Succeeded;
    assert!(a.finish(&mut done).await.expect("finish"));
    let next = a
        .as_replica("b")
        .claim()
        .await
        .expect("claim")
        .expect("follow-up");
    assert_eq!(next.record.id, follow.id);
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_history_says_so() {
    let Some(db) = db("a").await else { return };
    // A zero lease is expired as soon as it is written: "a" died right after claiming.
    let a = db.clone().with_lease(Duration::ZERO);
    let b = db.as_replica("b");
    let record = job(3, "/d/t");
    queue(&a, &record).await;
    let mut first = a.claim().await.expect("claim").expect("a job");
    assert_eq!(first.resumed_from, None);
    first.record.counters.files_stored = 5;
    assert!(matches!(
        a.save(&first.record).await.expect("save"),
        Lease::Held { .. }
    ));
    let second = b.claim().await.expect("claim").expect("taken over");
    assert_eq!(second.record.id, record.id);
    assert_eq!(second.resumed_from.as_deref(), Some("a"));
    assert_eq!(second.record.runner.as_deref(), Some("b"));
    assert_eq!(second.record.counters, Counters::default(), "a fresh run");
    assert_eq!(
        second.record.history.last().map(|e| e.event.as_str()),
        Some("resumed")
    );
    assert_eq!(second.record.started_at, first.record.started_at);
    // "a" comes back: it lost the job and may write nothing.
    assert_eq!(a.renew(&record.id).await.expect("renew"), Lease::Lost);
    assert_eq!(a.save(&first.record).await.expect("save"), Lease::Lost);
    let mut done = second.record.clone();
    done.state = JobState::Succeeded;
    assert!(!a.finish(&mut done).await.expect("finish"));
    assert_eq!(
        b.renew(&record.id).await.expect("renew"),
        Lease::Held {
            cancel_requested: false
        }
    );
    assert!(b.finish(&mut done).await.expect("finish"));
    let history = db.history(&record.id).await.expect("history");
    assert_eq!(
        events(&history),
        [
            ("queued", "a"),
            ("claimed", "a"),
            ("resumed", "b"),
            ("finished", "b")
        ]
    );
    assert_eq!(history[2].message, "resumed by b after a's lease expired");
    let shown = db.get(&record.id).await.expect("get").expect("job");
    assert_eq!(shown.state, JobState::Succeeded);
}

#[tokio::test]
async fn a_live_lease_is_not_taken_over() {
    let Some(a) = db("a").await else { return };
    queue(&a, &job(3, "/d/t")).await;
    a.claim().await.expect("claim").expect("a job");
    assert!(a.as_replica("b").claim().await.expect("claim").is_none());
}

#[tokio::test]
async fn cancel_works_from_any_replica() {
    let Some(a) = db("a").await else { return };
    let b = a.as_replica("b");
    let queued = job(1, "/d/q");
    queue(&a, &queued).await;
    let Cancel::Cancelled(done) = b.cancel(&queued.id).await.expect("cancel") else {
        panic!("a queued job is cancelled at once");
    };
    assert_eq!(done.state, JobState::Cancelled);
    assert!(done.finished_at.is_some());
    assert!(
        a.claim().await.expect("claim").is_none(),
        "nothing left to run"
    );

    let running = job(2, "/d/r");
    queue(&a, &running).await;
    a.claim().await.expect("claim").expect("a job");
    assert!(
        matches!(b.cancel(&running.id).await.expect("cancel"), Cancel::Requested(r) if r.cancel_requested)
    );
    assert_eq!(
        a.renew(&running.id).await.expect("renew"),
        Lease::Held {
            cancel_requested: true
        }
    );
    let mut ended = a.get(&running.id).await.expect("get").expect("job");
    assert!(ended.cancel_requested);
    ended.state = JobState::Cancelled;
    assert!(a.finish(&mut ended).await.expect("finish"));
    assert!(matches!(
        b.cancel(&running.id).await.expect("cancel"),
        Cancel::Finished(_)
    ));
    assert!(matches!(
        b.cancel("nope").await.expect("cancel"),
        Cancel::NotFound
    ));
}

#[tokio::test]
async fn progress_is_readable_from_every_replica() {
    let Some(a) = db("a").await else { return };
    let b = a.as_replica("b");
    let record = job(4, "/d/p");
    queue(&a, &record).await;
    let mut running = a.claim().await.expect("claim").expect("a job").record;
    running.counters.files_stored = 3;
    assert!(matches!(
        a.save(&running).await.expect("save"),
        Lease::Held { .. }
    ));
    let seen = b.get(&record.id).await.expect("get").expect("job");
    assert_eq!(seen.counters.files_stored, 3);
    assert_eq!(seen.state, JobState::Running);
    let listed = b
        .recent(10, Some(JobState::Running), None)
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert!(
        b.recent(10, Some(JobState::Queued), None)
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn a_queued_webhook_job_absorbs_later_deliveries() {
    let Some(a) = db("a").await else { return };
    let mut record = job(5, "/d/h");
    record.dossiers = vec![1];
    queue(&a, &record).await;
    let mut found = a.queued(5, "/d/h").await.expect("queued").expect("a job");
    found.dossiers.push(2);
    assert!(
        a.as_replica("b")
            .update_queued(&found)
            .await
            .expect("update")
    );
    a.claim().await.expect("claim").expect("a job");
    assert!(
        !a.update_queued(&found).await.expect("update"),
        "running now"
    );
    let shown = a.get(&record.id).await.expect("get").expect("job");
    assert_eq!(shown.dossiers, [1, 2]);
}

#[tokio::test]
async fn a_released_job_is_resumed_at_once_by_another_replica() {
    let Some(a) = db("a").await else { return };
    let b = a.as_replica("b");
    let record = job(6, "/d/r");
    queue(&a, &record).await;
    let claimed = a.claim().await.expect("claim").expect("a job");
    assert!(b.claim().await.expect("claim").is_none(), "a holds it");
    assert!(a.release(&claimed.record).await.expect("release"));
    let resumed = b.claim().await.expect("claim").expect("released");
    assert_eq!(resumed.resumed_from.as_deref(), Some("a"));
    assert!(
        !a.release(&claimed.record).await.expect("release"),
        "no longer a's"
    );
    let history = a.history(&record.id).await.expect("history");
    assert_eq!(
        events(&history),
        [
            ("queued", "a"),
            ("claimed", "a"),
            ("released", "a"),
            ("resumed", "b")
        ]
    );
    assert_eq!(a.count_by_state().await.expect("count"), [0, 1, 0, 0, 0]);
}

#[tokio::test]
async fn pruning_forgets_the_oldest_finished_jobs_only() {
    let Some(a) = db("a").await else { return };
    let mut ids = Vec::new();
    for n in 1..=3 {
        let record = job(n, "/d/p");
        queue(&a, &record).await;
        let mut running = a.claim().await.expect("claim").expect("a job").record;
        running.state = JobState::Succeeded;
        assert!(a.finish(&mut running).await.expect("finish"));
        ids.push(record.id);
    }
    let waiting = job(9, "/d/q");
    queue(&a, &waiting).await;
    assert_eq!(a.prune(1).await.expect("prune"), 2);
    let mut left: Vec<String> = a
        .recent(10, None, None)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect();
    left.sort();
    let mut expected = vec![ids[2].clone(), waiting.id];
    expected.sort();
    assert_eq!(left, expected);
}
