//! `dsfiles serve`: the HTTP service. This module is glue: it resolves the service settings
//! once (flags > environment > `--config` file > defaults) into a validated
//! [`dsfiles_server::ServerConfig`], binds the listener, wires SIGTERM and Ctrl-C to a graceful
//! shutdown, and hands everything to [`dsfiles_server::serve`].
//!
//! Secrets (the DS token, service API tokens, webhook secrets) are accepted from the
//! environment, files or the config file, never as command-line values (they would show in
//! `ps`), and are held in redacting types from here on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use dsfiles_core::ds::{self, ClientConfig, Token};
use dsfiles_server::{
    AllowList, AppState, ConfigFile, CorePipeline, Secret, ServerConfig, WebhookSecrets,
};

use crate::env_vars;
use crate::exit::UsageError;
use crate::settings::{self, DsArgs};

/// Environment variables read by `dsfiles serve` only (declared once: clap's `env =`, the code
/// below and `docs/http-api.md` use these names).
mod env {
    /// Listen address (`--listen`).
    pub const DSFILES_LISTEN: &str = "DSFILES_LISTEN";
    /// Service API tokens, comma-separated (clients send `Authorization: Bearer <token>`).
    pub const DSFILES_API_TOKENS: &str = "DSFILES_API_TOKENS";
    /// The current DS webhook secret (`whsec_…`).
    pub const DSFILES_WEBHOOK_SECRET: &str = "DSFILES_WEBHOOK_SECRET";
    /// The previous DS webhook secret, still accepted during a rotation.
    pub const DSFILES_WEBHOOK_SECRET_PREVIOUS: &str = "DSFILES_WEBHOOK_SECRET_PREVIOUS";
    /// Allowed destination prefixes, comma-separated (`--allow-dest`).
    pub const DSFILES_ALLOW_DEST: &str = "DSFILES_ALLOW_DEST";
    /// Directory for the job history (`--state-dir`).
    pub const DSFILES_STATE_DIR: &str = "DSFILES_STATE_DIR";
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_STATE_DIR: &str = "dsfiles-state";

/// Arguments of `dsfiles serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Syncs write with the process's storage credentials, as `dsfiles sync` does (AWS_*, GOOGLE_*,
AZURE_STORAGE_*, or DSFILES_CREDENTIALS=instance for the cloud instance's own role). Ctrl-C or
SIGTERM stops gracefully: no new requests, running syncs cancelled with consistent manifests,
then exit 0. A configuration error exits 2 before listening. API: docs/http-api.md.")]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR", env = env::DSFILES_LISTEN, hide_env_values = true)]
    pub listen: Option<SocketAddr>,

    /// TOML configuration file (see docs/http-api.md); flags and environment override it.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// File holding the service API tokens, one per line (otherwise `DSFILES_API_TOKENS`,
    /// comma-separated, or `api_tokens` in the config file).
    #[arg(long, value_name = "PATH")]
    pub api_tokens_file: Option<PathBuf>,

    /// File holding the DS webhook secret on its first line and, optionally, the previous
    /// secret on its second (otherwise `DSFILES_WEBHOOK_SECRET` and
    /// `DSFILES_WEBHOOK_SECRET_PREVIOUS`, or `[webhooks]` in the config file).
    #[arg(long, value_name = "PATH")]
    pub webhook_secret_file: Option<PathBuf>,

    /// Destination prefixes syncs may write to, comma-separated: local directories and/or
    /// bucket URL prefixes (`s3://bucket/prefix`). Nothing is allowed when empty.
    #[arg(long, value_name = "PREFIX", env = env::DSFILES_ALLOW_DEST, hide_env_values = true,
          value_delimiter = ',')]
    pub allow_dest: Vec<String>,

    /// Default destination of a démarche for webhook-triggered syncs (repeatable).
    #[arg(long = "webhook-dest", value_name = "DEMARCHE=DEST", value_parser = parse_webhook_dest)]
    pub webhook_dest: Vec<(u64, String)>,

    /// Syncs running at once; the others queue [default: 2].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=64))]
    pub max_concurrent_syncs: Option<u64>,

    /// Concurrent downloads inside each sync [default: 8].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    pub jobs: Option<u64>,

    /// Largest accepted request body, in bytes [default: 1048576].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1024..))]
    pub body_limit: Option<u64>,

    /// Seconds a request may take before it is answered 503 [default: 30].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: Option<u64>,

    /// Directory for the job history [default: ./dsfiles-state].
    #[arg(long, value_name = "DIR", env = env::DSFILES_STATE_DIR, hide_env_values = true)]
    pub state_dir: Option<PathBuf>,

    // Last: its `DS API` heading would otherwise also cover the service's own flags.
    #[command(flatten)]
    pub ds: DsArgs,
}

