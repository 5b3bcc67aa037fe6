//! A service under test: `dsfiles_server::serve` on an ephemeral port, wired to the simulator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dsfiles_core::ds;
use dsfiles_server::api::{JobRecord, JobState};
use dsfiles_server::{
    AllowList, AppState, CorePipeline, Pipeline, Secret, ServerConfig, WebhookSecrets,
};
use dsfiles_sim::{SimConfig, SimHandle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TOKEN: &str = "test-api-token-0123456789";
pub const WEBHOOK_SECRET: &str = "whsec_current_secret";
pub const WEBHOOK_PREVIOUS: &str = "whsec_previous_secret";

/// A simulator with a small démarche (a few dozen files).
pub async fn sim(config: SimConfig) -> SimHandle {
    dsfiles_sim::start(config).await.expect("simulator starts")
}

pub fn small() -> SimConfig {
    SimConfig {
        dossiers: 8,
        hostile_filenames: false,
        deleted_dossiers: 0,
        wrong_checksums: 0,
        ..SimConfig::default()
    }
}

pub fn pipeline_for(sim: &SimHandle) -> Arc<dyn Pipeline> {
    Arc::new(core_pipeline(sim))
}

/// The production pipeline against `sim`, with short backoffs.
pub fn core_pipeline(sim: &SimHandle) -> CorePipeline {
    CorePipeline::new(core_pipeline_config(sim), BTreeMap::new())
        .expect("pipeline")
        .with_fetch_options(fetch_options(sim))
}

/// Download settings that allow the simulator's file host (it listens on loopback).
pub fn fetch_options(sim: &SimHandle) -> dsfiles_core::FetchOptions {
    dsfiles_core::FetchOptions {
        allow_file_hosts: vec![dsfiles_core::AllowedHost::of_socket(sim.file_host())],
        ..dsfiles_core::FetchOptions::default()
    }
}

/// The DS client settings of [`core_pipeline`].
pub fn core_pipeline_config(sim: &SimHandle) -> ds::ClientConfig {
    let token = ds::Token::new(sim.token()).expect("token");
    let mut config = ds::ClientConfig::new(sim.endpoint(), token);
    config.backoff_base = Duration::from_millis(5);
    config.backoff_max = Duration::from_millis(50);
    config.requests_per_minute = 0;
    config
}

/// Directories a test server uses: its state and the allowed destination root.
pub struct Dirs {
    _root: tempfile::TempDir,
    pub state: PathBuf,
    pub dest_root: PathBuf,
}

impl Dirs {
    pub fn new() -> Dirs {
        let root = tempfile::tempdir().expect("tempdir");
        let state = root.path().join("state");
        let dest_root = root.path().join("archive");
        std::fs::create_dir_all(&dest_root).expect("mkdir");
        Dirs {
            state,
            dest_root,
            _root: root,
        }
    }

    pub fn dest(&self, name: &str) -> String {
        self.dest_root.join(name).display().to_string()
    }
}

pub fn config(dirs: &Dirs) -> ServerConfig {
    let mut config = ServerConfig::defaults();
    config.api_tokens = vec![Secret::new(TOKEN)];
    config.webhook_secrets = WebhookSecrets {
        current: Some(Secret::new(WEBHOOK_SECRET)),
        previous: Some(Secret::new(WEBHOOK_PREVIOUS)),
    };
    config.allow_dest =
        AllowList::new([dirs.dest_root.to_str().expect("utf-8 path")]).expect("allow list");
    config.state_dir = dirs.state.clone();
    config.sync_jobs = 4;
    config
}

pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), dsfiles_server::Error>>>,
}

impl TestServer {
    pub async fn start(config: ServerConfig, pipeline: Arc<dyn Pipeline>) -> TestServer {
        let state = AppState::new(config, pipeline).expect("state");
        TestServer::serve(state).await
    }

    /// [`TestServer::start`] through [`AppState::open`] (`config.database` may be set).
    pub async fn open(config: ServerConfig, pipeline: Arc<dyn Pipeline>) -> TestServer {
        let state = AppState::open(config, pipeline).await.expect("state");
        TestServer::serve(state).await
    }

    async fn serve(state: AppState) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(dsfiles_server::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        dsfiles_sink::install_crypto_provider();
        TestServer {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(TOKEN)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(TOKEN)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.delete(self.url(path)).bearer_auth(TOKEN)
    }

    /// `POST /v1/syncs`, expecting 202.
    pub async fn start_sync(&self, body: serde_json::Value) -> JobRecord {
        let response = self
            .post("/v1/syncs")
            .json(&body)
            .send()
            .await
            .expect("POST /v1/syncs");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, 202, "POST /v1/syncs {body}: {text}");
        serde_json::from_str(&text).expect("job record")
    }

