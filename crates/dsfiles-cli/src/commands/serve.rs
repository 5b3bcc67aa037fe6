//! `dsfiles serve`: the HTTP service. This module is glue: it resolves the service settings
//! once (flags > environment > `--config` file > defaults) into a validated
//! [`dsfiles_server::ServerConfig`] and the pipeline's DS client, download and destination
//! options, binds the listener, wires SIGTERM and Ctrl-C to a graceful shutdown, and hands
//! everything to [`dsfiles_server::serve`].
//!
//! Flags that clap gives a default (the DS client knobs, `--download-read-timeout`) yield to
//! the config file unless they were given on the command line or through their environment
//! variable: clap's `ArgMatches::value_source` says which, and [`ServeArgs`] records it.
//!
//! Secrets (the DS token, service API tokens, webhook secrets) are accepted from the
//! environment, files or the config file, never as command-line values (they would show in
//! `ps`), and are held in redacting types from here on.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::parser::ValueSource;
use dsfiles_core::ds::{ClientConfig, Token};
use dsfiles_core::{AllowedHost, FetchOptions};
use dsfiles_server::{
    AllowList, AppState, ConfigFile, CorePipeline, DatabaseSettings, Secret, ServerConfig,
    WebhookSecrets, jobdb, read_secret_lines,
};

use crate::commands::sync::SyncArgs;
use crate::exit::UsageError;
use crate::settings::{self, DsArgs, TokenFallback};

/// Environment variables read by `dsfiles serve` (declared once: clap's `env =`, the code
/// below, `healthcheck` and `docs/http-api.md` use these names).
pub(crate) mod env {
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
    /// `postgres://…`: jobs shared by replicas in PostgreSQL (`--database-url`). May hold a
    /// password: never printed.
    pub const DSFILES_DATABASE_URL: &str = "DSFILES_DATABASE_URL";
    /// This replica's name in job records (`--replica-id`).
    pub const DSFILES_REPLICA_ID: &str = "DSFILES_REPLICA_ID";
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Arguments of `dsfiles serve`: the service's own flags, the download flags of `dsfiles sync`
/// (the same definitions, taken from [`SyncArgs`]), the DS client flags, and which of them were
/// given explicitly. Parsed by hand around derived parts (see the `clap::Args` impl below).
#[derive(Debug)]
pub struct ServeArgs {
    pub service: ServiceArgs,
    /// `--download-read-timeout`, as `dsfiles sync` defines it.
    pub download_read_timeout: u64,
    /// `--dest-option KEY=VALUE`, as `dsfiles sync` defines it.
    pub dest_options: Vec<(String, String)>,
    /// `--allow-file-host`, `--download-deadline-base`, `--download-min-rate`, as `dsfiles sync`
    /// defines them.
    pub allow_file_hosts: Vec<AllowedHost>,
    pub download_deadline_base: u64,
    pub download_min_rate: u64,
    pub ds: DsArgs,
    /// Ids of the arguments given on the command line or through their environment variable
    /// (the others hold clap's default, which the config file overrides).
    explicit: BTreeSet<String>,
}

/// The arguments of `dsfiles sync` that `serve` takes as they are, by clap id.
const FROM_SYNC: [&str; 5] = [
    "download_read_timeout",
    "dest_options",
    "allow_file_hosts",
    "download_deadline_base",
    "download_min_rate",
];

/// `FROM_SYNC`'s definitions, taken from `dsfiles sync` so that the two cannot drift, shown
/// among the service's options.
fn args_from_sync() -> Vec<clap::Arg> {
    let sync = <SyncArgs as clap::Args>::augment_args(clap::Command::new("sync"));
    FROM_SYNC
        .iter()
        .map(|id| {
            sync.get_arguments()
                .find(|arg| arg.get_id() == id)
                .unwrap_or_else(|| panic!("`dsfiles sync` defines no `{id}` argument"))
                .clone()
                .help_heading(None)
                .display_order(None)
        })
        .collect()
}

impl clap::Args for ServeArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let cmd = ServiceArgs::augment_args(cmd).args(args_from_sync());
        // Last: its `DS API` heading would otherwise also cover the flags above.
        DsArgs::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        let cmd = ServiceArgs::augment_args_for_update(cmd).args(args_from_sync());
        DsArgs::augment_args_for_update(cmd)
    }
}

