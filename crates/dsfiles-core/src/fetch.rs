//! Downloading one file: stream the body chunk by chunk through MD5 and SHA-256 (on their own
//! threads, see [`crate::hash`]) into a sink upload, publish only when size and checksum match DS's, and retry in
//! one bounded loop (transient errors with backoff and `Range` resume, expired URLs with fresh
//! ones, checksum mismatches with a fresh download).
//!
//! Where each rule lives: `Fetcher::fetch` is the retry loop, with one step per kind of failure
//! holding its budget check (`renew` for expired URLs, `pause` for transient errors and their
//! backoff, `redownload` for bytes DS's metadata does not describe); `publishable` decides
//! what may be published. `Fetcher::download` is one attempt, with its own bounded `Range`
//! resumes (`resume`, and `fresh_url` for a URL that expired in between).
//!
//! File URLs are signed and point to another host than the API: this module has its own HTTP
//! client that never sends an `Authorization` header nor a `Referer`, and URLs appear in
//! messages only with their query stripped.
//!
//! File URLs come from DS's answers, so they are untrusted: [`policy`] decides which hosts and
//! addresses a download may reach (checked on every URL and redirect hop, and on every
//! resolved address, before any connection), how many bytes a body may have (never more than
//! DS announced) and how long an attempt may take.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, RANGE, RETRY_AFTER};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use self::policy::{Blocked, HopRefusal, HostPolicy};
use crate::extract::FileRecord;
use crate::hash::{Digests, Hasher};
use crate::options::FetchOptions;
use crate::plan::{good_status, verifiable};
use crate::sink::{self, ObjectMeta, Sink, Upload};
use crate::wire::{Event, FileStatus};
use crate::{Error, Progress};

pub(crate) mod policy;

/// Resumes (`Range` requests) of one attempt before it counts as a failed attempt.
const MAX_RESUMES: u32 = 5;

/// Fresh metadata and URL for a file, fetched from DS (`client.dossier(n)`).
pub(crate) trait Refresh: Send + Sync {
    /// The current record of the same file slot; `Ok(None)` when DS no longer has it.
    fn refresh<'a>(
        &'a self,
        record: &'a FileRecord,
    ) -> BoxFuture<'a, Result<Option<FileRecord>, String>>;
}

/// Where a download goes.
pub(crate) struct Dest<'a> {
    pub sink: &'a dyn Sink,
    pub key: &'a str,
}

/// Bodies of at most this many bytes give their download permit back while their upload
/// commits ([`Slot`]).
///
/// Why 64 KiB: a lent upload's bytes stay in memory until its commit returns, and up to
/// `--jobs` of them can wait beside the `--jobs` downloads. At 256 KiB (the local sink's write
/// buffer, below which it group-commits) the bench's 2.19 GB case, two thirds of whose files are
/// that small, peaked at 61.8 MiB against 58.5–59.6 MiB before, of its 64 MiB limit; at 64 KiB
/// lending adds at most 1 MiB at `--jobs 16`, and the typical small file still lends.
pub(crate) const LEND_UP_TO: u64 = 64 * 1024;

