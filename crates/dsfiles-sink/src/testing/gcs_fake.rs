//! TEST SUPPORT ONLY — a small fake of Google Cloud Storage's **XML API**, the API that
//! object_store's GCS client speaks. fake-gcs-server implements only the read side of that API
//! (fsouza/fake-gcs-server#852), so the write path (single PUT, XML multipart upload) is
//! exercised against this fake, written from the public documentation:
//! <https://cloud.google.com/storage/docs/xml-api/reference-methods>. It is not GCS: passing
//! here shows that the sink drives object_store's GCS client correctly, not that Google's
//! service accepts it. See docs/storage.md.
//!
//! Only built with the `testing` cargo feature; never part of a release binary.
//!
//! Routes: `PUT /{bucket}/{object}` (object, or a part with `?partNumber&uploadId`),
//! `POST ?uploads` (initiate), `POST ?uploadId` (complete), `DELETE ?uploadId` (abort),
//! `GET`/`HEAD`/`DELETE /{bucket}/{object}` and `GET /{bucket}?list-type=2&prefix=`.
//! Every object has a generation (`x-goog-generation`), and a single PUT honours
//! `x-goog-if-generation-match` (`0`: the object must not exist) with `412 Precondition Failed`,
//! checked and applied under one lock, like GCS.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

const LAST_MODIFIED: &str = "Sat, 29 Nov 2025 10:00:00 GMT";
const LAST_MODIFIED_RFC3339: &str = "2025-11-29T10:00:00Z";
const META_PREFIX: &str = "x-goog-meta-";

#[derive(Clone, Debug)]
struct Object {
    data: Bytes,
    headers: Vec<(String, String)>,
    etag: String,
    generation: u64,
}

#[derive(Debug, Default)]
struct Upload {
    bucket: String,
    key: String,
    headers: Vec<(String, String)>,
    parts: BTreeMap<usize, Bytes>,
}

#[derive(Debug, Default)]
pub struct Inner {
    objects: BTreeMap<(String, String), Object>,
    uploads: HashMap<String, Upload>,
    next_id: u64,
    /// Parts received over the fake's lifetime (to prove multipart was used).
    pub parts_received: usize,
}

impl Inner {
    /// Forgets every multipart upload in progress (as if they had expired).
    pub fn clear_uploads(&mut self) {
        self.uploads.clear();
    }

    /// The headers kept with an object.
    pub fn headers_of(&self, bucket: &str, key: &str) -> Option<Vec<(String, String)>> {
        self.objects
            .get(&(bucket.to_owned(), key.to_owned()))
            .map(|o| o.headers.clone())
    }
}

#[derive(Clone, Debug)]
pub struct FakeGcs {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<Inner>>,
    pending: tokio::sync::watch::Receiver<usize>,
    pending_tx: Arc<tokio::sync::watch::Sender<usize>>,
    _server: Arc<AbortOnDrop>,
}

#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl FakeGcs {
    /// Starts the fake on `127.0.0.1:0` inside the current runtime.
    pub async fn start() -> std::io::Result<FakeGcs> {
        let (pending_tx, pending) = tokio::sync::watch::channel(0);
        let pending_tx = Arc::new(pending_tx);
        let state = Arc::new(Mutex::new(Inner::default()));
        let app_state = AppState {
            inner: state.clone(),
            pending: pending_tx.clone(),
        };
        let app = axum::Router::new()
            .route("/{bucket}", any(bucket_route))
            .route("/{bucket}/{*key}", any(object_route))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(app_state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeGcs {
            addr,
            state,
            pending,
            pending_tx,
            _server: Arc::new(AbortOnDrop(server)),
        })
    }

    /// Waits (at most 10 s) until no multipart upload is pending: the background abort of a
    /// dropped upload. The error names how many are left.
    pub async fn wait_no_pending_uploads(&self) -> std::io::Result<()> {
        let mut rx = self.pending.clone();
        let _keep = &self.pending_tx;
        let waited =
            tokio::time::timeout(std::time::Duration::from_secs(10), rx.wait_for(|n| *n == 0))
                .await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(closed)) => Err(std::io::Error::other(closed)),
            Err(_) => Err(std::io::Error::other(format!(
                "multipart uploads still pending: {}",
                *self.pending.borrow()
            ))),
        }
    }

    /// Multipart uploads initiated and neither completed nor aborted.
    pub fn pending_uploads(&self) -> usize {
        *self.pending.borrow()
    }

    pub fn parts_received(&self) -> usize {
        self.state.lock().map(|s| s.parts_received).unwrap_or(0)
    }
}

