//! DS webhooks. Payloads are untrusted: only démarche and dossier numbers are taken from
//! them, the data itself comes from the API when the sync runs.
//!
//! - Current: `POST /v1/webhooks/ds`, JSON `{webhook_id, demarche_number, events: [{sequence,
//!   type, dossier_number, timestamp}]}` (at most 100 events), signed with
//!   `X-Webhook-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`; the current and the
//!   previous secret are accepted; deliveries are at-least-once, so events are deduplicated
//!   on `sequence` (a bounded window per `webhook_id`).
//! - Legacy: `POST /v1/webhooks/ds/{secret}`, form-encoded `procedure_id`, `dossier_id`,
//!   `state`, `updated_at`, unsigned; a wrong secret is answered 404.
//!
//! Both enqueue syncs of the named dossiers into the démarche's configured destination
//! (coalesced with a queued job for the same destination) and answer 202 at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hmac::{Hmac, Mac as _};
use serde::Deserialize;
use sha2::Sha256;

use crate::api::{self, WebhookAccepted};
use crate::error::{ApiError, ApiPath};
use crate::jobs::{SubmitError, lock};
use crate::metrics::WebhookOutcome;
use crate::{AppState, routes};

/// The signature header of the current webhooks.
pub const SIGNATURE_HEADER: &str = "x-webhook-signature-256";
/// Most events in one delivery.
pub const MAX_EVENTS: usize = 100;
/// Sequences remembered per webhook.
const WINDOW: usize = 4096;
/// Webhooks remembered (the least recently seen is forgotten first).
const MAX_WEBHOOKS: usize = 256;

/// A signed delivery. Its numbers are read as JSON Schema's `integer` counts them (`7` and
/// `7.0`, [`crate::api::whole`]), so that a body valid by the OpenAPI document is read.
#[derive(Debug, Deserialize)]
struct Delivery {
    webhook_id: serde_json::Value,
    #[serde(deserialize_with = "crate::api::whole::number")]
    demarche_number: u64,
    events: Vec<DeliveryEvent>,
}

#[derive(Debug, Deserialize)]
struct DeliveryEvent {
    #[serde(deserialize_with = "crate::api::whole::number")]
    sequence: u64,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "crate::api::whole::optional")]
    dossier_number: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct LegacyDelivery {
    procedure_id: u64,
    dossier_id: u64,
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "part of the documented payload; the data comes from the API"
    )]
    state: Option<String>,
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "part of the documented payload; the data comes from the API"
    )]
    updated_at: Option<String>,
}

/// Recently seen event sequences, per webhook, in bounded memory.
#[derive(Debug, Default)]
pub(crate) struct Dedup {
    inner: Mutex<DedupInner>,
}

#[derive(Debug, Default)]
struct DedupInner {
    windows: HashMap<String, Window>,
    /// Webhook ids, least recently seen first.
    recency: VecDeque<String>,
}

#[derive(Debug, Default)]
struct Window {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Dedup {
    /// Marks `sequences` of `webhook` as seen and returns, for each, whether it is new.
    pub(crate) fn observe(&self, webhook: &str, sequences: &[u64]) -> Vec<bool> {
        let mut inner = lock(&self.inner);
        if let Some(position) = inner.recency.iter().position(|id| id == webhook) {
            inner.recency.remove(position);
        }
        inner.recency.push_back(webhook.to_owned());
        while inner.recency.len() > MAX_WEBHOOKS {
            if let Some(old) = inner.recency.pop_front() {
                inner.windows.remove(&old);
            }
        }
        let window = inner.windows.entry(webhook.to_owned()).or_default();
        sequences
            .iter()
            .map(|&sequence| {
                if !window.seen.insert(sequence) {
                    return false;
                }
                window.order.push_back(sequence);
                if window.order.len() > WINDOW
                    && let Some(old) = window.order.pop_front()
                {
                    window.seen.remove(&old);
                }
                true
            })
            .collect()
    }

