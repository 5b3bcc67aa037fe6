//! File hosts that play the attacker: redirects to internal services, bodies longer than DS
//! announced or endless, bodies that drip. Nothing from them is stored, and the internal
//! services are never reached.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use dsfiles_core::{AllowedHost, BLOCKED_ADDRESS, SyncOptions, SyncReport};
use dsfiles_sim::{Fault, SimConfig, Target};

use crate::support::{Env, env};

/// What a cloud metadata service would answer: must never end up in the destination.
const CREDENTIALS: &str =
    "{\"AccessKeyId\":\"ASIAFAKEFAKEFAKE\",\"SecretAccessKey\":\"fake-secret\"}";

/// An "internal service": answers every request with fake credentials, recording its headers.
struct Internal {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<HeaderMap>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Internal {
    async fn start(bind: &str) -> anyhow::Result<Internal> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().unwrap_or_else(|e| e.into_inner()).push(headers);
                CREDENTIALS
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Internal {
            addr,
            requests,
            task,
        })
    }

    fn requests(&self) -> Vec<HeaderMap> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Internal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn small() -> SimConfig {
    SimConfig {
        dossiers: 2,
        files_per_dossier: 2..=3,
        ..SimConfig::default()
    }
}

/// Every download of `env` answers with `fault`.
fn always(env: &Env, fault: Fault) {
    env.sim.add_fault(fault, Target::Always, None);
}

/// Few attempts: a refused file fails fast.
fn quick(env: &Env) -> SyncOptions {
    let mut opts = env.options();
    opts.retries = 1;
    opts.fetch.max_transient_attempts = 2;
    // Nothing may reach the destination, not even a dossier.json.
    opts.data = Some(dsfiles_core::DataOutput::Off);
    opts
}

/// Asserts every file failed and nothing reached the destination: no file, no credential in
/// any stored object (state and report included).
async fn assert_nothing_stored(env: &Env, report: &SyncReport) -> anyhow::Result<()> {
    assert_eq!(report.stored, 0, "{report:#?}");
    assert!(report.flagged.is_empty(), "{:#?}", report.flagged);
    assert_eq!(
        report.failed.len(),
        env.sim.expected_files(false, false).len()
    );
    assert!(env.stored_keys().await?.is_empty());
    for entry in walk(env.dir.path())? {
        let text = String::from_utf8_lossy(&std::fs::read(&entry)?).into_owned();
        assert!(!text.contains("fake-secret"), "{}", entry.display());
    }
    Ok(())
}

