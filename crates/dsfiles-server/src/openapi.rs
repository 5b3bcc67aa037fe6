//! The OpenAPI 3.1 document served at `/v1/openapi.json`. Paths and methods come from the
//! same route table as the router ([`crate::routes::table`]); this module adds parameters,
//! bodies and schemas for each operation.

use serde_json::{Map, Value, json};

use crate::routes::{RouteDoc, table};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

/// A 429: the JSON error and `Retry-After`.
fn limited_response(description: &str) -> Value {
    json!({
        "description": description,
        "headers": {"Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn json_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

fn path_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema})
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

/// Parameters, request body and responses of one operation.
fn details(doc: &RouteDoc) -> (Vec<Value>, Option<Value>, Map<String, Value>) {
    let mut responses = Map::new();
    let mut params = Vec::new();
    let mut body = None;
    let job_id = || path_param("id", "Job id (a UUID).", json!({"type": "string"}));
    match doc.operation_id {
        "healthz" => {
            responses.insert("200".into(), json!({"description": "Alive.", "content": {"application/json": {"schema": {"type": "object"}}}}));
        }
        "readyz" => {
            responses.insert("200".into(), json!({"description": "Ready.", "content": {"application/json": {"schema": {"type": "object"}}}}));
            responses.insert("503".into(), error_response("Shutting down."));
        }
        "metrics" => {
            responses.insert("200".into(), json!({"description": "Prometheus text exposition format 0.0.4.", "content": {"text/plain": {"schema": {"type": "string"}}}}));
        }
        "openapi" => {
            responses.insert("200".into(), json!({"description": "This document.", "content": {"application/json": {"schema": {"type": "object"}}}}));
        }
        "createSync" => {
            body = Some(
                json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SyncRequest"}}}}),
            );
            responses.insert("202".into(), json_response("Queued.", "Job"));
            responses.insert(
                "400".into(),
                error_response("Malformed JSON or unknown field."),
            );
            responses.insert(
                "403".into(),
                error_response("Destination outside the allowed prefixes."),
            );
            responses.insert("409".into(), json_response("A job on this démarche and destination is queued or running (its id in `error.job_id`).", "Conflict"));
            responses.insert("415".into(), error_response("Not `application/json`."));
            responses.insert("422".into(), error_response("Invalid value."));
            responses.insert(
                "429".into(),
                limited_response("`limits.max_queued_syncs` jobs already wait (`queue_full`)."),
            );
            responses.insert("503".into(), error_response("Shutting down."));
        }
        "listSyncs" => {
            params.push(query_param(
                "limit",
                "At most this many jobs (1–1000, default 50).",
                json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            ));
            params.push(query_param(
                "state",
                "Only jobs in this state.",
                json!({"$ref": "#/components/schemas/JobState"}),
            ));
            responses.insert(
                "200".into(),
                json_response("Jobs, newest first.", "JobList"),
            );
            responses.insert(
                "400".into(),
                error_response("Unknown query parameter or unparsable value."),
            );
            responses.insert("422".into(), error_response("`limit` out of range."));
        }
        "getSync" => {
            params.push(job_id());
            responses.insert("200".into(), json_response("The job.", "Job"));
            responses.insert("404".into(), error_response("No such job."));
        }
        "cancelSync" => {
            params.push(job_id());
            responses.insert(
                "202".into(),
                json_response(
                    "Cancelled (queued job) or cancellation requested (running job).",
                    "Job",
                ),
            );
            responses.insert("404".into(), error_response("No such job."));
            responses.insert("409".into(), error_response("The job already ended."));
        }
        "syncEvents" => {
            params.push(job_id());
            responses.insert(
                "200".into(),
                json!({
                    "description": "Server-Sent Events: `status` (a Job, first and on every state change) and `progress` (a core pipeline event: `{\"type\": \"file_stored\", ...}`); the stream ends after the terminal status.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}
                }),
            );
            responses.insert("404".into(), error_response("No such job."));
            responses.insert(
                "429".into(),
                limited_response("This token, or the service, holds as many event streams as allowed (`too_many_streams`)."),
            );
        }
        "listFiles" => {
            params.push(path_param(
                "demarche",
                "Démarche number.",
                json!({"type": "integer", "minimum": 1}),
            ));
            params.push(query_param(
                "since",
                "Only dossiers updated since this RFC 3339 date.",
                json!({"type": "string", "format": "date-time"}),
            ));
            params.push(query_param(
                "cursor",
                "`next_cursor` of the previous page.",
                json!({"type": "string"}),
            ));
            params.push(query_param(
                "limit",
                "Records per page (1–1000, default 100).",
                json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            ));
            responses.insert(
                "200".into(),
                json_response("One page of file records.", "FilePage"),
            );
            responses.insert("400".into(), error_response("Invalid cursor or query."));
            responses.insert("404".into(), error_response("Démarche not found."));
            responses.insert(
                "410".into(),
                error_response("The cursor's position no longer exists: start over."),
            );
            responses.insert("422".into(), error_response("Invalid value."));
            responses.insert("502".into(), error_response("DS refused or failed."));
        }
        "dsWebhook" => {
            params.push(json!({
                "name": "X-Webhook-Signature-256", "in": "header", "required": true,
                "description": "`sha256=` + hex HMAC-SHA256 of the raw body with the webhook secret (current or previous).",
                "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"}
            }));
            body = Some(
                json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookDelivery"}}}}),
            );
            responses.insert(
                "202".into(),
                json_response("Syncs queued (or coalesced).", "WebhookAccepted"),
            );
            responses.insert("400".into(), error_response("Malformed payload."));
            responses.insert(
                "401".into(),
                error_response("Missing or invalid signature."),
            );
            responses.insert("404".into(), error_response("Webhooks are not configured."));
            responses.insert(
                "422".into(),
                error_response("Too many events, or no destination configured for the démarche."),
            );
            responses.insert("503".into(), error_response("Shutting down."));
        }
        "dsWebhookLegacy" => {
            params.push(path_param(
                "secret",
                "The webhook secret (a wrong one answers 404).",
                json!({"type": "string"}),
            ));
            body = Some(
                json!({"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/LegacyWebhook"}}}}),
            );
            responses.insert(
                "202".into(),
                json_response("Sync queued (or coalesced).", "WebhookAccepted"),
            );
            responses.insert("400".into(), error_response("Malformed form."));
            responses.insert("404".into(), error_response("Wrong secret."));
            responses.insert(
                "422".into(),
                error_response("No destination configured for the démarche, or `dossier_id` is 0."),
            );
            responses.insert("503".into(), error_response("Shutting down."));
        }
        other => {
            responses.insert("200".into(), json!({"description": format!("`{other}`")}));
        }
    }
    if doc.auth {
        responses.insert(
            "401".into(),
            error_response("Missing or invalid bearer token."),
        );
    }
    // Limits every route has (the service's `--request-timeout` and `--body-limit`).
    responses.insert(
        "408".into(),
        error_response("No answer within the request timeout."),
    );
    if body.is_some() {
        responses.insert("413".into(), error_response("Body larger than the limit."));
    }
    responses.insert(
        "500".into(),
        error_response("Internal error (details in the service log)."),
    );
    (params, body, responses)
}

