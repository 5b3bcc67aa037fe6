//! The destination lease: one writer per démarche and destination at a time; stale leases are
//! taken over, live ones refused unless broken, and a run whose lease is stolen stops writing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use dsfiles_core::lease::LeaseTiming;
use dsfiles_core::sink::{
    ByteStream, Error as SinkError, ListEntry, ObjectInfo, ObjectMeta, Precondition, Sink, Upload,
    Version,
};
use dsfiles_core::wire::{self, Holder, Lease};
use dsfiles_core::{Error, RunStatus};
use dsfiles_sim::{Fault, SimConfig, Target};
use futures::stream::BoxStream;

use crate::support::{Env, Recorder, env};

fn other_holder() -> Holder {
    Holder {
        host: "cron-box".into(),
        pid: 4321,
        replica: None,
        tool: "dsfiles 0.0.9".into(),
        process: None,
    }
}

/// A lease of `other_holder()` taken an hour ago, expiring `expires_in` from now.
fn foreign_lease(expires_in: chrono::Duration) -> Lease {
    let now = Utc::now();
    Lease {
        version: wire::WIRE_VERSION,
        holder: other_holder(),
        token: "someone-else".into(),
        acquired_at: now - chrono::Duration::hours(1),
        renewed_at: now - chrono::Duration::seconds(5),
        expires_at: now + expires_in,
    }
}

async fn put_lease(env: &Env, lease: &Lease) -> anyhow::Result<Bytes> {
    let bytes = Bytes::from(serde_json::to_vec(lease)?);
    let key = wire::lease_key(env.sim.demarche());
    env.sink.put_small(&key, bytes.clone()).await?;
    Ok(bytes)
}

async fn lease_now(env: &Env) -> anyhow::Result<Option<Bytes>> {
    Ok(env
        .sink
        .get_small(&wire::lease_key(env.sim.demarche()))
        .await?)
}

