//! The two listeners (API host and file host) over the shared [`World`]: GraphQL requests
//! handed to `ds.rs`, signed-URL redirects and downloads, faults on the wire, `/__sim/*`, and
//! the handle.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::content::Content;
use crate::data::{DossierExtras, ExpectedFile};
use crate::faults::{Fault, FaultPlan, FaultRule, Scope, Subject};
use crate::world::{World, lock};
use crate::{Error, SimClock, SimConfig, Stats};

mod scan;
mod totals;

pub use scan::VIRUS_SCAN_RESULTS;

/// Parsed `{id}-{generation}` blob key.
fn parse_blob(blob: &str) -> Option<(u64, u32)> {
    let (id, generation) = blob.split_once('-')?;
    Some((id.parse().ok()?, generation.parse().ok()?))
}

/// The signed query of file URLs.
#[derive(Debug, Deserialize)]
struct Link {
    expires: i64,
    n: u64,
    sig: String,
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"errors": [{"message": message, "extensions": {"code": code}}]})),
    )
        .into_response()
}

fn html(status: StatusCode, title: &str) -> Response {
    let body = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    (status, [(header::CONTENT_TYPE, "text/html")], body).into_response()
}

/// `POST /api/v2/graphql`: request faults, then the token, then the query.
async fn graphql(AxState(world): AxState<Arc<World>>, headers: HeaderMap, body: Bytes) -> Response {
    let pad_to = match request_faults(&world).await {
        Ok(pad_to) => pad_to,
        Err(response) => return response,
    };
    if let Some(response) = token_refusal(&world, &headers) {
        return response;
    }
    let request: crate::ds::GraphqlRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("invalid JSON body: {e}"),
            );
        }
    };
    answer_query(world, request, pad_to).await
}

/// Fires this request's faults: sleeps for every `SlowApi`, then answers the first refusing
/// fault (`Err`), or gives the `GiganticPage` size to pad the answer to.
async fn request_faults(world: &World) -> Result<Option<u64>, Response> {
    let seq = world.stats.graphql_requests.fetch_add(1, Ordering::Relaxed) + 1;
    let fired = world.fire(
        Scope::Request,
        &Subject {
            seq,
            ..Subject::default()
        },
        |_| true,
    );
    for fault in &fired {
        if let Fault::SlowApi { delay_ms } = fault {
            tokio::time::sleep(Duration::from_millis(*delay_ms)).await;
        }
    }
    let mut pad_to = None;
    for fault in fired {
        match fault {
            Fault::HostileRateLimit { reset, retry_after } => {
                world.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                return Err(hostile_rate_limit(&reset, retry_after.as_deref()));
            }
            Fault::GiganticPage { bytes } => pad_to = Some(bytes),
            Fault::RateLimited {
                reset_in_secs,
                retry_after,
            } => return Err(rate_limited(world, reset_in_secs, retry_after)),
            Fault::BadGateway => {
                world.stats.server_errors.fetch_add(1, Ordering::Relaxed);
                return Err(html(StatusCode::BAD_GATEWAY, "502 Bad Gateway"));
            }
            Fault::ServiceUnavailable => {
                world.stats.server_errors.fetch_add(1, Ordering::Relaxed);
                return Err(html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "503 Service Temporarily Unavailable",
                ));
            }
            _ => {}
        }
    }
    Ok(pad_to)
}

/// A bare 429, before its rate-limit headers.
fn too_many_requests() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "text/plain")],
        "Too many requests\n",
    )
        .into_response()
}

/// [`Fault::RateLimited`]: DS's 429 with its `ratelimit-*` headers, `Retry-After` if asked.
fn rate_limited(world: &World, reset_in_secs: u64, retry_after: bool) -> Response {
    world.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
    let reset = world
        .clock
        .now()
        .timestamp()
        .saturating_add_unsigned(reset_in_secs);
    let mut response = too_many_requests();
    let h = response.headers_mut();
    h.insert("ratelimit-limit", HeaderValue::from_static("400"));
    h.insert("ratelimit-remaining", HeaderValue::from_static("0"));
    h.insert("ratelimit-reset", HeaderValue::from(reset));
    if retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(reset_in_secs));
    }
    response
}

