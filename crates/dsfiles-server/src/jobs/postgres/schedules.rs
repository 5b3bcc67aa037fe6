//! Schedules in the shared database (`dsfiles_schedules`, migration
//! `20261204000002_schedules.sql`): the rules of `crate::schedules`, made to hold across
//! replicas.
//!
//! - **A tick starts one run across replicas.** [`JobDb::fire_schedule`] locks the schedule's
//!   row `FOR UPDATE SKIP LOCKED` only while its `next_due_at` is past (by the database's
//!   clock), decides with `schedules::due`, inserts the run's job and moves `next_due_at` in
//!   the same transaction. A second replica either skips the locked row or, once the first
//!   committed, finds the tick in the future: it fires nothing.
//! - **Never overlapping itself.** The decision reads the state of the schedule's last job in
//!   that transaction; a queued or running one makes the tick a skip. Another job on the same
//!   démarche and destination makes the job insert refuse (the `409` rule of `insert`): a skip
//!   too.
//! - **A run's end is counted once.** [`JobDb::account_schedule`] writes the accounted state
//!   only where `last_job` and `last_state` are still what it read.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{Postgres, Row as _, Transaction};

use super::{JobDb, stored, to_i64};
use crate::Error;
use crate::api::{JobState, MAX_SCHEDULES, Schedule};
use crate::schedules::due::{Action, Decision, Every, decide};
use crate::schedules::{Definition, PutError, account, apply, run_record};

/// The advisory lock key serializing schedule `PUT`s ("dsfsched" in ASCII).
const SCHEDULES_PUT_LOCK: i64 = 0x6473_6673_6368_6564;

/// What [`JobDb::fire_schedule`] did.
#[derive(Debug, Clone)]
pub enum Fired {
    /// Not due (any more): another replica fired the tick, or the schedule is disabled or gone.
    NotDue,
    Started {
        decision: Decision,
        job: String,
    },
    Skipped {
        decision: Decision,
        why: String,
    },
}

