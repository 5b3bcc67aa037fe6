//! Group commit: small uploads share one durability barrier instead of paying an fsync each.
//!
//! The invariant is the sink's own (see the module doc of `local`): **a key names complete,
//! durable bytes** — an upload's data reaches the disk before the rename that publishes it,
//! so a power cut can lose a commit but never leave a key with half a file. What changes is how
//! the data reaches the disk. An upload whose every byte is still in its buffer at commit (any
//! upload smaller than the write buffer: almost every file of a démarche) is queued here, and
//! one committer at a time (the *leader*, on a blocking thread) takes everything queued:
//!
//! 1. writes each upload to a temp file of its own (buffered: no `O_DIRECT` padding and
//!    truncation for a few hundred bytes);
//! 2. makes all of them durable at once: `syncfs(2)` on Linux, which writes back the file
//!    system's dirty data and flushes the disk's cache once, where `n` fsyncs flush it `n`
//!    times (and, issued side by side on a journal-less ext4, queue behind each other). If
//!    `syncfs` fails, each file is `fdatasync`ed so that one bad write fails only its own
//!    upload. Elsewhere, each file is `fdatasync`ed;
//! 3. only then renames each into place, exactly as a single commit does (`local::settle`),
//!    its directories left for the next `sync_dirs` like any commit's;
//! 4. if the round held `put_small`s (state files, durable on return), syncs the directories
//!    once for all of them, after every rename.
//!
//! A `put_small` also needs the directory entries of the commits before it made durable before
//! its rename (a manifest shard must not name a file whose entry a power cut can lose). A
//! `syncfs` after the `put_small` was queued does exactly that, so on Linux a `put_small` that
//! goes through the group does not sync them itself ([`covers_earlier_commits`]); when the
//! barrier was not a `syncfs` (it failed, or another platform), the round syncs them before
//! any rename.
//!
//! Uploads queued while a leader works wait for its next round, so the batch grows with the
//! load and a lone upload costs what it did before. Each upload gets its own result: a failure
//! before the barrier fails that upload (its temp file removed), a failed barrier fails the
//! uploads it could not make durable, a failed rename fails its upload only.
//!
//! The price: `syncfs` also writes back other processes' dirty data on the same file system,
//! so a destination shared with a heavy writer makes each round wait for it. Without fsync
//! (`fsync=false`) step 2 is skipped and the rest is unchanged.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::temp_file::{Block, TempFile};
use super::{DirSync, Error, Place, Seen, Shared, settle};

/// Uploads waiting for a leader, and whether one is at work.
#[derive(Default)]
pub(super) struct Queue {
    state: Mutex<Waiting>,
    /// Rounds run so far.
    rounds: AtomicU64,
}

#[cfg(test)]
impl Queue {
    /// Rounds run so far (each with one barrier).
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Waiting {
    jobs: Vec<Job>,
    leading: bool,
}

/// One upload to publish: every byte in `data`.
pub(super) struct Job {
    pub key: String,
    pub target: PathBuf,
    pub data: Block,
    pub dir_sync: DirSync,
    done: Option<oneshot::Sender<Result<(), Error>>>,
}

/// A job's temp file, once written.
struct Written {
    job: Job,
    temp: PathBuf,
    file: TempFile,
}

impl Job {
    pub fn new(key: String, target: PathBuf, data: Block, dir_sync: DirSync) -> Job {
        Job {
            key,
            target,
            data,
            dir_sync,
            done: None,
        }
    }

    fn finish(mut self, result: Result<(), Error>) {
        if let Some(done) = self.done.take() {
            let _ = done.send(result); // The upload's caller may be gone: nothing to tell.
        }
    }
}

/// Publishes `job` with the next round of the group commit; its own result.
pub(super) async fn commit(shared: &Arc<Shared>, mut job: Job) -> Result<(), Error> {
    let target = job.target.clone();
    let (done, result) = oneshot::channel();
    job.done = Some(done);
    let lead = {
        let mut waiting = lock(&shared.group.state);
        waiting.jobs.push(job);
        !std::mem::replace(&mut waiting.leading, true)
    };
    if lead {
        let shared = Arc::clone(shared);
        tokio::task::spawn_blocking(move || lead_rounds(&shared));
    }
    result.await.unwrap_or_else(|_| {
        let stopped = std::io::Error::other("the group commit stopped before this upload");
        Err(Error::io("publish", target, stopped))
    })
}

/// Runs rounds until nothing is queued. Blocking.
fn lead_rounds(shared: &Shared) {
    // A panic in a round drops its jobs (their callers get an error) and must not leave the
    // queue believing a leader is at work, or every later upload would wait forever.
    struct Abdicate<'a>(&'a Queue);
    impl Drop for Abdicate<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                lock(&self.0.state).leading = false;
            }
        }
    }
    let _abdicate = Abdicate(&shared.group);
    loop {
        let jobs = {
            let mut waiting = lock(&shared.group.state);
            if waiting.jobs.is_empty() {
                waiting.leading = false;
                return;
            }
            std::mem::take(&mut waiting.jobs)
        };
        round(shared, jobs);
    }
}

