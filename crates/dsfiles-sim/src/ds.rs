//! DS's behaviour on top of the generic executor: the fields with arguments, pagination,
//! signed file URLs, the GraphQL request pipeline and its error shapes.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use apollo_compiler::Schema;
use apollo_compiler::executable::{ExecutableDocument, Operation};
use apollo_compiler::parser::Parser;
use apollo_compiler::response::JsonMap;
use apollo_compiler::validation::Valid;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::data::{FileEntry, State};
use crate::faults::{Fault, Scope, Subject};
use crate::graphql::{Executor, FieldError, PathSeg, Resolver};
use crate::world::World;

/// DS caps `first` at this many nodes per page, silently.
pub(crate) const MAX_PAGE: i64 = 100;

/// The vendored DS schema, parsed and validated once.
pub(crate) fn schema() -> Result<Valid<Schema>, String> {
    Schema::parse_and_validate(
        include_str!("../../../fixtures/ds/schema.graphql"),
        "schema.graphql",
    )
    .map_err(|e| e.errors.to_string())
}

/// A GraphQL request body.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct GraphqlRequest {
    pub(crate) query: String,
    #[serde(default)]
    pub(crate) variables: Option<Map<String, Value>>,
    #[serde(default, rename = "operationName")]
    pub(crate) operation_name: Option<String>,
}

fn request_error(code: &str, message: impl Into<String>, locations: Option<Value>) -> Value {
    let mut error = json!({"message": message.into(), "extensions": {"code": code}});
    if let Some(locations) = locations {
        error["locations"] = locations;
    }
    error
}

/// A DS-shaped `{"errors": [...]}` body for a query that does not parse or validate.
fn diagnostics_response(
    code: &str,
    diagnostics: &apollo_compiler::validation::DiagnosticList,
) -> Value {
    let errors: Vec<Value> = diagnostics
        .iter()
        .map(|d| {
            let json = d.to_json();
            let locations = serde_json::to_value(&json.locations).ok();
            request_error(code, json.message, locations)
        })
        .collect();
    json!({ "errors": errors })
}

/// Runs one request to a response body (HTTP 200). `Err` is a simulator bug.
pub(crate) fn run(world: &World, request: &GraphqlRequest) -> Result<Value, String> {
    let document = match validated(world, request) {
        Ok(document) => document,
        Err(body) => return Ok(body),
    };
    let (operation, coerced) = match operation_and_variables(world, &document, request) {
        Ok(checked) => checked,
        Err(body) => return Ok(body),
    };
    let variables = match serde_json::to_value(coerced.into_inner()) {
        Ok(Value::Object(map)) => map,
        other => return Err(format!("coerced variables are not an object: {other:?}")),
    };
    let state = world.read_state();
    let resolver = DsResolver {
        world,
        state: &state,
    };
    let executor = Executor {
        schema: &world.schema,
        document: &document,
        variables: &variables,
        resolver: &resolver,
        errors: Vec::new(),
    };
    let response = executor.execute(operation)?;
    let mut body = json!({"data": response.data});
    if !response.errors.is_empty() {
        body["errors"] = Value::Array(response.errors);
    }
    Ok(body)
}

/// The request's document, parsed and validated against DS's schema; `Err` is the error
/// response DS gives.
fn validated(world: &World, request: &GraphqlRequest) -> Result<Valid<ExecutableDocument>, Value> {
    let ast = Parser::new()
        .parse_ast(&request.query, "query.graphql")
        .map_err(|with_errors| diagnostics_response("graphql_parse_failed", &with_errors.errors))?;
    ast.to_executable_validate(&world.schema)
        .map_err(|with_errors| {
            diagnostics_response("graphql_validation_failed", &with_errors.errors)
        })
}

/// The operation to run (a query) and its variables, coerced to the schema's types; `Err` is
/// the error response DS gives.
fn operation_and_variables<'d>(
    world: &World,
    document: &'d Valid<ExecutableDocument>,
    request: &GraphqlRequest,
) -> Result<(&'d Operation, Valid<JsonMap>), Value> {
    let refuse =
        |code: &str, message: String| json!({"errors": [request_error(code, message, None)]});
    let operation = match document.operations.get(request.operation_name.as_deref()) {
        Ok(operation) => operation,
        Err(e) => return Err(refuse("bad_request", e.message().to_string())),
    };
    if !operation.is_query() {
        let message = "The simulator only answers queries".to_owned();
        return Err(refuse("unsupported", message));
    }
    let variables = Value::Object(request.variables.clone().unwrap_or_default());
    let raw: JsonMap = serde_json::from_value(variables)
        .map_err(|e| refuse("bad_request", format!("variables: {e}")))?;
    let coerced = apollo_compiler::request::coerce_variable_values(&world.schema, operation, &raw)
        .map_err(|e| refuse("invalid_variables", e.message().to_string()))?;
    Ok((operation, coerced))
}

