//! [`list`]: the file records of a démarche, streamed as pages arrive.

use futures::{Stream, StreamExt as _};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::extract::{self, FileRecord};
use crate::options::ListOptions;
use crate::{Error, ds};

/// One item of [`list`]'s stream.
// Records are by far the most frequent item: boxing them would only add an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListItem {
    /// A dossier arrived (its records follow).
    Dossier {
        number: u64,
        /// The DS cursor of the page this dossier came on ([`ds::DossierBatch::resume`]):
        /// listing again with it as [`ListOptions::filter`]'s `after` starts at that page.
        resume: Option<String>,
    },
    Record(FileRecord),
    /// DS returned errors alongside data, or a dossier could not be read: the listing is
    /// incomplete.
    Warning(String),
}

/// Streams the file records of `opts.demarche` as pages arrive (one page of dossiers in memory
/// at a time), asking DS for none of the dossiers' values besides their files. The stream ends after a run-level error, or quietly when `cancel` fires.
pub fn list(
    client: ds::Client,
    opts: ListOptions,
    cancel: CancellationToken,
) -> impl Stream<Item = Result<ListItem, Error>> + Send + 'static {
    let ListOptions {
        demarche,
        mut filter,
        include,
    } = opts;
    filter.include_generated |= include.generated;
    filter.include_entreprise |= include.entreprise;
    // File records only: none of the dossier's values (`sync/fields.rs`).
    filter.fields = ds::DossierFields::NONE;
    client
        .dossiers(demarche, filter)
        .flat_map(move |batch| futures::stream::iter(batch_items(demarche, include, batch)))
        .take_until(cancel.cancelled_owned())
}

/// The items of one page (or its error).
fn batch_items(
    demarche: u64,
    include: extract::Include,
    batch: Result<ds::DossierBatch, ds::Error>,
) -> Vec<Result<ListItem, Error>> {
    match batch {
        Ok(batch) => {
            let mut items: Vec<Result<ListItem, Error>> = batch
                .errors
                .iter()
                .map(|e| {
                    Ok(ListItem::Warning(format!(
                        "DS returned an error with the dossiers: {e}"
                    )))
                })
                .collect();
            for dossier in &batch.dossiers {
                items.extend(
                    dossier_items(demarche, dossier, include, batch.resume.as_deref())
                        .into_iter()
                        .map(Ok),
                );
            }
            items
        }
        Err(e) => vec![Err(Error::from(e))],
    }
}

/// The items of one dossier: its number then its records, or a warning naming it.
pub(crate) fn dossier_items(
    demarche: u64,
    dossier: &Value,
    include: extract::Include,
    resume: Option<&str>,
) -> Vec<ListItem> {
    match extract::extract(demarche, dossier, include) {
        Ok(records) => {
            let number = dossier
                .get("number")
                .and_then(Value::as_u64)
                .or_else(|| records.first().map(|r| r.dossier))
                .unwrap_or_default();
            let mut items = Vec::with_capacity(records.len() + 1);
            items.push(ListItem::Dossier {
                number,
                resume: resume.map(str::to_owned),
            });
            items.extend(records.into_iter().map(ListItem::Record));
            items
        }
        Err(e) => vec![ListItem::Warning(format!(
            "a dossier could not be read: {e}"
        ))],
    }
}
