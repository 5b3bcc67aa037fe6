//! The OpenAPI 3.1 document served at `/v1/openapi.json`. Paths and methods come from the
//! same route table as the router ([`crate::routes::table`]); this module adds parameters,
//! bodies and schemas for each operation.

use dsfiles_core::extract::{DataLayout, Layout};
use serde_json::{Map, Value, json};

use crate::api::{DS_NUMBER_MAX, MAX_DOSSIERS, MAX_SCHEDULES, SCHEDULE_NAME_PATTERN};
use crate::config::Destination;
use crate::routes::{MAX_LIST, RouteDoc, table};
use crate::schedules::due::EVERY_PATTERN;
use crate::{files, webhooks};

/// A démarche or dossier number: a DS GraphQL `Int` (signed 32 bits), positive.
fn ds_number() -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": DS_NUMBER_MAX})
}

/// RFC 3339's `date-time` production, which is what [`crate::api::parse_rfc3339`] accepts
/// (its ranges — month 13, offset 24:00 — are `format: date-time`'s part).
const DATE_TIME_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$";

fn date_time() -> Value {
    json!({"type": "string", "format": "date-time", "pattern": DATE_TIME_PATTERN})
}

/// `since` of a sync: `auto`, `full` or a date.
/// One item of a sync's `include`.
fn include_item() -> Value {
    json!({"type": "string", "enum": ["pdf", "geojson", "entreprise"]})
}

fn sync_since() -> Value {
    json!({"anyOf": [{"type": "string", "enum": ["auto", "full"]}, date_time()]})
}

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
        "headers": {"Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer", "minimum": 0}}},
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

fn job_id() -> Value {
    path_param(
        "id",
        "Job id (a UUID; any other value answers 404).",
        json!({"type": "string", "format": "uuid"}),
    )
}

/// Parameters, request body and responses of one operation.
#[derive(Default)]
struct Operation {
    params: Vec<Value>,
    body: Option<Value>,
    responses: Map<String, Value>,
}

impl Operation {
    fn param(mut self, param: Value) -> Operation {
        self.params.push(param);
        self
    }

    fn body(mut self, media_type: &str, schema: &str) -> Operation {
        self.body = Some(json!({"required": true, "content": {media_type: {
            "schema": {"$ref": format!("#/components/schemas/{schema}")}
        }}}));
        self
    }

    fn respond(mut self, status: &str, response: Value) -> Operation {
        self.responses.insert(status.to_owned(), response);
        self
    }

    fn error(self, status: &str, description: &str) -> Operation {
        self.respond(status, error_response(description))
    }
}

