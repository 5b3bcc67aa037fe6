//! Rendering the core's progress [`Event`]s: indicatif bars on a terminal, a plain line every
//! few seconds otherwise, nothing with `--quiet`.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use dsfiles_core::{Event, ProgressSink};

use crate::logging;

/// `n` bytes in binary units, one decimal: `512 B`, `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Throughput in MB/s (10^6 bytes per second, as network tools report it).
pub fn mb_per_sec(bytes: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    bytes as f64 / 1e6 / secs
}

/// Aborts the wrapped task when dropped: background tasks are owned, never detached.
#[derive(Debug)]
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Running totals, updated from events.
#[derive(Debug, Default)]
struct Counters {
    pages: AtomicU64,
    dossiers: AtomicU64,
    files_planned: AtomicU64,
    files_done: AtomicU64,
    files_failed: AtomicU64,
    bytes_planned: AtomicU64,
    bytes_done: AtomicU64,
    retries: AtomicU64,
    /// `seda`: the dossiers that got a package, were up to date, or were skipped.
    packaged: AtomicU64,
    unchanged: AtomicU64,
    skipped: AtomicU64,
}

#[derive(Debug)]
enum Display {
    Bars {
        multi: MultiProgress,
        pages: ProgressBar,
        files: ProgressBar,
        bytes: ProgressBar,
    },
    Plain,
    Hidden,
}

/// The CLI's [`ProgressSink`]. Never blocks: bars are updated in memory and drawn by
/// indicatif at its own rate; plain lines are written by a separate ticker task.
#[derive(Debug)]
pub struct Reporter {
    display: Display,
    counters: Counters,
    started: Instant,
    /// What the run is called in plain lines (`sync`, `verify`).
    what: &'static str,
}

/// Keeps the reporter's ticker alive; [`Progress::finish`] clears the bars.
#[derive(Debug)]
pub struct Progress {
    reporter: Arc<Reporter>,
    _ticker: Option<AbortOnDrop>,
}

impl Progress {
    /// Bars when stderr is a terminal, a plain line every `interval` otherwise, nothing when
    /// `quiet`.
    pub fn start(what: &'static str, quiet: bool, interval: Duration) -> Progress {
        let display = if quiet {
            Display::Hidden
        } else if std::io::stderr().is_terminal() {
            bars(what)
        } else {
            Display::Plain
        };
        if let Display::Bars { multi, .. } = &display {
            logging::set_bars(Some(multi.clone()));
        }
        let reporter = Arc::new(Reporter {
            display,
            counters: Counters::default(),
            started: Instant::now(),
            what,
        });
        let ticker = matches!(reporter.display, Display::Plain).then(|| {
            let reporter = Arc::clone(&reporter);
            AbortOnDrop(tokio::spawn(async move {
                let mut interval =
                    tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    interval.tick().await;
                    let line = format!("{}\n", reporter.plain_line());
                    logging::write_stderr(line.as_bytes()).ok();
                }
            }))
        });
        Progress {
            reporter,
            _ticker: ticker,
        }
    }

    /// The sink to hand to the core.
    pub fn sink(&self) -> dsfiles_core::Progress {
        Arc::clone(&self.reporter) as dsfiles_core::Progress
    }

    /// Removes the bars (the summary follows) and stops the ticker.
    pub fn finish(self) {
        if let Display::Bars {
            multi,
            pages,
            files,
            bytes,
        } = &self.reporter.display
        {
            pages.finish_and_clear();
            files.finish_and_clear();
            bytes.finish_and_clear();
            multi.clear().ok();
            logging::set_bars(None);
        }
    }
}