    pub async fn job(&self, id: &str) -> JobRecord {
        let response = self
            .get(&format!("/v1/syncs/{id}"))
            .send()
            .await
            .expect("GET job");
        assert_eq!(response.status(), 200);
        response.json().await.expect("job record")
    }

    /// Opens the job's SSE stream and reads it until its text contains `needle` (for example
    /// `"file_stored"`); returns the rest of the stream, still open.
    pub async fn events_until(
        &self,
        id: &str,
        needle: &str,
    ) -> futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>> {
        use futures::StreamExt as _;
        let response = self
            .get(&format!("/v1/syncs/{id}/events"))
            .send()
            .await
            .expect("GET events");
        assert_eq!(response.status(), 200);
        let mut body = response.bytes_stream().boxed();
        let mut seen = String::new();
        while !seen.contains(needle) {
            let chunk = body
                .next()
                .await
                .unwrap_or_else(|| panic!("the stream ended before `{needle}`: {seen}"))
                .expect("chunk");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        body
    }

    /// Follows the job's SSE stream until its terminal status; returns every (event, data).
    pub async fn follow(&self, id: &str) -> Vec<(String, serde_json::Value)> {
        use futures::StreamExt as _;
        let response = self
            .get(&format!("/v1/syncs/{id}/events"))
            .send()
            .await
            .expect("GET events");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        let mut events = Vec::new();
        while let Some(chunk) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                let value: serde_json::Value =
                    serde_json::from_str(&data).expect("SSE data is JSON");
                events.push((name, value));
            }
        }
        events
    }

    /// Waits for the job to end, through its SSE stream, and returns its final record.
    pub async fn finish(&self, id: &str) -> JobRecord {
        let events = self.follow(id).await;
        let (name, last) = events.last().expect("at least one event");
        assert_eq!(name, "status");
        let record: JobRecord =
            serde_json::from_value(last.clone()).expect("status is a job record");
        assert!(
            record.state.is_terminal(),
            "stream ended on {:?}",
            record.state
        );
        record
    }

    /// Stops the server (graceful shutdown) and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server ends cleanly");
        }
    }
}