fn object_200(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn create_sync() -> Operation {
    // The links let generated clients follow the new job without building paths.
    let id = json!({"id": "$response.body#/id"});
    let links = json!({
        "getSync": {"operationId": "getSync", "parameters": id, "description": "The job's state and counters."},
        "syncEvents": {"operationId": "syncEvents", "parameters": id, "description": "The job's progress as Server-Sent Events."},
        "cancelSync": {"operationId": "cancelSync", "parameters": id, "description": "Cancel the job."}
    });
    let mut queued = json_response("Queued (`Location` names the job).", "Job");
    queued["links"] = links;
    queued["headers"] =
        json!({"Location": {"description": "`/v1/syncs/{id}`.", "schema": {"type": "string"}}});
    Operation::default()
        .body("application/json", "SyncRequest")
        .respond("202", queued)
        .error("400", "Malformed JSON.")
        .error("403", "Destination outside the allowed prefixes.")
        .respond("409", json!({
            "description": "A job of this service on this démarche and destination is queued or running (`sync_in_progress`, its id in `error.job_id`), or another writer (a `dsfiles sync`, another replica) holds the démarche's lease on the destination (`destination_busy`, named in `error.holder`; `break_lease: true` takes it over).",
            "content": {"application/json": {"schema": {"anyOf": [
                {"$ref": "#/components/schemas/Conflict"},
                {"$ref": "#/components/schemas/DestinationBusy"}
            ]}}}
        }))
        .error("415", "Not `application/json`.")
        .error("422", "A field missing, unknown, of the wrong type or out of range; or a malformed destination.")
        .respond("429", limited_response("`limits.max_queued_syncs` jobs already wait (`queue_full`)."))
        .error("503", "Shutting down.")
}

fn create_seda() -> Operation {
    let id = json!({"id": "$response.body#/id"});
    let links = json!({
        "getSeda": {"operationId": "getSeda", "parameters": id, "description": "The job's state and counts."},
        "sedaEvents": {"operationId": "sedaEvents", "parameters": id, "description": "The job's progress as Server-Sent Events."},
        "cancelSeda": {"operationId": "cancelSeda", "parameters": id, "description": "Cancel the job."}
    });
    let mut queued = json_response("Queued (`Location` names the job).", "Job");
    queued["links"] = links;
    queued["headers"] =
        json!({"Location": {"description": "`/v1/seda/{id}`.", "schema": {"type": "string"}}});
    Operation::default()
        .body("application/json", "SedaRequest")
        .respond("202", queued)
        .error("400", "Malformed JSON.")
        .error("403", "`dest` or `out` outside the allowed prefixes.")
        .respond("409", json!({
            "description": "A seda job of this service on this `out` is queued or running (`seda_in_progress`, its id in `error.job_id`), or another writer (a `dsfiles seda`, another replica) holds the seda lease of `out` (`destination_busy`, named in `error.holder`; `break_lease: true` takes it over).",
            "content": {"application/json": {"schema": {"anyOf": [
                {"$ref": "#/components/schemas/SedaConflict"},
                {"$ref": "#/components/schemas/DestinationBusy"}
            ]}}}
        }))
        .error("415", "Not `application/json`.")
        .error("422", "A field missing, unknown, of the wrong type or out of range (a profile's message names its key); or a malformed destination.")
        .respond("429", limited_response("`limits.max_queued_syncs` jobs already wait (`queue_full`)."))
        .error("503", "Shutting down.")
}

fn list_syncs() -> Operation {
    Operation::default()
        .param(query_param(
            "limit",
            "At most this many jobs (default 50).",
            json!({"type": "integer", "minimum": 1, "maximum": MAX_LIST}),
        ))
        .param(query_param(
            "state",
            "Only jobs in this state.",
            json!({"$ref": "#/components/schemas/JobState"}),
        ))
        .param(query_param(
            "schedule",
            "Only the runs of this schedule (any string; one no schedule has lists nothing).",
            json!({"type": "string"}),
        ))
        .respond("200", json_response("Jobs, newest first.", "JobList"))
        .error(
            "400",
            "Unknown query parameter, or a value that is not an integer or a state.",
        )
        .error("422", "`limit` out of range.")
}

/// One event of a job's stream. Before OpenAPI 3.2 (which names it `itemSchema`), the schema
/// of a `text/event-stream` describes each event, as a client parses it: its name and its
/// `data`, a JSON text (a `Job` for `status`). A schema of the whole stream as one string
/// read that way refused every event (Schemathesis, `ST108`).
fn job_event_schema() -> Value {
    let json_text = |schema: Value| json!({"type": "string", "contentMediaType": "application/json", "contentSchema": schema});
    json!({
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"type": "string", "enum": ["status", "progress"]},
            "data": {"type": "string"},
        },
        "anyOf": [
            {"properties": {"event": {"const": "status"}, "data": json_text(json!({"$ref": "#/components/schemas/Job"}))}},
            {"properties": {"event": {"const": "progress"}, "data": json_text(json!({"type": "object", "required": ["type"]}))}},
        ],
    })
}

fn sync_events() -> Operation {
    Operation::default()
        .param(job_id())
        .respond("200", json!({
            "description": "Server-Sent Events: `status` (a Job, first and on every state change) and `progress` (a core pipeline event: `{\"type\": \"file_stored\", ...}`); the stream ends after the terminal status.",
            "content": {"text/event-stream": {"schema": job_event_schema()}}
        }))
        .error("404", "No such job.")
        .respond("429", limited_response("This token, or the service, holds as many event streams as allowed (`too_many_streams`)."))
}