#[derive(Clone)]
struct AppState {
    inner: Arc<Mutex<Inner>>,
    pending: Arc<tokio::sync::watch::Sender<usize>>,
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

fn error(status: StatusCode, code: &str) -> Response {
    xml(
        status,
        format!("<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code></Error>"),
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The headers an object keeps: Content-Type and `x-goog-meta-*`.
fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| *name == header::CONTENT_TYPE || name.as_str().starts_with(META_PREFIX))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

async fn bucket_route(
    State(state): State<AppState>,
    method: Method,
    Path(bucket): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if method != Method::GET || query.get("list-type").map(String::as_str) != Some("2") {
        return error(StatusCode::NOT_IMPLEMENTED, "NotImplemented");
    }
    let prefix = query.get("prefix").cloned().unwrap_or_default();
    let Ok(inner) = state.inner.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "Poisoned");
    };
    let mut body = String::from("<?xml version='1.0' encoding='UTF-8'?><ListBucketResult>");
    body.push_str(&format!("<Name>{}</Name>", escape(&bucket)));
    for ((b, key), object) in &inner.objects {
        if *b == bucket && key.starts_with(&prefix) {
            body.push_str(&format!(
                "<Contents><Key>{}</Key><Size>{}</Size><LastModified>{LAST_MODIFIED_RFC3339}</LastModified><ETag>{}</ETag></Contents>",
                escape(key),
                object.data.len(),
                escape(&object.etag)
            ));
        }
    }
    body.push_str("<IsTruncated>false</IsTruncated></ListBucketResult>");
    xml(StatusCode::OK, body)
}

/// One object URL: dispatches on method and query to the multipart step or object operation.
async fn object_route(
    State(state): State<AppState>,
    method: Method,
    Path((bucket, key)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(mut inner) = state.inner.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "Poisoned");
    };
    let inner = &mut *inner;
    let pending = &*state.pending;
    let id = (bucket, key);
    match (
        method.clone(),
        query.get("uploadId"),
        query.contains_key("uploads"),
    ) {
        (Method::PUT, Some(upload_id), _) => put_part(inner, upload_id, &query, body),
        (Method::POST, None, true) => initiate_upload(inner, pending, id, &headers),
        (Method::POST, Some(upload_id), _) => {
            complete_upload(inner, pending, upload_id, &id, &body)
        }
        // Abort.
        (Method::DELETE, Some(upload_id), _) => {
            inner.uploads.remove(upload_id);
            pending.send_replace(inner.uploads.len());
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::PUT, None, false) => put_object(inner, id, &headers, body),
        (Method::GET | Method::HEAD, None, false) => match inner.objects.get(&id) {
            Some(object) => get_object(object, &headers, method == Method::HEAD),
            None => error(StatusCode::NOT_FOUND, "NoSuchKey"),
        },
        (Method::DELETE, None, false) => match inner.objects.remove(&id) {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => error(StatusCode::NOT_FOUND, "NoSuchKey"),
        },
        _ => error(StatusCode::NOT_IMPLEMENTED, "NotImplemented"),
    }
}

/// Part upload: stores part `partNumber` of a known upload.
fn put_part(
    inner: &mut Inner,
    upload_id: &str,
    query: &HashMap<String, String>,
    body: Bytes,
) -> Response {
    let Some(number) = query
        .get("partNumber")
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return error(StatusCode::BAD_REQUEST, "InvalidArgument");
    };
    let Some(upload) = inner.uploads.get_mut(upload_id) else {
        return error(StatusCode::NOT_FOUND, "NoSuchUpload");
    };
    let etag = format!("\"part-{number}-{}\"", body.len());
    upload.parts.insert(number, body);
    inner.parts_received += 1;
    (StatusCode::OK, [(header::ETAG, etag)]).into_response()
}

