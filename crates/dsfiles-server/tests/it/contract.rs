//! The OpenAPI document as a contract: every operation is probed with requests generated
//! from the document itself (boundary numbers, huge, negative and non-numeric ones, bad dates,
//! wrong types, missing and unknown fields), each judged valid or invalid by the document's
//! own schemas ([`crate::schema`]). A schema-invalid request must get a 4xx, a schema-valid
//! one must not be refused as invalid (400/422), no request gets a 5xx, every status is one
//! the operation documents, and every answer matches the schema documented for its status.

use std::sync::Arc;

use hmac::{Hmac, Mac as _};
use serde_json::{Map, Value, json};

use crate::schema::Validator;
use crate::support::{Blocking, Dirs, TOKEN, TestServer, WEBHOOK_SECRET, config};

/// A request body as sent.
#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Form(Value),
    Raw(&'static str),
}

/// One probe of one operation.
#[derive(Debug, Clone, Default)]
struct Case {
    label: String,
    path: Map<String, Value>,
    query: Map<String, Value>,
    signature: Option<String>,
    body: Option<Body>,
    token: bool,
}

/// Candidate values for `schema`: valid ones and near misses. `json`: the value travels as
/// JSON (wrong JSON types are worth trying); else as text in a path, query or form.
fn candidates(v: &Validator<'_>, schema: &Value, json: bool) -> Vec<Value> {
    let schema = v.resolve(schema);
    if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
        return branches
            .iter()
            .flat_map(|b| candidates(v, b, json))
            .collect();
    }
    let mut out = Vec::new();
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        out.extend(options.iter().cloned());
        out.push(json!("bogus"));
        return out;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::Array(types) => types.iter().filter_map(Value::as_str).collect(),
        other => other.as_str().into_iter().collect(),
    };
    for kind in types {
        match kind {
            "integer" => out.extend(integers(schema)),
            "string" => out.extend(strings(schema, json)),
            "array" => out.extend(arrays(v, schema)),
            "null" => out.push(Value::Null),
            "boolean" => out.extend([json!(true), json!("yes")]),
            _ => {}
        }
    }
    out
}

fn integers(schema: &Value) -> Vec<Value> {
    let mut out = vec![
        json!(0),
        json!(-1),
        json!(1.5),
        json!("12a"),
        json!(u64::MAX),
    ];
    // Larger than any integer type: JSON text that parses only as a float.
    out.push(json!("99999999999999999999"));
    // Each bound and its first value outside.
    for (bound, outside) in [("minimum", -1), ("maximum", 1)] {
        let n = schema[bound].as_i64().map(i128::from);
        if let Some(n) = n.or(schema[bound].as_u64().map(i128::from)) {
            out.extend([number(n), number(n + outside)]);
        }
    }
    out
}

/// `n` as JSON: an integer within 64 bits; past them, where JSON parsers have only floats, the
/// nearest float on the far side of `n` from zero (so that it stays outside a bound at 64 bits).
fn number(n: i128) -> Value {
    if let Ok(n) = u64::try_from(n) {
        return json!(n);
    }
    if let Ok(n) = i64::try_from(n) {
        return json!(n);
    }
    let f = n as f64;
    let f = match f as i128 {
        rounded if n > 0 && rounded < n => f.next_up(),
        rounded if n < 0 && rounded > n => f.next_down(),
        _ => f,
    };
    json!(f)
}

fn strings(schema: &Value, json: bool) -> Vec<Value> {
    let mut out = Vec::new();
    match schema["format"].as_str() {
        Some("date-time") => out.extend(
            [
                "2024-03-01T08:00:00Z",
                "2024-03-01t08:00:00.5+02:00",
                "2024-03-01 08:00:00Z",
                "2024-13-01T00:00:00Z",
                "yesterday",
            ]
            .map(Value::from),
        ),
        Some("uuid") => out.push(json!("not-a-uuid")),
        _ => {}
    }
    if schema.get("maxLength").is_some() || schema.get("minLength").is_some() {
        out.push(json!(""));
    }
    if schema.get("pattern").is_some() {
        out.push(json!("!!"));
    }
    if json {
        out.push(json!(5));
    }
    out
}

