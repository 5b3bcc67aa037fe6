//! The route table (one list, used by both the router and the OpenAPI document) and the
//! handlers of the sync, health and metrics routes.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Extension, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use futures::Stream;
use serde::Deserialize;

use crate::api::{
    BusyBody, ConflictBody, ConflictError, DestinationBusy, JobList, JobRecord, JobState, Since,
    SyncRequest, SyncSpec, Trigger,
};
use crate::config::DestError;
use crate::config::ServerConfig;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::jobs::{CancelError, SubmitError, Watch};
use crate::metrics::Limit;
use crate::streams::{Caller, Full, StreamSlot};
use crate::{AppState, files, openapi, schedules, webhooks};

mod seda;

/// What the OpenAPI document says about a route.
#[derive(Debug, Clone)]
pub(crate) struct RouteDoc {
    pub method: Method,
    /// axum's template (`{id}`), which is also OpenAPI's.
    pub path: &'static str,
    pub auth: bool,
    pub operation_id: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
}

pub(crate) struct Route {
    pub doc: RouteDoc,
    pub handler: MethodRouter<AppState>,
}

/// Every route of the service, by tag.
pub(crate) fn table() -> Vec<Route> {
    [
        operations_routes(),
        syncs_routes(),
        seda_routes(),
        schedules_routes(),
        files_routes(),
        webhooks_routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// What a route's table line says: method, path, behind the token, operationId, summary, tag.
type Doc = (
    Method,
    &'static str,
    bool,
    &'static str,
    &'static str,
    &'static str,
);

fn route(
    (method, path, auth, operation_id, summary, tag): Doc,
    handler: MethodRouter<AppState>,
) -> Route {
    let doc = RouteDoc {
        method,
        path,
        auth,
        operation_id,
        summary,
        tag,
    };
    Route { doc, handler }
}

/// Probes, metrics and this document.
fn operations_routes() -> Vec<Route> {
    vec![
        route(
            (
                Method::GET,
                "/healthz",
                false,
                "healthz",
                "Liveness: the process answers.",
                "operations",
            ),
            get(healthz),
        ),
        route(
            (
                Method::GET,
                "/readyz",
                false,
                "readyz",
                "Readiness: 503 while shutting down.",
                "operations",
            ),
            get(readyz),
        ),
        route(
            (
                Method::GET,
                "/metrics",
                false,
                "metrics",
                "Prometheus metrics (text format).",
                "operations",
            ),
            get(metrics),
        ),
        route(
            (
                Method::GET,
                "/v1/openapi.json",
                true,
                "openapi",
                "This OpenAPI document.",
                "operations",
            ),
            get(openapi_json),
        ),
    ]
}

/// Sync jobs.
fn syncs_routes() -> Vec<Route> {
    vec![
        route(
            (
                Method::POST,
                "/v1/syncs",
                true,
                "createSync",
                "Queue a sync of a démarche into a destination.",
                "syncs",
            ),
            post(create_sync),
        ),
        route(
            (
                Method::GET,
                "/v1/syncs",
                true,
                "listSyncs",
                "Recent sync jobs, newest first.",
                "syncs",
            ),
            get(list_syncs),
        ),
        route(
            (
                Method::GET,
                "/v1/syncs/{id}",
                true,
                "getSync",
                "One sync job: state, counters, failures.",
                "syncs",
            ),
            get(get_sync),
        ),
        route(
            (
                Method::DELETE,
                "/v1/syncs/{id}",
                true,
                "cancelSync",
                "Cancel a queued or running sync job.",
                "syncs",
            ),
            delete(cancel_sync),
        ),
        route(
            (
                Method::GET,
                "/v1/syncs/{id}/events",
                true,
                "syncEvents",
                "Progress of a sync job as Server-Sent Events.",
                "syncs",
            ),
            get(sync_events),
        ),
    ]
}

/// Seda (archival package) jobs: the sync handlers answer any job id.
fn seda_routes() -> Vec<Route> {
    vec![
        route(
            (
                Method::POST,
                "/v1/seda",
                true,
                "createSeda",
                "Queue a seda job: SEDA 2.2 packages of what a sync stored, into an output.",
                "seda",
            ),
            post(seda::create_seda),
        ),
        route(
            (
                Method::GET,
                "/v1/seda/{id}",
                true,
                "getSeda",
                "One job (as `GET /v1/syncs/{id}`): state, counters, failures, the seda counts.",
                "seda",
            ),
            get(get_sync),
        ),
        route(
            (
                Method::DELETE,
                "/v1/seda/{id}",
                true,
                "cancelSeda",
                "Cancel a queued or running job (as `DELETE /v1/syncs/{id}`).",
                "seda",
            ),
            delete(cancel_sync),
        ),
        route(
            (
                Method::GET,
                "/v1/seda/{id}/events",
                true,
                "sedaEvents",
                "Progress of a job as Server-Sent Events (as `GET /v1/syncs/{id}/events`).",
                "seda",
            ),
            get(sync_events),
        ),
    ]
}

/// Schedules: syncs the service starts on its own.
fn schedules_routes() -> Vec<Route> {
    vec![
        route(
            (
                Method::GET,
                "/v1/schedules",
                true,
                "listSchedules",
                "Every schedule, by name.",
                "schedules",
            ),
            get(schedules::routes::list),
        ),
        route(
            (
                Method::GET,
                "/v1/schedules/{name}",
                true,
                "getSchedule",
                "One schedule: its sync, period, next tick and latest run.",
                "schedules",
            ),
            get(schedules::routes::get),
        ),
        route(
            (
                Method::PUT,
                "/v1/schedules/{name}",
                true,
                "putSchedule",
                "Create or replace a schedule: a sync started every period.",
                "schedules",
            ),
            put(schedules::routes::put),
        ),
        route(
            (
                Method::DELETE,
                "/v1/schedules/{name}",
                true,
                "deleteSchedule",
                "Delete a schedule (its jobs stay in the history).",
                "schedules",
            ),
            delete(schedules::routes::delete),
        ),
    ]
}

/// File records straight from DS.
fn files_routes() -> Vec<Route> {
    vec![route(
        (
            Method::GET,
            "/v1/demarches/{demarche}/files",
            true,
            "listFiles",
            "Page through the file records of a démarche (nothing is downloaded).",
            "files",
        ),
        get(files::list_files),
    )]
}

/// DS webhooks.
fn webhooks_routes() -> Vec<Route> {
    vec![
        route(
            (
                Method::POST,
                "/v1/webhooks/ds",
                false,
                "dsWebhook",
                "DS webhook (signed JSON).",
                "webhooks",
            ),
            post(webhooks::signed),
        ),
        route(
            (
                Method::POST,
                "/v1/webhooks/ds/{secret}",
                false,
                "dsWebhookLegacy",
                "Legacy DS webhook (form-encoded, secret in the path).",
                "webhooks",
            ),
            post(webhooks::legacy),
        ),
    ]
}

/// `Authorization: Bearer <service token>`, compared in constant time with every configured
/// token.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(presented) = presented else {
        return ApiError::unauthorized("missing `Authorization: Bearer <token>` header")
            .into_response();
    };
    // Check every token (no early exit) so the timing says nothing about which matched.
    let matched =
        state
            .config()
            .api_tokens
            .iter()
            .enumerate()
            .fold(None, |found, (i, token)| {
                match (found, token.matches(presented.as_bytes())) {
                    (None, true) => Some(i),
                    (found, _) => found,
                }
            });
    let Some(caller) = matched else {
        return ApiError::unauthorized("invalid API token").into_response();
    };
    request.extensions_mut().insert(Caller(caller));
    next.run(request).await
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.shutdown_token().is_cancelled() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the service is shutting down",
        )
        .into_response();
    }
    axum::Json(serde_json::json!({"status": "ready"})).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let counts = match state.jobs().count_by_state().await {
        Ok(counts) => counts,
        Err(err) => return database_unavailable(&err).into_response(),
    };
    let mut text = state
        .metrics()
        .render(counts, state.jobs().pipeline().ds_stats());
    match state.schedules().list().await {
        Ok(list) => crate::metrics::render_schedules(&mut text, &list),
        Err(err) => return database_unavailable(&err).into_response(),
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

async fn openapi_json() -> impl IntoResponse {
    axum::Json(openapi::document())
}

/// Maps a refused destination to 422 (malformed) or 403 (outside the allow-list).
pub(crate) fn dest_error(err: DestError) -> ApiError {
    match err {
        DestError::Invalid { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_destination",
            err.to_string(),
        ),
        DestError::NotAllowed { .. } => ApiError::new(
            StatusCode::FORBIDDEN,
            "destination_not_allowed",
            err.to_string(),
        ),
    }
}

fn shutting_down() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "the service is shutting down",
    )
}