impl clap::FromArgMatches for ServeArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<ServeArgs, clap::Error> {
        let download_read_timeout = matches
            .try_get_one::<u64>(FROM_SYNC[0])
            .map_err(matches_error)?
            .copied()
            .ok_or_else(|| matches_error(format!("`{}` has no value", FROM_SYNC[0])))?;
        let dest_options = matches
            .try_get_many::<(String, String)>(FROM_SYNC[1])
            .map_err(matches_error)?
            .map(|values| values.cloned().collect())
            .unwrap_or_default();
        let allow_file_hosts = matches
            .try_get_many::<AllowedHost>(FROM_SYNC[2])
            .map_err(matches_error)?
            .map(|values| values.cloned().collect())
            .unwrap_or_default();
        let number = |id: &str| {
            matches
                .try_get_one::<u64>(id)
                .map_err(matches_error)?
                .copied()
                .ok_or_else(|| matches_error(format!("`{id}` has no value")))
        };
        Ok(ServeArgs {
            service: ServiceArgs::from_arg_matches(matches)?,
            download_read_timeout,
            dest_options,
            allow_file_hosts,
            download_deadline_base: number(FROM_SYNC[3])?,
            download_min_rate: number(FROM_SYNC[4])?,
            ds: DsArgs::from_arg_matches(matches)?,
            explicit: matches
                .ids()
                .filter(|id| {
                    matches!(
                        matches.value_source(id.as_str()),
                        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                    )
                })
                .map(|id| id.as_str().to_owned())
                .collect(),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = ServeArgs::from_arg_matches(matches)?;
        Ok(())
    }
}

fn matches_error(err: impl std::fmt::Display) -> clap::Error {
    clap::Error::raw(clap::error::ErrorKind::InvalidValue, err.to_string())
}

impl ServeArgs {
    /// Whether the argument `id` was given on the command line or by its environment variable.
    fn explicit(&self, id: &str) -> bool {
        self.explicit.contains(id)
    }
}

/// The service's own flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Syncs write with the process's storage credentials, as `dsfiles sync` does (AWS_*, GOOGLE_*,
AZURE_STORAGE_*, or DSFILES_CREDENTIALS=instance for the cloud instance's own role). Ctrl-C or
SIGTERM stops gracefully: no new requests, running syncs cancelled with consistent manifests,
then exit 0. A configuration error exits 2 before listening. API: docs/http-api.md.")]
pub struct ServiceArgs {
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

    /// Seconds a request may take before it is answered 408 (Server-Sent Event streams are
    /// not cut) [default: 30].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: Option<u64>,

    /// Directory for the job history [default: ./dsfiles-state].
    #[arg(long, value_name = "DIR", env = env::DSFILES_STATE_DIR, hide_env_values = true)]
    pub state_dir: Option<PathBuf>,

    /// Keep jobs in this PostgreSQL database (`postgres://USER:PASSWORD@HOST/DB`), shared by
    /// every replica given the same URL, instead of files in --state-dir.
    #[arg(long, value_name = "URL", env = env::DSFILES_DATABASE_URL, hide_env_values = true)]
    pub database_url: Option<String>,

    /// This replica's name in job records (with --database-url) [default: HOST-PID].
    #[arg(long, value_name = "ID", env = env::DSFILES_REPLICA_ID, hide_env_values = true)]
    pub replica_id: Option<String>,

