//! `dsfiles list`: one record per file, streamed to stdout as DS's pages arrive.

use std::io::{IsTerminal as _, Write};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures::{FutureExt as _, StreamExt as _};
use tokio_util::sync::CancellationToken;

use dsfiles_core::ds;
use dsfiles_core::extract::FileRecord;
use dsfiles_core::{ListItem, ListOptions};

use crate::cli::GlobalArgs;
use crate::exit::Exit;
use crate::progress::human_bytes;
use crate::settings::{self, DsArgs, Filters};

pub mod format;

pub use format::Format;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Records go to stdout (fields: docs/cli.md); a summary goes to stderr: dossiers, files, total
bytes, API calls and retries. Exit codes: 0 ok; 2 usage or configuration; 3 authentication or
access refused; 4 DS API or network failure, or dossiers DS could not return (each one is
warned about: the listing is incomplete); 130 cancelled by Ctrl-C or SIGTERM.")]
pub struct ListArgs {
    /// The démarche number.
    #[arg(long, value_name = "N")]
    pub demarche: u64,

    /// Output format: JSON Lines (one object per file, snake_case keys), CSV with a header, or
    /// an aligned table for humans.
    #[arg(long, value_name = "FORMAT", default_value = "jsonl")]
    pub format: Format,

    /// Only dossiers updated at or after DATE (RFC 3339, or YYYY-MM-DD meaning midnight UTC).
    #[arg(long, value_name = "DATE", value_parser = settings::parse_date)]
    pub since: Option<DateTime<Utc>>,

    #[command(flatten)]
    pub filters: Filters,

    #[command(flatten)]
    pub ds: DsArgs,
}

/// What `list` counted, for the summary on stderr.
#[derive(Debug, Default)]
struct Tally {
    dossiers: u64,
    files: u64,
    bytes: u64,
    warnings: u64,
}

pub async fn run(args: ListArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let config = settings::client_config(&args.ds)?;
    let client = ds::Client::new(config).context("cannot set up the DS API client")?;
    let opts = ListOptions {
        demarche: args.demarche,
        filter: args.filters.dossier_filter(args.since),
        include: args.filters.include(),
    };
    let cancel = CancellationToken::new();
    let _ctrl_c = crate::signals::cancel_on_ctrl_c(cancel.clone(), global.quiet);
    let stream = dsfiles_core::list(client.clone(), opts, cancel.clone());

    let stdout = std::io::stdout();
    let mut out = format::Writer::new(args.format, std::io::BufWriter::new(stdout.lock()));
    let mut tally = Tally::default();
    let written = write_all(stream, &mut out, &mut tally, &cancel).await;
    let written = written.and_then(|()| out.finish().map_err(Stop::Output));
    match written {
        Ok(()) => {}
        Err(Stop::Output(err)) => return output_closed(err, &cancel),
        Err(Stop::Listing(err)) => {
            return Err(anyhow::Error::new(err)
                .context(format!("cannot list démarche `{}`", args.demarche)));
        }
    }
    if !global.quiet {
        let line = summary_line(&tally, &client.stats(), cancel.is_cancelled());
        crate::logging::write_stderr(line.as_bytes()).ok();
    }
    if cancel.is_cancelled() {
        return Ok(Exit::Cancelled);
    }
    if tally.warnings > 0 {
        tracing::error!(
            "DS could not return everything: {} warnings above; the listing is incomplete",
            tally.warnings
        );
        return Ok(Exit::Api);
    }
    Ok(Exit::Success)
}

/// Why [`write_all`] stopped before the end of the listing.
enum Stop {
    /// Writing to stdout failed (a closed pipe among others).
    Output(std::io::Error),
    /// DS's listing failed.
    Listing(dsfiles_core::Error),
}

impl From<std::io::Error> for Stop {
    fn from(err: std::io::Error) -> Stop {
        Stop::Output(err)
    }
}

/// Writes every record of `stream` to `out`, counting in `tally`, until the listing ends or
/// Ctrl-C cancels it (what was listed so far is out). Records appear page by page: whatever
/// is buffered is flushed before waiting for DS, and after each record on a terminal.
async fn write_all(
    stream: impl futures::Stream<Item = Result<ListItem, dsfiles_core::Error>>,
    out: &mut format::Writer<impl Write, FileRecord>,
    tally: &mut Tally,
    cancel: &CancellationToken,
) -> Result<(), Stop> {
    let mut stream = std::pin::pin!(stream);
    let interactive = std::io::stdout().is_terminal();
    loop {
        let item = match stream.next().now_or_never() {
            Some(item) => item,
            None => {
                out.flush()?;
                stream.next().await
            }
        };
        match item {
            None => return Ok(()),
            Some(Ok(ListItem::Record(record))) => {
                tally.files += 1;
                tally.bytes += record.byte_size;
                write_record(out, &record, interactive)?;
            }
            Some(Ok(ListItem::Dossier { .. })) => tally.dossiers += 1,
            Some(Ok(ListItem::Warning(message))) => {
                tally.warnings += 1;
                tracing::warn!("{message}");
            }
            Some(Err(_)) if cancel.is_cancelled() => return Ok(()),
            Some(Err(err)) => {
                let _ = out.flush();
                return Err(Stop::Listing(err));
            }
        }
    }
}

/// The summary on stderr: what was listed (so far, if `cancelled`), and what it cost.
fn summary_line(tally: &Tally, stats: &ds::Stats, cancelled: bool) -> String {
    format!(
        "{}{} dossiers, {} files, {}; {} API calls, {} retries{}\n",
        if cancelled {
            "cancelled: listed so far: "
        } else {
            ""
        },
        tally.dossiers,
        tally.files,
        human_bytes(tally.bytes),
        stats.api_calls,
        stats.retries,
        match tally.warnings {
            0 => String::new(),
            n => format!("; {n} warnings (see above)"),
        }
    )
}

fn write_record(
    out: &mut format::Writer<impl Write, FileRecord>,
    record: &FileRecord,
    interactive: bool,
) -> std::io::Result<()> {
    out.record(record)?;
    if interactive {
        out.flush()?;
    }
    Ok(())
}

/// stdout was closed (`dsfiles list | head`): stop quietly, like other Unix tools; any other
/// write error is a failure.
fn output_closed(err: std::io::Error, cancel: &CancellationToken) -> anyhow::Result<Exit> {
    cancel.cancel();
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        return Ok(Exit::Success);
    }
    Err(anyhow::Error::new(err).context("cannot write to stdout"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_what_was_listed_what_it_cost_and_whether_it_is_all() {
        let stats = ds::Stats {
            api_calls: 7,
            retries: 1,
            ..ds::Stats::default()
        };
        let tally = |warnings| Tally {
            dossiers: 3,
            files: 12,
            bytes: 2048,
            warnings,
        };
        let table = [
            (
                0,
                false,
                "3 dossiers, 12 files, 2.0 KiB; 7 API calls, 1 retries\n",
            ),
            (
                0,
                true,
                "cancelled: listed so far: 3 dossiers, 12 files, 2.0 KiB; 7 API calls, 1 retries\n",
            ),
            (
                2,
                false,
                "3 dossiers, 12 files, 2.0 KiB; 7 API calls, 1 retries; 2 warnings (see above)\n",
            ),
        ];
        for (warnings, cancelled, expected) in table {
            assert_eq!(summary_line(&tally(warnings), &stats, cancelled), expected);
        }
    }
}
