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
    let mut stream = std::pin::pin!(stream);

    let stdout = std::io::stdout();
    let mut out = format::Writer::new(args.format, std::io::BufWriter::new(stdout.lock()));
    let interactive = std::io::stdout().is_terminal();
    let mut tally = Tally::default();
    loop {
        // Flush whatever is buffered before waiting for DS: records appear page by page.
        let item = match stream.next().now_or_never() {
            Some(item) => item,
            None => {
                if let Err(err) = out.flush() {
                    return output_closed(err, &cancel);
                }
                stream.next().await
            }
        };
        let Some(item) = item else { break };
        match item {
            Ok(ListItem::Record(record)) => {
                tally.files += 1;
                tally.bytes += record.byte_size;
                if let Err(err) = write_record(&mut out, &record, interactive) {
                    return output_closed(err, &cancel);
                }
            }
            Ok(ListItem::Dossier { .. }) => tally.dossiers += 1,
            Ok(ListItem::Warning(message)) => {
                tally.warnings += 1;
                tracing::warn!("{message}");
            }
            // Cancelled with Ctrl-C: what was listed so far is out; summarize it.
            Err(_) if cancel.is_cancelled() => break,
            Err(err) => {
                let _ = out.flush();
                return Err(anyhow::Error::new(err)
                    .context(format!("cannot list démarche `{}`", args.demarche)));
            }
        }
    }
    if let Err(err) = out.finish() {
        return output_closed(err, &cancel);
    }
    let stats = client.stats();
    if !global.quiet {
        let line = format!(
            "{}{} dossiers, {} files, {}; {} API calls, {} retries{}\n",
            if cancel.is_cancelled() {
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
        );
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
