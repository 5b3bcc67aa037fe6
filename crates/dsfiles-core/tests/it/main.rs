//! Integration tests of the core pipeline against the DS simulator and a local sink.

mod backends;
mod destination;
mod files;
mod hostile;
mod index;
mod seda;
mod support;
mod sync;
