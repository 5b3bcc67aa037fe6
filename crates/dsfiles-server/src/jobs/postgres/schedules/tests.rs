//! The rules of `schedules.rs` against a real PostgreSQL (see `postgres/tests.rs`), with two
//! replicas on one database.

use super::*;
use crate::api::{Since, SyncSpec};
use crate::jobdb::Claimed;
use crate::jobs::postgres::tests::db;

const NAME: &str = "hourly";

fn definition(every: &str) -> Definition {
    Definition {
        name: NAME.into(),
        every: Every::parse(every).expect("every"),
        enabled: true,
        spec: SyncSpec {
            demarche: 12,
            dest: "/d/12".into(),
            since: Since::Auto,
            include: Vec::new(),
            dossiers: Vec::new(),
            jobs: 4,
            break_lease: false,
            layout: None,
            data_layout: None,
            no_data: None,
            seda: None,
        },
    }
}

/// Moves the schedule's tick `hours` (and a few seconds) into the past: a downtime.
async fn overdue(db: &JobDb, hours: i64) {
    let past = Utc::now() - chrono::TimeDelta::hours(hours) - chrono::TimeDelta::seconds(3);
    sqlx::query(
        "UPDATE dsfiles_schedules SET next_due_at = $2,
             record = jsonb_set(record, '{next_due_at}', to_jsonb($2::timestamptz))
         WHERE name = $1",
    )
    .bind(NAME)
    .bind(past)
    .execute(&db.pool)
    .await
    .expect("overdue");
}

async fn fire(db: &JobDb) -> Fired {
    db.fire_schedule(NAME, Every::parse("1h").expect("every"), 100)
        .await
        .expect("fire")
}

async fn runs(db: &JobDb) -> Vec<crate::api::JobRecord> {
    db.recent(100, None, Some(NAME)).await.expect("runs")
}

async fn stored(db: &JobDb) -> Schedule {
    db.schedule(NAME).await.expect("read").expect("schedule")
}

/// Claims the run and ends it in `state`.
async fn end_run(db: &JobDb, state: JobState) {
    let Claimed { mut record, .. } = db.claim().await.expect("claim").expect("the run");
    record.state = state;
    record.finished_at = Some(Utc::now());
    assert!(db.finish(&mut record).await.expect("finish"));
}

#[tokio::test]
async fn a_tick_starts_one_run_across_replicas() {
    let Some(a) = db("a").await else { return };
    let b = a.as_replica("b");
    let (_, created) = a.put_schedule(&definition("1h")).await.expect("put");
    assert!(created);
    let (_, created) = b.put_schedule(&definition("1h")).await.expect("put again");
    assert!(
        !created,
        "a replica applying the same file replaces, keeping the tick"
    );
    for round in 0..3 {
        let (x, y) = tokio::join!(fire(&a), fire(&b));
        let started = [&x, &y]
            .iter()
            .filter(|f| matches!(f, Fired::Started { .. }))
            .count();
        assert_eq!(
            started,
            usize::from(round == 0),
            "round {round}: {x:?} {y:?}"
        );
    }
    let listed = runs(&a).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].schedule.as_deref(), Some(NAME));
    assert_eq!(listed[0].trigger, crate::api::Trigger::Schedule);
    let schedule = stored(&b).await;
    assert_eq!(schedule.last_job.as_deref(), Some(listed[0].id.as_str()));
    assert!(schedule.next_due_at > Utc::now());
}

#[tokio::test]
async fn an_active_run_skips_the_tick_and_missed_ticks_collapse_into_one_run() {
    let Some(a) = db("a").await else { return };
    let b = a.as_replica("b");
    a.put_schedule(&definition("1h")).await.expect("put");
    assert!(matches!(fire(&a).await, Fired::Started { .. }));
    overdue(&a, 0).await;
    let skipped = fire(&b).await;
    assert!(matches!(skipped, Fired::Skipped { .. }), "{skipped:?}");
    assert_eq!(runs(&a).await.len(), 1, "never overlapping");
    assert_eq!(stored(&a).await.skipped_ticks, 1);
    let run = stored(&a).await.last_job.expect("a run");
    let history = a.history(&run).await.expect("history");
    let last = history.last().expect("an entry");
    assert_eq!(
        (last.event.as_str(), last.replica.as_str()),
        ("tick_skipped", "b")
    );
    assert!(
        last.message.starts_with("tick of schedule `hourly` at "),
        "{}",
        last.message
    );

    end_run(&a, JobState::Failed).await;
    let schedule = stored(&a).await;
    // Both replicas see the end; it is counted once.
    let (x, y) = tokio::join!(a.account_schedule(&schedule), b.account_schedule(&schedule));
    x.expect("account");
    y.expect("account");
    let accounted = stored(&b).await;
    assert_eq!(accounted.failures, 1);
    assert_eq!(accounted.last_state, Some(JobState::Failed));

    overdue(&a, 5).await;
    let Fired::Started { decision, .. } = fire(&b).await else {
        panic!("the missed schedule runs");
    };
    assert_eq!(decision.missed, 5, "five missed ticks, one run");
    assert!(matches!(fire(&a).await, Fired::NotDue));
    assert_eq!(runs(&a).await.len(), 2);
}

#[tokio::test]
async fn a_schedule_is_deleted_and_its_runs_stay() {
    let Some(a) = db("a").await else { return };
    a.put_schedule(&definition("1h")).await.expect("put");
    assert!(matches!(fire(&a).await, Fired::Started { .. }));
    assert!(a.delete_schedule(NAME).await.expect("delete"));
    assert!(!a.delete_schedule(NAME).await.expect("delete again"));
    assert!(a.schedules().await.expect("list").is_empty());
    assert!(matches!(fire(&a).await, Fired::NotDue));
    assert_eq!(runs(&a).await.len(), 1);
}
