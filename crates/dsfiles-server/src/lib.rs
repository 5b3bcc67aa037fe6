//! dsfiles-server owns the HTTP front end of dsfiles: the axum [`router`], [`serve`] with
//! graceful shutdown, sync jobs (queue, bounded concurrency, cancellation, persisted
//! history), Server-Sent Events, DS webhooks, metrics and the OpenAPI document.
//!
//! **Architecture invariant:** this crate holds no pipeline logic. What to list, download,
//! verify or skip is decided by `dsfiles-core`, reached only through the [`Pipeline`] trait
//! ([`CorePipeline`] in production). The service never returns or logs a secret: tokens and
//! webhook secrets are [`Secret`]s, routes are logged by their template, never their raw path.
//!
//! ```no_run
//! # async fn demo(config: dsfiles_server::ServerConfig, pipeline: std::sync::Arc<dyn dsfiles_server::Pipeline>) -> Result<(), dsfiles_server::Error> {
//! let state = dsfiles_server::AppState::new(config, pipeline)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.map_err(dsfiles_server::Error::Serve)?;
//! dsfiles_server::serve(listener, state, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod accept;
pub mod api;
mod config;
mod core_pipeline;
mod error;
mod files;
mod jobs;
mod metrics;
mod openapi;
mod pipeline;
mod routes;
mod schedules;
pub mod seda_jobs;
mod streams;
mod webhooks;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;

pub use config::{
    AllowList, ConfigFile, DatabaseSettings, DestError, Destination, DsSection, Limits,
    LimitsSection, Secret, ServerConfig, WebhookSecrets, WebhooksSection, read_secret_lines,
};
pub use core_pipeline::CorePipeline;
pub use error::{ApiError, Error};
pub use jobs::postgres as jobdb;
pub use pipeline::{
    DsStats, PagedFile, Pipeline, PipelineError, PipelineErrorKind, ProgressEvent, ProgressUpdate,
    SyncOutcome, SyncProgress,
};

use crate::jobs::{Capacity, JobManager, JobService, SharedJobs, Store, Timings};
use crate::metrics::Metrics;
use crate::schedules::{Scheduler, Schedules};
use crate::streams::StreamSlots;
use crate::webhooks::Dedup;

/// Everything the handlers share: settings, the job manager, metrics, webhook deduplication.
/// Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: ServerConfig,
    jobs: JobService,
    metrics: Arc<Metrics>,
    dedup: Dedup,
    streams: StreamSlots,
    /// Fires when the service starts shutting down (ends SSE streams, fails readiness).
    shutdown: CancellationToken,
    schedules: Schedules,
    /// Starts the schedules' runs; stops with `shutdown`.
    scheduler: Scheduler,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.inner.config)
            .field("jobs", &self.inner.jobs)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Validates `config`, loads the job history from its state directory (unfinished jobs
    /// come back `cancelled` or `failed: interrupted`) and starts the history writer. Must be
    /// called inside a Tokio runtime. With `config.database`, use [`AppState::open`].
    pub fn new(mut config: ServerConfig, pipeline: Arc<dyn Pipeline>) -> Result<AppState, Error> {
        config.validate()?;
        if config.database.is_some() {
            return Err(Error::Config(
                "a service on a job database is opened with `AppState::open`".into(),
            ));
        }
        config.webhook_destinations = config.canonical_webhook_destinations()?;
        let metrics = Arc::new(Metrics::default());
        let (store, history) = Store::open(&config.state_dir, config.history_limit)?;
        let capacity = capacity(&config);
        let jobs = JobManager::new(pipeline, store, history, metrics.clone(), capacity);
        let schedules = schedules::open_local(&config)?;
        Ok(AppState::assemble(
            config,
            JobService::Local(jobs),
            metrics,
            schedules,
        ))
    }

    /// [`AppState::new`], or with `config.database` a replica on that PostgreSQL database:
    /// connects, applies the migrations and starts claiming jobs.
    pub async fn open(
        mut config: ServerConfig,
        pipeline: Arc<dyn Pipeline>,
    ) -> Result<AppState, Error> {
        let Some(database) = config.database.clone() else {
            return AppState::new(config, pipeline);
        };
        config.validate()?;
        config.webhook_destinations = config.canonical_webhook_destinations()?;
        let db = jobdb::JobDb::connect(&database.url, database.replica_id)
            .await?
            .with_lease(database.lease);
        let metrics = Arc::new(Metrics::default());
        let renew = database.lease / jobdb::RENEWALS_PER_LEASE;
        let timings = Timings {
            poll: jobs::POLL_EVERY.min(renew),
            renew,
            lease: database.lease,
        };
        let schedules = Schedules::Shared(db.clone());
        schedules::apply_config(&schedules, &config).await?;
        let shared = SharedJobs::start(db, pipeline, metrics.clone(), capacity(&config), timings);
        Ok(AppState::assemble(
            config,
            JobService::Shared(shared),
            metrics,
            schedules,
        ))
    }

    fn assemble(
        config: ServerConfig,
        jobs: JobService,
        metrics: Arc<Metrics>,
        schedules: Schedules,
    ) -> AppState {
        let streams = StreamSlots::new(
            config.api_tokens.len(),
            config.limits.max_sse_streams,
            config.limits.max_sse_streams_per_token,
        );
        let shutdown = CancellationToken::new();
        let scheduler = Scheduler::start(
            schedules.clone(),
            jobs.clone(),
            config.limits.max_queued_syncs,
            shutdown.clone(),
        );
        AppState {
            inner: Arc::new(Inner {
                config,
                jobs,
                metrics,
                dedup: Dedup::default(),
                streams,
                shutdown,
                schedules,
                scheduler,
            }),
        }
    }

    /// Stops the service's work: no new job starts, queued jobs are cancelled, running syncs
    /// are cancelled (the core leaves their manifests consistent), and this returns once they
    /// have ended and the history is on disk. [`serve`] calls it after the last connection.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        // No tick may queue a run once the jobs stop.
        self.inner.scheduler.stopped().await;
        self.inner.jobs.shutdown().await;
    }

    pub(crate) fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    pub(crate) fn jobs(&self) -> &JobService {
        &self.inner.jobs
    }

    pub(crate) fn schedules(&self) -> &Schedules {
        &self.inner.schedules
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub(crate) fn streams(&self) -> &StreamSlots {
        &self.inner.streams
    }

    pub(crate) fn dedup(&self) -> &Dedup {
        &self.inner.dedup
    }

    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
}