/// One file's download permit, one of the run's `--jobs`: held while its bytes travel, and
/// lent back while the upload of a small body ([`LEND_UP_TO`]) commits, so that the next file's
/// download starts instead of waiting for a durability barrier.
///
/// Why lend at all: committing is waiting — on local disk for a group-commit round
/// (`dsfiles_sink::local`'s `group`), which makes every upload queued so far durable with one
/// `syncfs`. With the permits held, a round covers at most `--jobs` files (about 7 per round in
/// the bench's 10,000 × 4 KiB case); lent, the uploads of the downloads that go on meanwhile join
/// the next round (about 14). What a committing upload holds without a permit is its own bytes,
/// so lending costs at most [`LEND_UP_TO`] per file awaiting a commit, and the caller bounds
/// those files (`sync::publish`: twice `--jobs` files in flight). A large upload keeps its
/// permit: it holds a write buffer, and on an object store a whole part.
///
/// A retry after the commit failed takes a permit again ([`Slot::hold`]) before it downloads.
pub(crate) struct Slot {
    permits: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl Slot {
    pub(crate) fn new(permits: Arc<Semaphore>) -> Slot {
        Slot {
            permits,
            held: None,
        }
    }

    /// Takes a permit unless one is held; `false` once `cancel` fires first (or the
    /// semaphore is closed).
    pub(crate) async fn hold(&mut self, cancel: &CancellationToken) -> bool {
        if self.held.is_none() {
            self.held = tokio::select! {
                () = cancel.cancelled() => None,
                permit = Arc::clone(&self.permits).acquire_owned() => permit.ok(),
            };
        }
        self.held.is_some()
    }

    /// Gives the permit back while an upload of `size` bytes commits, if it is small.
    fn lend_for_commit(&mut self, size: u64) {
        if size <= LEND_UP_TO {
            self.held = None;
        }
    }
}

/// A published file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fetched {
    /// The record as DS last described it (refreshed URLs, maybe new metadata).
    pub record: FileRecord,
    pub sha256: String,
    pub md5_base64: String,
    pub size: u64,
    pub status: FileStatus,
    /// For a checksum mismatch: what DS announced and what the bytes are.
    pub detail: Option<String>,
}

/// Why a file was not published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FetchFailure {
    Cancelled,
    Failed {
        /// The last real error, with attempts and elapsed time.
        reason: String,
        /// Machine-readable kind, when there is one ([`policy::BLOCKED_ADDRESS`]).
        code: Option<&'static str>,
    },
}

/// One way a download attempt can end badly.
#[derive(Debug)]
enum AttemptError {
    Cancelled,
    /// 401/403/410 (or 404) from the file host: the signed URL is no longer valid.
    Expired {
        status: StatusCode,
        url: String,
    },
    /// Another HTTP status.
    Status {
        status: StatusCode,
        url: String,
        retry_after: Option<Duration>,
    },
    Transport {
        url: String,
        error: reqwest::Error,
    },
    /// The body ended before the announced size.
    Truncated {
        got: u64,
        expected: u64,
    },
    /// A `Range` request was answered with something else than the requested part.
    RangeIgnored {
        status: StatusCode,
    },
    /// The URL or an address it resolves to is refused by [`policy`] (no connection made).
    Blocked(String),
    /// A redirect [`policy`] does not follow (downgrade to http, too many hops).
    Redirect(String),
    /// The body went past `limit` bytes: DS's announced size, or the cap for unannounced sizes.
    TooLong {
        limit: u64,
        announced: bool,
    },
    /// The attempt outlived its deadline ([`policy::attempt_deadline`]).
    Deadline(Duration),
    Sink(sink::Error),
    /// The hashing thread died (a bug).
    Hashing(String),
}

impl AttemptError {
    fn is_transient(&self) -> bool {
        match self {
            AttemptError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            AttemptError::Transport { error, .. } => !error.is_builder() && !error.is_redirect(),
            AttemptError::Truncated { .. }
            | AttemptError::RangeIgnored { .. }
            | AttemptError::Deadline(_) => true,
            AttemptError::Sink(e) => e.is_transient(),
            AttemptError::Cancelled
            | AttemptError::Expired { .. }
            | AttemptError::Hashing(_)
            | AttemptError::Blocked(_)
            | AttemptError::Redirect(_)
            | AttemptError::TooLong { .. } => false,
        }
    }

    /// The machine-readable kind of a failure ending with this error.
    fn code(&self) -> Option<&'static str> {
        matches!(self, AttemptError::Blocked(_)).then_some(policy::BLOCKED_ADDRESS)
    }

    /// A failed request: refused by [`policy`] (found in the error's sources: the resolver and
    /// the redirect policy report through reqwest) or a transport error.
    fn from_request(url: &str, error: reqwest::Error) -> AttemptError {
        let mut source = std::error::Error::source(&error);
        while let Some(e) = source {
            if let Some(blocked) = e.downcast_ref::<Blocked>() {
                return AttemptError::Blocked(blocked.to_string());
            }
            if let Some(refusal) = e.downcast_ref::<HopRefusal>() {
                return match refusal {
                    HopRefusal::Blocked(blocked) => AttemptError::Blocked(blocked.to_string()),
                    other => AttemptError::Redirect(other.to_string()),
                };
            }
            source = e.source();
        }
        AttemptError::Transport {
            url: url.to_owned(),
            error: error.without_url(),
        }
    }
}