fn list_files() -> Operation {
    Operation::default()
        .param(path_param("demarche", "Démarche number.", ds_number()))
        .param(query_param(
            "since",
            "Only dossiers updated since this RFC 3339 date (empty: all).",
            json!({"anyOf": [{"type": "string", "maxLength": 0}, date_time()]}),
        ))
        .param(query_param(
            "cursor",
            "`next_cursor` of the previous page (empty: the first page); any other value answers 400.",
            json!({"type": "string", "pattern": "^[A-Za-z0-9_-]*$"}),
        ))
        .param(query_param(
            "limit",
            "Records per page (default 100).",
            json!({"type": "integer", "minimum": 1, "maximum": files::MAX_LIMIT}),
        ))
        .respond("200", json_response("One page of file records.", "FilePage"))
        .error("400", "Unknown query parameter, a non-integer number, or a cursor this service did not issue for this listing.")
        .error("404", "Démarche not found.")
        .error("410", "The cursor's position no longer exists: start over.")
        .error("422", "A number out of range or a `since` that is not an RFC 3339 date.")
        .error("502", "DS refused or failed.")
}

fn ds_webhook() -> Operation {
    Operation::default()
        .param(json!({
            "name": "X-Webhook-Signature-256", "in": "header", "required": true,
            "description": "`sha256=` + hex HMAC-SHA256 of the raw body with the webhook secret (current or previous).",
            "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"}
        }))
        .body("application/json", "WebhookDelivery")
        .respond("202", json_response("Syncs queued (or coalesced).", "WebhookAccepted"))
        .error("400", "Malformed payload.")
        .error("401", "Missing or invalid signature.")
        .error("404", "Webhooks are not configured, or no destination is configured for the démarche (`demarche_not_configured`).")
        .error("422", "Too many events, a number out of range, or a `webhook_id` neither string nor integer.")
        .error("503", "Shutting down.")
}

fn ds_webhook_legacy() -> Operation {
    Operation::default()
        .param(path_param(
            "secret",
            "The webhook secret (a wrong one answers 404).",
            json!({"type": "string"}),
        ))
        .body("application/x-www-form-urlencoded", "LegacyWebhook")
        .respond(
            "202",
            json_response("Sync queued (or coalesced).", "WebhookAccepted"),
        )
        .error("400", "Malformed form.")
        .error(
            "404",
            "Wrong secret, or no destination configured for the démarche (`demarche_not_configured`).",
        )
        .error("422", "A number out of range.")
        .error("503", "Shutting down.")
}

fn schedule_name() -> Value {
    path_param(
        "name",
        "Schedule name (any other spelling answers 422 `invalid_schedule_name`).",
        json!({"type": "string", "pattern": SCHEDULE_NAME_PATTERN}),
    )
}

/// `/v1/schedules/{name}`: the name, the answers of a store that did not answer.
fn schedule_operation() -> Operation {
    Operation::default()
        .param(schedule_name())
        .error(
            "422",
            "A name outside the pattern (`invalid_schedule_name`).",
        )
        .error(
            "503",
            "The job database (`--database-url`) did not answer, or the service is shutting down.",
        )
}

fn put_schedule() -> Operation {
    schedule_operation()
        .body("application/json", "ScheduleRequest")
        .respond("200", json_response("Replaced: the new definition, the schedule's runs and tick kept (the tick pulled back to one period when `every` shrank).", "Schedule"))
        .respond("201", json_response("Created: due at once.", "Schedule"))
        .error("400", "Malformed JSON.")
        .error("403", "Destination outside the allowed prefixes.")
        .error("415", "Not `application/json`.")
        .error("422", &format!("A name outside the pattern (`invalid_schedule_name`); a field missing, unknown, of the wrong type or out of range, or a malformed destination (`invalid_value`, `invalid_destination`); or `{MAX_SCHEDULES}` schedules exist already (`too_many_schedules`)."))
}

