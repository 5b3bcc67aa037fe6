//! `dsfiles verify`: re-hash the stored files against the destination's manifest.

use std::path::PathBuf;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use dsfiles_core::{VerifyReport, sink};

use crate::cli::GlobalArgs;
use crate::exit::Exit;
use crate::progress::Progress;

use super::summary;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Every file the manifest records is read back and checked against its recorded size and SHA-256
(and DS's MD5 where DS vouched for it). Exit codes: 0 all present and intact; 1 files missing
or corrupt (each named); 2 usage or configuration; 130 cancelled by Ctrl-C or SIGTERM.")]
pub struct VerifyArgs {
    /// Destination written by `dsfiles sync` (same forms and credentials as for `sync --dest`,
    /// including `DSFILES_CREDENTIALS=instance`).
    #[arg(long, value_name = "DEST")]
    pub dest: String,

    /// Destination option KEY=VALUE (repeatable), as for `sync`: `credentials=instance`, or an
    /// object_store option such as `endpoint=...` (see `dsfiles sync --help`, docs/storage.md).
    #[arg(long = "dest-option", value_name = "KEY=VALUE", value_parser = super::sync::parse_key_value)]
    pub dest_options: Vec<(String, String)>,

    /// Also write the verification report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
}

pub async fn run(args: VerifyArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let sink = sink::open(&args.dest, &args.dest_options)?;
    let report = verify_with(sink, global).await?;
    finish(&report, args.summary_json.as_deref(), global.quiet)
}

/// Runs the verification with progress and Ctrl-C handling.
pub async fn verify_with(
    sink: std::sync::Arc<dyn sink::Sink>,
    global: &GlobalArgs,
) -> anyhow::Result<VerifyReport> {
    let dest = sink.describe();
    let cancel = CancellationToken::new();
    let _ctrl_c = crate::signals::cancel_on_ctrl_c(cancel.clone(), global.quiet);
    let progress = Progress::start("verify", global.quiet, global.progress_interval);
    let result = dsfiles_core::verify(sink, progress.sink(), cancel).await;
    progress.finish();
    result.with_context(|| format!("cannot verify `{dest}`"))
}

/// Summary, `--summary-json` and the exit code of a finished verification.
pub fn finish(
    report: &VerifyReport,
    summary_json: Option<&std::path::Path>,
    quiet: bool,
) -> anyhow::Result<Exit> {
    if let Some(path) = summary_json {
        summary::write_json(path, report)?;
    }
    summary::print_verify(report, quiet);
    Ok(Exit::from_verify_report(report))
}
