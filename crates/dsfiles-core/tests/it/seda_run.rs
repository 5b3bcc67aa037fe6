//! `seda::package` as a run: OUT's lease (one run at a time, a dead holder's lease taken over,
//! a stolen lease stops the run), its progress events, and a dossier with nothing to package.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use dsfiles_core::lease::LeaseTiming;
use dsfiles_core::seda::{self, SedaOptions};
use dsfiles_core::wire::{self, Holder, Lease, SEDA_LEASE_KEY};
use dsfiles_core::{CancellationToken, Error, ErrorKind, Event, RunStatus};
use dsfiles_sim::SimConfig;
use futures::{StreamExt as _, TryStreamExt as _};

use crate::seda::{Out, PROFILE, check_packages, options, out, package, without_data};
use crate::support::{Env, Recorder, env};

async fn package_with(
    env: &Env,
    out: &Out,
    opts: SedaOptions,
    recorder: Arc<Recorder>,
) -> Result<wire::SedaReport, Error> {
    seda::package(
        Arc::clone(&env.sink),
        Arc::clone(&out.sink),
        opts,
        recorder,
        CancellationToken::new(),
    )
    .await
}

/// A live lease on OUT of `holder`, taken an hour ago.
fn lease_of(holder: Holder) -> Lease {
    let now = Utc::now();
    Lease {
        version: wire::WIRE_VERSION,
        holder,
        token: "another-run".into(),
        acquired_at: now - chrono::Duration::hours(1),
        renewed_at: now,
        expires_at: now + chrono::Duration::minutes(2),
    }
}

fn holder(host: &str, pid: u32, process: Option<wire::ProcessId>) -> Holder {
    Holder {
        host: host.into(),
        pid,
        replica: None,
        tool: "dsfiles 0.0.9".into(),
        process,
    }
}

async fn put_lease(out: &Out, lease: &Lease) -> anyhow::Result<()> {
    let bytes = Bytes::from(serde_json::to_vec(lease)?);
    out.sink.put_small(SEDA_LEASE_KEY, bytes).await?;
    Ok(())
}

/// The packages and records in OUT (not its lease or the local sink's lock), sorted.
async fn written(out: &Out) -> anyhow::Result<Vec<String>> {
    let mut keys: Vec<String> = out
        .sink
        .list("")
        .map(|e| e.map(|e| e.key))
        .try_collect()
        .await?;
    keys.retain(|k| k.ends_with(".zip") || k.ends_with(".json"));
    keys.sort();
    Ok(keys)
}

async fn lease_now(out: &Out) -> anyhow::Result<Option<Bytes>> {
    Ok(out.sink.get_small(SEDA_LEASE_KEY).await?)
}

fn busy_message(result: &Result<wire::SedaReport, Error>) -> String {
    match result {
        Err(e @ Error::DestinationBusy(_)) => {
            assert_eq!(e.kind(), ErrorKind::Busy);
            e.to_string()
        }
        other => panic!("not refused as busy: {other:?}"),
    }
}

/// Run A is held inside its first package (its hook blocks the package writer's thread)
/// while run B starts on the same OUT: B is refused naming A's holder, and A, released,
/// completes and releases the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_into_one_out_at_once_the_second_is_refused() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(without_data(&env)).await?;
    let out = Arc::new(out()?);
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let entered = Mutex::new(Some(entered_tx));
    let release = Mutex::new(release_rx);
    let recorder = Arc::new(Recorder {
        hook: Some(Box::new(move |event| {
            if !matches!(event, Event::BytesWritten { .. }) {
                return;
            }
            if let Some(tx) = entered.lock().unwrap().take() {
                tx.send(()).ok();
                // On the package writer's blocking thread: wait for run B.
                release
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(60))
                    .ok();
            }
        })),
        ..Recorder::default()
    });
    let env = Arc::new(env);
    let a = tokio::spawn({
        let (env, out) = (Arc::clone(&env), Arc::clone(&out));
        async move { package_with(&env, &out, options(PROFILE), recorder).await }
    });
    entered_rx.await?;
    let b = package(&env, &out, options(PROFILE)).await;
    let message = match b {
        Err(e) => match e.downcast::<Error>() {
            Ok(e) => busy_message(&Err(e)),
            Err(e) => panic!("not refused as busy: {e:#}"),
        },
        Ok(report) => panic!("ran beside another run: {report:#?}"),
    };
    for part in [
        format!("pid {}", std::process::id()),
        "writing SEDA packages into it".to_owned(),
        format!("lease `{SEDA_LEASE_KEY}`"),
        "`--break-lease`".to_owned(),
    ] {
        assert!(message.contains(&part), "`{part}` missing from: {message}");
    }
    release_tx.send(())?;
    let report = a.await??;
    assert_eq!(report.exit_status(), RunStatus::Ok, "{report:#?}");
    assert!(!report.packaged.is_empty());
    check_packages(&out, &report);
    assert!(lease_now(&out).await?.is_none(), "lease not released");
    Ok(())
}

