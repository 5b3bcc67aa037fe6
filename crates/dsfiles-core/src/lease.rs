//! The destination lease: at most one writer syncs a démarche into a destination at a time,
//! whoever they are (two `dsfiles sync`, a cron'd CLI and the service, two replicas), and at
//! most one `dsfiles seda` writes packages into an OUT at a time.
//!
//! The lease is a small JSON object in the destination itself, [`wire::Lease`] at the key of
//! its [`LeaseScope`]: a sync's at [`wire::lease_key`] (`.dsfiles/demarches/{demarche}/lease`),
//! one per démarche, since two démarches may share a destination at once; a `seda` run's at
//! [`wire::SEDA_LEASE_KEY`] (`.dsfiles/seda/lease`), one per OUT, since a run packages every
//! dossier of DEST whatever its démarche. The two never exclude each other: a `seda` whose
//! OUT is also a sync's destination writes only zips and `.dsfiles/seda/`, which no sync
//! touches. Rules, decided by the pure [`decide`]:
//!
//! - no lease: **take** it (create-if-absent, `Precondition::Absent`);
//! - a lease with this run's token: **renew** it;
//! - a lease whose `expires_at` is more than [`CLOCK_TOLERANCE`] in the past: its holder is
//!   gone (it renews every [`RENEW_EVERY`] while alive): **take it over**, logged with whose;
//! - a live lease whose holder is a process of this machine that no longer exists (killed
//!   with `-9`, the machine's own knowledge, see [`process`]): **take it over** at once, so a
//!   rerun after a crash does not wait for the TTL;
//! - a live lease of another run: **busy**, [`crate::Error::DestinationBusy`] naming the
//!   holder and since when, unless `break_lease` is set: then it is taken over and the log
//!   says whose lease was broken.
//!
//! Every write of the lease is conditional ([`Sink::put_if`] on the version read), so of two
//! writers that read the same state only one succeeds; the other reads again and decides
//! again. The tolerance covers clocks that differ between machines: a lease is never taken
//! over before `expires_at + 15 s` by anyone's clock.
//!
//! While a sync (or a `seda` run) writes, its lease is renewed every [`RENEW_EVERY`] (TTL [`LEASE_TTL`]) by a
//! future the run owns (polled next to the run, dropped at its end: no detached task). If a
//! renewal finds the lease taken by another writer, or no renewal succeeded for
//! [`GIVE_UP_AFTER`] (less than the TTL minus the tolerance, so the run stops before anyone
//! may take over), the run is **fenced**: its sink is a [`FencedSink`] whose writes fail with
//! `Fenced` from then on, the run is cancelled, and its report says `lease_lost`. Manifest
//! shards are written with `put_small` after their files, so a fenced run leaves them as they
//! were or as it last wrote them whole, never half. At the end of the run the lease is
//! released ([`Sink::delete_if`] on the version last written).

mod fenced;
mod held;
pub mod process;
mod run;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::sink::Sink;
use crate::wire::{self, Holder, Lease};

pub use fenced::{Fence, FencedSink};
use held::{acquire, keep};
pub use held::{check, check_scope};
pub(crate) use run::under_lease;

/// How long a lease stays live after its last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(120);
/// How often a running sync renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(30);
/// A run that could not renew its lease for this long stops writing.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(90);
/// How far clocks of two writers may disagree: a lease is stale only this long after its
/// `expires_at`.
pub const CLOCK_TOLERANCE: Duration = Duration::from_secs(15);

/// What a lease guards, which decides its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseScope {
    /// A sync of this démarche into the destination.
    Sync { demarche: u64 },
    /// `dsfiles seda` writing packages into this OUT.
    Seda,
}

impl LeaseScope {
    /// The lease's key in the destination.
    pub fn key(self) -> String {
        match self {
            LeaseScope::Sync { demarche } => wire::lease_key(demarche),
            LeaseScope::Seda => wire::SEDA_LEASE_KEY.to_owned(),
        }
    }
}

/// What the holder has been doing, as the refusal says it ("… has been {scope} since …").
impl std::fmt::Display for LeaseScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseScope::Sync { demarche } => write!(f, "syncing démarche {demarche} into it"),
            LeaseScope::Seda => f.write_str("writing SEDA packages into it"),
        }
    }
}

