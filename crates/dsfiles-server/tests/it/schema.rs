//! A validator for the JSON Schema subset the OpenAPI document uses (`$ref`, `type`, `enum`,
//! `const`, `anyOf`, `not`, `properties`, `required`, `additionalProperties: false`, `items`,
//! `maxItems`, `minimum`, `maximum`, `minLength`, `maxLength`, `pattern`, `format`
//! `date-time` and `uuid`, `contentSchema` of an `application/json` string), written here
//! rather than taken from the `jsonschema` crate (a large dependency tree for two cores) with
//! `regex`, already in the lockfile.
//!
//! A keyword outside the subset is an error, not ignored: the document cannot grow a
//! constraint these tests silently skip.

use serde_json::Value;

/// Keywords that only describe.
const ANNOTATIONS: [&str; 2] = ["description", "contentMediaType"];

/// Validates against schemas of one OpenAPI document (which `$ref`s resolve in).
pub struct Validator<'a> {
    pub doc: &'a Value,
}

impl Validator<'_> {
    /// `$ref: "#/components/schemas/X"` resolved (once; the document has no ref chains).
    pub fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(pointer) => self
                .doc
                .pointer(pointer.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling `$ref` {pointer}")),
            None => schema,
        }
    }

    /// `Ok` when `value` is valid; else the first violation, at its JSON path.
    pub fn check(&self, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        let schema = self.resolve(schema);
        let keywords = schema
            .as_object()
            .ok_or_else(|| format!("{at}: schema is not an object: {schema}"))?;
        for (keyword, arg) in keywords {
            self.keyword(schema, keyword, arg, value, at)?;
        }
        Ok(())
    }

    fn keyword(
        &self,
        schema: &Value,
        keyword: &str,
        arg: &Value,
        value: &Value,
        at: &str,
    ) -> Result<(), String> {
        let fail = |what: String| Err(format!("{at}: {what} (value {value})"));
        match keyword {
            k if ANNOTATIONS.contains(&k) => Ok(()),
            "type" => {
                let types: Vec<&str> = match arg {
                    Value::Array(types) => types.iter().filter_map(Value::as_str).collect(),
                    other => other.as_str().into_iter().collect(),
                };
                if types.iter().any(|t| has_type(value, t)) {
                    Ok(())
                } else {
                    fail(format!("not of type {arg}"))
                }
            }
            "enum" => match arg.as_array() {
                Some(options) if options.contains(value) => Ok(()),
                _ => fail(format!("not one of {arg}")),
            },
            "const" if arg == value => Ok(()),
            "const" => fail(format!("not {arg}")),
            "anyOf" => {
                let branches = arg.as_array().map(Vec::as_slice).unwrap_or_default();
                if branches.iter().any(|b| self.check(b, value, at).is_ok()) {
                    Ok(())
                } else {
                    fail("matches no `anyOf` branch".into())
                }
            }
            // A JSON text inside a string (an SSE event's `data`): parsed, then checked.
            "contentSchema" => match value.as_str() {
                Some(text) if schema["contentMediaType"] == "application/json" => {
                    match serde_json::from_str::<Value>(text) {
                        Ok(parsed) => self.check(arg, &parsed, &format!("{at}(json)")),
                        Err(e) => fail(format!("not a JSON text: {e}")),
                    }
                }
                _ => Ok(()),
            },
            "not" if self.check(arg, value, at).is_ok() => fail(format!("matches `not` {arg}")),
            "not" => Ok(()),
            "properties" | "required" | "additionalProperties" => {
                self.object(schema, keyword, arg, value, at)
            }
            "items" => match value.as_array() {
                Some(items) => items
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, item)| self.check(arg, item, &format!("{at}[{i}]"))),
                None => Ok(()),
            },
            "maxItems" => match (value.as_array(), arg.as_u64()) {
                (Some(items), Some(max)) if items.len() as u64 > max => {
                    fail(format!("more than {max} items"))
                }
                _ => Ok(()),
            },
            "minimum" | "maximum" => number_bound(keyword, arg, value).map_or(Ok(()), fail),
            "minLength" | "maxLength" => length_bound(keyword, arg, value).map_or(Ok(()), fail),
            "pattern" => match value.as_str() {
                Some(text) if !pattern(arg).is_match(text) => fail(format!("does not match {arg}")),
                _ => Ok(()),
            },
            "format" => match value.as_str() {
                Some(text) if !format_ok(arg.as_str().unwrap_or_default(), text) => {
                    fail(format!("not a valid `{arg}`"))
                }
                _ => Ok(()),
            },
            other => Err(format!(
                "{at}: keyword `{other}` is outside the validated subset"
            )),
        }
    }

    fn object(
        &self,
        schema: &Value,
        keyword: &str,
        arg: &Value,
        value: &Value,
        at: &str,
    ) -> Result<(), String> {
        let Some(fields) = value.as_object() else {
            return Ok(());
        };
        let empty = serde_json::Map::new();
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        match keyword {
            "properties" => properties.iter().try_for_each(|(name, property)| {
                fields
                    .get(name)
                    .map_or(Ok(()), |v| self.check(property, v, &format!("{at}.{name}")))
            }),
            "required" => {
                let names = arg.as_array().map(Vec::as_slice).unwrap_or_default();
                match names
                    .iter()
                    .filter_map(Value::as_str)
                    .find(|n| !fields.contains_key(*n))
                {
                    Some(missing) => Err(format!("{at}: `{missing}` is required (value {value})")),
                    None => Ok(()),
                }
            }
            _ if arg == &Value::Bool(false) => {
                match fields.keys().find(|k| !properties.contains_key(*k)) {
                    Some(extra) => Err(format!("{at}: unknown field `{extra}`")),
                    None => Ok(()),
                }
            }
            _ => Err(format!(
                "{at}: `additionalProperties: {arg}` is outside the subset"
            )),
        }
    }
}