/// DS's refusal of the bearer token, if any: missing (403), expired (401), not the world's (403).
fn token_refusal(world: &World, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        world.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
        return Some(json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Without a token, only persisted queries are allowed",
        ));
    };
    if world.expired_tokens.iter().any(|t| t == token) {
        world.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
        return Some(json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Le jeton utilisé a expiré",
        ));
    }
    if world.token.as_ref().is_some_and(|t| t != token) {
        world.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
        return Some(json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Le jeton utilisé est invalide",
        ));
    }
    None
}

/// Runs the query off the async threads and answers it, padded if asked; a simulator bug
/// becomes a counted, logged 500.
async fn answer_query(
    world: Arc<World>,
    request: crate::ds::GraphqlRequest,
    pad_to: Option<u64>,
) -> Response {
    let worker = Arc::clone(&world);
    let result = tokio::task::spawn_blocking(move || crate::ds::run(&worker, &request)).await;
    match result {
        Ok(Ok(body)) => match pad_to {
            Some(bytes) => padded_json(&body, bytes),
            None => json_answer(&world, &body),
        },
        Ok(Err(bug)) => {
            world.stats.sim_bugs.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%bug, "dsfiles-sim produced a response that does not fit the DS schema");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                &format!("dsfiles-sim bug: {bug}"),
            )
        }
        Err(join) => {
            world.stats.sim_bugs.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%join, "dsfiles-sim query worker failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                "dsfiles-sim query worker failed",
            )
        }
    }
}

/// A GraphQL answer, its size counted in `graphql_response_bytes`.
fn json_answer(world: &World, body: &serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (world.stats.graphql_response_bytes).fetch_add(bytes.len() as u64, Ordering::Relaxed);
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// [`Fault::HostileRateLimit`]: a 429 carrying the raw header values it was given.
fn hostile_rate_limit(reset: &str, retry_after: Option<&str>) -> Response {
    let mut response = too_many_requests();
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(reset) {
        h.insert("ratelimit-reset", value);
    }
    if let Some(Ok(value)) = retry_after.map(HeaderValue::from_str) {
        h.insert(header::RETRY_AFTER, value);
    }
    response
}

/// Whitespace streamed by [`padded_json`], one chunk at a time.
static SPACES: [u8; 64 * 1024] = [b' '; 64 * 1024];

/// [`Fault::GiganticPage`]: `body` preceded by whitespace up to `bytes` in all. The padding
/// is streamed from one static chunk, so a gigabyte answer costs the simulator no memory.
fn padded_json(body: &serde_json::Value, bytes: u64) -> Response {
    let json = Bytes::from(body.to_string());
    let json_len = u64::try_from(json.len()).unwrap_or(u64::MAX);
    let padding = futures::stream::unfold(bytes.saturating_sub(json_len), |left| async move {
        let chunk = usize::try_from(left).map_or(SPACES.len(), |l| l.min(SPACES.len()));
        (chunk > 0).then(|| {
            let rest = left.saturating_sub(u64::try_from(chunk).unwrap_or(u64::MAX));
            (Bytes::from_static(&SPACES[..chunk]), rest)
        })
    });
    let stream = padding
        .chain(futures::stream::once(async move { json }))
        .map(Ok::<_, std::convert::Infallible>);
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// `/rails/active_storage/blobs/redirect/{blob}/{filename}`: verifies, then 302 to the file host.
async fn redirect(
    AxState(world): AxState<Arc<World>>,
    Path((blob, _filename)): Path<(String, String)>,
    link: Result<Query<Link>, QueryRejection>,
) -> Response {
    world.stats.redirects.fetch_add(1, Ordering::Relaxed);
    let (Some((id, generation)), Some(Query(link))) = (parse_blob(&blob), link.ok()) else {
        return (StatusCode::NOT_FOUND, "Not Found\n").into_response();
    };
    if !world.verify(
        &format!("redirect|{blob}|{}|{}", link.expires, link.n),
        &link.sig,
    ) {
        return (StatusCode::FORBIDDEN, "Invalid signature\n").into_response();
    }
    if world.is_expired(link.expires, link.n) {
        world.stats.expired_urls.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::UNAUTHORIZED, "Expired\n").into_response();
    }
    if world.content(id, generation).is_none() {
        return (StatusCode::NOT_FOUND, "Not Found\n").into_response();
    }
    let sig = world.sign(&format!("file|{blob}|{}|{}", link.expires, link.n));
    let mut location = world.file_base.clone();
    if let Ok(mut segments) = location.path_segments_mut() {
        segments.clear().extend(["storage", &blob]);
    }
    location
        .query_pairs_mut()
        .append_pair("expires", &link.expires.to_string())
        .append_pair("n", &link.n.to_string())
        .append_pair("sig", &sig);
    (StatusCode::FOUND, [(header::LOCATION, location.as_str())]).into_response()
}

/// Parses a single `bytes=` range against `len`; `Err(())` when unsatisfiable.
fn parse_range(value: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // multiple ranges: serve the whole file, as many servers do
    }
    let (start, end) = spec.split_once('-')?;
    let range = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            if n == 0 || len == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len - 1)
        }
        (start, "") => (start.parse().ok()?, len.saturating_sub(1)),
        (start, end) => {
            let (s, e): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
            if e < s {
                return None;
            }
            (s, e.min(len.saturating_sub(1)))
        }
    };
    if range.0 >= len {
        Some(Err(()))
    } else {
        Some(Ok(range))
    }
}

