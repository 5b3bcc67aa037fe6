//! Client settings and dossier filters: typed values, no environment reading here.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{Error, Token};

/// DS's production GraphQL endpoint. Other instances: Démarche Numérique
/// (`https://demarche.numerique.gouv.fr/api/v2/graphql`, the platform's new name) and
/// mes-démarches (`https://www.mes-demarches.gov.pf/api/v2/graphql`).
pub const DEFAULT_ENDPOINT: &str = "https://www.demarches-simplifiees.fr/api/v2/graphql";

/// DS's maximum page size for connections.
pub const MAX_PAGE_SIZE: u32 = 100;

/// How the client talks to DS. Build with [`ClientConfig::new`], then adjust fields.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub endpoint: url::Url,
    pub token: Token,
    /// Attempts per request, first included (the bounded retry loop). At least 1.
    pub max_attempts: u32,
    /// Client-side limit per client (all clones); 0 disables it.
    pub requests_per_minute: u32,
    /// Dossiers per page, 1..=100. Halved on GraphQL timeouts, grown back afterwards.
    pub page_size: u32,
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response.
    pub read_timeout: Duration,
    /// First backoff ceiling; doubles per attempt (full jitter).
    pub backoff_base: Duration,
    /// Longest wait between two attempts, including waits DS asks for on 429: a
    /// `RateLimit-Reset` or `Retry-After` further away is waited for this long, then the
    /// request is tried again (another 429 costs one more of `max_attempts`).
    pub backoff_max: Duration,
    /// Largest GraphQL answer accepted, in bytes, counted after gzip decompression while
    /// the body streams in; beyond it the request fails with
    /// [`Error::ResponseTooLarge`] (a listing first asks again with smaller pages). At
    /// least 1; default [`DEFAULT_MAX_RESPONSE_BYTES`].
    pub max_response_bytes: u64,
    pub user_agent: String,
}

/// Default of [`ClientConfig::max_response_bytes`]: 256 MiB, about fifty times DS's
/// largest realistic page (100 dossiers with their champs and file metadata), yet small
/// enough that a hostile or broken answer (a gzip bomb) cannot exhaust memory.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

impl ClientConfig {
    /// The defaults: 8 attempts, 400 requests/minute, pages of 100, 10 s connect timeout,
    /// 120 s read timeout, backoff from 500 ms up to 60 s, answers up to 256 MiB.
    pub fn new(endpoint: url::Url, token: Token) -> Self {
        ClientConfig {
            endpoint,
            token,
            max_attempts: 8,
            requests_per_minute: 400,
            page_size: MAX_PAGE_SIZE,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            user_agent: concat!("dsfiles/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let invalid = |reason: String| Err(Error::InvalidConfig { reason });
        if !matches!(self.endpoint.scheme(), "http" | "https") {
            return invalid(format!(
                "endpoint `{}` is not an http(s) URL",
                self.endpoint
            ));
        }
        if self.max_attempts == 0 {
            return invalid("`max_attempts` must be at least 1".to_owned());
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return invalid(format!(
                "`page_size` must be between 1 and {MAX_PAGE_SIZE}, not `{}`",
                self.page_size
            ));
        }
        if self.connect_timeout.is_zero() || self.read_timeout.is_zero() {
            return invalid("timeouts must be longer than zero".to_owned());
        }
        if self.max_response_bytes == 0 {
            return invalid("`max_response_bytes` must be at least 1".to_owned());
        }
        if self.backoff_base > self.backoff_max {
            return invalid("`backoff_base` must not exceed `backoff_max`".to_owned());
        }
        Ok(())
    }
}

/// A dossier's state, as DS's `DossierState` enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DossierState {
    EnConstruction,
    EnInstruction,
    Accepte,
    Refuse,
    SansSuite,
}

impl DossierState {
    pub const ALL: [DossierState; 5] = [
        DossierState::EnConstruction,
        DossierState::EnInstruction,
        DossierState::Accepte,
        DossierState::Refuse,
        DossierState::SansSuite,
    ];

    /// The GraphQL enum value (`en_construction`, ...).
    pub fn as_graphql(self) -> &'static str {
        match self {
            DossierState::EnConstruction => "en_construction",
            DossierState::EnInstruction => "en_instruction",
            DossierState::Accepte => "accepte",
            DossierState::Refuse => "refuse",
            DossierState::SansSuite => "sans_suite",
        }
    }
}

impl fmt::Display for DossierState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_graphql())
    }
}

impl FromStr for DossierState {
    type Err = Error;

    /// Parses the GraphQL value (`en_construction`); `-` is accepted for `_`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let normalized = s.trim().replace('-', "_").to_ascii_lowercase();
        DossierState::ALL
            .into_iter()
            .find(|state| state.as_graphql() == normalized)
            .ok_or_else(|| Error::InvalidConfig {
                reason: format!(
                    "unknown dossier state `{s}` (expected one of: en_construction, en_instruction, accepte, refuse, sans_suite)"
                ),
            })
    }
}