/// A live lease of another machine refuses the run; the same lease of a process of this
/// machine that no longer exists (`kill -9`) is taken over at once; `break_lease` breaks a
/// live one.
#[tokio::test]
async fn a_dead_holders_lease_is_taken_over_a_live_one_only_broken() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(without_data(&env)).await?;
    let out = out()?;
    let this = dsfiles_core::lease::process::this_process()
        .ok_or_else(|| anyhow::anyhow!("no /proc: the machine cannot tell a dead holder"))?;
    let elsewhere = wire::ProcessId {
        machine: "another-boot/pid:[1]".into(),
        ..this.clone()
    };
    let live = lease_of(holder("cron-box", 4321, Some(elsewhere)));
    put_lease(&out, &live).await?;
    let refused = package_with(&env, &out, options(PROFILE), Arc::default()).await;
    let message = busy_message(&refused);
    assert!(message.contains("host `cron-box`, pid 4321"), "{message}");
    assert_eq!(
        written(&out).await?,
        Vec::<String>::new(),
        "written while busy"
    );

    // Above the kernel's largest pid_max: no process has it.
    let dead = wire::ProcessId {
        instance: "a-previous-run".into(),
        ..this
    };
    put_lease(&out, &lease_of(holder("here", 4_194_305, Some(dead)))).await?;
    let report = package_with(&env, &out, options(PROFILE), Arc::default()).await?;
    assert_eq!(report.exit_status(), RunStatus::Ok, "{report:#?}");
    assert!(!report.packaged.is_empty());
    assert!(lease_now(&out).await?.is_none(), "lease not released");

    put_lease(&out, &live).await?;
    let mut opts = options(PROFILE);
    opts.lease.break_lease = true;
    let report = package_with(&env, &out, opts, Arc::default()).await?;
    assert_eq!(report.exit_status(), RunStatus::Ok, "{report:#?}");
    assert_eq!(report.unchanged.len(), report.dossiers as usize);
    assert!(lease_now(&out).await?.is_none(), "lease not released");
    Ok(())
}

/// A thief overwrites OUT's lease while the first package is being written: the next renewal
/// sees it, the package is not published, the run stops and says `lease_lost`; the thief's
/// lease stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_is_stolen_stops_writing() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(without_data(&env)).await?;
    let out = out()?;
    let thief = serde_json::to_vec(&lease_of(holder("cron-box", 4321, None)))?;
    let path = out.dir.path().join(SEDA_LEASE_KEY);
    let cas_lock = out.dir.path().join(".dsfiles/cas.lock");
    let stolen = Arc::new(AtomicBool::new(false));
    let recorder = Arc::new(Recorder {
        hook: Some(Box::new({
            let (thief, stolen) = (thief.clone(), Arc::clone(&stolen));
            move |event| {
                if matches!(event, Event::BytesWritten { .. })
                    && !stolen.swap(true, Ordering::SeqCst)
                {
                    // As another process's conditional write would: under the local sink's
                    // CAS lock, then an atomic rename.
                    let cas = std::fs::File::create(&cas_lock).expect("open the CAS lock");
                    cas.lock().expect("take the CAS lock");
                    let temp = path.with_extension("thief");
                    std::fs::write(&temp, &thief).expect("write the thief's lease");
                    std::fs::rename(&temp, &path).expect("steal the lease");
                    drop(cas);
                    // On the package writer's thread: let a renewal (every 20 ms) see it.
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        })),
        ..Recorder::default()
    });
    let mut opts = options(PROFILE);
    opts.lease.timing = LeaseTiming {
        ttl: Duration::from_secs(10),
        renew_every: Duration::from_millis(20),
        give_up_after: Duration::from_secs(5),
    };
    let report = package_with(&env, &out, opts, recorder).await?;
    assert!(stolen.load(Ordering::SeqCst), "no package written");
    assert!(report.lease_lost, "{report:#?}");
    assert!(!report.cancelled, "the caller did not cancel");
    assert_eq!(report.exit_status(), RunStatus::LeaseLost);
    assert!(report.packaged.is_empty(), "{report:#?}");
    assert_eq!(lease_now(&out).await?.as_deref(), Some(&thief[..]));
    let zips = written(&out).await?;
    assert!(
        zips.is_empty(),
        "published after losing the lease: {zips:?}"
    );
    Ok(())
}

/// One `DossiersListed`, then exactly one outcome per listed dossier, bytes as files go in,
/// `Finished` last; a re-run reports every dossier unchanged.
#[tokio::test]
async fn progress_says_what_became_of_each_dossier() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(env.options()).await?;
    let out = out()?;
    let mut opts = options(PROFILE);
    opts.states = seda::DEFAULT_STATES.map(str::to_owned).to_vec();
    let recorder = Arc::new(Recorder::default());
    let report = package_with(&env, &out, opts.clone(), Arc::clone(&recorder)).await?;
    let events = recorder.events();
    let outcomes = count(&events);
    let shards = env.shards().await?.len() as u64;
    assert_eq!(
        events.first(),
        Some(&Event::DossiersListed { dossiers: shards })
    );
    assert_eq!(events.last(), Some(&Event::Finished));
    assert_eq!(outcomes.written, report.packaged.len() as u64);
    assert_eq!(outcomes.skipped, shards - report.dossiers, "other states");
    assert_eq!(outcomes.all(), shards, "{events:#?}");
    assert!(outcomes.bytes > 0 && outcomes.bytes < report.bytes_written);

    let recorder = Arc::new(Recorder::default());
    let again = package_with(&env, &out, opts, Arc::clone(&recorder)).await?;
    let outcomes = count(&recorder.events());
    assert_eq!(outcomes.unchanged, again.dossiers, "{again:#?}");
    assert_eq!(outcomes.written + outcomes.failed, 0);
    assert_eq!(outcomes.bytes, 0);
    Ok(())
}

