//! The command line of `dsfiles-sim`, resolved once into [`Settings`].
//!
//! **Rule:** every refusal names its flag and exits 2. Single values are checked by their
//! value parsers (clap then names the flag and exits 2 itself); checks that span flags build
//! a clap error the same way in [`Args::resolve`], so the two cannot be told apart by a caller.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use clap::CommandFactory as _;
use clap::error::ErrorKind;
use dsfiles_sim::{FaultPlan, SimConfig};

#[cfg(test)]
mod tests;

/// The largest dossier count served (the démarche lives in memory).
const MAX_DOSSIERS: u64 = 5_000_000;

/// Groupe numbers are `démarche × 10 + i` for `i` up to 9, and must fit a GraphQL `Int` too.
const MAX_DEMARCHE: u64 = (i32::MAX as u64 - 9) / 10;

/// The largest `--number-gap`.
const MAX_NUMBER_GAP: u64 = 10_000;

/// The first dossier number is below this; the last one must fit a GraphQL `Int`.
const FIRST_NUMBERS: u64 = 1_001_000;

/// The longest URL lifetime accepted: a year.
const MAX_URL_TTL_SECS: u64 = 366 * 24 * 3600;

/// Serves a seeded démarche of demarches-simplifiees.fr on loopback until SIGTERM or Ctrl-C.
///
/// Once listening, prints one JSON line on stdout:
/// `{"endpoint":…,"token":…,"demarche":…,"dossiers":…,"files":…,"bytes":…,"file_host":…}`.
/// Logs go to stderr.
#[derive(Debug, clap::Parser)]
#[command(name = "dsfiles-sim", version)]
pub struct Args {
    /// Number of live dossiers.
    #[arg(long, value_name = "N", default_value_t = 12,
          value_parser = clap::value_parser!(u64).range(0..=MAX_DOSSIERS))]
    pub dossiers: u64,

    /// Uploaded files per dossier, drawn in `A..B` (both included) or exactly `N`; attestation,
    /// motivation and generated files come on top.
    #[arg(long, value_name = "A..B", default_value = "1..5", value_parser = parse_files_per_dossier)]
    pub files_per_dossier: RangeInclusive<usize>,

    /// Largest size of an ordinary file, in bytes (sizes are drawn in 1..=BYTES).
    #[arg(long, value_name = "BYTES", default_value_t = 32 * 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_file_size: u64,

    /// Extra large file attached to the second dossier (repeatable), in bytes.
    #[arg(long = "big-file", value_name = "BYTES")]
    pub big_files: Vec<u64>,

    /// Seed of every generated value: same seed and flags, same démarche.
    #[arg(long, value_name = "N", default_value_t = 42)]
    pub seed: u64,

    /// The démarche number (`demarche(number:)`); it and its groupes must fit a GraphQL `Int`.
    #[arg(long, value_name = "N", default_value_t = 1234,
          value_parser = clap::value_parser!(u64).range(1..=MAX_DEMARCHE))]
    pub demarche: u64,

    /// Number of groupes instructeurs the dossiers are spread over.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=9))]
    pub groupes: u64,

    /// Number of already deleted dossiers (listed by `deletedDossiers`).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(0..=MAX_DOSSIERS))]
    pub deleted_dossiers: u64,

    /// Mean step between consecutive dossier numbers (steps drawn in 1..=2N-1). DS numbers
    /// dossiers across the whole platform, so a démarche's numbers are sparse: one that took
    /// 100,000 of the 4 million dossiers filed in its year has a gap of 40.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=MAX_NUMBER_GAP))]
    pub number_gap: u64,

    /// Percentage of files whose virus scan is still `pending` (each file drawn independently).
    #[arg(long, value_name = "PERCENT", default_value_t = 3,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub pending_scans: u8,

    /// Number of files whose API checksum is wrong over stable bytes (as in DS's legacy data).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub wrong_checksums: usize,

    /// Leave out the champ of hostile filenames (`../../x.pdf`, `CON`, ...) of the first dossier.
    #[arg(long)]
    pub no_hostile_filenames: bool,

    /// The only bearer token accepted (default: a random one, printed in the JSON line).
    #[arg(long, value_name = "TOKEN", value_parser = parse_token, conflicts_with = "any_token")]
    pub token: Option<String>,

    /// Accept any non-empty bearer token.
    #[arg(long)]
    pub any_token: bool,

    /// Address of the API host (GraphQL and signed-URL redirects).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// Address of the file host signed URLs redirect to (default: the `--listen` IP, port 0).
    #[arg(long, value_name = "ADDR")]
    pub file_host_listen: Option<SocketAddr>,

    /// Allow listening on an address other than loopback (the démarche is fake, but the
    /// `/__sim/*` endpoints let anyone who can connect change the faults).
    #[arg(long)]
    pub allow_non_loopback: bool,

    /// A fault plan (`{"rules":[…]}`, as `POST /__sim/faults` takes) active from the start.
    #[arg(long, value_name = "FILE.json", value_parser = parse_faults)]
    pub faults: Option<FaultPlan>,

    /// Lifetime of signed file URLs: seconds, or a number followed by `s`, `m` or `h`.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub url_ttl: Duration,

    /// More logs on stderr (`-vv` for debug); `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// What the binary runs with, every value checked.