impl JobDb {
    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<Schedule>, Error> {
        let rows = sqlx::query("SELECT record FROM dsfiles_schedules ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        rows.iter().map(|row| self.schedule_of(row)).collect()
    }

    pub async fn schedule(&self, name: &str) -> Result<Option<Schedule>, Error> {
        let row = sqlx::query("SELECT record FROM dsfiles_schedules WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        row.map(|row| self.schedule_of(&row)).transpose()
    }

    fn schedule_of(&self, row: &sqlx::postgres::PgRow) -> Result<Schedule, Error> {
        let Json(schedule): Json<Schedule> = row.try_get("record").map_err(|e| self.error(e))?;
        Ok(schedule)
    }

    /// Creates (`true`) or replaces (`false`) a schedule; at most [`MAX_SCHEDULES`].
    pub(crate) async fn put_schedule(
        &self,
        def: &Definition,
    ) -> Result<(Schedule, bool), PutError> {
        let fail = |e| PutError::Store(self.error(e));
        let mut tx = self.pool.begin().await.map_err(fail)?;
        // One `PUT` at a time across replicas, so that the cap holds. An advisory lock, not a
        // table lock: a tick being fired holds its row and then writes, and must not wait for
        // a `PUT` that waits for that row (a deadlock).
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEDULES_PUT_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        let row = sqlx::query("SELECT record FROM dsfiles_schedules WHERE name = $1 FOR UPDATE")
            .bind(&def.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(fail)?;
        let existing = row
            .as_ref()
            .map(|r| self.schedule_of(r))
            .transpose()
            .map_err(PutError::Store)?;
        let created = existing.is_none();
        if created
            && self
                .schedule_count(&mut tx)
                .await
                .map_err(PutError::Store)?
                >= MAX_SCHEDULES
        {
            return Err(PutError::TooMany);
        }
        let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *tx)
            .await
            .map_err(fail)?;
        let schedule = apply(def, existing, now);
        self.write_schedule(&mut tx, &schedule)
            .await
            .map_err(PutError::Store)?;
        tx.commit().await.map_err(fail)?;
        Ok((schedule, created))
    }

    async fn schedule_count(
        &self,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<usize, Error> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM dsfiles_schedules")
            .fetch_one(&mut **tx)
            .await
            .map_err(|e| self.error(e))?;
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    async fn write_schedule(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        schedule: &Schedule,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO dsfiles_schedules (name, enabled, next_due_at, last_job, last_state, record)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET enabled = $2, next_due_at = $3, last_job = $4,
                 last_state = $5, record = $6, updated_at = now()",
        )
        .bind(&schedule.name)
        .bind(schedule.enabled)
        .bind(schedule.next_due_at)
        .bind(&schedule.last_job)
        .bind(schedule.last_state.map(JobState::as_str))
        .bind(Json(schedule))
        .execute(&mut **tx)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// `false` when there was no such schedule.
    pub async fn delete_schedule(&self, name: &str) -> Result<bool, Error> {
        let deleted = sqlx::query("DELETE FROM dsfiles_schedules WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(deleted.rows_affected() == 1)
    }

    /// Records how `schedule`'s last run ended, if it did, unless another replica did first.
    pub async fn account_schedule(&self, schedule: &Schedule) -> Result<(), Error> {
        let Some(job_id) = &schedule.last_job else {
            return Ok(());
        };
        let job = self.get(job_id).await?;
        let mut ended = schedule.clone();
        account(&mut ended, job.as_ref());
        if ended.last_state == schedule.last_state {
            return Ok(());
        }
        sqlx::query(
            "UPDATE dsfiles_schedules SET last_state = $4, record = $5, updated_at = now()
             WHERE name = $1 AND last_job = $2 AND last_state IS NOT DISTINCT FROM $3",
        )
        .bind(&schedule.name)
        .bind(job_id)
        .bind(schedule.last_state.map(JobState::as_str))
        .bind(ended.last_state.map(JobState::as_str))
        .bind(Json(&ended))
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Fires schedule `name` if it is due (see the module doc): queues its run (unless
    /// `max_queued` jobs wait) or skips the tick, and moves the tick, in one transaction.
    ///
    /// `every` is the period the caller read: a tick further ahead than that (the clock went
    /// back) is locked too, for `decide` to pull it back.
    pub async fn fire_schedule(
        &self,
        name: &str,
        every: Every,
        max_queued: usize,
    ) -> Result<Fired, Error> {
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        let row = sqlx::query(
            "SELECT record, now() AS now FROM dsfiles_schedules
             WHERE name = $1 AND enabled
               AND (next_due_at <= now() OR next_due_at > now() + make_interval(secs => $2))
             FOR UPDATE SKIP LOCKED",
        )
        .bind(name)
        .bind(every.duration().as_secs_f64())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.error(e))?;
        let Some(row) = row else {
            return Ok(Fired::NotDue);
        };
        let mut schedule = self.schedule_of(&row)?;
        let now: DateTime<Utc> = row.try_get("now").map_err(|e| self.error(e))?;
        let active = self
            .run_active(&mut tx, schedule.last_job.as_deref())
            .await?;
        let decision = decide(schedule.every(), schedule.next_due_at, now, active);
        let fired = match decision.action {
            Action::Wait => Fired::NotDue,
            Action::Skip => {
                self.note_skip(&mut tx, &schedule, now).await?;
                Fired::Skipped {
                    decision,
                    why: "its previous run is still active".into(),
                }
            }
            Action::Start => {
                self.start_run(&mut tx, &mut schedule, decision, max_queued)
                    .await?
            }
        };
        if matches!(fired, Fired::Skipped { .. }) {
            schedule.skipped_ticks += 1;
        }
        schedule.next_due_at = decision.next_due;
        self.write_schedule(&mut tx, &schedule).await?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(fired)
    }

    /// Says in the history of the schedule's active run that a tick fell during it.
    async fn note_skip(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let message = format!(
            "tick of schedule `{}` at {} skipped: this run is still active",
            schedule.name,
            schedule
                .next_due_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let mut entry = self.entry("tick_skipped", message);
        entry.0[0].at = now;
        sqlx::query(
            "UPDATE dsfiles_jobs SET history = history || $2, updated_at = now() WHERE id = $1",
        )
        .bind(&schedule.last_job)
        .bind(entry)
        .execute(&mut **tx)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Whether job `id` is queued or running.
    async fn run_active(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        id: Option<&str>,
    ) -> Result<bool, Error> {
        let Some(id) = id else { return Ok(false) };
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM dsfiles_jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(|e| self.error(e))?;
        Ok(state.is_some_and(|s| s == "queued" || s == "running"))
    }

    /// Inserts the run's job in `tx` (the rules of [`JobDb::insert`]); a skip when the queue
    /// is full or another job holds the démarche and destination.
    async fn start_run(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        schedule: &mut Schedule,
        decision: Decision,
        max_queued: usize,
    ) -> Result<Fired, Error> {
        let queued: i64 =
            sqlx::query_scalar("SELECT count(*) FROM dsfiles_jobs WHERE state = 'queued'")
                .fetch_one(&mut **tx)
                .await
                .map_err(|e| self.error(e))?;
        if queued >= i64::try_from(max_queued).unwrap_or(i64::MAX) {
            let why = format!("`{max_queued}` syncs are already queued");
            return Ok(Fired::Skipped { decision, why });
        }
        // `jobs` is the runner's setting, not kept in the record.
        let spec = schedule.spec(1);
        let record = run_record(schedule, &spec);
        let inserted = sqlx::query(
            "INSERT INTO dsfiles_jobs (id, state, demarche, dest, created_at, record, history)
             SELECT $1, 'queued', $2, $3, $4, $5, $6
             WHERE NOT EXISTS (SELECT 1 FROM dsfiles_jobs
                               WHERE demarche = $2 AND dest = $3 AND state = 'running')
             ON CONFLICT DO NOTHING",
        )
        .bind(&record.id)
        .bind(to_i64(record.demarche))
        .bind(&record.dest)
        .bind(record.created_at)
        .bind(stored(&record))
        .bind(self.entry(
            "queued",
            format!("queued on {} by schedule `{}`", self.replica, schedule.name),
        ))
        .execute(&mut **tx)
        .await
        .map_err(|e| self.error(e))?;
        if inserted.rows_affected() != 1 {
            let why =
                "another job on the same démarche and destination is queued or running".into();
            return Ok(Fired::Skipped { decision, why });
        }
        schedule.last_job = Some(record.id.clone());
        schedule.last_state = Some(JobState::Queued);
        schedule.last_started_at = Some(record.created_at);
        Ok(Fired::Started {
            decision,
            job: record.id,
        })
    }
}

#[cfg(test)]
mod tests;