/// How the body of a download is damaged.
#[derive(Clone, Copy, Debug, Default)]
struct Damage {
    /// Absolute offset and XOR mask of a corrupted byte.
    corrupt: Option<(u64, u8)>,
    /// Stop after this many body bytes; `reset` makes it an error instead of an early end.
    cut_after: Option<u64>,
    reset: bool,
}

fn body_stream(content: Content, start: u64, len: u64, damage: Damage, world: Arc<World>) -> Body {
    const CHUNK: u64 = 64 * 1024;
    let limit = damage.cut_after.map_or(len, |cut| cut.min(len));
    let stream = futures::stream::unfold(0u64, move |sent| {
        let world = Arc::clone(&world);
        async move {
            if sent >= limit {
                if damage.cut_after.is_some() && sent < len {
                    // Let hyper flush the headers and the bytes sent so far before failing,
                    // so the client sees a response that breaks mid-body.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if damage.cut_after.is_some() && damage.reset && sent < len {
                    let error = std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "dsfiles-sim: connection reset (fault)",
                    );
                    return Some((Err(error), u64::MAX));
                }
                return None;
            }
            let n = CHUNK.min(limit - sent);
            let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
            let filled = content.fill(start + sent, &mut buf);
            buf.truncate(filled);
            if let Some((at, mask)) = damage.corrupt
                && at >= start + sent
                && at < start + sent + filled as u64
            {
                buf[usize::try_from(at - start - sent).unwrap_or(0)] ^= mask;
            }
            world
                .stats
                .bytes_served
                .fetch_add(filled as u64, Ordering::Relaxed);
            if filled == 0 {
                return None;
            }
            Some((
                Ok::<_, std::io::Error>(Bytes::from(buf)),
                sent + filled as u64,
            ))
        }
    });
    Body::from_stream(stream)
}

/// A body that does not keep to the size DS announced (whole file, ranges ignored).
#[derive(Clone, Copy, Debug)]
enum Hostile {
    Endless,
    Drip { interval_ms: u64 },
    Longer { extra: u64 },
}

