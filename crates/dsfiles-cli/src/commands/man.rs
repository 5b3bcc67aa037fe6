//! `dsfiles man [--out DIR]`: roff man pages generated from the clap definition
//! ([`crate::cli::Cli`]) by clap_mangen: `dsfiles.1` on stdout, or with `--out DIR` one page per
//! command (`dsfiles.1`, `dsfiles-sync.1`, …) written into DIR. Like the completions, the pages
//! cannot drift from the flags the binary accepts.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::Cli;
use crate::exit::Exit;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Read one without installing it: dsfiles man | man -l -
Install them all: dsfiles man --out /usr/local/share/man/man1
The container image ships them in /usr/share/man/man1 (docs/deploy.md).")]
pub struct ManArgs {
    /// Write `dsfiles.1` and one page per subcommand (`dsfiles-sync.1`, …) into DIR, created if
    /// missing (existing pages are replaced), instead of printing `dsfiles.1` to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(args: &ManArgs) -> anyhow::Result<Exit> {
    match &args.out {
        Some(dir) => write_pages(dir),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command())
                .render(&mut page)
                .context("cannot render the man page")?;
            super::write_stdout(&page)
        }
    }
}

/// The command the pages describe: without clap's `help` subcommand, which needs no page
/// (clap_mangen's `generate_to` drops it too, so `dsfiles.1` is the same either way).
fn command() -> clap::Command {
    Cli::command().disable_help_subcommand(true)
}

fn write_pages(dir: &Path) -> anyhow::Result<Exit> {
    let context = || format!("cannot write the man pages into `{}`", dir.display());
    std::fs::create_dir_all(dir).with_context(context)?;
    clap_mangen::generate_to(command(), dir).with_context(context)?;
    Ok(Exit::Success)
}
