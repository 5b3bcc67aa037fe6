//! Cursor pagination as streams: one page in flight, the page size adapted to DS's
//! timeouts, dossiers deduplicated by number.

use std::collections::{HashSet, VecDeque};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::Stream;
use serde_json::{Map, Value};

use crate::error::Target;
use crate::queries::Operation;
use crate::transport::Answer;
use crate::{Client, DossierFilter, Error, GraphQlError};

/// One page of dossiers.
#[derive(Clone, Debug, Default)]
pub struct DossierBatch {
    /// Each a `Dossier` object as the queries select it; never one already returned.
    pub dossiers: Vec<Value>,
    /// Errors DS sent alongside the data (e.g. `invalid_null`), plus one per dossier DS
    /// returned as `null` or without a number: a dossier is never dropped silently.
    pub errors: Vec<GraphQlError>,
    /// Dossiers named in [`DossierFilter::dossiers`] that DS answered `not_found` for (deleted
    /// since they were named, or out of the token's reach): each in the batch where its turn
    /// came, never among `dossiers`.
    pub missing: Vec<u64>,
    /// The DS cursor this page was fetched after: `None` for the first page of a listing
    /// (and for dossiers fetched by number). Passed as [`DossierFilter::after`], it lists
    /// again from this page's first dossier; the page may then be larger or smaller (the
    /// page size adapts), so callers resuming inside a page skip by what they already have.
    pub resume: Option<String>,
}

/// A dossier deleted from the démarche.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeletedDossier {
    pub number: u64,
    /// The dossier's state when deleted (`DossierState`, e.g. `accepte`).
    pub state: String,
    /// `DeletedDossierReason` (`user_request`, `expired`, ...).
    pub reason: String,
    /// `dateSupression`, as DS gives it (ISO 8601).
    pub deleted_at: String,
}

pub(crate) fn dossiers(
    client: Client,
    demarche: u64,
    filter: DossierFilter,
) -> impl Stream<Item = Result<DossierBatch, Error>> + Send + 'static {
    let mode = if !filter.dossiers.is_empty() && filter.after.is_some() {
        Mode::Refused(Some(Error::InvalidConfig {
            reason: "a start cursor (`after`) does not apply to dossiers fetched by number"
                .to_owned(),
        }))
    } else if !filter.dossiers.is_empty() {
        let mut unique = HashSet::new();
        let numbers = filter
            .dossiers
            .iter()
            .copied()
            .filter(|n| unique.insert(*n))
            .collect();
        Mode::Numbers(numbers)
    } else {
        let mut variables = Map::new();
        let (operation, target) = match filter.groupe_instructeur {
            Some(groupe) => {
                variables.insert("groupeInstructeur".into(), groupe.into());
                (
                    Operation::GroupeInstructeurDossiers,
                    Target::GroupeInstructeur(groupe),
                )
            }
            None => {
                variables.insert("demarche".into(), demarche.into());
                (Operation::DemarcheDossiers, Target::Demarche(demarche))
            }
        };
        let dates = [
            ("updatedSince", filter.updated_since),
            ("createdSince", filter.created_since),
        ];
        for (name, date) in dates {
            if let Some(date) = date {
                variables.insert(
                    name.into(),
                    date.to_rfc3339_opts(SecondsFormat::Secs, true).into(),
                );
            }
        }
        if let Some(state) = filter.state {
            variables.insert("state".into(), state.as_graphql().into());
        }
        if let Some(archived) = filter.archived {
            variables.insert("archived".into(), archived.into());
        }
        variables.extend(filter.include_variables());
        let mut pager = Pager::new(client.clone(), operation, target, "dossiers", variables);
        if let Some(after) = &filter.after {
            pager.start_after(after.clone());
        }
        Mode::Pages(pager)
    };
    let walk = DossierWalk {
        client,
        demarche,
        filter,
        mode,
        seen: HashSet::new(),
        finished: false,
    };
    futures::stream::unfold(walk, |mut walk| async move {
        let item = walk.next().await?;
        Some((item, walk))
    })
}

