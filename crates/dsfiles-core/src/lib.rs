//! dsfiles-core owns the pipeline: [`list`] the files of a démarche, [`sync`] them into a
//! destination (plan against the manifest kept in the destination, streaming download through
//! MD5 and SHA-256, verified atomic publish, URL refresh, retries, report), and [`verify`] what
//! is stored.
//!
//! **Architecture invariant:** this crate does not print, read the environment or argv, or
//! depend on clap, axum or indicatif: front ends pass typed options, render [`Event`]s and map
//! the [`SyncReport`] to an exit code. Per-file failures are data in the report; `Err` is for
//! run-level failures only.
//!
//! - [`seda`] turns what a sync stored into SEDA 2.2 archival packages (no DS call).
//! - [`wire`] holds every persisted or streamed format (manifest shards, sync point, report,
//!   events), versioned.
//! - Planning (what to download) is a pure function of the dossier's records and its shard.
//! - `keystore`: the keys of a run whose layout lets dossiers meet, held in SQLite on a
//!   temporary file rather than on the heap.
//! - [`lease`]: one writer per démarche and destination at a time, with a lease kept in the
//!   destination and renewed while the run writes.
//! - Downloads never send credentials: file URLs are signed, on another host than the API.

mod error;
mod fetch;
pub mod hash;
pub mod index;
mod keystore;
pub mod lease;
mod list;
mod options;
mod plan;
mod progress;
mod removal;
pub mod seda;
mod shards;
mod state;
mod sync;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod verify;
pub mod wire;

pub use dsfiles_ds_client as ds;
pub use dsfiles_extract as extract;
pub use dsfiles_sink as sink;
pub use tokio_util::sync::CancellationToken;

pub use error::{Busy, Error, ErrorKind};
pub use fetch::policy::{AllowedHost, BLOCKED_ADDRESS, blocked_reason};
pub use list::{ListItem, list};
pub use options::{DataOutput, FetchOptions, ListOptions, SINCE_MARGIN, Since, SyncOptions};
pub use progress::{Progress, ProgressSink, no_progress};
pub use sync::sync;
pub use verify::verify;
pub use wire::{
    ApiCalls, Corrupt, DossierData, Event, Failure, FileStatus, Flagged, Kept, RunStatus, Shard,
    ShardData, ShardFile, Skipped, SyncPoint, SyncReport, VerifyReport,
};
