//! Counters of the client's API traffic, shared by all clones of a [`crate::Client`].

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the client's counters (see [`crate::Client::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// HTTP requests sent to the GraphQL endpoint, retries included.
    pub api_calls: u64,
    /// Requests repeated after a transient failure.
    pub retries: u64,
    /// HTTP 429 answers received.
    pub rate_limited: u64,
    /// Times a page was asked again with half the page size.
    pub page_size_reductions: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    api_calls: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    page_size_reductions: AtomicU64,
}

impl Counters {
    pub(crate) fn api_call(&self) {
        self.api_calls.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn page_size_reduction(&self) {
        self.page_size_reductions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            api_calls: self.api_calls.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            page_size_reductions: self.page_size_reductions.load(Ordering::Relaxed),
        }
    }
}
