use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;

use super::*;
use crate::ErrorKind;

const NOW_SECS: u64 = 1_750_000_000;
/// The longest 429 wait in these tests (`backoff_max`).
const MAX_WAIT: Duration = Duration::from_secs(600);

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

/// Classifies a `DemarcheDossiers` answer about démarche 1234.
fn check(status: u16, headers: &[(&'static str, &str)], body: &str) -> Result<Answer, Error> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            *name,
            HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("bad")),
        );
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT);
    classify(
        Operation::DemarcheDossiers,
        Target::Demarche(1234),
        status,
        &map,
        body.as_bytes(),
        (now(), MAX_WAIT),
    )
}

fn error_body(code: &str, message: &str) -> String {
    json!({"data": null, "errors": [{"message": message, "extensions": {"code": code}}]})
        .to_string()
}

#[test]
fn rate_limit_reset_is_a_unix_time() {
    let reset = (NOW_SECS + 42).to_string();
    let err = check(
        429,
        &[("RateLimit-Reset", &reset), ("Retry-After", "5")],
        "",
    )
    .err();
    assert!(
        matches!(err, Some(Error::RateLimited { retry_after: Some(d) }) if d == Duration::from_secs(42)),
        "{err:?}"
    );
}

#[test]
fn retry_after_in_seconds_or_http_date() {
    let err = check(429, &[("Retry-After", "7")], "").err();
    assert!(
        matches!(err, Some(Error::RateLimited { retry_after: Some(d) }) if d == Duration::from_secs(7)),
        "{err:?}"
    );
    // NOW_SECS is 2025-06-15T15:06:40Z.
    let err = check(429, &[("Retry-After", "Sun, 15 Jun 2025 15:07:00 GMT")], "").err();
    assert!(
        matches!(err, Some(Error::RateLimited { retry_after: Some(d) }) if d == Duration::from_secs(20)),
        "{err:?}"
    );
    let err = check(429, &[], "Too many").err();
    assert!(
        matches!(err, Some(Error::RateLimited { retry_after: None })),
        "{err:?}"
    );
    let err = check(429, &[("RateLimit-Reset", &(NOW_SECS - 3).to_string())], "").err();
    assert!(
        matches!(
            err,
            Some(Error::RateLimited {
                retry_after: Some(Duration::ZERO)
            })
        ),
        "{err:?}"
    );
}

#[test]
fn html_502_is_transient_and_quoted() {
    let err = check(
        502,
        &[],
        "<html>\n<head><title>502 Bad Gateway</title></head>\n</html>",
    )
    .err();
    let Some(err) = err else {
        panic!("a 502 is an error")
    };
    assert!(err.is_transient());
    assert_eq!(
        err.to_string(),
        "DS answered HTTP 502 with a body that is not JSON: `<html> <head><title>502 Bad Gateway</title></head> </html>`"
    );
    assert_eq!(err.kind(), ErrorKind::Api);
}

#[test]
fn html_200_is_not_transient_but_a_truncated_json_200_is() {
    let html = check(
        200,
        &[],
        "<!DOCTYPE html><html>Démarches simplifiées</html>",
    )
    .err();
    assert!(html.as_ref().is_some_and(|e| !e.is_transient()), "{html:?}");
    let truncated = check(
        200,
        &[],
        r#"{"data":{"demarche":{"dossiers":{"nodes":[{"num"#,
    )
    .err();
    assert!(
        truncated.as_ref().is_some_and(Error::is_transient),
        "{truncated:?}"
    );
}

#[test]
fn snippets_are_short_and_never_carry_url_signatures() {
    let long = format!(
        "oops https://storage.example/f.pdf?sig=SECRET&exp=1 {}",
        "x".repeat(500)
    );
    let s = snippet(long.as_bytes());
    assert!(!s.contains("SECRET"), "{s}");
    assert!(
        s.starts_with("oops https://storage.example/f.pdf?… x"),
        "{s}"
    );
    assert_eq!(s.chars().count(), SNIPPET_CHARS + 1);
}

