//! The handlers of `/v1/schedules` (listed in `crate::routes::table`, behind the same bearer
//! token as the other `/v1` routes). A name outside [`crate::api::SCHEDULE_NAME_PATTERN`]
//! answers 422 on every method, before any store is asked.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::{PutError, definition};
use crate::AppState;
use crate::api::{MAX_SCHEDULES, ScheduleList, ScheduleRequest, check_schedule_name};
use crate::error::{ApiError, ApiJson, ApiPath};

fn checked(name: &str) -> Result<(), ApiError> {
    check_schedule_name(name).map_err(|message| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_schedule_name",
            message,
        )
    })
}

/// The store did not answer: 503 with a database (try again), else 500; details logged.
fn unavailable(state: &AppState, err: &crate::Error) -> ApiError {
    if state.config().database.is_some() {
        crate::routes::database_unavailable(err)
    } else {
        ApiError::internal(err)
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("no schedule `{name}`"))
}

pub(crate) async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let schedules = state
        .schedules()
        .list()
        .await
        .map_err(|e| unavailable(&state, &e))?;
    Ok(axum::Json(ScheduleList { schedules }).into_response())
}

pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    checked(&name)?;
    let schedule = state
        .schedules()
        .get(&name)
        .await
        .map_err(|e| unavailable(&state, &e))?
        .ok_or_else(|| not_found(&name))?;
    Ok(axum::Json(schedule).into_response())
}

/// 201 when created, 200 when replaced; the schedule as stored.
pub(crate) async fn put(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    checked(&name)?;
    let request = ScheduleRequest::from_object(body).map_err(ApiError::invalid)?;
    let def = definition(state.config(), &name, &request)?;
    match state.schedules().put(&def).await {
        Ok((schedule, created)) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, axum::Json(schedule)).into_response())
        }
        Err(PutError::TooMany) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_schedules",
            format!("the service already keeps `{MAX_SCHEDULES}` schedules; delete one first"),
        )),
        Err(PutError::Store(err)) => Err(unavailable(&state, &err)),
    }
}

/// 204; the schedule's jobs stay in the history (and a running one runs on).
pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    checked(&name)?;
    let deleted = state
        .schedules()
        .delete(&name)
        .await
        .map_err(|e| unavailable(&state, &e))?;
    if deleted {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found(&name))
    }
}
