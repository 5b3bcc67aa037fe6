//! Exit codes, in one place (ripgrep's `messages.rs`): every way `dsfiles` ends maps to one
//! [`Exit`], from a run's report or from the run-level error that stopped it.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | everything listed / stored and verified |
//! | 1 | some files failed after retries (or were flagged, with `--strict`), `verify` found missing or corrupt files, `index` could not read some manifest shards, `seda` could not package a dossier, or the destination failed mid-run |
//! | 2 | usage or configuration error (flags, token, endpoint, destination, layout) |
//! | 3 | authentication or access refused (bad, expired or restricted token; démarche not found or not accessible) |
//! | 4 | API or network failure after retries, or dossiers DS could not return |
//! | 5 | destination busy: another live writer holds the démarche's lease on the destination, or took it over during the run |
//! | 130 | cancelled with Ctrl-C |

use std::fmt;
use std::process::ExitCode;

use dsfiles_core::{ds, extract, sink};

/// How a `dsfiles` run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Success,
    Failed,
    Usage,
    Access,
    Api,
    Busy,
    Cancelled,
}

impl Exit {
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Access => 3,
            Exit::Api => 4,
            Exit::Busy => 5,
            Exit::Cancelled => 130,
        }
    }

    /// The exit for a run-level error: the first error in the chain that says what it is.
    pub fn from_error(err: &anyhow::Error) -> Exit {
        for cause in err.chain() {
            if cause.is::<UsageError>() {
                return Exit::Usage;
            }
            if let Some(err) = cause.downcast_ref::<dsfiles_core::Error>() {
                return Exit::from_core(err);
            }
            if let Some(err) = cause.downcast_ref::<ds::Error>() {
                return Exit::from_ds_kind(err.kind());
            }
            if let Some(err) = cause.downcast_ref::<sink::Error>() {
                return Exit::from_sink(err);
            }
            if cause.is::<extract::Error>() {
                return Exit::Usage;
            }
        }
        Exit::Failed
    }

    fn from_core(err: &dsfiles_core::Error) -> Exit {
        use dsfiles_core::ErrorKind as K;
        match err.kind() {
            K::Auth | K::Access | K::NotFound => Exit::Access,
            K::Api | K::Network => Exit::Api,
            K::Config => Exit::Usage,
            K::Busy => Exit::Busy,
            K::Cancelled => Exit::Cancelled,
            K::Destination | K::Internal => Exit::Failed,
        }
    }

    fn from_ds_kind(kind: ds::ErrorKind) -> Exit {
        match kind {
            ds::ErrorKind::Auth | ds::ErrorKind::Access | ds::ErrorKind::NotFound => Exit::Access,
            ds::ErrorKind::Api | ds::ErrorKind::Network => Exit::Api,
            ds::ErrorKind::Config => Exit::Usage,
        }
    }

    /// A destination that cannot be opened is configuration; one that fails mid-run is a
    /// failed run.
    fn from_sink(err: &sink::Error) -> Exit {
        use sink::Error as E;
        match err {
            E::InvalidDestination { .. }
            | E::UnsupportedScheme { .. }
            | E::MissingBucket { .. }
            | E::MissingCredentials { .. }
            | E::InvalidOption { .. } => Exit::Usage,
            E::Fenced { .. } => Exit::Busy,
            _ => Exit::Failed,
        }
    }

    /// The exit for a finished sync. The core says whether the run is complete; a run whose
    /// only problem is that DS could not return some dossiers (warnings, no failed file) is an
    /// API failure (4) rather than failed files (1).
    pub fn from_sync_report(report: &dsfiles_core::SyncReport, strict: bool) -> Exit {
        match report.exit_status(strict) {
            dsfiles_core::RunStatus::Ok => Exit::Success,
            dsfiles_core::RunStatus::LeaseLost => Exit::Busy,
            dsfiles_core::RunStatus::Cancelled => Exit::Cancelled,
            dsfiles_core::RunStatus::FilesFailed
                if report.counts.failed == 0 && report.counts.warnings > 0 =>
            {
                Exit::Api
            }
            dsfiles_core::RunStatus::FilesFailed => Exit::Failed,
        }
    }

    /// The exit for a finished verification: 1 when anything recorded in the manifest is
    /// missing or differs from what was stored.
    pub fn from_verify_report(report: &dsfiles_core::VerifyReport) -> Exit {
        if report.cancelled {
            Exit::Cancelled
        } else if report.missing.is_empty() && report.corrupt.is_empty() {
            Exit::Success
        } else {
            Exit::Failed
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// A usage or configuration problem found by the front end itself (exit 2): a missing token,
/// an unreadable file named on the command line, an invalid setting.
#[derive(Debug)]
pub struct UsageError(String);

impl UsageError {
    pub fn new(message: impl Into<String>) -> UsageError {
        UsageError(message.into())
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `err` and its causes on one line, `outer: inner: root`, as `dsfiles` prints it once before
/// exiting. Line breaks inside messages (DS sometimes sends multi-line ones) become spaces.
pub fn one_line(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