fn busy(result: &anyhow::Result<dsfiles_core::SyncReport>) -> Option<&Error> {
    result
        .as_ref()
        .err()?
        .downcast_ref::<Error>()
        .filter(|e| matches!(e, Error::DestinationBusy(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_syncs_of_one_demarche_at_once_one_is_refused() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let (a, b) = tokio::join!(env.sync(env.options()), env.sync(env.options()));
    let refused: Vec<&Error> = [&a, &b].into_iter().filter_map(busy).collect();
    assert_eq!(refused.len(), 1, "a: {a:?}\nb: {b:?}");
    let report = a
        .as_ref()
        .or(b.as_ref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    let message = refused[0].to_string();
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    assert_eq!(refused[0].kind(), dsfiles_core::ErrorKind::Busy);
    env.assert_ground_truth(&[]).await?;
    assert!(lease_now(&env).await?.is_none(), "lease not released");
    Ok(())
}

#[tokio::test]
async fn a_stale_lease_is_taken_over() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    put_lease(&env, &foreign_lease(-chrono::Duration::minutes(5))).await?;
    dsfiles_core::lease::check(env.sink.as_ref(), env.sim.demarche()).await?;
    let report = env.sync(env.options()).await?;
    assert_eq!(report.exit_status(false), RunStatus::Ok, "{report:#?}");
    assert!(!report.lease_lost);
    env.assert_ground_truth(&[]).await?;
    assert!(lease_now(&env).await?.is_none(), "lease not released");
    Ok(())
}

/// A `kill -9`ed run of this machine: its live lease is taken over at once, no
/// `break_lease` needed, while the same lease from another machine would be refused.
#[tokio::test]
async fn a_live_lease_of_a_dead_process_of_this_machine_is_taken_over() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let this = dsfiles_core::lease::process::this_process()
        .ok_or_else(|| anyhow::anyhow!("no /proc: the machine cannot tell a dead holder"))?;
    let mut dead = foreign_lease(chrono::Duration::minutes(2));
    // Above the kernel's largest pid_max: no process has it.
    dead.holder.pid = 4_194_305;
    dead.holder.process = Some(wire::ProcessId {
        instance: "a-previous-run".into(),
        ..this.clone()
    });
    let mut elsewhere = dead.clone();
    elsewhere.holder.process = Some(wire::ProcessId {
        machine: "another-boot/pid:[1]".into(),
        ..this
    });
    put_lease(&env, &elsewhere).await?;
    assert!(
        busy(&env.sync(env.options()).await).is_some(),
        "another machine's lease"
    );
    put_lease(&env, &dead).await?;
    dsfiles_core::lease::check(env.sink.as_ref(), env.sim.demarche()).await?;
    let report = env.sync(env.options()).await?;
    assert_eq!(report.exit_status(false), RunStatus::Ok, "{report:#?}");
    env.assert_ground_truth(&[]).await?;
    assert!(lease_now(&env).await?.is_none(), "lease not released");
    Ok(())
}

#[tokio::test]
async fn a_live_lease_is_refused_with_its_holder_then_broken_on_request() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let lease = foreign_lease(chrono::Duration::minutes(1));
    let written = put_lease(&env, &lease).await?;
    let checked = dsfiles_core::lease::check(env.sink.as_ref(), env.sim.demarche()).await;
    assert!(
        matches!(checked, Err(Error::DestinationBusy(_))),
        "{checked:?}"
    );
    let refused = env.sync(env.options()).await;
    let error = busy(&refused).ok_or_else(|| anyhow::anyhow!("not refused: {refused:?}"))?;
    let message = error.to_string();
    for part in [
        "destination `",
        "is busy: host `cron-box`, pid 4321, dsfiles 0.0.9",
        &format!("démarche {}", env.sim.demarche()),
        &format!(
            "since {}",
            lease
                .acquired_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        "`--break-lease`",
    ] {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }
    assert_eq!(
        lease_now(&env).await?,
        Some(written),
        "the lease was touched"
    );
    assert!(
        env.stored_keys().await?.is_empty(),
        "files written while busy"
    );

    let mut opts = env.options();
    opts.lease.break_lease = true;
    let report = env.sync(opts).await?;
    assert_eq!(report.exit_status(false), RunStatus::Ok, "{report:#?}");
    env.assert_ground_truth(&[]).await?;
    assert!(lease_now(&env).await?.is_none(), "lease not released");
    Ok(())
}

#[tokio::test]
async fn an_unreadable_lease_is_an_error_unless_broken() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let key = wire::lease_key(env.sim.demarche());
    env.sink
        .put_small(&key, Bytes::from_static(b"{oops"))
        .await?;
    let refused = env.sync(env.options()).await;
    let message = format!(
        "{:#}",
        refused
            .as_ref()
            .err()
            .ok_or_else(|| anyhow::anyhow!("ran"))?
    );
    assert!(
        message.contains(&key) && message.contains("--break-lease"),
        "{message}"
    );
    let mut opts = env.options();
    opts.lease.break_lease = true;
    env.sync(opts).await?;
    assert!(lease_now(&env).await?.is_none());
    Ok(())
}

/// A thief overwrites the lease while the run downloads: the next renewal sees it, the run
/// stops writing and ends `LeaseLost`; the thief's lease stays, the sync point does not move,
/// and every manifest shard left is whole and names files that are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_is_stolen_stops_writing() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sim
        .add_fault(Fault::SlowFile { delay_ms: 150 }, Target::Always, None);
    let thief = serde_json::to_vec(&foreign_lease(chrono::Duration::minutes(2)))?;
    let path = env.dir.path().join(wire::lease_key(env.sim.demarche()));
    let cas_lock = env.dir.path().join(".dsfiles/cas.lock");
    let stolen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let recorder = Arc::new(Recorder {
        hook: Some(Box::new({
            let (thief, stolen) = (thief.clone(), Arc::clone(&stolen));
            move |event| {
                if matches!(event, dsfiles_core::Event::FileStored { .. })
                    && !stolen.swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    // As another process's conditional write would: under the local
                    // sink's CAS lock, then an atomic rename.
                    let cas = std::fs::File::create(&cas_lock).expect("open the CAS lock");
                    cas.lock().expect("take the CAS lock");
                    let temp = path.with_extension("thief");
                    std::fs::write(&temp, &thief).expect("write the thief's lease");
                    std::fs::rename(&temp, &path).expect("steal the lease");
                    drop(cas);
                }
            }
        })),
        ..Recorder::default()
    });
    let mut opts = env.options();
    opts.jobs = 2;
    opts.lease.timing = LeaseTiming {
        ttl: Duration::from_secs(10),
        renew_every: Duration::from_millis(20),
        give_up_after: Duration::from_secs(5),
    };
    let report = env.sync_with(opts, recorder.clone()).await?;
    assert!(
        stolen.load(std::sync::atomic::Ordering::SeqCst),
        "no file stored"
    );
    assert!(report.lease_lost, "{report:#?}");
    assert!(!report.cancelled, "the caller did not cancel");
    assert_eq!(report.exit_status(false), RunStatus::LeaseLost);
    assert!(!report.sync_point_advanced);
    let expected = env.sim.expected_files(false, false).len() as u64;
    assert!(
        report.stored < expected,
        "the run went on writing: {report:#?}"
    );
    assert_eq!(lease_now(&env).await?.as_deref(), Some(&thief[..]));
    assert!(
        env.sink
            .get_small(&wire::sync_point_key(env.sim.demarche()))
            .await?
            .is_none(),
        "a sync point was written"
    );
    let shards = env.shards().await?; // every shard parses
    for shard in shards.values() {
        for file in &shard.files {
            let size = env.sink.head(&file.key).await?;
            assert_eq!(size, Some(file.size), "`{}` of the manifest", file.key);
        }
    }
    Ok(())
}