async fn create_sync(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SyncRequest>,
) -> Result<Response, ApiError> {
    let spec = sync_spec(state.config(), &request, state.jobs().sync_jobs())?;
    // A job of this service first (its own lease would otherwise look like another writer's),
    // then a lease held by another writer; `submit` checks the first again, atomically.
    let active = (state.jobs().active(spec.demarche, &spec.dest).await)
        .map_err(|e| database_unavailable(&e))?;
    if let Some(existing) = active {
        return Ok(conflict(&existing));
    }
    if !spec.break_lease
        && let Some(busy) = lease_holder(&state, &spec).await
    {
        return Ok(destination_busy(busy));
    }
    match state.jobs().submit(spec, Trigger::Api).await {
        Ok(record) => Ok(accepted(&record)),
        Err(SubmitError::Conflict(existing)) => Ok(conflict(&existing)),
        Err(SubmitError::QueueFull { max_queued }) => Err(queue_full(&state, max_queued)),
        Err(SubmitError::ShuttingDown) => Err(shutting_down()),
        Err(SubmitError::Unavailable(details)) => Err(database_unavailable(&details)),
    }
}

/// The job a `request` describes: validated, its destination inside the allow-list and
/// canonical; `jobs` downloads at once. A schedule's runs are built by this too (`schedules`).
pub(crate) fn sync_spec(
    config: &ServerConfig,
    request: &SyncRequest,
    jobs: usize,
) -> Result<SyncSpec, ApiError> {
    request.validate().map_err(ApiError::invalid)?;
    let dest = config.allow_dest.check(&request.dest).map_err(dest_error)?;
    let mut include = request.include.clone();
    include.sort();
    include.dedup();
    let mut dossiers = request.dossiers.clone();
    dossiers.sort_unstable();
    dossiers.dedup();
    Ok(SyncSpec {
        demarche: request.demarche,
        dest: dest.canonical(),
        since: request.since.unwrap_or(Since::Auto),
        include,
        dossiers,
        jobs,
        break_lease: request.break_lease,
        layout: request.layout.clone(),
        data_layout: request.data_layout.clone(),
        no_data: request.no_data,
        seda: None,
    })
}

