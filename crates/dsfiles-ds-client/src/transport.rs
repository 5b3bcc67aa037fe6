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
        let body = serde_json::json!({
            "query": operation.document(),
            "operationName": operation.name(),
            "variables": variables,
        });
        let page_size = variables.get("first").and_then(Value::as_u64);
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
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
                delay_ms = delay.as_millis() as u64,
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
                    elapsed_ms = start.elapsed().as_millis() as u64,
                    error = %err,
                    "DS request failed"
                );
                return Err(Error::Network(err.without_url()));
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Error::Network(e.without_url()))?;
        tracing::debug!(
            operation = operation.name(),
            page_size,
            attempt,
            status = status.as_u16(),
            bytes = bytes.len(),
            elapsed_ms = start.elapsed().as_millis() as u64,
            "DS request"
        );
        let result = classify(
            operation,
            target,
            status,
            &headers,
            &bytes,
            SystemTime::now(),
        );
        if matches!(result, Err(Error::RateLimited { .. })) {
            self.stats.rate_limited();
        }
        result
    }

    /// Waits before the next attempt: what DS asked for on 429 (capped at `backoff_max`),
    /// else exponential backoff with full jitter.
    fn retry_delay(&self, err: &Error, attempt: u32) -> Duration {
        if let Some(wait) = err.retry_after() {
            return wait.min(self.config.backoff_max);
        }
        let ceiling = self
            .config
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.config.backoff_max);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// Turns an HTTP answer into data or a typed error. `now` is the wall clock, for
/// `RateLimit-Reset` (a Unix time) and HTTP dates in `Retry-After`.
pub(crate) fn classify(
    operation: Operation,
    target: Target,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<Answer, Error> {
    let code = status.as_u16();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::RateLimited {
            retry_after: retry_after(headers, now),
        });
    }
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
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
    let first_message = || {
        errors
            .first()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| status.to_string())
    };
    let has_code = |wanted: &str| errors.iter().any(|e| e.code.as_deref() == Some(wanted));

    if status == StatusCode::UNAUTHORIZED {
        return Err(Error::TokenExpired {
            message: first_message(),
        });
    }
    if status == StatusCode::FORBIDDEN || has_code("forbidden") {
        let message = first_message();
        let networks = networks_in(&message);
        return Err(if networks.is_empty() {
            Error::TokenRejected { message }
        } else {
            Error::TokenNetworkRestricted {
                networks: networks.join(", "),
                message,
            }
        });
    }
    if let Some(e) = errors
        .iter()
        .find(|e| e.code.as_deref() == Some("deprecated_token"))
    {
        return Err(Error::TokenDeprecated {
            message: e.message.clone(),
        });
    }
    // A timeout leaves a partial page behind: never hand it out, ask again.
    let page_too_large = errors.iter().any(|e| {
        e.code.as_deref() == Some("timeout")
            || e.message.to_ascii_lowercase().contains("complexity")
    });
    if page_too_large {
        return Err(Error::GraphQl {
            operation: operation.name(),
            errors,
        });
    }
    let data = json.get("data").filter(|d| !d.is_null());
    let root_present = data
        .and_then(|d| d.get(operation.root()))
        .is_some_and(|r| !r.is_null());
    if !root_present {
        let about = |code: &str| {
            errors
                .iter()
                .find(|e| e.code.as_deref() == Some(code))
                .map(|e| e.message.clone())
        };
        if let Some(message) = about("not_found") {
            return Err(Error::NotFound { target, message });
        }
        if let Some(message) = about("unauthorized") {
            return Err(Error::Unauthorized { target, message });
        }
        if !status.is_success() && errors.is_empty() {
            return Err(Error::Http {
                status: code,
                snippet: snippet(body),
            });
        }
        if errors.is_empty() {
            return Err(Error::UnexpectedResponse {
                operation: operation.name(),
                reason: format!(
                    "`data.{}` is missing and DS sent no error",
                    operation.root()
                ),
            });
        }
        return Err(Error::GraphQl {
            operation: operation.name(),
            errors,
        });
    }
    match data {
        Some(data) if status.is_success() => Ok(Answer {
            data: data.clone(),
            errors,
        }),
        _ => Err(Error::Http {
            status: code,
            snippet: snippet(body),
        }),
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

/// How long a 429 asks to wait: DS's `RateLimit-Reset` (Unix time in seconds at which its
/// window ends), else `Retry-After` (seconds or an HTTP date). `None` when neither parses.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let until = |t: SystemTime| t.duration_since(now).unwrap_or(Duration::ZERO);
    if let Some(reset) = header("ratelimit-reset").and_then(|v| v.parse::<u64>().ok()) {
        return Some(until(UNIX_EPOCH + Duration::from_secs(reset)));
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let secs = u64::try_from(date.timestamp()).ok()?;
    Some(until(UNIX_EPOCH + Duration::from_secs(secs)))
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
