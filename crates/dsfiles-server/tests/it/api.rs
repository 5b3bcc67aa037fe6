//! Authentication, the JSON error shape, limits, conflicts, health, metrics, OpenAPI.

use std::sync::Arc;

use serde_json::json;

use crate::support::{Blocking, Dirs, TOKEN, TestServer, config, error_code};

async fn server(dirs: &Dirs) -> TestServer {
    TestServer::start(
        config(dirs),
        Arc::new(Blocking {
            files: 7,
            stall_listing: false,
            ..Blocking::default()
        }),
    )
    .await
}

#[tokio::test]
async fn every_v1_route_but_webhooks_needs_the_bearer_token() {
    let dirs = Dirs::new();
    let server = server(&dirs).await;
    for path in [
        "/v1/syncs",
        "/v1/syncs/x",
        "/v1/syncs/x/events",
        "/v1/demarches/1/files",
        "/v1/openapi.json",
        "/v1/schedules",
        "/v1/schedules/x",
    ] {
        let response = server
            .http
            .get(server.url(path))
            .send()
            .await
            .expect("send");
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer realm=\"dsfiles\"")
        );
        assert_eq!(error_code(response, 401).await, "unauthorized", "{path}");
        let response = server
            .http
            .get(server.url(path))
            .bearer_auth("wrong-token")
            .send()
            .await
            .expect("send");
        assert_eq!(error_code(response, 401).await, "unauthorized", "{path}");
        let response = server
            .http
            .get(server.url(path))
            .header("authorization", TOKEN)
            .send()
            .await
            .expect("send");
        assert_eq!(
            error_code(response, 401).await,
            "unauthorized",
            "{path} without `Bearer`"
        );
    }
    let response = server
        .http
        .post(server.url("/v1/syncs"))
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(response, 401).await, "unauthorized");
    let response = server
        .http
        .delete(server.url("/v1/syncs/x"))
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(response, 401).await, "unauthorized");
    // Health and metrics are open.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = server
            .http
            .get(server.url(path))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_the_json_error_shape() {
    let dirs = Dirs::new();
    let server = server(&dirs).await;
    let dest = dirs.dest("d");
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            server
                .post("/v1/syncs")
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "malformed_json",
        ),
        (
            server
                .post("/v1/syncs")
                .body(json!({"demarche": 1, "dest": dest}).to_string()),
            415,
            "unsupported_media_type",
        ),
        (
            server
                .post("/v1/syncs")
                .json(&json!({"demarche": 1, "dest": dest, "extra": true})),
            422,
            "invalid_value",
        ),
        (
            server
                .post("/v1/syncs")
                .json(&json!({"demarche": "one", "dest": dest})),
            422,
            "invalid_value",
        ),
        (
            server.post("/v1/syncs").json(&json!({"dest": dest})),
            422,
            "invalid_value",
        ),
        (
            server
                .post("/v1/syncs")
                .json(&json!({"demarche": 0, "dest": dest})),
            422,
            "invalid_value",
        ),
        (
            server
                .post("/v1/syncs")
                .json(&json!({"demarche": 1, "dest": dest, "since": "yesterday"})),
            422,
            "invalid_value",
        ),
        (
            server
                .post("/v1/syncs")
                .json(&json!({"demarche": 1, "dest": dest, "include": ["everything"]})),
            422,
            "invalid_value",
        ),
        (
            server
                .post("/v1/syncs")
                .json(&json!({"demarche": 1, "dest": dest, "layout": "{groupe}/{deposited:%Q}"})),
            422,
            "invalid_value",
        ),
        (
            server
                .post("/v1/syncs")
                .json(&json!({"demarche": 1, "dest": dest, "data_layout": "{demarche}.json"})),
            422,
            "invalid_value",
        ),
        (
            server.post("/v1/syncs").json(
                &json!({"demarche": 1, "dest": dest, "data_layout": "{dossier}.json", "no_data": true}),
            ),
            422,
            "invalid_value",
        ),
        (
            server
                .post("/v1/syncs")
                .json(&json!({"demarche": 1, "dest": "relative/path"})),
            422,
            "invalid_destination",
        ),
        (
            server
                .post("/v1/syncs")
                .json(&json!({"demarche": 1, "dest": format!("{dest}/../../etc")})),
            422,
            "invalid_destination",
        ),
        (
            server
                .post("/v1/syncs")
                .json(&json!({"demarche": 1, "dest": "/etc"})),
            403,
            "destination_not_allowed",
        ),
        (
            server
                .post("/v1/syncs")
                .json(&json!({"demarche": 1, "dest": format!("{}x", dirs.dest_root.display())})),
            403,
            "destination_not_allowed",
        ),
        (
            server
                .post("/v1/syncs")
                .json(&json!({"demarche": 1, "dest": "s3://bucket/x"})),
            403,
            "destination_not_allowed",
        ),
        (server.get("/v1/syncs?limit=0"), 422, "invalid_value"),
        (server.get("/v1/syncs?limit=ten"), 400, "bad_query"),
        (server.get("/v1/syncs?bogus=1"), 400, "bad_query"),
        (server.get("/v1/syncs/nope"), 404, "not_found"),
        (server.delete("/v1/syncs/nope"), 404, "not_found"),
        (server.get("/v1/syncs/nope/events"), 404, "not_found"),
        (server.get("/v1/demarches/abc/files"), 400, "bad_path"),
        (
            server.get("/v1/demarches/1/files?limit=5000"),
            422,
            "invalid_value",
        ),
        (
            server.get("/v1/demarches/1/files?cursor=garbage"),
            400,
            "invalid_cursor",
        ),
        (
            server.get("/v1/demarches/1/files?since=notadate"),
            422,
            "invalid_value",
        ),
        (server.get("/v1/nothing-here"), 404, "not_found"),
        (
            server.http.put(server.url("/v1/syncs")).bearer_auth(TOKEN),
            405,
            "method_not_allowed",
        ),
        (
            server
                .post("/v1/syncs")
                .json(&json!({"demarche": 1, "dest": "x".repeat(2 * 1024 * 1024)})),
            413,
            "body_too_large",
        ),
        // Raw-body routes (no JSON extractor) get the same 413.
        (
            server
                .http
                .post(server.url("/v1/webhooks/ds"))
                .header("x-webhook-signature-256", "sha256=00")
                .body(vec![b'{'; 2 * 1024 * 1024]),
            413,
            "body_too_large",
        ),
        (
            server
                .http
                .post(server.url(&format!(
                    "/v1/webhooks/ds/{}",
                    crate::support::WEBHOOK_SECRET
                )))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "procedure_id=1&state={}",
                    "x".repeat(2 * 1024 * 1024)
                )),
            413,
            "body_too_large",
        ),
        // Unknown routes, authenticated or not, outside `/v1` too.
        (server.http.get(server.url("/nothing")), 404, "not_found"),
        (server.http.get(server.url("/v1/nothing")), 404, "not_found"),
        (
            server.http.delete(server.url("/healthz")),
            405,
            "method_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let request = request.build().expect("request");
        let label = format!("{} {}", request.method(), request.url());
        let response = server.http.execute(request).await.expect("send");
        assert_eq!(error_code(response, status).await, code, "{label}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_second_sync_of_the_same_destination_is_a_conflict_naming_the_first() {
    let dirs = Dirs::new();
    let server = server(&dirs).await;
    let first = server
        .start_sync(json!({"demarche": 5, "dest": dirs.dest("a")}))
        .await;
    assert_eq!(first.state.as_str(), "queued");
    // The same destination spelled differently is the same destination.
    let response = server
        .post("/v1/syncs")
        .json(&json!({"demarche": 5, "dest": format!("file://{}//", dirs.dest("a"))}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "sync_in_progress");
    assert_eq!(body["error"]["job_id"], first.id.as_str());
    // Another destination or another démarche is fine.
    server
        .start_sync(json!({"demarche": 5, "dest": dirs.dest("b")}))
        .await;
    server
        .start_sync(json!({"demarche": 6, "dest": dirs.dest("a")}))
        .await;

    // Cancelling frees the destination.
    let response = server
        .delete(&format!("/v1/syncs/{}", first.id))
        .send()
        .await
        .expect("cancel");
    assert_eq!(response.status(), 202);
    let done = server.finish(&first.id).await;
    assert_eq!(done.state.as_str(), "cancelled");
    let response = server
        .delete(&format!("/v1/syncs/{}", first.id))
        .send()
        .await
        .expect("cancel again");
    assert_eq!(error_code(response, 409).await, "already_finished");
    server
        .start_sync(json!({"demarche": 5, "dest": dirs.dest("a")}))
        .await;

    let list: serde_json::Value = server
        .get("/v1/syncs?limit=2")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["jobs"].as_array().map(Vec::len), Some(2));
    let cancelled: serde_json::Value = server
        .get("/v1/syncs?state=cancelled")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(cancelled["jobs"][0]["id"], first.id.as_str());
    server.stop().await;
}

#[tokio::test]
async fn request_timeouts_use_the_error_shape() {
    let dirs = Dirs::new();
    let mut config = config(&dirs);
    config.request_timeout = std::time::Duration::from_millis(200);
    let server = TestServer::start(
        config,
        Arc::new(Blocking {
            files: 1,
            stall_listing: true,
            ..Blocking::default()
        }),
    )
    .await;
    let response = server
        .get("/v1/demarches/1/files")
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(response, 408).await, "timeout");
    server.stop().await;
}

