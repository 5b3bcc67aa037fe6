//! `dsfiles index`: one record per stored file, from the destination's own manifest (no DS
//! call, no token), streamed to stdout in `list`'s formats.

use std::io::{IsTerminal as _, Write};

use futures::{FutureExt as _, StreamExt as _};
use tokio_util::sync::CancellationToken;

use dsfiles_core::index::{IndexItem, IndexOptions, IndexRecord, STATUSES};
use dsfiles_core::{FileStatus, sink};

use crate::cli::GlobalArgs;
use crate::exit::{Exit, UsageError};
use crate::progress::human_bytes;

use super::list::Format;
use super::list::format::{Row, Writer, cell, printable};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Records go to stdout (fields: docs/cli.md), read from the destination's manifest shards only:
no DS call, no token. Order: the destination's listing (key order on object stores, so dossier
10 before 9; directory order on local disk), or dossier number order with --dossier. Warnings
(unreadable shards, requested dossiers with none) and a summary go to stderr. Exit codes: 0 ok;
1 some shards could not be read (each named: the index is incomplete) or the destination
failed; 2 usage or configuration, or a destination `dsfiles sync` never wrote; 130 cancelled
by Ctrl-C or SIGTERM.")]
pub struct IndexArgs {
    /// Destination written by `dsfiles sync` (same forms and credentials as for `sync --dest`,
    /// including `DSFILES_CREDENTIALS=instance`).
    #[arg(long, value_name = "DEST")]
    pub dest: String,

    /// Destination option KEY=VALUE (repeatable), as for `sync` (see `dsfiles sync --help`).
    #[arg(long = "dest-option", value_name = "KEY=VALUE", value_parser = super::sync::parse_key_value)]
    pub dest_options: Vec<(String, String)>,

    /// Output format: JSON Lines (one object per file, snake_case keys), CSV with a header, or
    /// an aligned table for humans.
    #[arg(long, value_name = "FORMAT", default_value = "jsonl")]
    pub format: Format,

    /// Only the files of this démarche.
    #[arg(long, value_name = "N")]
    pub demarche: Option<u64>,

    /// Only this dossier (repeatable); its shard is read directly.
    #[arg(long = "dossier", value_name = "N")]
    pub dossiers: Vec<u64>,

    /// Only files with this status: ok, checksum_mismatch, pending, unverified,
    /// removed_upstream.
    #[arg(long, value_name = "STATUS", value_parser = parse_status)]
    pub status: Option<FileStatus>,
}

/// A [`FileStatus`] by its name in the manifest.
fn parse_status(s: &str) -> Result<FileStatus, String> {
    STATUSES
        .into_iter()
        .find(|status| status.as_str() == s)
        .ok_or_else(|| {
            let names: Vec<&str> = STATUSES.iter().map(|s| s.as_str()).collect();
            format!("`{s}` is not a file status ({})", names.join(", "))
        })
}

impl Row for IndexRecord {
    const CSV_COLUMNS: &'static [&'static str] = &[
        "version",
        "demarche",
        "dossier",
        "state",
        "updated_at",
        "deleted_at",
        "file_id",
        "key",
        "source",
        "label",
        "filename",
        "content_type",
        "size",
        "checksum",
        "sha256",
        "status",
        "stored_at",
        "demarche_title",
        "service",
        "groupe",
        "deposited_at",
        "instruction_started_at",
        "processed_at",
        "applicant",
        "demandeur",
        "civilite",
        "nom",
        "prenom",
        "siret",
        "siren",
        "raison_sociale",
        "tva",
        "adresse",
    ];
    const TABLE_HEADER: &'static str = "  DOSSIER  SOURCE       STATUS                   SIZE  KEY";

    fn table_row(&self) -> String {
        format!(
            "{:>9}  {:<11}  {:<17}  {:>10}  {}",
            self.dossier,
            self.source.as_str(),
            cell(self.status.as_str(), 17),
            human_bytes(self.size),
            printable(&self.key),
        )
    }
}

/// What `index` counted, for the summary on stderr.
#[derive(Debug, Default)]
struct Tally {
    dossiers: u64,
    files: u64,
    bytes: u64,
    warnings: u64,
}

