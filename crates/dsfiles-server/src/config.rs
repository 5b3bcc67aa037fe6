//! The service configuration: the TOML file shape ([`ConfigFile`]), the typed and validated
//! settings the server runs on ([`ServerConfig`]), redacting secrets ([`Secret`]) and the
//! destination allow-list ([`AllowList`]).
//!
//! Resolution is layered (flags > environment > file > defaults): this crate reads the file and
//! lays it over the defaults (`file`), the binary lays its flags and environment over that, and
//! [`ServerConfig::validate`] checks the result once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::Error;

mod destination;
mod file;

pub use destination::{AllowList, DestError, Destination};
pub use file::read_secret_lines;

/// A secret string (service token, webhook secret, DS token in the config file). `Debug` and
/// `Display` print `<redacted>`; the value is reachable only through [`Secret::expose`].
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with `candidate` in time independent of where they differ (both sides are
    /// hashed first, so the length does not leak either).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        constant_time_eq(
            &Sha256::digest(self.0.as_bytes()),
            &Sha256::digest(candidate),
        )
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Equality of two byte strings of the same length without an early exit.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The shape of `dsfiles.toml` (`dsfiles serve --config`). Every field is optional; unknown
/// keys are an error so that a typo does not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `127.0.0.1:8080`.
    pub listen: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub max_concurrent_syncs: Option<u64>,
    /// Concurrent downloads inside each sync.
    pub jobs: Option<u64>,
    /// Seconds a file download may wait for its next bytes (`--download-read-timeout`).
    pub download_read_timeout_secs: Option<u64>,
    /// File hosts downloads may reach on internal addresses, `HOST` or `HOST:PORT`
    /// (`--allow-file-host`).
    #[serde(default)]
    pub allow_file_hosts: Vec<String>,
    /// Seconds of every download attempt's deadline before its size counts
    /// (`--download-deadline-base`).
    pub download_deadline_base_secs: Option<u64>,
    /// The slowest download tolerated, KiB/s; 0: no deadline (`--download-min-rate`).
    pub download_min_rate_kib: Option<u64>,
    /// `[dest_options]`: `key = "value"` for every destination (`--dest-option`). Values may be
    /// credentials, so they are [`Secret`]s.
    #[serde(default)]
    pub dest_options: BTreeMap<String, Secret>,
    pub body_limit_bytes: Option<u64>,
    pub request_timeout_secs: Option<u64>,
    #[serde(default)]
    pub allow_dest: Vec<String>,
    #[serde(default)]
    pub api_tokens: Vec<Secret>,
    pub api_tokens_file: Option<PathBuf>,
    /// `postgres://…`: jobs shared by replicas in PostgreSQL (`--database-url`).
    pub database_url: Option<Secret>,
    /// This replica's name in job records (`--replica-id`; default `host-pid`).
    pub replica_id: Option<String>,
    #[serde(default)]
    pub ds: DsSection,
    #[serde(default)]
    pub webhooks: WebhooksSection,
    #[serde(default)]
    pub limits: LimitsSection,
    /// `[[schedules]]`: syncs the service starts on its own (`docs/http-api.md`, "Schedules").
    #[serde(default)]
    pub schedules: Vec<crate::api::ScheduleEntry>,
}

/// `[ds]`: how to reach DS.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DsSection {
    pub endpoint: Option<url::Url>,
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    /// `[ds.tokens]`: `"<démarche number>" = "<token>"`, for démarches another token reaches.
    #[serde(default)]
    pub tokens: BTreeMap<String, Secret>,
    /// Seconds to open a connection, to the API and to the file host (`--connect-timeout`).
    pub connect_timeout_secs: Option<u64>,
    /// Seconds the API may take to send the next bytes of a response (`--read-timeout`).
    pub read_timeout_secs: Option<u64>,
    /// Client-side limit on GraphQL requests per minute; 0 disables it.
    pub requests_per_minute: Option<u32>,
    /// Attempts per GraphQL request.
    pub max_attempts: Option<u32>,
    /// Dossiers per page.
    pub page_size: Option<u32>,
}

/// `[webhooks]`: secrets and where each démarche's webhook-triggered syncs write.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksSection {
    pub secret: Option<Secret>,
    pub previous_secret: Option<Secret>,
    /// `[webhooks.destinations]`: `"<démarche number>" = "<destination>"`.
    #[serde(default)]
    pub destinations: BTreeMap<String, String>,
}