#[tokio::test]
async fn a_panicking_handler_answers_the_json_500_and_the_service_goes_on() {
    let dirs = Dirs::new();
    let server = TestServer::start(
        config(&dirs),
        Arc::new(Blocking {
            panic_listing: true,
            ..Blocking::default()
        }),
    )
    .await;
    let response = server
        .get("/v1/demarches/1/files")
        .send()
        .await
        .expect("send");
    let text = response.text().await.expect("body");
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON error body");
    assert_eq!(
        value,
        json!({"error": {"code": "internal", "message": "internal error"}}),
        "the panic message stays in the log"
    );
    let response = server
        .get("/v1/demarches/1/files")
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(response, 500).await, "internal");
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("send");
    assert_eq!(health.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let dirs = Dirs::new();
    let server = server(&dirs).await;
    let health: serde_json::Value = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    server
        .start_sync(json!({"demarche": 5, "dest": dirs.dest("a")}))
        .await;
    let response = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("send");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.expect("text");
    for expected in [
        "dsfiles_syncs{state=\"running\"} 1",
        "dsfiles_ds_api_calls_total 3",
        "dsfiles_ds_rate_limited_total 1",
        "dsfiles_ds_retries_total 1",
        "dsfiles_http_requests_total{route=\"/v1/syncs\",method=\"POST\",status=\"202\"} 1",
        "dsfiles_http_request_duration_seconds_count{route=\"/healthz\",method=\"GET\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == expected),
            "missing `{expected}` in\n{text}"
        );
    }
    server.stop().await;
}

