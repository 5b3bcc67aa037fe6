/// Everything that can go wrong in this crate: bad dossier data, a bad layout template, or a
/// key that is not a valid sanitized relative key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The dossier JSON has no usable `number`, so nothing else can be attributed to it.
    #[error("dossier JSON has no valid `number` ({reason})")]
    MissingDossierNumber { reason: String },

    /// A part of the dossier does not have the shape the queries select.
    #[error("dossier `{dossier}`: invalid data at `{path}`: {reason}")]
    InvalidDossier {
        dossier: u64,
        path: String,
        reason: String,
    },

    /// A file object lacks a field without which it cannot be stored or identified.
    #[error("dossier `{dossier}`: file at `{path}` has no `{field}`")]
    MissingFileField {
        dossier: u64,
        path: String,
        field: &'static str,
    },

    /// A file object has a field whose value cannot be used (e.g. an unparsable size).
    #[error("dossier `{dossier}`: file at `{path}` has an invalid `{field}`: `{value}`")]
    InvalidFileField {
        dossier: u64,
        path: String,
        field: &'static str,
        value: String,
    },

    /// A layout template names a placeholder that does not exist.
    #[error("layout `{template}`: unknown placeholder `{{{name}}}` (known: {known})")]
    UnknownPlaceholder {
        template: String,
        name: String,
        known: String,
    },

    /// A layout template has a `{` without its `}` or a `}` without its `{`.
    #[error("layout `{template}`: unbalanced `{brace}` at byte {position}")]
    UnbalancedBrace {
        template: String,
        brace: char,
        position: usize,
    },

    /// A layout template is structurally unusable (empty, absolute, empty component).
    #[error("layout `{template}`: {reason}")]
    InvalidLayout { template: String, reason: String },

    /// A key already held (e.g. read from the manifest) collides with another file's key.
    #[error("key `{key}` of file `{file_id}` conflicts with {with}")]
    KeyConflict {
        key: String,
        file_id: String,
        with: String,
    },

    /// A string given as a relative key is not one [`crate::Layout::render`] could produce.
    #[error("invalid relative key `{key}`: {reason}")]
    InvalidKey { key: String, reason: String },

    /// Where a [`crate::KeyAllocator`] holds its keys failed (e.g. a full disk).
    #[error("the key store failed: {reason}")]
    KeyStore { reason: String },
}