fn parse_webhook_dest(s: &str) -> Result<(u64, String), String> {
    let (demarche, dest) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not DEMARCHE=DEST"))?;
    let demarche = demarche
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("`{demarche}` is not a démarche number"))?;
    let dest = dest.trim();
    if dest.is_empty() {
        return Err(format!("`{s}` has an empty destination"));
    }
    Ok((demarche, dest.to_owned()))
}

/// Runs the HTTP service until SIGTERM or Ctrl-C, then shuts down gracefully: stops
/// accepting, cancels running syncs (their manifests stay consistent) and waits for them.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let file = match &args.config {
        Some(path) => load_config_file(path)?,
        None => ConfigFile::default(),
    };
    let listen = resolve_listen(args.listen, file.listen.as_deref())?;
    let resolved = resolve(&args, file)?;
    let pipeline = CorePipeline::new(resolved.ds, resolved.demarche_tokens)
        .context("cannot start the service")?;
    let state =
        AppState::new(resolved.server, Arc::new(pipeline)).context("cannot start the service")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| UsageError::new(format!("cannot listen on `{listen}`: {e}")))?;
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    tracing::warn!(address = %local, "dsfiles serve listening");
    dsfiles_server::serve(listener, state, shutdown_signal())
        .await
        .context("the HTTP service failed")?;
    tracing::warn!("dsfiles serve stopped");
    Ok(ExitCode::SUCCESS)
}

fn load_config_file(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        UsageError::new(format!("cannot read config file `{}`: {e}", path.display()))
    })?;
    ConfigFile::from_toml(&text).map_err(|e| {
        UsageError::new(format!("invalid config file `{}`: {e}", path.display())).into()
    })
}

fn resolve_listen(flag: Option<SocketAddr>, file: Option<&str>) -> anyhow::Result<SocketAddr> {
    if let Some(addr) = flag {
        return Ok(addr);
    }
    let text = file.unwrap_or(DEFAULT_LISTEN);
    text.parse().map_err(|_| {
        UsageError::new(format!(
            "`{text}` is not a listen address such as 127.0.0.1:8080"
        ))
        .into()
    })
}

/// The settings of the service and of its DS clients.
struct Resolved {
    server: ServerConfig,
    ds: ClientConfig,
    demarche_tokens: BTreeMap<u64, Token>,
}

