//! Taking, renewing and releasing the lease: the IO around [`super::decide`].

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;

use super::{
    Decision, Fence, LeaseOptions, LeaseScope, LeaseTiming, TakeOverReason, decide, lease_at,
    process, read,
};
use crate::Error;
use crate::error::Busy;
use crate::sink::{self, Precondition, Sink, Version};
use crate::wire::Lease;

/// Conditional writes lost to another writer before [`acquire`] gives up (each loss means
/// someone else wrote the lease meanwhile; the next read usually says who: busy).
const ACQUIRE_ATTEMPTS: usize = 4;

/// A lease this run holds: what it last wrote and the version the store gave it.
#[derive(Debug)]
pub(crate) struct LeaseHeld {
    sink: Arc<dyn Sink>,
    key: String,
    lease: Lease,
    version: Version,
}

/// Takes the lease of `scope` in `sink` (see the module docs), or says who holds it.
pub(crate) async fn acquire(
    sink: &Arc<dyn Sink>,
    scope: LeaseScope,
    opts: &LeaseOptions,
) -> Result<LeaseHeld, Error> {
    let key = scope.key();
    let token = uuid::Uuid::new_v4().simple().to_string();
    for _ in 0..ACQUIRE_ATTEMPTS {
        let precondition = precondition(sink.as_ref(), &key, scope, &token, opts).await?;
        let now = Utc::now();
        let lease = lease_at(&opts.holder, &token, now, now, opts.timing.ttl);
        match sink.put_if(&key, encode(&lease), precondition).await {
            Ok(version) => {
                tracing::debug!(key, "destination lease taken");
                return Ok(LeaseHeld {
                    sink: Arc::clone(sink),
                    key,
                    lease,
                    version,
                });
            }
            Err(sink::Error::PreconditionFailed { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(sink::Error::PreconditionFailed { key }.into())
}

/// What the write that takes the lease requires, from the lease found at `key`; `Err` when
/// another live writer holds it (or it is unreadable and not to be broken).
async fn precondition(
    sink: &dyn Sink,
    key: &str,
    scope: LeaseScope,
    token: &str,
    opts: &LeaseOptions,
) -> Result<Precondition, Error> {
    let (lease, version) = match read(sink, key).await? {
        None => return Ok(Precondition::Absent),
        Some((Ok(lease), version)) => (lease, version),
        Some((Err(reason), version)) if opts.break_lease => {
            tracing::warn!(key, %reason, "replacing an unreadable destination lease (--break-lease)");
            return Ok(Precondition::Matches(version));
        }
        Some((Err(reason), _)) => {
            return Err(Error::Manifest {
                key: key.to_owned(),
                reason: format!("{reason}; `--break-lease` replaces it"),
            });
        }
    };
    let gone = process::is_gone(&lease.holder);
    match decide(Some(&lease), Utc::now(), token, opts.break_lease, gone) {
        Decision::Take | Decision::Renew => {}
        Decision::TakeOver {
            holder,
            why: TakeOverReason::Expired,
        } => {
            tracing::info!(key, %holder, expired_at = %lease.expires_at, "taking over a stale destination lease");
        }
        Decision::TakeOver {
            holder,
            why: TakeOverReason::HolderGone,
        } => {
            tracing::info!(key, %holder, "taking over the destination lease of a process of this machine that no longer exists");
        }
        Decision::TakeOver { holder, .. } => {
            tracing::warn!(key, %holder, since = %lease.acquired_at, "breaking the live destination lease of {holder} (--break-lease)");
        }
        busy @ Decision::Busy { .. } => return Err(busy_error(sink, scope, key, busy)),
    }
    Ok(Precondition::Matches(version))
}

/// [`Error::DestinationBusy`] for a [`Decision::Busy`] about the lease at `key`.
fn busy_error(sink: &dyn Sink, scope: LeaseScope, key: &str, decision: Decision) -> Error {
    let Decision::Busy {
        holder,
        since,
        expires_at,
    } = decision
    else {
        return Error::Internal {
            what: "the destination lease",
            reason: format!("`{decision:?}` is not busy"),
        };
    };
    Error::DestinationBusy(Box::new(Busy {
        dest: sink.describe(),
        scope,
        key: key.to_owned(),
        holder,
        since,
        expires_at,
    }))
}

/// Whether a sync of `demarche` into `sink` would be refused right now:
/// [`Error::DestinationBusy`] when another live writer holds the démarche's lease. Reads only
/// (a service checks this before queueing a job; the job itself still takes the lease).
pub async fn check(sink: &dyn Sink, demarche: u64) -> Result<(), Error> {
    check_scope(sink, LeaseScope::Sync { demarche }).await
}

/// [`check`] for any [`LeaseScope`]: whether a run of `scope` into `sink` would be refused
/// right now. Reads only.
pub async fn check_scope(sink: &dyn Sink, scope: LeaseScope) -> Result<(), Error> {
    let key = scope.key();
    let Some((Ok(lease), _)) = read(sink, &key).await? else {
        return Ok(());
    };
    let gone = process::is_gone(&lease.holder);
    match decide(Some(&lease), Utc::now(), "", false, gone) {
        busy @ Decision::Busy { .. } => Err(busy_error(sink, scope, &key, busy)),
        _ => Ok(()),
    }
}

fn encode(lease: &Lease) -> Bytes {
    // A struct of strings, numbers and dates always serializes.
    Bytes::from(serde_json::to_vec_pretty(lease).unwrap_or_default())
}

/// Why a renewal failed.
#[derive(Debug)]
enum RenewError {
    /// Another writer took the lease (its holder, when it could be read).
    Lost(Option<crate::wire::Holder>),
    /// The store could not be reached or refused for another reason: try again.
    Failed(sink::Error),
}

impl LeaseHeld {
    /// Extends the lease by `ttl` from now, if it is still this run's.
    async fn renew(&mut self, ttl: std::time::Duration) -> Result<(), RenewError> {
        let l = &self.lease;
        let next = lease_at(&l.holder, &l.token, l.acquired_at, Utc::now(), ttl);
        let written = self
            .sink
            .put_if(
                &self.key,
                encode(&next),
                Precondition::Matches(self.version.clone()),
            )
            .await;
        match written {
            Ok(version) => {
                (self.lease, self.version) = (next, version);
                Ok(())
            }
            Err(sink::Error::PreconditionFailed { .. }) => self.reread().await,
            Err(e) => Err(RenewError::Failed(e)),
        }
    }

    /// After a refused renewal: an earlier write of this run that landed without its answer
    /// (a timeout) still has this run's token, and is adopted; anything else is lost.
    async fn reread(&mut self) -> Result<(), RenewError> {
        match read(self.sink.as_ref(), &self.key).await {
            Ok(Some((Ok(lease), version))) if lease.token == self.lease.token => {
                (self.lease, self.version) = (lease, version);
                Ok(())
            }
            Ok(Some((Ok(lease), _))) => Err(RenewError::Lost(Some(lease.holder))),
            Ok(_) => Err(RenewError::Lost(None)),
            Err(e) => Err(RenewError::Failed(e)),
        }
    }

    /// Deletes the lease if it is still the one this run last wrote (best effort: a lease
    /// left behind expires by itself).
    pub(crate) async fn release(self) {
        if let Err(e) = self.sink.delete_if(&self.key, &self.version).await {
            tracing::warn!(key = self.key, "cannot release the destination lease: {e}");
        }
    }
}

/// Renews `held` every `timing.renew_every` until it is lost or cannot be renewed for
/// `timing.give_up_after`; then trips `fence` and returns. Never returns otherwise: the run
/// drops this future when it ends.
pub(crate) async fn keep(held: &mut LeaseHeld, timing: LeaseTiming, fence: &Fence) {
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(timing.renew_every).await;
        let attempt = tokio::time::timeout(timing.renew_every, held.renew(timing.ttl)).await;
        let error = match attempt {
            Ok(Ok(())) => {
                renewed = tokio::time::Instant::now();
                continue;
            }
            Ok(Err(RenewError::Lost(holder))) => {
                let by = holder.map_or_else(|| "nobody (deleted)".to_owned(), |h| h.to_string());
                tracing::error!(
                    key = held.key,
                    "the destination lease was taken over by {by}: this run stops writing"
                );
                fence.trip();
                return;
            }
            Ok(Err(RenewError::Failed(e))) => e.to_string(),
            Err(_) => format!("no answer within {:?}", timing.renew_every),
        };
        let since = renewed.elapsed();
        if since >= timing.give_up_after {
            tracing::error!(
                key = held.key,
                error,
                "the destination lease could not be renewed for {since:?}: this run stops writing"
            );
            fence.trip();
            return;
        }
        tracing::warn!(
            key = held.key,
            error,
            "cannot renew the destination lease; trying again"
        );
    }
}
