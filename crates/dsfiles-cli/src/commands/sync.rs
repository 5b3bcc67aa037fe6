//! `dsfiles sync`: every file of a démarche into a destination, verified and incrementally.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use dsfiles_core::extract::{DataLayout, Layout};
use dsfiles_core::{AllowedHost, DataOutput, Since, SyncOptions, SyncReport, ds, sink};

use crate::cli::GlobalArgs;
use crate::env_vars;
use crate::exit::{Exit, UsageError};
use crate::progress::Progress;
use crate::settings::{self, DsArgs, Filters};

use super::summary;

/// Default of `--download-read-timeout`; a unit test checks it is the core's own default.
const DEFAULT_DOWNLOAD_READ_TIMEOUT_SECS: u64 = 60;
/// Defaults of `--download-deadline-base` and `--download-min-rate`: the core's (unit test).
const DEFAULT_DEADLINE_BASE_SECS: u64 = 30;
const DEFAULT_MIN_RATE_KIB: u64 = 64;

/// `--allow-file-host`: the error names the entry (clap exits 2).
pub fn parse_allowed_host(s: &str) -> Result<AllowedHost, String> {
    s.parse()
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Progress: bars on a terminal, a plain line every 5 seconds otherwise, nothing with --quiet.
The summary (stderr) names what was stored, skipped as unchanged, flagged and failed (each with
its reason), with bytes, duration and MB/s; --summary-json FILE writes the full report.
Exit codes: 0 every file stored and verified (flagged files allowed unless --strict); 1 files
failed after retries (listed); 2 usage or configuration; 3 authentication or access refused;
4 DS API or network failure; 5 destination busy (another live writer holds the démarche's lease
on DEST, named in the message; --break-lease if it is gone); 130 cancelled by Ctrl-C or SIGTERM:
files already stored are kept, nothing partial is left, and a re-run finishes the work.
See docs/cli.md.")]
pub struct SyncArgs {
    /// The démarche number.
    #[arg(long, value_name = "N")]
    pub demarche: u64,

    /// Destination: a local path, file:///path, s3://bucket/prefix, gs://bucket/prefix or
    /// az://container/prefix. Credentials come from the standard cloud variables (`AWS_*`,
    /// `GOOGLE_*`, `AZURE_STORAGE_*`) and are checked before the first request; to use the
    /// cloud instance's own role (EC2 instance profile, GCE service account, Azure managed
    /// identity), set `DSFILES_CREDENTIALS=instance` or `--dest-option credentials=instance`.
    /// See docs/storage.md.
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

    /// Seconds a file download may wait for its next bytes before the attempt is abandoned and
    /// retried (resuming with an HTTP Range request where the file host allows it). Separate
    /// from `--read-timeout`, which covers DS computing a page of dossiers; `--connect-timeout`
    /// applies to both.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_DOWNLOAD_READ_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub download_read_timeout: u64,

    /// A file host downloads may reach although it is on a loopback, private, link-local or
    /// otherwise internal address (repeatable; comma-separated in the environment): HOST for
    /// every port, HOST:PORT for one (IPv6 in brackets). Other such addresses are refused before
    /// any connection, redirects included; the DS endpoint's own host and port are always
    /// allowed. See docs/storage.md, "File hosts and proxies".
    #[arg(long = "allow-file-host", value_name = "HOST[:PORT]",
          env = env_vars::DSFILES_ALLOW_FILE_HOSTS, value_delimiter = ',',
          value_parser = parse_allowed_host)]
    pub allow_file_hosts: Vec<AllowedHost>,

    /// Seconds every download attempt gets before its size counts: an attempt at a file of
    /// SIZE bytes fails (and is retried) after this plus SIZE / --download-min-rate.
    #[arg(long, value_name = "SECONDS", env = env_vars::DSFILES_DOWNLOAD_DEADLINE_BASE,
          default_value_t = DEFAULT_DEADLINE_BASE_SECS)]
    pub download_deadline_base: u64,

    /// The slowest download tolerated, in KiB/s (see --download-deadline-base); 0: no deadline
    /// (--download-read-timeout still applies).
    #[arg(long, value_name = "KIB_PER_SEC", env = env_vars::DSFILES_DOWNLOAD_MIN_RATE,
          default_value_t = DEFAULT_MIN_RATE_KIB)]
    pub download_min_rate: u64,

    /// Where each file goes under DEST. Placeholders: {demarche} {dossier} {state} {source}
    /// {champ_id} {label} {row} {filename} {stem} {ext} {checksum} {sha256}, and the dossier's
    /// {deposited} {updated} {processed} (`:%Y-%m` formats, Paris time) {demarche_title}
    /// {service} {groupe} {civilite} {nom} {prenom} {siren} {siret} {raison_sociale} {tva}
    /// {adresse} {demandeur} {champ:LABEL} {annotation:LABEL} (docs/cli.md, "Naming your
    /// files"); every path component is sanitized.
    /// `ds-export` instead of a template: the names of DS's own ZIP export.
    /// Default: the layout DEST was last synced with (recorded in DEST), else
    /// `{dossier}/{source}/{label}/{filename}`. A layout given is recorded for the next runs.
    #[arg(long, value_name = "TEMPLATE")]
    pub layout: Option<String>,

    /// Where each dossier's dossier.json goes under DEST (what DS knows about the dossier and
    /// the list of its stored files; docs/storage.md). It must contain {dossier} and may use
    /// {demarche} {dossier} {state}. Default: what DEST was last synced with (this, --no-data
    /// or --data), else as --data.
    #[arg(long, value_name = "TEMPLATE", conflicts_with = "no_data")]
    pub data_layout: Option<String>,

    /// Write no dossier.json (recorded in DEST for the next runs, like --data-layout).
    #[arg(long)]
    pub no_data: bool,

    /// Write dossier.json next to the files: in the directory of --layout that holds
    /// {dossier} (`{dossier}/dossier.json` with the default layout). Undoes a --no-data or
    /// --data-layout DEST was synced with.
    #[arg(long, conflicts_with_all = ["no_data", "data_layout"])]
    pub data: bool,

    /// When a dossier value of --layout changed (a groupe, a champ), files move to their new
    /// key; this leaves the old objects in place (no longer in the manifest).
    #[arg(long)]
    pub keep_moved: bool,

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

    /// Destination option KEY=VALUE (repeatable). dsfiles' own keys: `part_size` (default
    /// 8MiB: larger objects are multipart uploads in parts of this size), `parts_in_flight`
    /// (default 2), `fsync` and `direct_io` (local disk, default true), `credentials=instance` (same as
    /// `DSFILES_CREDENTIALS=instance`). Any other key goes to object_store for the bucket's
    /// backend, with or without its `aws_`/`google_`/`azure_` prefix (`region`,
    /// `endpoint=http://127.0.0.1:9000`, `allow_http=true`, ...); an unknown key is an error.
    /// See docs/storage.md.
    #[arg(long = "dest-option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub dest_options: Vec<(String, String)>,

    /// Also write the final report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,

    /// Take over the démarche's lease on DEST even though its holder (named when the sync is
    /// refused with exit 5) looks alive: only when you know that process is gone (a lost
    /// machine). Without it a stale lease is taken over once it expired, about two minutes
    /// after its holder stopped renewing it, and the lease of a process of this machine that no
    /// longer exists (a killed run) at once. See docs/storage.md, "Destination lease".
    #[arg(long)]
    pub break_lease: bool,

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

    /// `--data-layout`, `--no-data` and `--data` (clap refuses two of them); none: `None`,
    /// what DEST was synced with. A bad template is a usage error.
    fn data_output(&self) -> anyhow::Result<Option<DataOutput>> {
        Ok(match (&self.data_layout, self.no_data, self.data) {
            (_, true, _) => Some(DataOutput::Off),
            (None, false, true) => Some(DataOutput::FollowLayout),
            (None, false, false) => None,
            (Some(template), false, _) => Some(DataOutput::At(
                DataLayout::parse(template)
                    .map_err(|e| UsageError::new(format!("invalid `--data-layout`: {e}")))?,
            )),
        })
    }

    /// The core's options; the layout is checked here so a bad template is a usage error.
    fn options(&self) -> anyhow::Result<SyncOptions> {
        let layout = (self.layout.as_deref().map(Layout::parse).transpose())
            .map_err(|e| UsageError::new(format!("invalid `--layout`: {e}")))?;
        let mut opts = SyncOptions::new(self.demarche);
        opts.data = self.data_output()?;
        opts.filter = self.filters.dossier_filter(None);
        opts.since = self.since();
        opts.jobs = usize::try_from(self.jobs).unwrap_or(usize::MAX);
        opts.retries = self.retries;
        opts.layout = layout;
        opts.allow_unscanned = self.allow_unscanned;
        opts.prune = self.prune;
        opts.lease.break_lease = self.break_lease;
        opts.keep_moved = self.keep_moved;
        opts.fetch.connect_timeout = Duration::from_secs(self.ds.connect_timeout);
        opts.fetch.read_timeout = Duration::from_secs(self.download_read_timeout);
        opts.fetch.api_endpoint = Some(self.ds.endpoint.clone());
        opts.fetch.allow_file_hosts = self.allow_file_hosts.clone();
        opts.fetch.deadline_base = Duration::from_secs(self.download_deadline_base);
        opts.fetch.min_rate = self.download_min_rate.saturating_mul(1024);
        Ok(opts)
    }
}