/// Whether an upload published by the group commit has, before its rename, every directory
/// entry of the commits that returned before it was queued made durable, so that `put_small`
/// needs no `sync_dirs` of its own: on Linux, for an upload that fits in the buffer (`small`).
pub(super) fn covers_earlier_commits(small: bool) -> bool {
    small && cfg!(target_os = "linux")
}

/// Writes, makes durable, then publishes `jobs`, each finished with its own result.
fn round(shared: &Shared, jobs: Vec<Job>) {
    shared.group.rounds.fetch_add(1, Ordering::Relaxed);
    let dir = match shared.temp_dir() {
        Ok(dir) => dir,
        Err(e) => {
            let reason = e.to_string();
            for job in jobs {
                let temp_dir = std::io::Error::other(reason.clone());
                job.finish(Err(Error::io("create temp file", &shared.tmp, temp_dir)));
            }
            return;
        }
    };
    let mut written = Vec::with_capacity(jobs.len());
    written.extend(jobs.into_iter().filter_map(|job| write(shared, &dir, job)));
    let (synced, covered) = barrier(shared, written);
    // `put_small`s (`DirSync::Now`) skipped their `sync_dirs` (`covers_earlier_commits`): if
    // the barrier did not cover the directories, sync them before any rename.
    let now = synced.iter().any(|(w, _)| w.job.dir_sync == DirSync::Now);
    let earlier = if now && shared.fsync && !covered {
        shared.sync_dirs().map_err(|e| e.to_string())
    } else {
        Ok(())
    };
    let (mut renamed_now, mut seen) = (Vec::new(), Seen::default());
    for (w, durable) in synced {
        let Written { job, temp, file } = w;
        drop(file);
        let result = durable.and_then(|()| {
            if job.dir_sync == DirSync::Now
                && let Err(reason) = &earlier
            {
                return Err(Error::io(
                    "fsync",
                    &shared.root,
                    std::io::Error::other(reason.clone()),
                ));
            }
            let place = Place {
                key: &job.key,
                target: &job.target,
            };
            settle(shared, &temp, place, DirSync::Deferred, &mut seen)
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&temp); // Else removed by the next `open`.
            job.finish(result);
        } else if job.dir_sync == DirSync::Now {
            renamed_now.push(job);
        } else {
            job.finish(result);
        }
    }
    // One sync of the directories for every `put_small` of the round, after all its renames.
    if !renamed_now.is_empty() {
        let synced = shared.sync_dirs().map_err(|e| e.to_string());
        for job in renamed_now {
            let result = synced
                .clone()
                .map_err(|reason| Error::io("fsync", &job.target, std::io::Error::other(reason)));
            job.finish(result);
        }
    }
}

/// `job`'s data in a new temp file of `dir` (buffered); `None` when it failed, `job` then
/// finished with why.
fn write(shared: &Shared, dir: &Path, mut job: Job) -> Option<Written> {
    let (temp, mut file) = match shared.create_temp_in(dir, false) {
        Ok(created) => created,
        Err(e) => {
            job.finish(Err(e));
            return None;
        }
    };
    if let Err(e) = file.finish(&temp, &mut job.data) {
        let _ = std::fs::remove_file(&temp);
        job.finish(Err(Error::io("write temp file", &temp, e)));
        return None;
    }
    Some(Written { job, temp, file })
}

/// Written files, each with whether it is durable.
type Synced = Vec<(Written, Result<(), Error>)>;

/// Makes every written file durable (see the module doc); each with whether it is, and
/// whether the barrier covered the whole file system (`syncfs`: every directory entry
/// changed before it, too).
fn barrier(shared: &Shared, written: Vec<Written>) -> (Synced, bool) {
    if !shared.fsync || written.is_empty() {
        return (written.into_iter().map(|w| (w, Ok(()))).collect(), false);
    }
    #[cfg(target_os = "linux")]
    match rustix::fs::syncfs(written[0].file.as_file()) {
        Ok(()) => return (written.into_iter().map(|w| (w, Ok(()))).collect(), true),
        Err(e) => tracing::warn!(
            dest = %shared.root.display(),
            "syncfs failed ({e}): syncing this round's files one by one"
        ),
    }
    let synced = written
        .into_iter()
        .map(|w| {
            let synced = w
                .file
                .sync_data()
                .map_err(|e| Error::io("fsync", &w.temp, e));
            (w, synced)
        })
        .collect();
    (synced, false)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
