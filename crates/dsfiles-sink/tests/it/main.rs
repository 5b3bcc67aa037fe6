//! Integration tests of dsfiles-sink: the conformance suite on every backend, and
//! local-disk crash-safety details.

mod backends;
mod conformance;
mod local;
mod support;