#[derive(Default)]
struct Outcomes {
    written: u64,
    unchanged: u64,
    skipped: u64,
    failed: u64,
    bytes: u64,
}

impl Outcomes {
    fn all(&self) -> u64 {
        self.written + self.unchanged + self.skipped + self.failed
    }
}

fn count(events: &[Event]) -> Outcomes {
    let mut o = Outcomes::default();
    for event in events {
        match event {
            Event::PackageWritten { .. } => o.written += 1,
            Event::PackageUnchanged { .. } => o.unchanged += 1,
            Event::PackageSkipped { .. } => o.skipped += 1,
            Event::PackageFailed { .. } => o.failed += 1,
            Event::BytesWritten { n } => o.bytes += n,
            _ => {}
        }
    }
    o
}

/// A terminated dossier whose shard lists no file and which has no `dossier.json`: no
/// package, `skipped` with the reason, no failure; once it has a file, it is packaged.
#[tokio::test]
async fn a_dossier_with_nothing_to_package_is_skipped() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(without_data(&env)).await?;
    let full = env.shards().await?.into_values().next().unwrap();
    let mut shard = full.clone();
    shard.state = "accepte".into();
    shard.files.clear();
    let shard_key = wire::shard_key(shard.dossier);
    let put = |shard: &dsfiles_core::Shard| Bytes::from(serde_json::to_vec(shard).unwrap());
    env.sink.put_small(&shard_key, put(&shard)).await?;
    let out = out()?;
    let mut opts = options(PROFILE);
    opts.dossiers = vec![shard.dossier];
    let recorder = Arc::new(Recorder::default());
    let report = package_with(&env, &out, opts.clone(), Arc::clone(&recorder)).await?;
    assert_eq!(report.exit_status(), RunStatus::Ok, "{report:#?}");
    assert_eq!(report.dossiers, 1);
    assert!(report.packaged.is_empty() && report.failed.is_empty());
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
    assert_eq!(report.skipped.len(), 1, "{report:#?}");
    assert_eq!(report.skipped[0].dossier, shard.dossier);
    assert!(
        report.skipped[0].reason.contains("nothing to package"),
        "{}",
        report.skipped[0].reason
    );
    assert!(recorder.events().contains(&Event::PackageSkipped {
        dossier: shard.dossier,
        reason: report.skipped[0].reason.clone(),
    }));
    let keys = written(&out).await?;
    assert!(keys.is_empty(), "written for an empty dossier: {keys:?}");

    shard.files = full.files.clone();
    env.sink.put_small(&shard_key, put(&shard)).await?;
    let report = package_with(&env, &out, opts, Arc::default()).await?;
    assert_eq!(report.packaged.len(), 1, "{report:#?}");
    assert!(report.skipped.is_empty());
    Ok(())
}

/// `SedaOptions::demarche` packages only the dossiers of that démarche.
#[tokio::test]
async fn only_the_dossiers_of_the_given_demarche_are_packaged() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(without_data(&env)).await?;
    let out = out()?;
    let mut opts = options(PROFILE);
    opts.demarche = Some(env.sim.demarche() + 1);
    let report = package(&env, &out, opts.clone()).await?;
    assert_eq!(report.dossiers, 0, "{report:#?}");
    assert!(report.packaged.is_empty());
    opts.demarche = Some(env.sim.demarche());
    let report = package(&env, &out, opts).await?;
    assert!(!report.packaged.is_empty(), "{report:#?}");
    Ok(())
}