    /// Seconds a replica holds a job it runs without renewing it (with --database-url) [default: 60].
    #[arg(long, value_name = "SECONDS", hide = true,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub job_lease: Option<u64>,
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
    let file = match &args.service.config {
        Some(path) => ConfigFile::read(path).map_err(usage)?,
        None => ConfigFile::default(),
    };
    let listen = resolve_listen(args.service.listen, file.listen.as_deref())?;
    let resolved = resolve(&args, &file)?;
    let pipeline = CorePipeline::new(resolved.ds, resolved.demarche_tokens)
        .context("cannot start the service")?
        .with_fetch_options(resolved.fetch)
        .with_dest_options(resolved.dest_options)
        .with_replica(
            (resolved.server.database.as_ref()).map(|database| database.replica_id.clone()),
        );
    if let Some(database) = &resolved.server.database {
        tracing::info!(database = %jobdb::redact_url(database.url.expose()), replica = %database.replica_id, "jobs in PostgreSQL, shared by replicas");
    }
    let state = AppState::open(resolved.server, Arc::new(pipeline))
        .await
        .context("cannot start the service")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| UsageError::new(format!("cannot listen on `{listen}`: {e}")))?;
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    tracing::warn!(address = %local, "dsfiles serve listening");
    dsfiles_server::serve(listener, state, crate::signals::shutdown())
        .await
        .context("the HTTP service failed")?;
    tracing::warn!("dsfiles serve stopped");
    Ok(ExitCode::SUCCESS)
}