fn arrays(v: &Validator<'_>, schema: &Value) -> Vec<Value> {
    let items = &schema["items"];
    let inner = candidates(v, items, true);
    let mut out = vec![json!([]), json!("not-an-array")];
    out.extend(inner.iter().take(12).map(|c| json!([c])));
    let valid = inner.iter().find(|c| v.check(items, c, "$").is_ok());
    if let (Some(max), Some(valid)) = (schema["maxItems"].as_u64(), valid) {
        out.push(Value::Array(vec![valid.clone(); max as usize + 1]));
    }
    out
}

/// Variants of the object `base` under `schema`: each property replaced by each candidate
/// (recursing into the first item of arrays of objects), each required field removed, an
/// unknown field added.
fn variants(v: &Validator<'_>, schema: &Value, base: &Value, json: bool) -> Vec<(String, Value)> {
    let schema = v.resolve(schema);
    let mut out = Vec::new();
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (name, property) in &properties {
        let item_schema = v.resolve(&property["items"]);
        if let Some(first) = base[name]
            .get(0)
            .filter(|_| item_schema["type"] == "object")
        {
            for (label, item) in variants(v, item_schema, first, json) {
                let mut body = base.clone();
                body[name][0] = item;
                out.push((format!("{name}[0].{label}"), body));
            }
        }
        for value in candidates(v, property, json) {
            let mut body = base.clone();
            body[name] = value.clone();
            out.push((format!("{name}={value}"), body));
        }
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        let mut body = base.clone();
        if let (Some(fields), Some(name)) = (body.as_object_mut(), required.as_str()) {
            fields.remove(name);
            out.push((format!("without {name}"), body));
        }
    }
    let mut extra = base.clone();
    extra["unexpected_field"] = json!(1);
    out.push(("unknown field".into(), extra));
    out
}

/// A value as it travels in text (path, query, form); `None`: it cannot.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What a text value is to a schema: a number if it reads as one and the schema wants one.
fn coerce(v: &Validator<'_>, schema: &Value, text: &str) -> Value {
    let types = v.resolve(schema)["type"].to_string();
    match serde_json::from_str::<Value>(text) {
        Ok(n @ Value::Number(_)) if types.contains("integer") => n,
        _ => Value::String(text.to_owned()),
    }
}

/// Whether `case` is a request the document allows.
fn allowed(v: &Validator<'_>, operation: &Value, case: &Case) -> bool {
    for param in operation["parameters"].as_array().into_iter().flatten() {
        let name = param["name"].as_str().unwrap_or_default();
        let value = match param["in"].as_str() {
            Some("path") => case.path.get(name).and_then(text),
            Some("query") => case.query.get(name).and_then(text),
            _ => case.signature.clone(),
        };
        let Some(value) = value else {
            continue;
        };
        if v.check(&param["schema"], &coerce(v, &param["schema"], &value), name)
            .is_err()
        {
            return false;
        }
    }
    let content = &operation["requestBody"]["content"];
    match &case.body {
        Some(Body::Json(body)) => v
            .check(&content["application/json"]["schema"], body, "body")
            .is_ok(),
        Some(Body::Form(body)) => {
            let schema = &content["application/x-www-form-urlencoded"]["schema"];
            let properties = &v.resolve(schema)["properties"];
            let coerced: Map<String, Value> = body
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, value)| {
                    Some((k.clone(), coerce(v, &properties[k], &text(value)?)))
                })
                .collect();
            let travels = body
                .as_object()
                .into_iter()
                .flatten()
                .all(|(_, x)| text(x).is_some());
            travels && v.check(schema, &Value::Object(coerced), "form").is_ok()
        }
        Some(Body::Raw(_)) => false,
        None => true,
    }
}