/// Initiates a multipart upload of `(bucket, key)`, keeping the request's headers for the object.
fn initiate_upload(
    inner: &mut Inner,
    pending: &tokio::sync::watch::Sender<usize>,
    (bucket, key): (String, String),
    headers: &HeaderMap,
) -> Response {
    inner.next_id += 1;
    let upload_id = format!("upload-{}", inner.next_id);
    let body = format!(
        "<?xml version='1.0' encoding='UTF-8'?><InitiateMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>",
        escape(&bucket),
        escape(&key)
    );
    inner.uploads.insert(
        upload_id,
        Upload {
            bucket,
            key,
            headers: kept_headers(headers),
            parts: BTreeMap::new(),
        },
    );
    pending.send_replace(inner.uploads.len());
    xml(StatusCode::OK, body)
}

/// Completes an upload: assembles the parts listed in the request, in order, into the object.
fn complete_upload(
    inner: &mut Inner,
    pending: &tokio::sync::watch::Sender<usize>,
    upload_id: &str,
    (bucket, key): &(String, String),
    body: &Bytes,
) -> Response {
    let Some(upload) = inner.uploads.remove(upload_id) else {
        return error(StatusCode::NOT_FOUND, "NoSuchUpload");
    };
    pending.send_replace(inner.uploads.len());
    let text = String::from_utf8_lossy(body);
    let numbers: Vec<usize> = text
        .split("<PartNumber>")
        .skip(1)
        .filter_map(|s| s.split("</PartNumber>").next()?.trim().parse().ok())
        .collect();
    let mut data = Vec::new();
    for n in &numbers {
        match upload.parts.get(n) {
            Some(part) => data.extend_from_slice(part),
            None => return error(StatusCode::BAD_REQUEST, "InvalidPart"),
        }
    }
    inner.next_id += 1;
    let etag = format!("\"obj-{}\"", inner.next_id);
    inner.objects.insert(
        (upload.bucket, upload.key),
        Object {
            data: Bytes::from(data),
            headers: upload.headers,
            etag: etag.clone(),
            generation: inner.next_id,
        },
    );
    xml(
        StatusCode::OK,
        format!(
            "<?xml version='1.0' encoding='UTF-8'?><CompleteMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></CompleteMultipartUploadResult>",
            escape(bucket),
            escape(key),
            escape(&etag)
        ),
    )
}

/// Single-request upload, refused (412) when `x-goog-if-generation-match` is not the current one.
fn put_object(
    inner: &mut Inner,
    id: (String, String),
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(wanted) = headers.get("x-goog-if-generation-match") {
        let current = inner.objects.get(&id).map_or(0, |o| o.generation);
        if wanted.to_str().ok() != Some(current.to_string().as_str()) {
            return error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed");
        }
    }
    inner.next_id += 1;
    let generation = inner.next_id;
    let etag = format!("\"obj-{generation}\"");
    inner.objects.insert(
        id,
        Object {
            data: body,
            headers: kept_headers(headers),
            etag: etag.clone(),
            generation,
        },
    );
    (
        StatusCode::OK,
        [
            (header::ETAG, etag),
            (
                header::HeaderName::from_static("x-goog-generation"),
                generation.to_string(),
            ),
        ],
    )
        .into_response()
}

fn get_object(object: &Object, request: &HeaderMap, head: bool) -> Response {
    let len = object.data.len();
    let range = request
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| {
            let (a, b) = v.split_once('-')?;
            let start: usize = a.parse().ok()?;
            let end: usize = if b.is_empty() {
                len.checked_sub(1)?
            } else {
                b.parse().ok()?
            };
            Some((start, end.min(len.checked_sub(1)?)))
        });
    let (status, body, content_range) = match range {
        Some((start, end)) if start <= end && end < len => (
            StatusCode::PARTIAL_CONTENT,
            object.data.slice(start..=end),
            Some(format!("bytes {start}-{end}/{len}")),
        ),
        Some(_) => return error(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange"),
        None => (StatusCode::OK, object.data.clone(), None),
    };
    let mut response = if head {
        status.into_response()
    } else {
        (status, body.clone()).into_response()
    };
    let h = response.headers_mut();
    let mut set = |name: &str, value: &str| {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            h.insert(name, value);
        }
    };
    set("content-length", &body.len().to_string());
    set("etag", &object.etag);
    set("x-goog-generation", &object.generation.to_string());
    set("last-modified", LAST_MODIFIED);
    if let Some(range) = &content_range {
        set("content-range", range);
    }
    for (name, value) in &object.headers {
        set(name, value);
    }
    response
}