/// The operation-specific part of `doc`.
fn operation(doc: &RouteDoc) -> Operation {
    let status = |value: &str| json!({"type": "object", "required": ["status"], "properties": {"status": {"const": value}}});
    match doc.operation_id {
        "healthz" => Operation::default().respond("200", object_200("Alive.", status("ok"))),
        "readyz" => Operation::default()
            .respond("200", object_200("Ready.", status("ready")))
            .error("503", "Shutting down."),
        "metrics" => Operation::default().respond("200", json!({"description": "Prometheus text exposition format 0.0.4.", "content": {"text/plain": {"schema": {"type": "string"}}}})),
        "openapi" => Operation::default().respond("200", object_200("This document.", json!({"type": "object", "required": ["openapi", "paths"]}))),
        "createSync" => create_sync(),
        "listSyncs" => list_syncs(),
        "getSync" => Operation::default()
            .param(job_id())
            .respond("200", json_response("The job.", "Job"))
            .error("404", "No such job."),
        "cancelSync" => Operation::default()
            .param(job_id())
            .respond("202", json_response("Cancelled (queued job) or cancellation requested (running job).", "Job"))
            .error("404", "No such job.")
            .error("409", "The job already ended."),
        "syncEvents" => sync_events(),
        "listFiles" => list_files(),
        "listSchedules" => Operation::default()
            .respond("200", json_response("Every schedule, by name.", "ScheduleList"))
            .error("503", "The job database (`--database-url`) did not answer."),
        "getSchedule" => schedule_operation()
            .respond("200", json_response("The schedule.", "Schedule"))
            .error("404", "No such schedule."),
        "putSchedule" => put_schedule(),
        "deleteSchedule" => schedule_operation()
            .respond("204", json!({"description": "Deleted; its jobs stay in the history, a running one runs on."}))
            .error("404", "No such schedule."),
        "createSeda" => create_seda(),
        "getSeda" => Operation::default()
            .param(job_id())
            .respond("200", json_response("The job.", "Job"))
            .error("404", "No such job."),
        "cancelSeda" => Operation::default()
            .param(job_id())
            .respond("202", json_response("Cancelled (queued job) or cancellation requested (running job).", "Job"))
            .error("404", "No such job.")
            .error("409", "The job already ended."),
        "sedaEvents" => sync_events(),
        "dsWebhook" => ds_webhook(),
        "dsWebhookLegacy" => ds_webhook_legacy(),
        other => Operation::default().respond("200", json!({"description": format!("`{other}`")})),
    }
}

/// [`operation`] plus the answers every route can give: 401 behind the token, 408 past
/// `--request-timeout`, 413 past `--body-limit`, 500.
fn details(doc: &RouteDoc) -> Operation {
    let mut op = operation(doc);
    if doc.auth {
        op = op.error("401", "Missing or invalid bearer token.");
    }
    op = op.error("408", "No answer within the request timeout.");
    if op.body.is_some() {
        op = op.error("413", "Body larger than the limit.");
    }
    op.error("500", "Internal error (details in the service log).")
}

/// The whole document.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    for route in table() {
        let doc = route.doc;
        let Operation {
            params,
            body,
            responses,
        } = details(&doc);
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
            "description": "Start, watch and cancel syncs of démarches from demarches-simplifiees.fr into storage you control; list files; receive DS webhooks. Every 4xx/5xx has the body `{\"error\": {\"code\", \"message\"}}`: an unknown path answers 404, a method a path does not list 405 (with `Allow`). Démarche and dossier numbers are DS `Int`s (1 to 2147483647); a request outside what this document allows is refused with a 4xx before DS is called."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        }
    })
}

