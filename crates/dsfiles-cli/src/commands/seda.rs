//! `dsfiles seda`: SEDA 2.2 archival packages of the terminated dossiers a sync stored, from
//! the destination alone (no DS call, no token), written to an output destination.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use dsfiles_core::seda::{self, Profile, SedaOptions};
use dsfiles_core::wire::SedaReport;
use dsfiles_core::{RunStatus, sink};

use crate::cli::GlobalArgs;
use crate::exit::{Exit, UsageError};
use crate::progress::{Progress, human_bytes};

use super::summary;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
One zip per dossier (manifest.xml + the files), built from what DEST holds: its manifest
shards, the stored files (each checked against its recorded SHA-256 and DS's MD5 on its way
into the zip) and the dossiers' dossier.json. No DS call, no token. OUT keeps under
.dsfiles/seda/ what it packaged: a re-run writes only dossiers newly terminated or changed (a
changed one as NAME-v2.zip, the old kept). The JSON report goes to stdout, a summary to stderr.
A dossier with nothing to package (no stored file, no dossier.json) gets no package: it is
listed under `skipped`, which is no failure. One seda run at a time per OUT: the run holds
OUT's lease (.dsfiles/seda/lease) while it writes.
Progress: bars on a terminal, a plain line every 5 seconds otherwise, nothing with --quiet.
Exit codes: 0 ok; 1 some dossier failed (each named: a file missing or corrupt in DEST, a
dossier never synced) or a destination failed; 2 usage or configuration (profile, states);
5 OUT busy (another live seda run holds its lease, named in the message; --break-lease if it
is gone) or the lease was taken over during the run; 130 cancelled by Ctrl-C or SIGTERM.
The profile's format: docs/seda.md.")]
pub struct SedaArgs {
    /// Destination written by `dsfiles sync` (same forms and credentials as for `sync --dest`).
    #[arg(long, value_name = "DEST")]
    pub dest: String,

    /// Destination option KEY=VALUE for DEST (repeatable), as for `sync --dest-option`.
    #[arg(long = "dest-option", value_name = "KEY=VALUE", value_parser = super::sync::parse_key_value)]
    pub dest_options: Vec<(String, String)>,

    /// Where the packages go: a local path, `s3://…`, `gs://…` or `az://…`, as for `--dest`.
    #[arg(long, value_name = "OUT")]
    pub out: String,

    /// Destination option KEY=VALUE for OUT (repeatable).
    #[arg(long = "out-option", value_name = "KEY=VALUE", value_parser = super::sync::parse_key_value)]
    pub out_options: Vec<(String, String)>,

    /// The archival profile (TOML): agreement, agencies, digest, package name, rules.
    #[arg(long, value_name = "PROFILE.toml")]
    pub profile: PathBuf,

    /// Only the dossiers of this démarche (as their manifest shards name it); default: every
    /// démarche DEST holds.
    #[arg(long, value_name = "N")]
    pub demarche: Option<u64>,

    /// Only this dossier (repeatable); still only in one of --states.
    #[arg(long = "dossier", value_name = "N")]
    pub dossiers: Vec<u64>,

    /// DS states to package, comma-separated: en_construction, en_instruction, accepte,
    /// refuse, sans_suite.
    #[arg(
        long,
        value_name = "STATES",
        value_delimiter = ',',
        default_value = "accepte,refuse,sans_suite"
    )]
    pub states: Vec<String>,

    /// Key of a dossier's dossier.json in DEST (`{dossier}`, `{demarche}` replaced), used
    /// only for dossiers whose manifest shard records no dossier.json (synced before sync
    /// wrote it); otherwise the key the shard records is read and checked.
    #[arg(long, value_name = "KEY", default_value = seda::DEFAULT_DOSSIER_JSON)]
    pub dossier_json: String,

    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,

    /// Take over OUT's lease even though its holder (named when the run is refused with exit
    /// 5) looks alive: only when you know that process is gone (a lost machine). Without it a
    /// stale lease is taken over once it expired, and the lease of a process of this machine
    /// that no longer exists (a killed run) at once. See docs/storage.md, "Destination lease".
    #[arg(long)]
    pub break_lease: bool,
}

pub async fn run(args: SedaArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let opts = options(&args)?;
    // A mistyped local path would otherwise be created, then reported as holding no state.
    if !args.dest.contains("://") && !std::path::Path::new(&args.dest).exists() {
        return Err(UsageError::new(format!("destination `{}` does not exist", args.dest)).into());
    }
    let dest = sink::open(&args.dest, &args.dest_options)?;
    let out = sink::open(&args.out, &args.out_options)?;
    let described = dest.describe();
    let cancel = CancellationToken::new();
    let _ctrl_c = crate::signals::cancel_on_ctrl_c(cancel.clone(), global.quiet);
    let progress = Progress::start("seda", global.quiet, global.progress_interval);
    let result = seda::package(dest, out, opts, progress.sink(), cancel).await;
    progress.finish();
    let report = result.with_context(|| format!("cannot package `{described}`"))?;
    if let Some(path) = &args.summary_json {
        summary::write_json(path, &report)?;
    }
    let mut json = serde_json::to_vec_pretty(&report).context("cannot serialize the report")?;
    json.push(b'\n');
    std::io::stdout()
        .lock()
        .write_all(&json)
        .context("cannot write the report to stdout")?;
    print_summary(&report, global.quiet);
    Ok(match report.exit_status() {
        RunStatus::Ok => Exit::Success,
        RunStatus::FilesFailed => Exit::Failed,
        RunStatus::Cancelled => Exit::Cancelled,
        RunStatus::LeaseLost => Exit::Busy,
    })
}

/// The core's options from the flags and the profile file.
fn options(args: &SedaArgs) -> anyhow::Result<SedaOptions> {
    let path = args.profile.display().to_string();
    let text = std::fs::read_to_string(&args.profile)
        .map_err(|e| UsageError::new(format!("cannot read the profile `{path}`: {e}")))?;
    let mut opts = SedaOptions::new(Profile::from_toml(&text, &path)?);
    opts.states = args.states.iter().map(|s| s.trim().to_owned()).collect();
    opts.dossiers = args.dossiers.clone();
    opts.demarche = args.demarche;
    opts.dossier_json = args.dossier_json.clone();
    opts.lease.break_lease = args.break_lease;
    opts.validate()?;
    Ok(opts)
}

/// Failures and warnings, then one line, on stderr (failures even with `-q`).
fn print_summary(report: &SedaReport, quiet: bool) {
    for failure in &report.failed {
        tracing::error!("dossier {}: {}", failure.dossier, failure.reason);
    }
    if quiet {
        return;
    }
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }
    for skipped in &report.skipped {
        tracing::warn!("{}", skipped.reason);
    }
    let line = format!(
        "{}{} packaged ({}), {} unchanged, {} skipped, {} failed\n",
        if report.lease_lost {
            "stopped, OUT's lease taken over: "
        } else if report.cancelled {
            "cancelled: "
        } else {
            ""
        },
        report.packaged.len(),
        human_bytes(report.bytes_written),
        report.unchanged.len(),
        report.skipped.len(),
        report.failed.len(),
    );
    crate::logging::write_stderr(line.as_bytes()).ok();
}
