//! The DS API of the benchmark: the simulator (`dsfiles-sim`) in this process, serving
//! démarches whose file URLs point at nginx, with the corpus' sizes and checksums.

use anyhow::Context as _;
use dsfiles_sim::{ExternalFile, SimConfig, SimHandle};

use super::corpus::CorpusFile;

/// A démarche served by a simulator, as `dsfiles` sees it.
#[derive(Debug, Clone)]
pub struct Demarche {
    pub number: u64,
    pub endpoint: String,
    pub token: String,
    /// `HOST:PORT` of the file server (nginx on loopback), which `dsfiles` must be allowed.
    pub file_host: String,
    pub files: usize,
    pub bytes: u64,
}

impl Demarche {
    /// `DS_API_URL`, `DS_API_TOKEN` and `DSFILES_ALLOW_FILE_HOSTS` for `dsfiles`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DS_API_URL".to_owned(), self.endpoint.clone()),
            ("DS_API_TOKEN".to_owned(), self.token.clone()),
            (
                "DSFILES_ALLOW_FILE_HOSTS".to_owned(),
                self.file_host.clone(),
            ),
        ]
    }
}

/// The simulators, on a small runtime of their own; dropping it stops them.
#[derive(Debug)]
pub struct Ds {
    sims: Vec<SimHandle>,
    runtime: tokio::runtime::Runtime,
}

impl Ds {
    pub fn new() -> anyhow::Result<Ds> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("bench-ds-sim")
            .build()
            .context("cannot start the simulator's runtime")?;
        Ok(Ds {
            sims: Vec::new(),
            runtime,
        })
    }

    /// Starts a simulator serving démarche `number` whose files are `files`, hosted at `base_url`
    /// (the corpus root on nginx), one dossier per `CorpusFile::dossier`.
    pub fn start(
        &mut self,
        number: u64,
        base_url: &str,
        files: &[&CorpusFile],
    ) -> anyhow::Result<Demarche> {
        let base =
            url::Url::parse(base_url).with_context(|| format!("invalid base URL `{base_url}`"))?;
        let mut dossiers: Vec<Vec<ExternalFile>> = Vec::new();
        let mut last = None;
        for f in files {
            if last != Some(f.dossier) {
                dossiers.push(Vec::new());
                last = Some(f.dossier);
            }
            if let Some(current) = dossiers.last_mut() {
                current.push(ExternalFile {
                    path: f.rel.clone(),
                    size: f.size,
                    md5_base64: f.md5_base64.clone(),
                    content_type: f.content_type.clone(),
                });
            }
        }
        let file_host = match (base.host_str(), base.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => anyhow::bail!("base URL `{base_url}` names no host and port"),
        };
        let mut config = SimConfig::external_files(base, dossiers);
        config.demarche = number;
        let sim = self.launch(config)?;
        Ok(Demarche {
            number,
            endpoint: sim.endpoint().to_string(),
            token: sim.token(),
            file_host,
            files: files.len(),
            bytes: files.iter().map(|f| f.size).sum(),
        })
    }

    /// Starts a simulator generating its own démarche and files (`config`), served by its
    /// own file host.
    pub fn start_generated(&mut self, config: SimConfig) -> anyhow::Result<Demarche> {
        let sim = self.launch(config)?;
        let totals = sim.totals();
        Ok(Demarche {
            number: sim.demarche(),
            endpoint: sim.endpoint().to_string(),
            token: sim.token(),
            file_host: sim.file_host().to_string(),
            files: usize::try_from(totals.files).context("too many files")?,
            bytes: totals.bytes,
        })
    }

    /// Starts a simulator on this runtime and keeps it until [`Ds::shutdown`].
    fn launch(&mut self, config: SimConfig) -> anyhow::Result<&SimHandle> {
        let sim = self
            .runtime
            .block_on(dsfiles_sim::start(config))
            .context("cannot start the DS simulator")?;
        self.sims.push(sim);
        self.sims
            .last()
            .context("the simulator just started is kept")
    }

    /// The runtime the simulators run on (other in-process servers may share it).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// Stops every simulator gracefully.
    pub fn shutdown(mut self) {
        let sims = std::mem::take(&mut self.sims);
        self.runtime.block_on(async {
            for sim in sims {
                sim.shutdown().await;
            }
        });
    }
}