fn schemas() -> Value {
    let count = json!({"type": "integer", "minimum": 0});
    let counters: Map<String, Value> = [
        "dossiers",
        "files_planned",
        "files_stored",
        "files_skipped",
        "files_failed",
        "bytes_planned",
        "bytes_stored",
        "bytes_downloaded",
        "retries",
    ]
    .into_iter()
    .map(|name| (name.to_owned(), count.clone()))
    .collect();
    let counter_names: Vec<&String> = counters.keys().collect();
    let mut schemas = json!({
        "SyncRequest": sync_request_schema(),
        "SedaRequest": seda_request_schema(),
        "SedaProfile": seda_profile_schema(),
        "SedaJob": seda_job_schema(),
        "ScheduleRequest": schedule_request_schema(),
        "Schedule": schedule_schema(),
        "ScheduleList": {"type": "object", "required": ["schedules"], "properties": {"schedules": {"type": "array", "maxItems": MAX_SCHEDULES, "items": {"$ref": "#/components/schemas/Schedule"}}}},
        "JobState": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
        "Counters": {"type": "object", "required": counter_names, "properties": counters},
        "Job": job_schema(),
        "JobList": {"type": "object", "required": ["jobs"], "properties": {"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}}},
        "FileRecord": {
            "type": "object",
            "required": ["file_id", "demarche", "dossier", "state", "source", "champ_id", "label", "row", "filename", "content_type", "byte_size", "checksum", "virus_scan", "created_at"],
            "properties": {
                "file_id": {"type": "string"}, "demarche": ds_number(), "dossier": ds_number(),
                "state": {"type": "string"}, "source": {"type": "string"}, "champ_id": {"type": ["string", "null"]},
                "label": {"type": "string"}, "row": {"type": ["integer", "null"], "minimum": 0}, "filename": {"type": "string"},
                "content_type": {"type": "string"}, "byte_size": count, "checksum": {"type": "string"},
                "virus_scan": {"type": "string"}, "created_at": {"type": ["string", "null"]}
            }
        },
        "FilePage": {
            "type": "object", "required": ["files", "next_cursor"],
            "properties": {
                "files": {"type": "array", "items": {"$ref": "#/components/schemas/FileRecord"}},
                "next_cursor": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9_-]+$"}
            }
        }
    });
    for group in [error_schemas(), webhook_schemas()] {
        if let (Value::Object(all), Value::Object(more)) = (&mut schemas, group) {
            all.extend(more);
        }
    }
    schemas
}
/// The error bodies: the generic one and the two conflicts that name what holds the destination.
fn error_schemas() -> Value {
    json!({
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string", "pattern": "^[a-z_]+$"}, "message": {"type": "string", "minLength": 1}}
            }}
        },
        "Conflict": {
            "type": "object", "required": ["error"],
            "properties": {"error": {
                "type": "object", "required": ["code", "message", "job_id", "job_state"],
                "properties": {
                    "code": {"type": "string", "const": "sync_in_progress"},
                    "message": {"type": "string"},
                    "job_id": {"type": "string", "format": "uuid"},
                    "job_state": {"$ref": "#/components/schemas/JobState"}
                }
            }}
        },
        "SedaConflict": {
            "type": "object", "required": ["error"],
            "properties": {"error": {
                "type": "object", "required": ["code", "message", "job_id", "job_state"],
                "properties": {
                    "code": {"type": "string", "const": "seda_in_progress"},
                    "message": {"type": "string"},
                    "job_id": {"type": "string", "format": "uuid"},
                    "job_state": {"$ref": "#/components/schemas/JobState"}
                }
            }}
        },
        "DestinationBusy": {
            "type": "object", "required": ["error"],
            "properties": {"error": {
                "type": "object", "required": ["code", "message", "holder", "since", "expires_at"],
                "properties": {
                    "code": {"type": "string", "const": "destination_busy"},
                    "message": {"type": "string", "minLength": 1},
                    "holder": {
                        "type": "object", "required": ["host", "pid", "tool"],
                        "properties": {
                            "host": {"type": "string"},
                            "pid": {"type": "integer", "minimum": 0},
                            "replica": {"type": "string"},
                            "tool": {"type": "string"}
                        }
                    },
                    "since": {"type": "string", "format": "date-time"},
                    "expires_at": {"type": "string", "format": "date-time"}
                }
            }}
        }
    })
}