/// `[limits]`: how much one client, or all of them together, may hold (see [`Limits`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub max_connections: Option<u64>,
    pub header_read_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub max_sse_streams: Option<u64>,
    pub max_sse_streams_per_token: Option<u64>,
    pub max_queued_syncs: Option<u64>,
}

impl LimitsSection {
    /// The file's values over [`Limits::default`] (checked by [`ServerConfig::validate`]).
    pub fn resolve(&self) -> Limits {
        let d = Limits::default();
        let count = |v: Option<u64>, default: usize| {
            v.map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        let secs = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_secs);
        Limits {
            max_connections: count(self.max_connections, d.max_connections),
            header_read_timeout: secs(self.header_read_timeout_secs, d.header_read_timeout),
            idle_timeout: secs(self.idle_timeout_secs, d.idle_timeout),
            max_sse_streams: count(self.max_sse_streams, d.max_sse_streams),
            max_sse_streams_per_token: count(
                self.max_sse_streams_per_token,
                d.max_sse_streams_per_token,
            ),
            max_queued_syncs: count(self.max_queued_syncs, d.max_queued_syncs),
        }
    }
}

/// What hostile or careless clients can hold, each bounded (`docs/http-api.md`, "Limits").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open connections; one more is accepted and closed at once (and counted).
    pub max_connections: usize,
    /// Time a connection has to send a complete request head: from its opening for the first
    /// request (whatever the protocol), and from the previous response for the next ones on
    /// HTTP/1.1 (so it is also the keep-alive idle timeout there).
    pub header_read_timeout: Duration,
    /// A connection that moves no byte either way for this long is closed (idle HTTP/2
    /// connections, clients that stop reading a response). Longer than the request timeout.
    pub idle_timeout: Duration,
    /// Open Server-Sent Event streams, all tokens together.
    pub max_sse_streams: usize,
    /// Open Server-Sent Event streams per API token.
    pub max_sse_streams_per_token: usize,
    /// Jobs waiting in the queue; `POST /v1/syncs` beyond it answers 429.
    pub max_queued_syncs: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_sse_streams: 64,
            max_sse_streams_per_token: 8,
            max_queued_syncs: 100,
        }
    }
}

impl Limits {
    /// Positive counts and durations, and an idle timeout no handler can reach.
    fn validate(&self, request_timeout: Duration) -> Result<(), Error> {
        let counts = [
            ("max_connections", self.max_connections),
            ("max_sse_streams", self.max_sse_streams),
            ("max_sse_streams_per_token", self.max_sse_streams_per_token),
            ("max_queued_syncs", self.max_queued_syncs),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(Error::Config(format!("`limits.{name}` must be at least 1")));
        }
        if self.header_read_timeout.is_zero() {
            return Err(Error::Config(
                "`limits.header_read_timeout` must be positive".into(),
            ));
        }
        // A handler may stay silent for up to the request timeout: the idle timeout must not
        // cut it.
        if self.idle_timeout <= request_timeout {
            return Err(Error::Config(format!(
                "`limits.idle_timeout` (`{}` s) must be longer than the request timeout (`{}` s)",
                self.idle_timeout.as_secs_f64(),
                request_timeout.as_secs_f64()
            )));
        }
        Ok(())
    }
}

impl ConfigFile {
    /// Parses a `dsfiles.toml`. The error names the offending key, never a secret value.
    pub fn from_toml(text: &str) -> Result<ConfigFile, Error> {
        toml::from_str(text).map_err(|e| Error::Config(e.message().to_owned()))
    }
}

/// The webhook secrets: DS rotates them with an overlap, so the previous one stays valid for
/// a while. With neither set, the webhook routes answer 404.
#[derive(Clone, Debug, Default)]
pub struct WebhookSecrets {
    pub current: Option<Secret>,
    pub previous: Option<Secret>,
}

impl WebhookSecrets {
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.current.iter().chain(self.previous.iter())
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_none() && self.previous.is_none()
    }
}

