//! Integration tests of the DS simulator over real HTTP.

mod auth;
mod binary;
mod context;
mod external;
mod faults;
mod files;
mod fixtures;
mod pagination;
mod queries;
mod state;
mod support;