pub async fn run(args: SyncArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let opts = args.options()?;
    let config = settings::client_config(&args.ds)?;
    let client = ds::Client::new(config).context("cannot set up the DS API client")?;
    let sink = sink::open(&args.dest, &args.dest_options)?;
    let report = sync_with(client, sink, opts, global).await?;
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
    global: &GlobalArgs,
) -> anyhow::Result<SyncReport> {
    let dest = sink.describe();
    let demarche = opts.demarche;
    let cancel = CancellationToken::new();
    let _ctrl_c = crate::signals::cancel_on_ctrl_c(cancel.clone(), global.quiet);
    let progress = Progress::start("sync", global.quiet, global.progress_interval);
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
        summary::write_json(path, report)?;
    }
    summary::print_sync(report, quiet);
    Ok(Exit::from_sync_report(report, strict))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Harness {
        #[command(flatten)]
        sync: SyncArgs,
    }

    fn options(extra: &[&str]) -> SyncOptions {
        let args = ["dsfiles", "--demarche", "7", "--dest", "d"];
        let harness = Harness::try_parse_from(args.iter().chain(extra)).unwrap();
        harness.sync.options().unwrap()
    }

    #[test]
    fn download_timeouts_default_to_the_cores_and_follow_the_flags() {
        let core = dsfiles_core::FetchOptions::default();
        let opts = options(&[]);
        assert_eq!(opts.fetch.read_timeout, core.read_timeout);
        assert_eq!(opts.fetch.connect_timeout, core.connect_timeout);

        let opts = options(&["--connect-timeout", "3", "--download-read-timeout", "7"]);
        assert_eq!(opts.fetch.connect_timeout, Duration::from_secs(3));
        assert_eq!(opts.fetch.read_timeout, Duration::from_secs(7));
        // `--read-timeout` is the API's: downloads keep their own.
        let opts = options(&["--read-timeout", "300"]);
        assert_eq!(opts.fetch.read_timeout, core.read_timeout);
    }

    #[test]
    fn download_policy_defaults_to_the_cores_and_follows_the_flags() {
        let core = dsfiles_core::FetchOptions::default();
        let opts = options(&[]);
        assert_eq!(opts.fetch.deadline_base, core.deadline_base);
        assert_eq!(opts.fetch.min_rate, core.min_rate);
        assert!(opts.fetch.allow_file_hosts.is_empty());
        let endpoint = opts.fetch.api_endpoint.map(|u| u.to_string());
        assert_eq!(endpoint.as_deref(), Some(ds::DEFAULT_ENDPOINT));

        let opts = options(&[
            "--allow-file-host",
            "minio.local:9000,10.0.0.5",
            "--allow-file-host",
            "[::1]:8080",
            "--download-deadline-base",
            "5",
            "--download-min-rate",
            "1",
        ]);
        let hosts: Vec<String> = opts
            .fetch
            .allow_file_hosts
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(hosts, ["minio.local:9000", "10.0.0.5", "[::1]:8080"]);
        assert_eq!(opts.fetch.deadline_base, Duration::from_secs(5));
        assert_eq!(opts.fetch.min_rate, 1024);

        let args = [
            "dsfiles",
            "--demarche",
            "7",
            "--dest",
            "d",
            "--allow-file-host",
        ];
        let err = Harness::try_parse_from(args.iter().chain(&["http://h/"])).unwrap_err();
        assert!(err.to_string().contains("`http://h/`"), "{err}");
    }

    #[test]
    fn layout_and_dossier_json_are_left_to_the_destination_unless_given() {
        let opts = options(&[]);
        assert_eq!((opts.layout, opts.data), (None, None));
        let layout = options(&["--layout", "{demarche}/{dossier}/{filename}"]).layout;
        assert_eq!(
            layout.as_ref().map(Layout::template),
            Some("{demarche}/{dossier}/{filename}")
        );
        let data = |extra: &[&str]| options(extra).data;
        let custom = ["--data-layout", "data/{dossier}.json"];
        let at = DataLayout::parse("data/{dossier}.json").unwrap();
        assert_eq!(data(&custom), Some(DataOutput::At(at)));
        assert_eq!(data(&["--no-data"]), Some(DataOutput::Off));
        assert_eq!(data(&["--data"]), Some(DataOutput::FollowLayout));

        let args = ["dsfiles", "--demarche", "7", "--dest", "d", "--data-layout"];
        let harness = Harness::try_parse_from(args.iter().chain(&["{demarche}.json"])).unwrap();
        let err = harness.sync.options().unwrap_err();
        assert!(
            err.to_string().contains("must contain `{dossier}`"),
            "{err}"
        );
        for conflict in [&["--no-data"][..], &["--data"], &["--data", "--no-data"]] {
            let args = args.iter().chain(&["{dossier}.json"]).chain(conflict);
            assert!(Harness::try_parse_from(args).is_err(), "{conflict:?}");
        }
        let args = [
            "dsfiles",
            "--demarche",
            "7",
            "--dest",
            "d",
            "--data",
            "--no-data",
        ];
        assert!(Harness::try_parse_from(args).is_err());
        let args = [
            "dsfiles",
            "--demarche",
            "7",
            "--dest",
            "d",
            "--layout",
            "{nope}",
        ];
        let harness = Harness::try_parse_from(args).unwrap();
        let err = harness.sync.options().unwrap_err();
        assert!(err.to_string().contains("invalid `--layout`"), "{err}");
    }

    #[test]
    fn full_and_since_map_to_the_cores_since() {
        assert_eq!(options(&[]).since, Since::Auto);
        assert_eq!(options(&["--full"]).since, Since::Full);
        assert_eq!(options(&["--since", "full"]).since, Since::Full);
        let at = settings::parse_date("2024-03-01").unwrap();
        assert_eq!(options(&["--since", "2024-03-01"]).since, Since::At(at));
    }
}