/// `dsfiles_core::verify` of a local destination.
pub async fn verify(dest: &str) -> dsfiles_core::VerifyReport {
    let sink = dsfiles_core::sink::open(dest, &[]).expect("open the destination");
    dsfiles_core::verify(
        sink,
        dsfiles_core::no_progress(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("verify")
}

/// Every file under `dir`, relative, excluding dsfiles' own state and the dossiers'
/// dossier.json ([`stored_data`]).
pub fn stored_files(dir: &Path) -> Vec<String> {
    let mut all = stored_objects(dir);
    all.retain(|key| !is_data(key));
    all
}

/// Every dossier's dossier.json under `dir` (the default data layout's keys).
pub fn stored_data(dir: &Path) -> Vec<String> {
    let mut all = stored_objects(dir);
    all.retain(|key| is_data(key));
    all
}

fn is_data(key: &str) -> bool {
    key.ends_with("/dossier.json")
}

/// Every object under `dir`, relative, excluding dsfiles' own state.
fn stored_objects(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(dir)
                .expect("under dir")
                .to_string_lossy()
                .replace('\\', "/");
            if rel.starts_with(".dsfiles") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

pub fn assert_terminal(record: &JobRecord, state: JobState) {
    assert_eq!(record.state, state, "job {}: {:?}", record.id, record);
}

/// The JSON error shape, checked, returning `error.code`.
pub async fn error_code(response: reqwest::Response, status: u16) -> String {
    let actual = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "body: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "content type `{content_type}` for {text}"
    );
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON error body");
    let code = value["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned();
    assert!(
        value["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error.message in {text}"
    );
    code
}

/// A pipeline whose syncs run until cancelled (for tests of the API itself), and which lists
/// `files` synthetic records.
#[derive(Debug, Default)]
pub struct Blocking {
    pub files: usize,
    /// The listing never yields (to exercise request timeouts).
    pub stall_listing: bool,
    /// The listing panics (to exercise the JSON 500).
    pub panic_listing: bool,
}

#[async_trait::async_trait]
impl Pipeline for Blocking {
    async fn sync(
        &self,
        _spec: dsfiles_server::api::SyncSpec,
        progress: Arc<dyn dsfiles_server::SyncProgress>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<dsfiles_server::SyncOutcome, dsfiles_server::PipelineError> {
        progress.record(
            dsfiles_server::ProgressUpdate::FilePlanned { bytes: 1 },
            &serde_json::json!({"type": "file_planned", "bytes": 1}),
        );
        cancel.cancelled().await;
        Ok(dsfiles_server::SyncOutcome {
            counters: progress.counters(),
            cancelled: true,
            ..Default::default()
        })
    }

    /// Seda jobs run until cancelled too.
    async fn seda(
        &self,
        spec: dsfiles_server::api::SyncSpec,
        progress: Arc<dyn dsfiles_server::SyncProgress>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<dsfiles_server::SyncOutcome, dsfiles_server::PipelineError> {
        self.sync(spec, progress, cancel).await
    }

    fn list_files(
        &self,
        demarche: u64,
        _since: Option<chrono::DateTime<chrono::Utc>>,
        _resume: Option<String>,
        _cancel: tokio_util::sync::CancellationToken,
    ) -> futures::stream::BoxStream<
        'static,
        Result<dsfiles_server::PagedFile, dsfiles_server::PipelineError>,
    > {
        // One DS page: every file is on it, and resuming starts over.
        let files = (0..self.files).map(move |i| {
            let file = dsfiles_server::api::ListedFile {
                file_id: format!("{}/champ/c/-/{}", i / 3 + 1, i % 3),
                demarche,
                dossier: (i / 3 + 1) as u64,
                state: "accepte".into(),
                source: "champ".into(),
                champ_id: Some("c".into()),
                label: "Pièce".into(),
                row: None,
                filename: format!("f{i}.pdf"),
                content_type: "application/pdf".into(),
                byte_size: 10,
                checksum: "abc=".into(),
                virus_scan: "safe".into(),
                created_at: None,
            };
            Ok(dsfiles_server::PagedFile { file, page: None })
        });
        if self.stall_listing {
            return Box::pin(futures::stream::pending());
        }
        assert!(!self.panic_listing, "listing of démarche {demarche} panics");
        Box::pin(futures::stream::iter(files.collect::<Vec<_>>()))
    }

    fn ds_stats(&self) -> dsfiles_server::DsStats {
        dsfiles_server::DsStats {
            api_calls: 3,
            retries: 1,
            rate_limited: 1,
        }
    }

    /// No destination of this fake is ever leased by another writer.
    async fn check_lease(
        &self,
        _spec: &dsfiles_server::api::SyncSpec,
    ) -> Result<Option<dsfiles_server::api::DestinationBusy>, dsfiles_server::PipelineError> {
        Ok(None)
    }
}

/// A pipeline whose syncs each wait for a permit (given by the test) and then succeed, and
/// which records how many ran at once.
#[derive(Debug)]
pub struct Gated {
    pub permits: tokio::sync::Semaphore,
    running: std::sync::atomic::AtomicUsize,
    /// The most syncs that ever ran at once.
    pub max_running: std::sync::atomic::AtomicUsize,
}

impl Default for Gated {
    fn default() -> Gated {
        Gated {
            permits: tokio::sync::Semaphore::new(0),
            running: std::sync::atomic::AtomicUsize::new(0),
            max_running: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl Gated {
    /// `n` syncs may end.
    pub fn release(&self, n: usize) {
        self.permits.add_permits(n);
    }
}

#[async_trait::async_trait]
impl Pipeline for Gated {
    async fn sync(
        &self,
        _spec: dsfiles_server::api::SyncSpec,
        progress: Arc<dyn dsfiles_server::SyncProgress>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<dsfiles_server::SyncOutcome, dsfiles_server::PipelineError> {
        use std::sync::atomic::Ordering;
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let cancelled = tokio::select! {
            () = cancel.cancelled() => true,
            permit = self.permits.acquire() => {
                permit.expect("semaphore open").forget();
                false
            }
        };
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(dsfiles_server::SyncOutcome {
            counters: progress.counters(),
            cancelled,
            ..Default::default()
        })
    }

    fn list_files(
        &self,
        _demarche: u64,
        _since: Option<chrono::DateTime<chrono::Utc>>,
        _resume: Option<String>,
        _cancel: tokio_util::sync::CancellationToken,
    ) -> futures::stream::BoxStream<
        'static,
        Result<dsfiles_server::PagedFile, dsfiles_server::PipelineError>,
    > {
        Box::pin(futures::stream::empty())
    }

    fn ds_stats(&self) -> dsfiles_server::DsStats {
        dsfiles_server::DsStats::default()
    }

    async fn check_lease(
        &self,
        _spec: &dsfiles_server::api::SyncSpec,
    ) -> Result<Option<dsfiles_server::api::DestinationBusy>, dsfiles_server::PipelineError> {
        Ok(None)
    }
}

/// Polls `probe` every 100 ms until it answers `Some`, for at most `within`; panics naming
/// `what` otherwise.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
