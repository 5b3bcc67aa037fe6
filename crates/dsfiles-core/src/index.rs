//! [`index`]: one [`IndexRecord`] per stored file, from the destination's own manifest shards
//! (`.dsfiles/dossiers/{n}.json`), without DS.
//!
//! **Rule:** nothing is skipped silently. A shard that cannot be read or parsed, or that is
//! missing for a requested dossier, is an [`IndexItem::Warning`] naming it, and the other
//! shards still come; files marked `removed_upstream` come with their status; shards of
//! deleted dossiers come with their `deleted_at`. `Err` is only for a destination that cannot
//! be listed or holds no dsfiles state at all. (Objects under the prefix not named `{n}.json`
//! are not shards, as for `verify`, and are not indexed.)
//!
//! Each record also carries its dossier's fields ([`DossierFields`]: dates, groupe, applicant,
//! …) read from the dossier's `dossier.json` when the shard names one: one small read per
//! dossier, in the same bounded step as its shard. A dossier.json that cannot be read or
//! parsed is a warning naming it, and its dossier's records come with those fields `null`.
//! Without a dossier.json (`--no-data`, or written before it existed) they are `null` too.
//!
//! Bounded: shard keys stream from the sink's listing and at most [`SHARDS_IN_FLIGHT`] shards
//! are read (and held) at a time; nothing is sorted. So the order is the listing's: key order
//! on object stores (S3, GCS, Azure, memory), which is lexicographic (`10.json` before
//! `9.json`), and directory order on local disk; files come in their shard's order. With
//! [`IndexOptions::dossiers`] the requested shards are read directly, in dossier number order.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{SinkExt as _, Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::extract::{Applicant, Source};
use crate::fetch::error_chain;
use crate::sink::{Error as SinkError, ListEntry, Sink};
use crate::state;
use crate::wire::{
    DOSSIERS_PREFIX, DossierData, FileStatus, Shard, ShardFile, WIRE_VERSION, dossier_of_shard_key,
    shard_key,
};

/// Shards read concurrently (object stores answer each read in a round trip).
pub const SHARDS_IN_FLIGHT: usize = 8;
/// Shard keys listed ahead of the shards being read.
const LISTED_AHEAD: usize = 64;

/// Every [`FileStatus`], in the order the documentation lists them.
pub const STATUSES: [FileStatus; 5] = [
    FileStatus::Ok,
    FileStatus::ChecksumMismatch,
    FileStatus::Pending,
    FileStatus::Unverified,
    FileStatus::RemovedUpstream,
];

/// What to index; the default is everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexOptions {
    /// Only the shards of this démarche.
    pub demarche: Option<u64>,
    /// Only these dossiers (their shards are read directly, without listing); empty: all.
    pub dossiers: Vec<u64>,
    /// Only files with this status.
    pub status: Option<FileStatus>,
}

/// One stored file, as the destination's manifest records it (the JSON Lines format of
/// `dsfiles index`, version [`WIRE_VERSION`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRecord {
    pub version: u32,
    pub demarche: u64,
    pub dossier: u64,
    /// The dossier's DS state (snake_case) when its shard was written.
    pub state: String,
    /// DS's `dateDerniereModification` of the dossier when its shard was written.
    pub updated_at: Option<String>,
    /// When DS reported the dossier deleted (its files are still stored unless pruned).
    pub deleted_at: Option<String>,
    /// The file slot's identity across runs ([`crate::extract::FileRecord::file_id`]).
    pub file_id: String,
    /// Where the file is stored, relative to the destination.
    pub key: String,
    pub source: Source,
    pub label: String,
    pub filename: String,
    pub content_type: String,
    /// Size of the stored bytes.
    pub size: u64,
    /// DS's base64 MD5 (`""` for files DS gives none for).
    pub checksum: String,
    /// Hex SHA-256 of the stored bytes.
    pub sha256: String,
    pub status: FileStatus,
    pub stored_at: DateTime<Utc>,
    /// The dossier's fields from its dossier.json (all `null` without one).
    #[serde(flatten)]
    pub fields: DossierFields,
}

/// A dossier's fields as `dsfiles index` prints them (flat, for CSV), from its dossier.json.
/// The names are the layout placeholders' (issue 10 §1); dates are DS's RFC 3339 strings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DossierFields {
    #[serde(default)]
    pub demarche_title: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    /// The groupe instructeur's label.
    #[serde(default)]
    pub groupe: Option<String>,
    #[serde(default)]
    pub deposited_at: Option<String>,
    #[serde(default)]
    pub instruction_started_at: Option<String>,
    #[serde(default)]
    pub processed_at: Option<String>,
    /// `person` or `company`.
    #[serde(default)]
    pub applicant: Option<String>,
    /// The company's raison sociale (else its SIRET), or `Nom Prénom` for a person.
    #[serde(default)]
    pub demandeur: Option<String>,
    #[serde(default)]
    pub civilite: Option<String>,
    #[serde(default)]
    pub nom: Option<String>,
    #[serde(default)]
    pub prenom: Option<String>,
    #[serde(default)]
    pub siret: Option<String>,
    #[serde(default)]
    pub siren: Option<String>,
    #[serde(default)]
    pub raison_sociale: Option<String>,
    #[serde(default)]
    pub tva: Option<String>,
    #[serde(default)]
    pub adresse: Option<String>,
}