/// The probes of one operation: the base request, then one change at a time.
fn cases(v: &Validator<'_>, operation: &Value, base: &Case) -> Vec<Case> {
    let mut out = vec![base.clone()];
    if operation["security"]
        .as_array()
        .is_some_and(|s| !s.is_empty())
    {
        out.push(Case {
            label: "no token".into(),
            token: false,
            ..base.clone()
        });
    }
    for param in operation["parameters"].as_array().into_iter().flatten() {
        let name = param["name"].as_str().unwrap_or_default().to_owned();
        for value in candidates(v, &param["schema"], false) {
            let mut case = Case {
                label: format!("{name}={value}"),
                ..base.clone()
            };
            match param["in"].as_str() {
                Some("path") => {
                    case.path.insert(name.clone(), value);
                }
                Some("query") => {
                    case.query.insert(name.clone(), value);
                }
                _ => case.signature = text(&value),
            }
            out.push(case);
        }
    }
    let content = &operation["requestBody"]["content"];
    let (schema, base_body, json) = match &base.body {
        Some(Body::Json(b)) => (&content["application/json"]["schema"], b, true),
        Some(Body::Form(b)) => (
            &content["application/x-www-form-urlencoded"]["schema"],
            b,
            false,
        ),
        _ => return out,
    };
    for (label, body) in variants(v, schema, base_body, json) {
        let body = if json {
            Body::Json(body)
        } else {
            Body::Form(body)
        };
        out.push(Case {
            label,
            body: Some(body),
            ..base.clone()
        });
    }
    for (label, raw) in [("malformed body", "{\"demarche\": "), ("array body", "[]")] {
        out.push(Case {
            label: label.into(),
            body: Some(Body::Raw(raw)),
            ..base.clone()
        });
    }
    out
}

/// The base request of an operation: path parameters that exist, a body the service takes.
fn base_case(operation_id: &str, job: &str, dest: &str) -> Case {
    let mut case = Case {
        label: "base".into(),
        token: true,
        ..Case::default()
    };
    case.path.insert("id".into(), json!(job));
    case.path.insert("demarche".into(), json!(1));
    case.path.insert("secret".into(), json!(WEBHOOK_SECRET));
    case.path.insert("name".into(), json!("base"));
    case.body = match operation_id {
        "createSync" => Some(Body::Json(json!({"demarche": 1, "dest": dest}))),
        // Its own destination: the schedule's run must not hold `createSync`'s.
        "putSchedule" => Some(Body::Json(
            json!({"demarche": 1, "dest": format!("{dest}-scheduled"), "every": "1h"}),
        )),
        "createSeda" => Some(Body::Json(json!({"demarche": 1, "dest": dest, "out": dest,
            "profile": {"archival_agreement": "A", "archival_agency": "B",
                        "transferring_agency": "C", "originating_agency": "D"}}))),
        "dsWebhook" => Some(Body::Json(json!({
            "webhook_id": "w", "demarche_number": 77,
            "events": [{"sequence": 1, "type": "dossier_depose", "dossier_number": 10}]
        }))),
        "dsWebhookLegacy" => Some(Body::Form(json!({"procedure_id": 77, "dossier_id": 10}))),
        _ => None,
    };
    case
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn send(server: &TestServer, method: &str, template: &str, case: &Case) -> reqwest::Response {
    let mut path = template.to_owned();
    for (name, value) in &case.path {
        path = path.replace(&format!("{{{name}}}"), &text(value).unwrap_or_default());
    }
    let query: Vec<(String, String)> = case
        .query
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), text(v)?)))
        .collect();
    let mut request = server
        .http
        .request(method.parse().expect("method"), server.url(&path))
        .query(&query);
    if case.token {
        request = request.bearer_auth(TOKEN);
    }
    let bytes = match &case.body {
        Some(Body::Json(body)) => {
            request = request.header("content-type", "application/json");
            serde_json::to_vec(body).expect("json")
        }
        Some(Body::Form(body)) => {
            request = request.header("content-type", "application/x-www-form-urlencoded");
            let fields: Vec<(String, String)> = body
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), text(v)?)))
                .collect();
            serde_urlencoded::to_string(fields)
                .expect("form")
                .into_bytes()
        }
        Some(Body::Raw(raw)) => {
            request = request.header("content-type", "application/json");
            raw.as_bytes().to_vec()
        }
        None => Vec::new(),
    };
    if template == "/v1/webhooks/ds" {
        let signature = case.signature.clone().unwrap_or_else(|| sign(&bytes));
        request = request.header("x-webhook-signature-256", signature);
    }
    if case.body.is_some() {
        request = request.body(bytes);
    }
    request.send().await.expect("send")
}