pub(crate) fn deleted_dossiers(
    client: Client,
    demarche: u64,
    since: Option<DateTime<Utc>>,
) -> impl Stream<Item = Result<Vec<DeletedDossier>, Error>> + Send + 'static {
    let mut variables = Map::new();
    variables.insert("demarche".into(), demarche.into());
    if let Some(since) = since {
        variables.insert(
            "deletedSince".into(),
            since.to_rfc3339_opts(SecondsFormat::Secs, true).into(),
        );
    }
    let pager = Pager::new(
        client,
        Operation::DeletedDossiers,
        Target::Demarche(demarche),
        "deletedDossiers",
        variables,
    );
    futures::stream::unfold(pager, move |mut pager| async move {
        let page = match pager.next_page().await? {
            Ok(page) => page,
            Err(err) => return Some((Err(err), pager)),
        };
        for error in &page.errors {
            tracing::warn!(demarche, error = %error, "DS sent an error with the deleted dossiers");
        }
        let deleted: Result<Vec<_>, Error> = page
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| deleted_dossier(node, i))
            .collect();
        if deleted.is_err() {
            pager.finished = true;
        }
        Some((deleted, pager))
    })
}

fn deleted_dossier(node: &Value, index: usize) -> Result<DeletedDossier, Error> {
    let text = |field: &str| node.get(field).and_then(Value::as_str).map(str::to_owned);
    let parsed = node
        .get("number")
        .and_then(Value::as_u64)
        .and_then(|number| {
            Some(DeletedDossier {
                number,
                state: text("state")?,
                reason: text("reason")?,
                deleted_at: text("dateSupression")?,
            })
        });
    parsed.ok_or_else(|| Error::UnexpectedResponse {
        operation: Operation::DeletedDossiers.name(),
        reason: format!("deleted dossier at `nodes[{index}]` lacks `number`, `state`, `reason` or `dateSupression`"),
    })
}

enum Mode {
    /// `filter.dossiers`: fetched one by one with `dossier(number)`.
    Numbers(VecDeque<u64>),
    Pages(Pager),
    /// The filter cannot be served: the error, once.
    Refused(Option<Error>),
}

struct DossierWalk {
    client: Client,
    demarche: u64,
    filter: DossierFilter,
    mode: Mode,
    /// Numbers already returned: with `updatedSince` DS orders by update time, so a dossier
    /// updated during the crawl comes again on a later page.
    seen: HashSet<u64>,
    finished: bool,
}

impl DossierWalk {
    async fn next(&mut self) -> Option<Result<DossierBatch, Error>> {
        if self.finished {
            return None;
        }
        let result = match &mut self.mode {
            Mode::Numbers(queue) => {
                let number = queue.pop_front()?;
                self.one(number).await
            }
            Mode::Pages(pager) => {
                let page = pager.next_page().await?;
                let target = pager.target;
                page.and_then(|page| self.batch(page, target))
            }
            Mode::Refused(error) => Err(error.take()?),
        };
        if result.is_err() {
            self.finished = true;
        }
        Some(result)
    }

    /// Dossier `number` of the named ones. One DS does not find (`not_found`: deleted since
    /// it was named — a webhook's `dossier_supprime`, a `--dossier` of an older list — or out
    /// of the token's reach) is this batch's `missing` and the walk goes on: the dossiers
    /// named after it must not wait for a dossier that will never come back. Any other error
    /// ends it.
    async fn one(&mut self, number: u64) -> Result<DossierBatch, Error> {
        let fetched = self.client.fetch_dossier(number, &self.filter).await;
        let (dossier, errors) = match fetched {
            Err(Error::NotFound { message, .. }) => {
                tracing::debug!(dossier = number, "DS does not find this dossier: {message}");
                return Ok(DossierBatch {
                    missing: vec![number],
                    ..DossierBatch::default()
                });
            }
            other => other?,
        };
        self.check_demarche(&dossier, Target::Dossier(number))?;
        self.seen.insert(number);
        Ok(DossierBatch {
            dossiers: vec![dossier],
            errors,
            missing: Vec::new(),
            resume: None,
        })
    }