    /// Forgets `sequences` (their delivery was not processed, so a retry must be).
    pub(crate) fn forget(&self, webhook: &str, sequences: &[u64]) {
        let mut inner = lock(&self.inner);
        if let Some(window) = inner.windows.get_mut(webhook) {
            for sequence in sequences {
                if window.seen.remove(sequence) {
                    window.order.retain(|s| s != sequence);
                }
            }
        }
    }
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under one of the
/// configured secrets (compared in constant time).
pub(crate) fn signature_valid(state: &AppState, body: &[u8], signature: Option<&str>) -> bool {
    let Some(hex_digest) = signature.and_then(|s| s.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    state
        .config()
        .webhook_secrets
        .iter()
        .fold(false, |acc, secret| {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
                return acc;
            };
            mac.update(body);
            acc | mac.verify_slice(&expected).is_ok()
        })
}

fn unconfigured() -> ApiError {
    ApiError::not_found("no such route")
}

/// A démarche or dossier number of a payload outside DS's range: refused (422, counted as
/// rejected) before anything is queued.
fn check_number(
    state: &AppState,
    kind: &'static str,
    name: &str,
    value: u64,
) -> Result<(), ApiError> {
    api::check_ds_number(name, value).map_err(|message| {
        state.metrics().webhook(kind, WebhookOutcome::Rejected);
        ApiError::invalid(message)
    })
}

fn no_destination(demarche: u64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "demarche_not_configured",
        format!("no webhook destination is configured for démarche `{demarche}`"),
    )
}

/// The metrics kind of the current (signed) webhooks.
const SIGNED: &str = "signed";

/// `POST /v1/webhooks/ds`.
pub(crate) async fn signed(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if state.config().webhook_secrets.is_empty() {
        return Err(unconfigured());
    }
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if !signature_valid(&state, &body, signature) {
        state.metrics().webhook(SIGNED, WebhookOutcome::Rejected);
        return Err(ApiError::unauthorized(format!(
            "missing or invalid `{SIGNATURE_HEADER}` signature"
        )));
    }
    let delivery = parse_delivery(&state, &body)?;
    let webhook = webhook_id(&state, &delivery)?;
    let demarche = delivery.demarche_number;
    check_number(&state, SIGNED, "demarche_number", demarche)?;
    for number in delivery.events.iter().filter_map(|e| e.dossier_number) {
        check_number(&state, SIGNED, "dossier_number", number)?;
    }
    let Some(dest) = state.config().webhook_destinations.get(&demarche).cloned() else {
        state.metrics().webhook(SIGNED, WebhookOutcome::Rejected);
        return Err(no_destination(demarche));
    };
    let fresh = observe_fresh(&state, &webhook, &delivery);
    tracing::info!(
        webhook = %webhook,
        demarche,
        events = delivery.events.len(),
        duplicates = fresh.duplicates,
        types = ?delivery.events.iter().filter_map(|e| e.kind.as_deref()).collect::<HashSet<_>>(),
        "DS webhook received"
    );
    let jobs = enqueue_fresh(&state, &webhook, demarche, &dest, &fresh).await?;
    let outcome = if fresh.dossiers.is_empty() && fresh.duplicates > 0 {
        WebhookOutcome::Duplicate
    } else {
        WebhookOutcome::Accepted
    };
    state.metrics().webhook(SIGNED, outcome);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(WebhookAccepted {
            jobs,
            duplicates: fresh.duplicates,
        }),
    )
        .into_response())
}

/// The delivery in `body`, refused (400 when not the documented JSON, 422 beyond
/// [`MAX_EVENTS`] events) and counted as rejected.
fn parse_delivery(state: &AppState, body: &[u8]) -> Result<Delivery, ApiError> {
    let delivery: Delivery = serde_json::from_slice(body).map_err(|e| {
        state.metrics().webhook(SIGNED, WebhookOutcome::Rejected);
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("invalid webhook payload: {e}"),
        )
    })?;
    if delivery.events.len() > MAX_EVENTS {
        state.metrics().webhook(SIGNED, WebhookOutcome::Rejected);
        return Err(ApiError::invalid(format!(
            "`{}` events in one delivery; at most `{MAX_EVENTS}`",
            delivery.events.len()
        )));
    }
    Ok(delivery)
}

/// The delivery's `webhook_id` as the key of its dedup window (a string, cut to 128
/// characters, or an integer); anything else is refused (422, counted as rejected).
fn webhook_id(state: &AppState, delivery: &Delivery) -> Result<String, ApiError> {
    dedup_key(&delivery.webhook_id).ok_or_else(|| {
        state.metrics().webhook(SIGNED, WebhookOutcome::Rejected);
        ApiError::invalid("`webhook_id` must be a string or an integer of at most 64 bits")
    })
}

