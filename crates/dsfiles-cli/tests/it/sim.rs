//! The DS simulator, started in the test process on port 0, and helpers to run `dsfiles`
//! against it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output};

use dsfiles_sim::{SimConfig, SimHandle};
use sha2::Digest as _;

use crate::dsfiles;

/// A running simulator; its servers run on this runtime's threads while the test blocks on
/// the `dsfiles` process.
pub struct Sim {
    pub handle: SimHandle,
    // Declared after `handle`: dropped last, once the handle has cancelled its servers.
    _runtime: tokio::runtime::Runtime,
}

impl Sim {
    pub fn start(config: SimConfig) -> Sim {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let handle = runtime.block_on(dsfiles_sim::start(config)).unwrap();
        Sim {
            handle,
            _runtime: runtime,
        }
    }

    /// `dsfiles` pointed at the simulator, with a token it accepts and no client-side limiter.
    pub fn dsfiles(&self, args: &[&str]) -> Command {
        let mut command = dsfiles();
        command
            .env("DS_API_URL", self.handle.endpoint().as_str())
            .env("DS_API_TOKEN", self.handle.token())
            // The simulator's file host is on loopback: allowed explicitly.
            .env(
                "DSFILES_ALLOW_FILE_HOSTS",
                self.handle.file_host().to_string(),
            )
            .args(args);
        command
    }

    pub fn demarche(&self) -> String {
        self.handle.demarche().to_string()
    }

    /// `dsfiles sync` of the simulator's démarche into `dest`, with `extra` arguments.
    pub fn sync(&self, dest: &Path, extra: &[&str]) -> Output {
        let demarche = self.demarche();
        let mut args = vec![
            "sync",
            "--demarche",
            &demarche,
            "--dest",
            dest.to_str().unwrap(),
        ];
        args.extend_from_slice(&["--requests-per-minute", "0"]);
        args.extend_from_slice(extra);
        self.dsfiles(&args).output().unwrap()
    }
}

/// Waits (on the child's own progress, no sleeping) until at least `at_least` files are
/// published under `dest`, and returns how many there are. Panics if the child ends first.
pub fn wait_until_published(child: &mut Child, dest: &Path, at_least: usize) -> usize {
    loop {
        let published = if dest.exists() { count_files(dest) } else { 0 };
        if published >= at_least {
            return published;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "sync ended before {at_least} files were published"
        );
        std::thread::yield_now();
    }
}

/// Files under `dir` outside `.dsfiles/`, dossier.json aside (a count, without reading them).
fn count_files(dir: &Path) -> usize {
    all_paths(dir)
        .iter()
        .filter(|p| !p.starts_with(".dsfiles") && !is_data(p))
        .filter(|p| dir.join(p).is_file())
        .count()
}

/// What a run left under `.dsfiles/tmp/` (local temp files, spread over the sink's shard
/// directories) and `.dsfiles/staging/` (staging keys): no file may remain after a run, even a
/// cancelled one. The directories themselves are the sink's layout, not leftovers.
pub fn leftovers(dest: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for dir in [".dsfiles/tmp", ".dsfiles/staging"] {
        let dir = dest.join(dir);
        if dir.exists() {
            out.extend(
                all_paths(&dir)
                    .into_iter()
                    // The staging markers (`keep`, `{demarche}/keep`) stay by design.
                    .filter(|p| p != "keep" && !p.ends_with("/keep") && dir.join(p).is_file()),
            );
        }
    }
    out
}

/// `dsfiles verify --dest DEST`.
pub fn verify(dest: &Path) -> Output {
    dsfiles()
        .args(["verify", "--dest", dest.to_str().unwrap()])
        .output()
        .unwrap()
}

/// SHA-256 (hex) of every file under `dest` outside `.dsfiles/`, by relative path; the
/// dossiers' dossier.json aside ([`stored_data`]).
pub fn stored_files(dest: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    walk(dest, dest, &mut files);
    files.retain(|key, _| !is_data(key));
    files
}

/// The dossiers' dossier.json under `dest` (default data layout), with their SHA-256.
pub fn stored_data(dest: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    walk(dest, dest, &mut files);
    files.retain(|key, _| is_data(key));
    files
}

/// Whether `key` is a dossier's dossier.json (default data layout; no simulated file has
/// that name).
fn is_data(key: &str) -> bool {
    key.rsplit('/').next() == Some("dossier.json")
}

fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel == ".dsfiles" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            walk(root, &path, files);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            files.insert(rel, hex(&sha2::Sha256::digest(&bytes)));
        }
    }
}

/// Every path under `dir`, recursively, relative (files and directories).
pub fn all_paths(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            out.push(
                path.strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
