//! Prometheus metrics, written in the text exposition format (version 0.0.4) by hand: a few
//! counters, gauges computed at scrape time, and one latency histogram per route.
//!
//! **Rule:** every label value comes from a fixed set, never from what a client sent, so no
//! request (`curl -X M1 /healthz`, `-X M2` …) can add a series: the method is one of
//! [`METHODS`] or `other`, the route a route template or `unmatched`, the status one the
//! service itself answers. The one exception, `schedule`, is a schedule's name: its charset
//! is checked (`api::SCHEDULE_NAME_PATTERN`) and the service keeps at most
//! `api::MAX_SCHEDULES` of them, so those series are bounded too.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::api::{JobState, Schedule};
use crate::jobs::lock;
use crate::pipeline::{DsStats, ProgressUpdate};

/// Upper bounds (seconds) of the HTTP latency buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Method labels kept as they are; any other method is `other`.
pub(crate) const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// The label of `method`: itself when it is one of [`METHODS`], else `other`.
pub(crate) fn method_label(method: &axum::http::Method) -> &'static str {
    METHODS
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("other")
}

/// A limit of the service that refused something (`dsfiles_limit_refusals_total{limit}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Limit {
    /// A connection beyond `max_connections`, closed at once.
    Connections,
    /// An SSE stream beyond `max_sse_streams` or `max_sse_streams_per_token`.
    SseStreams,
    /// A sync beyond `max_queued_syncs`.
    QueuedSyncs,
}

impl Limit {
    const ALL: [Limit; 3] = [Limit::Connections, Limit::SseStreams, Limit::QueuedSyncs];

    fn as_str(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::SseStreams => "sse_streams",
            Limit::QueuedSyncs => "queued_syncs",
        }
    }
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Webhook delivery outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum WebhookOutcome {
    Accepted,
    Duplicate,
    Rejected,
}

