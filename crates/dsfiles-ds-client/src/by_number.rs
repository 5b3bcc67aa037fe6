//! Many dossiers by number, many per request: `dossier(number:)` repeated under aliases
//! (`d{number}`), at most [`DOSSIERS_PER_REQUEST`] per request.
//!
//! Rules:
//! - `Query.dossier` is non-null, so one missing dossier nulls the whole of `data` (GraphQL
//!   null propagation), and graphql-ruby stops at the first such error. An error whose
//!   `path` names an alias therefore *settles* that number — `not_found` as `None`, any
//!   other error as that number's own [`Error`] (what [`Client::dossier`] would return) —
//!   and the request is sent again without it. Every round settles at least one number, so
//!   `n` numbers cost at most `n + 1` rounds; an answer with `data` settles all of them.
//! - An error that names no alias fails the call (token, network, retries exhausted).
//! - A batch that times out, is too complex or whose answer is too large is halved; alone,
//!   a dossier fails the call with that error.
//! - Numbers beyond DS's 32-bit `Int` cannot be dossiers: each settles as
//!   [`Error::InvalidConfig`] without a request.

use std::collections::{HashSet, VecDeque};

use serde_json::Value;

use crate::error::Target;
use crate::queries::{self, DOSSIERS_PER_REQUEST, Operation};
use crate::{Client, DossierFilter, Error, GraphQlError};

/// What DS said about one number: the dossier, `None` when DS reports it `not_found`, or
/// the error that concerns this dossier only.
pub(crate) type Settled = (u64, Result<Option<Value>, Error>);

pub(crate) async fn fetch(
    client: &Client,
    numbers: &[u64],
    filter: &DossierFilter,
) -> Result<Vec<Settled>, Error> {
    let mut unique = HashSet::new();
    let mut queue: VecDeque<u64> = numbers
        .iter()
        .copied()
        .filter(|n| unique.insert(*n))
        .collect();
    let mut settled = Vec::with_capacity(queue.len());
    let mut size = DOSSIERS_PER_REQUEST;
    while !queue.is_empty() {
        let batch: Vec<u64> = queue.drain(..size.min(queue.len())).collect();
        match rounds(client, &batch, filter).await {
            Ok(mut done) => {
                settled.append(&mut done);
                size = size.saturating_mul(2).min(DOSSIERS_PER_REQUEST);
            }
            Err(err) if err.is_page_too_large() && batch.len() > 1 => {
                size = batch.len() / 2;
                tracing::warn!(size, error = %err, "dossier batch too large for DS, halving it");
                client.inner.stats.page_size_reduction();
                for number in batch.into_iter().rev() {
                    queue.push_front(number);
                }
            }
            Err(err) => return Err(err),
        }
    }
    Ok(settled)
}

/// Asks for `batch` until every number is settled (see the module rules).
async fn rounds(
    client: &Client,
    batch: &[u64],
    filter: &DossierFilter,
) -> Result<Vec<Settled>, Error> {
    let (mut left, mut settled): (Vec<u64>, Vec<Settled>) = (Vec::new(), Vec::new());
    for &number in batch {
        match i32::try_from(number) {
            Ok(_) => left.push(number),
            Err(_) => settled.push((number, Err(beyond_int(number)))),
        }
    }
    let variables = serde_json::Value::Object(filter.include_variables());
    while let Some(&first) = left.first() {
        let document = queries::dossiers_by_number_query(&left);
        let answer = client
            .inner
            .execute_document(
                Operation::DossiersByNumber,
                &document,
                &variables,
                Target::Dossier(first),
                left.len() > 1,
            )
            .await;
        match answer {
            Ok(answer) => {
                settled.extend(from_data(&left, answer.data, &answer.errors));
                left.clear();
            }
            Err(err) if err.is_page_too_large() => return Err(err),
            Err(Error::GraphQl { operation, errors }) => {
                let (done, rest) = from_errors(&left, &errors);
                if done.is_empty() {
                    return Err(Error::GraphQl { operation, errors });
                }
                settled.extend(done);
                left = rest;
            }
            Err(err) => return Err(err),
        }
    }
    Ok(settled)
}

fn beyond_int(number: u64) -> Error {
    Error::InvalidConfig {
        reason: format!("dossier number `{number}` is beyond DS's 32-bit `Int`: no such dossier"),
    }
}

/// The number an error is about: the alias its path starts with, if one of `numbers`.
fn about(error: &GraphQlError, numbers: &[u64]) -> Option<u64> {
    let alias = error.path.first()?.as_str()?;
    numbers
        .iter()
        .copied()
        .find(|&n| queries::alias(n) == alias)
}

/// Settles every number of `numbers` from an answer with data; errors DS sent along are
/// logged, as [`Client::dossier`] does.
pub(crate) fn from_data(numbers: &[u64], mut data: Value, errors: &[GraphQlError]) -> Vec<Settled> {
    for error in errors {
        let dossier = about(error, numbers);
        tracing::warn!(dossier, error = %error, "DS sent an error with the dossier");
    }
    numbers
        .iter()
        .map(
            |&number| match data.get_mut(queries::alias(number)).map(Value::take) {
                Some(dossier @ Value::Object(_)) => (number, Ok(Some(dossier))),
                _ => (
                    number,
                    Err(Error::UnexpectedResponse {
                        operation: Operation::DossiersByNumber.name(),
                        reason: format!(
                            "`data.{}` of dossier `{number}` is not an object",
                            queries::alias(number)
                        ),
                    }),
                ),
            },
        )
        .collect()
}

/// From the errors of an answer without data: the numbers they settle, and the rest.
pub(crate) fn from_errors(numbers: &[u64], errors: &[GraphQlError]) -> (Vec<Settled>, Vec<u64>) {
    let (mut settled, mut rest) = (Vec::new(), Vec::new());
    for &number in numbers {
        let own: Vec<GraphQlError> = errors
            .iter()
            .filter(|e| about(e, numbers) == Some(number))
            .cloned()
            .collect();
        if own.is_empty() {
            rest.push(number);
        } else {
            settled.push((number, own_error(number, own)));
        }
    }
    (settled, rest)
}

/// What one dossier's errors mean, as [`Client::dossier`] would report them.
fn own_error(number: u64, errors: Vec<GraphQlError>) -> Result<Option<Value>, Error> {
    let target = Target::Dossier(number);
    let with_code = |code: &str| errors.iter().find(|e| e.code.as_deref() == Some(code));
    if with_code("not_found").is_some() {
        return Ok(None);
    }
    if let Some(e) = with_code("unauthorized") {
        return Err(Error::Unauthorized {
            target,
            message: e.message.clone(),
        });
    }
    Err(Error::GraphQl {
        operation: Operation::DossiersByNumber.name(),
        errors,
    })
}

#[cfg(test)]
mod tests;
