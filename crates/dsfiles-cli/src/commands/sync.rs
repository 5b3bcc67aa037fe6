//! `dsfiles sync`: every file of a démarche into a destination, verified and incrementally.

use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use dsfiles_core::extract::Layout;
use dsfiles_core::{Since, SyncOptions, SyncReport, ds, sink};

use crate::cli::GlobalArgs;
use crate::exit::{Exit, UsageError};
use crate::progress::{self, Progress};
use crate::settings::{self, DsArgs, Filters};

use super::summary;

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// The démarche number.
    #[arg(long, value_name = "N")]
    pub demarche: u64,

    /// Destination: a local path, file:///path, s3://bucket/prefix, gs://bucket/prefix or
    /// az://container/prefix (credentials from the standard cloud variables; see
    /// docs/storage.md).
    #[arg(long, value_name = "DEST")]
    pub dest: String,

    /// Concurrent downloads.
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub jobs: u64,

    /// Extra attempts per file after a failed or mismatching download (each with fresh
    /// metadata from DS).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(0..=20))]
    pub retries: u32,

    /// Where each file goes under DEST. Placeholders: {demarche} {dossier} {state} {source}
    /// {champ_id} {label} {row} {filename} {stem} {ext} {checksum} {sha256}; every path
    /// component is sanitized.
    #[arg(long, value_name = "TEMPLATE", default_value = Layout::DEFAULT)]
    pub layout: String,

    /// Which dossiers to look at: `auto` (dossiers updated since the last successful sync,
    /// minus a safety margin; everything on the first run), `full` (every dossier, checking
    /// every file against the destination), or a DATE (RFC 3339 or YYYY-MM-DD, midnight UTC).
    #[arg(long, value_name = "auto|full|DATE", default_value = "auto", value_parser = parse_since)]
    pub since: SinceArg,

    /// Same as `--since full`.
    #[arg(long, conflicts_with = "since")]
    pub full: bool,

    /// Also download files whose virus scan is neither `safe` nor `pending`.
    #[arg(long)]
    pub allow_unscanned: bool,

    /// Exit 1 when files were stored with a checksum that disagrees with DS's (stable bytes DS
    /// holds a wrong checksum for; stored and flagged `checksum_mismatch` either way).
    #[arg(long)]
    pub strict: bool,

    /// Delete from DEST the files DS no longer has (removed files, deleted dossiers); by default
    /// they are only reported and marked in the manifest.
    #[arg(long)]
    pub prune: bool,

    /// Destination option KEY=VALUE (repeatable), e.g. `part_size=16MiB`, `fsync=false`, or an
    /// object_store option such as `aws_endpoint=http://127.0.0.1:9000`. See docs/storage.md.
    #[arg(long = "dest-option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub dest_options: Vec<(String, String)>,

    /// Also write the final report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,

    #[command(flatten)]
    pub filters: Filters,

    #[command(flatten)]
    pub ds: DsArgs,
}

/// `--since` as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinceArg {
    Auto,
    Full,
    At(DateTime<Utc>),
}

fn parse_since(s: &str) -> Result<SinceArg, String> {
    match s {
        "auto" => Ok(SinceArg::Auto),
        "full" => Ok(SinceArg::Full),
        date => settings::parse_date(date).map(SinceArg::At),
    }
}

pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

impl SyncArgs {
    fn since(&self) -> Since {
        match (self.full, self.since) {
            (true, _) | (false, SinceArg::Full) => Since::Full,
            (false, SinceArg::Auto) => Since::Auto,
            (false, SinceArg::At(at)) => Since::At(at),
        }
    }

    /// The core's options; the layout is checked here so a bad template is a usage error.
    fn options(&self) -> anyhow::Result<SyncOptions> {
        let layout = Layout::parse(&self.layout)
            .map_err(|e| UsageError::new(format!("invalid `--layout`: {e}")))?;
        let mut opts = SyncOptions::new(self.demarche);
        opts.filter = self.filters.dossier_filter(None);
        opts.include = self.filters.include();
        opts.since = self.since();
        opts.jobs = usize::try_from(self.jobs).unwrap_or(usize::MAX);
        opts.retries = self.retries;
        opts.layout = layout;
        opts.allow_unscanned = self.allow_unscanned;
        opts.strict = self.strict;
        opts.prune = self.prune;
        Ok(opts)
    }
}

pub async fn run(args: SyncArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let opts = args.options()?;
    let config = settings::client_config(&args.ds)?;
    let client = ds::Client::new(config).context("cannot set up the DS API client")?;
    let sink = sink::open(&args.dest, &args.dest_options)?;
    let report = sync_with(client, sink, opts, global.quiet).await?;
    finish(
        &report,
        args.strict,
        args.summary_json.as_deref(),
        global.quiet,
    )
}

/// Runs the sync with progress and Ctrl-C handling (a cancelled run still returns its report,
/// marked cancelled).
pub async fn sync_with(
    client: ds::Client,
    sink: std::sync::Arc<dyn sink::Sink>,
    opts: SyncOptions,
    quiet: bool,
) -> anyhow::Result<SyncReport> {
    let dest = sink.describe();
    let demarche = opts.demarche;
    let cancel = CancellationToken::new();
    let _ctrl_c = progress::cancel_on_ctrl_c(cancel.clone(), quiet);
    let progress = Progress::start("sync", quiet);
    let result = dsfiles_core::sync(client, sink, opts, progress.sink(), cancel).await;
    progress.finish();
    result.with_context(|| format!("sync of démarche `{demarche}` to `{dest}` stopped"))
}

/// Summary, `--summary-json` and the exit code of a finished sync.
pub fn finish(
    report: &SyncReport,
    strict: bool,
    summary_json: Option<&std::path::Path>,
    quiet: bool,
) -> anyhow::Result<Exit> {
    if let Some(path) = summary_json {
        let mut json = serde_json::to_vec_pretty(report).context("cannot serialize the report")?;
        json.push(b'\n');
        std::fs::write(path, json)
            .with_context(|| format!("cannot write `--summary-json` to `{}`", path.display()))?;
    }
    summary::print_sync(report, quiet);
    Ok(Exit::from_sync_report(report, strict))
}