/// What DS's webhooks send and what the service answers them.
fn webhook_schemas() -> Value {
    let count = json!({"type": "integer", "minimum": 0});
    // What the service reads these into: a `sequence` is a `u64`, an integer `webhook_id` an
    // `i64` or a `u64` (`webhooks::dedup_key`); past that a delivery is refused.
    let sequence = json!({"type": "integer", "minimum": 0, "maximum": u64::MAX});
    json!({
        "WebhookDelivery": {
            "type": "object", "required": ["webhook_id", "demarche_number", "events"],
            "properties": {
                "webhook_id": {"type": ["string", "integer"], "minimum": i64::MIN, "maximum": u64::MAX},
                "demarche_number": ds_number(),
                "events": {"type": "array", "maxItems": webhooks::MAX_EVENTS, "items": {
                    "type": "object", "required": ["sequence"],
                    "properties": {
                        "sequence": sequence, "type": {"type": ["string", "null"]},
                        "dossier_number": {"type": ["integer", "null"], "minimum": 1, "maximum": DS_NUMBER_MAX},
                        "timestamp": {"description": "Not read: the data comes from the API."}
                    }
                }}
            }
        },
        "LegacyWebhook": {
            "type": "object", "required": ["procedure_id", "dossier_id"],
            "properties": {
                "procedure_id": ds_number(), "dossier_id": ds_number(),
                "state": {"type": "string"}, "updated_at": {"type": "string"}
            }
        },
        "WebhookAccepted": {
            "type": "object", "required": ["jobs", "duplicates"],
            "properties": {"jobs": {"type": "array", "items": {"type": "string", "format": "uuid"}}, "duplicates": count}
        }
    })
}
/// A job's record (`GET /v1/syncs/{id}`); its own function for the `json!` recursion limit.
fn job_schema() -> Value {
    let include = include_item();
    let nullable_date = json!({"anyOf": [{"type": "null"}, date_time()]});
    json!({
        "type": "object",
        "required": ["id", "state", "demarche", "dest", "since", "include", "dossiers", "trigger", "created_at", "started_at", "finished_at", "cancel_requested", "counters", "failures", "error"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "kind": {"type": "string", "enum": ["sync", "seda"], "description": "`seda` for a `POST /v1/seda` job (its `counters` then count dossiers: docs/http-api.md)."},
            "seda": {"$ref": "#/components/schemas/SedaJob"},
            "state": {"$ref": "#/components/schemas/JobState"},
            "demarche": ds_number(),
            "dest": {"type": "string"},
            "since": sync_since(),
            "include": {"type": "array", "items": include},
            "dossiers": {"type": "array", "items": ds_number()},
            "layout": {"type": ["string", "null"], "description": "As in the request; `null`: what the destination was last synced with."},
            "data_layout": {"type": ["string", "null"]},
            "no_data": {"type": ["boolean", "null"]},
            "trigger": {"type": "string", "enum": ["api", "webhook", "schedule"]},
            "schedule": {"type": "string", "pattern": SCHEDULE_NAME_PATTERN, "description": "The schedule that started the job (trigger `schedule`)."},
            "created_at": date_time(),
            "started_at": nullable_date,
            "finished_at": nullable_date,
            "cancel_requested": {"type": "boolean"},
            "runner": {"type": "string", "description": "The replica that runs or ran the job (`--replica-id`); only with `--database-url`."},
            "history": {"type": "array", "description": "What happened to the job, oldest first; only with `--database-url`.", "items": {
                "type": "object", "required": ["at", "event", "replica", "message"],
                "properties": {
                    "at": date_time(), "replica": {"type": "string"}, "message": {"type": "string"},
                    "event": {"type": "string", "enum": ["queued", "claimed", "resumed", "released", "cancel_requested", "cancelled", "finished", "tick_skipped"]}
                }
            }},
            "counters": {"$ref": "#/components/schemas/Counters"},
            "failures": {"type": "array", "items": {
                "type": "object", "required": ["key", "reason"],
                "properties": {"key": {"type": "string"}, "reason": {"type": "string"}}
            }},
            "error": {"anyOf": [{"type": "null"}, {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}}
            }]}
        }
    })
}

/// The body of `POST /v1/syncs` (its own function: one `json!` of every schema is past the
/// macro's recursion limit).
fn sync_request_schema() -> Value {
    let include = include_item();
    json!({
        "type": "object", "required": ["demarche", "dest"], "additionalProperties": false,
        "properties": {
            "demarche": ds_number(),
            "dest": {"type": "string", "minLength": 1, "pattern": Destination::pattern(), "description": "Absolute local path, file:///path, or s3://, gs://, az:// URL inside an allowed prefix."},
            "since": {"description": "`auto` (default: from the destination's last successful sync), `full`, or an RFC 3339 date.", "anyOf": sync_since()["anyOf"].clone()},
            "include": {"type": "array", "items": include},
            "dossiers": {"type": "array", "maxItems": MAX_DOSSIERS, "items": ds_number()},
            "break_lease": {"type": "boolean", "default": false, "description": "Take over the démarche's lease on the destination even from a live holder (one known to be gone). Without it, a live lease of another writer answers 409 `destination_busy`."},
            "layout": {"type": "string", "minLength": 1, "pattern": Layout::pattern(), "description": "Where each file goes under `dest`, as the CLI's `--layout` (file placeholders and the dossier's, such as `{groupe}` or `{champ:LABEL}`). Absent: the layout the destination was last synced with (recorded in it), else `{dossier}/{source}/{label}/{filename}`. Given: recorded for the next syncs, webhook jobs included."},
            "data_layout": {"type": "string", "minLength": 1, "pattern": DataLayout::pattern(), "description": "Where each dossier's dossier.json goes: a template containing `{dossier}` (may use `{demarche}` and `{state}`). Absent, with `no_data` absent: what the destination was last synced with, else the directory of the layout holding `{dossier}`, plus `/dossier.json`. Given: recorded, like `layout`."},
            "no_data": {"type": "boolean", "description": "`true`: write no dossier.json (not with `data_layout`); `false`: write it, where `data_layout` says, else next to the files (the directory of the layout holding `{dossier}`). Absent: as `data_layout` says. Recorded, like `layout`."}
        },
        "not": {"required": ["data_layout", "no_data"], "properties": {"no_data": {"const": true}}}
    })
}