#[test]
fn forbidden_is_a_rejected_token() {
    let err = check(
        403,
        &[],
        &error_body("forbidden", "Le jeton utilisé est invalide"),
    )
    .err();
    assert!(
        matches!(&err, Some(Error::TokenRejected { message }) if message == "Le jeton utilisé est invalide"),
        "{err:?}"
    );
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::Auth));
}

#[test]
fn forbidden_naming_networks_shows_them() {
    let message = "Le jeton n’est utilisable que depuis les réseaux suivants : 192.168.0.0/16, 2001:db8::/32. Votre adresse : 203.0.113.9.";
    let err = check(403, &[], &error_body("forbidden", message)).err();
    let Some(Error::TokenNetworkRestricted { networks, .. }) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(networks, "192.168.0.0/16, 2001:db8::/32");
    let shown = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        shown.contains("`192.168.0.0/16, 2001:db8::/32`") && shown.contains(message),
        "{shown}"
    );
}

#[test]
fn unauthorized_http_status_is_an_expired_token() {
    let err = check(401, &[], &error_body("unauthorized", "Le jeton a expiré")).err();
    assert!(
        matches!(&err, Some(Error::TokenExpired { message }) if message == "Le jeton a expiré"),
        "{err:?}"
    );
}

#[test]
fn deprecated_token_is_an_auth_error() {
    let err = check(
        200,
        &[],
        &error_body("deprecated_token", "jeton au nouveau format"),
    )
    .err();
    assert!(
        matches!(err, Some(Error::TokenDeprecated { .. })),
        "{err:?}"
    );
}

#[test]
fn not_found_and_unauthorized_name_the_demarche() {
    let err = check(200, &[], &error_body("not_found", "Demarche not found")).err();
    assert_eq!(err.as_ref().map(|e| e.kind()), Some(ErrorKind::NotFound));
    assert_eq!(
        err.map(|e| e.to_string()).unwrap_or_default(),
        "démarche `1234` not found (`not_found`): Demarche not found"
    );
    let err = check(
        200,
        &[],
        &error_body(
            "unauthorized",
            "An object of type Demarche was hidden due to permissions",
        ),
    )
    .err();
    assert_eq!(err.as_ref().map(|e| e.kind()), Some(ErrorKind::Access));
    assert!(err.is_some_and(|e| {
        e.to_string()
            .starts_with("démarche `1234` is not accessible")
    }));
}

#[test]
fn timeout_and_complexity_ask_for_a_smaller_page_even_with_partial_data() {
    let timeout = json!({
        "data": {"demarche": {"dossiers": null}},
        "errors": [{"message": "Timeout on Demarche.dossiers", "extensions": {"code": "timeout"}}]
    });
    let err = check(200, &[], &timeout.to_string()).err();
    assert!(
        err.as_ref()
            .is_some_and(|e| e.is_page_too_large() && e.is_transient()),
        "{err:?}"
    );
    let complexity = error_body(
        "max_complexity",
        "Query has complexity of 30500, which exceeds max complexity of 25000",
    );
    let err = check(200, &[], &complexity).err();
    assert!(
        err.as_ref()
            .is_some_and(|e| e.is_page_too_large() && !e.is_transient()),
        "{err:?}"
    );
}

#[test]
fn data_with_errors_is_an_answer_carrying_the_errors() -> Result<(), Error> {
    let body = json!({
        "data": {"demarche": {"dossiers": {"nodes": [null]}}},
        "errors": [{"message": "Cannot return null for non-nullable field", "path": ["demarche", "dossiers", "nodes", 0, "state"], "extensions": {"code": "invalid_null"}}]
    });
    let answer = check(200, &[], &body.to_string())?;
    assert_eq!(answer.errors.len(), 1);
    assert_eq!(answer.errors[0].code.as_deref(), Some("invalid_null"));
    assert_eq!(
        answer.errors[0].to_string(),
        "`invalid_null`: Cannot return null for non-nullable field (at `demarche.dossiers.nodes.0.state`)"
    );
    assert!(answer.data.pointer("/demarche/dossiers").is_some());
    Ok(())
}

