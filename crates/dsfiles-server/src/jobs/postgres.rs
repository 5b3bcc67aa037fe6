//! The job table shared by replicas (`dsfiles serve --database-url`): PostgreSQL through sqlx,
//! migrations embedded (`migrations/`) and applied by [`JobDb::connect`].
//!
//! Rules, each one a test in `postgres/tests.rs` against a real database:
//! - **One writer per manifest, across replicas.** Two partial unique indexes allow at most one
//!   `running` and one `queued` job per démarche and destination; [`JobDb::insert`] also refuses
//!   a job while one is `running` (the `409` of `POST /v1/syncs`). A queued job moves to
//!   `running` in one `UPDATE`, so at every instant the row that blocks a second sync exists.
//! - **Exactly one runner.** [`JobDb::claim`] picks the oldest claimable row with
//!   `FOR UPDATE SKIP LOCKED` (two replicas claiming at once get different rows or nothing)
//!   and names its `runner` with a lease. A running job whose lease is past is claimable
//!   again: its runner died (kill -9) or lost the database. The claim records
//!   "resumed by X after Y's lease expired" in the job's `history`.
//! - **A runner that lost its lease writes nothing.** [`JobDb::renew`], [`JobDb::save`],
//!   [`JobDb::release`] and [`JobDb::finish`] only touch a row still `running` under this
//!   replica's name; they answer [`Lease::Lost`] / `false` otherwise, and the runner must stop.
//! - **Cancel from anywhere.** [`JobDb::cancel`] ends a queued job at once and marks a running
//!   one `cancel_requested`, which its runner reads with every lease renewal.
//! - **Columns decide, the record shows.** `record` is the API's [`JobRecord`] as the runner
//!   last wrote it; `state`, `runner`, `cancel_requested` and `history` are laid over it when
//!   read.
//!
//! Each transition reads the row `FOR UPDATE`, changes the record in Rust and writes it back
//! in the same transaction, so SQL stays plain and the rules live in one language.

mod migrations;

use std::time::Duration;

use chrono::Utc;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, Row as _, Transaction};

use crate::Error;
use crate::api::{Counters, JobRecord, JobState};
use crate::config::Secret;

/// How long a claim or a renewal holds a job: a replica killed -9 leaves its jobs for at most
/// this long.
pub const LEASE: Duration = Duration::from_secs(60);
/// A runner renews its leases (and reads cancel requests) four times per lease, so that a
/// slow database round trip or two does not lose the job.
pub const RENEWALS_PER_LEASE: u32 = 4;

/// Connections per replica: the claim loop, lease renewals, progress writes and API reads.
const POOL_SIZE: u32 = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The shared job table, as seen by one replica.
#[derive(Clone, Debug)]
pub struct JobDb {
    pool: PgPool,
    replica: String,
    lease: Duration,
    /// The database URL without its password, for messages.
    shown: String,
}

pub use crate::api::HistoryEntry;

/// A job this replica now runs.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub record: JobRecord,
    /// Someone asked to cancel it (before the previous runner died): stop at once.
    pub cancel_requested: bool,
    /// The replica whose lease expired, when this claim resumes its job.
    pub resumed_from: Option<String>,
}

/// The answer to a lease renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    Held {
        cancel_requested: bool,
    },
    /// Another replica claimed the job (this one's lease expired), or it is no longer running.
    Lost,
}

/// The answer to [`JobDb::insert`].
#[derive(Clone, Debug)]
pub enum Inserted {
    Queued,
    /// A job on the same démarche and destination is queued or running (any replica).
    Conflict(Box<JobRecord>),
}

/// The answer to [`JobDb::cancel`].
#[derive(Clone, Debug)]
pub enum Cancel {
    /// A queued job: now `cancelled`.
    Cancelled(Box<JobRecord>),
    /// A running job: its runner stops at its next renewal.
    Requested(Box<JobRecord>),
    Finished(Box<JobRecord>),
    NotFound,
}

