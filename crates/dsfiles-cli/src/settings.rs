//! Settings shared by several subcommands, resolved once (flags > environment > defaults) into
//! the typed options the core and the DS client take. Nothing below this module reads the
//! environment or argv.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use clap::builder::PossibleValue;
use dsfiles_core::ds::{self, ClientConfig, DossierFilter, DossierState, Token};
use dsfiles_core::extract::Include;

use crate::env_vars;
use crate::exit::UsageError;

/// Defaults of the DS client knobs, as clap shows them. A unit test checks they are the
/// client's own defaults (`ClientConfig::new`).
const DEFAULT_REQUESTS_PER_MINUTE: u32 = 400;
const DEFAULT_MAX_ATTEMPTS: u32 = 8;
const DEFAULT_PAGE_SIZE: u32 = 100;
const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
const DEFAULT_READ_TIMEOUT_SECS: u64 = 120;

/// How to reach the DS GraphQL API: endpoint, token, rate limit, retries, timeouts.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "DS API")]
pub struct DsArgs {
    /// DS GraphQL endpoint.
    ///
    /// Other instances: Démarche Numérique (the platform's new name)
    /// `https://demarche.numerique.gouv.fr/api/v2/graphql`; mes-démarches (French Polynesia)
    /// `https://www.mes-demarches.gov.pf/api/v2/graphql`.
    #[arg(
        long,
        value_name = "URL",
        env = env_vars::DS_API_URL,
        hide_env_values = true,
        default_value = ds::DEFAULT_ENDPOINT,
    )]
    pub endpoint: url::Url,

    /// File holding the DS API token (first line). Without it, the token is read from the
    /// `DS_API_TOKEN` environment variable. The token is never printed or logged.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// Client-side limit on GraphQL requests per minute (DS allows 400 per token); 0 disables
    /// the limiter.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_REQUESTS_PER_MINUTE)]
    pub requests_per_minute: u32,

    /// Attempts per GraphQL request before giving up (429, 502/503/504, timeouts and
    /// connection errors are retried with exponential backoff and jitter).
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_MAX_ATTEMPTS,
        value_parser = clap::value_parser!(u32).range(1..=100),
    )]
    pub max_attempts: u32,

    /// Dossiers per page (DS caps it at 100); halved automatically when DS times out.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_PAGE_SIZE,
        value_parser = clap::value_parser!(u32).range(1..=100),
    )]
    pub page_size: u32,

    /// Seconds allowed to open a connection to the API (`sync` also applies it to file
    /// downloads).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_CONNECT_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_timeout: u64,

    /// Seconds the API may take to send the next bytes of a response (DS can take a while to
    /// compute a page; file downloads have their own `--download-read-timeout`).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_READ_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub read_timeout: u64,
}

/// The DS client configuration for `args`, with the token from `--token-file` or
/// `DS_API_TOKEN`. A missing or unreadable token is a [`UsageError`] (exit 2).
pub fn client_config(args: &DsArgs) -> anyhow::Result<ClientConfig> {
    client_config_with(args, TokenFallback::None)
}

/// Where the DS token comes from when neither `--token-file` nor `DS_API_TOKEN` gives one.
#[derive(Debug, Clone, Copy)]
pub enum TokenFallback<'a> {
    /// Nowhere: the token is missing.
    None,
    /// A file holding the token on its first line (`[ds] token_file` of `serve --config`).
    File(&'a Path),
    /// The token itself, and where it was written (for error messages; never the value).
    Value { token: &'a str, origin: &'a str },
}

/// The DS client configuration for `args`, with the token from `--token-file`, else
/// `DS_API_TOKEN`, else `fallback`. Every subcommand builds its client here.
pub fn client_config_with(
    args: &DsArgs,
    fallback: TokenFallback<'_>,
) -> anyhow::Result<ClientConfig> {
    let token = resolve_token_or(args.token_file.as_deref(), fallback)?;
    let mut config = ClientConfig::new(args.endpoint.clone(), token);
    config.requests_per_minute = args.requests_per_minute;
    config.max_attempts = args.max_attempts;
    config.page_size = args.page_size;
    config.connect_timeout = Duration::from_secs(args.connect_timeout);
    config.read_timeout = Duration::from_secs(args.read_timeout);
    config.user_agent = concat!("dsfiles/", env!("CARGO_PKG_VERSION")).to_owned();
    Ok(config)
}

/// `--token-file` wins over `DS_API_TOKEN`. Error messages name where the token was looked
/// for, never its value.
#[cfg(test)]
fn resolve_token(token_file: Option<&Path>) -> anyhow::Result<Token> {
    resolve_token_or(token_file, TokenFallback::None)
}

