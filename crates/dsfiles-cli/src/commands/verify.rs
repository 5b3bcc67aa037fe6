//! `dsfiles verify`: re-hash the stored files against the destination's manifest.

use std::path::PathBuf;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use dsfiles_core::{VerifyReport, sink};

use crate::cli::GlobalArgs;
use crate::exit::Exit;
use crate::progress::{self, Progress};

use super::summary;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Destination written by `dsfiles sync` (same forms as for `sync --dest`).
    #[arg(long, value_name = "DEST")]
    pub dest: String,

    /// Destination option KEY=VALUE (repeatable), as for `sync`.
    #[arg(long = "dest-option", value_name = "KEY=VALUE", value_parser = super::sync::parse_key_value)]
    pub dest_options: Vec<(String, String)>,

    /// Also write the verification report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
}

pub async fn run(args: VerifyArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let sink = sink::open(&args.dest, &args.dest_options)?;
    let report = verify_with(sink, global.quiet).await?;
    finish(&report, args.summary_json.as_deref(), global.quiet)
}

/// Runs the verification with progress and Ctrl-C handling.
pub async fn verify_with(
    sink: std::sync::Arc<dyn sink::Sink>,
    quiet: bool,
) -> anyhow::Result<VerifyReport> {
    let dest = sink.describe();
    let cancel = CancellationToken::new();
    let _ctrl_c = progress::cancel_on_ctrl_c(cancel.clone(), quiet);
    let progress = Progress::start("verify", quiet);
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
        let mut json = serde_json::to_vec_pretty(report).context("cannot serialize the report")?;
        json.push(b'\n');
        std::fs::write(path, json)
            .with_context(|| format!("cannot write `--summary-json` to `{}`", path.display()))?;
    }
    summary::print_verify(report, quiet);
    Ok(Exit::from_verify_report(report))
}
