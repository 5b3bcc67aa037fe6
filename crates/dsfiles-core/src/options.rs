//! Typed options of [`crate::list`] and [`crate::sync`]: resolved by the front ends, never read
//! from the environment here.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::fetch::policy::AllowedHost;
use crate::lease::LeaseOptions;
use crate::{ds, extract};

/// What [`crate::list`] lists.
#[derive(Clone, Debug)]
pub struct ListOptions {
    pub demarche: u64,
    pub filter: ds::DossierFilter,
    pub include: extract::Include,
}

/// Which dossiers [`crate::sync`] asks DS for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Since {
    /// Dossiers updated since the last successful sync point minus [`SINCE_MARGIN`], plus the
    /// dossiers to re-check (pending virus scans, files left out for their scan, earlier
    /// failures); everything on a first run.
    #[default]
    Auto,
    /// Every dossier.
    Full,
    /// Dossiers updated since this instant.
    At(DateTime<Utc>),
}

/// Subtracted from the last sync point with [`Since::Auto`]: clocks differ and DS may commit an
/// update with a timestamp slightly before it becomes visible.
pub const SINCE_MARGIN: Duration = Duration::from_secs(10 * 60);

/// HTTP settings of file downloads, and what they may reach and cost (the rules are in
/// `fetch/policy.rs`, summed up in `docs/storage.md`, "File hosts and proxies").
#[derive(Clone, Debug)]
pub struct FetchOptions {
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response.
    pub read_timeout: Duration,
    /// First backoff delay between attempts; doubles up to `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Attempts after transient errors (5xx, resets, timeouts, truncated bodies), per file.
    pub max_transient_attempts: u32,
    pub user_agent: String,
    /// The DS API endpoint the run queries: its exact host and port may serve files whatever
    /// its address (a self-hosted DS on a private network). `None` (the default): [`crate::sync`]
    /// takes the endpoint of the client it is given.
    pub api_endpoint: Option<url::Url>,
    /// Hosts file downloads may reach even on a loopback, private or link-local address (a
    /// storage on the private network, a test server). Every other such address is refused
    /// before any connection, redirects included.
    pub allow_file_hosts: Vec<AllowedHost>,
    /// The fixed part of an attempt's deadline (default 30 s); see `min_rate`.
    pub deadline_base: Duration,
    /// The slowest transfer tolerated, in bytes per second (default 64 KiB/s): an attempt at a
    /// file of `size` bytes fails (and is retried) after `deadline_base + size / min_rate`.
    /// 0: no deadline (the read timeout still applies).
    pub min_rate: u64,
    /// The largest body read when DS announces no usable size (generated PDF and GeoJSON),
    /// default 256 MiB. With an announced size, a body is never read past it.
    pub max_unannounced_size: u64,
}

/// Default of [`FetchOptions::deadline_base`].
pub const DEFAULT_DEADLINE_BASE: Duration = Duration::from_secs(30);
/// Default of [`FetchOptions::min_rate`]: 64 KiB/s.
pub const DEFAULT_MIN_RATE: u64 = 64 * 1024;
/// Default of [`FetchOptions::max_unannounced_size`]: 256 MiB.
pub const DEFAULT_MAX_UNANNOUNCED_SIZE: u64 = 256 * 1024 * 1024;

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        FetchOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_transient_attempts: 8,
            user_agent: concat!("dsfiles/", env!("CARGO_PKG_VERSION")).to_owned(),
            api_endpoint: None,
            allow_file_hosts: Vec::new(),
            deadline_base: DEFAULT_DEADLINE_BASE,
            min_rate: DEFAULT_MIN_RATE,
            max_unannounced_size: DEFAULT_MAX_UNANNOUNCED_SIZE,
        }
    }
}

/// What [`crate::sync`] does.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    pub demarche: u64,
    /// Dossier filters (state, groupe, ...). A filtered run never advances the sync point.
    /// Its `include_generated` and `include_entreprise` also decide which files are stored
    /// (the generated PDF and GeoJSON, API Entreprise attestations). Its `fields` are decided
    /// by the run: the dossier values its layout and dossier.json use.
    pub filter: ds::DossierFilter,
    pub since: Since,
    /// Concurrent downloads (default 8).
    pub jobs: usize,
    /// Extra downloads of a file whose checksum does not match (default 3).
    pub retries: u32,
    /// Where each file goes. `None` (the default): the layout the destination was last synced
    /// with ([`crate::wire::LayoutRecord`]), else [`extract::Layout::DEFAULT`]. A layout given
    /// here is recorded for the next runs.
    pub layout: Option<extract::Layout>,
    /// Where each dossier's `dossier.json` goes. `None` (the default): the destination's
    /// recorded choice, else [`DataOutput::FollowLayout`]. Given: recorded, like `layout`.
    pub data: Option<DataOutput>,
    /// Also store files whose virus scan is neither `safe` nor `pending`.
    pub allow_unscanned: bool,
    /// Delete from the destination the files DS no longer has (removed files, deleted dossiers).
    pub prune: bool,
    /// Leave the old object of a file moved to a new key (a dossier value of the layout
    /// changed); by default it is deleted once the copy is verified.
    pub keep_moved: bool,
    pub fetch: FetchOptions,
    /// Who this run is in the destination lease, and whether to break a live one.
    pub lease: LeaseOptions,
}

impl SyncOptions {
    pub fn new(demarche: u64) -> SyncOptions {
        SyncOptions {
            demarche,
            filter: ds::DossierFilter::default(),
            since: Since::Auto,
            jobs: 8,
            retries: 3,
            layout: None,
            data: None,
            allow_unscanned: false,
            prune: false,
            keep_moved: false,
            fetch: FetchOptions::default(),
            lease: LeaseOptions::default(),
        }
    }
}

/// Where [`crate::sync`] writes each dossier's `dossier.json` ([`crate::wire::DossierData`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DataOutput {
    /// Next to the dossier's files: [`extract::DataLayout::for_layout`] of the file layout.
    #[default]
    FollowLayout,
    /// At the keys of this template (`--data-layout`).
    At(extract::DataLayout),
    /// No `dossier.json` (`--no-data`).
    Off,
}

impl DataOutput {
    /// Where dossier.json goes with file layout `layout`; `None` without dossier.json.
    pub fn data_layout(&self, layout: &extract::Layout) -> Option<extract::DataLayout> {
        match self {
            DataOutput::FollowLayout => Some(extract::DataLayout::for_layout(layout)),
            DataOutput::At(data) => Some(data.clone()),
            DataOutput::Off => None,
        }
    }
}
