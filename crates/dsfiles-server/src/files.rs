//! `GET /v1/demarches/{demarche}/files`: file records of a démarche, page by page, straight
//! from DS (nothing is downloaded).
//!
//! The cursor is opaque to clients: base64url of a small JSON object holding the démarche,
//! the `since` filter, the `file_id` of the last record returned, how many were returned
//! so far and (version 2) DS's own cursor of the DS page holding that record. The next page
//! lists the démarche again from that DS page, in DS's stable order, and resumes after that
//! record, so a cursor stays correct when dossiers are added; if the record it points to has
//! disappeared, or DS refuses its page cursor, the answer is 410 and the client starts over.
//! Each page costs the DS requests of its own records (plus the DS page holding the
//! previous page's last record), whatever its depth. Version 1 cursors (no DS cursor) are
//! still accepted: they list from the beginning, as they did.

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
use crate::api::{FilePage, ListedFile, check_ds_number, parse_rfc3339};
use crate::error::{ApiError, ApiPath, ApiQuery};
use crate::pipeline::{PagedFile, PipelineError, PipelineErrorKind};

pub(crate) const DEFAULT_LIMIT: usize = 100;
pub(crate) const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilesQuery {
    since: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// The cursor version this service issues.
const CURSOR_VERSION: u8 = 2;

/// Longest DS cursor a client's cursor may carry: a bound on untrusted input.
const MAX_DS_CURSOR_LEN: usize = 512;

/// What a cursor encodes (version 2; version 1 had no `ds_page`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cursor {
    v: u8,
    demarche: u64,
    since: Option<DateTime<Utc>>,
    after: String,
    returned: u64,
    /// DS's cursor of the DS page holding `after` (`None`: the first page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ds_page: Option<String>,
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub(crate) fn decode(text: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text.as_bytes()).ok()?;
        let cursor: Cursor = serde_json::from_slice(&bytes).ok()?;
        let valid = match cursor.v {
            1 => cursor.ds_page.is_none(),
            CURSOR_VERSION => cursor
                .ds_page
                .as_ref()
                .is_none_or(|page| !page.is_empty() && page.len() <= MAX_DS_CURSOR_LEN),
            _ => false,
        };
        valid.then_some(cursor)
    }
}

fn cursor_expired(reason: &str) -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "cursor_expired",
        format!("{reason}; start over without `cursor`"),
    )
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
    let Checked {
        limit,
        since,
        cursor,
    } = checked_query(demarche, &query)?;
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let resume = cursor.as_ref().and_then(|c| c.ds_page.clone());
    let mut stream = state
        .jobs()
        .pipeline()
        .list_files(demarche, since, resume.clone(), cancel);
    if let Some(cursor) = &cursor {
        skip_past(&mut stream, demarche, cursor).await?;
    }
    // The DS page of the last record returned (the cursor's own until one is).
    let mut last_page = resume;
    let mut files: Vec<ListedFile> = Vec::with_capacity(limit.min(256));
    let mut more = false;
    while let Some(item) = stream.next().await {
        let item = item.map_err(|err| pipeline_error(demarche, err))?;
        if files.len() == limit {
            more = true;
            break;
        }
        last_page = item.page;
        files.push(item.file);
    }
    let returned = cursor.as_ref().map_or(0, |c| c.returned) + files.len() as u64;
    let next_cursor = match files.last() {
        Some(last) if more => Some(
            Cursor {
                v: CURSOR_VERSION,
                demarche,
                since,
                after: last.file_id.clone(),
                returned,
                ds_page: last_page,
            }
            .encode(),
        ),
        _ => None,
    };
    Ok(axum::Json(FilePage { files, next_cursor }).into_response())
}

/// A `GET …/files` query, checked.
struct Checked {
    limit: usize,
    /// The listing window: the cursor's when there is one.
    since: Option<DateTime<Utc>>,
    cursor: Option<Cursor>,
}

/// The page size, the listing window and the cursor of a `GET …/files` query, each checked:
/// a cursor must be one issued for this démarche and (if `since` is given again) this window,
/// whose `since` it then carries.
fn checked_query(demarche: u64, query: &FilesQuery) -> Result<Checked, ApiError> {
    check_ds_number("demarche", demarche).map_err(ApiError::invalid)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::invalid(format!(
            "`limit` must be between 1 and {MAX_LIMIT}, got `{limit}`"
        )));
    }
    let since = match query.since.as_deref() {
        None | Some("") => None,
        Some(text) => Some(parse_rfc3339(text).ok_or_else(|| {
            ApiError::invalid(format!(
                "`since` `{}` is not an RFC 3339 date",
                text.chars().take(64).collect::<String>()
            ))
        })?),
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
    Ok(Checked {
        limit,
        since,
        cursor,
    })
}

/// Reads `stream` up to and including the file `cursor` points after; `cursor_expired` when
/// DS refuses the cursor's page or the file is no longer listed.
async fn skip_past(
    stream: &mut (impl futures::Stream<Item = Result<PagedFile, PipelineError>> + Unpin),
    demarche: u64,
    cursor: &Cursor,
) -> Result<(), ApiError> {
    loop {
        match stream.next().await {
            Some(Ok(item)) if item.file.file_id == cursor.after => return Ok(()),
            Some(Ok(_)) => {}
            Some(Err(err)) if err.kind == PipelineErrorKind::ResumeRejected => {
                tracing::debug!(demarche, error = %err.message, "DS refused a cursor's page");
                return Err(cursor_expired(
                    "DS no longer accepts the position this cursor holds",
                ));
            }
            Some(Err(err)) => return Err(pipeline_error(demarche, err)),
            None => {
                return Err(cursor_expired(
                    "the file this cursor points after is no longer listed",
                ));
            }
        }
    }
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
        PipelineErrorKind::ResumeRejected => {
            cursor_expired("DS no longer accepts the position this cursor holds")
        }
        PipelineErrorKind::Cancelled
        | PipelineErrorKind::Busy
        | PipelineErrorKind::Destination
        | PipelineErrorKind::Internal => ApiError::internal(err.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(v: u8, ds_page: Option<&str>) -> Cursor {
        Cursor {
            v,
            demarche: 7,
            since: None,
            after: "12/champ/Q2hhbXAtMQ/0/0".into(),
            returned: 100,
            ds_page: ds_page.map(str::to_owned),
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let current = cursor(CURSOR_VERSION, Some("ZDoxNzA6MTI="));
        let text = current.encode();
        assert!(
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{text}"
        );
        assert_eq!(Cursor::decode(&text), Some(current));
        // The first page of DS has no cursor.
        let first_page = cursor(CURSOR_VERSION, None);
        assert_eq!(Cursor::decode(&first_page.encode()), Some(first_page));
        assert_eq!(Cursor::decode("not base64!"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode(b"{\"v\":2}")), None);
        let long = "a".repeat(MAX_DS_CURSOR_LEN + 1);
        for refused in [
            cursor(3, None),
            cursor(0, None),
            cursor(1, Some("ZDoxNzA6MTI=")),
            cursor(CURSOR_VERSION, Some("")),
            cursor(CURSOR_VERSION, Some(&long)),
        ] {
            assert_eq!(Cursor::decode(&refused.encode()), None, "{refused:?}");
        }
    }

    #[test]
    fn version_1_cursors_still_decode_and_resume_from_the_start() {
        let v1 = URL_SAFE_NO_PAD.encode(
            br#"{"v":1,"demarche":7,"since":null,"after":"12/champ/Q2hhbXAtMQ/0/0","returned":100}"#,
        );
        assert_eq!(Cursor::decode(&v1), Some(cursor(1, None)));
    }
}
