//! A simulator, a client, a local destination and helpers to compare with the ground truth.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dsfiles_core::sink::{LocalSink, Sink, SinkOptions};
use dsfiles_core::{
    CancellationToken, Event, ProgressSink, Shard, SyncOptions, SyncReport, VerifyReport, ds, wire,
};
use dsfiles_sim::{SimConfig, SimHandle};
use futures::StreamExt as _;

pub struct Env {
    pub sim: SimHandle,
    pub client: ds::Client,
    pub sink: Arc<dyn Sink>,
    pub dir: tempfile::TempDir,
}

pub async fn env(config: SimConfig) -> anyhow::Result<Env> {
    let sim = dsfiles_sim::start(config).await?;
    let mut config = ds::ClientConfig::new(sim.endpoint(), ds::Token::new(sim.token())?);
    config.requests_per_minute = 0;
    config.backoff_base = Duration::from_millis(1);
    config.backoff_max = Duration::from_millis(20);
    let client = ds::Client::new(config)?;
    let dir = tempfile::tempdir()?;
    let options = SinkOptions {
        fsync: false,
        ..SinkOptions::default()
    };
    let sink: Arc<dyn Sink> = Arc::new(LocalSink::open(dir.path(), options)?);
    Ok(Env {
        sim,
        client,
        sink,
        dir,
    })
}

impl Env {
    pub fn options(&self) -> SyncOptions {
        let mut opts = SyncOptions::new(self.sim.demarche());
        // The simulator listens on loopback: its API host (signed URLs) is allowed as the
        // client's endpoint (`api_endpoint` left to its default), its file host explicitly.
        opts.fetch.allow_file_hosts =
            vec![dsfiles_core::AllowedHost::of_socket(self.sim.file_host())];
        opts.fetch.backoff_base = Duration::from_millis(1);
        opts.fetch.backoff_max = Duration::from_millis(10);
        opts.jobs = 4;
        opts
    }

    pub async fn sync(&self, opts: SyncOptions) -> anyhow::Result<SyncReport> {
        self.sync_with(opts, dsfiles_core::no_progress()).await
    }

    pub async fn sync_with(
        &self,
        opts: SyncOptions,
        progress: dsfiles_core::Progress,
    ) -> anyhow::Result<SyncReport> {
        let report = dsfiles_core::sync(
            self.client.clone(),
            Arc::clone(&self.sink),
            opts,
            progress,
            CancellationToken::new(),
        )
        .await?;
        Ok(report)
    }

    pub async fn verify(&self) -> anyhow::Result<VerifyReport> {
        Ok(dsfiles_core::verify(
            Arc::clone(&self.sink),
            dsfiles_core::no_progress(),
            CancellationToken::new(),
        )
        .await?)
    }

    /// Every manifest shard, by dossier.
    pub async fn shards(&self) -> anyhow::Result<BTreeMap<u64, Shard>> {
        let mut shards = BTreeMap::new();
        let entries: Vec<_> = self.sink.list(wire::DOSSIERS_PREFIX).collect().await;
        for entry in entries {
            let entry = entry?;
            let bytes = self.sink.get_small(&entry.key).await?.unwrap_or_default();
            let shard: Shard = serde_json::from_slice(&bytes)?;
            shards.insert(shard.dossier, shard);
        }
        Ok(shards)
    }

    /// Files (not state) stored in the destination.
    pub async fn stored_keys(&self) -> anyhow::Result<Vec<String>> {
        let mut keys = Vec::new();
        let entries: Vec<_> = self.sink.list("").collect().await;
        for entry in entries {
            let entry = entry?;
            if !entry.key.starts_with(".dsfiles/") {
                keys.push(entry.key);
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Asserts every expected file (but `except` ids) is in the manifest with the simulator's
    /// SHA-256, that the manifest lists nothing else, and that `verify` agrees.
    pub async fn assert_ground_truth(&self, except: &[u64]) -> anyhow::Result<()> {
        self.assert_ground_truth_with(except, dsfiles_core::extract::Include::default())
            .await
    }

    /// [`Env::assert_ground_truth`] for a run that included generated or entreprise files.
    pub async fn assert_ground_truth_with(
        &self,
        except: &[u64],
        include: dsfiles_core::extract::Include,
    ) -> anyhow::Result<()> {
        let shards = self.shards().await?;
        let mut expected: Vec<(u64, String, String, u64)> = self
            .sim
            .expected_files(include.generated, include.entreprise)
            .into_iter()
            .filter(|f| !except.contains(&f.id))
            .map(|f| {
                (
                    f.dossier,
                    f.source.as_str().to_owned(),
                    f.sha256_hex,
                    f.served_size,
                )
            })
            .collect();
        let mut got: Vec<(u64, String, String, u64)> = shards
            .values()
            .filter(|s| s.deleted_at.is_none())
            .flat_map(|s| {
                s.files
                    .iter()
                    .filter(|f| f.status != dsfiles_core::FileStatus::RemovedUpstream)
                    .map(|f| {
                        (
                            s.dossier,
                            f.source.as_str().to_owned(),
                            f.sha256.clone(),
                            f.size,
                        )
                    })
            })
            .collect();
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "manifest vs ground truth");
        assert_eq!(
            self.stored_keys().await?,
            manifest_keys(&shards),
            "objects in the destination vs manifest keys"
        );
        let verify = self.verify().await?;
        assert!(
            verify.missing.is_empty() && verify.corrupt.is_empty(),
            "{verify:#?}"
        );
        let data = shards.values().filter(|s| s.data.is_some()).count();
        assert_eq!(
            verify.ok as usize,
            got.len() + self.removed_count(&shards) + data
        );
        let left = temp_files(self.dir.path())?;
        assert!(left.is_empty(), "temp files left behind: {left:?}");
        Ok(())
    }

    fn removed_count(&self, shards: &BTreeMap<u64, Shard>) -> usize {
        shards
            .values()
            .map(|s| {
                s.files
                    .iter()
                    .filter(|f| {
                        s.deleted_at.is_some()
                            || f.status == dsfiles_core::FileStatus::RemovedUpstream
                    })
                    .count()
            })
            .sum()
    }
}

/// Every key the manifest `shards` name, sorted.
pub fn manifest_keys(shards: &BTreeMap<u64, Shard>) -> Vec<String> {
    let mut keys: Vec<String> = shards
        .values()
        .flat_map(|s| {
            let files = s.files.iter().map(|f| f.key.clone());
            files.chain(s.data.iter().map(|d| d.key.clone()))
        })
        .collect();
    keys.sort();
    keys
}

/// Every temp file under `<dest>/.dsfiles/tmp/` (shard subdirectories included), without
/// opening a sink there, sorted.
pub fn temp_files(dest: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut files = LocalSink::temp_files_under(dest)?;
    files.sort();
    Ok(files)
}

/// Something done when an event is emitted (from the download loop: it must not block).
pub type Hook = Box<dyn Fn(&Event) + Send + Sync>;

/// Records events; optionally cancels a token at the first stored file, or runs a hook.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<Event>>,
    pub cancel_on_store: Option<CancellationToken>,
    pub hook: Option<Hook>,
}

impl Recorder {
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ProgressSink for Recorder {
    fn event(&self, event: &Event) {
        if let (Event::FileStored { .. }, Some(cancel)) = (event, &self.cancel_on_store) {
            cancel.cancel();
        }
        if let Some(hook) = &self.hook {
            hook(event);
        }
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}