/// A configuration error of the server crate, as a usage error (exit code 2).
fn usage(e: dsfiles_server::Error) -> anyhow::Error {
    UsageError::new(e.to_string()).into()
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

/// The settings of the service and of its pipeline. No `Debug`: destination options may hold
/// storage credentials.
struct Resolved {
    server: ServerConfig,
    ds: ClientConfig,
    demarche_tokens: BTreeMap<u64, Token>,
    fetch: FetchOptions,
    dest_options: Vec<(String, String)>,
}

/// flags > environment > file > defaults, for every setting.
fn resolve(args: &ServeArgs, file: &ConfigFile) -> anyhow::Result<Resolved> {
    let ds_args = resolve_ds_args(args, file)?;
    Ok(Resolved {
        server: resolve_server(&args.service, file)?,
        ds: client_config(&ds_args, file)?,
        demarche_tokens: resolve_demarche_tokens(file)?,
        fetch: resolve_fetch(args, file, &ds_args)?,
        dest_options: resolve_dest_options(args, file),
    })
}

/// The service's own settings: the file's (over the defaults), each overridden by its flag or
/// environment variable, then validated once.
fn resolve_server(args: &ServiceArgs, file: &ConfigFile) -> anyhow::Result<ServerConfig> {
    let mut config = file.server_config().map_err(usage)?;
    config.api_tokens = resolve_api_tokens(args.api_tokens_file.as_deref(), file)?;
    if let Some(secrets) = webhook_secrets_from_flags(args.webhook_secret_file.as_deref())? {
        config.webhook_secrets = secrets;
    }
    if !args.allow_dest.is_empty() {
        config.allow_dest = AllowList::new(args.allow_dest.iter().map(String::as_str))
            .map_err(|e| UsageError::new(format!("invalid allowed destination: {e}")))?;
    }
    config
        .webhook_destinations
        .extend(args.webhook_dest.iter().cloned());
    let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    if let Some(n) = args.max_concurrent_syncs {
        config.max_concurrent_syncs = count(n);
    }
    if let Some(n) = args.jobs {
        config.sync_jobs = count(n);
    }
    if let Some(n) = args.body_limit {
        config.body_limit = count(n);
    }
    if let Some(secs) = args.request_timeout {
        config.request_timeout = Duration::from_secs(secs);
    }
    if let Some(dir) = &args.state_dir {
        config.state_dir.clone_from(dir);
    }
    resolve_database(args, file, &mut config);
    config
        .validate()
        .map_err(|e| UsageError::new(format!("invalid service configuration: {e}")))?;
    Ok(config)
}

/// `--database-url` over the file's `database_url`; `--replica-id` over the file's `replica_id`.
fn resolve_database(args: &ServiceArgs, file: &ConfigFile, config: &mut ServerConfig) {
    let replica = args.replica_id.clone().or_else(|| file.replica_id.clone());
    if let Some(url) = &args.database_url {
        config.database = Some(DatabaseSettings::new(Secret::new(url.clone()), replica));
    } else if let Some(database) = &mut config.database
        && let Some(replica) = replica
    {
        database.replica_id = replica;
    }
    if let (Some(database), Some(secs)) = (&mut config.database, args.job_lease) {
        database.lease = Duration::from_secs(secs);
    }
}

/// Downloads as `dsfiles sync` makes them (the connect timeout is the API's), with the file's
/// values where no flag was given.
fn resolve_fetch(
    args: &ServeArgs,
    file: &ConfigFile,
    ds_args: &DsArgs,
) -> anyhow::Result<FetchOptions> {
    let download_read_timeout = if args.explicit(FROM_SYNC[0]) {
        args.download_read_timeout
    } else {
        file.download_read_timeout_secs
            .map(|n| at_least_one("download_read_timeout_secs", n))
            .transpose()?
            .unwrap_or(args.download_read_timeout)
    };
    Ok(FetchOptions {
        connect_timeout: Duration::from_secs(ds_args.connect_timeout),
        read_timeout: Duration::from_secs(download_read_timeout),
        ..download_policy(args, file, ds_args)?
    })
}

/// The file's `[dest_options]`, each key overridden by a `--dest-option` of the same key.
fn resolve_dest_options(args: &ServeArgs, file: &ConfigFile) -> Vec<(String, String)> {
    let mut options: BTreeMap<String, String> = file
        .dest_options
        .iter()
        .map(|(key, value)| (key.clone(), value.expose().to_owned()))
        .collect();
    options.extend(args.dest_options.iter().cloned());
    options.into_iter().collect()
}

/// `[ds.tokens]`, each checked as a DS token.
fn resolve_demarche_tokens(file: &ConfigFile) -> anyhow::Result<BTreeMap<u64, Token>> {
    file.demarche_tokens()
        .map_err(usage)?
        .into_iter()
        .map(|(demarche, token)| {
            let token = Token::new(token.expose()).map_err(|e| {
                UsageError::new(format!(
                    "`[ds.tokens]`: the token of démarche `{demarche}` is unusable: {e}"
                ))
            })?;
            Ok((demarche, token))
        })
        .collect()
}

/// What downloads may reach and cost: each flag given explicitly, else the file's key, else the
/// flag's default. A bad `allow_file_hosts` entry is a usage error naming it.
fn download_policy(
    args: &ServeArgs,
    file: &ConfigFile,
    ds: &DsArgs,
) -> anyhow::Result<FetchOptions> {
    let allow_file_hosts = if args.explicit(FROM_SYNC[2]) {
        args.allow_file_hosts.clone()
    } else {
        file.allow_file_hosts
            .iter()
            .map(|entry| entry.parse::<AllowedHost>())
            .collect::<Result<_, _>>()
            .map_err(|e| UsageError::new(format!("`allow_file_hosts`: {e}")))?
    };
    let or_file = |id: &str, flag: u64, file: Option<u64>| {
        if args.explicit(id) {
            flag
        } else {
            file.unwrap_or(flag)
        }
    };
    let base = or_file(
        FROM_SYNC[3],
        args.download_deadline_base,
        file.download_deadline_base_secs,
    );
    let rate = or_file(
        FROM_SYNC[4],
        args.download_min_rate,
        file.download_min_rate_kib,
    );
    Ok(FetchOptions {
        api_endpoint: Some(ds.endpoint.clone()),
        allow_file_hosts,
        deadline_base: Duration::from_secs(base),
        min_rate: rate.saturating_mul(1024),
        ..FetchOptions::default()
    })
}

/// The DS client flags, each given explicitly (command line or environment) or else from the
/// config file's `[ds]` section, or else clap's default. File values get the flags' checks.
fn resolve_ds_args(args: &ServeArgs, file: &ConfigFile) -> anyhow::Result<DsArgs> {
    let mut ds = args.ds.clone();
    let from_file = |id: &str| !args.explicit(id);
    let section = &file.ds;
    if let Some(endpoint) = &section.endpoint
        && from_file("endpoint")
    {
        ds.endpoint = endpoint.clone();
    }
    if let Some(n) = section.connect_timeout_secs
        && from_file("connect_timeout")
    {
        ds.connect_timeout = at_least_one("[ds] connect_timeout_secs", n)?;
    }
    if let Some(n) = section.read_timeout_secs
        && from_file("read_timeout")
    {
        ds.read_timeout = at_least_one("[ds] read_timeout_secs", n)?;
    }
    if let Some(n) = section.requests_per_minute
        && from_file("requests_per_minute")
    {
        ds.requests_per_minute = n;
    }
    if let Some(n) = section.max_attempts
        && from_file("max_attempts")
    {
        ds.max_attempts = within("[ds] max_attempts", n, 1..=100)?;
    }
    if let Some(n) = section.page_size
        && from_file("page_size")
    {
        ds.page_size = within("[ds] page_size", n, 1..=100)?;
    }
    Ok(ds)
}

/// The DS client configuration, its token from `--token-file`, else `DS_API_TOKEN`, else the
/// config file's `[ds] token_file`, else its `[ds] token`.
fn client_config(ds: &DsArgs, file: &ConfigFile) -> anyhow::Result<ClientConfig> {
    let fallback = match (&file.ds.token_file, &file.ds.token) {
        (Some(path), _) => TokenFallback::File(path),
        (None, Some(token)) => TokenFallback::Value {
            token: token.expose(),
            origin: "`[ds] token` in the config file",
        },
        (None, None) => TokenFallback::None,
    };
    settings::client_config_with(ds, fallback)
}

fn at_least_one(key: &str, n: u64) -> anyhow::Result<u64> {
    if n >= 1 {
        Ok(n)
    } else {
        Err(UsageError::new(format!("config file: `{key}` must be at least 1")).into())
    }
}

fn within<T: PartialOrd + std::fmt::Display>(
    key: &str,
    n: T,
    range: std::ops::RangeInclusive<T>,
) -> anyhow::Result<T> {
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(UsageError::new(format!(
            "config file: `{key}` is `{n}`; it must be between {} and {}",
            range.start(),
            range.end()
        ))
        .into())
    }
}