fn walk(dir: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(walk(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

#[tokio::test]
async fn redirects_to_internal_services_are_refused_before_any_connection() -> anyhow::Result<()> {
    // The service listens on loopback addresses other than the simulator's.
    let on_127_0_0_2 = Internal::start("127.0.0.2:0").await?;
    let on_127_0_0_1 = Internal::start("127.0.0.1:0").await?;
    async fn check(target: String, named: &str) -> anyhow::Result<()> {
        let env = env(small()).await?;
        always(
            &env,
            Fault::RedirectTo {
                url: format!("{target}/latest/meta-data/iam?sig=x"),
            },
        );
        let report = env.sync(quick(&env)).await?;
        assert_nothing_stored(&env, &report).await?;
        for failure in &report.failed {
            assert_eq!(
                failure.code.as_deref(),
                Some(BLOCKED_ADDRESS),
                "{failure:#?}"
            );
            assert!(
                failure.reason.contains(named),
                "{target}: {}",
                failure.reason
            );
            assert!(!failure.reason.contains("sig="), "{}", failure.reason);
        }
        Ok(())
    }
    let port = on_127_0_0_2.addr.port();
    check(
        format!("http://127.0.0.2:{port}"),
        "`127.0.0.2` is a loopback",
    )
    .await?;
    check(format!("http://[::ffff:127.0.0.2]:{port}"), "loopback").await?;
    let port = on_127_0_0_1.addr.port();
    check(
        format!("http://localhost:{port}"),
        "`localhost` (`127.0.0.1`) is a loopback",
    )
    .await?;
    check(
        "http://169.254.169.254".to_owned(),
        "`169.254.169.254` is a link-local",
    )
    .await?;
    assert!(
        on_127_0_0_2.requests().is_empty(),
        "the service was reached"
    );
    assert!(
        on_127_0_0_1.requests().is_empty(),
        "the service was reached"
    );
    Ok(())
}

#[tokio::test]
async fn a_file_url_on_a_blocked_address_is_refused_without_an_allow_list() -> anyhow::Result<()> {
    // Without its allow-list entry, the simulator's own file host is a loopback address.
    let env = env(small()).await?;
    let mut opts = quick(&env);
    opts.fetch.allow_file_hosts.clear();
    let report = env.sync(opts).await?;
    assert_nothing_stored(&env, &report).await?;
    let host = env.sim.file_host().ip().to_string();
    for failure in &report.failed {
        assert_eq!(failure.code.as_deref(), Some(BLOCKED_ADDRESS));
        assert!(
            failure.reason.contains(&format!("`{host}`")),
            "{}",
            failure.reason
        );
    }
    assert_eq!(
        env.sim.stats().file_requests,
        0,
        "the file host was reached"
    );
    Ok(())
}

#[tokio::test]
async fn no_referer_travels_to_the_next_host() -> anyhow::Result<()> {
    let internal = Internal::start("127.0.0.2:0").await?;
    let env = env(small()).await?;
    always(
        &env,
        Fault::RedirectTo {
            url: format!("http://{}/next?sig=x", internal.addr),
        },
    );
    let mut opts = quick(&env);
    opts.fetch
        .allow_file_hosts
        .push(AllowedHost::of_socket(internal.addr));
    let report = env.sync(opts).await?;
    // The service answers with bytes DS did not announce: nothing is stored either.
    assert_nothing_stored(&env, &report).await?;
    let requests = internal.requests();
    assert!(!requests.is_empty(), "the allowed host was reached");
    for headers in requests {
        assert!(headers.get("referer").is_none(), "{headers:?}");
        assert!(headers.get("authorization").is_none(), "{headers:?}");
    }
    Ok(())
}

#[tokio::test]
async fn bodies_longer_than_announced_are_cut_short_and_never_stored() -> anyhow::Result<()> {
    /// What may be in flight on a socket the client stopped reading (kernel buffers).
    const SLACK: u64 = 4 * 1024 * 1024;
    for fault in [Fault::EndlessBody, Fault::LongerBody { extra: 100_000 }] {
        let env = env(small()).await?;
        always(&env, fault.clone());
        let report = env.sync(quick(&env)).await?;
        assert_nothing_stored(&env, &report).await?;
        for failure in &report.failed {
            assert!(
                failure.reason.contains("body longer than announced"),
                "{fault:?}: {}",
                failure.reason
            );
        }
        let largest = env
            .sim
            .expected_files(false, false)
            .iter()
            .map(|f| f.byte_size)
            .max()
            .unwrap_or(0);
        let stats = env.sim.stats();
        assert!(
            stats.bytes_served <= stats.file_requests * (largest + SLACK),
            "{fault:?}: {} bytes served for {} requests",
            stats.bytes_served,
            stats.file_requests
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_dripping_body_fails_within_its_deadline() -> anyhow::Result<()> {
    let env = env(small()).await?;
    let drip = env
        .sim
        .expected_files(false, false)
        .into_iter()
        .filter(|f| f.byte_size >= 50)
        .min_by_key(|f| f.byte_size)
        .ok_or_else(|| anyhow::anyhow!("no file of 50 bytes or more"))?;
    env.sim.add_fault(
        Fault::DripBody { interval_ms: 20 },
        Target::File { file: drip.id },
        None,
    );
    let mut opts = quick(&env);
    opts.fetch.deadline_base = Duration::from_millis(200);
    opts.fetch.min_rate = 256 * 1024;
    let report = env.sync(opts).await?;
    assert_eq!(report.failed.len(), 1, "{:#?}", report.failed);
    // 50 bytes or more at 20 ms each: a second or more, against a deadline of about 0.2 s.
    let deadline = 0.2 + drip.byte_size as f64 / (256.0 * 1024.0);
    let reason = &report.failed[0].reason;
    assert!(
        reason.contains(&format!("within its deadline of {deadline:.1}s")),
        "{reason}"
    );
    env.assert_ground_truth(&[drip.id]).await
}
