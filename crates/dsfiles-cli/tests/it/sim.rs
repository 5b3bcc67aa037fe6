//! The DS simulator, started in the test process on port 0, and helpers to run `dsfiles`
//! against it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

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

/// SHA-256 (hex) of every file under `dest` outside `.dsfiles/`, by relative path.
pub fn stored_files(dest: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    walk(dest, dest, &mut files);
    files
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
