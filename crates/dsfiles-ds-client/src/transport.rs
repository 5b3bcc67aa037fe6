//! One GraphQL request to DS: the bounded retry loop, and the classification of an HTTP
//! answer into data or a typed [`Error`] (a pure function, tested without a server).

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::time::Instant;

use crate::client::Inner;
use crate::error::Target;
use crate::queries::Operation;
use crate::{Error, GraphQlError};

/// A successful answer: `data` with its root field present, and the errors DS sent along.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) data: Value,
    pub(crate) errors: Vec<GraphQlError>,
}

/// Characters of a body quoted in errors.
const SNIPPET_CHARS: usize = 200;

impl Inner {
    /// Sends `operation` until it succeeds, fails for good, or `max_attempts` is reached.
    ///
    /// With `shrinkable`, a page-too-large error (GraphQL `timeout`, complexity) is returned
    /// at once: the caller retries with a smaller page instead.
    pub(crate) async fn execute(
        &self,
        operation: Operation,
        variables: &Value,
        target: Target,
        shrinkable: bool,
    ) -> Result<Answer, Error> {
        self.execute_document(
            operation,
            operation.document(),
            variables,
            target,
            shrinkable,
        )
        .await
    }

    /// [`Inner::execute`] with a document built for this request (`DossiersByNumber`).
    pub(crate) async fn execute_document(
        &self,
        operation: Operation,
        document: &str,
        variables: &Value,
        target: Target,
        shrinkable: bool,
    ) -> Result<Answer, Error> {
        let body = serde_json::json!({
            "query": document,
            "operationName": operation.name(),
            "variables": variables,
        });
        let page_size = variables.get("first").and_then(Value::as_u64);
        let start = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let result = self
                .send_once(operation, &body, target, page_size, attempt)
                .await;
            let err = match result {
                Ok(answer) => return Ok(answer),
                Err(err) => err,
            };
            if shrinkable && err.is_page_too_large() {
                return Err(err);
            }
            if !err.is_transient() || attempt >= self.config.max_attempts {
                return Err(if attempt > 1 {
                    Error::RetriesExhausted {
                        attempts: attempt,
                        elapsed: start.elapsed(),
                        last: Box::new(err),
                    }
                } else {
                    err
                });
            }
            let delay = self.retry_delay(&err, attempt);
            self.stats.retry();
            tracing::warn!(
                operation = operation.name(),
                attempt,
                max_attempts = self.config.max_attempts,
                delay_ms = millis(delay),
                error = %err,
                "DS request failed, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn send_once(
        &self,
        operation: Operation,
        body: &Value,
        target: Target,
        page_size: Option<u64>,
        attempt: u32,
    ) -> Result<Answer, Error> {
        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
        self.stats.api_call();
        let start = Instant::now();
        let sent = self
            .http
            .post(self.config.endpoint.clone())
            .bearer_auth(self.config.token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                tracing::debug!(
                    operation = operation.name(),
                    page_size,
                    attempt,
                    elapsed_ms = millis(start.elapsed()),
                    error = %err,
                    "DS request failed"
                );
                return Err(Error::Network(err.without_url()));
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = self.read_body(operation, response).await?;
        tracing::debug!(
            operation = operation.name(),
            page_size,
            attempt,
            status = status.as_u16(),
            bytes = bytes.len(),
            elapsed_ms = millis(start.elapsed()),
            "DS request"
        );
        let result = classify(
            operation,
            target,
            status,
            &headers,
            &bytes,
            (SystemTime::now(), self.config.backoff_max),
        );
        if matches!(result, Err(Error::RateLimited { .. })) {
            self.stats.rate_limited();
        }
        result
    }

    /// The body, decompressed, as long as it stays within `max_response_bytes`.
    ///
    /// Counting what `chunk()` yields counts *decoded* bytes (reqwest inflates gzip as a
    /// stream), so a small compressed answer that inflates to gigabytes stops at the limit:
    /// memory holds at most the limit plus one chunk. `Content-Length` is not trusted, not
    /// even to reserve memory; a body shorter than announced is a network error (transient).
    async fn read_body(
        &self,
        operation: Operation,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, Error> {
        let limit = self.config.max_response_bytes;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Error::Network(e.without_url()))?
        {
            let total = u64::try_from(body.len().saturating_add(chunk.len())).unwrap_or(u64::MAX);
            if total > limit {
                return Err(Error::ResponseTooLarge {
                    operation: operation.name(),
                    endpoint: endpoint_without_query(&self.config.endpoint),
                    limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Waits before the next attempt: what DS asked for on 429 (already capped at
    /// `backoff_max` by [`rate_limit_wait`]), else exponential backoff with full jitter.
    fn retry_delay(&self, err: &Error, attempt: u32) -> Duration {
        if let Some(wait) = err.retry_after() {
            return wait.min(self.config.backoff_max);
        }
        let ceiling = self
            .config
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.config.backoff_max);
        // `mul_f64` panics when the product does not fit; a factor below 1 keeps it in
        // range, but a `Duration::MAX` ceiling rounds up in `f64`: fall back to the ceiling.
        Duration::try_from_secs_f64(ceiling.as_secs_f64() * fastrand::f64()).unwrap_or(ceiling)
    }
}

/// Milliseconds for logs, saturated.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The endpoint for error messages: scheme, host, port and path, never a query.
pub(crate) fn endpoint_without_query(endpoint: &url::Url) -> String {
    let mut shown = endpoint.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.to_string()
}

/// Turns an HTTP answer into data or a typed error. `(now, max_wait)`: the wall clock, for
/// `RateLimit-Reset` (a Unix time) and HTTP dates in `Retry-After`, and the longest wait a
/// 429 may impose (see [`rate_limit_wait`]).
pub(crate) fn classify(
    operation: Operation,
    target: Target,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    (now, max_wait): (SystemTime, Duration),
) -> Result<Answer, Error> {
    let code = status.as_u16();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::RateLimited {
            retry_after: rate_limit_wait(headers, now, max_wait),
        });
    }
    let Ok(mut json) = serde_json::from_slice::<Value>(body) else {
        return Err(Error::NotJson {
            status: code,
            snippet: snippet(body),
        });
    };
    if matches!(code, 502..=504) {
        return Err(Error::Http {
            status: code,
            snippet: snippet(body),
        });
    }
    let errors = graphql_errors(&json);
    if let Some(error) = token_error(status, &errors) {
        return Err(error);
    }
    // A timeout leaves a partial page behind: never hand it out, ask again.
    if page_too_large(&errors) {
        return Err(Error::GraphQl {
            operation: operation.name(),
            errors,
        });
    }
    // Taken out of the answer, not cloned: a page of dossiers is megabytes of values.
    let data = json
        .get_mut("data")
        .map(Value::take)
        .filter(|d| !d.is_null());
    if !root_present(operation, data.as_ref()) {
        return Err(missing_root(operation, target, status, body, errors));
    }
    match data {
        Some(data) if status.is_success() => Ok(Answer { data, errors }),
        _ => Err(Error::Http {
            status: code,
            snippet: snippet(body),
        }),
    }
}

/// The token error an answer carries, if any: 401 is an expired token, 403 or a `forbidden`
/// code a rejected one (restricted to networks when the message names some), a
/// `deprecated_token` code a deprecated one.
fn token_error(status: StatusCode, errors: &[GraphQlError]) -> Option<Error> {
    let first_message = || {
        errors
            .first()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| status.to_string())
    };
    let has_code = |wanted: &str| errors.iter().any(|e| e.code.as_deref() == Some(wanted));
    if status == StatusCode::UNAUTHORIZED {
        return Some(Error::TokenExpired {
            message: first_message(),
        });
    }
    if status == StatusCode::FORBIDDEN || has_code("forbidden") {
        let message = first_message();
        let networks = networks_in(&message);
        return Some(if networks.is_empty() {
            Error::TokenRejected { message }
        } else {
            Error::TokenNetworkRestricted {
                networks: networks.join(", "),
                message,
            }
        });
    }
    errors
        .iter()
        .find(|e| e.code.as_deref() == Some("deprecated_token"))
        .map(|e| Error::TokenDeprecated {
            message: e.message.clone(),
        })
}

/// Whether DS gave up on the page as too large: a GraphQL `timeout` or a complexity error.
fn page_too_large(errors: &[GraphQlError]) -> bool {
    errors.iter().any(|e| {
        e.code.as_deref() == Some("timeout")
            || e.message.to_ascii_lowercase().contains("complexity")
    })
}

/// Whether `data` holds the operation's root field, not null (any object for an operation
/// of aliased fields, which has no single root).
fn root_present(operation: Operation, data: Option<&Value>) -> bool {
    match operation.root() {
        Some(root) => data.and_then(|d| d.get(root)).is_some_and(|r| !r.is_null()),
        None => data.is_some_and(Value::is_object),
    }
}

/// The error of an answer without its root field, most telling first: the GraphQL errors of
/// aliased fields, not found, unauthorized, the HTTP status, then the missing data itself.
fn missing_root(
    operation: Operation,
    target: Target,
    status: StatusCode,
    body: &[u8],
    errors: Vec<GraphQlError>,
) -> Error {
    // Aliased fields: the caller reads the errors' paths to know which one failed.
    if operation.root().is_none() && !errors.is_empty() {
        return Error::GraphQl {
            operation: operation.name(),
            errors,
        };
    }
    let about = |code: &str| {
        errors
            .iter()
            .find(|e| e.code.as_deref() == Some(code))
            .map(|e| e.message.clone())
    };
    if let Some(message) = about("not_found") {
        return Error::NotFound { target, message };
    }
    if let Some(message) = about("unauthorized") {
        return Error::Unauthorized { target, message };
    }
    if !status.is_success() && errors.is_empty() {
        return Error::Http {
            status: status.as_u16(),
            snippet: snippet(body),
        };
    }
    if errors.is_empty() {
        return Error::UnexpectedResponse {
            operation: operation.name(),
            reason: format!(
                "`data.{}` is missing and DS sent no error",
                operation.root().unwrap_or("*")
            ),
        };
    }
    Error::GraphQl {
        operation: operation.name(),
        errors,
    }
}

/// The `errors` of a GraphQL response, read leniently (missing fields become empty).
fn graphql_errors(json: &Value) -> Vec<GraphQlError> {
    let Some(errors) = json.get("errors").and_then(Value::as_array) else {
        return Vec::new();
    };
    errors
        .iter()
        .map(|e| GraphQlError {
            code: e
                .get("extensions")
                .and_then(|x| x.get("code"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            message: e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            path: e
                .get("path")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        })
        .collect()
}

/// Values of `RateLimit-Reset` below this are delta-seconds (the IETF draft's meaning), not a
/// Unix time (DS's meaning): as a Unix time they would lie before 2001.
const RESET_DELTA_BELOW: u64 = 1_000_000_000;

/// How long a 429 asks to wait, at most `max`: DS's `RateLimit-Reset` (the Unix time, in
/// seconds, at which its window ends; small values are read as seconds from now), else
/// `Retry-After` (seconds or an HTTP date). `None` when neither parses, and the caller backs
/// off as for any transient error.
///
/// Every value is hostile until proven otherwise: negative, fractional, huge or far-future
/// values never overflow (`checked_add`; what cannot be represented is "later than `max`"),
/// and the wait is clamped to `max` so that a server announcing a reset hours away cannot
/// stall a run for hours (the loop's [`ClientConfig::backoff_max`](crate::ClientConfig)).
pub(crate) fn rate_limit_wait(
    headers: &HeaderMap,
    now: SystemTime,
    max: Duration,
) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let wait = match header("ratelimit-reset").and_then(seconds) {
        Some(reset) if reset < Duration::from_secs(RESET_DELTA_BELOW) => Some(reset),
        Some(reset) => Some(until(now, UNIX_EPOCH.checked_add(reset))),
        None => header("retry-after").and_then(|value| match seconds(value) {
            Some(delta) => Some(delta),
            None => http_date(value).map(|date| until(now, date)),
        }),
    };
    wait.map(|w| w.min(max))
}

/// A non-negative number of seconds, possibly fractional; `Duration::MAX` when too large.
fn seconds(value: &str) -> Option<Duration> {
    if let Ok(whole) = value.parse::<u64>() {
        return Some(Duration::from_secs(whole));
    }
    let float = value.parse::<f64>().ok().filter(|f| *f >= 0.0)?;
    // `try_from_secs_f64` refuses NaN and what does not fit: a finite huge value is "later".
    match Duration::try_from_secs_f64(float) {
        Ok(d) => Some(d),
        Err(_) if float.is_finite() => Some(Duration::MAX),
        Err(_) => None,
    }
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`); `None` when `value` is not one.
fn http_date(value: &str) -> Option<Option<SystemTime>> {
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(match u64::try_from(date.timestamp()) {
        Ok(secs) => UNIX_EPOCH.checked_add(Duration::from_secs(secs)),
        // Before 1970: long past.
        Err(_) => Some(UNIX_EPOCH),
    })
}

/// The wait from `now` until `at`: zero when past, `Duration::MAX` when `at` is beyond what
/// `SystemTime` holds (`None`).
fn until(now: SystemTime, at: Option<SystemTime>) -> Duration {
    match at {
        Some(at) => at.duration_since(now).unwrap_or(Duration::ZERO),
        None => Duration::MAX,
    }
}

/// The start of a body for an error message: at most [`SNIPPET_CHARS`] characters,
/// whitespace collapsed, URL query strings (signatures) removed.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let redacted = strip_url_queries(&collapsed);
    match redacted.char_indices().nth(SNIPPET_CHARS) {
        Some((i, _)) => format!("{}…", &redacted[..i]),
        None => redacted,
    }
}

/// Removes the query string of every URL in `text` (signed URLs carry their secret there).
pub(crate) fn strip_url_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (before, after) = rest.split_at(pos);
        out.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(after.len());
        let url = &after[..end];
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push_str("?…");
            }
            None => out.push_str(url),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// IP networks named in a message (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.1`); CIDR ranges
/// only when there are some, since the caller's own address may be quoted too.
pub(crate) fn networks_in(message: &str) -> Vec<String> {
    let words: Vec<&str> = message
        .split(|c: char| {
            c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '[' | ']' | '"' | '\'' | '`')
        })
        .map(|w| w.trim_end_matches(['.', ':']))
        .filter(|w| {
            let (ip, prefix) = w.split_once('/').unwrap_or((w, "0"));
            ip.parse::<IpAddr>().is_ok() && prefix.parse::<u8>().is_ok()
        })
        .collect();
    let cidrs: Vec<String> = words
        .iter()
        .filter(|w| w.contains('/'))
        .map(|w| (*w).to_owned())
        .collect();
    if cidrs.is_empty() {
        words.into_iter().map(str::to_owned).collect()
    } else {
        cidrs
    }
}

#[cfg(test)]
mod tests;