/// JSON types as JSON Schema names them; `integer` is a number without a fraction that
/// serde holds as an integer (`1.0` is not one here, as it is not for the service's serde).
fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        _ => false,
    }
}

fn number_bound(keyword: &str, arg: &Value, value: &Value) -> Option<String> {
    let (Some(bound), Some(n)) = (arg.as_f64(), value.as_f64()) else {
        return None;
    };
    // Integers as i128 where both are whole: f64 would blur 2^53 and above (`2^64` written
    // as a float and a `maximum` of `u64::MAX` are one f64).
    let out = match (whole(value), whole(arg)) {
        (Some(n), Some(bound)) if keyword == "minimum" => n < bound,
        (Some(n), Some(bound)) => n > bound,
        _ if keyword == "minimum" => n < bound,
        _ => n > bound,
    };
    out.then(|| format!("outside `{keyword}: {arg}`"))
}

/// A JSON number with no fraction, exactly (integers of any 64-bit type, and floats such as
/// `7.0` or `1.8446744073709552e19`).
fn whole(v: &Value) -> Option<i128> {
    v.as_i64()
        .map(i128::from)
        .or(v.as_u64().map(i128::from))
        .or_else(|| {
            let f = v.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 2f64.powi(100)).then_some(f as i128)
        })
}

fn length_bound(keyword: &str, arg: &Value, value: &Value) -> Option<String> {
    let (Some(bound), Some(text)) = (arg.as_u64(), value.as_str()) else {
        return None;
    };
    let len = text.chars().count() as u64;
    let out = if keyword == "minLength" {
        len < bound
    } else {
        len > bound
    };
    out.then(|| format!("outside `{keyword}: {bound}`"))
}

fn pattern(arg: &Value) -> regex::Regex {
    regex::Regex::new(arg.as_str().unwrap_or_default()).expect("the document's patterns compile")
}

/// `date-time` is RFC 3339's production (`T` or `t`, `Z`, `z` or an offset) with valid
/// ranges; `uuid` RFC 4122's hyphenated form.
fn format_ok(format: &str, text: &str) -> bool {
    match format {
        "date-time" => {
            let shape = regex::Regex::new(
                r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$",
            )
            .expect("regex");
            shape.is_match(text) && chrono::DateTime::parse_from_rfc3339(text).is_ok()
        }
        "uuid" => uuid::Uuid::try_parse(text).is_ok_and(|_| text.len() == 36),
        _ => false,
    }
}

#[test]
fn the_validator_refuses_what_it_should() {
    let doc = serde_json::json!({"components": {"schemas": {"N": {"type": "integer", "minimum": 1, "maximum": 2147483647}}}});
    let v = Validator { doc: &doc };
    let check = |schema: Value, value: Value, ok: bool| {
        assert_eq!(
            v.check(&schema, &value, "$").is_ok(),
            ok,
            "{schema} {value}"
        );
    };
    let n = serde_json::json!({"$ref": "#/components/schemas/N"});
    check(n.clone(), 1.into(), true);
    check(n.clone(), 2147483647_u64.into(), true);
    check(n.clone(), 0.into(), false);
    check(n.clone(), 2147483648_u64.into(), false);
    check(n.clone(), serde_json::json!(1.5), false);
    check(n.clone(), "1".into(), false);
    let date = serde_json::json!({"type": "string", "format": "date-time"});
    check(date.clone(), "2024-03-01T08:00:00Z".into(), true);
    check(date.clone(), "2024-03-01 08:00:00Z".into(), false);
    check(date, "2024-13-01T08:00:00Z".into(), false);
    let object = serde_json::json!({"type": "object", "required": ["a"], "additionalProperties": false, "properties": {"a": {"type": "array", "maxItems": 1, "items": {"enum": ["x"]}}}});
    check(object.clone(), serde_json::json!({"a": ["x"]}), true);
    check(object.clone(), serde_json::json!({}), false);
    check(object.clone(), serde_json::json!({"a": [], "b": 1}), false);
    check(object.clone(), serde_json::json!({"a": ["y"]}), false);
    check(object, serde_json::json!({"a": ["x", "x"]}), false);
    check(serde_json::json!({"unknownKeyword": 1}), 1.into(), false);
}
