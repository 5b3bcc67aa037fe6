//! The DS API of the benchmark: the simulator (`dsfiles-sim`) in this process, serving
//! démarches whose file URLs point at nginx, with the corpus' sizes and checksums; or, for
//! démarches it generates itself, the shipped `dsfiles-sim` binary as a process of its own
//! ([`SimProcess`]).

use anyhow::Context as _;
use dsfiles_sim::{ExternalFile, SimConfig, SimHandle};

use super::corpus::CorpusFile;

/// A démarche served by a simulator, as `dsfiles` sees it; also the fields of `dsfiles-sim`'s
/// ready line (`{"endpoint":…,"token":…,"demarche":…,"files":…,"bytes":…,"file_host":…}`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Demarche {
    #[serde(rename = "demarche")]
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

/// The `dsfiles-sim` binary serving a démarche it generates, until dropped.
///
/// Why a process and not [`Ds`]: this crate is built unoptimised (`cargo xtask` runs the dev
/// profile), and a simulator serving a million files from an unoptimised build takes CPU the
/// measured `dsfiles` then lacks on a two-core machine. The shipped binary, built as `dsfiles`
/// is (`dist`), costs what an optimised DS stand-in costs; it still shares the machine.
#[derive(Debug)]
pub struct SimProcess {
    child: std::process::Child,
}

impl SimProcess {
    /// Runs `bin args…` (stderr to `log`) and waits for the JSON line it prints once
    /// listening.
    pub fn spawn(
        bin: &std::path::Path,
        args: &[String],
        log: &std::path::Path,
    ) -> anyhow::Result<(SimProcess, Demarche)> {
        use std::io::BufRead as _;
        let stderr = std::fs::File::create(log)
            .with_context(|| format!("cannot create `{}`", log.display()))?;
        let mut child = std::process::Command::new(bin)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot run `{}`", bin.display()))?;
        let stdout = child.stdout.take().context("the simulator's stdout")?;
        // Owned from here: an early return below stops the child.
        let sim = SimProcess { child };
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .context("cannot read the simulator's stdout")?;
        if line.trim().is_empty() {
            let err = std::fs::read_to_string(log).unwrap_or_default();
            anyhow::bail!("`{}` printed nothing: {}", bin.display(), err.trim());
        }
        let demarche = parse_listening(&line)?;
        Ok((sim, demarche))
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        // A simulator holds nothing worth a graceful stop; SIGKILL, then reap.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The démarche of `dsfiles-sim`'s ready line.
fn parse_listening(line: &str) -> anyhow::Result<Demarche> {
    serde_json::from_str(line.trim())
        .with_context(|| format!("the simulator's ready line `{}`", line.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulators_line_gives_the_demarche_and_anything_else_is_refused() {
        let line = r#"{"endpoint":"http://127.0.0.1:1/api/v2/graphql","token":"t","demarche":4242,"dossiers":2,"files":21,"bytes":900,"file_host":"127.0.0.1:2"}"#;
        let d = parse_listening(line).expect("a demarche");
        assert_eq!(
            (
                d.number,
                d.endpoint.as_str(),
                d.token.as_str(),
                d.file_host.as_str()
            ),
            (
                4242,
                "http://127.0.0.1:1/api/v2/graphql",
                "t",
                "127.0.0.1:2"
            )
        );
        assert_eq!((d.files, d.bytes), (21, 900));
        for bad in [
            "",
            "listening",
            r#"{"endpoint":"x"}"#,
            r#"{"endpoint":"x","token":"t","demarche":"1","files":1,"bytes":1,"file_host":"h"}"#,
        ] {
            assert!(parse_listening(bad).is_err(), "{bad:?}");
        }
    }
}
