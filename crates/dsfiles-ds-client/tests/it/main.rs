//! Integration tests of dsfiles-ds-client: queries against the real schema, and the client
//! against a scripted mock DS server.

mod client;
mod cost;
mod errors;
mod hostile;
mod mock;
mod proxy;
mod schema;
mod sim;