/// `--api-tokens-file`, else `DSFILES_API_TOKENS`, else the config file's; at least one.
fn resolve_api_tokens(path: Option<&Path>, file: &ConfigFile) -> anyhow::Result<Vec<Secret>> {
    let tokens: Vec<Secret> = if let Some(path) = path {
        read_secret_lines(path).map_err(usage)?
    } else if let Some(raw) = env_secret(env::DSFILES_API_TOKENS)? {
        raw.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Secret::new)
            .collect()
    } else {
        file.api_tokens().map_err(usage)?
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

/// `--webhook-secret-file` (current, then previous), else the environment; `None` leaves the
/// config file's.
fn webhook_secrets_from_flags(path: Option<&Path>) -> anyhow::Result<Option<WebhookSecrets>> {
    if let Some(path) = path {
        let mut lines = read_secret_lines(path).map_err(usage)?.into_iter();
        return Ok(Some(WebhookSecrets {
            current: lines.next(),
            previous: lines.next(),
        }));
    }
    let current = env_secret(env::DSFILES_WEBHOOK_SECRET)?.map(Secret::new);
    let previous = env_secret(env::DSFILES_WEBHOOK_SECRET_PREVIOUS)?.map(Secret::new);
    Ok((current.is_some() || previous.is_some()).then_some(WebhookSecrets { current, previous }))
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
    }

    #[test]
    fn webhook_destinations_parse() {
        let parse = |args: &[&str]| {
            Harness::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
                .map(|h| h.serve.service.webhook_dest)
        };
        assert_eq!(
            parse(&["--webhook-dest", "12=s3://b/p"]).unwrap(),
            [(12, "s3://b/p".to_owned())]
        );
        for bad in ["12", "x=d", "12="] {
            assert!(parse(&["--webhook-dest", bad]).is_err(), "{bad}");
        }
    }

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        Harness::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .map(|h| h.serve)
    }

    /// Resolves `args` over the config file `toml` (which names a service token and a DS
    /// token, so that resolution succeeds).
    fn resolve_with(args: &[&str], toml: &str) -> anyhow::Result<Resolved> {
        let text = format!("api_tokens = [\"service-token\"]\n{toml}");
        let file = ConfigFile::from_toml(&text).unwrap();
        resolve(&parse(args).unwrap(), &file)
    }

    const FILE_DS: &str = r#"
        download_read_timeout_secs = 90
        jobs = 3
        [dest_options]
        region = "eu-west-3"
        fsync = "false"
        [ds]
        token = "file-token"
        endpoint = "http://127.0.0.1:9/api/v2/graphql"
        connect_timeout_secs = 5
        read_timeout_secs = 300
        requests_per_minute = 100
        max_attempts = 3
        page_size = 50
    "#;

    /// The download policy: `dsfiles sync`'s flags over the file's keys over the defaults; the
    /// DS endpoint's host is allowed; a bad allowed host is a usage error naming it.
    #[test]
    fn download_policy_comes_from_flags_then_the_file() {
        let toml = r#"
            allow_file_hosts = ["minio.local:9000", "10.0.0.5"]
            download_deadline_base_secs = 5
            download_min_rate_kib = 2
            [ds]
            token = "t"
            endpoint = "http://10.1.1.1:3000/api/v2/graphql"
        "#;
        let fetch = resolve_with(&[], toml).unwrap().fetch;
        let hosts: Vec<String> = fetch
            .allow_file_hosts
            .iter()
            .map(|h| h.to_string())
            .collect();
        assert_eq!(hosts, ["minio.local:9000", "10.0.0.5"]);
        assert_eq!(fetch.deadline_base, Duration::from_secs(5));
        assert_eq!(fetch.min_rate, 2048);
        assert_eq!(
            fetch.api_endpoint.map(|u| u.to_string()).as_deref(),
            Some("http://10.1.1.1:3000/api/v2/graphql")
        );
        let args = [
            "--allow-file-host",
            "files.local",
            "--download-deadline-base",
            "30",
            "--download-min-rate",
            "0",
        ];
        let fetch = resolve_with(&args, toml).unwrap().fetch;
        let hosts: Vec<String> = fetch
            .allow_file_hosts
            .iter()
            .map(|h| h.to_string())
            .collect();
        assert_eq!(hosts, ["files.local"]);
        assert_eq!(fetch.deadline_base, Duration::from_secs(30));
        assert_eq!(fetch.min_rate, 0);
        let bad = resolve_with(
            &[],
            "allow_file_hosts = [\"http://x/\"]\n[ds]\ntoken = \"t\"",
        );
        let err = bad.err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(
            err.contains("`allow_file_hosts`") && err.contains("`http://x/`"),
            "{err}"
        );
    }

    /// The file fills what neither a flag nor the environment gave; a flag wins over the file
    /// even when its value equals clap's default (clap says where each value came from).
    #[test]
    fn the_file_yields_to_explicit_flags_even_at_their_default_value() {
        let from_file = resolve_with(&[], FILE_DS).unwrap();
        assert_eq!(
            from_file.ds.endpoint.as_str(),
            "http://127.0.0.1:9/api/v2/graphql"
        );
        assert_eq!(from_file.ds.connect_timeout, Duration::from_secs(5));
        assert_eq!(from_file.ds.read_timeout, Duration::from_secs(300));
        assert_eq!(
            (
                from_file.ds.requests_per_minute,
                from_file.ds.max_attempts,
                from_file.ds.page_size
            ),
            (100, 3, 50)
        );
        assert_eq!(from_file.fetch.connect_timeout, Duration::from_secs(5));
        assert_eq!(from_file.fetch.read_timeout, Duration::from_secs(90));
        assert_eq!(from_file.server.sync_jobs, 3);
        assert_eq!(
            from_file.dest_options,
            [
                ("fsync".to_owned(), "false".to_owned()),
                ("region".to_owned(), "eu-west-3".to_owned())
            ]
        );

        let flags = resolve_with(
            &[
                "--endpoint",
                dsfiles_core::ds::DEFAULT_ENDPOINT,
                "--connect-timeout",
                "10",
                "--read-timeout",
                "120",
                "--requests-per-minute",
                "400",
                "--max-attempts",
                "8",
                "--page-size",
                "100",
                "--download-read-timeout",
                "60",
                "--jobs",
                "8",
                "--dest-option",
                "region=us-east-1",
                "--dest-option",
                "part_size=16MiB",
            ],
            FILE_DS,
        )
        .unwrap();
        let defaults = resolve_with(&[], "[ds]\ntoken = \"t\"").unwrap();
        assert_eq!(flags.ds.endpoint, defaults.ds.endpoint);
        assert_eq!(
            flags.ds.endpoint.as_str(),
            dsfiles_core::ds::DEFAULT_ENDPOINT
        );
        for resolved in [&flags, &defaults] {
            assert_eq!(resolved.ds.connect_timeout, Duration::from_secs(10));
            assert_eq!(resolved.ds.read_timeout, Duration::from_secs(120));
            assert_eq!(
                (
                    resolved.ds.requests_per_minute,
                    resolved.ds.max_attempts,
                    resolved.ds.page_size
                ),
                (400, 8, 100)
            );
            assert_eq!(resolved.fetch.connect_timeout, Duration::from_secs(10));
            assert_eq!(resolved.server.sync_jobs, 8);
        }
        // The defaults are the core's own download settings.
        assert_eq!(
            defaults.fetch.read_timeout,
            FetchOptions::default().read_timeout
        );
        assert_eq!(flags.fetch.read_timeout, Duration::from_secs(60));
        // Destination options merge by key, flags winning.
        assert_eq!(
            flags.dest_options,
            [
                ("fsync".to_owned(), "false".to_owned()),
                ("part_size".to_owned(), "16MiB".to_owned()),
                ("region".to_owned(), "us-east-1".to_owned())
            ]
        );
        assert!(defaults.dest_options.is_empty());
    }

    #[test]
    fn file_values_get_the_flags_checks() {
        for (toml, key) in [
            ("[ds]\npage_size = 0", "[ds] page_size"),
            ("[ds]\nmax_attempts = 101", "[ds] max_attempts"),
            (
                "[ds]\nconnect_timeout_secs = 0",
                "[ds] connect_timeout_secs",
            ),
            (
                "download_read_timeout_secs = 0\n[ds]",
                "download_read_timeout_secs",
            ),
        ] {
            let Err(err) = resolve_with(&[], &format!("{toml}\ntoken = \"t\"")) else {
                panic!("{toml}: accepted");
            };
            assert!(
                err.downcast_ref::<UsageError>().is_some(),
                "{toml}: a usage error"
            );
            assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
        }
        let err = parse(&["--dest-option", "no-equals-sign"]).unwrap_err();
        assert!(err.to_string().contains("KEY=VALUE"), "{err}");
        let err = parse(&["--download-read-timeout", "0"]).unwrap_err();
        assert!(err.to_string().contains("download-read-timeout"), "{err}");
    }

    /// `--token-file` > `DS_API_TOKEN` > `[ds] token_file` > `[ds] token`, all through
    /// `settings::client_config_with`. (Skipped where the environment holds a DS token.)
    #[test]
    fn the_ds_token_falls_back_to_the_config_file() {
        if std::env::var_os(crate::env_vars::DS_API_TOKEN).is_some() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, token: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("{token}\n")).unwrap();
            path.display().to_string()
        };
        let flag_file = write("flag", "flag-token");
        let file_file = write("file", "file-file-token");
        let token_of = |args: &[&str], toml: &str| {
            resolve_with(args, toml)
                .map(|r| r.ds.token.expose().to_owned())
                .map_err(|e| e.to_string())
        };
        let both = format!("[ds]\ntoken = \"file-token\"\ntoken_file = \"{file_file}\"");
        assert_eq!(
            token_of(&["--token-file", &flag_file], &both).unwrap(),
            "flag-token"
        );
        assert_eq!(token_of(&[], &both).unwrap(), "file-file-token");
        assert_eq!(
            token_of(&[], "[ds]\ntoken = \"file-token\"").unwrap(),
            "file-token"
        );
        let err = token_of(&[], "[ds]\ntoken = \"two words\"").unwrap_err();
        assert!(
            err.contains("`[ds] token` in the config file") && !err.contains("two words"),
            "{err}"
        );
        assert!(token_of(&[], "").unwrap_err().contains("no DS API token"));
    }
}
