//! Integration tests of the HTTP service: a real server on 127.0.0.1:0, reqwest as the client,
//! the DS simulator (`dsfiles-sim`) behind the real pipeline, local directories as destinations.

mod api;
mod bucket;
mod contract;
mod files;
mod hostile;
mod logs;
mod replicas;
mod schedules;
mod schema;
mod seda;
mod support;
mod syncs;
mod webhooks;
