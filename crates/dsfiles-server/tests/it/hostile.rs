//! The service under hostile clients: connections that stall, method names that would grow
//! the metrics, streams and syncs beyond their caps, destinations spelled to escape the
//! allow-list or to dodge the one-writer rule.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::{Blocking, Dirs, TOKEN, TestServer, WEBHOOK_SECRET, config, error_code};

const HEADER_TIMEOUT: Duration = Duration::from_millis(400);

/// A server whose syncs run until cancelled, with `limits` changed by `tune`.
async fn server(dirs: &Dirs, tune: impl FnOnce(&mut dsfiles_server::ServerConfig)) -> TestServer {
    let mut config = config(dirs);
    config.request_timeout = Duration::from_secs(2);
    config.limits.idle_timeout = Duration::from_secs(3);
    config.limits.header_read_timeout = HEADER_TIMEOUT;
    tune(&mut config);
    TestServer::start(config, Arc::new(Blocking::default())).await
}

/// When the server closed `stream` (end of stream or reset), measured from `since`.
async fn closed_after(mut stream: TcpStream, since: Instant) -> Duration {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return since.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server kept a stalled connection open for 10 s"),
        }
    }
}

/// Sockets this process holds (client and server ends alike).
fn open_sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// The value of the sample `name` in the `/metrics` text.
fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{name}` in\n{text}"))
        .parse()
        .expect("a number")
}

async fn metrics(server: &TestServer) -> String {
    let response = server.get("/metrics").send().await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    response.text().await.expect("text")
}

#[tokio::test]
async fn slowloris_connections_are_capped_then_cut_at_the_header_timeout() {
    const CAP: usize = 4;
    const STALLING: usize = 24;
    let dirs = Dirs::new();
    let server = server(&dirs, |c| c.limits.max_connections = CAP).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let baseline = open_sockets();

    let opened = Instant::now();
    let mut stalling = Vec::new();
    for _ in 0..STALLING {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        // A request head that never ends.
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: dsfiles\r\nX-Slow: ")
            .await
            .expect("write");
        stalling.push(stream);
    }
    let start = Instant::now();
    // Beyond the cap, connections are closed at once: long before the header timeout.
    let refused = stalling.split_off(CAP);
    for stream in refused {
        let after = closed_after(stream, start).await;
        assert!(
            after < HEADER_TIMEOUT,
            "a connection beyond the cap stayed open `{after:?}`"
        );
    }
    // The process holds the capped connections (both ends) and little else.
    let during = open_sockets();
    assert!(
        during <= baseline + 2 * CAP,
        "`{during}` sockets open with `{CAP}` connections allowed (`{baseline}` before)"
    );
    // The ones inside the cap are cut at the header timeout.
    let cut =
        futures::future::join_all(stalling.into_iter().map(|s| closed_after(s, opened))).await;
    for after in cut {
        assert!(
            after >= HEADER_TIMEOUT,
            "a stalled connection was cut after `{after:?}`, before the header timeout"
        );
    }

    // The slots came back: a normal client is served.
    let response = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(response.status(), 200);
    let text = metrics(&server).await;
    assert!(
        sample(&text, "dsfiles_http_connections_open") <= 2,
        "{text}"
    );
    assert!(
        sample(&text, "dsfiles_limit_refusals_total{limit=\"connections\"}")
            >= (STALLING - CAP) as u64,
        "{text}"
    );
    assert!(
        sample(&text, "dsfiles_http_connections_timed_out_total") >= CAP as u64,
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_connection_that_never_sends_a_byte_is_cut_too() {
    let dirs = Dirs::new();
    let server = server(&dirs, |_| {}).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let start = Instant::now();
    // Silent: hyper-util cannot even tell HTTP/1.1 from HTTP/2 (no deadline of its own).
    let silent = TcpStream::connect(&addr).await.expect("connect");
    // HTTP/2's preface, then nothing.
    let mut preface = TcpStream::connect(&addr).await.expect("connect");
    preface
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("write");
    for stream in [silent, preface] {
        let after = closed_after(stream, start).await;
        assert!(after >= HEADER_TIMEOUT, "{after:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn random_method_names_add_no_metrics_series() {
    let dirs = Dirs::new();
    let server = server(&dirs, |_| {}).await;
    for i in 0..200 {
        let method = reqwest::Method::from_bytes(
            format!("M{i}X{}", uuid::Uuid::new_v4().simple()).as_bytes(),
        )
        .expect("a token is a method");
        let path = if i % 2 == 0 {
            "/healthz".to_owned()
        } else {
            format!("/nowhere/{i}")
        };
        let response = server
            .http
            .request(method, server.url(&path))
            .send()
            .await
            .expect("send");
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    let text = metrics(&server).await;
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("dsfiles_http_requests_total{"))
        .collect();
    assert!(series.len() <= 4, "{series:#?}");
    for line in &series {
        assert!(
            line.contains("method=\"other\"") || line.contains("method=\"GET\""),
            "{line}"
        );
        assert!(
            line.contains("route=\"/healthz\"")
                || line.contains("route=\"unmatched\"")
                || line.contains("route=\"/metrics\""),
            "{line}"
        );
    }
    let histograms = text
        .lines()
        .filter(|l| l.starts_with("dsfiles_http_request_duration_seconds_count{"))
        .count();
    assert!(histograms <= 4, "{text}");
    server.stop().await;
}

/// Opens the job's event stream with `token`; returns the status and, on 200, the stream.
async fn open_events(
    server: &TestServer,
    id: &str,
    token: &str,
) -> (u16, Option<reqwest::Response>) {
    let response = server
        .http
        .get(server.url(&format!("/v1/syncs/{id}/events")))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET events");
    let status = response.status().as_u16();
    if status == 200 {
        return (status, Some(response));
    }
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    assert_eq!(error_code(response, 429).await, "too_many_streams");
    (status, None)
}

#[tokio::test]
async fn event_streams_are_capped_per_token_and_overall() {
    const OTHER: &str = "another-api-token-9876543210";
    let dirs = Dirs::new();
    let server = server(&dirs, |c| {
        c.api_tokens.push(dsfiles_server::Secret::new(OTHER));
        c.limits.max_sse_streams_per_token = 2;
        c.limits.max_sse_streams = 3;
    })
    .await;
    let job = server
        .start_sync(json!({"demarche": 1, "dest": dirs.dest("sse")}))
        .await;
    let (_, a1) = open_events(&server, &job.id, TOKEN).await;
    let (_, a2) = open_events(&server, &job.id, TOKEN).await;
    assert!(a1.is_some() && a2.is_some());
    assert_eq!(
        open_events(&server, &job.id, TOKEN).await.0,
        429,
        "per token"
    );
    let (_, b1) = open_events(&server, &job.id, OTHER).await;
    assert!(b1.is_some());
    assert_eq!(open_events(&server, &job.id, OTHER).await.0, 429, "overall");

    // The job ends: every stream ends and gives its slot back.
    let response = server
        .delete(&format!("/v1/syncs/{}", job.id))
        .send()
        .await
        .expect("cancel");
    assert_eq!(response.status(), 202);
    for stream in [a1, a2, b1].into_iter().flatten() {
        let mut body = stream.bytes_stream();
        while let Some(chunk) = body.next().await {
            chunk.expect("chunk");
        }
    }
    for token in [OTHER, OTHER, TOKEN] {
        assert_eq!(open_events(&server, &job.id, token).await.0, 200);
    }
    let text = metrics(&server).await;
    assert_eq!(
        sample(&text, "dsfiles_limit_refusals_total{limit=\"sse_streams\"}"),
        2
    );
    server.stop().await;
}

#[tokio::test]
async fn queued_syncs_are_bounded_but_webhooks_still_coalesce() {
    let dirs = Dirs::new();
    let server = server(&dirs, |c| {
        c.max_concurrent_syncs = 1;
        c.limits.max_queued_syncs = 2;
        c.webhook_destinations.insert(77, dirs.dest("hook"));
    })
    .await;
    for n in 1..=3 {
        server
            .start_sync(json!({"demarche": n, "dest": dirs.dest("q")}))
            .await;
    }
    let response = server
        .post("/v1/syncs")
        .json(&json!({"demarche": 4, "dest": dirs.dest("q")}))
        .send()
        .await
        .expect("send");
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("30")
    );
    assert_eq!(error_code(response, 429).await, "queue_full");
    // DS would redeliver a refused webhook only minutes later: it is queued (once) instead.
    let mut jobs = Vec::new();
    for dossier in [11, 12] {
        let response = server
            .http
            .post(server.url(&format!("/v1/webhooks/ds/{WEBHOOK_SECRET}")))
            .form(&[("procedure_id", "77"), ("dossier_id", &dossier.to_string())])
            .send()
            .await
            .expect("webhook");
        assert_eq!(response.status(), 202);
        let accepted: dsfiles_server::api::WebhookAccepted = response.json().await.expect("json");
        jobs.extend(accepted.jobs);
    }
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0], jobs[1], "the second delivery joins the first job");
    let text = metrics(&server).await;
    assert_eq!(
        sample(
            &text,
            "dsfiles_limit_refusals_total{limit=\"queued_syncs\"}"
        ),
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn one_destination_spelled_two_ways_is_one_job_whoever_starts_it() {
    let dirs = Dirs::new();
    let canonical = dirs.dest("hook");
    let server = server(&dirs, |c| {
        // Configured with a trailing slash, as a URL.
        c.webhook_destinations
            .insert(77, format!("file://{canonical}/"));
    })
    .await;
    let response = server
        .http
        .post(server.url(&format!("/v1/webhooks/ds/{WEBHOOK_SECRET}")))
        .form(&[("procedure_id", "77"), ("dossier_id", "5")])
        .send()
        .await
        .expect("webhook");
    assert_eq!(response.status(), 202);
    let accepted: dsfiles_server::api::WebhookAccepted = response.json().await.expect("json");
    let hook_job = accepted.jobs.first().expect("a job").clone();
    assert_eq!(server.job(&hook_job).await.dest, canonical);

    for spelling in [
        canonical.clone(),
        format!("{canonical}/"),
        format!("file://{canonical}"),
    ] {
        let response = server
            .post("/v1/syncs")
            .json(&json!({"demarche": 77, "dest": spelling}))
            .send()
            .await
            .expect("send");
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(status, 409, "`{spelling}`: {body}");
        assert_eq!(body["error"]["job_id"], hook_job.as_str(), "`{spelling}`");
    }
    server.stop().await;
}

#[tokio::test]
async fn destinations_that_would_escape_the_allow_list_are_refused() {
    let dirs = Dirs::new();
    let server = server(&dirs, |_| {}).await;
    let root = dirs.dest_root.display().to_string();
    let check = |dest: String, why: &'static str| {
        let server = &server;
        async move {
            let response = server
                .post("/v1/syncs")
                .json(&json!({"demarche": 1, "dest": dest}))
                .send()
                .await
                .expect("send");
            let status = response.status();
            let body: serde_json::Value = response.json().await.expect("json");
            assert_eq!(status, 422, "`{dest}`: {body}");
            assert_eq!(body["error"]["code"], "invalid_destination", "`{dest}`");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(why), "`{dest}`: {message}");
        }
    };
    check(format!("file://{root}/%2e%2e/etc"), "`..`").await;
    check(format!("file://{root}/%2E%2e"), "`..`").await;
    check(format!("{root}/./x"), "`.`").await;
    check(format!("{root}/x/.."), "`..`").await;
    check(format!("file://{root}/a%2Fb"), "`%2F`").await;
    check(format!("file://{root}/a%2f..%2fb"), "`%2F`").await;

    // Refused webhook destinations stop the service before it listens.
    let mut config = config(&dirs);
    config
        .webhook_destinations
        .insert(77, format!("file://{root}/%2e%2e/etc"));
    let err = dsfiles_server::AppState::new(config, Arc::new(Blocking::default()))
        .expect_err("refused at start-up");
    assert!(err.to_string().contains("`77`"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    const IDLE: Duration = Duration::from_millis(700);
    let dirs = Dirs::new();
    let server = server(&dirs, |c| {
        c.request_timeout = Duration::from_millis(300);
        c.limits.idle_timeout = IDLE;
        c.limits.header_read_timeout = Duration::from_secs(8);
    })
    .await;
    // HTTP/2 works (prior knowledge), its stream tasks owned by the server.
    dsfiles_sink::install_crypto_provider();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let response = h2.get(server.url("/healthz")).send().await.expect("h2");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);

    // By hand: the preface, empty SETTINGS, one GET / (HPACK-indexed :method GET, :scheme
    // http, :path /), then silence.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    bytes.extend([0, 0, 3, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84]);
    stream.write_all(&bytes).await.expect("write");
    let start = Instant::now();
    let after = closed_after(stream, start).await;
    assert!(
        after >= IDLE - Duration::from_millis(20) && after < Duration::from_secs(8),
        "closed after `{after:?}`"
    );
    server.stop().await;
}
