//! The [`Client`]: one connection pool, one rate limiter and one set of counters, shared by
//! all clones.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::Stream;
use serde_json::Value;

use crate::error::Target;
use crate::limiter::RateLimiter;
use crate::pages::{self, DeletedDossier, DossierBatch};
use crate::queries::Operation;
use crate::stats::{Counters, Stats};
use crate::{ClientConfig, DossierFilter, Error};

/// A DS API client. Cheap to clone: clones share connections, the rate limiter and [`Stats`].
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) http: reqwest::Client,
    pub(crate) limiter: Option<RateLimiter>,
    pub(crate) stats: Counters,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config's token prints redacted.
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Validates `config` and builds the HTTP client: rustls, gzip, HTTP/2 when offered,
    /// keep-alive connection reuse, `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`/`NO_PROXY` from
    /// the environment, no redirects (a GraphQL POST is never redirected by DS).
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        config.validate()?;
        // reqwest is built without a bundled TLS provider: see dsfiles-sink's `tls` module,
        // of which this is the twin for the crates that do not depend on the sink.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.as_str())
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .gzip(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(Error::HttpClient)?;
        let limiter = RateLimiter::new(
            config.requests_per_minute,
            std::time::Duration::from_secs(60),
        );
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                http,
                limiter,
                stats: Counters::default(),
            }),
        })
    }

    /// All dossiers of démarche `demarche` matching `filter`, page by page (at most
    /// `page_size` dossiers in memory), deduplicated by number.
    ///
    /// With `filter.dossiers`, exactly those dossiers, one `dossier(number)` request each; a
    /// dossier of another démarche is an [`Error::OtherDemarche`], one DS does not find is in
    /// its batch's `missing` and the others follow. With
    /// `filter.groupe_instructeur`, the groupe's dossiers. The stream ends after an error.
    pub fn dossiers(
        &self,
        demarche: u64,
        filter: DossierFilter,
    ) -> impl Stream<Item = Result<DossierBatch, Error>> + Send + use<> {
        pages::dossiers(self.clone(), demarche, filter)
    }

    /// One dossier, fresh (new signed URLs). `Err(Error::NotFound)` when gone.
    ///
    /// Errors DS sends alongside the data (`invalid_null`, ...) are logged as warnings; use
    /// [`Client::dossiers`] with `filter.dossiers` to receive them as data.
    pub async fn dossier(&self, number: u64, filter: &DossierFilter) -> Result<Value, Error> {
        let (dossier, errors) = self.fetch_dossier(number, filter).await?;
        for error in &errors {
            tracing::warn!(dossier = number, error = %error, "DS sent an error with the dossier");
        }
        Ok(dossier)
    }

    /// Dossiers `numbers`, fresh (new signed URLs), many per request: aliased
    /// `dossier(number:)` fields, [`DOSSIERS_PER_REQUEST`](crate::DOSSIERS_PER_REQUEST) at
    /// most per request, each counted in [`Stats::api_calls`]. Meant for dossiers to look at
    /// again (pending virus scans, failed files, expired URLs).
    ///
    /// One entry per distinct number, in order: `Ok(Some(dossier))`; `Ok(None)` when DS
    /// reports the dossier `not_found` (deleted); `Err` with the error that concerns this
    /// dossier only, as [`Client::dossier`] would return it (e.g. [`Error::Unauthorized`]).
    /// The dossiers carry `demarche { number }`: checking the démarche is the caller's.
    /// `Err` for the whole call: what no single dossier explains (token, network, retries
    /// exhausted, a dossier too large alone).
    pub async fn dossiers_by_number(
        &self,
        numbers: &[u64],
        filter: &DossierFilter,
    ) -> Result<Vec<(u64, Result<Option<Value>, Error>)>, Error> {
        let mut settled = crate::by_number::fetch(self, numbers, filter).await?;
        // Settled out of order (errors first, halved batches): back to the caller's order.
        let position = |n: u64| numbers.iter().position(|&m| m == n);
        settled.sort_by_key(|(n, _)| position(*n));
        Ok(settled)
    }

    /// The labels of `demarche`'s root champs and annotations in its active revision.
    pub async fn revision_labels(&self, demarche: u64) -> Result<RevisionLabels, Error> {
        let variables = serde_json::json!({ "demarche": demarche });
        let answer = self
            .inner
            .execute(
                Operation::DemarcheRevision,
                &variables,
                Target::Demarche(demarche),
                false,
            )
            .await?;
        let revision = &answer.data["demarche"]["activeRevision"];
        let labels = |field: &str| -> Result<Vec<String>, Error> {
            let descriptors =
                revision[field]
                    .as_array()
                    .ok_or_else(|| Error::UnexpectedResponse {
                        operation: Operation::DemarcheRevision.name(),
                        reason: format!(
                            "`activeRevision.{field}` of démarche `{demarche}` is not a list"
                        ),
                    })?;
            Ok(descriptors
                .iter()
                .filter_map(|d| d["label"].as_str().map(str::to_owned))
                .collect())
        };
        Ok(RevisionLabels {
            champs: labels("champDescriptors")?,
            annotations: labels("annotationDescriptors")?,
        })
    }

    /// Dossiers deleted from `demarche` since `since` (all when `None`), page by page.
    pub fn deleted_dossiers(
        &self,
        demarche: u64,
        since: Option<DateTime<Utc>>,
    ) -> impl Stream<Item = Result<Vec<DeletedDossier>, Error>> + Send + use<> {
        pages::deleted_dossiers(self.clone(), demarche, since)
    }

    /// The GraphQL endpoint this client talks to (its host is where DS lives; file hosts are
    /// judged against it by the core's download policy).
    pub fn endpoint(&self) -> &url::Url {
        &self.inner.config.endpoint
    }

    /// A snapshot of the counters shared by all clones of this client.
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot()
    }

    /// `dossier(number)` and the errors DS sent along.
    pub(crate) async fn fetch_dossier(
        &self,
        number: u64,
        filter: &DossierFilter,
    ) -> Result<(Value, Vec<crate::GraphQlError>), Error> {
        let mut variables = filter.include_variables();
        variables.insert("number".to_owned(), number.into());
        let variables = serde_json::Value::Object(variables);
        let answer = self
            .inner
            .execute(
                Operation::Dossier,
                &variables,
                Target::Dossier(number),
                false,
            )
            .await?;
        let mut data = answer.data;
        match data.get_mut("dossier").map(Value::take) {
            Some(dossier @ Value::Object(_)) => Ok((dossier, answer.errors)),
            _ => Err(Error::UnexpectedResponse {
                operation: Operation::Dossier.name(),
                reason: format!("`data.dossier` of dossier `{number}` is not an object"),
            }),
        }
    }
}

/// The labels of a démarche's root champs and annotations ([`Client::revision_labels`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevisionLabels {
    pub champs: Vec<String>,
    pub annotations: Vec<String>,
}
