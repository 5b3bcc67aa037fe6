//! The simulated world: the démarche's state, the clock, the fault plan, the counters and the
//! URL-signing key — everything the GraphQL side (`ds.rs`) and the HTTP side (`server.rs`)
//! share.
//!
//! **Rule:** both sides depend on [`World`], neither on the other's internals. `ds.rs` reads the
//! state and signs URLs; `server.rs` verifies them, serves bytes and keeps `/__sim/*`. A URL
//! signed here is accepted only by [`World::verify`] with the same key, and expires by date
//! (the shared [`SimClock`]) or by sequence number ([`World::expire_all_urls`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use apollo_compiler::Schema;
use apollo_compiler::validation::Valid;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use url::Url;

use crate::content::Content;
use crate::data::{FileEntry, State};
use crate::faults::{Fault, FaultState, Scope, Subject};
use crate::{Error, SimClock, SimConfig};

/// Counters, updated lock-free.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) graphql_requests: AtomicU64,
    pub(crate) file_requests: AtomicU64,
    pub(crate) file_heads: AtomicU64,
    pub(crate) redirects: AtomicU64,
    pub(crate) bytes_served: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) server_errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) expired_urls: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) faults_fired: AtomicU64,
    pub(crate) sim_bugs: AtomicU64,
    pub(crate) pages: AtomicU64,
    pub(crate) dossier_nodes: AtomicU64,
    pub(crate) graphql_response_bytes: AtomicU64,
}

/// Everything the API host, the file host and the GraphQL resolver share.
pub(crate) struct World {
    state: RwLock<State>,
    faults: Mutex<FaultState>,
    pub(crate) stats: Counters,
    pub(crate) schema: Valid<Schema>,
    pub(crate) clock: SimClock,
    /// The accepted token; `None` accepts any non-empty one.
    pub(crate) token: Option<String>,
    pub(crate) expired_tokens: Vec<String>,
    url_ttl: Duration,
    key: [u8; 32],
    /// Sequence number of the next signed URL; URLs below `valid_from` are expired.
    url_seq: AtomicU64,
    valid_from: AtomicU64,
    pub(crate) api_base: Url,
    pub(crate) file_base: Url,
    pub(crate) file_host_authorizations: Mutex<Vec<String>>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("api_base", &self.api_base.as_str())
            .field("file_base", &self.file_base.as_str())
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl World {
    /// Builds the seeded démarche of `config`, served at `api_base` with files on `file_base`.
    pub(crate) fn new(config: &SimConfig, api_base: Url, file_base: Url) -> Result<World, Error> {
        let schema = crate::ds::schema().map_err(|reason| Error::Schema { reason })?;
        let mut key = [0u8; 32];
        let digest = <Sha256 as sha2::Digest>::digest(
            format!("dsfiles-sim url key {}", config.seed).as_bytes(),
        );
        key.copy_from_slice(&digest);
        Ok(World {
            state: RwLock::new(State::build(config)),
            faults: Mutex::new(FaultState {
                plan: config.faults.clone(),
                ..FaultState::default()
            }),
            stats: Counters::default(),
            schema,
            clock: config.clock.clone(),
            token: config.token.clone(),
            expired_tokens: config.expired_tokens.clone(),
            url_ttl: config.url_ttl,
            key,
            url_seq: AtomicU64::new(0),
            valid_from: AtomicU64::new(0),
            api_base,
            file_base,
            file_host_authorizations: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, FaultState> {
        lock(&self.faults)
    }

    /// Fires the fault rules of `scope` that target `subject` and that `accept` takes.
    pub(crate) fn fire(
        &self,
        scope: Scope,
        subject: &Subject,
        accept: impl FnMut(&Fault) -> bool,
    ) -> Vec<Fault> {
        let fired = self.faults().fire(scope, subject, accept);
        self.stats
            .faults_fired
            .fetch_add(fired.len() as u64, Ordering::Relaxed);
        fired
    }

    pub(crate) fn sign(&self, parts: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(parts.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub(crate) fn verify(&self, parts: &str, sig: &str) -> bool {
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(parts.as_bytes());
        mac.verify_slice(&sig).is_ok()
    }

    /// A fresh signed URL on the API host for the current version of `file`.
    pub(crate) fn signed_url(&self, file: &FileEntry) -> Url {
        let expires = (self.clock.now()
            + chrono::Duration::from_std(self.url_ttl).unwrap_or(chrono::Duration::MAX))
        .timestamp();
        let n = self.url_seq.fetch_add(1, Ordering::Relaxed);
        let blob = format!("{}-{}", file.id, file.generation);
        let sig = self.sign(&format!("redirect|{blob}|{expires}|{n}"));
        let mut url = self.api_base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.clear().extend([
                "rails",
                "active_storage",
                "blobs",
                "redirect",
                &blob,
                &file.filename,
            ]);
        }
        url.query_pairs_mut()
            .append_pair("expires", &expires.to_string())
            .append_pair("n", &n.to_string())
            .append_pair("sig", &sig);
        url
    }

    pub(crate) fn expire_all_urls(&self) {
        self.valid_from
            .store(self.url_seq.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Whether the URL signed with `expires` and sequence number `n` no longer works.
    pub(crate) fn is_expired(&self, expires: i64, n: u64) -> bool {
        expires < self.clock.now().timestamp() || n < self.valid_from.load(Ordering::Relaxed)
    }

    /// The content of file `id` at `generation` (older generations stay downloadable, like blobs).
    pub(crate) fn content(&self, id: u64, generation: u32) -> Option<(Content, String, u64)> {
        let state = self.read_state();
        let file = state.files.get(usize::try_from(id).ok()?)?;
        if generation > file.generation {
            return None;
        }
        let mut content = file.content;
        content.key = crate::content::mix(&[state.seed, id, u64::from(generation)]);
        Some((content, file.content_type.clone(), file.dossier))
    }
}