fn hostile_response(
    hostile: Hostile,
    content: Content,
    content_type: String,
    world: Arc<World>,
) -> Response {
    const CHUNK: u64 = 16 * 1024;
    let len = content.len();
    // (bytes in total, bytes per chunk, pause before each chunk)
    let (total, chunk, pause) = match hostile {
        Hostile::Endless => (None, CHUNK, None),
        Hostile::Drip { interval_ms } => (Some(len), 1, Some(Duration::from_millis(interval_ms))),
        Hostile::Longer { extra } => (Some(len.saturating_add(extra)), CHUNK, None),
    };
    let stream = futures::stream::unfold(0u64, move |sent| {
        let world = Arc::clone(&world);
        async move {
            let n = total.map_or(chunk, |total| chunk.min(total.saturating_sub(sent)));
            if n == 0 {
                return None;
            }
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
            let mut buf = vec![0xA5u8; usize::try_from(n).unwrap_or(0)];
            if sent < len {
                content.fill(sent, &mut buf);
            }
            world.stats.bytes_served.fetch_add(n, Ordering::Relaxed);
            Some((
                Ok::<_, std::io::Error>(Bytes::from(buf)),
                sent.saturating_add(n),
            ))
        }
    });
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type);
    if let Some(total) = total {
        builder = builder.header(header::CONTENT_LENGTH, total);
    }
    builder
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `GET`/`HEAD` of a signed file URL: link checks, download faults, then the (ranged) body.
async fn file(
    AxState(world): AxState<Arc<World>>,
    method: Method,
    Path(blob): Path<String>,
    link: Result<Query<Link>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        lock(&world.file_host_authorizations)
            .push(String::from_utf8_lossy(auth.as_bytes()).into_owned());
    }
    let head = method == Method::HEAD;
    let seq = if head {
        world.stats.file_heads.fetch_add(1, Ordering::Relaxed);
        0
    } else {
        world.stats.file_requests.fetch_add(1, Ordering::Relaxed) + 1
    };
    let (id, content, content_type, dossier) = match signed_content(&world, &blob, link) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let (damage, hostile) = if head {
        (Damage::default(), None)
    } else {
        match download_faults(&world, seq, id, dossier, content.len()).await {
            Ok(shaped) => shaped,
            Err(response) => return response,
        }
    };
    if let Some(hostile) = hostile {
        return hostile_response(hostile, content, content_type, world);
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_range(v, content.len()));
    ranged_response(range, head, content, content_type, damage, world)
}

/// The file behind a signed link `(id, content, content type, dossier)`, or the refusal:
/// 404 for an unknown blob or a missing query, 403 for a bad signature, 401 once expired.
fn signed_content(
    world: &World,
    blob: &str,
    link: Result<Query<Link>, QueryRejection>,
) -> Result<(u64, Content, String, u64), Box<Response>> {
    let (Some((id, generation)), Some(Query(link))) = (parse_blob(blob), link.ok()) else {
        return Err(Box::new(
            (StatusCode::NOT_FOUND, "NoSuchKey\n").into_response(),
        ));
    };
    if !world.verify(
        &format!("file|{blob}|{}|{}", link.expires, link.n),
        &link.sig,
    ) {
        return Err(Box::new(
            (StatusCode::FORBIDDEN, "SignatureDoesNotMatch\n").into_response(),
        ));
    }
    let Some((content, content_type, dossier)) = world.content(id, generation) else {
        return Err(Box::new(
            (StatusCode::NOT_FOUND, "NoSuchKey\n").into_response(),
        ));
    };
    if world.is_expired(link.expires, link.n) {
        return Err(Box::new(expired_response(world)));
    }
    Ok((id, content, content_type, dossier))
}

/// DS's answer to an expired signed URL, counted in `expired_urls`.
fn expired_response(world: &World) -> Response {
    world.stats.expired_urls.fetch_add(1, Ordering::Relaxed);
    (StatusCode::UNAUTHORIZED, "Temp URL invalid\n").into_response()
}

/// Fires this download's faults in order: the damage and hostile shape of the body of `len`
/// bytes, or the response that replaces it (expiry, redirect).
async fn download_faults(
    world: &World,
    seq: u64,
    id: u64,
    dossier: u64,
    len: u64,
) -> Result<(Damage, Option<Hostile>), Response> {
    let subject = Subject {
        seq,
        file: Some(id),
        dossier: Some(dossier),
    };
    let mut damage = Damage::default();
    let mut hostile = None;
    for fault in world.fire(Scope::Download, &subject, |_| true) {
        match fault {
            Fault::SlowFile { delay_ms } => {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await
            }
            Fault::ExpiredUrl => return Err(expired_response(world)),
            Fault::ExpireAllUrls => {
                world.expire_all_urls();
                return Err(expired_response(world));
            }
            Fault::ResetMidBody => {
                damage = Damage {
                    cut_after: Some(len / 2),
                    reset: true,
                    ..damage
                }
            }
            Fault::TruncatedBody => {
                damage = Damage {
                    cut_after: Some(len / 2),
                    reset: false,
                    ..damage
                }
            }
            Fault::Corrupt { varying } => damage.corrupt = corruption(world, id, len, varying),
            Fault::RedirectTo { url } => {
                return Err((StatusCode::FOUND, [(header::LOCATION, url)]).into_response());
            }
            Fault::EndlessBody => hostile = Some(Hostile::Endless),
            Fault::DripBody { interval_ms } => hostile = Some(Hostile::Drip { interval_ms }),
            Fault::LongerBody { extra } => hostile = Some(Hostile::Longer { extra }),
            _ => {}
        }
    }
    Ok((damage, hostile))
}

