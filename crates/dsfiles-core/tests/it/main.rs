//! Integration tests of the core pipeline against the DS simulator and a local sink.

mod backends;
mod commits;
mod data;
mod destination;
mod ds_export;
mod files;
mod hostile;
mod index;
mod lease;
mod naming;
mod seda;
mod seda_run;
mod support;
mod sync;
