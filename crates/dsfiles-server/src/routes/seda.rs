//! `POST /v1/seda`: queues a seda job ([`crate::seda_jobs`]), checked as a sync request is:
//! the body (the profile's errors name its key), `dest` and `out` through the allow-list
//! ([`dest_error`]), then the 409s — a job of this service on the same OUT, or another writer
//! holding OUT's seda lease — then the queue. The job is then read, watched and cancelled
//! through the same handlers as a sync's.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{
    conflict_response, database_unavailable, dest_error, destination_busy, queue_full,
    shutting_down,
};
use crate::AppState;
use crate::api::{DestinationBusy, JobRecord, Since, SyncSpec, Trigger};
use crate::error::{ApiError, ApiJson};
use crate::jobs::SubmitError;
use crate::seda_jobs::{SedaJob, SedaRequest, seda_key};

pub(super) async fn create_seda(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SedaRequest>,
) -> Result<Response, ApiError> {
    request.validate().map_err(ApiError::invalid)?;
    let spec = spec(&state, &request)?;
    let out = spec
        .seda
        .as_ref()
        .map(|s| s.out.clone())
        .unwrap_or_default();
    let (demarche, key) = seda_key(&out);
    let active =
        (state.jobs().active(demarche, &key).await).map_err(|e| database_unavailable(&e))?;
    if let Some(existing) = active {
        return Ok(conflict(&existing, &out));
    }
    if !spec.break_lease
        && let Some(busy) = lease_holder(&state, &out).await
    {
        return Ok(destination_busy(busy));
    }
    match state.jobs().submit(spec, Trigger::Api).await {
        Ok(record) => Ok(accepted(&record)),
        Err(SubmitError::Conflict(existing)) => Ok(conflict(&existing, &out)),
        Err(SubmitError::QueueFull { max_queued }) => Err(queue_full(&state, max_queued)),
        Err(SubmitError::ShuttingDown) => Err(shutting_down()),
        Err(SubmitError::Unavailable(details)) => Err(database_unavailable(&details)),
    }
}

/// The job's spec: `dest` and `out` allowed and canonical, dossiers sorted.
fn spec(state: &AppState, request: &SedaRequest) -> Result<SyncSpec, ApiError> {
    let allow = &state.config().allow_dest;
    let dest = allow.check(&request.dest).map_err(dest_error)?.canonical();
    let out = allow.check(&request.out).map_err(dest_error)?.canonical();
    let mut dossiers = request.dossiers.clone();
    dossiers.sort_unstable();
    dossiers.dedup();
    Ok(SyncSpec {
        demarche: request.demarche,
        dest,
        since: Since::Auto,
        include: Vec::new(),
        dossiers,
        jobs: state.jobs().sync_jobs(),
        break_lease: request.break_lease,
        layout: None,
        data_layout: None,
        no_data: None,
        seda: Some(SedaJob {
            out,
            profile: request.profile.clone(),
            states: request.states(),
            result: None,
        }),
    })
}

fn accepted(record: &JobRecord) -> Response {
    let mut response = (StatusCode::ACCEPTED, axum::Json(record)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/seda/{}", record.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// 409 `seda_in_progress`: the job of this service already writing into `out`.
fn conflict(existing: &JobRecord, out: &str) -> Response {
    let message = format!(
        "`{out}` is already being written by seda job `{}`",
        existing.id
    );
    conflict_response("seda_in_progress", message, existing)
}

/// How long `POST /v1/seda` waits for OUT's lease to be read.
const LEASE_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Another writer's live seda lease on `out`, if any; a lease that cannot be read in time
/// does not refuse the request (the job takes, or fails to take, the lease itself).
async fn lease_holder(state: &AppState, out: &str) -> Option<DestinationBusy> {
    let check = state.jobs().pipeline().check_seda_lease(out);
    match tokio::time::timeout(LEASE_CHECK_TIMEOUT, check).await {
        Ok(Ok(busy)) => busy,
        Ok(Err(e)) => {
            tracing::warn!(out, "cannot read the seda lease: {e}");
            None
        }
        Err(_) => {
            tracing::warn!(
                out,
                "the seda lease could not be read in {LEASE_CHECK_TIMEOUT:?}"
            );
            None
        }
    }
}