/// [`Fault::Corrupt`]: the offset and XOR mask of the flipped byte, the same every attempt or
/// (`varying`) moving with the file's attempt counter; `None` for an empty file.
fn corruption(world: &World, id: u64, len: u64, varying: bool) -> Option<(u64, u8)> {
    let attempt = {
        let mut faults = world.faults();
        let counter = faults.attempts.entry(id).or_default();
        *counter += 1;
        *counter
    };
    let (at, mask) = if varying {
        (
            (len / 2 + attempt * 7) % len.max(1),
            (attempt % 255 + 1) as u8,
        )
    } else {
        (len / 2, 0xFF)
    };
    (len > 0).then_some((at, mask))
}

/// The whole file or the asked range (416 if unsatisfiable), with its headers; damage is
/// scaled to the served body; `HEAD` gets the headers alone.
fn ranged_response(
    range: Option<Result<(u64, u64), ()>>,
    head: bool,
    content: Content,
    content_type: String,
    mut damage: Damage,
    world: Arc<World>,
) -> Response {
    let len = content.len();
    let (status, start, end_inclusive) = match range {
        Some(Ok((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Some(Err(())) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response();
        }
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
    };
    let body_len = if len == 0 {
        0
    } else {
        end_inclusive - start + 1
    };
    // Damage is expressed against the served body.
    if let Some(cut) = damage.cut_after {
        damage.cut_after = Some(cut.min(body_len / 2));
    }
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, body_len)
        .header(header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{end_inclusive}/{len}"),
        );
    }
    let body = if head {
        Body::empty()
    } else {
        body_stream(content, start, body_len, damage, world)
    };
    builder
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn set_faults(
    AxState(world): AxState<Arc<World>>,
    axum::Json(plan): axum::Json<FaultPlan>,
) -> StatusCode {
    world.faults().plan = plan;
    StatusCode::NO_CONTENT
}

async fn get_faults(AxState(world): AxState<Arc<World>>) -> axum::Json<FaultPlan> {
    axum::Json(world.faults().plan.clone())
}

async fn get_stats(AxState(world): AxState<Arc<World>>) -> axum::Json<Stats> {
    axum::Json(Stats::from_counters(&world.stats))
}

async fn expire_urls(AxState(world): AxState<Arc<World>>) -> StatusCode {
    world.expire_all_urls();
    StatusCode::NO_CONTENT
}

fn api_router(world: Arc<World>) -> Router {
    Router::new()
        .route("/api/v2/graphql", post(graphql))
        .route(
            "/rails/active_storage/blobs/redirect/{blob}/{filename}",
            get(redirect),
        )
        .route("/__sim/faults", post(set_faults).get(get_faults))
        .route("/__sim/stats", get(get_stats))
        .route("/__sim/expire-urls", post(expire_urls))
        .with_state(world)
}

fn file_router(world: Arc<World>) -> Router {
    Router::new()
        .route("/storage/{blob}", get(file))
        .with_state(world)
}

/// A running simulator. Dropping it stops the servers; [`SimHandle::shutdown`] does it gracefully.
pub struct SimHandle {
    world: Arc<World>,
    api_addr: SocketAddr,
    file_addr: SocketAddr,
    demarche: u64,
    token: String,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("api_addr", &self.api_addr)
            .field("file_addr", &self.file_addr)
            .field("demarche", &self.demarche)
            .finish_non_exhaustive()
    }
}