pub async fn run(args: IndexArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    // A mistyped local path would otherwise be created (opening a local sink makes its
    // `.dsfiles/`) and then reported as holding no state.
    if !args.dest.contains("://") && !std::path::Path::new(&args.dest).exists() {
        return Err(UsageError::new(format!("destination `{}` does not exist", args.dest)).into());
    }
    let sink = sink::open(&args.dest, &args.dest_options)?;
    let dest = sink.describe();
    let opts = IndexOptions {
        demarche: args.demarche,
        dossiers: args.dossiers,
        status: args.status,
    };
    let cancel = CancellationToken::new();
    let _ctrl_c = crate::signals::cancel_on_ctrl_c(cancel.clone(), global.quiet);
    let stream = dsfiles_core::index::index(sink, opts, cancel.clone());
    let out = Writer::new(
        args.format,
        std::io::BufWriter::new(std::io::stdout().lock()),
    );
    let tally = match write_all(stream, out, &cancel).await {
        Ok(tally) => tally,
        Err(Stop::Output(err)) => return output_closed(err, &cancel),
        Err(Stop::Core(err)) => {
            return Err(anyhow::Error::new(err).context(format!("cannot index `{dest}`")));
        }
    };
    summarize(&tally, &cancel, global.quiet);
    Ok(if cancel.is_cancelled() {
        Exit::Cancelled
    } else if tally.warnings > 0 {
        tracing::error!(
            "{} warnings above (unreadable or missing shards): the index is incomplete",
            tally.warnings
        );
        Exit::Failed
    } else {
        Exit::Success
    })
}

/// Why [`write_all`] stopped early.
enum Stop {
    Output(std::io::Error),
    Core(dsfiles_core::Error),
}

/// Writes every record of `stream` to `out`, warnings to the log, and counts them.
async fn write_all(
    stream: impl futures::Stream<Item = Result<IndexItem, dsfiles_core::Error>>,
    mut out: Writer<impl Write, IndexRecord>,
    cancel: &CancellationToken,
) -> Result<Tally, Stop> {
    let mut stream = std::pin::pin!(stream);
    let interactive = std::io::stdout().is_terminal();
    let mut tally = Tally::default();
    loop {
        // Flush whatever is buffered before waiting for the destination.
        let item = match stream.next().now_or_never() {
            Some(item) => item,
            None => {
                out.flush().map_err(Stop::Output)?;
                stream.next().await
            }
        };
        match item {
            None => break,
            Some(Ok(IndexItem::Record(record))) => {
                tally.files += 1;
                tally.bytes = tally.bytes.saturating_add(record.size);
                out.record(&record).map_err(Stop::Output)?;
                if interactive {
                    out.flush().map_err(Stop::Output)?;
                }
            }
            Some(Ok(IndexItem::Dossier { .. })) => tally.dossiers += 1,
            Some(Ok(IndexItem::Warning(message))) => {
                tally.warnings += 1;
                tracing::warn!("{message}");
            }
            // Cancelled with Ctrl-C: what was indexed so far is out; summarize it.
            Some(Err(_)) if cancel.is_cancelled() => break,
            Some(Err(err)) => {
                let _ = out.flush();
                return Err(Stop::Core(err));
            }
        }
    }
    out.finish().map_err(Stop::Output)?;
    Ok(tally)
}

/// The one-line summary on stderr (not with `-q`).
fn summarize(tally: &Tally, cancel: &CancellationToken, quiet: bool) {
    if quiet {
        return;
    }
    let line = format!(
        "{}{} dossiers, {} files, {}{}\n",
        if cancel.is_cancelled() {
            "cancelled: indexed so far: "
        } else {
            ""
        },
        tally.dossiers,
        tally.files,
        human_bytes(tally.bytes),
        match tally.warnings {
            0 => String::new(),
            n => format!("; {n} warnings (see above)"),
        }
    );
    crate::logging::write_stderr(line.as_bytes()).ok();
}

/// stdout was closed (`dsfiles index | head`): stop quietly, like other Unix tools; any other
/// write error is a failure.
fn output_closed(err: std::io::Error, cancel: &CancellationToken) -> anyhow::Result<Exit> {
    cancel.cancel();
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        return Ok(Exit::Success);
    }
    Err(anyhow::Error::new(err).context("cannot write to stdout"))
}

#[cfg(test)]
mod tests;
