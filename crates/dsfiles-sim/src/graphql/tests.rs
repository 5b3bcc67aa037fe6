use super::*;

const SCHEMA: &str = r#"
type Query { root: Thing! maybe: Thing things: [Thing] named(id: ID!): Thing }
interface Node { id: ID! }
type Thing implements Node { id: ID! n: Int! label: String tags: [String!]! other: Node kind: Kind }
type Other implements Node { id: ID! extra: Boolean! }
enum Kind { a b }
"#;

struct Data(Value);

impl Resolver for Data {
    fn resolve<'v>(
        &'v self,
        parent_type: &str,
        field: &str,
        args: &Map<String, Value>,
        _parent: &'v Value,
    ) -> Option<Result<Cow<'v, Value>, FieldError>> {
        match (parent_type, field) {
            ("Query", "root" | "things") => Some(Ok(Cow::Borrowed(&self.0[field]))),
            ("Query", "named") => Some(match args.get("id").and_then(Value::as_str) {
                Some("x") => Ok(Cow::Borrowed(&self.0["root"])),
                _ => Err(FieldError::new("not_found", "nope")),
            }),
            _ => None,
        }
    }
    fn expand<'v>(&'v self, value: &'v Value) -> Result<Option<Cow<'v, Value>>, FieldError> {
        match value.get("__ref") {
            Some(_) => Ok(Some(Cow::Borrowed(&self.0["root"]))),
            None => Ok(None),
        }
    }
}

fn check(data: Value, query: &str, variables: Value) -> Result<Value, String> {
    let schema = Schema::parse_and_validate(SCHEMA, "s.graphql").expect("test schema is valid");
    let document = ExecutableDocument::parse_and_validate(&schema, query, "q.graphql")
        .expect("test query is valid");
    let operation = document.operations.get(None).expect("one operation");
    let Value::Object(variables) = variables else {
        panic!("variables must be an object")
    };
    let resolver = Data(data);
    let executor = Executor {
        schema: &schema,
        document: &document,
        variables: &variables,
        resolver: &resolver,
        errors: Vec::new(),
    };
    let response = executor.execute(operation)?;
    Ok(json!({"data": response.data, "errors": response.errors}))
}

fn thing() -> Value {
    json!({"root": {"__typename": "Thing", "id": "t1", "n": 1, "label": null, "tags": ["x"], "kind": "a",
                    "other": {"__typename": "Other", "id": "o1", "extra": true}}})
}

#[test]
fn aliases_fragments_and_type_conditions() {
    let query = r#"query { a: root { id n ...F other { __typename ... on Other { extra } ... on Thing { n } } } }
                   fragment F on Node { ... on Thing { tags kind } }"#;
    let out = check(thing(), query, json!({})).unwrap();
    assert_eq!(
        out["data"],
        json!({"a": {"id": "t1", "n": 1, "tags": ["x"], "kind": "a", "other": {"__typename": "Other", "extra": true}}})
    );
}

#[test]
fn skip_and_include_follow_variables() {
    let query = "query($yes: Boolean!) { root { id n @include(if: $yes) label @skip(if: $yes) } }";
    let out = check(thing(), query, json!({"yes": true})).unwrap();
    assert_eq!(out["data"], json!({"root": {"id": "t1", "n": 1}}));
    let out = check(thing(), query, json!({"yes": false})).unwrap();
    assert_eq!(out["data"], json!({"root": {"id": "t1", "label": null}}));
}

#[test]
fn values_that_do_not_fit_the_schema_are_bugs() {
    for (bad, why) in [
        (
            json!({"root": {"id": "t1", "n": "1", "tags": []}}),
            "string for Int",
        ),
        (
            json!({"root": {"id": "t1", "tags": []}}),
            "missing non-null",
        ),
        (
            json!({"root": {"id": "t1", "n": 1, "tags": [null]}}),
            "null in [String!]",
        ),
        (
            json!({"root": {"id": "t1", "n": 1, "tags": [], "kind": "c"}}),
            "unknown enum value",
        ),
        (
            json!({"root": {"__typename": "Other", "id": "t1", "n": 1, "tags": []}}),
            "wrong typename",
        ),
        (
            json!({"root": {"id": "t1", "n": 1, "tags": [], "other": {"id": "o"}}}),
            "abstract without typename",
        ),
        (
            json!({"root": {"id": "t1", "n": 4_000_000_000u64, "tags": []}}),
            "Int overflow",
        ),
    ] {
        let result = check(bad, "{ root { id n tags kind other { id } } }", json!({}));
        assert!(
            result.is_err(),
            "{why} must be reported as a bug, got {result:?}"
        );
    }
}

#[test]
fn field_errors_null_the_nearest_nullable_parent() {
    let out = check(thing(), r#"{ maybe: named(id: "zz") { id } }"#, json!({})).unwrap();
    assert_eq!(out["data"], json!({"maybe": null}));
    assert_eq!(out["errors"][0]["extensions"]["code"], "not_found");
    assert_eq!(out["errors"][0]["path"], json!(["maybe"]));
    assert_eq!(out["errors"][0]["locations"][0]["line"], 1);
}

#[test]
fn references_are_expanded() {
    let data = json!({"root": {"id": "t1", "n": 1, "tags": []}, "things": [{"__ref": 1}, null]});
    let out = check(data, "{ things { id } }", json!({})).unwrap();
    assert_eq!(out["data"], json!({"things": [{"id": "t1"}, null]}));
}