/// A destination whose conditional writes start failing (the store unreachable for them)
/// once `broken` is set; everything else passes through.
#[derive(Debug)]
struct Unrenewable {
    inner: Arc<dyn Sink>,
    broken: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl Sink for Unrenewable {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn create(&self, key: &str, meta: &ObjectMeta) -> Result<Box<dyn Upload>, SinkError> {
        self.inner.create(key, meta).await
    }
    async fn get(&self, key: &str) -> Result<ByteStream, SinkError> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes, SinkError> {
        self.inner.get_range(key, range).await
    }
    async fn head(&self, key: &str) -> Result<Option<u64>, SinkError> {
        self.inner.head(key).await
    }
    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, SinkError> {
        self.inner.stat(key).await
    }
    async fn put_small(&self, key: &str, bytes: Bytes) -> Result<(), SinkError> {
        self.inner.put_small(key, bytes).await
    }
    async fn get_small(&self, key: &str) -> Result<Option<Bytes>, SinkError> {
        self.inner.get_small(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), SinkError> {
        self.inner.delete(key).await
    }
    async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, Version)>, SinkError> {
        self.inner.get_versioned(key).await
    }
    async fn put_if(
        &self,
        key: &str,
        bytes: Bytes,
        precondition: Precondition,
    ) -> Result<Version, SinkError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(SinkError::Io {
                op: "conditional put",
                path: key.into(),
                source: std::io::Error::from(std::io::ErrorKind::TimedOut),
            });
        }
        self.inner.put_if(key, bytes, precondition).await
    }
    async fn delete_if(&self, key: &str, version: &Version) -> Result<(), SinkError> {
        self.inner.delete_if(key, version).await
    }
    fn list(&self, prefix: &str) -> BoxStream<'_, Result<ListEntry, SinkError>> {
        self.inner.list(prefix)
    }
}

/// No renewal succeeds for `give_up_after` (the store keeps failing them): the run stops
/// writing before anyone could take the lease over, and reports `lease_lost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_renew_its_lease_stops_writing() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sim
        .add_fault(Fault::SlowFile { delay_ms: 150 }, Target::Always, None);
    let broken = Arc::new(AtomicBool::new(false));
    let sink: Arc<dyn Sink> = Arc::new(Unrenewable {
        inner: Arc::clone(&env.sink),
        broken: Arc::clone(&broken),
    });
    let recorder = Arc::new(Recorder {
        hook: Some(Box::new({
            let broken = Arc::clone(&broken);
            move |event| {
                if matches!(event, dsfiles_core::Event::FileStored { .. }) {
                    broken.store(true, Ordering::SeqCst);
                }
            }
        })),
        ..Recorder::default()
    });
    let mut opts = env.options();
    opts.jobs = 2;
    opts.lease.timing = LeaseTiming {
        ttl: Duration::from_secs(10),
        renew_every: Duration::from_millis(20),
        give_up_after: Duration::from_millis(200),
    };
    let report = dsfiles_core::sync(
        env.client.clone(),
        sink,
        opts,
        recorder,
        dsfiles_core::CancellationToken::new(),
    )
    .await?;
    assert!(report.lease_lost, "{report:#?}");
    assert_eq!(report.exit_status(false), RunStatus::LeaseLost);
    let expected = env.sim.expected_files(false, false).len() as u64;
    assert!(
        report.stored < expected,
        "the run went on writing: {report:#?}"
    );
    // Not released (it could not be written): it expires by itself.
    assert!(lease_now(&env).await?.is_some());
    Ok(())
}