/// How a sync takes its destination lease ([`crate::SyncOptions::lease`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseOptions {
    /// Who this run says it is, in the lease and in the refusal other writers get.
    pub holder: Holder,
    /// Take the lease over even from a live holder (whose process is known to be gone).
    pub break_lease: bool,
    pub timing: LeaseTiming,
}

impl Default for LeaseOptions {
    fn default() -> LeaseOptions {
        LeaseOptions {
            holder: this_process(None, concat!("dsfiles ", env!("CARGO_PKG_VERSION"))),
            break_lease: false,
            timing: LeaseTiming::default(),
        }
    }
}

/// The lease's clock: [`LEASE_TTL`], [`RENEW_EVERY`] and [`GIVE_UP_AFTER`] by default;
/// tests shorten them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    pub ttl: Duration,
    pub renew_every: Duration,
    pub give_up_after: Duration,
}

impl Default for LeaseTiming {
    fn default() -> LeaseTiming {
        LeaseTiming {
            ttl: LEASE_TTL,
            renew_every: RENEW_EVERY,
            give_up_after: GIVE_UP_AFTER,
        }
    }
}

/// This process as a lease holder: the host name, the pid, the replica id if any and `tool`.
pub fn this_process(replica: Option<String>, tool: &str) -> Holder {
    Holder {
        host: host_name(),
        pid: std::process::id(),
        replica,
        tool: tool.to_owned(),
        process: process::this_process(),
    }
}

/// The kernel's host name (Linux), else `unknown-host`: a label for operators, not an identity.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| {
            let name = std::fs::read_to_string(path).ok()?;
            let name = name.trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// What a writer does about the lease it found (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// There is no lease: create it.
    Take,
    /// Replace another run's lease.
    TakeOver { holder: Holder, why: TakeOverReason },
    /// The lease is this run's own: renew it.
    Renew,
    /// Another run holds a live lease.
    Busy {
        holder: Holder,
        since: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
}

/// Why another run's lease is taken over, first reason first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TakeOverReason {
    /// Not renewed for longer than its TTL and the clock tolerance.
    Expired,
    /// Its holder is a process of this machine that no longer exists.
    HolderGone,
    /// Live, and broken on purpose (`--break-lease`).
    Broken,
}

/// Decides what the run with `token` does about the lease `existing` at `now`, given whether
/// its holder is known to be `gone` ([`process::is_gone`]). Pure.
pub fn decide(
    existing: Option<&Lease>,
    now: DateTime<Utc>,
    token: &str,
    break_lease: bool,
    gone: bool,
) -> Decision {
    let Some(lease) = existing else {
        return Decision::Take;
    };
    if lease.token == token {
        return Decision::Renew;
    }
    let why = if now > lease.expires_at + CLOCK_TOLERANCE {
        Some(TakeOverReason::Expired)
    } else if gone {
        Some(TakeOverReason::HolderGone)
    } else if break_lease {
        Some(TakeOverReason::Broken)
    } else {
        None
    };
    if let Some(why) = why {
        return Decision::TakeOver {
            holder: lease.holder.clone(),
            why,
        };
    }
    Decision::Busy {
        holder: lease.holder.clone(),
        since: lease.acquired_at,
        expires_at: lease.expires_at,
    }
}

/// The lease the run with `token` writes at `now`, first taken at `acquired_at`.
fn lease_at(
    holder: &Holder,
    token: &str,
    acquired_at: DateTime<Utc>,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Lease {
    Lease {
        version: wire::WIRE_VERSION,
        holder: holder.clone(),
        token: token.to_owned(),
        acquired_at,
        renewed_at: now,
        expires_at: now + ttl,
    }
}

/// Reads the lease at `key`: `None` when absent; the lease, or why it cannot be read.
async fn read(
    sink: &dyn Sink,
    key: &str,
) -> Result<Option<(Result<Lease, String>, crate::sink::Version)>, crate::sink::Error> {
    let Some((bytes, version)) = sink.get_versioned(key).await? else {
        return Ok(None);
    };
    let lease = serde_json::from_slice::<Lease>(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|lease| {
            if lease.version == wire::WIRE_VERSION {
                Ok(lease)
            } else {
                Err(format!("unknown lease version {}", lease.version))
            }
        });
    Ok(Some((lease, version)))
}

#[cfg(test)]
mod tests;