/// flags > environment > file > defaults, for every setting.
fn resolve(args: &ServeArgs, file: ConfigFile) -> anyhow::Result<Resolved> {
    let ds = resolve_ds(&args.ds, &file)?;
    let demarche_tokens = file
        .ds
        .tokens
        .iter()
        .map(|(demarche, token)| {
            let demarche = demarche.parse::<u64>().map_err(|_| {
                UsageError::new(format!(
                    "`[ds.tokens]`: `{demarche}` is not a démarche number"
                ))
            })?;
            let token = Token::new(token.expose()).map_err(|e| {
                UsageError::new(format!(
                    "`[ds.tokens]`: the token of démarche `{demarche}` is unusable: {e}"
                ))
            })?;
            Ok((demarche, token))
        })
        .collect::<anyhow::Result<BTreeMap<u64, Token>>>()?;

    let api_tokens = resolve_api_tokens(args.api_tokens_file.as_deref(), &file)?;
    let webhook_secrets = resolve_webhook_secrets(args.webhook_secret_file.as_deref(), &file)?;

    let allow_dest = if !args.allow_dest.is_empty() {
        args.allow_dest.clone()
    } else {
        file.allow_dest.clone()
    };
    let allow_dest = AllowList::new(allow_dest.iter().map(String::as_str))
        .map_err(|e| UsageError::new(format!("invalid allowed destination: {e}")))?;

    let mut webhook_destinations = BTreeMap::new();
    for (demarche, dest) in &file.webhooks.destinations {
        let number = demarche.parse::<u64>().map_err(|_| {
            UsageError::new(format!(
                "`[webhooks.destinations]`: `{demarche}` is not a démarche number"
            ))
        })?;
        webhook_destinations.insert(number, dest.clone());
    }
    for (demarche, dest) in &args.webhook_dest {
        webhook_destinations.insert(*demarche, dest.clone());
    }

    let defaults = ServerConfig::defaults();
    let config = ServerConfig {
        api_tokens,
        webhook_secrets,
        allow_dest,
        webhook_destinations,
        max_concurrent_syncs: pick(
            args.max_concurrent_syncs,
            file.max_concurrent_syncs,
            defaults.max_concurrent_syncs,
        ),
        sync_jobs: pick(args.jobs, file.jobs, defaults.sync_jobs),
        body_limit: pick(args.body_limit, file.body_limit_bytes, defaults.body_limit),
        request_timeout: args
            .request_timeout
            .or(file.request_timeout_secs)
            .map_or(defaults.request_timeout, Duration::from_secs),
        state_dir: args
            .state_dir
            .clone()
            .or_else(|| file.state_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
        history_limit: defaults.history_limit,
    };
    config
        .validate()
        .map_err(|e| UsageError::new(format!("invalid service configuration: {e}")))?;
    Ok(Resolved {
        server: config,
        ds,
        demarche_tokens,
    })
}

fn pick(flag: Option<u64>, file: Option<u64>, default: usize) -> usize {
    flag.or(file)
        .map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// The DS client configuration: flags and environment as for every other subcommand; the
/// config file's `[ds]` endpoint and token fill in what neither gives.
fn resolve_ds(args: &DsArgs, file: &ConfigFile) -> anyhow::Result<ClientConfig> {
    let mut args = args.clone();
    // clap fills the endpoint with its default: the file's endpoint wins over that default,
    // but not over `--endpoint` or `DS_API_URL`.
    if let Some(endpoint) = &file.ds.endpoint
        && args.endpoint.as_str() == ds::DEFAULT_ENDPOINT
        && std::env::var_os(env_vars::DS_API_URL).is_none()
    {
        args.endpoint = endpoint.clone();
    }
    if args.token_file.is_none() && args_token_missing() {
        if let Some(path) = &file.ds.token_file {
            args.token_file = Some(path.clone());
        } else if let Some(token) = &file.ds.token {
            // `client_config` reads the token from a flag or the environment; build the same
            // configuration around the file's token.
            let token = Token::new(token.expose()).map_err(|e| {
                UsageError::new(format!("`[ds] token` in the config file is unusable: {e}"))
            })?;
            let mut config = ClientConfig::new(args.endpoint.clone(), token);
            config.requests_per_minute = args.requests_per_minute;
            config.max_attempts = args.max_attempts;
            config.page_size = args.page_size;
            config.connect_timeout = Duration::from_secs(args.connect_timeout);
            config.read_timeout = Duration::from_secs(args.read_timeout);
            config.user_agent = concat!("dsfiles/", env!("CARGO_PKG_VERSION")).to_owned();
            return Ok(config);
        }
    }
    settings::client_config(&args)
}

fn args_token_missing() -> bool {
    std::env::var(env_vars::DS_API_TOKEN).map_or(true, |t| t.trim().is_empty())
}

fn resolve_api_tokens(path: Option<&Path>, file: &ConfigFile) -> anyhow::Result<Vec<Secret>> {
    let tokens: Vec<Secret> = if let Some(path) = path {
        read_secret_lines(path)?
    } else if let Some(raw) = env_secret(env::DSFILES_API_TOKENS)? {
        raw.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Secret::new)
            .collect()
    } else if let Some(path) = &file.api_tokens_file {
        read_secret_lines(path)?
    } else {
        file.api_tokens.clone()
    };
    if tokens.is_empty() {
        return Err(UsageError::new(format!(
            "no service API token: set `{}` (comma-separated), pass `--api-tokens-file PATH`, \
             or set `api_tokens` in the config file",
            env::DSFILES_API_TOKENS
        ))
        .into());
    }
    Ok(tokens)
}

fn resolve_webhook_secrets(
    path: Option<&Path>,
    file: &ConfigFile,
) -> anyhow::Result<WebhookSecrets> {
    if let Some(path) = path {
        let mut lines = read_secret_lines(path)?.into_iter();
        return Ok(WebhookSecrets {
            current: lines.next(),
            previous: lines.next(),
        });
    }
    let current = env_secret(env::DSFILES_WEBHOOK_SECRET)?.map(Secret::new);
    let previous = env_secret(env::DSFILES_WEBHOOK_SECRET_PREVIOUS)?.map(Secret::new);
    if current.is_some() || previous.is_some() {
        return Ok(WebhookSecrets { current, previous });
    }
    Ok(WebhookSecrets {
        current: file.webhooks.secret.clone(),
        previous: file.webhooks.previous_secret.clone(),
    })
}

/// The non-empty lines of a secrets file. Errors name the file, never its content.
fn read_secret_lines(path: &Path) -> anyhow::Result<Vec<Secret>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        UsageError::new(format!(
            "cannot read secrets file `{}`: {e}",
            path.display()
        ))
    })?;
    let secrets: Vec<Secret> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(Secret::new)
        .collect();
    if secrets.is_empty() {
        return Err(UsageError::new(format!("secrets file `{}` is empty", path.display())).into());
    }
    Ok(secrets)
}