fn capacity(config: &ServerConfig) -> Capacity {
    Capacity {
        max_running: config.max_concurrent_syncs,
        max_queued: config.limits.max_queued_syncs,
        sync_jobs: config.sync_jobs,
        history_limit: config.history_limit,
    }
}

/// The service's routes (see `docs/http-api.md` and `GET /v1/openapi.json`) with its limits:
/// request body size, request timeout, bearer authentication on `/v1` (webhooks aside), and
/// one JSON error shape for every 4xx and 5xx.
pub fn router(state: AppState) -> Router {
    let config = state.config();
    let mut public = Router::new();
    let mut authed = Router::new();
    for route in routes::table() {
        if route.doc.auth {
            authed = authed.route(route.doc.path, route.handler);
        } else {
            public = public.route(route.doc.path, route.handler);
        }
    }
    let authed = authed.route_layer(middleware::from_fn_with_state(
        state.clone(),
        routes::require_token,
    ));
    public
        .merge(authed)
        .fallback(|| async { ApiError::not_found("no such route") })
        // Innermost first: each `layer` wraps everything above it.
        .layer(axum::extract::DefaultBodyLimit::max(config.body_limit))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            config.body_limit,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(middleware::from_fn(catch_panic))
        .layer(middleware::map_response(json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then stops accepting,
/// lets open requests finish (SSE streams end; at most the request timeout, then they are
/// cut), cancels running syncs and waits for them. Connections are capped and must make
/// progress (`limits`, see `accept`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let app = router(state.clone());
    let token = state.shutdown_token().clone();
    let signal = async move {
        tokio::select! {
            () = shutdown => {}
            () = token.cancelled() => {}
        }
        token.cancel();
    };
    let config = state.config();
    // Open requests get the time any request gets to be answered.
    let grace = config.request_timeout;
    accept::run(
        listener,
        app,
        &config.limits,
        grace,
        state.metrics().clone(),
        signal,
    )
    .await;
    state.shutdown().await;
    Ok(())
}

/// Logs and measures each request by its route template (the raw path may hold a secret)
/// and its method's label (see `metrics`: labels come from a fixed set).
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = metrics::method_label(request.method());
    let start = Instant::now();
    let response = next.run(request).await;
    let elapsed = start.elapsed();
    let status = response.status();
    state
        .metrics()
        .request(&route, method, status.as_u16(), elapsed);
    if status.is_server_error() {
        tracing::warn!(%method, %route, status = status.as_u16(), elapsed_ms = elapsed.as_millis() as u64, "request failed");
    } else {
        tracing::debug!(%method, %route, status = status.as_u16(), elapsed_ms = elapsed.as_millis() as u64, "request");
    }
    response
}

/// Answers the JSON 500 when a handler panics, instead of dropping the connection (job tasks
/// catch their own panics: see `jobs`).
async fn catch_panic(request: Request, next: Next) -> Response {
    match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => ApiError::internal("a request handler panicked").into_response(),
    }
}

/// Gives error answers produced outside the handlers (timeouts, body limits, wrong methods)
/// the JSON error shape.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let allow: Option<HeaderValue> = response.headers().get(header::ALLOW).cloned();
    let mut replaced = ApiError::from_status(status).into_response();
    if let Some(allow) = allow {
        replaced.headers_mut().insert(header::ALLOW, allow);
    }
    replaced
}