/// A `webhook_id` as its dedup key: a string cut to 128 characters, or an integer written
/// without a fraction (`7` and `7.0`, one integer for JSON Schema, are one webhook).
fn dedup_key(id: &serde_json::Value) -> Option<String> {
    match id {
        serde_json::Value::String(s) => Some(s.chars().take(128).collect()),
        serde_json::Value::Number(n) if n.is_i64() => Some(n.to_string()),
        serde_json::Value::Number(n) => match crate::api::whole::of(n) {
            Some(whole) => Some(whole.to_string()),
            None => {
                // A negative one written as a float (`-3.0`); `i64::MIN as f64` is exactly -2^63.
                let f = n.as_f64().filter(|f| f.fract() == 0.0)?;
                (i64::MIN as f64..0.0)
                    .contains(&f)
                    .then(|| (f as i64).to_string())
            }
        },
        _ => None,
    }
}

/// What a delivery brings that `webhook` had not delivered before.
struct Fresh {
    /// Events skipped as already seen (same `sequence`).
    duplicates: usize,
    /// Sequences of the new events (forgotten again when they cannot be queued).
    sequences: Vec<u64>,
    /// Dossiers named by the new events, sorted, each once.
    dossiers: Vec<u64>,
}

/// Marks the delivery's events as seen for `webhook` and keeps the new ones.
fn observe_fresh(state: &AppState, webhook: &str, delivery: &Delivery) -> Fresh {
    let sequences: Vec<u64> = delivery.events.iter().map(|e| e.sequence).collect();
    let fresh = state.dedup().observe(webhook, &sequences);
    let duplicates = fresh.iter().filter(|new| !**new).count();
    let new_sequences: Vec<u64> = sequences
        .iter()
        .zip(&fresh)
        .filter(|(_, new)| **new)
        .map(|(s, _)| *s)
        .collect();
    let mut dossiers: Vec<u64> = delivery
        .events
        .iter()
        .zip(&fresh)
        .filter(|(_, new)| **new)
        .filter_map(|(event, _)| event.dossier_number)
        .collect();
    dossiers.sort_unstable();
    dossiers.dedup();
    Fresh {
        duplicates,
        sequences: new_sequences,
        dossiers,
    }
}

/// Queues one sync of the fresh dossiers into `dest` (nothing when there are none) and
/// returns its job; when it cannot be queued, the fresh sequences are forgotten so that DS's
/// retry of the delivery is processed.
async fn enqueue_fresh(
    state: &AppState,
    webhook: &str,
    demarche: u64,
    dest: &str,
    fresh: &Fresh,
) -> Result<Vec<String>, ApiError> {
    let mut jobs = Vec::new();
    if !fresh.dossiers.is_empty() {
        match state
            .jobs()
            .enqueue_dossiers(demarche, dest, &fresh.dossiers)
            .await
        {
            Ok(record) => jobs.push(record.id),
            Err(SubmitError::QueueFull { max_queued }) => {
                state.dedup().forget(webhook, &fresh.sequences);
                return Err(routes::queue_full(state, max_queued));
            }
            Err(SubmitError::Unavailable(details)) => {
                state.dedup().forget(webhook, &fresh.sequences);
                return Err(routes::database_unavailable(&details));
            }
            Err(SubmitError::ShuttingDown | SubmitError::Conflict(_)) => {
                state.dedup().forget(webhook, &fresh.sequences);
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting_down",
                    "the service is shutting down",
                ));
            }
        }
    }
    Ok(jobs)
}