/// Which dossiers to list, and which optional parts of them to ask for.
#[derive(Clone, Debug, Default)]
pub struct DossierFilter {
    /// Only dossiers updated since (DS then orders by update time).
    pub updated_since: Option<DateTime<Utc>>,
    pub created_since: Option<DateTime<Utc>>,
    pub state: Option<DossierState>,
    pub archived: Option<bool>,
    /// List through `groupeInstructeur(number)` instead of the démarche.
    pub groupe_instructeur: Option<u64>,
    /// Non-empty: fetch exactly these dossiers with `dossier(number)`; the other filters
    /// (dates, state, archived, groupe) then do not apply.
    pub dossiers: Vec<u64>,
    /// Ask for `Dossier.pdf` and `Dossier.geojson` (`$includeGenerated`).
    pub include_generated: bool,
    /// Ask for API Entreprise attestations (`$includeEntreprise`).
    pub include_entreprise: bool,
    /// Which of the dossier's values (besides its files) to ask for; all by default.
    pub fields: DossierFields,
    /// Start the listing after this DS cursor (a [`DossierBatch::resume`] or a connection's
    /// `endCursor`) instead of at the beginning. Only for connection listings: with
    /// `dossiers` the listing fails with [`Error::InvalidConfig`]. A cursor DS refuses gives
    /// [`Error::CursorRejected`].
    ///
    /// [`DossierBatch::resume`]: crate::DossierBatch::resume
    pub after: Option<String>,
}

/// Groups of a dossier's values, besides its files, that the dossier queries select only when
/// asked (`@include` in `queries/fragments.graphql`, one variable per group). What a file is
/// and what names it (labels, ids, dates, states) is always selected. [`DossierFields::ALL`]
/// (the default) selects everything: a caller that does not say gets the whole dossier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DossierFields {
    /// The démarche's title, service and revision (`$includeDemarche`).
    pub demarche: bool,
    /// The groupe instructeur (`$includeGroupe`).
    pub groupe: bool,
    /// The applicant, person or company (`$includeApplicant`).
    pub applicant: bool,
    /// Every champ's and annotation's `stringValue` (`$includeValues`).
    pub values: bool,
    /// Message senders and bodies, avis questions, answers and experts, the decision's
    /// motivation (`$includeExchanges`).
    pub exchanges: bool,
}

impl DossierFields {
    pub const ALL: DossierFields = DossierFields {
        demarche: true,
        groupe: true,
        applicant: true,
        values: true,
        exchanges: true,
    };
    pub const NONE: DossierFields = DossierFields {
        demarche: false,
        groupe: false,
        applicant: false,
        values: false,
        exchanges: false,
    };
}

impl Default for DossierFields {
    fn default() -> Self {
        DossierFields::ALL
    }
}

impl DossierFilter {
    /// The `$include…` variables of the dossier queries for this filter.
    pub(crate) fn include_variables(&self) -> serde_json::Map<String, serde_json::Value> {
        let f = self.fields;
        [
            ("includeGenerated", self.include_generated),
            ("includeEntreprise", self.include_entreprise),
            ("includeDemarche", f.demarche),
            ("includeGroupe", f.groupe),
            ("includeApplicant", f.applicant),
            ("includeValues", f.values),
            ("includeExchanges", f.exchanges),
        ]
        .into_iter()
        .map(|(name, on)| (name.to_owned(), serde_json::Value::Bool(on)))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_graphql_names() -> Result<(), Error> {
        for state in DossierState::ALL {
            assert_eq!(state.as_graphql().parse::<DossierState>()?, state);
        }
        assert_eq!(
            "en-instruction".parse::<DossierState>()?,
            DossierState::EnInstruction
        );
        let err = "ouvert"
            .parse::<DossierState>()
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("`ouvert`")));
        Ok(())
    }

    #[test]
    fn invalid_configs_are_refused_with_the_field_named() -> Result<(), Box<dyn std::error::Error>>
    {
        let base = ClientConfig::new(DEFAULT_ENDPOINT.parse()?, Token::new("t")?);
        assert!(base.validate().is_ok());
        type Change = fn(&mut ClientConfig);
        let cases: [(Change, &str); 5] = [
            (|c| c.max_response_bytes = 0, "max_response_bytes"),
            (|c| c.page_size = 0, "page_size"),
            (|c| c.page_size = 101, "page_size"),
            (|c| c.max_attempts = 0, "max_attempts"),
            (
                |c| c.backoff_base = std::time::Duration::from_secs(120),
                "backoff_base",
            ),
        ];
        for (change, field) in cases {
            let mut config = base.clone();
            change(&mut config);
            let message = config
                .validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(message.contains(field), "{field}: {message}");
        }
        let mut ftp = base.clone();
        ftp.endpoint = "ftp://example.org/graphql".parse()?;
        assert!(ftp.validate().is_err());
        Ok(())
    }
}