/// Binds the API host and the file host on `127.0.0.1:0` and serves the seeded démarche.
pub async fn start(config: SimConfig) -> Result<SimHandle, Error> {
    let bind = |what: &'static str| async move {
        TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| Error::Bind { what, source })
    };
    let api = bind("API host").await?;
    let files = bind("file host").await?;
    serve(config, api, files).await
}

/// Serves on the given listeners (e.g. a fixed port for `dsfiles demo`).
pub async fn serve(
    config: SimConfig,
    api: TcpListener,
    files: TcpListener,
) -> Result<SimHandle, Error> {
    let demarche = config.demarche;
    if i32::try_from(demarche).is_err()
        || demarche
            .saturating_mul(10)
            .saturating_add(config.groupes as u64)
            > i32::MAX as u64
    {
        return Err(Error::InvalidConfig {
            reason: format!("démarche number `{demarche}` does not fit a GraphQL Int"),
        });
    }
    if config.files_per_dossier.start() > config.files_per_dossier.end() {
        return Err(Error::InvalidConfig {
            reason: format!(
                "empty files_per_dossier range `{:?}`",
                config.files_per_dossier
            ),
        });
    }
    crate::external::validate(&config)?;
    let api_addr = api.local_addr().map_err(|source| Error::Bind {
        what: "API host",
        source,
    })?;
    let file_addr = files.local_addr().map_err(|source| Error::Bind {
        what: "file host",
        source,
    })?;
    let api_base =
        Url::parse(&format!("http://{api_addr}/")).map_err(|e| Error::InvalidConfig {
            reason: format!("API address `{api_addr}`: {e}"),
        })?;
    let file_base =
        Url::parse(&format!("http://{file_addr}/")).map_err(|e| Error::InvalidConfig {
            reason: format!("file host address `{file_addr}`: {e}"),
        })?;
    let world = Arc::new(World::new(&config, api_base, file_base)?);
    let cancel = CancellationToken::new();
    let tasks = vec![
        tokio::spawn(
            axum::serve(api, api_router(Arc::clone(&world)))
                .with_graceful_shutdown(cancel.clone().cancelled_owned())
                .into_future(),
        ),
        tokio::spawn(
            axum::serve(files, file_router(Arc::clone(&world)))
                .with_graceful_shutdown(cancel.clone().cancelled_owned())
                .into_future(),
        ),
    ];
    tracing::debug!(%api_addr, %file_addr, demarche, "dsfiles-sim listening");
    Ok(SimHandle {
        world,
        api_addr,
        file_addr,
        demarche,
        token: config
            .token
            .unwrap_or_else(|| "dsfiles-sim-token".to_owned()),
        cancel,
        tasks,
    })
}