/// The body of `PUT /v1/schedules/{name}`: a `SyncRequest` without `break_lease`, with
/// `every` and `enabled`.
fn schedule_request_schema() -> Value {
    let mut schema = sync_request_schema();
    schema["required"] = json!(["demarche", "dest", "every"]);
    if let Some(properties) = schema["properties"].as_object_mut() {
        properties.remove("break_lease");
        properties.insert("every".into(), json!({"type": "string", "pattern": EVERY_PATTERN, "description": "The period: 1 to 4 digits and `s`, `m`, `h` or `d` (`90s`, `15m`, `1h`, `1d`), at least `5s`."}));
        properties.insert("enabled".into(), json!({"type": "boolean", "description": "Default `true`; `false` keeps the schedule without running it."}));
    }
    schema
}

/// `schema` with a `description`.
fn described(mut schema: Value, description: &str) -> Value {
    schema["description"] = json!(description);
    schema
}

/// A schedule as stored and answered.
fn schedule_schema() -> Value {
    let count = json!({"type": "integer", "minimum": 0});
    let nullable_date = json!({"anyOf": [{"type": "null"}, date_time()]});
    let nullable_string = json!({"type": ["string", "null"]});
    json!({
        "type": "object",
        "required": ["name", "every", "enabled", "demarche", "dest", "since", "include", "dossiers", "layout", "data_layout", "no_data", "created_at", "updated_at", "next_due_at", "last_job", "last_state", "last_started_at", "last_success_at", "last_duration_secs", "failures", "skipped_ticks"],
        "properties": {
            "name": {"type": "string", "pattern": SCHEDULE_NAME_PATTERN},
            "every": {"type": "string", "pattern": EVERY_PATTERN, "description": "Canonical: the largest exact unit (`120s` is `2m`)."},
            "enabled": {"type": "boolean"},
            "demarche": ds_number(),
            "dest": {"type": "string", "description": "Canonical, as in a job."},
            "since": sync_since(),
            "include": {"type": "array", "items": include_item()},
            "dossiers": {"type": "array", "items": ds_number()},
            "layout": nullable_string,
            "data_layout": nullable_string,
            "no_data": {"type": ["boolean", "null"]},
            "created_at": date_time(),
            "updated_at": date_time(),
            "next_due_at": described(date_time(), "The next tick: a run starts then unless the previous one is still queued or running."),
            "last_job": {"description": "The job of the latest run (`GET /v1/syncs/{id}`).", "anyOf": [{"type": "null"}, {"type": "string", "format": "uuid"}]},
            "last_state": {"description": "That job's state as the scheduler last saw it.", "anyOf": [{"type": "null"}, {"$ref": "#/components/schemas/JobState"}]},
            "last_started_at": nullable_date,
            "last_success_at": {"description": "When the latest successful run ended.", "anyOf": nullable_date["anyOf"].clone()},
            "last_duration_secs": {"type": ["number", "null"], "minimum": 0, "description": "How long the latest finished run took."},
            "failures": described(count.clone(), "Runs that ended `failed`."),
            "skipped_ticks": described(count, "Ticks that started no run: the previous run still active, the destination busy, or the queue full.")
        }
    })
}

