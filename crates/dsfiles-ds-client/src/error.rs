//! The crate's one error type, classified once: [`Error::kind`] for exit codes and
//! [`Error::is_transient`] for the retry loop.

use std::fmt;
use std::time::Duration;

/// What a run-level failure means to the operator (the CLI maps it to an exit code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The token is missing, invalid, expired, deprecated or not allowed from this network.
    Auth,
    /// The token is valid but may not read this démarche or dossier.
    Access,
    /// The démarche, groupe instructeur or dossier does not exist (for this démarche).
    NotFound,
    /// DS answered, but not with what was asked (GraphQL errors, unexpected shapes, HTTP errors).
    Api,
    /// DS could not be reached or did not answer in time.
    Network,
    /// The client configuration or the filter is invalid (including a start cursor DS refuses).
    Config,
}

/// One entry of a GraphQL response's `errors`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GraphQlError {
    /// `extensions.code` (`not_found`, `unauthorized`, `timeout`, `invalid_null`, ...).
    pub code: Option<String>,
    pub message: String,
    /// Where in `data` the error happened (field names and list indexes).
    pub path: Vec<serde_json::Value>,
}

impl fmt::Display for GraphQlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(code) = &self.code {
            write!(f, "`{code}`: ")?;
        }
        f.write_str(&self.message)?;
        if !self.path.is_empty() {
            let path: Vec<String> = self
                .path
                .iter()
                .map(|p| match p {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            write!(f, " (at `{}`)", path.join("."))?;
        }
        Ok(())
    }
}

/// What a request was about, to name it in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Demarche(u64),
    GroupeInstructeur(u64),
    Dossier(u64),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Demarche(n) => write!(f, "démarche `{n}`"),
            Target::GroupeInstructeur(n) => write!(f, "groupe instructeur `{n}`"),
            Target::Dossier(n) => write!(f, "dossier `{n}`"),
        }
    }
}

/// Everything that can go wrong talking to DS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid API token: {reason}")]
    InvalidToken { reason: &'static str },

    #[error("invalid DS client configuration: {reason}")]
    InvalidConfig { reason: String },

    #[error("could not set up the HTTP client")]
    HttpClient(#[source] reqwest::Error),

    #[error(
        "DS refused the API token (HTTP 403 `forbidden`): {message}; check the token (DS_API_TOKEN or --token-file)"
    )]
    TokenRejected { message: String },

    #[error("the API token has expired (HTTP 401): {message}; create a new one in your DS profile")]
    TokenExpired { message: String },

    #[error(
        "the API token may only be used from other networks (allowed: `{networks}`): {message}; run from an allowed network or change the token's allowed networks"
    )]
    TokenNetworkRestricted { networks: String, message: String },

    #[error("the API token has a deprecated format (`deprecated_token`): {message}")]
    TokenDeprecated { message: String },

    #[error("{target} not found (`not_found`): {message}")]
    NotFound { target: Target, message: String },

    #[error("{target} is not accessible with this token (`unauthorized`): {message}")]
    Unauthorized { target: Target, message: String },

    #[error("{target} belongs to démarche `{actual}`, not to démarche `{expected}`")]
    OtherDemarche {
        target: Target,
        expected: u64,
        actual: u64,
    },

    #[error("DS rate limit reached (HTTP 429){}", retry_after_text(*retry_after))]
    RateLimited { retry_after: Option<Duration> },

    #[error("DS answered HTTP {status} with a body that is not JSON: `{snippet}`")]
    NotJson { status: u16, snippet: String },

    #[error("DS answered HTTP {status}: `{snippet}`")]
    Http { status: u16, snippet: String },

    #[error("DS returned errors for `{operation}`: {}", join_errors(errors))]
    GraphQl {
        operation: &'static str,
        errors: Vec<GraphQlError>,
    },

    /// DS refused the cursor a listing was asked to start after
    /// ([`DossierFilter::after`](crate::DossierFilter::after)).
    #[error(
        "DS refused to resume `{operation}` from the given cursor: {}",
        join_errors(errors)
    )]
    CursorRejected {
        operation: &'static str,
        errors: Vec<GraphQlError>,
    },

    #[error("unexpected DS response to `{operation}`: {reason}")]
    UnexpectedResponse {
        operation: &'static str,
        reason: String,
    },

    /// The answer (decompressed) grew beyond [`ClientConfig::max_response_bytes`](crate::ClientConfig::max_response_bytes).
    #[error(
        "DS's answer to `{operation}` from `{endpoint}` is larger than the limit of `{limit}` bytes (`max_response_bytes`)"
    )]
    ResponseTooLarge {
        operation: &'static str,
        /// The endpoint, without query string.
        endpoint: String,
        limit: u64,
    },

    #[error("the request to DS failed")]
    Network(#[source] reqwest::Error),

    /// The bounded retry loop gave up; `last` is the last real error.
    #[error("gave up after {attempts} attempts in {:.1}s", elapsed.as_secs_f64())]
    RetriesExhausted {
        attempts: u32,
        elapsed: Duration,
        #[source]
        last: Box<Error>,
    },
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(", retry in {:.1}s", d.as_secs_f64()),
        None => String::new(),
    }
}

