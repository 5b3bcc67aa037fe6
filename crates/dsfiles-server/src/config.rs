//! The service configuration: the TOML file shape ([`ConfigFile`]), the typed and validated
//! settings the server runs on ([`ServerConfig`]), redacting secrets ([`Secret`]) and the
//! destination allow-list ([`AllowList`]).
//!
//! Resolution (flags > environment > file > defaults) is the binary's job; this module only
//! parses the file and validates the result.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::Error;

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
    #[serde(default)]
    pub ds: DsSection,
    #[serde(default)]
    pub webhooks: WebhooksSection,
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
        for (demarche, dest) in &self.webhook_destinations {
            self.allow_dest.check(dest).map_err(|e| {
                Error::Config(format!("webhook destination of démarche `{demarche}`: {e}"))
            })?;
        }
        Ok(())
    }
}

/// A destination, normalized: a local directory (absolute, no `.`/`..`) or an object-store
/// URL `scheme://bucket/prefix` (no query, no dot segments).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    Local(PathBuf),
    Bucket {
        scheme: String,
        bucket: String,
        path: Vec<String>,
    },
}

impl Destination {
    /// Parses and normalizes `dest`. Relative local paths, `..` components (also
    /// percent-encoded), queries and credentials are refused.
    pub fn parse(dest: &str) -> Result<Destination, DestError> {
        let dest = dest.trim();
        if dest.is_empty() {
            return Err(DestError::Invalid {
                dest: dest.to_owned(),
                why: "it is empty",
            });
        }
        if dest.contains('\0') || dest.chars().any(char::is_control) {
            return Err(DestError::Invalid {
                dest: dest.escape_default().to_string(),
                why: "it contains control characters",
            });
        }
        if let Some(path) = dest.strip_prefix("file://") {
            return Destination::local(dest, path);
        }
        if let Some((scheme, rest)) = dest.split_once("://") {
            let scheme = scheme.to_ascii_lowercase();
            if !matches!(
                scheme.as_str(),
                "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "memory"
            ) {
                return Err(DestError::Invalid {
                    dest: dest.to_owned(),
                    why: "its scheme is not one of file, s3, gs, az, memory",
                });
            }
            if rest.contains(['?', '#', '@', '\\']) {
                return Err(DestError::Invalid {
                    dest: dest.to_owned(),
                    why: "it has a query, fragment, credentials or a backslash",
                });
            }
            let mut parts = rest.split('/');
            let bucket = parts.next().unwrap_or_default().to_owned();
            if bucket.is_empty() && scheme != "memory" {
                return Err(DestError::Invalid {
                    dest: dest.to_owned(),
                    why: "it names no bucket",
                });
            }
            let mut path = Vec::new();
            for part in parts {
                if part.is_empty() {
                    continue;
                }
                if is_dot_segment(part) {
                    return Err(DestError::Invalid {
                        dest: dest.to_owned(),
                        why: "it has a `.` or `..` segment",
                    });
                }
                path.push(part.to_owned());
            }
            return Ok(Destination::Bucket {
                scheme,
                bucket,
                path,
            });
        }
        Destination::local(dest, dest)
    }

    fn local(dest: &str, path: &str) -> Result<Destination, DestError> {
        let path = Path::new(path);
        if !path.is_absolute() {
            return Err(DestError::Invalid {
                dest: dest.to_owned(),
                why: "a local destination must be an absolute path",
            });
        }
        let mut normalized = PathBuf::new();
        for component in path.components() {
            match component {
                Component::Prefix(_) | Component::RootDir | Component::Normal(_) => {
                    normalized.push(component)
                }
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(DestError::Invalid {
                        dest: dest.to_owned(),
                        why: "it has a `..` component",
                    });
                }
            }
        }
        Ok(Destination::Local(normalized))
    }

    /// Whether `self` is `prefix` or lies below it (whole components only: `/srv/a` is not
    /// below `/srv/ab`).
    pub fn is_within(&self, prefix: &Destination) -> bool {
        match (self, prefix) {
            (Destination::Local(path), Destination::Local(prefix)) => path.starts_with(prefix),
            (
                Destination::Bucket {
                    scheme,
                    bucket,
                    path,
                },
                Destination::Bucket {
                    scheme: p_scheme,
                    bucket: p_bucket,
                    path: p_path,
                },
            ) => scheme == p_scheme && bucket == p_bucket && path.starts_with(p_path),
            _ => false,
        }
    }

    /// The canonical spelling, used as the destination of a job and as part of its identity.
    pub fn canonical(&self) -> String {
        match self {
            Destination::Local(path) => path.display().to_string(),
            Destination::Bucket {
                scheme,
                bucket,
                path,
            } => {
                let mut s = format!("{scheme}://{bucket}");
                for part in path {
                    s.push('/');
                    s.push_str(part);
                }
                s
            }
        }
    }
}

fn is_dot_segment(part: &str) -> bool {
    let decoded = part.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestError {
    #[error("destination `{dest}` is invalid: {why}")]
    Invalid { dest: String, why: &'static str },
    #[error("destination `{dest}` is outside the allowed prefixes")]
    NotAllowed { dest: String },
}

/// The destination prefixes syncs may write to. Empty: nothing is allowed.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    prefixes: Vec<Destination>,
}

impl AllowList {
    pub fn new<'a>(prefixes: impl IntoIterator<Item = &'a str>) -> Result<AllowList, DestError> {
        let prefixes = prefixes
            .into_iter()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Destination::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AllowList { prefixes })
    }

    /// The normalized destination when `dest` is valid and inside an allowed prefix.
    pub fn check(&self, dest: &str) -> Result<Destination, DestError> {
        let parsed = Destination::parse(dest)?;
        if self.prefixes.iter().any(|prefix| parsed.is_within(prefix)) {
            Ok(parsed)
        } else {
            Err(DestError::NotAllowed {
                dest: parsed.canonical(),
            })
        }
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }
}

#[cfg(test)]
mod tests;