    fn batch(&mut self, page: Page, target: Target) -> Result<DossierBatch, Error> {
        let Page {
            nodes,
            mut errors,
            path,
            resume,
        } = page;
        let mut dossiers = Vec::with_capacity(nodes.len());
        for (index, node) in nodes.into_iter().enumerate() {
            let mut at = path.clone();
            at.push(index.into());
            let Some(number) = node.get("number").and_then(Value::as_u64) else {
                let what = if node.is_null() {
                    "is null"
                } else {
                    "has no `number`"
                };
                errors.push(GraphQlError {
                    code: None,
                    message: format!("the dossier at `nodes[{index}]` of this page {what}: DS could not return it"),
                    path: at,
                });
                continue;
            };
            if let Target::GroupeInstructeur(_) = target {
                self.check_demarche(&node, target)?;
            }
            if !self.seen.insert(number) {
                tracing::debug!(dossier = number, "dossier already listed, skipped");
                continue;
            }
            dossiers.push(node);
        }
        Ok(DossierBatch {
            dossiers,
            errors,
            missing: Vec::new(),
            resume,
        })
    }

    /// A dossier fetched by number, or through a groupe, must belong to the démarche.
    fn check_demarche(&self, dossier: &Value, target: Target) -> Result<(), Error> {
        match dossier.pointer("/demarche/number").and_then(Value::as_u64) {
            Some(actual) if actual == self.demarche => Ok(()),
            Some(actual) => Err(Error::OtherDemarche {
                target,
                expected: self.demarche,
                actual,
            }),
            None => Err(Error::UnexpectedResponse {
                operation: match target {
                    Target::GroupeInstructeur(_) => Operation::GroupeInstructeurDossiers.name(),
                    _ => Operation::Dossier.name(),
                },
                reason: format!("{target}: the dossier has no `demarche.number`"),
            }),
        }
    }
}

/// One page of a connection.
struct Page {
    nodes: Vec<Value>,
    errors: Vec<GraphQlError>,
    /// JSON path of `nodes`, for errors about one node.
    path: Vec<Value>,
    /// The cursor this page was fetched after (`None` for the first page).
    resume: Option<String>,
}

/// Walks a connection with `first`/`after` until `hasNextPage` is false. A page that is too
/// large for DS (GraphQL `timeout`, complexity) is asked again with half the size, down to
/// 1; the size doubles back after each page that succeeds, up to the configured size.
struct Pager {
    client: Client,
    operation: Operation,
    target: Target,
    /// The connection field under the root (`dossiers`, `deletedDossiers`).
    connection: &'static str,
    /// Variables other than `first` and `after`.
    variables: Map<String, Value>,
    page_size: u32,
    max_page_size: u32,
    after: Option<String>,
    /// The caller's start cursor has not been accepted by DS yet: a GraphQL error on this
    /// first request means DS refused the cursor.
    unconfirmed_start: bool,
    finished: bool,
}

impl Pager {
    fn new(
        client: Client,
        operation: Operation,
        target: Target,
        connection: &'static str,
        variables: Map<String, Value>,
    ) -> Pager {
        let max_page_size = client.inner.config.page_size;
        Pager {
            client,
            operation,
            target,
            connection,
            variables,
            page_size: max_page_size,
            max_page_size,
            after: None,
            unconfirmed_start: false,
            finished: false,
        }
    }

    /// Starts after `cursor` instead of at the beginning of the connection.
    fn start_after(&mut self, cursor: String) {
        self.after = Some(cursor);
        self.unconfirmed_start = true;
    }