fn join_errors(errors: &[GraphQlError]) -> String {
    if errors.is_empty() {
        return "no error details".to_owned();
    }
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// What the failure means to the operator.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidToken { .. }
            | Error::TokenRejected { .. }
            | Error::TokenExpired { .. }
            | Error::TokenNetworkRestricted { .. }
            | Error::TokenDeprecated { .. } => ErrorKind::Auth,
            Error::Unauthorized { .. } => ErrorKind::Access,
            Error::NotFound { .. } | Error::OtherDemarche { .. } => ErrorKind::NotFound,
            Error::RateLimited { .. }
            | Error::NotJson { .. }
            | Error::Http { .. }
            | Error::GraphQl { .. }
            | Error::ResponseTooLarge { .. }
            | Error::UnexpectedResponse { .. } => ErrorKind::Api,
            Error::Network(_) => ErrorKind::Network,
            Error::InvalidConfig { .. } | Error::HttpClient(_) | Error::CursorRejected { .. } => {
                ErrorKind::Config
            }
            Error::RetriesExhausted { last, .. } => last.kind(),
        }
    }

    /// Whether the same request may succeed later: 429, 502/503/504, connection errors,
    /// timeouts, truncated bodies, GraphQL `timeout` and `internal_server_error`.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::RateLimited { .. } | Error::Network(_) => true,
            Error::Http { status, .. } => matches!(status, 502..=504),
            // A 2xx body that is not JSON but not HTML either was cut short on the way.
            Error::NotJson { status, snippet } => {
                matches!(status, 502..=504)
                    || ((200..300).contains(status) && !snippet.trim_start().starts_with('<'))
            }
            Error::GraphQl { errors, .. } => errors
                .iter()
                .any(|e| matches!(e.code.as_deref(), Some("timeout" | "internal_server_error"))),
            Error::RetriesExhausted { last, .. } => last.is_transient(),
            _ => false,
        }
    }

    /// Whether a smaller page may succeed: GraphQL `timeout`, a query-complexity error, or
    /// an answer beyond `max_response_bytes`.
    pub fn is_page_too_large(&self) -> bool {
        match self {
            Error::ResponseTooLarge { .. } => true,
            Error::GraphQl { errors, .. } => errors.iter().any(|e| {
                e.code.as_deref() == Some("timeout")
                    || e.message.to_ascii_lowercase().contains("complexity")
            }),
            Error::RetriesExhausted { last, .. } => last.is_page_too_large(),
            _ => false,
        }
    }

    /// How long DS asked to wait, for a 429.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}
