//! The command line: `dsfiles [-v|-q] <list|sync|verify|index|seda|demo|serve|healthcheck|completions|man>`.

use std::time::Duration;

use crate::commands::serve;
use crate::commands::{completions, demo, healthcheck, index, list, man, seda, sync, verify};

/// The end of `dsfiles --help`: where to start, the environment, the exit codes.
const AFTER_HELP: &str = "\
Start with `dsfiles demo` (offline, no token), then:
  DS_API_TOKEN=... dsfiles sync --demarche N --dest ./archive

Environment:
  DS_API_TOKEN         the DS API token (or --token-file PATH); never printed or logged
  DS_API_URL           the DS GraphQL endpoint (--endpoint)
  RUST_LOG             log filter, overrides -v and -q (e.g. dsfiles_core=debug)
  NO_COLOR             no colours in logs
  HTTPS_PROXY, NO_PROXY  proxy for the DS API and file downloads
  AWS_*, GOOGLE_*, AZURE_STORAGE_*  storage credentials (docs/storage.md)
  DSFILES_CREDENTIALS  `instance`: use the cloud instance's own role for storage

Exit codes:
  0    every file listed, or stored and verified
  1    some files failed after retries (listed), `verify` found missing or corrupt files,
       `index` could not read some manifest shards, or `seda` could not package a dossier
  2    usage or configuration error
  3    authentication or access refused (token, démarche)
  4    DS API or network failure after retries, or dossiers DS could not return
  130  cancelled (Ctrl-C or SIGTERM); a re-run completes the work

Full documentation: docs/cli.md, docs/storage.md, docs/http-api.md.";

/// Get every file of a démarche on demarches-simplifiees.fr into storage you control:
/// complete, verified against DS's MD5, and kept in sync incrementally.
#[derive(Debug, clap::Parser)]
#[command(
    name = "dsfiles",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand accepts.
#[derive(Debug, Clone, Copy, clap::Args)]
#[command(next_help_heading = "Output")]
pub struct GlobalArgs {
    /// More logs on stderr: -v info, -vv debug, -vvv trace (`RUST_LOG` overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr: no progress, warnings or summary, but failed files and DS errors
    /// are still listed (`RUST_LOG` overrides).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Seconds between two plain progress lines when stderr is not a terminal (decimals
    /// allowed). Hidden: for tests and unusual log collectors.
    #[arg(long, value_name = "SECONDS", global = true, hide = true,
          default_value = "5", value_parser = parse_interval)]
    pub progress_interval: Duration,
}

/// A positive number of seconds, decimals allowed (`0.05`), at most a day.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("`{s}` is not between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print one record per file of a démarche (JSON Lines, CSV or a table), as pages arrive.
    List(list::ListArgs),
    /// Download every file of a démarche to a destination, verified and incrementally.
    Sync(sync::SyncArgs),
    /// Re-hash the files stored at a destination against its manifest (exit 1 if any is
    /// missing or corrupt).
    Verify(verify::VerifyArgs),
    /// Print one record per stored file from the destination's own manifest (JSON Lines, CSV
    /// or a table): no DS call, no token.
    Index(index::IndexArgs),
    /// Write SEDA 2.2 archival packages (zip + manifest.xml) of the terminated dossiers a sync
    /// stored, for Vitam, As@lae or Pastell: no DS call, no token.
    Seda(seda::SedaArgs),
    /// Sync the sample démarche of the embedded DS simulator: offline, no token.
    Demo(demo::DemoArgs),
    /// Run the HTTP service (start, watch and cancel syncs; webhooks; metrics).
    Serve(serve::ServeArgs),
    /// Check that a running `dsfiles serve` answers (exit 0 on 2xx): the container HEALTHCHECK.
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Print the completion script of a shell (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the man page `dsfiles.1`, or write every page into a directory (`--out`).
    Man(man::ManArgs),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn verbosity_and_quiet_are_global_and_exclusive() {
        let parse = |args: &[&str]| <Cli as clap::Parser>::try_parse_from(args);
        let cli = parse(&["dsfiles", "verify", "--dest", "d", "-vv"]).unwrap();
        assert_eq!(cli.global.verbose, 2);
        let cli = parse(&["dsfiles", "-q", "verify", "--dest", "d"]).unwrap();
        assert!(cli.global.quiet);
        assert!(parse(&["dsfiles", "verify", "--dest", "d", "-v", "-q"]).is_err());
    }

    /// The environment listed in `dsfiles --help` is the one the binary and the sinks read.
    #[test]
    fn top_level_help_names_every_environment_variable() {
        for var in [
            crate::env_vars::DS_API_TOKEN,
            crate::env_vars::DS_API_URL,
            crate::env_vars::RUST_LOG,
            crate::env_vars::NO_COLOR,
            dsfiles_core::sink::DSFILES_CREDENTIALS_ENV,
        ] {
            assert!(AFTER_HELP.contains(&format!("  {var} ")), "{var}");
        }
        for code in [0, 1, 2, 3, 4, 130] {
            assert!(
                AFTER_HELP.contains(&format!("\n  {code} ")),
                "exit code {code}"
            );
        }
    }

    #[test]
    fn progress_interval_is_hidden_positive_seconds() {
        let parse = |args: &[&str]| <Cli as clap::Parser>::try_parse_from(args);
        let cli = parse(&["dsfiles", "verify", "--dest", "d"]).unwrap();
        assert_eq!(cli.global.progress_interval, Duration::from_secs(5));
        let cli = parse(&[
            "dsfiles",
            "verify",
            "--dest",
            "d",
            "--progress-interval",
            "0.05",
        ]);
        assert_eq!(
            cli.unwrap().global.progress_interval,
            Duration::from_millis(50)
        );
        for bad in ["0", "-1", "x", "NaN", "1e9"] {
            let args = [
                "dsfiles",
                "verify",
                "--dest",
                "d",
                "--progress-interval",
                bad,
            ];
            assert!(parse(&args).is_err(), "{bad}");
        }
        let help = Cli::command().render_long_help().to_string();
        assert!(!help.contains("progress-interval"), "{help}");
    }
}
