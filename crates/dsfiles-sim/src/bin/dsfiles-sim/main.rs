//! `dsfiles-sim`: the DS simulator as a program, for other teams' integration tests and for
//! scale runs. It serves a seeded démarche on loopback, prints one JSON line saying where
//! (the [`Ready`] line) and serves until SIGTERM or Ctrl-C, then stops gracefully (exit 0).
//!
//! **Contract:** stdout carries exactly that one line; logs and errors go to stderr. Exit 2 is a
//! usage error (naming the flag), exit 1 a failure to start (e.g. the address is taken).

mod args;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser as _;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::args::{Args, Settings};

/// The line printed on stdout once both hosts listen.
#[derive(Debug, Serialize)]
struct Ready {
    /// The GraphQL endpoint (`http://IP:PORT/api/v2/graphql`).
    endpoint: String,
    /// A bearer token the simulator accepts.
    token: String,
    demarche: u64,
    dossiers: u64,
    /// Files a plain sync lists (uploads, attestations, motivations; no generated exports or
    /// API Entreprise attestations), and their total size in bytes.
    files: u64,
    bytes: u64,
    /// `host:port` of the file host: clients must allow it as a file host.
    file_host: SocketAddr,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (verbose, quiet) = (args.verbose, args.quiet);
    let settings = match args.resolve() {
        Ok(settings) => settings,
        Err(usage) => usage.exit(),
    };
    init_logging(verbose, quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&anyhow::Error::new(err).context("cannot start the runtime")),
    };
    match runtime.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

/// Binds, generates, announces, serves until a signal, shuts down.
async fn run(settings: Settings) -> anyhow::Result<()> {
    // Registered before the line is printed: a SIGTERM sent as soon as it is read must stop
    // the server gracefully, not kill the process with the default action.
    let mut signals = Signals::new().context("cannot listen for SIGTERM and Ctrl-C")?;
    let api = bind("--listen", settings.listen).await?;
    let files = bind("--file-host-listen", settings.file_host_listen).await?;
    let started = Instant::now();
    let sim = dsfiles_sim::serve(settings.config, api, files).await?;
    let totals = sim.totals();
    tracing::info!(
        dossiers = totals.dossiers,
        files = totals.files,
        elapsed = ?started.elapsed(),
        "démarche generated"
    );
    let ready = Ready {
        endpoint: sim.endpoint().to_string(),
        token: sim.token(),
        demarche: sim.demarche(),
        dossiers: totals.dossiers,
        files: totals.files,
        bytes: totals.bytes,
        file_host: sim.file_host(),
    };
    announce(&ready).context("cannot write the ready line on stdout")?;
    let signal = signals.next().await;
    tracing::info!("{signal}: shutting down");
    sim.shutdown().await;
    Ok(())
}

async fn bind(flag: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on `{addr}` (`{flag}`)"))
}

fn announce(ready: &Ready) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(ready)?;
    line.push(b'\n');
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&line)?;
    stdout.flush()?;
    Ok(())
}

/// Prints the error chain once on stderr; a configuration the library refuses is a usage error.
fn fail(err: &anyhow::Error) -> ExitCode {
    let usage = matches!(
        err.downcast_ref::<dsfiles_sim::Error>(),
        Some(dsfiles_sim::Error::InvalidConfig { .. })
    );
    let mut text = format!("error: {err}");
    for cause in err.chain().skip(1) {
        text.push_str(&format!(": {cause}"));
    }
    text.push('\n');
    std::io::stderr().lock().write_all(text.as_bytes()).ok();
    ExitCode::from(if usage { 2 } else { 1 })
}

/// Logs on stderr: `info` for the simulator by default, `-v`/`-vv` more, `-q` errors only;
/// `RUST_LOG` overrides.
fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,dsfiles_sim=info",
        (false, 1) => "info,dsfiles_sim=debug",
        (false, _) => "debug,dsfiles_sim=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// SIGINT and, on Unix, SIGTERM, registered once.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {})
    }

    /// Waits for the next signal and names it.
    #[cfg(unix)]
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> &'static str {
        tokio::signal::ctrl_c().await.ok();
        "Ctrl-C"
    }
}