/// `--token-file` wins over `DS_API_TOKEN`, which wins over `fallback`. Error messages name
/// where the token was looked for, never its value.
fn resolve_token_or(
    token_file: Option<&Path>,
    fallback: TokenFallback<'_>,
) -> anyhow::Result<Token> {
    if let Some(path) = token_file {
        return token_from_file(path);
    }
    match std::env::var(env_vars::DS_API_TOKEN) {
        Ok(token) if !token.trim().is_empty() => {
            Token::new(token.trim()).context("the DS API token is unusable")
        }
        Ok(_) | Err(std::env::VarError::NotPresent) => match fallback {
            TokenFallback::File(path) => token_from_file(path),
            TokenFallback::Value { token, origin } => Token::new(token.trim()).map_err(|e| {
                UsageError::new(format!("the DS API token of {origin} is unusable: {e}")).into()
            }),
            TokenFallback::None => Err(UsageError::new(format!(
                "no DS API token: set `{}` or pass `--token-file PATH` \
                 (create one in DS under Mon profil → Jetons d'API)",
                env_vars::DS_API_TOKEN
            ))
            .into()),
        },
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(UsageError::new(format!("`{}` is not valid UTF-8", env_vars::DS_API_TOKEN)).into())
        }
    }
}

/// The token on the first line of `path`.
fn token_from_file(path: &Path) -> anyhow::Result<Token> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        UsageError::new(format!("cannot read token file `{}`: {e}", path.display()))
    })?;
    let token = text.lines().next().unwrap_or_default().trim();
    if token.is_empty() {
        return Err(UsageError::new(format!("token file `{}` is empty", path.display())).into());
    }
    Token::new(token).context("the DS API token is unusable")
}

/// Which dossiers and which optional files, shared by `list` and `sync` (each declares its own
/// `--since`, whose meaning differs).
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Filters")]
pub struct Filters {
    /// Only dossiers in this state.
    #[arg(long, value_name = "STATE")]
    pub state: Option<StateArg>,

    /// Only archived (`true`) or only non-archived (`false`) dossiers.
    #[arg(long, value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub archived: Option<bool>,

    /// Only dossiers created at or after DATE (RFC 3339, or YYYY-MM-DD meaning midnight UTC).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub created_since: Option<DateTime<Utc>>,

    /// Only the dossiers of this groupe instructeur (its number).
    #[arg(long, value_name = "N")]
    pub groupe_instructeur: Option<u64>,

    /// Only this dossier (repeatable): each is fetched with `dossier(number)`.
    #[arg(long = "dossier", value_name = "N")]
    pub dossiers: Vec<u64>,

    /// Optional files, comma-separated: `pdf` and `geojson` (the documents DS generates for each
    /// dossier; either value includes both; they have no checksum and are stored flagged
    /// `unverified`), `entreprise` (API Entreprise attestations).
    #[arg(long, value_name = "WHAT", value_delimiter = ',')]
    pub include: Vec<IncludeArg>,
}

impl Filters {
    /// The DS filter, with `updated_since` as given (sync passes `None`: the core derives it
    /// from `--since`).
    pub fn dossier_filter(&self, updated_since: Option<DateTime<Utc>>) -> DossierFilter {
        let include = self.include();
        DossierFilter {
            updated_since,
            created_since: self.created_since,
            state: self.state.map(StateArg::to_ds),
            archived: self.archived,
            groupe_instructeur: self.groupe_instructeur,
            dossiers: self.dossiers.clone(),
            include_generated: include.generated,
            include_entreprise: include.entreprise,
            after: None,
            // Decided by the core: what the layout and dossier.json use (`list`: none).
            ..DossierFilter::default()
        }
    }

    pub fn include(&self) -> Include {
        Include {
            generated: self
                .include
                .iter()
                .any(|i| matches!(i, IncludeArg::Pdf | IncludeArg::Geojson)),
            entreprise: self.include.contains(&IncludeArg::Entreprise),
        }
    }
}

/// `--state`: DS's `DossierState`, spelled in snake_case as in `dsfiles list` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateArg {
    EnConstruction,
    EnInstruction,
    Accepte,
    Refuse,
    SansSuite,
}

impl StateArg {
    fn to_ds(self) -> DossierState {
        match self {
            StateArg::EnConstruction => DossierState::EnConstruction,
            StateArg::EnInstruction => DossierState::EnInstruction,
            StateArg::Accepte => DossierState::Accepte,
            StateArg::Refuse => DossierState::Refuse,
            StateArg::SansSuite => DossierState::SansSuite,
        }
    }
}

impl clap::ValueEnum for StateArg {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            StateArg::EnConstruction,
            StateArg::EnInstruction,
            StateArg::Accepte,
            StateArg::Refuse,
            StateArg::SansSuite,
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            StateArg::EnConstruction => PossibleValue::new("en_construction"),
            StateArg::EnInstruction => PossibleValue::new("en_instruction"),
            StateArg::Accepte => PossibleValue::new("accepte"),
            StateArg::Refuse => PossibleValue::new("refuse"),
            StateArg::SansSuite => PossibleValue::new("sans_suite"),
        })
    }
}

/// `--include` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IncludeArg {
    /// The dossier PDF DS generates (with the GeoJSON).
    Pdf,
    /// The dossier GeoJSON DS generates (with the PDF).
    Geojson,
    /// API Entreprise attestations (fiscal and social).
    Entreprise,
}

/// A date for `--since` and `--created-since`: RFC 3339 (`2024-03-01T08:00:00+01:00`) or a
/// plain `YYYY-MM-DD`, meaning midnight UTC that day.
pub fn parse_date(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(s) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(format!(
        "`{s}` is not a date: use YYYY-MM-DD (midnight UTC) or RFC 3339 such as 2024-03-01T08:00:00+01:00"
    ))
}

#[cfg(test)]
mod tests;
