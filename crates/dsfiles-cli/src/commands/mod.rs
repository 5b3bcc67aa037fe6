//! One module per subcommand: its arguments and its `run`, which resolves settings, calls the
//! core and returns the [`Exit`](crate::exit::Exit).

pub mod demo;
pub mod index;
pub mod list;
pub mod seda;
pub mod serve;
mod summary;
pub mod sync;
pub mod verify;
