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

    /// The run was cancelled before it could produce a report.
    #[error("cancelled")]
    Cancelled,

    /// A task of the pipeline panicked (a bug).
    #[error("internal error in {what}: {reason}")]
    Internal { what: &'static str, reason: String },
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
/// config 2; destination failures are reported as 1 by the CLI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Auth,
    Access,
    NotFound,
    Api,
    Network,
    Config,
    Destination,
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
                _ => ErrorKind::Destination,
            },
            Error::Manifest { .. } => ErrorKind::Destination,
            Error::InvalidOption { .. } | Error::Layout(_) => ErrorKind::Config,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Internal { .. } => ErrorKind::Internal,
        }
    }
}