struct DsResolver<'s> {
    world: &'s World,
    state: &'s State,
}

fn arg_u64(args: &Map<String, Value>, name: &str) -> Option<u64> {
    args.get(name).and_then(Value::as_u64)
}

fn arg_date(args: &Map<String, Value>, name: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|d| Some(d.with_timezone(&Utc)))
            .map_err(|_| {
                FieldError::new(
                    "invalid_argument",
                    format!("`{name}` is not an ISO 8601 date-time: `{s}`"),
                )
            }),
        Some(other) => Err(FieldError::new(
            "invalid_argument",
            format!("`{name}` is not a date-time: `{other}`"),
        )),
    }
}

/// Opaque cursors: the ordering mode, the sort key and the dossier number.
fn encode_cursor(mode: char, key: i64, number: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{mode}:{key}:{number}"))
}

fn decode_cursor(cursor: &str, mode: char) -> Result<(i64, u64), FieldError> {
    let invalid = || FieldError::new("invalid_argument", format!("invalid cursor `{cursor}`"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.splitn(3, ':');
    let (Some(m), Some(key), Some(number)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    if m.chars().ne([mode]) {
        return Err(invalid());
    }
    Ok((
        key.parse().map_err(|_| invalid())?,
        number.parse().map_err(|_| invalid())?,
    ))
}

/// Builds a Relay connection from sorted `(key, number)` items.
fn connection(
    edge_type: &str,
    items: Vec<(i64, u64)>,
    mode: char,
    first: Option<i64>,
    after: Option<&str>,
    node: impl Fn(u64) -> Value,
) -> Result<Value, FieldError> {
    let page = first.unwrap_or(MAX_PAGE).clamp(0, MAX_PAGE) as usize;
    let start = match after {
        Some(cursor) => {
            let position = decode_cursor(cursor, mode)?;
            items.partition_point(|&item| item <= position)
        }
        None => 0,
    };
    let rest = &items[start..];
    let taken = &rest[..page.min(rest.len())];
    let cursors: Vec<String> = taken
        .iter()
        .map(|&(k, n)| encode_cursor(mode, k, n))
        .collect();
    Ok(json!({
        "__typename": format!("{edge_type}Connection"),
        "nodes": taken.iter().map(|&(_, n)| node(n)).collect::<Vec<_>>(),
        "edges": taken.iter().zip(&cursors).map(|(&(_, n), c)| json!({"__typename": format!("{edge_type}Edge"), "cursor": c, "node": node(n)})).collect::<Vec<_>>(),
        "pageInfo": {
            "__typename": "PageInfo",
            "hasNextPage": rest.len() > taken.len(),
            "hasPreviousPage": start > 0,
            "startCursor": cursors.first(),
            "endCursor": cursors.last(),
        },
    }))
}

impl DsResolver<'_> {
    fn reject_backwards(args: &Map<String, Value>) -> Result<(), FieldError> {
        for name in ["last", "before"] {
            if args.get(name).is_some_and(|v| !v.is_null()) {
                return Err(FieldError::new(
                    "unsupported",
                    format!("`{name}` is not supported by the simulator"),
                ));
            }
        }
        Ok(())
    }

    fn dossiers(
        &self,
        args: &Map<String, Value>,
        groupe: Option<u64>,
    ) -> Result<Value, FieldError> {
        Self::reject_backwards(args)?;
        let first = args.get("first").and_then(Value::as_i64);
        let page = first.unwrap_or(MAX_PAGE).clamp(0, MAX_PAGE);
        let seq = self.world.stats.pages.fetch_add(1, Ordering::Relaxed) + 1;
        let fired = self.world.fire(Scope::Page, &Subject { seq, ..Subject::default() }, |fault| {
            matches!(fault, Fault::GraphqlTimeout { above_first } if page > i64::from(*above_first))
        });
        if !fired.is_empty() {
            self.world.stats.timeouts.fetch_add(1, Ordering::Relaxed);
            return Err(FieldError::new("timeout", "Timeout on Demarche.dossiers"));
        }
        let updated_since = arg_date(args, "updatedSince")?;
        let created_since = arg_date(args, "createdSince")?;
        let state = args.get("state").and_then(Value::as_str);
        let archived = args.get("archived").and_then(Value::as_bool);
        let mode = if updated_since.is_some() { 'u' } else { 'n' };
        let mut items: Vec<(i64, u64)> = self
            .state
            .dossiers
            .values()
            .filter(|d| groupe.is_none_or(|g| d.groupe == g))
            .filter(|d| updated_since.is_none_or(|since| d.updated_at >= since))
            .filter(|d| created_since.is_none_or(|since| d.created_at >= since))
            .filter(|d| state.is_none_or(|s| d.state == s))
            .filter(|d| archived.is_none_or(|a| d.archived == a))
            .map(|d| {
                (
                    if mode == 'u' {
                        d.updated_at.timestamp()
                    } else {
                        0
                    },
                    d.number,
                )
            })
            .collect();
        items.sort_unstable();
        let after = args.get("after").and_then(Value::as_str);
        connection(
            "Dossier",
            items,
            mode,
            first,
            after,
            |n| json!({"__dossier": n}),
        )
    }

    fn deleted_dossiers(
        &self,
        args: &Map<String, Value>,
        pending: bool,
    ) -> Result<Value, FieldError> {
        Self::reject_backwards(args)?;
        let since = arg_date(args, "deletedSince")?;
        let mut items: Vec<(i64, u64)> = if pending {
            Vec::new()
        } else {
            self.state
                .deleted
                .iter()
                .filter(|d| since.is_none_or(|s| d.deleted_at >= s))
                .map(|d| (d.deleted_at.timestamp(), d.number))
                .collect()
        };
        items.sort_unstable();
        let first = args.get("first").and_then(Value::as_i64);
        let after = args.get("after").and_then(Value::as_str);
        let deleted = &self.state.deleted;
        connection("DeletedDossier", items, 'd', first, after, |n| {
            deleted.iter().find(|d| d.number == n).map_or(Value::Null, |d| {
                json!({
                    "__typename": "DeletedDossier",
                    "id": base64::engine::general_purpose::STANDARD.encode(format!("Dossier-{n}")),
                    "number": n,
                    "state": d.state,
                    "reason": d.reason,
                    "dateSupression": crate::data::ds_date(d.deleted_at),
                })
            })
        })
    }

    fn file_object(&self, file: &FileEntry) -> Value {
        let subject = Subject {
            seq: 0,
            file: Some(file.id),
            dossier: Some(file.dossier),
        };
        let wrong = self.world.faults().holds(Scope::Checksum, &subject);
        json!({
            "__typename": "File",
            "filename": file.filename,
            "contentType": file.content_type,
            "byteSizeBigInt": file.api_size().to_string(),
            "checksum": file.api_checksum(wrong),
            "createdAt": crate::data::ds_date(file.created_at),
            "virusScanResult": file.virus_scan,
            "url": match &file.external_url {
                Some(url) => url.clone(),
                None => self.world.signed_url(file).to_string(),
            },
        })
    }
}

/// `Dossier.champs(id:)` and its kin: the items of `parent`'s `field` whose id is `id`.
fn items_with_id(parent: &Value, field: &str, id: &str) -> Value {
    let items = parent
        .get(field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let matching = items
        .iter()
        .filter(|item| item.get("id").and_then(Value::as_str) == Some(id));
    Value::Array(matching.cloned().collect())
}

/// `File.byteSize`, DS's deprecated `Int`: an `invalid_null` error past 2^31 - 1, as DS
/// answers; `None` when the file has no size.
fn byte_size(parent: &Value) -> Option<Result<Value, FieldError>> {
    let size = parent
        .get("byteSizeBigInt")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<i64>().ok())?;
    Some(match i32::try_from(size) {
        Ok(n) => Ok(json!(n)),
        Err(_) => Err(FieldError::new(
            "invalid_null",
            format!("Integer out of range for File.byteSize: `{size}` (use byteSizeBigInt)"),
        )),
    })
}

impl Resolver for DsResolver<'_> {
    fn resolve<'v>(
        &'v self,
        parent_type: &str,
        field: &str,
        args: &Map<String, Value>,
        parent: &'v Value,
    ) -> Option<Result<Cow<'v, Value>, FieldError>> {
        let owned = |r: Result<Value, FieldError>| Some(r.map(Cow::Owned));
        match (parent_type, field) {
            ("Query", "demarche") => Some(match arg_u64(args, "number") {
                Some(n) if n == self.state.demarche => Ok(Cow::Borrowed(&self.state.demarche_json)),
                n => Err(FieldError::new(
                    "not_found",
                    format!("Demarche not found: `{}`", n.unwrap_or_default()),
                )),
            }),
            ("Query", "dossier") => Some(
                match arg_u64(args, "number").and_then(|n| self.state.dossiers.get(&n)) {
                    Some(dossier) => Ok(Cow::Owned(self.state.dossier_json(dossier))),
                    None => Err(FieldError::new(
                        "not_found",
                        format!(
                            "Dossier not found: `{}`",
                            arg_u64(args, "number").unwrap_or_default()
                        ),
                    )),
                },
            ),
            ("Query", "groupeInstructeur") => Some(
                match arg_u64(args, "number").and_then(|n| self.state.groupes.get(&n)) {
                    Some(groupe) => Ok(Cow::Borrowed(groupe)),
                    None => Err(FieldError::new(
                        "not_found",
                        format!(
                            "GroupeInstructeur not found: `{}`",
                            arg_u64(args, "number").unwrap_or_default()
                        ),
                    )),
                },
            ),
            ("Demarche", "dossiers") => owned(self.dossiers(args, None)),
            ("GroupeInstructeurWithDossiers", "dossiers") => {
                owned(self.dossiers(args, parent.get("number").and_then(Value::as_u64)))
            }
            ("Demarche" | "GroupeInstructeurWithDossiers", "deletedDossiers") => {
                owned(self.deleted_dossiers(args, false))
            }
            ("Demarche" | "GroupeInstructeurWithDossiers", "pendingDeletedDossiers") => {
                owned(self.deleted_dossiers(args, true))
            }
            ("Dossier", "champs" | "annotations" | "messages" | "avis") => {
                let id = args.get("id").and_then(Value::as_str)?;
                owned(Ok(items_with_id(parent, field, id)))
            }
            ("File", "byteSize") => owned(byte_size(parent)?),
            _ => None,
        }
    }

    fn expand<'v>(&'v self, value: &'v Value) -> Result<Option<Cow<'v, Value>>, FieldError> {
        let Some(object) = value.as_object() else {
            return Ok(None);
        };
        if let Some(id) = object.get("__file").and_then(Value::as_u64) {
            let file = self
                .state
                .files
                .get(usize::try_from(id).unwrap_or(usize::MAX))
                .ok_or_else(|| {
                    FieldError::new("internal_server_error", format!("no file `{id}`"))
                })?;
            return Ok(Some(Cow::Owned(self.file_object(file))));
        }
        if let Some(part) = object.get("__demarche").and_then(Value::as_str) {
            let state = self.state;
            return Ok(Some(Cow::Borrowed(match part {
                "revision" => &state.demarche_json["activeRevision"],
                _ => &state.demarche_descriptor,
            })));
        }
        if let Some(number) = object.get("__dossier").and_then(Value::as_u64) {
            let seq = self
                .world
                .stats
                .dossier_nodes
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            let fired = self.world.fire(
                Scope::DossierNode,
                &Subject {
                    seq,
                    file: None,
                    dossier: Some(number),
                },
                |_| true,
            );
            if !fired.is_empty() {
                return Err(FieldError {
                    message: "Cannot return null for non-nullable field PersonnePhysique.nom"
                        .to_owned(),
                    code: "invalid_null",
                    subpath: vec![
                        PathSeg::Key("demandeur".to_owned()),
                        PathSeg::Key("nom".to_owned()),
                    ],
                });
            }
            return Ok(Some(match self.state.dossiers.get(&number) {
                Some(dossier) => Cow::Owned(self.state.dossier_json(dossier)),
                None => Cow::Owned(Value::Null),
            }));
        }
        Ok(None)
    }
}