/// Every operation of the OpenAPI document is served (probed: not the fallback 404 nor 405),
/// and every route the router serves is in the document (both come from one table; a route
/// added outside it would answer here without being documented).
#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let dirs = Dirs::new();
    let server = server(&dirs).await;
    let doc: serde_json::Value = server
        .get("/v1/openapi.json")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    // The whole document, reviewed like code when it changes (`cargo insta review`).
    insta::assert_json_snapshot!("openapi", doc, {".info.version" => "[version]"});
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            assert!(operation["operationId"].is_string(), "{method} {path}");
            assert!(
                operation["responses"]
                    .as_object()
                    .expect("responses")
                    .keys()
                    .any(|s| s.starts_with('2')),
                "{method} {path} documents no success"
            );
            operations.push((method.to_uppercase(), path.clone()));
        }
    }
    assert_eq!(operations.len(), 20, "{operations:?}");
    for (method, path) in &operations {
        // (A wrong legacy webhook secret answers exactly like an unknown route, by design.)
        let concrete = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{demarche}", "1")
            .replace("{name}", "x")
            .replace("{secret}", crate::support::WEBHOOK_SECRET);
        let request = server
            .http
            .request(method.parse().expect("method"), server.url(&concrete))
            .bearer_auth(TOKEN)
            .build()
            .expect("request");
        let response = server.http.execute(request).await.expect("send");
        let status = response.status().as_u16();
        let body = response.text().await.expect("body");
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(
            !body.contains("no such route"),
            "{method} {path} is documented but not routed: {body}"
        );
    }
    // Undocumented methods on documented paths are not routed.
    for (path, item) in paths {
        for method in ["get", "post", "delete", "put", "patch"] {
            if item.get(method).is_some() {
                continue;
            }
            let concrete = path
                .replace("{id}", "x")
                .replace("{demarche}", "1")
                .replace("{secret}", "s");
            let request = server
                .http
                .request(
                    method.to_uppercase().parse().expect("method"),
                    server.url(&concrete),
                )
                .bearer_auth(TOKEN)
                .build()
                .expect("request");
            let status = server
                .http
                .execute(request)
                .await
                .expect("send")
                .status()
                .as_u16();
            assert_eq!(
                status, 405,
                "{method} {path} answers without being documented"
            );
        }
    }
    server.stop().await;
}
