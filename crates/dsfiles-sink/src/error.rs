use std::path::PathBuf;

/// Everything that can go wrong in a sink. Messages name the destination or key in backticks
/// and never contain credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The destination string cannot be understood (bad URL, unusable path, ...).
    #[error("invalid destination `{dest}`: {reason}")]
    InvalidDestination { dest: String, reason: String },

    /// The URL scheme is not one dsfiles writes to.
    #[error(
        "unsupported destination scheme `{scheme}` in `{dest}`: use a path, file://, s3://, gs:// or az://"
    )]
    UnsupportedScheme { dest: String, scheme: String },

    /// `s3://`, `gs://` or `az://` without a bucket (container) name.
    #[error(
        "destination `{dest}` names no bucket: write it as `{scheme}://BUCKET/optional/prefix`"
    )]
    MissingBucket { dest: String, scheme: String },

    /// Nothing could provide credentials for the backend.
    #[error("{backend} needs credentials: `{variable}` is not set. {hint}")]
    MissingCredentials {
        backend: &'static str,
        variable: &'static str,
        hint: &'static str,
    },

    /// A `--dest-option` key or value was rejected.
    #[error("invalid destination option `{key}`: {reason}")]
    InvalidOption { key: String, reason: String },

    /// A key that would escape the destination or is otherwise unusable (key containment).
    #[error("invalid key `{key}`: {reason}")]
    InvalidKey { key: String, reason: &'static str },

    /// A component of `key` inside a local destination is a symbolic link: nothing is read,
    /// written or deleted through it (it could lead outside the destination).
    #[error("refusing key `{key}`: `{component}` is a symbolic link inside the destination")]
    Symlink { key: String, component: String },

    /// No object at `key`.
    #[error("no object at `{key}`")]
    NotFound { key: String },

    /// A range read that starts past the end of the object.
    #[error("range `{start}..{end}` starts past the end of `{key}` ({size} bytes)")]
    InvalidRange {
        key: String,
        start: u64,
        end: u64,
        size: u64,
    },

    /// A local file system operation failed.
    #[error("{op} `{}` failed", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An earlier `write` of this upload failed; the upload can only be aborted.
    #[error("the upload of `{key}` already failed: abort it")]
    UploadFailed { key: String },

    /// A conditional write or delete ([`crate::Sink::put_if`], [`crate::Sink::delete_if`])
    /// found the object in another state than required: it exists (create-if-absent), or it
    /// changed or disappeared since its version was read. Nothing was changed.
    #[error("`{key}` changed meanwhile: the conditional write was refused")]
    PreconditionFailed { key: String },

    /// The writer lost its claim on the destination (another writer took its lease): every
    /// write is refused from then on, so that two writers never write at once.
    #[error("refusing to write `{key}`: this run lost its lease on the destination")]
    Fenced { key: String },

    /// The object store answered with an error (after its own retries).
    #[error("{op} `{key}` on {store} failed")]
    Backend {
        op: &'static str,
        store: String,
        key: String,
        #[source]
        source: Box<object_store::Error>,
    },
}

impl Error {
    /// True when trying the same operation again later may succeed (network, 5xx, timeouts).
    pub fn is_transient(&self) -> bool {
        use std::io::ErrorKind as K;
        match self {
            Error::Io { source, .. } => matches!(
                source.kind(),
                K::Interrupted
                    | K::TimedOut
                    | K::WouldBlock
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::BrokenPipe
                    | K::UnexpectedEof
            ),
            Error::Backend { source, .. } => matches!(
                **source,
                object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
            ),
            Error::InvalidDestination { .. }
            | Error::UnsupportedScheme { .. }
            | Error::MissingBucket { .. }
            | Error::MissingCredentials { .. }
            | Error::InvalidOption { .. }
            | Error::InvalidKey { .. }
            | Error::Symlink { .. }
            | Error::NotFound { .. }
            | Error::InvalidRange { .. }
            | Error::UploadFailed { .. }
            | Error::PreconditionFailed { .. }
            | Error::Fenced { .. } => false,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