impl DossierFields {
    /// The fields of the dossier `data` describes.
    pub fn of(data: &DossierData) -> DossierFields {
        let context = &data.context;
        let dossier = &context.dossier;
        let mut fields = DossierFields {
            demarche_title: Some(context.demarche.title.clone()).filter(|t| !t.is_empty()),
            service: context.demarche.service.clone(),
            groupe: dossier.groupe_instructeur.as_ref().map(|g| g.label.clone()),
            deposited_at: dossier.deposited_at.clone(),
            instruction_started_at: dossier.instruction_started_at.clone(),
            processed_at: dossier.processed_at.clone(),
            ..DossierFields::default()
        };
        if let Some(applicant) = &context.applicant {
            fields.applicant_fields(applicant);
        }
        fields
    }

    fn applicant_fields(&mut self, applicant: &Applicant) {
        self.demandeur = Some(applicant.display_name()).filter(|d| !d.is_empty());
        match applicant.clone() {
            Applicant::Person {
                civilite,
                nom,
                prenom,
            } => {
                self.applicant = Some("person".to_owned());
                (self.civilite, self.nom, self.prenom) = (civilite, Some(nom), Some(prenom));
            }
            Applicant::Company {
                siret,
                siren,
                raison_sociale,
                tva,
                adresse,
            } => {
                self.applicant = Some("company".to_owned());
                (self.siret, self.siren, self.raison_sociale) =
                    (Some(siret), siren, raison_sociale);
                (self.tva, self.adresse) = (tva, adresse);
            }
        }
    }
}

impl IndexRecord {
    /// The record of `file`, stored for the dossier of `shard` (without dossier fields).
    pub fn new(shard: &Shard, file: ShardFile) -> IndexRecord {
        IndexRecord {
            version: WIRE_VERSION,
            demarche: shard.demarche,
            dossier: shard.dossier,
            state: shard.state.clone(),
            updated_at: shard.updated_at.clone(),
            deleted_at: shard.deleted_at.clone(),
            file_id: file.file_id,
            key: file.key,
            source: file.source,
            label: file.label,
            filename: file.filename,
            content_type: file.content_type,
            size: file.size,
            checksum: file.checksum,
            sha256: file.sha256,
            status: file.status,
            stored_at: file.stored_at,
            fields: DossierFields::default(),
        }
    }
}

/// One item of [`index`]'s stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexItem {
    /// A dossier's shard was read (its matching files follow).
    Dossier {
        number: u64,
        files: usize,
    },
    Record(Box<IndexRecord>),
    /// A shard could not be read, or a requested dossier has none: the index is incomplete.
    Warning(String),
}

/// Streams one [`IndexRecord`] per file stored in `sink`, shard by shard (see the module doc
/// for the order and the bounds). The stream ends after an `Err`, or quietly when `cancel`
/// fires.
pub fn index(
    sink: Arc<dyn Sink>,
    opts: IndexOptions,
    cancel: CancellationToken,
) -> impl Stream<Item = Result<IndexItem, Error>> + Send + 'static {
    let opts = Arc::new(opts);
    let keys = shard_keys(Arc::clone(&sink), &opts);
    let state_sink = Arc::clone(&sink);
    let checked =
        futures::stream::once(async move { state::require_state(state_sink.as_ref()).await })
            .filter_map(|r| std::future::ready(r.err().map(Err)));
    checked
        .chain(keys)
        .map(move |key| {
            let (sink, opts) = (Arc::clone(&sink), Arc::clone(&opts));
            async move {
                match key {
                    Ok(key) => shard_items(sink.as_ref(), &key, &opts).await,
                    Err(e) => vec![Err(e)],
                }
            }
        })
        .buffered(SHARDS_IN_FLIGHT)
        .flat_map(futures::stream::iter)
        .scan(false, |failed, item| {
            // Nothing after an `Err`: the listing (or the state check) failed.
            let done = std::mem::replace(failed, *failed || item.is_err());
            std::future::ready((!done).then_some(item))
        })
        .take_until(cancel.cancelled_owned())
}

