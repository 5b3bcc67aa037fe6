//! Integration tests of the core pipeline against the DS simulator and a local sink.

mod support;
mod sync;
