//! Embedding dsfiles: sync a démarche into a directory from your own Rust program.
//!
//! Runs offline against the project's DS simulator, so it doubles as a compiled, runnable
//! example: `cargo run -p dsfiles-core --example embed`. Against the real DS, build the
//! `ClientConfig` from `ds::DEFAULT_ENDPOINT` and your API token instead.
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use dsfiles_core::{AllowedHost, CancellationToken, Event, ProgressSink, SyncOptions, ds, sink};

/// Progress is an interface: a library user receives typed events and renders them as it likes.
struct Log;

impl ProgressSink for Log {
    fn event(&self, event: &Event) {
        if let Event::FileStored { key, bytes, .. } = event {
            println!("stored {key} ({bytes} bytes)");
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A simulated DS on loopback; with the real one, skip this and use its endpoint and token.
    let sim = dsfiles_sim::start(dsfiles_sim::SimConfig::default()).await?;
    let dir = tempfile::tempdir()?;

    let client = ds::Client::new(ds::ClientConfig::new(
        sim.endpoint(),
        ds::Token::new(sim.token())?,
    ))?;
    let dest = sink::open(&dir.path().display().to_string(), &[])?;
    let mut options = SyncOptions {
        jobs: 4,
        ..SyncOptions::new(sim.demarche())
    };
    // Downloads refuse loopback and private addresses except the API endpoint's host and port
    // (taken from the client) and the allowed hosts: the simulator's file host is one.
    options.fetch.allow_file_hosts = vec![AllowedHost::of_socket(sim.file_host())];

    let report = dsfiles_core::sync(
        client,
        dest,
        options,
        Arc::new(Log),
        CancellationToken::new(),
    )
    .await?;
    println!(
        "{} files stored, {} failed, {} bytes in {:.2}s; exit status {:?}",
        report.stored,
        report.counts.failed,
        report.bytes_downloaded,
        report.duration_secs,
        report.exit_status(false),
    );
    sim.shutdown().await;
    Ok(())
}