/// Checks one answer against the document: a documented status whose schema the body
/// matches, a 4xx for an invalid request, no refusal of a valid one, never a 5xx.
async fn judge(
    v: &Validator<'_>,
    operation: &Value,
    case: &Case,
    valid: bool,
    response: reqwest::Response,
) {
    let id = operation["operationId"].as_str().unwrap_or_default();
    let what = format!(
        "{id} ({}, {})",
        case.label,
        if valid { "valid" } else { "invalid" }
    );
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let documented = &operation["responses"][status.to_string()];
    assert!(
        documented.is_object(),
        "{what}: status {status} is not documented"
    );
    assert!(status < 500, "{what}: {status}");
    if valid {
        assert!(
            ![400, 422].contains(&status),
            "{what}: a valid request refused with {status}: {}",
            response.text().await.unwrap_or_default()
        );
        return check_body(v, documented, &what, &content_type, response).await;
    }
    assert!(
        (400..500).contains(&status),
        "{what}: an invalid request answered {status}"
    );
    check_body(v, documented, &what, &content_type, response).await;
}

async fn check_body(
    v: &Validator<'_>,
    documented: &Value,
    what: &str,
    content_type: &str,
    response: reqwest::Response,
) {
    let content = documented["content"]
        .as_object()
        .expect("documented content");
    let (media, spec) = content.iter().next().expect("one media type");
    assert!(
        content_type.starts_with(media.as_str()),
        "{what}: `{content_type}`, documented `{media}`"
    );
    if media == "text/event-stream" {
        // The stream follows a running job: its first event is enough, read as a client
        // parses it (the document's schema is one event's, as OpenAPI 3.1 readers take it).
        let event = first_sse_event(what, response).await;
        if let Err(violation) = v.check(&spec["schema"], &event, "$") {
            panic!(
                "{what}: the first event does not match its documented schema: {violation}\n{event}"
            );
        }
        return;
    }
    let text = response.text().await.expect("body");
    let body = if media == "application/json" {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
    } else {
        Value::String(text)
    };
    if let Err(violation) = v.check(&spec["schema"], &body, "$") {
        panic!("{what}: the answer does not match its documented schema: {violation}\n{body}");
    }
}

/// The first Server-Sent Event of `response` as `{"event": name, "data": text}` (data lines
/// joined by newlines, per the SSE format); keep-alive comments skipped.
async fn first_sse_event(what: &str, mut response: reqwest::Response) -> Value {
    let mut text = String::new();
    let deadline = std::time::Duration::from_secs(10);
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("{what}: no event within {deadline:?}"))
            .expect("stream");
        let chunk = chunk.unwrap_or_else(|| panic!("{what}: the stream ended before an event"));
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
    let block = text.split("\n\n").next().unwrap_or_default();
    let mut event = serde_json::Map::new();
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines().filter(|l| !l.starts_with(':')) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => data.push(value),
            _ => {
                event.insert(field.to_owned(), Value::String(value.to_owned()));
            }
        }
    }
    event.insert("data".to_owned(), Value::String(data.join("\n")));
    Value::Object(event)
}

#[tokio::test]
async fn every_operation_accepts_what_the_document_allows_and_refuses_the_rest() {
    let dirs = Dirs::new();
    let mut config = config(&dirs);
    for demarche in [1, 77, 2147483647] {
        config.webhook_destinations.insert(demarche, dirs.dest("w"));
    }
    let pipeline = Arc::new(Blocking {
        files: 7,
        ..Blocking::default()
    });
    let server = TestServer::start(config, pipeline).await;
    let doc: Value = server
        .get("/v1/openapi.json")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let v = Validator { doc: &doc };
    let job = server
        .start_sync(json!({"demarche": 1, "dest": dirs.dest("base")}))
        .await;
    let (mut valid_cases, mut invalid_cases) = (0, 0);
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let id = operation["operationId"].as_str().expect("operationId");
            let base = base_case(id, &job.id, &dirs.dest("c"));
            assert!(
                allowed(&v, operation, &base),
                "{id}: the base request is not valid"
            );
            for case in cases(&v, operation, &base) {
                let valid = allowed(&v, operation, &case);
                *(if valid {
                    &mut valid_cases
                } else {
                    &mut invalid_cases
                }) += 1;
                let response = send(&server, &method.to_uppercase(), template, &case).await;
                judge(&v, operation, &case, valid, response).await;
            }
        }
    }
    // The generator produced both kinds in numbers (a broken one would make this vacuous).
    assert!(
        valid_cases > 40 && invalid_cases > 100,
        "{valid_cases} valid, {invalid_cases} invalid"
    );
    server.stop().await;
}