/// The typed, validated settings of the HTTP service (the DS side is the pipeline's).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Bearer tokens accepted on `/v1` (webhooks aside). At least one.
    pub api_tokens: Vec<Secret>,
    pub webhook_secrets: WebhookSecrets,
    /// Where syncs may write.
    pub allow_dest: AllowList,
    /// Démarche number → destination of webhook-triggered syncs (each inside `allow_dest`).
    pub webhook_destinations: BTreeMap<u64, String>,
    /// Syncs running at once; the others wait in the queue.
    pub max_concurrent_syncs: usize,
    /// Concurrent downloads inside each sync.
    pub sync_jobs: usize,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Time allowed to produce a response (not to stream it).
    pub request_timeout: Duration,
    /// Job history lives in `<state_dir>/jobs/`.
    pub state_dir: PathBuf,
    /// Finished jobs kept in the history (the oldest are forgotten first).
    pub history_limit: usize,
    /// Connections, timeouts, SSE streams, queue length.
    pub limits: Limits,
    /// Jobs in PostgreSQL, shared by replicas (`--database-url`); `None`: files in `state_dir`.
    pub database: Option<DatabaseSettings>,
    /// `[[schedules]]` of the config file, applied at start-up (created or replaced).
    pub schedules: Vec<crate::api::ScheduleEntry>,
}

/// `--database-url` and what goes with it (see `docs/http-api.md`, "Replicas and PostgreSQL").
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    /// `postgres://…`; a [`Secret`] since it may hold a password.
    pub url: Secret,
    /// This replica's name in job records and histories.
    pub replica_id: String,
    /// How long a claim or renewal holds a job (60 s; tests shorten it).
    pub lease: Duration,
}

impl DatabaseSettings {
    pub fn new(url: Secret, replica_id: Option<String>) -> DatabaseSettings {
        DatabaseSettings {
            url,
            replica_id: replica_id.unwrap_or_else(crate::jobdb::default_replica_id),
            lease: crate::jobdb::LEASE,
        }
    }
}

impl ServerConfig {
    /// Defaults for everything but secrets, the allow-list and the state directory.
    pub fn defaults() -> ServerConfig {
        ServerConfig {
            api_tokens: Vec::new(),
            webhook_secrets: WebhookSecrets::default(),
            allow_dest: AllowList::default(),
            webhook_destinations: BTreeMap::new(),
            max_concurrent_syncs: 2,
            sync_jobs: 8,
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            state_dir: PathBuf::from("dsfiles-state"),
            history_limit: 1000,
            limits: Limits::default(),
            database: None,
            schedules: Vec::new(),
        }
    }

    /// Checks what the types cannot: at least one API token, positive limits, webhook
    /// destinations inside the allow-list.
    pub fn validate(&self) -> Result<(), Error> {
        if self.api_tokens.is_empty()
            || self.api_tokens.iter().any(|t| t.expose().trim().is_empty())
        {
            return Err(Error::Config(
                "at least one non-empty service API token is required".into(),
            ));
        }
        if self
            .webhook_secrets
            .iter()
            .any(|s| s.expose().trim().is_empty())
        {
            return Err(Error::Config("a webhook secret is empty".into()));
        }
        if self.max_concurrent_syncs == 0 {
            return Err(Error::Config(
                "`max_concurrent_syncs` must be at least 1".into(),
            ));
        }
        if self.sync_jobs == 0 {
            return Err(Error::Config("`jobs` must be at least 1".into()));
        }
        if self.body_limit < 1024 {
            return Err(Error::Config(format!(
                "`body_limit` `{}` is below 1024 bytes",
                self.body_limit
            )));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::Config("`request_timeout` must be positive".into()));
        }
        if self.history_limit == 0 {
            return Err(Error::Config("`history_limit` must be at least 1".into()));
        }
        self.limits.validate(self.request_timeout)?;
        crate::schedules::check_config(self)?;
        self.canonical_webhook_destinations().map(drop)
    }

    /// The webhook destinations checked like API ones and in their canonical spelling, so
    /// that a job's identity (démarche, destination) does not depend on who started it.
    pub(crate) fn canonical_webhook_destinations(&self) -> Result<BTreeMap<u64, String>, Error> {
        self.webhook_destinations
            .iter()
            .map(|(demarche, dest)| {
                let dest = self.allow_dest.check(dest).map_err(|e| {
                    Error::Config(format!("webhook destination of démarche `{demarche}`: {e}"))
                })?;
                Ok((*demarche, dest.canonical()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