/// The whole document.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    for route in table() {
        let doc = route.doc;
        let (params, body, responses) = details(&doc);
        let mut operation = json!({
            "operationId": doc.operation_id,
            "summary": doc.summary,
            "tags": [doc.tag],
            "responses": responses,
        });
        if !params.is_empty() {
            operation["parameters"] = Value::Array(params);
        }
        if let Some(body) = body {
            operation["requestBody"] = body;
        }
        operation["security"] = if doc.auth {
            json!([{"bearer": []}])
        } else {
            json!([])
        };
        let item = paths
            .entry(doc.path.to_owned())
            .or_insert_with(|| json!({}));
        item[doc.method.as_str().to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "dsfiles",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Start, watch and cancel syncs of démarches from demarches-simplifiees.fr into storage you control; list files; receive DS webhooks. Every 4xx/5xx has the body `{\"error\": {\"code\", \"message\"}}`."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        }
    })
}

fn schemas() -> Value {
    json!({
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}}
            }}
        },
        "Conflict": {
            "type": "object", "required": ["error"],
            "properties": {"error": {
                "type": "object", "required": ["code", "message", "job_id", "job_state"],
                "properties": {
                    "code": {"type": "string", "const": "sync_in_progress"},
                    "message": {"type": "string"},
                    "job_id": {"type": "string"},
                    "job_state": {"$ref": "#/components/schemas/JobState"}
                }
            }}
        },
        "SyncRequest": {
            "type": "object", "required": ["demarche", "dest"], "additionalProperties": false,
            "properties": {
                "demarche": {"type": "integer", "minimum": 1},
                "dest": {"type": "string", "description": "Absolute local path, file:///path, or s3://, gs://, az:// URL inside an allowed prefix."},
                "since": {"type": "string", "description": "`auto` (default), `full`, or an RFC 3339 date."},
                "include": {"type": "array", "items": {"type": "string", "enum": ["pdf", "geojson", "entreprise"]}},
                "dossiers": {"type": "array", "maxItems": 1000, "items": {"type": "integer", "minimum": 1}}
            }
        },
        "JobState": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
        "Counters": {
            "type": "object",
            "properties": {
                "dossiers": {"type": "integer"}, "files_planned": {"type": "integer"},
                "files_stored": {"type": "integer"}, "files_skipped": {"type": "integer"},
                "files_failed": {"type": "integer"}, "bytes_planned": {"type": "integer"},
                "bytes_stored": {"type": "integer"}, "bytes_downloaded": {"type": "integer"},
                "retries": {"type": "integer"}
            }
        },
        "Job": {
            "type": "object",
            "required": ["id", "state", "demarche", "dest", "since", "include", "dossiers", "trigger", "created_at", "counters", "failures"],
            "properties": {
                "id": {"type": "string"},
                "state": {"$ref": "#/components/schemas/JobState"},
                "demarche": {"type": "integer"},
                "dest": {"type": "string"},
                "since": {"type": "string"},
                "include": {"type": "array", "items": {"type": "string"}},
                "dossiers": {"type": "array", "items": {"type": "integer"}},
                "trigger": {"type": "string", "enum": ["api", "webhook"]},
                "created_at": {"type": "string", "format": "date-time"},
                "started_at": {"type": ["string", "null"], "format": "date-time"},
                "finished_at": {"type": ["string", "null"], "format": "date-time"},
                "cancel_requested": {"type": "boolean"},
                "counters": {"$ref": "#/components/schemas/Counters"},
                "failures": {"type": "array", "items": {
                    "type": "object", "properties": {"key": {"type": "string"}, "reason": {"type": "string"}}
                }},
                "error": {"type": ["object", "null"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}
            }
        },
        "JobList": {"type": "object", "required": ["jobs"], "properties": {"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}}},
        "FileRecord": {
            "type": "object",
            "properties": {
                "file_id": {"type": "string"}, "demarche": {"type": "integer"}, "dossier": {"type": "integer"},
                "state": {"type": "string"}, "source": {"type": "string"}, "champ_id": {"type": ["string", "null"]},
                "label": {"type": "string"}, "row": {"type": ["integer", "null"]}, "filename": {"type": "string"},
                "content_type": {"type": "string"}, "byte_size": {"type": "integer"}, "checksum": {"type": "string"},
                "virus_scan": {"type": "string"}, "created_at": {"type": ["string", "null"]}
            }
        },
        "FilePage": {
            "type": "object", "required": ["files", "next_cursor"],
            "properties": {
                "files": {"type": "array", "items": {"$ref": "#/components/schemas/FileRecord"}},
                "next_cursor": {"type": ["string", "null"]}
            }
        },
        "WebhookDelivery": {
            "type": "object", "required": ["webhook_id", "demarche_number", "events"],
            "properties": {
                "webhook_id": {"type": ["string", "integer"]},
                "demarche_number": {"type": "integer"},
                "events": {"type": "array", "maxItems": 100, "items": {
                    "type": "object", "required": ["sequence"],
                    "properties": {
                        "sequence": {"type": "integer"}, "type": {"type": "string"},
                        "dossier_number": {"type": "integer"}, "timestamp": {"type": "string"}
                    }
                }}
            }
        },
        "LegacyWebhook": {
            "type": "object", "required": ["procedure_id", "dossier_id"],
            "properties": {
                "procedure_id": {"type": "integer"}, "dossier_id": {"type": "integer"},
                "state": {"type": "string"}, "updated_at": {"type": "string"}
            }
        },
        "WebhookAccepted": {
            "type": "object", "required": ["jobs", "duplicates"],
            "properties": {"jobs": {"type": "array", "items": {"type": "string"}}, "duplicates": {"type": "integer"}}
        }
    })
}