/// The templates of the three bars: `seda` counts dossiers and the bytes read into packages
/// (no total: a package's size is known once written); the others files and planned bytes.
fn templates(what: &str) -> [&'static str; 3] {
    match what {
        "seda" => [
            "{spinner} {msg}",
            "  dossiers [{bar:30}] {pos}/{len} {msg}",
            "  read {bytes} {binary_bytes_per_sec}",
        ],
        _ => [
            "{spinner} {msg}",
            "  files [{bar:30}] {pos}/{len} {msg}",
            "  bytes [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        ],
    }
}

fn bars(what: &str) -> Display {
    let [spinner, items, read] = templates(what);
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    let pages = multi.add(ProgressBar::new_spinner());
    pages.set_style(
        ProgressStyle::with_template(spinner).unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pages.enable_steady_tick(Duration::from_millis(120));
    pages.set_message(match what {
        "seda" => "reading the manifest shards",
        _ => "fetching the first page of dossiers",
    });
    let files = multi.add(ProgressBar::new(0));
    files.set_style(
        ProgressStyle::with_template(items)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let bytes = multi.add(ProgressBar::new(0));
    bytes.set_style(
        ProgressStyle::with_template(read)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    Display::Bars {
        multi,
        pages,
        files,
        bytes,
    }
}

impl Reporter {
    fn plain_line(&self) -> String {
        let c = &self.counters;
        let elapsed = self.started.elapsed().as_secs_f64();
        let done = c.bytes_done.load(Relaxed);
        if self.what == "seda" {
            return format!(
                "seda [{:.0}s]: dossiers {}/{} ({}); {} read ({:.1} MB/s)",
                elapsed,
                c.files_done.load(Relaxed),
                c.files_planned.load(Relaxed),
                self.seda_outcomes(),
                human_bytes(done),
                mb_per_sec(done, elapsed),
            );
        }
        format!(
            "{} [{:.0}s]: {} pages, {} dossiers; files {}/{} ({} failed); {} / {} ({:.1} MB/s); {} retries",
            self.what,
            elapsed,
            c.pages.load(Relaxed),
            c.dossiers.load(Relaxed),
            c.files_done.load(Relaxed),
            c.files_planned.load(Relaxed),
            c.files_failed.load(Relaxed),
            human_bytes(done),
            human_bytes(c.bytes_planned.load(Relaxed)),
            mb_per_sec(done, elapsed),
            c.retries.load(Relaxed),
        )
    }

    /// `seda`'s dossiers so far by outcome.
    fn seda_outcomes(&self) -> String {
        let c = &self.counters;
        format!(
            "{} packaged, {} unchanged, {} skipped, {} failed",
            c.packaged.load(Relaxed),
            c.unchanged.load(Relaxed),
            c.skipped.load(Relaxed),
            c.files_failed.load(Relaxed),
        )
    }

    fn update_bars(&self) {
        let Display::Bars {
            pages,
            files,
            bytes,
            ..
        } = &self.display
        else {
            return;
        };
        let c = &self.counters;
        if self.what == "seda" {
            pages.set_message(self.seda_outcomes());
            files.set_length(c.files_planned.load(Relaxed));
            files.set_position(c.files_done.load(Relaxed));
            bytes.set_position(c.bytes_done.load(Relaxed));
            return;
        }
        pages.set_message(format!(
            "{} pages, {} dossiers fetched{}",
            c.pages.load(Relaxed),
            c.dossiers.load(Relaxed),
            match c.retries.load(Relaxed) {
                0 => String::new(),
                n => format!(", {n} retries"),
            }
        ));
        files.set_length(c.files_planned.load(Relaxed));
        files.set_position(c.files_done.load(Relaxed));
        match c.files_failed.load(Relaxed) {
            0 => {}
            n => files.set_message(format!("({n} failed)")),
        }
        bytes.set_length(c.bytes_planned.load(Relaxed));
        bytes.set_position(c.bytes_done.load(Relaxed));
    }
}

impl ProgressSink for Reporter {
    fn event(&self, event: &Event) {
        let c = &self.counters;
        match event {
            Event::PageFetched { dossiers, .. } => {
                c.pages.fetch_add(1, Relaxed);
                c.dossiers.fetch_add(*dossiers as u64, Relaxed);
            }
            Event::FilePlanned { bytes } => {
                c.files_planned.fetch_add(1, Relaxed);
                add_saturating(&c.bytes_planned, *bytes);
            }
            // Skipped files count as planned and done at once, so the bar's total is every
            // file of the listed dossiers.
            Event::FileSkipped { .. } => {
                c.files_planned.fetch_add(1, Relaxed);
                c.files_done.fetch_add(1, Relaxed);
            }
            Event::BytesWritten { n } => {
                add_saturating(&c.bytes_done, *n);
            }
            Event::FileStored { .. } => {
                c.files_done.fetch_add(1, Relaxed);
            }
            // `verify` plans nothing: each checked file is one more and one done.
            Event::FileVerified { ok, .. } => {
                c.files_planned.fetch_add(1, Relaxed);
                c.files_done.fetch_add(1, Relaxed);
                if !ok {
                    c.files_failed.fetch_add(1, Relaxed);
                }
            }
            Event::FileFailed { key, reason } => {
                c.files_done.fetch_add(1, Relaxed);
                c.files_failed.fetch_add(1, Relaxed);
                tracing::warn!("`{key}` failed: {reason}");
            }
            // The core logs each warning where it records it; logging the event too printed
            // every warning twice.
            Event::Warning { .. } => {}
            Event::Retry {
                what,
                attempt,
                reason,
            } => {
                c.retries.fetch_add(1, Relaxed);
                tracing::info!("retrying {what} (attempt {attempt}): {reason}");
            }
            Event::FileStarted { .. } | Event::DossierDeleted { .. } | Event::Finished => {}
            seda => self.seda_event(seda),
        }
        self.update_bars();
    }
}

impl Reporter {
    /// `seda`'s events: each listed dossier is one item, done once its outcome is known.
    fn seda_event(&self, event: &Event) {
        let c = &self.counters;
        let outcome = match event {
            Event::DossiersListed { dossiers } => {
                add_saturating(&c.files_planned, *dossiers);
                return;
            }
            Event::PackageWritten { .. } => &c.packaged,
            Event::PackageUnchanged { .. } => &c.unchanged,
            Event::PackageSkipped { .. } => &c.skipped,
            // Named once, in the summary.
            Event::PackageFailed { .. } => &c.files_failed,
            _ => return,
        };
        outcome.fetch_add(1, Relaxed);
        c.files_done.fetch_add(1, Relaxed);
    }
}

/// Adds a size announced by DS without wrapping: a hostile `byteSizeBigInt` near `u64::MAX`
/// pins the bar's total instead of turning it into a small number.
fn add_saturating(counter: &AtomicU64, n: u64) {
    let _ = counter.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_add(n)));
}