/// `POST /v1/webhooks/ds/{secret}`.
pub(crate) async fn legacy(
    State(state): State<AppState>,
    ApiPath(secret): ApiPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    const KIND: &str = "legacy";
    let valid = state
        .config()
        .webhook_secrets
        .iter()
        .fold(false, |acc, configured| {
            acc | configured.matches(secret.as_bytes())
        });
    if !valid {
        state.metrics().webhook(KIND, WebhookOutcome::Rejected);
        return Err(unconfigured());
    }
    let delivery: LegacyDelivery = serde_urlencoded::from_bytes(&body).map_err(|e| {
        state.metrics().webhook(KIND, WebhookOutcome::Rejected);
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_form",
            format!("invalid webhook form: {e}"),
        )
    })?;
    let demarche = delivery.procedure_id;
    check_number(&state, KIND, "procedure_id", demarche)?;
    check_number(&state, KIND, "dossier_id", delivery.dossier_id)?;
    let Some(dest) = state.config().webhook_destinations.get(&demarche).cloned() else {
        state.metrics().webhook(KIND, WebhookOutcome::Rejected);
        return Err(no_destination(demarche));
    };
    tracing::info!(
        demarche,
        dossier = delivery.dossier_id,
        "legacy DS webhook received"
    );
    match state
        .jobs()
        .enqueue_dossiers(demarche, &dest, &[delivery.dossier_id])
        .await
    {
        Ok(record) => {
            state.metrics().webhook(KIND, WebhookOutcome::Accepted);
            Ok((
                StatusCode::ACCEPTED,
                axum::Json(WebhookAccepted {
                    jobs: vec![record.id],
                    duplicates: 0,
                }),
            )
                .into_response())
        }
        Err(SubmitError::QueueFull { max_queued }) => Err(routes::queue_full(&state, max_queued)),
        Err(SubmitError::Unavailable(details)) => Err(routes::database_unavailable(&details)),
        Err(SubmitError::ShuttingDown | SubmitError::Conflict(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the service is shutting down",
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_delivery_reads_integers_however_they_are_written() {
        let body = json!({
            "webhook_id": 7.0, "demarche_number": 1234.0,
            "events": [{"sequence": 5.0, "dossier_number": 9.0}, {"sequence": 6, "dossier_number": null}],
        });
        let delivery: Delivery = serde_json::from_value(body).expect("a valid delivery");
        assert_eq!(delivery.demarche_number, 1234);
        let events: Vec<_> = delivery
            .events
            .iter()
            .map(|e| (e.sequence, e.dossier_number))
            .collect();
        assert_eq!(events, [(5, Some(9)), (6, None)]);
        for refused in [
            json!({"webhook_id": "w", "demarche_number": 1.5, "events": []}),
            json!({"webhook_id": "w", "demarche_number": 1, "events": [{"sequence": -1}]}),
            json!({"webhook_id": "w", "demarche_number": 1, "events": [{"sequence": 1, "dossier_number": 2.5}]}),
        ] {
            let parsed = serde_json::from_value::<Delivery>(refused.clone());
            assert!(parsed.is_err(), "{refused}");
        }
    }

    #[test]
    fn a_webhook_id_is_a_string_or_an_integer() {
        let cases = [
            (json!("wh-1"), Some("wh-1".to_owned())),
            (json!("é".repeat(200)), Some("é".repeat(128))),
            (json!(7), Some("7".to_owned())),
            (json!(7.0), Some("7".to_owned())),
            (json!(-3), Some("-3".to_owned())),
            (json!(-3.0), Some("-3".to_owned())),
            (json!(7.5), None),
            (json!(1e19), Some("10000000000000000000".to_owned())),
            (json!(-1e19), None),
            (json!(1e20), None),
            (json!(null), None),
            (json!(true), None),
            (json!(["w"]), None),
        ];
        for (id, expected) in cases {
            assert_eq!(dedup_key(&id), expected, "{id}");
        }
    }

    #[test]
    fn dedup_remembers_a_bounded_window_per_webhook() {
        let dedup = Dedup::default();
        assert_eq!(dedup.observe("w1", &[1, 2, 2]), [true, true, false]);
        assert_eq!(dedup.observe("w1", &[2, 3]), [false, true]);
        assert_eq!(dedup.observe("w2", &[1]), [true]);
        dedup.forget("w1", &[3]);
        assert_eq!(dedup.observe("w1", &[3]), [true]);
        let many: Vec<u64> = (100..100 + WINDOW as u64).collect();
        dedup.observe("w1", &many);
        // The oldest sequences fell out of the window; the recent ones are still known.
        assert_eq!(
            dedup.observe("w1", &[1, 100 + WINDOW as u64 - 1]),
            [true, false]
        );
        for i in 0..MAX_WEBHOOKS {
            dedup.observe(&format!("other{i}"), &[1]);
        }
        assert_eq!(lock(&dedup.inner).windows.len(), MAX_WEBHOOKS);
        assert_eq!(
            dedup.observe("w2", &[1]),
            [true],
            "w2 was the least recently seen and forgotten"
        );
    }
}