impl std::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptError::Cancelled => f.write_str("cancelled"),
            AttemptError::Expired { status, url } => {
                write!(
                    f,
                    "the file host answered `{status}` for `{url}` (expired or revoked URL)"
                )
            }
            AttemptError::Status { status, url, .. } => {
                write!(f, "the file host answered `{status}` for `{url}`")
            }
            AttemptError::Transport { url, error } => {
                write!(f, "request to `{url}` failed: {}", reqwest_chain(error))
            }
            AttemptError::Truncated { got, expected } => {
                write!(f, "the body ended after {got} of {expected} bytes")
            }
            AttemptError::RangeIgnored { status } => {
                write!(
                    f,
                    "a `Range` request was answered with `{status}` instead of the requested part"
                )
            }
            AttemptError::Blocked(reason) => f.write_str(reason),
            AttemptError::Redirect(reason) => write!(f, "refused to follow {reason}"),
            AttemptError::TooLong {
                limit,
                announced: true,
            } => write!(
                f,
                "body longer than announced: more than the {limit} bytes DS announced"
            ),
            AttemptError::TooLong {
                limit,
                announced: false,
            } => write!(
                f,
                "body longer than {limit} bytes, the limit for files DS announces no size for"
            ),
            AttemptError::Deadline(d) => write!(
                f,
                "the download did not finish within its deadline of {:.1}s",
                d.as_secs_f64()
            ),
            AttemptError::Sink(e) => write!(f, "{}", error_chain(e)),
            AttemptError::Hashing(reason) => write!(f, "hashing failed: {reason}"),
        }
    }
}

/// `error` and its sources, joined with `: `.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        source = e.source();
    }
    out
}

/// A reqwest error without its URL (the signed query would leak), with its sources.
fn reqwest_chain(error: &reqwest::Error) -> String {
    let mut out = String::from(if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "error reading the body"
    } else {
        "error sending the request"
    });
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        let s = strip_query(&e.to_string()).to_owned();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        source = e.source();
    }
    out
}

/// `url` without its query and fragment: what may appear in logs and messages.
pub(crate) fn strip_query(url: &str) -> &str {
    match url.find(['?', '#']) {
        Some(i) => &url[..i],
        None => url,
    }
}