impl SimHandle {
    /// The GraphQL endpoint (`http://127.0.0.1:PORT/api/v2/graphql`).
    pub fn endpoint(&self) -> Url {
        let mut url = self.world.api_base.clone();
        url.set_path("/api/v2/graphql");
        url
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The storage host that signed URLs redirect to.
    pub fn file_host(&self) -> SocketAddr {
        self.file_addr
    }

    /// `POST` a [`FaultPlan`] as JSON here to replace the plan (black-box tests).
    pub fn admin_faults_url(&self) -> Url {
        let mut url = self.world.api_base.clone();
        url.set_path("/__sim/faults");
        url
    }

    pub fn demarche(&self) -> u64 {
        self.demarche
    }

    /// A token the simulator accepts (the configured one, or a fixed one when any is accepted).
    pub fn token(&self) -> String {
        self.token.clone()
    }

    /// The simulator's clock (shared: advancing it expires URLs).
    pub fn clock(&self) -> SimClock {
        self.world.clock.clone()
    }

    pub fn set_now(&self, at: DateTime<Utc>) {
        self.world.clock.set(at);
    }

    pub fn advance_clock(&self, by: Duration) {
        self.world.clock.advance(by);
    }

    /// Numbers of the live dossiers, ascending.
    pub fn dossier_numbers(&self) -> Vec<u64> {
        self.world.read_state().dossiers.keys().copied().collect()
    }

    /// Numbers of the groupes instructeurs.
    pub fn groupes(&self) -> Vec<u64> {
        self.world.read_state().groupes.keys().copied().collect()
    }

    /// The groupe instructeur of a dossier.
    pub fn groupe_of(&self, dossier: u64) -> Option<u64> {
        self.world
            .read_state()
            .dossiers
            .get(&dossier)
            .map(|d| d.groupe)
    }

    /// Numbers of the deleted dossiers.
    pub fn deleted_dossiers(&self) -> Vec<u64> {
        self.world
            .read_state()
            .deleted
            .iter()
            .map(|d| d.number)
            .collect()
    }

    /// Marks dossier `number` modified now. With `replace_file`, its first uploaded file gets
    /// new bytes (new checksum); returns that file's id.
    pub fn touch_dossier(&self, number: u64, replace_file: bool) -> Result<Option<u64>, Error> {
        let now = self.world.clock.now();
        self.world
            .write_state()
            .touch(number, now, replace_file)
            .ok_or(Error::DossierNotFound { number })
    }

    /// Adds a new dossier, modified now; returns its number.
    pub fn add_dossier(&self) -> u64 {
        let now = self.world.clock.now();
        self.world
            .write_state()
            .add_dossier(DossierExtras::default(), Some(now))
    }

    /// Deletes a dossier: it leaves `dossiers` and appears in `deletedDossiers`.
    pub fn delete_dossier(&self, number: u64) -> Result<(), Error> {
        let now = self.world.clock.now();
        if self.world.write_state().delete(number, now) {
            Ok(())
        } else {
            Err(Error::DossierNotFound { number })
        }
    }

    /// Every URL issued so far answers 401 from now on; new queries give working ones.
    pub fn expire_all_urls(&self) {
        self.world.expire_all_urls();
    }

    /// Replaces the fault plan.
    pub fn set_faults(&self, plan: FaultPlan) {
        self.world.faults().plan = plan;
    }

    /// Adds one rule to the fault plan.
    pub fn add_fault(&self, fault: Fault, target: crate::Target, times: Option<u32>) {
        self.world.faults().plan.rules.push(FaultRule {
            fault,
            target,
            times,
        });
    }

    /// The plan with its remaining counts.
    pub fn faults(&self) -> FaultPlan {
        self.world.faults().plan.clone()
    }

    pub fn stats(&self) -> Stats {
        Stats::from_counters(&self.world.stats)
    }

    /// Every `Authorization` header the file host ever received (should be none).
    pub fn file_host_authorizations(&self) -> Vec<String> {
        lock(&self.world.file_host_authorizations).clone()
    }

    /// Ground truth: every file of the live dossiers, in dossier order then document order.
    pub fn expected_files(
        &self,
        include_generated: bool,
        include_entreprise: bool,
    ) -> Vec<ExpectedFile> {
        self.world
            .read_state()
            .expected(include_generated, include_entreprise)
    }

    /// The bytes the file host serves for file `id` (current version), as a reader.
    pub fn file_bytes(&self, id: u64) -> Result<FileBytes, Error> {
        let state = self.world.read_state();
        let file = state
            .files
            .get(usize::try_from(id).unwrap_or(usize::MAX))
            .ok_or(Error::FileNotFound { id })?;
        Ok(FileBytes {
            content: file.content,
            pos: 0,
        })
    }

    /// Stops both servers, waiting (at most 5 s) for in-flight requests.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            match tokio::time::timeout(Duration::from_secs(5), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => {
                    tracing::warn!(%error, "dsfiles-sim server stopped with an error")
                }
                Ok(Err(join)) => tracing::warn!(%join, "dsfiles-sim server task failed"),
                Err(_) => abort.abort(),
            }
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The served bytes of one file, generated on the fly.
#[derive(Debug)]
pub struct FileBytes {
    content: Content,
    pos: u64,
}

impl FileBytes {
    pub fn len(&self) -> u64 {
        self.content.len()
    }

    pub fn is_empty(&self) -> bool {
        self.content.len() == 0
    }
}

impl std::io::Read for FileBytes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.content.fill(self.pos, buf);
        self.pos += n as u64;
        Ok(n)
    }
}