/// 503 when the job database (`--database-url`) does not answer; the details go to the log.
pub(crate) fn database_unavailable(details: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %details, "the job database did not answer");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
        "the job database did not answer; try again later",
    )
}

/// Seconds a client refused by a full queue should wait: syncs take minutes, polling faster
/// only adds load.
const QUEUE_RETRY_AFTER: u64 = 30;

/// 429 for a sync refused by `limits.max_queued_syncs` (counted).
pub(crate) fn queue_full(state: &AppState, max_queued: usize) -> ApiError {
    state.metrics().refused(Limit::QueuedSyncs);
    ApiError::too_many(
        "queue_full",
        format!(
            "`{max_queued}` syncs are already queued (`limits.max_queued_syncs`); try again later"
        ),
        QUEUE_RETRY_AFTER,
    )
}

fn accepted(record: &JobRecord) -> Response {
    let mut response = (StatusCode::ACCEPTED, axum::Json(record)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/syncs/{}", record.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn conflict(existing: &JobRecord) -> Response {
    let message = format!(
        "démarche `{}` is already being synced into `{}` by job `{}`",
        existing.demarche, existing.dest, existing.id
    );
    conflict_response("sync_in_progress", message, existing)
}

/// 409 `code`: the job `existing` already holds what the request wants.
fn conflict_response(code: &str, message: String, existing: &JobRecord) -> Response {
    let body = ConflictBody {
        error: ConflictError {
            code,
            message,
            job_id: &existing.id,
            job_state: existing.state,
        },
    };
    (StatusCode::CONFLICT, axum::Json(body)).into_response()
}

/// How long `POST /v1/syncs` waits for the destination's lease to be read.
const LEASE_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Another writer's live lease on the spec's démarche and destination, if any. A lease that
/// cannot be read in time does not refuse the request: the job takes (or fails to take) the
/// lease itself, and says so in its error.
async fn lease_holder(state: &AppState, spec: &SyncSpec) -> Option<DestinationBusy> {
    let check = state.jobs().pipeline().check_lease(spec);
    match tokio::time::timeout(LEASE_CHECK_TIMEOUT, check).await {
        Ok(Ok(busy)) => busy,
        Ok(Err(e)) => {
            tracing::warn!(demarche = spec.demarche, dest = %spec.dest, "cannot read the destination lease: {e}");
            None
        }
        Err(_) => {
            tracing::warn!(demarche = spec.demarche, dest = %spec.dest, "the destination lease could not be read in {LEASE_CHECK_TIMEOUT:?}");
            None
        }
    }
}

/// 409 `destination_busy`: another writer holds the lease (named in the body).
fn destination_busy(busy: DestinationBusy) -> Response {
    (StatusCode::CONFLICT, axum::Json(BusyBody { error: busy })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
    state: Option<JobState>,
    /// Only the runs of this schedule.
    schedule: Option<String>,
}

pub(crate) const MAX_LIST: usize = 1000;

async fn list_syncs(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIST {
        return Err(ApiError::invalid(format!(
            "`limit` must be between 1 and {MAX_LIST}, got `{limit}`"
        )));
    }
    let jobs = state
        .jobs()
        .recent(limit, query.state, query.schedule.as_deref())
        .await
        .map_err(|e| database_unavailable(&e))?;
    Ok(axum::Json(JobList { jobs }).into_response())
}

fn job_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no sync job `{}`", truncate(id)))
}

/// Echoes at most 64 characters of a client-supplied id.
fn truncate(id: &str) -> String {
    id.chars().take(64).collect()
}

async fn get_sync(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let record = state
        .jobs()
        .get(&id)
        .await
        .map_err(|e| database_unavailable(&e))?
        .ok_or_else(|| job_not_found(&id))?;
    Ok(axum::Json(record).into_response())
}

async fn cancel_sync(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    match state.jobs().cancel(&id).await {
        Ok(record) => Ok((StatusCode::ACCEPTED, axum::Json(record)).into_response()),
        Err(CancelError::NotFound) => Err(job_not_found(&id)),
        Err(CancelError::Finished(record)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_finished",
            format!(
                "sync job `{}` already ended `{}`",
                record.id,
                record.state.as_str()
            ),
        )),
        Err(CancelError::Unavailable(details)) => Err(database_unavailable(&details)),
    }
}

