//! `dsfiles demo`: the embedded DS simulator on loopback, and a real sync of its sample
//! démarche into a local directory, then a verification. Offline, no token.

use std::path::PathBuf;

use anyhow::Context as _;

use dsfiles_core::{AllowedHost, SyncOptions, ds, sink};

use crate::cli::GlobalArgs;
use crate::exit::Exit;
use crate::logging;

use super::{summary, sync, verify};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Directory the sample démarche's files are synced into (created if needed).
    #[arg(long, value_name = "DIR", default_value = "./dsfiles-demo")]
    pub dir: PathBuf,

    /// Number of dossiers in the sample démarche.
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=5000))]
    pub dossiers: u64,
}

pub async fn run(args: DemoArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let config = dsfiles_sim::SimConfig {
        dossiers: usize::try_from(args.dossiers).unwrap_or(usize::MAX),
        ..dsfiles_sim::SimConfig::default()
    };
    let demarche = config.demarche;
    let sim = dsfiles_sim::start(config)
        .await
        .context("cannot start the DS simulator")?;

    // The simulator accepts any token; there is no rate limit to respect on loopback.
    let mut client_config = ds::ClientConfig::new(sim.endpoint(), ds::Token::new(sim.token())?);
    client_config.requests_per_minute = 0;
    let client = ds::Client::new(client_config).context("cannot set up the DS API client")?;

    let dest = args
        .dir
        .to_str()
        .with_context(|| format!("`{}` is not valid UTF-8", args.dir.display()))?;
    let sink = sink::open(dest, &[])?;
    if !global.quiet {
        let line = format!(
            "demo: DS simulator at {}, syncing its démarche {demarche} ({} dossiers) into {}\n",
            sim.endpoint(),
            args.dossiers,
            args.dir.display()
        );
        logging::write_stderr(line.as_bytes()).ok();
    }
    // The simulator listens on loopback: its hosts are allowed explicitly.
    let mut opts = SyncOptions::new(demarche);
    opts.fetch.api_endpoint = Some(sim.endpoint());
    opts.fetch.allow_file_hosts = vec![AllowedHost::of_socket(sim.file_host())];
    let report = sync::sync_with(client, sink.clone(), opts, global).await?;
    let exit = sync::finish(&report, false, None, global.quiet)?;
    if exit != Exit::Success {
        sim.shutdown().await;
        return Ok(exit);
    }
    let verified = verify::verify_with(sink, global).await?;
    summary::print_verify(&verified, global.quiet);
    sim.shutdown().await;
    let exit = Exit::from_verify_report(&verified);
    if exit == Exit::Success && !global.quiet {
        let dir = args.dir.display();
        let text = format!(
            "\nThe files are in {dir}/ (one directory per dossier; dsfiles' own state is in {dir}/.dsfiles/).\n\
             Run `dsfiles demo --dir {dir}` again: it moves 0 bytes, only what changed would move.\n\
             Check them any time: `dsfiles verify --dest {dir}`.\n\
             For real: DS_API_TOKEN=... dsfiles sync --demarche N --dest ./archive\n"
        );
        logging::write_stderr(text.as_bytes()).ok();
    }
    Ok(exit)
}