/// `host-pid`: the default replica id (`--replica-id`).
pub fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "dsfiles".to_owned());
    format!("{host}-{}", std::process::id())
}

/// `url` with its password (in the authority or a `password=` parameter) replaced by `***`;
/// what is not a URL is shown as `<unparsable database URL>`.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<unparsable database URL>".to_owned();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let v = if k.eq_ignore_ascii_case("password") {
                "***".to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    if !pairs.is_empty() {
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

impl JobDb {
    /// Connects to `url` as replica `replica` and applies the embedded migrations (concurrent
    /// replicas are serialized by sqlx's advisory lock).
    pub async fn connect(url: &Secret, replica: impl Into<String>) -> Result<JobDb, Error> {
        let shown = redact_url(url.expose());
        let fail = |source: sqlx::Error| Error::Database {
            url: shown.clone(),
            source,
        };
        let options: PgConnectOptions = url.expose().parse().map_err(fail)?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(fail)?;
        let migrator = migrations::migrator().await.map_err(|e| fail(e.into()))?;
        migrator.run(&pool).await.map_err(|e| fail(e.into()))?;
        Ok(JobDb {
            pool,
            replica: replica.into(),
            lease: LEASE,
            shown,
        })
    }

    /// The same database with another lease length (tests use zero: expired at once).
    pub fn with_lease(mut self, lease: Duration) -> JobDb {
        self.lease = lease;
        self
    }

    /// The same database seen by another replica (tests run several on one pool).
    pub fn as_replica(&self, replica: impl Into<String>) -> JobDb {
        JobDb {
            replica: replica.into(),
            ..self.clone()
        }
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    fn error(&self, source: sqlx::Error) -> Error {
        Error::Database {
            url: self.shown.clone(),
            source,
        }
    }

    fn entry(&self, event: &str, message: String) -> Json<Vec<HistoryEntry>> {
        Json(vec![HistoryEntry {
            at: Utc::now(),
            event: event.to_owned(),
            replica: self.replica.clone(),
            message,
        }])
    }

    fn lease_secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    /// Queues `record` (state `queued`) unless a job on its démarche and destination is queued
    /// or, unless `follow_up` (a webhook job may wait behind a running one), running.
    pub async fn insert(&self, record: &JobRecord, follow_up: bool) -> Result<Inserted, Error> {
        // The active job may end between our failed insert and our look-up: try again then.
        for _ in 0..3 {
            if self.try_insert(record, follow_up).await? {
                return Ok(Inserted::Queued);
            }
            let (demarche, dest) = crate::seda_jobs::record_key(record);
            if let Some(active) = self.active(demarche, &dest).await? {
                return Ok(Inserted::Conflict(Box::new(active)));
            }
        }
        Err(self.error(sqlx::Error::Protocol(format!(
            "démarche `{}` into `{}`: jobs kept starting and ending while inserting",
            record.demarche, record.dest
        ))))
    }

    async fn try_insert(&self, record: &JobRecord, follow_up: bool) -> Result<bool, Error> {
        // The key columns: a sync's démarche and destination, a seda job's OUT key.
        let (demarche, dest) = crate::seda_jobs::record_key(record);
        let inserted = sqlx::query(
            "INSERT INTO dsfiles_jobs (id, state, demarche, dest, created_at, record, history)
             SELECT $1, 'queued', $2, $3, $4, $5, $6
             WHERE $7 OR NOT EXISTS (SELECT 1 FROM dsfiles_jobs
                                     WHERE demarche = $2 AND dest = $3 AND state = 'running')
             ON CONFLICT DO NOTHING",
        )
        .bind(&record.id)
        .bind(to_i64(demarche))
        .bind(&dest)
        .bind(record.created_at)
        .bind(stored(record))
        .bind(self.entry("queued", format!("queued on {}", self.replica)))
        .bind(follow_up)
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(inserted.rows_affected() == 1)
    }

    /// The queued or running job on `demarche` and `dest`, the running one first.
    pub async fn active(&self, demarche: u64, dest: &str) -> Result<Option<JobRecord>, Error> {
        self.find(demarche, dest, "state IN ('queued', 'running')")
            .await
    }

    /// The job on `demarche` and `dest` matching `filter` (a constant SQL condition), the
    /// running one first.
    async fn find(
        &self,
        demarche: u64,
        dest: &str,
        filter: &'static str,
    ) -> Result<Option<JobRecord>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM dsfiles_jobs
             WHERE demarche = $1 AND dest = $2 AND {filter}
             ORDER BY state = 'running' DESC LIMIT 1"
        ))
        .bind(to_i64(demarche))
        .bind(dest)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        row.map(|row| self.record(&row)).transpose()
    }

    /// Changes the record of the queued job `id` (webhook deliveries coalescing into it);
    /// `false` when it is no longer queued.
    pub async fn update_queued(&self, record: &JobRecord) -> Result<bool, Error> {
        let updated = sqlx::query(
            "UPDATE dsfiles_jobs SET record = $2, updated_at = now()
             WHERE id = $1 AND state = 'queued'",
        )
        .bind(&record.id)
        .bind(stored(record))
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(updated.rows_affected() == 1)
    }

    /// The queued job on `demarche` and `dest`, if any.
    pub async fn queued(&self, demarche: u64, dest: &str) -> Result<Option<JobRecord>, Error> {
        self.find(demarche, dest, "state = 'queued'").await
    }

    /// Takes the oldest claimable job: queued (its destination free) or running with an
    /// expired lease. `None` when there is none, or when other replicas hold them all locked.
    pub async fn claim(&self) -> Result<Option<Claimed>, Error> {
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM dsfiles_jobs j
             WHERE (state = 'queued' AND NOT EXISTS (
                        SELECT 1 FROM dsfiles_jobs r
                        WHERE r.demarche = j.demarche AND r.dest = j.dest
                          AND r.state = 'running'))
                OR (state = 'running' AND lease_expires_at < now())
             ORDER BY created_at, id
             LIMIT 1
             FOR UPDATE SKIP LOCKED"
        ))
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.error(e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let claimed = self.take(&mut tx, &row).await?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(Some(claimed))
    }

    /// Names this replica the runner of the locked `row`.
    async fn take(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        row: &PgRow,
    ) -> Result<Claimed, Error> {
        let mut record = self.record(row)?;
        let previous: Option<String> = row.try_get("runner").map_err(|e| self.error(e))?;
        let resumed_from =
            (record.state == JobState::Running).then(|| previous.unwrap_or_default());
        let entry = match &resumed_from {
            Some(dead) => self.entry(
                "resumed",
                format!("resumed by {} after {dead}'s lease expired", self.replica),
            ),
            None => self.entry("claimed", format!("started by {}", self.replica)),
        };
        if resumed_from.is_some() {
            // The resumed sync starts over (what the dead runner stored is skipped): its
            // counters describe this run, not a sum of two.
            record.counters = Counters::default();
            record.failures.clear();
        }
        record.state = JobState::Running;
        record.runner = Some(self.replica.clone());
        record.started_at.get_or_insert_with(Utc::now);
        sqlx::query(
            "UPDATE dsfiles_jobs
             SET state = 'running', runner = $2,
                 lease_expires_at = now() + make_interval(secs => $3),
                 record = $4, history = history || $5, updated_at = now()
             WHERE id = $1",
        )
        .bind(&record.id)
        .bind(&self.replica)
        .bind(self.lease_secs())
        .bind(stored(&record))
        .bind(&entry)
        .execute(&mut **tx)
        .await
        .map_err(|e| self.error(e))?;
        // The runner's copy shows its own claim too.
        record.history.extend(entry.0);
        Ok(Claimed {
            cancel_requested: record.cancel_requested,
            record,
            resumed_from,
        })
    }

    /// Extends this replica's lease on job `id` and reads whether a cancel was asked.
    pub async fn renew(&self, id: &str) -> Result<Lease, Error> {
        let row = sqlx::query(
            "UPDATE dsfiles_jobs
             SET lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
             WHERE id = $1 AND runner = $2 AND state = 'running'
             RETURNING cancel_requested",
        )
        .bind(id)
        .bind(&self.replica)
        .bind(self.lease_secs())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        self.lease(row)
    }

    /// Writes the progress of a job this replica runs, and reads whether a cancel was asked.
    pub async fn save(&self, record: &JobRecord) -> Result<Lease, Error> {
        let row = sqlx::query(
            "UPDATE dsfiles_jobs SET record = $3, updated_at = now()
             WHERE id = $1 AND runner = $2 AND state = 'running'
             RETURNING cancel_requested",
        )
        .bind(&record.id)
        .bind(&self.replica)
        .bind(stored(record))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        self.lease(row)
    }

    fn lease(&self, row: Option<PgRow>) -> Result<Lease, Error> {
        match row {
            Some(row) => Ok(Lease::Held {
                cancel_requested: row.try_get(0).map_err(|e| self.error(e))?,
            }),
            None => Ok(Lease::Lost),
        }
    }

    /// Ends a job this replica runs with `record`'s terminal state, and adds the end to
    /// `record`'s history; `false`: the lease is lost (another replica runs it now: nothing is
    /// written).
    pub async fn finish(&self, record: &mut JobRecord) -> Result<bool, Error> {
        let message = format!("{} on {}", record.state.as_str(), self.replica);
        let entry = self.entry("finished", message);
        let updated = sqlx::query(
            "UPDATE dsfiles_jobs
             SET state = $3, record = $4, lease_expires_at = NULL,
                 history = history || $5, updated_at = now()
             WHERE id = $1 AND runner = $2 AND state = 'running'",
        )
        .bind(&record.id)
        .bind(&self.replica)
        .bind(record.state.as_str())
        .bind(stored(record))
        .bind(&entry)
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        let written = updated.rows_affected() == 1;
        if written {
            record.history.extend(entry.0);
        }
        Ok(written)
    }

    /// Gives up a job this replica runs without ending it (shutdown): its lease expires now,
    /// so another replica resumes it at its next claim. `false`: the lease was already lost.
    pub async fn release(&self, record: &JobRecord) -> Result<bool, Error> {
        let updated = sqlx::query(
            "UPDATE dsfiles_jobs
             SET record = $3, lease_expires_at = now() - interval '1 second',
                 history = history || $4, updated_at = now()
             WHERE id = $1 AND runner = $2 AND state = 'running'",
        )
        .bind(&record.id)
        .bind(&self.replica)
        .bind(stored(record))
        .bind(self.entry(
            "released",
            format!("released by {} at shutdown", self.replica),
        ))
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(updated.rows_affected() == 1)
    }

    /// Forgets the oldest finished jobs beyond the `keep` most recent ones (`history_limit`).
    pub async fn prune(&self, keep: usize) -> Result<u64, Error> {
        let deleted = sqlx::query(
            "DELETE FROM dsfiles_jobs WHERE id IN (
                 SELECT id FROM dsfiles_jobs
                 WHERE state IN ('succeeded', 'failed', 'cancelled')
                 ORDER BY created_at DESC, id DESC OFFSET $1)",
        )
        .bind(i64::try_from(keep).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(deleted.rows_affected())
    }

    /// How many jobs are in each state, in [`JobState::ALL`] order.
    pub async fn count_by_state(&self) -> Result<[u64; 5], Error> {
        let rows = sqlx::query("SELECT state, count(*) FROM dsfiles_jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        let mut counts = [0u64; 5];
        for row in rows {
            let state: String = row.try_get(0).map_err(|e| self.error(e))?;
            let count: i64 = row.try_get(1).map_err(|e| self.error(e))?;
            if let Some(i) = JobState::ALL.iter().position(|s| s.as_str() == state) {
                counts[i] = u64::try_from(count).unwrap_or(0);
            }
        }
        Ok(counts)
    }

    /// Cancels job `id` from any replica: a queued job ends `cancelled` now, a running one is
    /// marked `cancel_requested` for its runner.
    pub async fn cancel(&self, id: &str) -> Result<Cancel, Error> {
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM dsfiles_jobs WHERE id = $1 FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.error(e))?;
        let Some(row) = row else {
            return Ok(Cancel::NotFound);
        };
        let mut record = self.record(&row)?;
        let answer = match record.state {
            JobState::Queued => {
                record.state = JobState::Cancelled;
                record.cancel_requested = true;
                record.finished_at = Some(Utc::now());
                self.write_cancel(&mut tx, &record, "cancelled").await?;
                Cancel::Cancelled(Box::new(record))
            }
            JobState::Running => {
                record.cancel_requested = true;
                self.write_cancel(&mut tx, &record, "cancel_requested")
                    .await?;
                Cancel::Requested(Box::new(record))
            }
            _ => Cancel::Finished(Box::new(record)),
        };
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(answer)
    }

    async fn write_cancel(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        record: &JobRecord,
        event: &str,
    ) -> Result<(), Error> {
        let message = format!("{event} on {}", self.replica).replace('_', " ");
        sqlx::query(
            "UPDATE dsfiles_jobs
             SET state = $2, cancel_requested = true, record = $3,
                 history = history || $4, updated_at = now()
             WHERE id = $1",
        )
        .bind(&record.id)
        .bind(record.state.as_str())
        .bind(stored(record))
        .bind(self.entry(event, message))
        .execute(&mut **tx)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>, Error> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM dsfiles_jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        row.map(|row| self.record(&row)).transpose()
    }

    /// The most recent jobs first, at most `limit`, optionally only in `state`, optionally
    /// only the runs of `schedule`.
    pub async fn recent(
        &self,
        limit: usize,
        state: Option<JobState>,
        schedule: Option<&str>,
    ) -> Result<Vec<JobRecord>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM dsfiles_jobs
             WHERE ($1::text IS NULL OR state = $1)
               AND ($3::text IS NULL OR record->>'schedule' = $3)
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(state.map(JobState::as_str))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(schedule)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        rows.iter().map(|row| self.record(row)).collect()
    }

    /// What happened to job `id`, oldest first (empty when there is no such job).
    pub async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, Error> {
        let row = sqlx::query("SELECT history FROM dsfiles_jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        let Some(row) = row else {
            return Ok(Vec::new());
        };
        let Json(history): Json<Vec<HistoryEntry>> =
            row.try_get("history").map_err(|e| self.error(e))?;
        Ok(history)
    }

    /// The record of `row` with the coordination columns laid over it.
    fn record(&self, row: &PgRow) -> Result<JobRecord, Error> {
        let Json(mut record): Json<JobRecord> = row.try_get("record").map_err(|e| self.error(e))?;
        let state: String = row.try_get("state").map_err(|e| self.error(e))?;
        record.state = JobState::ALL
            .into_iter()
            .find(|s| s.as_str() == state)
            .ok_or_else(|| {
                self.error(sqlx::Error::Protocol(format!(
                    "job `{}` has an unknown state `{state}`",
                    record.id
                )))
            })?;
        record.cancel_requested |= row
            .try_get::<bool, _>("cancel_requested")
            .map_err(|e| self.error(e))?;
        record.runner = row.try_get("runner").map_err(|e| self.error(e))?;
        let Json(history) = row.try_get("history").map_err(|e| self.error(e))?;
        record.history = history;
        Ok(record)
    }
}

/// The columns every read of a job selects.
const COLUMNS: &str = "id, state, runner, cancel_requested, record, history";

/// `record` as the `record` column keeps it: without its history (the `history` column).
fn stored(record: &JobRecord) -> Json<JobRecord> {
    Json(JobRecord {
        history: Vec::new(),
        ..record.clone()
    })
}

/// DS numbers fit in 31 bits (`api::DS_NUMBER_MAX`); saturate rather than wrap, whatever comes.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

mod schedules;

pub use schedules::Fired;

#[cfg(test)]
mod tests;
