//! One module per subcommand: its arguments and its `run`, which resolves settings, calls the
//! core and returns the [`Exit`](crate::exit::Exit).

pub mod completions;
pub mod demo;
pub mod healthcheck;
pub mod index;
pub mod list;
pub mod man;
pub mod seda;
pub mod serve;
mod summary;
pub mod sync;
pub mod verify;

use std::io::Write as _;

use anyhow::Context as _;

use crate::exit::Exit;

/// Writes a generated document (completion script, man page) to stdout. stdout closed early
/// (`dsfiles man | head`) ends quietly, like other Unix tools; any other write error fails.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<Exit> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(err).context("cannot write to stdout")
        }
        _ => Ok(Exit::Success),
    }
}
