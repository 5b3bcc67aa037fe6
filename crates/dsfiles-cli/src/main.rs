//! `dsfiles`, the command-line front end: parses arguments, resolves settings, installs
//! tracing, calls `dsfiles-core` and renders its progress and reports, then maps the outcome to
//! an exit code (see [`exit`]). It also hosts `dsfiles serve` and the offline `dsfiles demo`.
//!
//! **Architecture invariant:** this crate is glue and holds no pipeline logic: what to list,
//! download, verify or skip is decided in `dsfiles-core`. Data goes to stdout, everything else
//! (logs, progress, summaries, errors) to stderr.

mod cli;
mod commands;
mod env_vars;
mod exit;
mod logging;
mod progress;
mod settings;
mod signals;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command};
use crate::exit::Exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = logging::init(cli.global.verbose, cli.global.quiet) {
        report_error(&anyhow::Error::new(err));
        return Exit::Usage.into();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            report_error(&anyhow::Error::new(err).context("cannot start the async runtime"));
            return Exit::Failed.into();
        }
    };
    let outcome = runtime.block_on(run(cli));
    // Do not wait for stray blocking tasks (e.g. a pending stdin read): the run is over.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => code,
        Err(err) => {
            report_error(&err);
            Exit::from_error(&err).into()
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    let exit = match cli.command {
        Command::List(args) => commands::list::run(args, &global).await?,
        Command::Sync(args) => commands::sync::run(args, &global).await?,
        Command::Verify(args) => commands::verify::run(args, &global).await?,
        Command::Index(args) => commands::index::run(args, &global).await?,
        Command::Seda(args) => commands::seda::run(args, &global).await?,
        Command::Demo(args) => commands::demo::run(args, &global).await?,
        Command::Serve(args) => return commands::serve::run(args).await,
        Command::Healthcheck(args) => commands::healthcheck::run(args).await?,
        Command::Completions(args) => commands::completions::run(&args)?,
        Command::Man(args) => commands::man::run(&args)?,
    };
    Ok(exit.into())
}

/// Prints a run-level error once, on one line, with its causes.
fn report_error(err: &anyhow::Error) {
    let line = format!("error: {}\n", exit::one_line(err));
    // Nothing better to do if stderr itself is gone.
    let _ = logging::write_stderr(line.as_bytes());
}