fn env_secret(name: &str) -> anyhow::Result<Option<String>> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(Some(value.trim().to_owned())),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(UsageError::new(format!("`{name}` is not valid UTF-8")).into())
        }
    }
}

/// Resolves on the first Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::warn!("Ctrl-C received: shutting down"),
        () = terminate => tracing::warn!("SIGTERM received: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Harness {
        #[command(flatten)]
        serve: ServeArgs,
    }

    /// The defaults `--help` states by hand (the config file sits between flags and defaults,
    /// so clap cannot fill them in) are the service's own.
    #[test]
    fn help_states_the_services_defaults() {
        let help = Harness::command().render_long_help().to_string();
        let defaults = ServerConfig::defaults();
        for (flag, value) in [
            ("--listen", DEFAULT_LISTEN.to_owned()),
            (
                "--max-concurrent-syncs",
                defaults.max_concurrent_syncs.to_string(),
            ),
            ("--jobs", defaults.sync_jobs.to_string()),
            ("--body-limit", defaults.body_limit.to_string()),
            (
                "--request-timeout",
                defaults.request_timeout.as_secs().to_string(),
            ),
            ("--state-dir", format!("./{}", defaults.state_dir.display())),
        ] {
            let start = help.find(&format!("{flag} <")).unwrap();
            let entry = &help[start..];
            let end = entry.find("\n\n").unwrap_or(entry.len());
            assert!(
                entry[..end].contains(&format!("[default: {value}]")),
                "{flag}: {}",
                &entry[..end]
            );
        }
        assert_eq!(DEFAULT_STATE_DIR, defaults.state_dir.to_str().unwrap());
    }

    #[test]
    fn webhook_destinations_parse() {
        let parse = |args: &[&str]| {
            Harness::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
                .map(|h| h.serve.webhook_dest)
        };
        assert_eq!(
            parse(&["--webhook-dest", "12=s3://b/p"]).unwrap(),
            [(12, "s3://b/p".to_owned())]
        );
        for bad in ["12", "x=d", "12="] {
            assert!(parse(&["--webhook-dest", bad]).is_err(), "{bad}");
        }
    }
}
