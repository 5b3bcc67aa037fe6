//! Pure extraction: a DS dossier (as the GraphQL queries return it) becomes the list of its
//! file records from every source, and a path template turns a record into a sanitized,
//! collision-free relative key.
//!
//! **Architecture invariant:** this crate does no IO, is not async, and depends on neither
//! tokio nor reqwest. Everything here is a function of its arguments, tested from JSON alone.
//!
//! - [`context`] reads what DS knows about the dossier besides its files (démarche, dates,
//!   groupe, applicant, champ values, messages, avis, decision) into a [`DossierContext`].
//! - [`extract`] walks one dossier and returns its [`FileRecord`]s in a deterministic order.
//! - [`Layout`] parses a template such as [`Layout::DEFAULT`] and renders a record as a
//!   [`RelKey`] whose every component went through [`sanitize_component`].
//! - [`KeyAllocator`] hands out keys so that two different files never get the same key
//!   (even when compared case-insensitively): it is what guarantees that no file ever
//!   overwrites another.

mod alloc;
mod context;
mod error;
mod extract;
mod layout;
mod naming;
#[cfg(test)]
mod random;
mod record;
mod sanitize;

pub use alloc::{KeyAllocator, KeyStore, MemoryStore, StoreError};
pub use context::{
    Applicant, AvisInfo, ChampValue, Decision, DemarcheInfo, DossierContext, DossierInfo, Groupe,
    MessageInfo, Row, context,
};
pub use error::Error;
pub use extract::extract;
pub use layout::{DataLayout, DossierDir, Layout, PLACEHOLDERS, RelKey};
pub use naming::{DOSSIER_PLACEHOLDERS, LabelRef};
pub use record::{FileRecord, Include, Source};
pub use sanitize::{FALLBACK_NAME, MAX_COMPONENT_BYTES, sanitize_component};
