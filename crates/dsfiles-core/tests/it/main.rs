//! Integration tests of the core pipeline against the DS simulator and a local sink.

mod backends;
mod data;
mod destination;
mod files;
mod hostile;
mod index;
mod naming;
mod support;
mod sync;
