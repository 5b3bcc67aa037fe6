use serde_json::json;

use super::*;

fn error(path: &[&str], code: &str) -> GraphQlError {
    GraphQlError {
        code: Some(code.to_owned()),
        message: format!("{code} at {path:?}"),
        path: path.iter().map(|p| json!(p)).collect(),
    }
}

/// What each number settles as (`"none"` for `not_found`, else the error's kind), and the
/// numbers left to ask again.
#[track_caller]
fn check(numbers: &[u64], errors: &[GraphQlError], settled: &[(u64, &str)], rest: &[u64]) {
    let (done, left) = from_errors(numbers, errors);
    let shown: Vec<(u64, String)> = done
        .iter()
        .map(|(n, r)| {
            let what = match r {
                Ok(Some(_)) => "found".to_owned(),
                Ok(None) => "none".to_owned(),
                Err(e) => format!("{:?}", e.kind()),
            };
            (*n, what)
        })
        .collect();
    let expected: Vec<(u64, String)> = settled.iter().map(|(n, w)| (*n, (*w).to_owned())).collect();
    assert_eq!(shown, expected, "{errors:?}");
    assert_eq!(left, rest, "{errors:?}");
}

#[test]
fn errors_naming_an_alias_settle_that_number_only() {
    check(
        &[1, 2, 3],
        &[error(&["d2"], "not_found")],
        &[(2, "none")],
        &[1, 3],
    );
    check(
        &[1, 2, 3],
        &[error(&["d1"], "not_found"), error(&["d3"], "unauthorized")],
        &[(1, "none"), (3, "Access")],
        &[2],
    );
    check(
        &[1, 2],
        &[error(&["d2", "champs", "0", "files"], "invalid_null")],
        &[(2, "Api")],
        &[1],
    );
    // `d12` is not `d1`; errors without a path or naming no asked alias settle nothing.
    check(&[1, 2], &[error(&["d12"], "not_found")], &[], &[1, 2]);
    check(
        &[1, 2],
        &[error(&[], "internal_server_error")],
        &[],
        &[1, 2],
    );
}

#[test]
fn an_answer_with_data_settles_every_number() {
    let data = json!({"d1": {"number": 1}, "d2": null});
    let settled = from_data(&[1, 2], data, &[]);
    assert!(
        matches!(settled.first(), Some((1, Ok(Some(d)))) if d["number"] == 1),
        "{settled:?}"
    );
    assert!(
        matches!(settled.get(1), Some((2, Err(Error::UnexpectedResponse { reason, .. }))) if reason.contains("`data.d2`")),
        "{settled:?}"
    );
}
