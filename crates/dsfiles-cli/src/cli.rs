//! The command line: `dsfiles [-v|-q] <list|sync|verify|demo|serve>`.

use crate::commands::{demo, list, sync, verify};
use crate::serve;

/// Get every file of a démarche on demarches-simplifiees.fr into storage you control:
/// complete, verified against DS's MD5, and kept in sync incrementally.
#[derive(Debug, clap::Parser)]
#[command(
    name = "dsfiles",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Start with `dsfiles demo` (offline, no token). Exit codes: 0 ok, 1 files failed, \
                  2 usage or configuration, 3 authentication or access refused, 4 API or network \
                  failure, 130 cancelled. Full documentation: docs/cli.md."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand accepts.
#[derive(Debug, Clone, Copy, clap::Args)]
#[command(next_help_heading = "Output")]
pub struct GlobalArgs {
    /// More logs on stderr: -v info, -vv debug, -vvv trace (`RUST_LOG` overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr: no progress, warnings or summary (`RUST_LOG` overrides).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print one record per file of a démarche (JSON Lines, CSV or a table), as pages arrive.
    List(list::ListArgs),
    /// Download every file of a démarche to a destination, verified and incrementally.
    Sync(sync::SyncArgs),
    /// Re-hash the files stored at a destination against its manifest.
    Verify(verify::VerifyArgs),
    /// Sync the sample démarche of the embedded DS simulator: offline, no token.
    Demo(demo::DemoArgs),
    /// Run the HTTP service (start, watch and cancel syncs; webhooks; metrics).
    Serve(serve::ServeArgs),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn verbosity_and_quiet_are_global_and_exclusive() {
        let parse = |args: &[&str]| <Cli as clap::Parser>::try_parse_from(args);
        let cli = parse(&["dsfiles", "verify", "--dest", "d", "-vv"]).unwrap();
        assert_eq!(cli.global.verbose, 2);
        let cli = parse(&["dsfiles", "-q", "verify", "--dest", "d"]).unwrap();
        assert!(cli.global.quiet);
        assert!(parse(&["dsfiles", "verify", "--dest", "d", "-v", "-q"]).is_err());
    }
}
