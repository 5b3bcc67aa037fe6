//! Generic GraphQL execution over JSON object graphs, checking every value against the schema.
//!
//! There is no hand-written mirror of DS's schema: queries are validated by `apollo-compiler`
//! against the vendored schema, then executed by walking the selection set over JSON objects.
//! The few fields that take arguments are answered by a [`Resolver`]. Any value that does not
//! fit its schema type is a bug of the simulator, reported as [`Exec::Bug`], never sent as data.

use std::borrow::Cow;
use std::fmt::Write as _;

use apollo_compiler::ast::{self, Type};
use apollo_compiler::executable::{Field, Operation, Selection, SelectionSet};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Node, Schema};
use serde_json::{Map, Value, json};

static NULL: Value = Value::Null;

/// A segment of a response path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathSeg {
    Key(String),
    Index(usize),
}

fn path_json(path: &[PathSeg]) -> Value {
    Value::Array(
        path.iter()
            .map(|seg| match seg {
                PathSeg::Key(k) => json!(k),
                PathSeg::Index(i) => json!(i),
            })
            .collect(),
    )
}

fn path_text(path: &[PathSeg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSeg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// A field error, as DS reports them in `errors[]` (`extensions.code`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub(crate) message: String,
    pub(crate) code: &'static str,
    /// Extra path segments below the field (e.g. the non-null field that was null).
    pub(crate) subpath: Vec<PathSeg>,
}

impl FieldError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> FieldError {
        FieldError {
            message: message.into(),
            code,
            subpath: Vec::new(),
        }
    }
}

/// Why completing a value stopped.
#[derive(Debug)]
pub(crate) enum Exec {
    /// A field error was recorded; the nearest nullable position becomes `null`.
    Null,
    /// The simulator produced a value that does not fit the schema.
    Bug(String),
}

/// Answers the fields that need more than reading a JSON property.
pub(crate) trait Resolver {
    /// `None`: read `parent[field]`.
    fn resolve<'v>(
        &'v self,
        parent_type: &str,
        field: &str,
        args: &Map<String, Value>,
        parent: &'v Value,
    ) -> Option<Result<Cow<'v, Value>, FieldError>>;

    /// Expands a reference object (e.g. `{"__file": 3}`); `Ok(None)` when `value` is not one.
    fn expand<'v>(&'v self, value: &'v Value) -> Result<Option<Cow<'v, Value>>, FieldError>;
}

/// Executes one operation of a validated document.
pub(crate) struct Executor<'a, R> {
    pub(crate) schema: &'a Valid<Schema>,
    pub(crate) document: &'a Valid<ExecutableDocument>,
    pub(crate) variables: &'a Map<String, Value>,
    pub(crate) resolver: &'a R,
    pub(crate) errors: Vec<Value>,
}

/// The outcome of an execution: `data` and `errors`, or a simulator bug.
pub(crate) struct Response {
    pub(crate) data: Value,
    pub(crate) errors: Vec<Value>,
}

impl<'a, R: Resolver> Executor<'a, R> {
    pub(crate) fn execute(mut self, operation: &'a Operation) -> Result<Response, String> {
        let root_type = operation.object_type().as_str().to_owned();
        let root = Value::Object(Map::new());
        let mut path = Vec::new();
        let sets = [&operation.selection_set];
        let data = match self.selection_sets(&root_type, &sets, &root, &mut path) {
            Ok(map) => Value::Object(map),
            Err(Exec::Null) => Value::Null,
            Err(Exec::Bug(message)) => return Err(message),
        };
        Ok(Response {
            data,
            errors: self.errors,
        })
    }

    fn record(&mut self, field: &Node<Field>, path: &[PathSeg], error: FieldError) {
        let mut full = path.to_vec();
        full.extend(error.subpath);
        let mut entry = json!({
            "message": error.message,
            "path": path_json(&full),
            "extensions": {"code": error.code},
        });
        if let Some(lc) = field
            .location()
            .and_then(|span| span.line_column(&self.document.sources))
        {
            entry["locations"] = json!([{"line": lc.line, "column": lc.column}]);
        }
        self.errors.push(entry);
    }

    fn bool_value(&self, value: &ast::Value) -> Result<bool, Exec> {
        match value {
            ast::Value::Boolean(b) => Ok(*b),
            ast::Value::Variable(name) => match self.variables.get(name.as_str()) {
                Some(Value::Bool(b)) => Ok(*b),
                other => Err(Exec::Bug(format!(
                    "variable `${name}` used as a Boolean is `{other:?}`"
                ))),
            },
            other => Err(Exec::Bug(format!("`{other}` used as a Boolean"))),
        }
    }

