//! `GET /v1/demarches/{demarche}/files`: file records of a démarche, page by page, straight
//! from DS (nothing is downloaded).
//!
//! The cursor is opaque to clients: base64url of a small JSON object holding the démarche,
//! the `since` filter, the `file_id` of the last record returned and how many were returned
//! so far. The next page lists the démarche again in DS's stable order and resumes after
//! that record, so a cursor stays correct when dossiers are added; if the record it points
//! to has disappeared, the answer is 410 and the client starts over. Each page costs the DS
//! requests up to its position: this listing is meant for inventories, not for hot paths.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::api::{FilePage, ListedFile};
use crate::error::{ApiError, ApiPath, ApiQuery};
use crate::pipeline::{PipelineError, PipelineErrorKind};

pub(crate) const DEFAULT_LIMIT: usize = 100;
pub(crate) const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilesQuery {
    since: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// What a cursor encodes (version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cursor {
    v: u8,
    demarche: u64,
    since: Option<DateTime<Utc>>,
    after: String,
    returned: u64,
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub(crate) fn decode(text: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text.as_bytes()).ok()?;
        let cursor: Cursor = serde_json::from_slice(&bytes).ok()?;
        (cursor.v == 1).then_some(cursor)
    }
}

fn invalid_cursor() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
        "`cursor` is not a cursor this service issued for this listing",
    )
}

pub(crate) async fn list_files(
    State(state): State<AppState>,
    ApiPath(demarche): ApiPath<u64>,
    ApiQuery(query): ApiQuery<FilesQuery>,
) -> Result<Response, ApiError> {
    if demarche == 0 {
        return Err(ApiError::invalid("the démarche number must be positive"));
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::invalid(format!(
            "`limit` must be between 1 and {MAX_LIMIT}, got `{limit}`"
        )));
    }
    let since = match query.since.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .map_err(|_| {
                    ApiError::invalid(format!(
                        "`since` `{}` is not an RFC 3339 date",
                        text.chars().take(64).collect::<String>()
                    ))
                })?
                .with_timezone(&Utc),
        ),
    };
    let cursor = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => {
            let cursor = Cursor::decode(text).ok_or_else(invalid_cursor)?;
            if cursor.demarche != demarche || (query.since.is_some() && cursor.since != since) {
                return Err(invalid_cursor());
            }
            Some(cursor)
        }
    };
    let since = cursor.as_ref().map_or(since, |c| c.since);
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let mut stream = state.jobs().pipeline().list_files(demarche, since, cancel);
    if let Some(cursor) = &cursor {
        loop {
            match stream.next().await {
                Some(Ok(file)) if file.file_id == cursor.after => break,
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(pipeline_error(demarche, err)),
                None => {
                    return Err(ApiError::new(
                        StatusCode::GONE,
                        "cursor_expired",
                        "the file this cursor points after is no longer listed; start over without `cursor`",
                    ));
                }
            }
        }
    }
    let mut files: Vec<ListedFile> = Vec::with_capacity(limit.min(256));
    let mut more = false;
    while let Some(item) = stream.next().await {
        let file = item.map_err(|err| pipeline_error(demarche, err))?;
        if files.len() == limit {
            more = true;
            break;
        }
        files.push(file);
    }
    let returned = cursor.as_ref().map_or(0, |c| c.returned) + files.len() as u64;
    let next_cursor = match files.last() {
        Some(last) if more => Some(
            Cursor {
                v: 1,
                demarche,
                since,
                after: last.file_id.clone(),
                returned,
            }
            .encode(),
        ),
        _ => None,
    };
    Ok(axum::Json(FilePage { files, next_cursor }).into_response())
}

/// DS failures while listing, as HTTP answers naming the démarche.
pub(crate) fn pipeline_error(demarche: u64, err: PipelineError) -> ApiError {
    match err.kind {
        PipelineErrorKind::NotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "demarche_not_found",
            format!("démarche `{demarche}` not found: {}", err.message),
        ),
        PipelineErrorKind::Access => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "ds_access_refused",
            format!("DS refused access to démarche `{demarche}` with the configured token"),
        ),
        PipelineErrorKind::Upstream => {
            tracing::warn!(demarche, error = %err.message, "DS failed while listing files");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "ds_unavailable",
                "DS did not answer after retries",
            )
        }
        PipelineErrorKind::Invalid => ApiError::invalid(err.message),
        PipelineErrorKind::Cancelled
        | PipelineErrorKind::Destination
        | PipelineErrorKind::Internal => ApiError::internal(err.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor {
            v: 1,
            demarche: 7,
            since: None,
            after: "12/champ/Q2hhbXAtMQ/0/0".into(),
            returned: 100,
        };
        let text = cursor.encode();
        assert!(
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{text}"
        );
        assert_eq!(Cursor::decode(&text), Some(cursor));
        assert_eq!(Cursor::decode("not base64!"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode(b"{\"v\":2}")), None);
        let future = Cursor {
            v: 2,
            demarche: 7,
            since: None,
            after: String::new(),
            returned: 0,
        };
        assert_eq!(Cursor::decode(&future.encode()), None);
    }
}
