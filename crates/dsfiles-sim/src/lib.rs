//! The DS simulator: an axum server that plays demarches-simplifiees.fr for tests and for
//! `dsfiles demo` — a seeded démarche with every file source and hostile filenames, Relay
//! pagination capped at 100, DS's auth and error shapes, signed expiring file URLs that redirect
//! to a second host, and a fault plan (429, 5xx, timeouts, resets, truncation, corruption, expiry).
//!
//! **Invariant:** it shares no code with `dsfiles-ds-client`, so the two cannot agree on a
//! mistake. It has no hand-written mirror of DS's schema either: queries are validated with
//! `apollo-compiler` against the vendored `fixtures/ds/schema.graphql` and executed generically
//! over JSON objects, every value checked against its schema type (a mismatch is a simulator
//! bug, answered with HTTP 500 and counted in [`Stats::sim_bugs`]).
//!
//! The binary `dsfiles-sim` (`src/bin/dsfiles-sim/`) serves it as a program until SIGTERM,
//! announcing its endpoint and token in one JSON line on stdout (`docs/simulator.md`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), dsfiles_sim::Error> {
//! let sim = dsfiles_sim::start(dsfiles_sim::SimConfig { dossiers: 250, ..Default::default() }).await?;
//! let endpoint = sim.endpoint();      // http://127.0.0.1:PORT/api/v2/graphql
//! let truth = sim.expected_files(false, false);
//! # let _ = (endpoint, truth);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod clock;
mod config;
mod content;
mod data;
mod ds;
mod external;
mod faults;
mod graphql;
mod server;
mod world;

pub use clock::SimClock;
pub use config::SimConfig;
pub use data::{ExpectedFile, FileSource};
pub use external::{ExternalFile, ExternalFiles};
pub use faults::{Fault, FaultPlan, FaultRule, Target};
pub use server::{FileBytes, SimHandle, VIRUS_SCAN_RESULTS, serve, start};

/// The hostile filenames carried by the first dossier (when [`SimConfig::hostile_filenames`]).
pub fn hostile_filenames() -> Vec<String> {
    data::hostile_names()
}

/// The maximum page size DS serves (`first` is capped to it silently).
pub const MAX_PAGE_SIZE: u32 = 100;

/// Simulator failures (setup and test-facing methods).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot bind the simulator's {what} on 127.0.0.1")]
    Bind {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid simulator configuration: {reason}")]
    InvalidConfig { reason: String },
    #[error("the vendored DS schema does not validate: {reason}")]
    Schema { reason: String },
    #[error("dossier `{number}` does not exist in the simulator")]
    DossierNotFound { number: u64 },
    #[error("file `{id}` does not exist in the simulator")]
    FileNotFound { id: u64 },
}

/// The size of the served démarche, as [`SimHandle::totals`] counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Live dossiers.
    pub dossiers: u64,
    /// Files of the live dossiers a plain listing gives: uploads, attestations and
    /// motivations, without the generated exports (pdf, geojson) or API Entreprise attestations.
    pub files: u64,
    /// Their total served size in bytes.
    pub bytes: u64,
}

/// Request counters, for assertions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// `POST /api/v2/graphql` calls (including refused ones).
    pub graphql_requests: u64,
    /// `dossiers` pages resolved.
    pub pages: u64,
    /// GET downloads on the file host.
    pub file_requests: u64,
    /// HEAD requests on the file host.
    pub file_heads: u64,
    /// Signed-URL redirects served by the API host.
    pub redirects: u64,
    /// Body bytes sent by the file host.
    pub bytes_served: u64,
    /// 429 responses.
    pub rate_limited: u64,
    /// 502/503 responses.
    pub server_errors: u64,
    /// GraphQL `timeout` errors.
    pub timeouts: u64,
    /// 401 answers to expired file URLs.
    pub expired_urls: u64,
    /// 401/403 answers to GraphQL calls.
    pub auth_failures: u64,
    /// Fault rules fired.
    pub faults_fired: u64,
    /// Responses that did not fit the DS schema (must stay 0).
    pub sim_bugs: u64,
    /// Bytes of the JSON bodies of GraphQL answers (errors and padding aside): what the
    /// queries' `@include` variables save shows here.
    pub graphql_response_bytes: u64,
}

impl Stats {
    fn from_counters(c: &world::Counters) -> Stats {
        use std::sync::atomic::Ordering::Relaxed;
        Stats {
            graphql_requests: c.graphql_requests.load(Relaxed),
            pages: c.pages.load(Relaxed),
            file_requests: c.file_requests.load(Relaxed),
            file_heads: c.file_heads.load(Relaxed),
            redirects: c.redirects.load(Relaxed),
            bytes_served: c.bytes_served.load(Relaxed),
            rate_limited: c.rate_limited.load(Relaxed),
            server_errors: c.server_errors.load(Relaxed),
            timeouts: c.timeouts.load(Relaxed),
            expired_urls: c.expired_urls.load(Relaxed),
            auth_failures: c.auth_failures.load(Relaxed),
            faults_fired: c.faults_fired.load(Relaxed),
            sim_bugs: c.sim_bugs.load(Relaxed),
            graphql_response_bytes: c.graphql_response_bytes.load(Relaxed),
        }
    }
}