    /// The next page; `None` after the last page or after an error.
    async fn next_page(&mut self) -> Option<Result<Page, Error>> {
        if self.finished {
            return None;
        }
        let resume = self.after.clone();
        let page = match self.fetch().await {
            Ok(page) => {
                self.unconfirmed_start = false;
                Ok(Page { resume, ..page })
            }
            // Timeouts and complexity errors are about the page, not the cursor.
            Err(err) if self.unconfirmed_start && !err.is_page_too_large() => match err {
                Error::GraphQl { operation, errors } => {
                    tracing::debug!(operation, "DS refused the start cursor");
                    Err(Error::CursorRejected { operation, errors })
                }
                other => Err(other),
            },
            Err(err) => Err(err),
        };
        if page.is_err() {
            self.finished = true;
        }
        Some(page)
    }

    async fn fetch(&mut self) -> Result<Page, Error> {
        loop {
            let mut variables = self.variables.clone();
            variables.insert("first".into(), self.page_size.into());
            if let Some(after) = &self.after {
                variables.insert("after".into(), after.clone().into());
            }
            let shrinkable = self.page_size > 1;
            let answer = self
                .client
                .inner
                .execute(
                    self.operation,
                    &Value::Object(variables),
                    self.target,
                    shrinkable,
                )
                .await;
            match answer {
                Ok(answer) => return self.accept(answer),
                Err(err) if shrinkable && err.is_page_too_large() => {
                    let smaller = (self.page_size / 2).max(1);
                    tracing::warn!(
                        operation = self.operation.name(),
                        page_size = self.page_size,
                        smaller,
                        error = %err,
                        "page too large for DS, asking again with a smaller page"
                    );
                    self.client.inner.stats.page_size_reduction();
                    self.page_size = smaller;
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn accept(&mut self, answer: Answer) -> Result<Page, Error> {
        let Answer { mut data, errors } = answer;
        let root = self.operation.root().unwrap_or_default();
        let unexpected = |reason: String| Error::UnexpectedResponse {
            operation: self.operation.name(),
            reason,
        };
        let Some(connection) = data
            .get_mut(root)
            .and_then(|r| r.get_mut(self.connection))
            .filter(|c| c.is_object())
        else {
            if errors.is_empty() {
                return Err(unexpected(format!(
                    "`data.{root}.{}` is missing",
                    self.connection
                )));
            }
            return Err(Error::GraphQl {
                operation: self.operation.name(),
                errors,
            });
        };
        let has_next = connection
            .pointer("/pageInfo/hasNextPage")
            .and_then(Value::as_bool);
        let end_cursor = connection
            .pointer("/pageInfo/endCursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let nodes = match connection.get_mut("nodes").map(Value::take) {
            Some(Value::Array(nodes)) => nodes,
            _ if !errors.is_empty() => {
                return Err(Error::GraphQl {
                    operation: self.operation.name(),
                    errors,
                });
            }
            _ => {
                return Err(unexpected(format!(
                    "`data.{root}.{}.nodes` is not a list",
                    self.connection
                )));
            }
        };
        match (has_next, end_cursor) {
            (None, _) => return Err(unexpected("`pageInfo.hasNextPage` is missing".to_owned())),
            (Some(false), _) => self.finished = true,
            (Some(true), None) => {
                return Err(unexpected(
                    "`hasNextPage` is true but `endCursor` is null".to_owned(),
                ));
            }
            (Some(true), Some(cursor)) if self.after.as_ref() == Some(&cursor) => {
                return Err(unexpected(format!(
                    "the cursor did not advance past `{cursor}`"
                )));
            }
            (Some(true), Some(cursor)) => self.after = Some(cursor),
        }
        if self.page_size < self.max_page_size {
            self.page_size = self.page_size.saturating_mul(2).min(self.max_page_size);
        }
        let path = vec![root.into(), self.connection.into(), "nodes".into()];
        Ok(Page {
            nodes,
            errors,
            path,
            resume: None,
        })
    }
}