/// The delay before attempt `n + 1` (n ≥ 1): `base * 2^(n-1)` capped at `max`, with jitter in
/// its upper half.
pub(crate) fn backoff(opts: &FetchOptions, n: u32) -> Duration {
    let exp = opts
        .backoff_base
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(opts.backoff_max);
    let half = exp / 2;
    half + half.mul_f64(fastrand::f64())
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` header.
pub(crate) fn content_range_start(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

/// The system resolver, keeping only the addresses [`policy`] allows: the connection uses exactly
/// the addresses checked here, so a name cannot resolve to something else between the check and
/// the connection (DNS rebinding).
struct CheckedResolver(Arc<HostPolicy>);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.0);
        Box::pin(async move {
            let name = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed = policy.filter_resolved(&name, addrs)?;
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Downloads files; one per sync run, shared by the workers.
#[derive(Clone, Debug)]
pub(crate) struct Fetcher {
    http: reqwest::Client,
    policy: Arc<HostPolicy>,
    opts: FetchOptions,
    /// Extra downloads after a checksum mismatch.
    retries: u32,
}

/// What every attempt at one file shares: where it goes, how to refresh its record, where
/// events go and when to stop.
struct Job<'a> {
    dest: Dest<'a>,
    refresh: &'a dyn Refresh,
    progress: &'a Progress,
    cancel: &'a CancellationToken,
}

/// How one file's attempts went so far.
struct Budget {
    started: Instant,
    attempts: u32,
    transient: u32,
    expired: u32,
    mismatches: u32,
    /// Digests of the downloads that disagreed with DS.
    seen: Vec<Digests>,
}

impl Budget {
    fn start() -> Budget {
        Budget {
            started: Instant::now(),
            attempts: 0,
            transient: 0,
            expired: 0,
            mismatches: 0,
            seen: Vec::new(),
        }
    }

    /// The file's failure: the last real error with the attempts and the elapsed time.
    fn fail(&self, reason: String, code: Option<&'static str>) -> FetchFailure {
        FetchFailure::Failed {
            reason: format!(
                "{reason} (after {} attempts in {:.1}s)",
                self.attempts,
                self.started.elapsed().as_secs_f64()
            ),
            code,
        }
    }
}

impl Fetcher {
    pub(crate) fn new(opts: FetchOptions, retries: u32) -> Result<Fetcher, Error> {
        let policy = Arc::new(HostPolicy::new(
            &opts.allow_file_hosts,
            opts.api_endpoint.as_ref(),
        ));
        let hops = Arc::clone(&policy);
        dsfiles_sink::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .user_agent(opts.user_agent.clone())
            // Bytes must arrive exactly as stored: no transparent decompression.
            .no_gzip()
            // The signed URL must not travel to the next host.
            .referer(false)
            .redirect(reqwest::redirect::Policy::custom(move |attempt| match hops
                .check_hop(attempt.previous(), attempt.url())
            {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }))
            .dns_resolver(CheckedResolver(Arc::clone(&policy)))
            .build()
            .map_err(|e| Error::InvalidOption {
                name: "fetch",
                reason: reqwest_chain(&e),
            })?;
        Ok(Fetcher {
            http,
            policy,
            opts,
            retries,
        })
    }

    /// Downloads `record` into `dest` and publishes it once verified; see the module docs.
    ///
    /// The one retry loop: each attempt ends published, or with an error that decides what
    /// comes next (each budget is checked in the step it names).
    ///
    /// `slot`: the file's download permit, taken again before every attempt and lent back
    /// while a small upload commits.
    pub(crate) async fn fetch(
        &self,
        mut record: FileRecord,
        (dest, slot): (Dest<'_>, &mut Slot),
        refresh: &dyn Refresh,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<Fetched, FetchFailure> {
        let job = Job {
            dest,
            refresh,
            progress,
            cancel,
        };
        let mut budget = Budget::start();
        loop {
            if cancel.is_cancelled() || !slot.hold(cancel).await {
                return Err(FetchFailure::Cancelled);
            }
            budget.attempts += 1;
            progress.event(&Event::FileStarted {
                key: job.dest.key.to_owned(),
                bytes: record.byte_size,
            });
            let error = match self.attempt(&record, &job).await {
                Ok((upload, size, digests)) => {
                    match publishable(&record, size, &digests, &budget.seen) {
                        Some(matches) => {
                            slot.lend_for_commit(size);
                            match upload.commit().await {
                                Err(e) => AttemptError::Sink(e),
                                Ok(()) => return Ok(fetched(record, size, digests, matches)),
                            }
                        }
                        None => {
                            abort(upload, job.dest.key).await;
                            self.mismatched(&mut record, size, digests, &mut budget, &job)
                                .await?;
                            continue;
                        }
                    }
                }
                Err(e) => e,
            };
            match error {
                AttemptError::Cancelled => return Err(FetchFailure::Cancelled),
                AttemptError::Expired { .. } => {
                    self.renew(&mut record, &mut budget, &error, &job).await?;
                }
                // Like a mismatch: DS's metadata may be stale, never stored.
                AttemptError::TooLong { .. } => {
                    let reason = error.to_string();
                    self.redownload(&mut record, &mut budget, &reason, reason.clone(), &job)
                        .await?;
                }
                error if error.is_transient() => self.pause(&mut budget, &error, &job).await?,
                error => return Err(budget.fail(error.to_string(), error.code())),
            }
        }
    }

    /// After bytes that match neither DS nor an earlier download (the upload already
    /// discarded): remember their digests and download again with fresh metadata.
    async fn mismatched(
        &self,
        record: &mut FileRecord,
        size: u64,
        digests: Digests,
        budget: &mut Budget,
        job: &Job<'_>,
    ) -> Result<(), FetchFailure> {
        let reason = mismatch(record, size, &digests);
        budget.seen.push(digests);
        let spent = format!("downloads disagree with each other and with DS: last {reason}");
        self.redownload(record, budget, &reason, spent, job).await
    }

    /// After bytes DS's metadata does not describe: another download with fresh metadata,
    /// until `retries` extra downloads are spent (then `Err` with `spent`).
    async fn redownload(
        &self,
        record: &mut FileRecord,
        budget: &mut Budget,
        reason: &str,
        spent: String,
        job: &Job<'_>,
    ) -> Result<(), FetchFailure> {
        budget.mismatches += 1;
        if budget.mismatches > self.retries {
            return Err(budget.fail(spent, None));
        }
        self.refetch(record, budget, reason, job)
            .await
            .map_err(|r| budget.fail(r, None))
    }

    /// After an expired URL: a retry event and fresh URLs from DS, until more than
    /// `retries + 2` expirations.
    async fn renew(
        &self,
        record: &mut FileRecord,
        budget: &mut Budget,
        error: &AttemptError,
        job: &Job<'_>,
    ) -> Result<(), FetchFailure> {
        budget.expired += 1;
        if budget.expired > self.retries.saturating_add(2) {
            return Err(budget.fail(error.to_string(), None));
        }
        self.retry_event(job.dest.key, budget, &error.to_string(), job.progress);
        match job.refresh.refresh(record).await {
            Ok(Some(fresh)) => *record = fresh,
            Ok(None) => {
                let reason = "DS no longer lists the file".to_owned();
                return Err(budget.fail(reason, None));
            }
            Err(e) => {
                let reason = format!("{error}; fresh URLs could not be fetched: {e}");
                return Err(budget.fail(reason, None));
            }
        }
        Ok(())
    }

    /// After a transient error: a retry event and a wait (`Retry-After`, capped at
    /// `backoff_max`, else [`backoff`]), until `max_transient_attempts`.
    async fn pause(
        &self,
        budget: &mut Budget,
        error: &AttemptError,
        job: &Job<'_>,
    ) -> Result<(), FetchFailure> {
        budget.transient += 1;
        if budget.transient >= self.opts.max_transient_attempts {
            return Err(budget.fail(error.to_string(), None));
        }
        self.retry_event(job.dest.key, budget, &error.to_string(), job.progress);
        let delay = match error {
            AttemptError::Status {
                retry_after: Some(after),
                ..
            } => (*after).min(self.opts.backoff_max),
            _ => backoff(&self.opts, budget.transient),
        };
        tokio::select! {
            () = job.cancel.cancelled() => Err(FetchFailure::Cancelled),
            () = tokio::time::sleep(delay) => Ok(()),
        }
    }

    /// Before another attempt at a file DS's metadata did not describe: a retry event, then
    /// fresh metadata (kept as it was when DS cannot be reached). `Err`: DS dropped the file.
    async fn refetch(
        &self,
        record: &mut FileRecord,
        budget: &Budget,
        reason: &str,
        job: &Job<'_>,
    ) -> Result<(), String> {
        let key = job.dest.key;
        self.retry_event(key, budget, reason, job.progress);
        match job.refresh.refresh(record).await {
            Ok(Some(fresh)) => *record = fresh,
            Ok(None) => return Err("DS no longer lists the file".to_owned()),
            Err(e) => tracing::warn!(key, "cannot refresh the file's metadata: {e}"),
        }
        Ok(())
    }

    /// Creates the upload and downloads into it. On success the upload is returned unpublished
    /// with the byte count and digests; on failure it has been aborted.
    async fn attempt(
        &self,
        record: &FileRecord,
        job: &Job<'_>,
    ) -> Result<(Box<dyn Upload>, u64, Digests), AttemptError> {
        let dest = &job.dest;
        let meta = object_meta(record, None);
        let mut upload = dest
            .sink
            .create(dest.key, &meta)
            .await
            .map_err(AttemptError::Sink)?;
        let mut hasher = Hasher::start();
        let download = self.download(record, upload.as_mut(), &mut hasher, job);
        let size = announced(record).unwrap_or(self.opts.max_unannounced_size);
        let result = match policy::attempt_deadline(size, &self.opts) {
            Some(deadline) => tokio::time::timeout(deadline, download)
                .await
                .unwrap_or(Err(AttemptError::Deadline(deadline))),
            None => download.await,
        };
        let digests = hasher.finish().await;
        match (result, digests) {
            (Ok(size), Ok(digests)) => Ok((upload, size, digests)),
            (Err(e), _) => {
                abort(upload, dest.key).await;
                Err(e)
            }
            (Ok(_), Err(e)) => {
                abort(upload, dest.key).await;
                Err(AttemptError::Hashing(e.to_string()))
            }
        }
    }

    fn retry_event(&self, key: &str, budget: &Budget, reason: &str, progress: &Progress) {
        tracing::debug!(
            key,
            attempt = budget.attempts,
            "retrying a download: {reason}"
        );
        progress.event(&Event::Retry {
            what: key.to_owned(),
            attempt: budget.attempts,
            reason: reason.to_owned(),
        });
    }

    /// One attempt: GET the URL (resuming with `Range` after an interruption when the server
    /// allows it) and feed every chunk to the hasher and the upload. Returns the byte count.
    ///
    /// A signed URL that expires between an interruption and its resume is refreshed and the
    /// download resumes from the fresh URL, as long as DS still announces the same size and
    /// checksum (the MD5 of the whole then proves the parts belong together); otherwise the
    /// attempt ends as [`AttemptError::Expired`] and starts over.
    async fn download(
        &self,
        record: &FileRecord,
        upload: &mut dyn Upload,
        hasher: &mut Hasher,
        job: &Job<'_>,
    ) -> Result<u64, AttemptError> {
        let limits = Limits::new(announced(record), &self.opts);
        let mut at = Position::start(&record.url);
        loop {
            let response = self.request(&at, job.cancel).await?;
            let status = response.status();
            if at.received > 0 && expired_status(status) {
                // The URL expired after the interruption: resume from a fresh one.
                self.fresh_url(record, &mut at, status, &limits, job)
                    .await?;
                continue;
            }
            check_status(&response, &at)?;
            let (expected, resumable) = expectations(&response, &at, &limits)?;
            match read_body(response, &mut at, expected, &limits, hasher, upload, job).await? {
                Body::Complete => return Ok(at.received),
                Body::Interrupted(interruption) => resume(interruption, resumable, &mut at, job)?,
            }
        }
    }

    /// Sends the GET for `at`, asking only for the missing part after an interruption; the URL
    /// itself is checked against [`policy`] first.
    async fn request(
        &self,
        at: &Position,
        cancel: &CancellationToken,
    ) -> Result<reqwest::Response, AttemptError> {
        // IP literals never reach the resolver: the URL itself is checked first.
        if let Ok(parsed) = url::Url::parse(&at.signed_url) {
            self.policy
                .check_url(&parsed)
                .map_err(|blocked| AttemptError::Blocked(blocked.to_string()))?;
        }
        let mut request = self.http.get(&at.signed_url);
        if at.received > 0 {
            request = request.header(RANGE, format!("bytes={}-", at.received));
        }
        tokio::select! {
            () = cancel.cancelled() => Err(AttemptError::Cancelled),
            r = request.send() => r.map_err(|error| AttemptError::from_request(&at.url, error)),
        }
    }

    /// After an interruption the URL expired: switch to a fresh one while resumes are left and
    /// DS still announces the same size and checksum, else the attempt ends as expired.
    async fn fresh_url(
        &self,
        record: &FileRecord,
        at: &mut Position,
        status: StatusCode,
        limits: &Limits,
        job: &Job<'_>,
    ) -> Result<(), AttemptError> {
        let expired = |at: &Position| AttemptError::Expired {
            status,
            url: at.url.clone(),
        };
        if at.resumes >= MAX_RESUMES || limits.announced.is_none() {
            return Err(expired(at));
        }
        match job.refresh.refresh(record).await {
            Ok(Some(fresh))
                if fresh.checksum == record.checksum
                    && fresh.byte_size == record.byte_size
                    && fresh.url != at.signed_url =>
            {
                at.resumes += 1;
                let (key, received) = (job.dest.key, at.received);
                tracing::debug!(key, received, "resuming from a fresh URL");
                at.switch(fresh.url);
                Ok(())
            }
            _ => Err(expired(at)),
        }
    }
}

/// The attributes an object of `record` is published with: DS's content type and DS's checksum
/// (what DS announced, even when the bytes disagree and the file is flagged), plus the SHA-256
/// when it is known before the upload starts.
pub(crate) fn object_meta(record: &FileRecord, sha256_hex: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        content_type: Some(record.content_type.clone()).filter(|c| !c.is_empty()),
        md5_base64: Some(record.checksum.clone()).filter(|_| verifiable(record)),
        sha256_hex: sha256_hex.map(str::to_owned),
    }
}

/// The size DS announced, when it is usable (not for generated files, which have no checksum).
fn announced(record: &FileRecord) -> Option<u64> {
    verifiable(record).then_some(record.byte_size)
}

/// Statuses a file host answers for an expired or revoked signed URL (DS's storage proxy: 401).
fn expired_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::GONE | StatusCode::NOT_FOUND
    )
}

/// The published file: `matches` when the bytes are what DS announced, else flagged.
fn fetched(record: FileRecord, size: u64, digests: Digests, matches: bool) -> Fetched {
    let (status, detail) = if matches {
        (good_status(&record), None)
    } else {
        let detail = mismatch(&record, size, &digests);
        (
            FileStatus::ChecksumMismatch,
            Some(detail + "; identical bytes on two downloads"),
        )
    };
    Fetched {
        record,
        sha256: digests.sha256_hex,
        md5_base64: digests.md5_base64,
        size,
        status,
        detail,
    }
}

fn mismatch(record: &FileRecord, size: u64, digests: &Digests) -> String {
    format!(
        "DS announced {} bytes with MD5 `{}`, got {size} bytes with MD5 `{}`",
        record.byte_size, record.checksum, digests.md5_base64
    )
}

/// Where one attempt's download stands: the URL it reads from, the bytes received so far and
/// the resumes made.
struct Position {
    signed_url: String,
    /// `signed_url` without its query: what messages show.
    url: String,
    received: u64,
    resumes: u32,
}

impl Position {
    /// Nothing received yet from `signed_url`.
    fn start(signed_url: &str) -> Position {
        Position {
            signed_url: signed_url.to_owned(),
            url: strip_query(signed_url).to_owned(),
            received: 0,
            resumes: 0,
        }
    }

    /// Reads from `signed_url` from now on.
    fn switch(&mut self, signed_url: String) {
        self.url = strip_query(&signed_url).to_owned();
        self.signed_url = signed_url;
    }
}

/// How many bytes a body may have ([`policy::body_limit`]), and the size DS announced.
struct Limits {
    announced: Option<u64>,
    /// The first byte count that is too long.
    limit: u64,
}

impl Limits {
    fn new(announced: Option<u64>, opts: &FetchOptions) -> Limits {
        Limits {
            announced,
            limit: policy::body_limit(announced, opts),
        }
    }

    /// The error of a body that reached [`Limits::limit`].
    fn too_long(&self) -> AttemptError {
        AttemptError::TooLong {
            limit: self.limit.saturating_sub(1),
            announced: self.announced.is_some(),
        }
    }
}

/// How reading a body ended, when the attempt goes on.
enum Body {
    /// Every expected byte arrived.
    Complete,
    /// The body broke off: resumable, maybe.
    Interrupted(AttemptError),
}

/// Whether the response is what was asked for: the requested part after an interruption, else
/// a success (an expired URL or another status ends the attempt).
fn check_status(response: &reqwest::Response, at: &Position) -> Result<(), AttemptError> {
    let status = response.status();
    if at.received > 0 {
        let start = response
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(content_range_start);
        if status != StatusCode::PARTIAL_CONTENT || start != Some(at.received) {
            return Err(AttemptError::RangeIgnored { status });
        }
    } else if expired_status(status) {
        return Err(AttemptError::Expired {
            status,
            url: at.url.clone(),
        });
    } else if !status.is_success() {
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Err(AttemptError::Status {
            status,
            url: at.url.clone(),
            retry_after,
        });
    }
    Ok(())
}

/// The size the whole body should have (DS's, else the server's `Content-Length`) and whether
/// the server can resume it; `Err` when the server announces a body past the limit.
fn expectations(
    response: &reqwest::Response,
    at: &Position,
    limits: &Limits,
) -> Result<(Option<u64>, bool), AttemptError> {
    let resumable = at.received > 0
        || response
            .headers()
            .get(ACCEPT_RANGES)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("bytes"));
    let length = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|n| n.saturating_add(at.received));
    if length.is_some_and(|n| n >= limits.limit) {
        return Err(limits.too_long());
    }
    Ok((limits.announced.or(length), resumable))
}

/// Feeds the body's chunks to the hasher and the upload, never past the limit, until it ends:
/// complete, interrupted (a transport error, or fewer bytes than `expected`), or `Err` when
/// the attempt must end.
async fn read_body(
    response: reqwest::Response,
    at: &mut Position,
    expected: Option<u64>,
    limits: &Limits,
    hasher: &mut Hasher,
    upload: &mut dyn Upload,
    job: &Job<'_>,
) -> Result<Body, AttemptError> {
    let mut body = response.bytes_stream();
    loop {
        let next = tokio::select! {
            () = job.cancel.cancelled() => return Err(AttemptError::Cancelled),
            next = body.next() => next,
        };
        match next {
            Some(Ok(chunk)) => {
                let n = chunk.len() as u64;
                // Never past the limit: the rest of the body is not read.
                if at.received.saturating_add(n) >= limits.limit {
                    return Err(limits.too_long());
                }
                hasher.update(chunk.clone()).await;
                upload.write(chunk).await.map_err(AttemptError::Sink)?;
                at.received += n;
                job.progress.event(&Event::BytesWritten { n });
            }
            Some(Err(error)) => {
                return Ok(Body::Interrupted(AttemptError::from_request(
                    &at.url, error,
                )));
            }
            None => {
                return Ok(match expected {
                    Some(expected) if at.received < expected => {
                        Body::Interrupted(AttemptError::Truncated {
                            got: at.received,
                            expected,
                        })
                    }
                    _ => Body::Complete,
                });
            }
        }
    }
}

/// After an interruption: resume (with a retry event) when the server allows it and resumes
/// are left, else the attempt ends with the interruption.
fn resume(
    interruption: AttemptError,
    resumable: bool,
    at: &mut Position,
    job: &Job<'_>,
) -> Result<(), AttemptError> {
    if !resumable || at.received == 0 || at.resumes >= MAX_RESUMES {
        return Err(interruption);
    }
    at.resumes += 1;
    let (key, received) = (job.dest.key, at.received);
    tracing::debug!(
        key,
        received,
        "resuming an interrupted download: {interruption}"
    );
    job.progress.event(&Event::Retry {
        what: key.to_owned(),
        attempt: at.resumes,
        reason: format!("{interruption}; resuming at byte {received}"),
    });
    Ok(())
}

/// Whether downloaded bytes may be published: `Some(true)` when they are what DS announced,
/// `Some(false)` (flagged) when an earlier download had the same bytes at DS's size, else
/// `None`.
fn publishable(
    record: &FileRecord,
    size: u64,
    digests: &Digests,
    seen: &[Digests],
) -> Option<bool> {
    let matches =
        !verifiable(record) || (size == record.byte_size && digests.md5_base64 == record.checksum);
    // Identical bytes twice outweigh DS's checksum only at DS's size. (They come from an
    // allowed host: the policy refuses the others before any connection.)
    let stable =
        size == record.byte_size && seen.iter().any(|d| d.sha256_hex == digests.sha256_hex);
    (matches || stable).then_some(matches)
}

/// Discards an upload; a failure to clean up is logged (the sink removes leftovers later).
pub(crate) async fn abort(upload: Box<dyn Upload>, key: &str) {
    if let Err(e) = upload.abort().await {
        tracing::warn!(
            key,
            "cannot discard an unfinished upload: {}",
            error_chain(&e)
        );
    }
}

#[cfg(test)]
mod tests;