impl WebhookOutcome {
    fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Accepted => "accepted",
            WebhookOutcome::Duplicate => "duplicate",
            WebhookOutcome::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    files_stored: AtomicU64,
    files_skipped: AtomicU64,
    files_failed: AtomicU64,
    bytes_stored: AtomicU64,
    bytes_downloaded: AtomicU64,
    download_retries: AtomicU64,
    syncs_finished: [AtomicU64; 5],
    webhooks: Mutex<BTreeMap<(&'static str, WebhookOutcome), u64>>,
    /// (route, method) → latency histogram.
    latency: Mutex<BTreeMap<(String, &'static str), Histogram>>,
    /// (route, method, status) → count.
    requests: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
    /// In [`Limit::ALL`] order.
    refusals: [AtomicU64; 3],
    connections_open: AtomicU64,
    connections_timed_out: AtomicU64,
}

impl Metrics {
    pub(crate) fn progress(&self, update: &ProgressUpdate) {
        match update {
            ProgressUpdate::FileStored { bytes } => {
                self.files_stored.fetch_add(1, Ordering::Relaxed);
                self.bytes_stored.fetch_add(*bytes, Ordering::Relaxed);
            }
            ProgressUpdate::FileSkipped => {
                self.files_skipped.fetch_add(1, Ordering::Relaxed);
            }
            ProgressUpdate::FileFailed { .. } => {
                self.files_failed.fetch_add(1, Ordering::Relaxed);
            }
            ProgressUpdate::BytesWritten { n } => {
                self.bytes_downloaded.fetch_add(*n, Ordering::Relaxed);
            }
            ProgressUpdate::Retry => {
                self.download_retries.fetch_add(1, Ordering::Relaxed);
            }
            ProgressUpdate::None
            | ProgressUpdate::PageFetched { .. }
            | ProgressUpdate::FilePlanned { .. } => {}
        }
    }

    pub(crate) fn sync_finished(&self, state: JobState) {
        if let Some(i) = JobState::ALL.iter().position(|s| *s == state) {
            self.syncs_finished[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn webhook(&self, kind: &'static str, outcome: WebhookOutcome) {
        *lock(&self.webhooks).entry((kind, outcome)).or_default() += 1;
    }

    pub(crate) fn refused(&self, limit: Limit) {
        if let Some(i) = Limit::ALL.iter().position(|l| *l == limit) {
            self.refusals[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection was accepted; the gauge goes down when the returned guard is dropped.
    pub(crate) fn connection_opened(self: &std::sync::Arc<Self>) -> OpenConnection {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// A connection was closed for sending no request head, or moving no byte, in time.
    pub(crate) fn connection_timed_out(&self) {
        self.connections_timed_out.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one HTTP request; `route` is the matched route template or `unmatched` (never
    /// the raw path, which may hold a webhook secret), `method` a [`method_label`].
    pub(crate) fn request(
        &self,
        route: &str,
        method: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        let secs = elapsed.as_secs_f64();
        {
            let mut latency = lock(&self.latency);
            let hist = latency.entry((route.to_owned(), method)).or_default();
            for (bucket, bound) in hist.buckets.iter_mut().zip(BUCKETS) {
                if secs <= bound {
                    *bucket += 1;
                }
            }
            hist.count += 1;
            hist.sum += secs;
        }
        *lock(&self.requests)
            .entry((route.to_owned(), method, status))
            .or_default() += 1;
    }

    /// The exposition text. `jobs_by_state` is in [`JobState::ALL`] order.
    pub(crate) fn render(&self, jobs_by_state: [u64; 5], ds: DsStats) -> String {
        let mut out = String::with_capacity(4096);
        self.render_syncs(&mut out, jobs_by_state);
        self.render_file_counters(&mut out);
        render_ds(&mut out, ds);
        self.render_webhooks(&mut out);
        self.render_limits(&mut out);
        self.render_requests(&mut out);
        self.render_latency(&mut out);
        out
    }

    /// Appends the sync jobs: in the history by state, and finished since start by final state.
    fn render_syncs(&self, out: &mut String, jobs_by_state: [u64; 5]) {
        family(
            out,
            "dsfiles_syncs",
            "gauge",
            "Sync jobs in the history by state.",
        );
        for (state, n) in JobState::ALL.iter().zip(jobs_by_state) {
            let _ = writeln!(out, "dsfiles_syncs{{state=\"{}\"}} {n}", state.as_str());
        }
        family(
            out,
            "dsfiles_syncs_finished_total",
            "counter",
            "Sync jobs finished since start, by final state.",
        );
        for (state, n) in JobState::ALL.iter().zip(&self.syncs_finished) {
            if state.is_terminal() {
                let _ = writeln!(
                    out,
                    "dsfiles_syncs_finished_total{{state=\"{}\"}} {}",
                    state.as_str(),
                    n.load(Ordering::Relaxed)
                );
            }
        }
    }

    /// Appends the file and byte counters fed by the pipeline's progress.
    fn render_file_counters(&self, out: &mut String) {
        let counters = [
            (
                "dsfiles_files_stored_total",
                "Files stored and verified.",
                &self.files_stored,
            ),
            (
                "dsfiles_files_skipped_total",
                "Files skipped as unchanged.",
                &self.files_skipped,
            ),
            (
                "dsfiles_files_failed_total",
                "Files that failed after retries.",
                &self.files_failed,
            ),
            (
                "dsfiles_bytes_stored_total",
                "Bytes of the files stored.",
                &self.bytes_stored,
            ),
            (
                "dsfiles_bytes_downloaded_total",
                "Bytes downloaded from DS (including retries).",
                &self.bytes_downloaded,
            ),
            (
                "dsfiles_download_retries_total",
                "File downloads tried again or resumed after a failed attempt.",
                &self.download_retries,
            ),
        ];
        for (name, help, value) in counters {
            family(out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
    }

    /// Appends the webhook deliveries by kind and outcome.
    fn render_webhooks(&self, out: &mut String) {
        family(
            out,
            "dsfiles_webhooks_total",
            "counter",
            "DS webhook deliveries by kind and outcome.",
        );
        for ((kind, outcome), n) in lock(&self.webhooks).iter() {
            let _ = writeln!(
                out,
                "dsfiles_webhooks_total{{kind=\"{kind}\",outcome=\"{}\"}} {n}",
                outcome.as_str()
            );
        }
    }

    /// Appends the HTTP request counts by route, method and status.
    fn render_requests(&self, out: &mut String) {
        family(
            out,
            "dsfiles_http_requests_total",
            "counter",
            "HTTP requests by route, method and status.",
        );
        for ((route, method, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "dsfiles_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
    }

    /// Appends the HTTP latency histograms, one per route and method.
    fn render_latency(&self, out: &mut String) {
        family(
            out,
            "dsfiles_http_request_duration_seconds",
            "histogram",
            "HTTP request latency by route.",
        );
        for ((route, method), hist) in lock(&self.latency).iter() {
            let route = escape(route);
            for (bound, n) in BUCKETS.iter().zip(hist.buckets) {
                let _ = writeln!(
                    out,
                    "dsfiles_http_request_duration_seconds_bucket{{route=\"{route}\",method=\"{method}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "dsfiles_http_request_duration_seconds_bucket{{route=\"{route}\",method=\"{method}\",le=\"+Inf\"}} {}",
                hist.count
            );
            let _ = writeln!(
                out,
                "dsfiles_http_request_duration_seconds_sum{{route=\"{route}\",method=\"{method}\"}} {}",
                hist.sum
            );
            let _ = writeln!(
                out,
                "dsfiles_http_request_duration_seconds_count{{route=\"{route}\",method=\"{method}\"}} {}",
                hist.count
            );
        }
    }
}

/// Appends the `# HELP` and `# TYPE` lines of the family `name`.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Appends the counters of the requests sent to DS (`ds`, from the pipeline).
fn render_ds(out: &mut String, ds: DsStats) {
    let ds_counters = [
        (
            "dsfiles_ds_api_calls_total",
            "GraphQL requests sent to DS.",
            ds.api_calls,
        ),
        (
            "dsfiles_ds_rate_limited_total",
            "DS answers 429 Too Many Requests.",
            ds.rate_limited,
        ),
        (
            "dsfiles_ds_retries_total",
            "DS requests retried.",
            ds.retries,
        ),
    ];
    for (name, help, value) in ds_counters {
        family(out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
}

impl Metrics {
    fn render_limits(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP dsfiles_limit_refusals_total Requests and connections refused by a limit of the service.\n# TYPE dsfiles_limit_refusals_total counter"
        );
        for (limit, n) in Limit::ALL.iter().zip(&self.refusals) {
            let _ = writeln!(
                out,
                "dsfiles_limit_refusals_total{{limit=\"{}\"}} {}",
                limit.as_str(),
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP dsfiles_http_connections_open Open HTTP connections.\n# TYPE dsfiles_http_connections_open gauge\ndsfiles_http_connections_open {}",
            self.connections_open.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP dsfiles_http_connections_timed_out_total Connections closed for sending no request head, or moving no byte, in time.\n# TYPE dsfiles_http_connections_timed_out_total counter\ndsfiles_http_connections_timed_out_total {}",
            self.connections_timed_out.load(Ordering::Relaxed)
        );
    }
}

/// Counts one open connection in `dsfiles_http_connections_open` while it lives.
#[derive(Debug)]
pub(crate) struct OpenConnection(std::sync::Arc<Metrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Appends the per-schedule families to `out`, from the schedules as the store keeps them (so
/// every replica of a database shows the same values): the end of the last successful run
/// (Unix seconds; absent before the first), the last finished run's duration, failed runs and
/// skipped ticks since the schedule was created.
pub(crate) fn render_schedules(out: &mut String, schedules: &[Schedule]) {
    family(
        out,
        "dsfiles_schedule_last_success_timestamp_seconds",
        "gauge",
        "When the schedule's last successful run ended (Unix seconds).",
    );
    for s in schedules {
        if let Some(at) = s.last_success_at {
            let secs = at.timestamp_millis() as f64 / 1000.0;
            let _ = writeln!(
                out,
                "dsfiles_schedule_last_success_timestamp_seconds{{schedule=\"{}\"}} {secs}",
                s.name
            );
        }
    }
    family(
        out,
        "dsfiles_schedule_last_duration_seconds",
        "gauge",
        "How long the schedule's last finished run took.",
    );
    for s in schedules {
        if let Some(secs) = s.last_duration_secs {
            let _ = writeln!(
                out,
                "dsfiles_schedule_last_duration_seconds{{schedule=\"{}\"}} {secs}",
                s.name
            );
        }
    }
    type Count = fn(&Schedule) -> u64;
    let counters: [(&str, &str, Count); 2] = [
        (
            "dsfiles_schedule_failures_total",
            "Runs of the schedule that ended failed.",
            |s| s.failures,
        ),
        (
            "dsfiles_schedule_skipped_ticks_total",
            "Ticks of the schedule that started no run (the previous one still active, the destination busy, the queue full).",
            |s| s.skipped_ticks,
        ),
    ];
    for (name, help, value) in counters {
        family(out, name, "counter", help);
        for s in schedules {
            let _ = writeln!(out, "{name}{{schedule=\"{}\"}} {}", s.name, value(s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_counts_add_up() {
        let metrics = Metrics::default();
        metrics.request("/v1/syncs/{id}", "GET", 200, Duration::from_micros(300));
        metrics.request("/v1/syncs/{id}", "GET", 200, Duration::from_millis(3));
        metrics.request("/v1/syncs/{id}", "GET", 404, Duration::from_secs(9));
        metrics.progress(&ProgressUpdate::FileStored { bytes: 10 });
        metrics.progress(&ProgressUpdate::Retry);
        metrics.sync_finished(JobState::Succeeded);
        let text = metrics.render(
            [1, 2, 3, 0, 0],
            DsStats {
                api_calls: 7,
                retries: 2,
                rate_limited: 1,
            },
        );
        let has = |line: &str| {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            )
        };
        has(
            "dsfiles_http_request_duration_seconds_bucket{route=\"/v1/syncs/{id}\",method=\"GET\",le=\"0.0005\"} 1",
        );
        has(
            "dsfiles_http_request_duration_seconds_bucket{route=\"/v1/syncs/{id}\",method=\"GET\",le=\"0.005\"} 2",
        );
        has(
            "dsfiles_http_request_duration_seconds_bucket{route=\"/v1/syncs/{id}\",method=\"GET\",le=\"5\"} 2",
        );
        has(
            "dsfiles_http_request_duration_seconds_bucket{route=\"/v1/syncs/{id}\",method=\"GET\",le=\"+Inf\"} 3",
        );
        has(
            "dsfiles_http_request_duration_seconds_count{route=\"/v1/syncs/{id}\",method=\"GET\"} 3",
        );
        has(
            "dsfiles_http_requests_total{route=\"/v1/syncs/{id}\",method=\"GET\",status=\"404\"} 1",
        );
        has("dsfiles_syncs{state=\"running\"} 2");
        has("dsfiles_syncs_finished_total{state=\"succeeded\"} 1");
        has("dsfiles_files_stored_total 1");
        has("dsfiles_bytes_stored_total 10");
        has("dsfiles_download_retries_total 1");
        has("dsfiles_ds_api_calls_total 7");
        has("dsfiles_ds_rate_limited_total 1");
        has("dsfiles_ds_retries_total 2");
        // Every sample line belongs to a family declared with # TYPE before it.
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap_or_default().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                assert!(
                    declared.iter().any(|d| name == d
                        || name
                            .strip_prefix(d.as_str())
                            .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))),
                    "undeclared sample `{line}`"
                );
            }
        }
    }
}
