//! Every environment variable the `dsfiles` binary reads, declared once (uv's `env_vars.rs`):
//! clap's `env =` attributes, the settings code and `docs/cli.md` all use these names.
//!
//! The storage sinks read the standard cloud variables themselves (`AWS_*`, `GOOGLE_*`,
//! `AZURE_STORAGE_*`, see `docs/storage.md`), and the HTTP client honours `HTTPS_PROXY` and
//! `NO_PROXY`.

/// The DS GraphQL endpoint (`--endpoint`).
pub const DS_API_URL: &str = "DS_API_URL";

/// The DS API token, when `--token-file` is not given. Never printed or logged.
pub const DS_API_TOKEN: &str = "DS_API_TOKEN";

/// Tracing filter (`tracing_subscriber::EnvFilter` syntax); overrides `-v` and `-q`.
pub const RUST_LOG: &str = "RUST_LOG";

/// When set (to anything), no colours on stderr.
pub const NO_COLOR: &str = "NO_COLOR";

/// File hosts downloads may reach on a loopback, private or link-local address, comma-separated
/// (`--allow-file-host`).
pub const DSFILES_ALLOW_FILE_HOSTS: &str = "DSFILES_ALLOW_FILE_HOSTS";

/// Seconds every download attempt gets on top of its size-based share
/// (`--download-deadline-base`).
pub const DSFILES_DOWNLOAD_DEADLINE_BASE: &str = "DSFILES_DOWNLOAD_DEADLINE_BASE";

/// The slowest download tolerated, in KiB/s (`--download-min-rate`).
pub const DSFILES_DOWNLOAD_MIN_RATE: &str = "DSFILES_DOWNLOAD_MIN_RATE";
