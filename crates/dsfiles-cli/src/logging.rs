//! Tracing setup: logs go to stderr (data goes to stdout), `-v`/`-q` pick the level and
//! `RUST_LOG` overrides both. While progress bars are drawn, each log line is written with
//! the bars suspended so the two never garble each other.

use std::io::{IsTerminal as _, Write as _};
use std::sync::{Mutex, PoisonError};

use indicatif::MultiProgress;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::env_vars;
use crate::exit::UsageError;

/// The bars currently on screen, if any (set by `progress`, cleared when they finish).
static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Routes log lines around the progress bars from now on.
pub fn set_bars(bars: Option<MultiProgress>) {
    *BARS.lock().unwrap_or_else(PoisonError::into_inner) = bars;
}

/// Writes `text` to stderr, above the progress bars when they are drawn.
pub fn write_stderr(text: &[u8]) -> std::io::Result<()> {
    let bars = BARS.lock().unwrap_or_else(PoisonError::into_inner).clone();
    match bars {
        Some(bars) => bars.suspend(|| std::io::stderr().lock().write_all(text)),
        None => std::io::stderr().lock().write_all(text),
    }
}

/// The filter for `-v` (count) and `-q`, unless `RUST_LOG` is set. Our crates (`dsfiles*`)
/// get the chosen level; dependencies stay at `warn` until `-vv`.
pub fn filter(verbose: u8, quiet: bool) -> Result<EnvFilter, UsageError> {
    if let Ok(directives) = std::env::var(env_vars::RUST_LOG)
        && !directives.trim().is_empty()
    {
        return EnvFilter::builder()
            .parse(&directives)
            .map_err(|e| UsageError::new(format!("invalid `{}`: {e}", env_vars::RUST_LOG)));
    }
    let directives = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,dsfiles=info",
        (false, 2) => "info,dsfiles=debug",
        (false, _) => "trace",
    };
    Ok(EnvFilter::new(directives))
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(verbose: u8, quiet: bool) -> Result<(), UsageError> {
    let filter = filter(verbose, quiet)?;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os(env_vars::NO_COLOR).is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(StderrAroundBars)
        .with_ansi(ansi)
        .with_target(verbose >= 2)
        .init();
    Ok(())
}

/// A `MakeWriter` for [`write_stderr`]. The fmt layer formats each event into one buffer and
/// writes it with a single `write_all`, so one event is one suspended write.
#[derive(Debug, Clone, Copy)]
struct StderrAroundBars;

impl<'a> MakeWriter<'a> for StderrAroundBars {
    type Writer = StderrAroundBars;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

impl std::io::Write for StderrAroundBars {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_stderr(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
