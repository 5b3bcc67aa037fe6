//! The DS GraphQL transport: the queries in `queries/*.graphql`, pagination as streams,
//! rate limiting, retries, adaptive page size and typed errors.
//!
//! **Architecture invariant:** this crate knows nothing about files, sinks or manifests;
//! dossiers leave it as `serde_json::Value`, exactly as the queries select them (no aliases
//! inside a dossier — `DossiersByNumber` aliases only its top-level fields — `__typename` on
//! every champ), for `dsfiles-extract` to read.
//!
//! # Transport
//! One [`reqwest::Client`] per [`Client`] (clones share it): rustls, gzip, HTTP/2 when
//! offered, keep-alive connection reuse, a connect timeout and a read timeout. Proxies come
//! from the environment, as reqwest reads it by default: `HTTPS_PROXY` (for the usual https
//! endpoint), `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (upper or lower case).
//! The token travels only in `Authorization: Bearer …`; [`Token`] prints redacted, and the
//! `tracing` events (debug: one per request with operation, page size, attempt, status and
//! elapsed time) never carry it, nor a URL's query string.
//!
//! # Failures
//! One bounded retry loop per request ([`ClientConfig::max_attempts`]): HTTP 429 (waiting
//! until DS's `RateLimit-Reset`, else `Retry-After`, else backoff; never longer than
//! [`ClientConfig::backoff_max`], whatever the headers say), 502/503/504, connection
//! errors, timeouts, cut-short bodies and GraphQL `timeout`/`internal_server_error` are
//! retried with exponential backoff and full jitter; the last error is returned with the
//! attempts and elapsed time. A page that times out or is too complex is asked again with
//! half as many dossiers, and the size grows back after. A client-side limiter keeps under
//! [`ClientConfig::requests_per_minute`]. Errors DS sends *with* data (`invalid_null`) are
//! not fatal: they come in [`DossierBatch::errors`].
//!
//! Nothing DS sends can panic the client: header values and numbers are parsed with checked
//! arithmetic, and answers are read as a stream bounded by
//! [`ClientConfig::max_response_bytes`] after decompression (a page beyond it is asked again
//! smaller, then fails with [`Error::ResponseTooLarge`]).

mod by_number;
mod client;
mod config;
mod error;
mod limiter;
mod pages;
mod queries;
mod stats;
mod token;
mod transport;

pub use client::{Client, RevisionLabels};
pub use config::{
    ClientConfig, DEFAULT_ENDPOINT, DEFAULT_MAX_RESPONSE_BYTES, DossierFields, DossierFilter,
    DossierState, MAX_PAGE_SIZE,
};
pub use error::{Error, ErrorKind, GraphQlError, Target};
pub use pages::{DeletedDossier, DossierBatch};
pub use queries::{DOSSIERS_PER_REQUEST, QUERIES, dossiers_by_number_query};
pub use stats::Stats;
pub use token::Token;