/// SSE: a `status` event with the job record first, then `progress` events (core events as
/// JSON) and `status` events on state changes, until the job ends or the service stops.
async fn sync_events(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let (first, watch) = state
        .jobs()
        .watch(&id)
        .await
        .map_err(|e| database_unavailable(&e))?
        .ok_or_else(|| job_not_found(&id))?;
    let Some(Extension(caller)) = caller else {
        return Err(ApiError::unauthorized("invalid API token"));
    };
    let slot = state.streams().acquire(caller).map_err(|full| {
        state.metrics().refused(Limit::SseStreams);
        streams_full(full)
    })?;
    let follow = Follow {
        watch,
        shutdown: state.shutdown_token().clone(),
        _slot: slot,
    };
    let stream = events_stream(first, follow);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(keep_alive_interval(state.config())))
        .into_response())
}

/// Comments on quiet streams every 15 s, or often enough that `limits.idle_timeout` never
/// closes a stream that is only waiting for its job.
fn keep_alive_interval(config: &ServerConfig) -> Duration {
    Duration::from_secs(15).min(config.limits.idle_timeout / 2)
}

/// Seconds a client refused a stream should wait before opening one again.
const STREAM_RETRY_AFTER: u64 = 5;

fn streams_full(full: Full) -> ApiError {
    let message = match full {
        Full::Token { max } => format!(
            "this token already holds `{max}` event streams (`limits.max_sse_streams_per_token`); close one first"
        ),
        Full::Total { max } => format!(
            "the service already serves `{max}` event streams (`limits.max_sse_streams`); try again later"
        ),
    };
    ApiError::too_many("too_many_streams", message, STREAM_RETRY_AFTER)
}

enum Phase {
    First(Box<JobRecord>),
    Follow,
    Done,
}

fn status_event(record: &JobRecord) -> SseEvent {
    SseEvent::default()
        .event("status")
        .data(serde_json::to_string(record).unwrap_or_default())
}

/// What an event stream follows, and the slot it holds (released when the stream ends, before
/// its last bytes are written).
struct Follow {
    watch: Watch,
    shutdown: tokio_util::sync::CancellationToken,
    _slot: StreamSlot,
}

fn events_stream(
    first: JobRecord,
    follow: Follow,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    let state = (Phase::First(Box::new(first)), follow);
    futures::stream::unfold(state, |(phase, mut follow)| async move {
        let (event, next) = match phase {
            Phase::Done => return None,
            Phase::First(record) => (status_event(&record), after(&record)),
            Phase::Follow => {
                let message = tokio::select! {
                    () = follow.shutdown.cancelled() => return None,
                    message = follow.watch.next() => message?,
                };
                let next = if message.terminal {
                    Phase::Done
                } else {
                    Phase::Follow
                };
                (
                    SseEvent::default().event(message.kind).data(&*message.data),
                    next,
                )
            }
        };
        Some((Ok(event), (next, follow)))
    })
}

/// What follows a status event of `record`.
fn after(record: &JobRecord) -> Phase {
    if record.state.is_terminal() {
        Phase::Done
    } else {
        Phase::Follow
    }
}
