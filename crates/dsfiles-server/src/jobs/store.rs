//! The job history on disk: one JSON file per job in `<state_dir>/jobs/`, each replaced
//! atomically (write a temporary file, then rename). Writes go through one owned writer task
//! that keeps only the latest version of each pending record, so callers never block and
//! memory stays bounded by the number of jobs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::lock;
use crate::Error;
use crate::api::{JobError, JobRecord, JobState};

/// Pending writes: the latest record of each job, or `None` to delete its file.
#[derive(Debug, Default)]
struct Pending {
    records: HashMap<String, Option<JobRecord>>,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Notify,
}

/// Handle to the history directory and its writer task.
#[derive(Debug)]
pub(crate) struct Store {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Store {
    /// Opens (creates) `<state_dir>/jobs`, loads the history oldest first, keeping the last
    /// `limit` jobs, and starts the writer task (call inside a Tokio runtime).
    ///
    /// Jobs that were queued when the service stopped come back `cancelled`; jobs that were
    /// running (the service did not stop cleanly) come back `failed` with code `interrupted`.
    pub(crate) fn open(state_dir: &Path, limit: usize) -> Result<(Store, Vec<JobRecord>), Error> {
        let dir = state_dir.join("jobs");
        let io_err = |source| Error::Store {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io_err)?;
        let mut records = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_err)? {
            let path = entry.map_err(io_err)?.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<JobRecord>(&bytes).map_err(|e| e.to_string())
                });
            match parsed {
                Ok(record) if record_file(&dir, &record.id) == path => records.push(record),
                Ok(record) => {
                    tracing::warn!(file = %path.display(), id = %record.id, "job file does not match its id; ignored")
                }
                Err(err) => {
                    tracing::warn!(file = %path.display(), error = %err, "unreadable job file; ignored")
                }
            }
        }
        records.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        let excess = records.len().saturating_sub(limit);
        for old in records.drain(..excess) {
            if let Err(err) = std::fs::remove_file(record_file(&dir, &old.id)) {
                tracing::warn!(id = %old.id, error = %err, "cannot delete an old job file");
            }
        }
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
        });
        let store = Store {
            shared: shared.clone(),
            writer: Mutex::new(None),
        };
        for record in &mut records {
            if recover(record) {
                store.put(record);
            }
        }
        let writer = tokio::spawn(write_loop(dir, shared));
        *lock(&store.writer) = Some(writer);
        Ok((store, records))
    }

    /// Schedules `record` to be written (the latest version wins).
    pub(crate) fn put(&self, record: &JobRecord) {
        self.schedule(record.id.clone(), Some(record.clone()));
    }

    /// Schedules the file of job `id` to be deleted.
    pub(crate) fn delete(&self, id: &str) {
        self.schedule(id.to_owned(), None);
    }

    fn schedule(&self, id: String, record: Option<JobRecord>) {
        let mut pending = lock(&self.shared.pending);
        if pending.closed {
            tracing::warn!(id = %id, "job history already closed; change not written");
            return;
        }
        pending.records.insert(id, record);
        drop(pending);
        self.shared.wake.notify_one();
    }

    /// Writes everything pending and stops the writer. Later changes are not written.
    pub(crate) async fn flush(&self) {
        lock(&self.shared.pending).closed = true;
        self.shared.wake.notify_one();
        let writer = lock(&self.writer).take();
        if let Some(writer) = writer
            && let Err(err) = writer.await
        {
            tracing::error!(error = %err, "the job history writer ended abnormally");
        }
    }
}

/// Marks a job found unfinished at startup; `true` when it changed.
fn recover(record: &mut JobRecord) -> bool {
    let (state, code, message) = match record.state {
        JobState::Queued => (
            JobState::Cancelled,
            "shutdown",
            "the service stopped before the job started",
        ),
        JobState::Running => (
            JobState::Failed,
            "interrupted",
            "the service stopped while the job was running",
        ),
        _ => return false,
    };
    record.state = state;
    record.finished_at = Some(Utc::now());
    record.error = Some(JobError {
        code: code.into(),
        message: message.into(),
    });
    true
}

fn record_file(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

async fn write_loop(dir: PathBuf, shared: Arc<Shared>) {
    loop {
        let (batch, closed) = {
            let mut pending = lock(&shared.pending);
            (std::mem::take(&mut pending.records), pending.closed)
        };
        if !batch.is_empty() {
            let dir = dir.clone();
            let written = tokio::task::spawn_blocking(move || write_batch(&dir, batch)).await;
            if let Err(err) = written {
                tracing::error!(error = %err, "the job history write task failed");
            }
        }
        if closed && lock(&shared.pending).records.is_empty() {
            return;
        }
        if !closed {
            shared.wake.notified().await;
        }
    }
}

fn write_batch(dir: &Path, batch: HashMap<String, Option<JobRecord>>) {
    for (id, record) in batch {
        let path = record_file(dir, &id);
        let result = match record {
            Some(record) => write_atomic(&path, &record),
            None => match std::fs::remove_file(&path) {
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        };
        if let Err(err) = result {
            tracing::error!(file = %path.display(), error = %err, "cannot write the job history");
        }
    }
}

fn write_atomic(path: &Path, record: &JobRecord) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