    fn included(&self, directives: &ast::DirectiveList) -> Result<bool, Exec> {
        if let Some(skip) = directives.get("skip")
            && let Some(cond) = skip.specified_argument_by_name("if")
            && self.bool_value(cond)?
        {
            return Ok(false);
        }
        if let Some(include) = directives.get("include")
            && let Some(cond) = include.specified_argument_by_name("if")
            && !self.bool_value(cond)?
        {
            return Ok(false);
        }
        Ok(true)
    }

    fn applies(&self, object_type: &str, condition: &str) -> bool {
        object_type == condition || self.schema.is_subtype(condition, object_type)
    }

    /// CollectFields: merges fields by response key, following fragments that apply.
    fn collect(
        &self,
        object_type: &str,
        set: &'a SelectionSet,
        out: &mut Vec<(&'a str, Vec<&'a Node<Field>>)>,
        visited: &mut Vec<&'a str>,
    ) -> Result<(), Exec> {
        for selection in &set.selections {
            if !self.included(selection.directives())? {
                continue;
            }
            match selection {
                Selection::Field(field) => {
                    let key = field.response_key().as_str();
                    match out.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, fields)) => fields.push(field),
                        None => out.push((key, vec![field])),
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.fragment_name.as_str();
                    if visited.contains(&name) {
                        continue;
                    }
                    visited.push(name);
                    let Some(fragment) = self.document.fragments.get(name) else {
                        return Err(Exec::Bug(format!(
                            "validated document lacks fragment `{name}`"
                        )));
                    };
                    if self.applies(object_type, fragment.type_condition()) {
                        self.collect(object_type, &fragment.selection_set, out, visited)?;
                    }
                }
                Selection::InlineFragment(inline) => {
                    if let Some(condition) = &inline.type_condition
                        && !self.applies(object_type, condition)
                    {
                        continue;
                    }
                    self.collect(object_type, &inline.selection_set, out, visited)?;
                }
            }
        }
        Ok(())
    }

    fn arg_value(&self, value: &ast::Value) -> Option<Value> {
        Some(match value {
            ast::Value::Null => Value::Null,
            ast::Value::Enum(name) => json!(name.as_str()),
            ast::Value::Variable(name) => return self.variables.get(name.as_str()).cloned(),
            ast::Value::String(s) => json!(s),
            ast::Value::Float(f) => f.try_to_f64().map(|f| json!(f)).unwrap_or(Value::Null),
            ast::Value::Int(i) => match i.try_to_i32() {
                Ok(n) => json!(n),
                Err(_) => i.try_to_f64().map(|f| json!(f)).unwrap_or(Value::Null),
            },
            ast::Value::Boolean(b) => json!(b),
            ast::Value::List(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.arg_value(v).unwrap_or(Value::Null))
                    .collect(),
            ),
            ast::Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .filter_map(|(k, v)| self.arg_value(v).map(|v| (k.to_string(), v)))
                    .collect(),
            ),
        })
    }

    /// Argument values: given ones (variables substituted), else the schema's defaults.
    fn arguments(&self, field: &Field) -> Map<String, Value> {
        let mut args = Map::new();
        for definition in &field.definition.arguments {
            let given = field
                .arguments
                .iter()
                .find(|a| a.name == definition.name)
                .and_then(|a| self.arg_value(&a.value));
            let value = given.or_else(|| {
                definition
                    .default_value
                    .as_ref()
                    .and_then(|d| self.arg_value(d))
            });
            if let Some(value) = value {
                args.insert(definition.name.to_string(), value);
            }
        }
        args
    }

    fn selection_sets(
        &mut self,
        object_type: &str,
        sets: &[&'a SelectionSet],
        object: &Value,
        path: &mut Vec<PathSeg>,
    ) -> Result<Map<String, Value>, Exec> {
        let mut grouped = Vec::new();
        let mut visited = Vec::new();
        for set in sets {
            self.collect(object_type, set, &mut grouped, &mut visited)?;
        }
        let mut out = Map::new();
        for (key, fields) in grouped {
            let field = fields[0];
            let name = field.name.as_str();
            if name == "__typename" {
                out.insert(key.to_owned(), json!(object_type));
                continue;
            }
            path.push(PathSeg::Key(key.to_owned()));
            let result = if name.starts_with("__") {
                Err(FieldError::new(
                    "unsupported",
                    "Introspection is not supported by the simulator",
                ))
            } else {
                let args = self.arguments(field);
                match self.resolver.resolve(object_type, name, &args, object) {
                    Some(result) => result,
                    None => Ok(Cow::Borrowed(object.get(name).unwrap_or(&NULL))),
                }
            };
            let completed = match result {
                Ok(value) => self.complete(&field.definition.ty, &value, &fields, path),
                Err(error) => {
                    self.record(field, path, error);
                    Err(Exec::Null)
                }
            };
            let value = match completed {
                Ok(value) => value,
                Err(Exec::Null) if !field.definition.ty.is_non_null() => Value::Null,
                Err(e) => {
                    path.pop();
                    return Err(e);
                }
            };
            path.pop();
            out.insert(key.to_owned(), value);
        }
        Ok(out)
    }

    fn complete(
        &mut self,
        ty: &Type,
        value: &Value,
        fields: &[&'a Node<Field>],
        path: &mut Vec<PathSeg>,
    ) -> Result<Value, Exec> {
        let expanded = match self.resolver.expand(value) {
            Ok(Some(expanded)) => expanded,
            Ok(None) => Cow::Borrowed(value),
            Err(error) => {
                self.record(fields[0], path, error);
                return Err(Exec::Null);
            }
        };
        let value: &Value = &expanded;
        if value.is_null() {
            if ty.is_non_null() {
                return Err(Exec::Bug(format!(
                    "`{}` of type `{ty}` is null",
                    path_text(path)
                )));
            }
            return Ok(Value::Null);
        }
        match ty {
            Type::List(item) | Type::NonNullList(item) => {
                let Some(items) = value.as_array() else {
                    return Err(Exec::Bug(format!(
                        "`{}` of type `{ty}` is not a list: `{value}`",
                        path_text(path)
                    )));
                };
                let mut out = Vec::with_capacity(items.len());
                for (i, item_value) in items.iter().enumerate() {
                    path.push(PathSeg::Index(i));
                    let completed = self.complete(item, item_value, fields, path);
                    path.pop();
                    match completed {
                        Ok(v) => out.push(v),
                        Err(Exec::Null) if !item.is_non_null() => out.push(Value::Null),
                        Err(e) => return Err(e),
                    }
                }
                Ok(Value::Array(out))
            }
            Type::Named(name) | Type::NonNullNamed(name) => {
                self.complete_named(name.as_str(), value, fields, path)
            }
        }
    }

    fn complete_named(
        &mut self,
        name: &str,
        value: &Value,
        fields: &[&'a Node<Field>],
        path: &mut Vec<PathSeg>,
    ) -> Result<Value, Exec> {
        let bug = |what: &str| {
            Exec::Bug(format!(
                "`{}`: {what} for type `{name}`: `{value}`",
                path_text(path)
            ))
        };
        let runtime_type = match self.schema.types.get(name) {
            Some(ExtendedType::Scalar(_)) => {
                return if scalar_fits(name, value) {
                    Ok(value.clone())
                } else {
                    Err(bug("invalid scalar"))
                };
            }
            Some(ExtendedType::Enum(e)) => {
                return match value.as_str() {
                    Some(s) if e.values.contains_key(s) => Ok(value.clone()),
                    _ => Err(bug("not a value of the enum")),
                };
            }
            Some(ExtendedType::Object(_)) => {
                if !value.is_object() {
                    return Err(bug("not an object"));
                }
                match value.get("__typename").and_then(Value::as_str) {
                    None => name.to_owned(),
                    Some(t) if t == name => name.to_owned(),
                    Some(_) => return Err(bug("`__typename` differs")),
                }
            }
            Some(ExtendedType::Interface(_) | ExtendedType::Union(_)) => {
                let Some(t) = value.get("__typename").and_then(Value::as_str) else {
                    return Err(bug("abstract type without `__typename`"));
                };
                if self.schema.get_object(t).is_none() || !self.schema.is_subtype(name, t) {
                    return Err(bug("`__typename` is not a possible type"));
                }
                t.to_owned()
            }
            Some(ExtendedType::InputObject(_)) | None => return Err(bug("not an output type")),
        };
        let sets: Vec<&'a SelectionSet> = fields.iter().map(|f| &f.selection_set).collect();
        self.selection_sets(&runtime_type, &sets, value, path)
            .map(Value::Object)
    }
}

/// Whether a JSON value is a valid serialization of the scalar `name` (DS's custom ones included).
fn scalar_fits(name: &str, value: &Value) -> bool {
    match name {
        "Int" => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "Float" => value.is_number(),
        "String" | "ID" => value.is_string(),
        "Boolean" => value.is_boolean(),
        "BigInt" => value.as_str().is_some_and(|s| {
            let digits = s.strip_prefix('-').unwrap_or(s);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }),
        "ISO8601DateTime" => value
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        "ISO8601Date" => value
            .as_str()
            .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
        "URL" => value.as_str().is_some_and(|s| url::Url::parse(s).is_ok()),
        // Coordinates and any future scalar: any JSON value.
        _ => true,
    }
}

#[cfg(test)]
mod tests;