#[derive(Debug)]
pub struct Settings {
    pub config: SimConfig,
    pub listen: SocketAddr,
    pub file_host_listen: SocketAddr,
}

impl Args {
    /// Checks what spans flags and builds the settings; `Err` is a usage error (exit 2).
    pub fn resolve(self) -> Result<Settings, clap::Error> {
        let file_host_listen = self
            .file_host_listen
            .unwrap_or(SocketAddr::new(self.listen.ip(), 0));
        check_addr("--listen", self.listen, self.allow_non_loopback)?;
        check_addr(
            "--file-host-listen",
            file_host_listen,
            self.allow_non_loopback,
        )?;
        let token = match (self.token, self.any_token) {
            (_, true) => None,
            (Some(token), false) => Some(token),
            (None, false) => Some(format!("sim-{}", uuid::Uuid::new_v4().simple())),
        };
        // Live dossiers, then deleted ones, each at most 2 × gap - 1 numbers after the last.
        let numbered = self.dossiers.saturating_add(self.deleted_dossiers);
        let highest = numbered.saturating_mul(2 * self.number_gap - 1);
        if FIRST_NUMBERS.saturating_add(highest) > i32::MAX as u64 {
            return Err(usage(format!(
                "`--number-gap {}` with {numbered} dossiers (live and deleted) would number \
                 dossiers past {}, the largest GraphQL `Int`",
                self.number_gap,
                i32::MAX
            )));
        }
        let config = SimConfig {
            seed: self.seed,
            demarche: self.demarche,
            dossiers: usize::try_from(self.dossiers).map_err(|_| too_large("--dossiers"))?,
            files_per_dossier: self.files_per_dossier,
            max_file_size: self.max_file_size,
            big_files: self.big_files,
            groupes: usize::try_from(self.groupes).map_err(|_| too_large("--groupes"))?,
            deleted_dossiers: usize::try_from(self.deleted_dossiers)
                .map_err(|_| too_large("--deleted-dossiers"))?,
            number_gap: self.number_gap,
            pending_scans: self.pending_scans,
            wrong_checksums: self.wrong_checksums,
            hostile_filenames: !self.no_hostile_filenames,
            token,
            url_ttl: self.url_ttl,
            faults: self.faults.unwrap_or_default(),
            ..SimConfig::default()
        };
        Ok(Settings {
            config,
            listen: self.listen,
            file_host_listen,
        })
    }
}

/// A usage error in clap's format (exit 2).
pub fn usage(message: impl std::fmt::Display) -> clap::Error {
    Args::command().error(ErrorKind::ValueValidation, message)
}

fn too_large(flag: &str) -> clap::Error {
    usage(format!("`{flag}` is too large for this machine"))
}

/// Signed URLs carry the bound address, so it must be one a client can connect to.
fn check_addr(flag: &str, addr: SocketAddr, allow_non_loopback: bool) -> Result<(), clap::Error> {
    if addr.ip().is_unspecified() {
        return Err(usage(format!(
            "`{flag}` `{addr}`: an unspecified address cannot be written into the signed URLs; \
             give the IP clients connect to"
        )));
    }
    if !addr.ip().is_loopback() && !allow_non_loopback {
        return Err(usage(format!(
            "`{flag}` `{addr}` is not a loopback address; add `--allow-non-loopback` to serve on it"
        )));
    }
    Ok(())
}

/// `A..B` or `A..=B` (both included) or `N`, with `A <= B`.
pub fn parse_files_per_dossier(text: &str) -> Result<RangeInclusive<usize>, String> {
    let number = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|e| format!("`{s}` is not a file count: {e}"))
    };
    let (low, high) = match text.split_once("..") {
        Some((low, high)) => (
            number(low)?,
            number(high.strip_prefix('=').unwrap_or(high))?,
        ),
        None => {
            let n = number(text)?;
            (n, n)
        }
    };
    if low > high {
        return Err(format!(
            "the range `{text}` is reversed (write `{high}..{low}`)"
        ));
    }
    if high > 10_000 {
        return Err(format!(
            "`{high}` files per dossier is more than the 10000 served"
        ));
    }
    Ok(low..=high)
}

fn parse_token(text: &str) -> Result<String, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a token is non-empty printable ASCII without spaces".to_owned());
    }
    Ok(text.to_owned())
}

fn parse_faults(path: &str) -> Result<FaultPlan, String> {
    let path = PathBuf::from(path);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("`{}` is not a fault plan: {e}", path.display()))
}

/// Seconds, or a number followed by `s`, `m` or `h`; from a second to a year.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => {
            return Err(format!(
                "`{text}`: write seconds, or a number followed by s, m or h"
            ));
        }
    };
    let secs = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| (1..=MAX_URL_TTL_SECS).contains(&n))
        .ok_or_else(|| format!("`{text}` is not a duration between 1s and a year"))?;
    Ok(Duration::from_secs(secs))
}
