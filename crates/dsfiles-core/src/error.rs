use chrono::{DateTime, SecondsFormat, Utc};

use crate::wire::Holder;
use crate::{ds, extract, sink};

/// A run-level failure: the run could not start or could not go on (token, endpoint,
/// destination). Per-file failures are data in the [`crate::SyncReport`], never an `Err`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The DS API refused or failed (after the client's own retries).
    #[error(transparent)]
    Api(Box<ds::Error>),

    /// The destination cannot be read or written.
    #[error(transparent)]
    Sink(Box<sink::Error>),

    /// A state file in the destination exists but cannot be understood.
    #[error("state file `{key}` in the destination is unreadable: {reason}")]
    Manifest { key: String, reason: String },

    /// The options make no sense (e.g. `jobs` = 0).
    #[error("invalid option `{name}`: {reason}")]
    InvalidOption { name: &'static str, reason: String },

    /// The path template cannot be used.
    #[error(transparent)]
    Layout(#[from] extract::Error),

    /// Another live writer holds the lease on the destination ([`crate::lease`]): a sync of the
    /// same démarche, or another `dsfiles seda` writing into the same OUT.
    #[error("{0}")]
    DestinationBusy(Box<Busy>),

    /// The run was cancelled before it could produce a report.
    #[error("cancelled")]
    Cancelled,

    /// A task of the pipeline panicked (a bug).
    #[error("internal error in {what}: {reason}")]
    Internal { what: &'static str, reason: String },
}

/// Who holds the lease that refused a run ([`Error::DestinationBusy`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Busy {
    /// [`crate::sink::Sink::describe`] of the destination.
    pub dest: String,
    /// What the lease guards: a démarche's sync, or `dsfiles seda`'s writing into an OUT.
    pub scope: crate::lease::LeaseScope,
    /// The lease's key in the destination.
    pub key: String,
    pub holder: Holder,
    pub since: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "destination `{}` is busy: {} has been {} since {} \
             (lease `{}`, valid until {}). Wait until then, or, if that writer is gone, take \
             the lease over with `--break-lease` (`break_lease` in the HTTP API)",
            self.dest,
            self.holder,
            self.scope,
            rfc3339(&self.since),
            self.key,
            rfc3339(&self.expires_at)
        )
    }
}

fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl From<ds::Error> for Error {
    fn from(e: ds::Error) -> Error {
        Error::Api(Box::new(e))
    }
}

impl From<sink::Error> for Error {
    fn from(e: sink::Error) -> Error {
        Error::Sink(Box::new(e))
    }
}

/// What kind of failure an [`Error`] is, for exit codes (auth/access 3, api/network 4,
/// config 2, busy 5; destination failures are reported as 1 by the CLI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Auth,
    Access,
    NotFound,
    Api,
    Network,
    Config,
    Destination,
    /// Another writer holds the destination's lease ([`Error::DestinationBusy`]).
    Busy,
    Cancelled,
    Internal,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Api(e) => match e.kind() {
                ds::ErrorKind::Auth => ErrorKind::Auth,
                ds::ErrorKind::Access => ErrorKind::Access,
                ds::ErrorKind::NotFound => ErrorKind::NotFound,
                ds::ErrorKind::Api => ErrorKind::Api,
                ds::ErrorKind::Network => ErrorKind::Network,
                ds::ErrorKind::Config => ErrorKind::Config,
            },
            Error::Sink(e) => match e.as_ref() {
                sink::Error::InvalidDestination { .. }
                | sink::Error::UnsupportedScheme { .. }
                | sink::Error::MissingBucket { .. }
                | sink::Error::MissingCredentials { .. }
                | sink::Error::InvalidOption { .. } => ErrorKind::Config,
                sink::Error::Fenced { .. } => ErrorKind::Busy,
                _ => ErrorKind::Destination,
            },
            Error::Manifest { .. } => ErrorKind::Destination,
            Error::DestinationBusy(_) => ErrorKind::Busy,
            Error::InvalidOption { .. } | Error::Layout(_) => ErrorKind::Config,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Internal { .. } => ErrorKind::Internal,
        }
    }
}