/// The body of `POST /v1/seda`.
fn seda_request_schema() -> Value {
    let dest =
        "Absolute local path, file:///path, or s3://, gs://, az:// URL inside an allowed prefix.";
    json!({
        "type": "object", "required": ["demarche", "dest", "out", "profile"], "additionalProperties": false,
        "properties": {
            "demarche": ds_number(),
            "dest": {"type": "string", "minLength": 1, "pattern": Destination::pattern(), "description": format!("A destination written by a sync. {dest}")},
            "out": {"type": "string", "minLength": 1, "pattern": Destination::pattern(), "description": format!("Where the packages go. {dest}")},
            "profile": {"$ref": "#/components/schemas/SedaProfile"},
            "dossiers": {"type": "array", "maxItems": MAX_DOSSIERS, "items": ds_number(), "description": "Only these dossiers (absent or empty: every dossier of the démarche in `dest`)."},
            "states": {"type": ["array", "null"], "items": {"type": "string", "enum": dsfiles_core::seda::STATES}, "description": "DS states to package (absent, null or empty: `accepte`, `refuse`, `sans_suite`)."},
            "break_lease": {"type": "boolean", "default": false, "description": "Take over the seda lease of `out` even from a live holder (one known to be gone). Without it, a live lease of another writer answers 409 `destination_busy`."}
        }
    })
}

/// A string the service does not trim to nothing: one character that is not whitespace to
/// Rust's `trim` — ECMA-262's `\S` alone would let U+0085 through, which `trim` removes.
const NOT_BLANK: &str = "[^\\s\\u0085]";

/// The archival profile of `POST /v1/seda`: the keys of the CLI's profile file (docs/seda.md).
fn seda_profile_schema() -> Value {
    let id = json!({"type": "string", "pattern": NOT_BLANK});
    let start = json!({"type": "string", "enum": ["decision", "depot", "none"]});
    json!({
        "type": "object", "additionalProperties": false,
        "required": ["archival_agreement", "archival_agency", "transferring_agency", "originating_agency"],
        "properties": {
            "archival_agreement": id, "archival_agency": id, "transferring_agency": id, "originating_agency": id,
            "submission_agency": {"type": ["string", "null"], "pattern": NOT_BLANK},
            "digest": {"type": "string", "enum": ["SHA-512", "SHA-256"]},
            "package_name": {"type": "string", "pattern": "^([^{}]|\\{(dossier|demarche|state)\\})*$"},
            "appraisal": {"type": ["object", "null"], "additionalProperties": false, "required": ["rule", "final_action"], "properties": {
                "rule": id, "start_date": start, "final_action": {"type": "string", "enum": ["Keep", "Destroy"]}
            }},
            "access": {"type": ["object", "null"], "additionalProperties": false, "required": ["rule"], "properties": {
                "rule": id, "start_date": start
            }}
        }
    })
}

/// `seda` of a seda job's record.
fn seda_job_schema() -> Value {
    let count = json!({"type": "integer", "minimum": 0});
    let counts = [
        "dossiers",
        "packaged",
        "unchanged",
        "skipped",
        "failed",
        "bytes_written",
    ];
    let properties: Map<String, Value> = counts
        .iter()
        .map(|name| ((*name).to_owned(), count.clone()))
        .collect();
    json!({
        "type": "object", "required": ["out", "profile", "states", "result"],
        "properties": {
            "out": {"type": "string"},
            "profile": {"$ref": "#/components/schemas/SedaProfile"},
            "states": {"type": "array", "items": {"type": "string"}},
            "result": {"description": "The report's counts, once the job ended with one.", "anyOf": [{"type": "null"}, {
                "type": "object", "required": counts, "properties": properties
            }]}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::NOT_BLANK;

    #[test]
    fn not_blank_matches_what_trim_leaves_something_of() {
        let pattern = regex::Regex::new(NOT_BLANK).expect("the pattern compiles");
        let samples = [
            "a", " a ", "\u{85}", "\u{85}x", " ", "\t\n", "\u{a0}", "\u{3000}", "\u{2028}",
            "\u{feff}", "\u{11}", "",
        ];
        for sample in samples {
            assert_eq!(
                pattern.is_match(sample),
                !sample.trim().is_empty(),
                "{sample:?}"
            );
        }
    }
}