/// The shard keys to read: the requested dossiers' (sorted, once each), else every shard the
/// listing shows.
fn shard_keys(
    sink: Arc<dyn Sink>,
    opts: &IndexOptions,
) -> BoxStream<'static, Result<String, Error>> {
    if !opts.dossiers.is_empty() {
        let numbers: BTreeSet<u64> = opts.dossiers.iter().copied().collect();
        return futures::stream::iter(numbers.into_iter().map(|n| Ok(shard_key(n)))).boxed();
    }
    owned_listing(sink)
        .filter_map(|entry| {
            std::future::ready(match entry {
                Ok(entry) => dossier_of_shard_key(&entry.key).map(|_| Ok(entry.key)),
                Err(e) => Some(Err(Error::from(e))),
            })
        })
        .boxed()
}

/// Entries listed by `sink.list(DOSSIERS_PREFIX)`, as a stream that owns `sink` (the trait's
/// stream borrows it). The listing runs inside a future polled with the receiving end, not in
/// a task, and waits whenever [`LISTED_AHEAD`] entries are not yet consumed.
fn owned_listing(sink: Arc<dyn Sink>) -> BoxStream<'static, Result<ListEntry, SinkError>> {
    let (mut tx, rx) = futures::channel::mpsc::channel(LISTED_AHEAD);
    let producer = async move {
        let mut listing = sink.list(DOSSIERS_PREFIX);
        while let Some(entry) = listing.next().await {
            if tx.send(entry).await.is_err() {
                break;
            }
        }
    };
    let producer = futures::stream::once(producer).filter_map(|()| std::future::ready(None));
    futures::stream::select(producer, rx).boxed()
}

/// The items of the shard at `key`: its dossier and matching records, or a warning.
async fn shard_items(
    sink: &dyn Sink,
    key: &str,
    opts: &IndexOptions,
) -> Vec<Result<IndexItem, Error>> {
    let shard: Shard = match state::read(sink, key).await {
        Ok(Some(shard)) => shard,
        Ok(None) => return vec![Ok(IndexItem::Warning(absent(key, opts)))],
        Err(Error::Manifest { reason, .. }) => {
            return vec![Ok(IndexItem::Warning(format!(
                "unreadable manifest shard `{key}`: {reason}"
            )))];
        }
        Err(e) => {
            return vec![Ok(IndexItem::Warning(format!(
                "cannot read manifest shard `{key}`: {}",
                error_chain(&e)
            )))];
        }
    };
    if opts.demarche.is_some_and(|d| d != shard.demarche) {
        return Vec::new();
    }
    let files = shard_files(&shard, opts);
    let mut items = Vec::with_capacity(files.len() + 2);
    items.push(Ok(IndexItem::Dossier {
        number: shard.dossier,
        files: files.len(),
    }));
    let fields = match (&shard.data, files.is_empty()) {
        (Some(data), false) => dossier_fields(sink, shard.dossier, &data.key).await,
        _ => Ok(DossierFields::default()),
    };
    let fields = fields.unwrap_or_else(|warning| {
        items.push(Ok(IndexItem::Warning(warning)));
        DossierFields::default()
    });
    items.extend(files.into_iter().map(|f| {
        let record = IndexRecord {
            fields: fields.clone(),
            ..IndexRecord::new(&shard, f)
        };
        Ok(IndexItem::Record(Box::new(record)))
    }));
    items
}

/// The fields of dossier `number` from its dossier.json at `key`; the warning when it cannot
/// be read.
async fn dossier_fields(sink: &dyn Sink, number: u64, key: &str) -> Result<DossierFields, String> {
    let cannot = |reason: String| {
        format!(
            "dossier `{number}`: cannot read its dossier.json `{key}` ({reason}); its files \
             are indexed without dossier fields"
        )
    };
    let bytes = match sink.get_small(key).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(cannot("it is missing".to_owned())),
        Err(e) => return Err(cannot(error_chain(&e))),
    };
    let data = DossierData::parse(&bytes).map_err(|e| cannot(e.to_string()))?;
    Ok(DossierFields::of(&data))
}

/// The files of `shard` that `opts` selects.
fn shard_files(shard: &Shard, opts: &IndexOptions) -> Vec<ShardFile> {
    shard
        .files
        .iter()
        .filter(|f| opts.status.is_none_or(|s| s == f.status))
        .cloned()
        .collect()
}

/// The warning for a shard that is not there (requested, or removed while listing).
fn absent(key: &str, opts: &IndexOptions) -> String {
    match dossier_of_shard_key(key) {
        Some(n) if opts.dossiers.contains(&n) => {
            format!("dossier `{n}` has no manifest shard (`{key}`): nothing of it is stored")
        }
        _ => format!("manifest shard `{key}` disappeared while indexing"),
    }
}

#[cfg(test)]
mod tests;