#[test]
fn internal_server_error_code_is_transient_and_plain_500_is_not() {
    let err = check(200, &[], &error_body("internal_server_error", "boom")).err();
    assert!(err.is_some_and(|e| e.is_transient()));
    let body = json!({"data": null, "errors": [{"message": "Internal Server Error", "extensions": {"exception": {"id": "x"}}}]});
    let err = check(500, &[], &body.to_string()).err();
    assert!(matches!(&err, Some(Error::GraphQl { .. })) && err.is_some_and(|e| !e.is_transient()));
}

#[test]
fn networks_are_found_in_messages() {
    assert_eq!(networks_in("allowed: 10.0.0.0/8."), ["10.0.0.0/8"]);
    assert_eq!(networks_in("only from 192.0.2.1, sorry"), ["192.0.2.1"]);
    assert!(networks_in("Le jeton utilisé est invalide (v1.2)").is_empty());
}

/// A 429 with `headers` asks to wait `expected` (at most [`MAX_WAIT`]).
#[track_caller]
fn check_wait(headers: &[(&'static str, &str)], expected: Option<Duration>) {
    let err = check(429, headers, "").err();
    assert!(
        matches!(&err, Some(Error::RateLimited { retry_after }) if *retry_after == expected),
        "{headers:?}: {err:?}"
    );
    assert!(err.is_some_and(|e| e.is_transient() && !e.to_string().is_empty()));
}

#[test]
fn hostile_rate_limit_headers_give_a_bounded_wait_or_none() {
    let secs = Duration::from_secs;
    let in_42_5 = format!("{}.5", NOW_SECS + 42);
    check_wait(
        &[("RateLimit-Reset", "10000000000000000000")],
        Some(MAX_WAIT),
    );
    check_wait(
        &[("RateLimit-Reset", "99999999999999999999999999")],
        Some(MAX_WAIT),
    );
    check_wait(&[("RateLimit-Reset", "1e400")], None);
    check_wait(&[("RateLimit-Reset", "-5")], None);
    check_wait(&[("RateLimit-Reset", "NaN")], None);
    check_wait(&[("RateLimit-Reset", "inf")], None);
    check_wait(&[("RateLimit-Reset", "soon")], None);
    check_wait(&[("RateLimit-Reset", "")], None);
    check_wait(
        &[("RateLimit-Reset", &in_42_5)],
        Some(Duration::from_millis(42_500)),
    );
    check_wait(&[("RateLimit-Reset", "30")], Some(secs(30)));
    check_wait(&[("RateLimit-Reset", "0")], Some(Duration::ZERO));
    check_wait(
        &[("RateLimit-Reset", "soon"), ("Retry-After", "7")],
        Some(secs(7)),
    );
    check_wait(
        &[("Retry-After", "7.5")],
        Some(Duration::from_millis(7_500)),
    );
    check_wait(&[("Retry-After", "18446744073709551615")], Some(MAX_WAIT));
    check_wait(&[("Retry-After", "-1")], None);
    check_wait(&[("Retry-After", "tomorrow")], None);
    check_wait(
        &[("Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT")],
        Some(Duration::ZERO),
    );
    check_wait(
        &[("Retry-After", "Sun, 15 Jun 2025 15:07:00 GMT")],
        Some(secs(20)),
    );
    check_wait(
        &[("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT")],
        Some(MAX_WAIT),
    );
    check_wait(
        &[("Retry-After", "Mon, 01 Jan 1900 00:00:00 GMT")],
        Some(Duration::ZERO),
    );
    check_wait(&[], None);
}

#[test]
fn the_rate_limit_wait_never_exceeds_its_maximum() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "ratelimit-reset",
        HeaderValue::from_static("10000000000000000000"),
    );
    for max in [Duration::ZERO, Duration::from_millis(20), Duration::MAX] {
        for now in [
            UNIX_EPOCH,
            now(),
            UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 4),
        ] {
            let wait = rate_limit_wait(&headers, now, max);
            assert!(wait.is_some_and(|w| w <= max), "{max:?} {now:?}: {wait:?}");
        }
    }
}
