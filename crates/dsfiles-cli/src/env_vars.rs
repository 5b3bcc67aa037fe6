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
