//! `cargo xtask postgres up|down|status`: a throwaway PostgreSQL for the job-store tests of
//! `dsfiles-server` (`DSFILES_TEST_DATABASE_URL`).
//!
//! The cluster lives in a fresh temporary directory (`initdb`), listens on a free loopback port
//! and on a Unix socket inside that directory only (`listen_addresses=127.0.0.1`, `-k <dir>`),
//! trusts local connections (nothing else can reach it) and runs with `fsync=off` (its data is
//! thrown away). `down` stops it (`pg_ctl stop -m fast`) and deletes the directory; `up` records
//! the directory in `.emulators/postgres.dir` so that `down` finds it from another process.
//!
//! PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user when
//! it exists (Debian's package creates it), else to a system user `dsfiles-pg` created here, and
//! every PostgreSQL command runs through `runuser -u <user>`. The binaries come from `PATH` or
//! Debian's `/usr/lib/postgresql/<version>/bin`; when neither has them and we are root,
//! `apt-get install -y postgresql` installs them.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::emulators;

/// The superuser `initdb` creates, and the user in the URL.
const SUPERUSER: &str = "dsfiles";
/// The variable the tests read.
pub const ENV_VAR: &str = "DSFILES_TEST_DATABASE_URL";
/// The user owning the cluster when we run as root and Debian's `postgres` user is missing.
const FALLBACK_USER: &str = "dsfiles-pg";

pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("up") => up().map(|line| println!("{line}")),
        Some("down") => down(),
        Some("status") => status(),
        _ => bail!("usage: cargo xtask postgres up|down|status"),
    }
}

/// Starts a fresh cluster and returns the `DSFILES_TEST_DATABASE_URL=…` line for the tests.
pub fn up() -> Result<String> {
    down()?;
    let bin = binaries()?;
    let owner = owner()?;
    let data = fresh_dir(owner.as_deref())?;
    std::fs::create_dir_all(emulators::dir())?;
    std::fs::write(state_file(), data.display().to_string())?;
    initdb(&bin, &data, owner.as_deref())?;
    let port = free_port()?;
    start(&bin, &data, port, owner.as_deref())?;
    eprintln!(
        "postgres: started on 127.0.0.1:{port} (data in {})",
        data.display()
    );
    Ok(format!(
        "{ENV_VAR}=postgres://{SUPERUSER}@127.0.0.1:{port}/postgres"
    ))
}

/// Stops the cluster `up` started, if any, and deletes its directory.
pub fn down() -> Result<()> {
    let Some(data) = recorded_dir() else {
        return Ok(());
    };
    if data.join("postmaster.pid").is_file() {
        let bin = binaries()?;
        let owner = owner()?;
        let mut stop = as_owner(owner.as_deref(), &bin.join("pg_ctl"));
        stop.args(["stop", "-m", "fast", "-w", "-D"]).arg(&data);
        if let Err(err) = run_quiet(&mut stop) {
            eprintln!("postgres: {err:#}");
        } else {
            eprintln!("postgres: stopped");
        }
    }
    std::fs::remove_dir_all(&data)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        })
        .with_context(|| format!("deleting {}", data.display()))?;
    let _ = std::fs::remove_file(state_file());
    Ok(())
}

fn status() -> Result<()> {
    match recorded_dir() {
        Some(data) if data.join("postmaster.pid").is_file() => {
            println!("postgres running, data in {}", data.display());
        }
        _ => println!("postgres stopped"),
    }
    Ok(())
}

fn state_file() -> PathBuf {
    emulators::dir().join("postgres.dir")
}

fn recorded_dir() -> Option<PathBuf> {
    let text = std::fs::read_to_string(state_file()).ok()?;
    Some(PathBuf::from(text.trim()))
}

/// The directory holding `initdb` and `pg_ctl`, installing Debian's package when missing.
fn binaries() -> Result<PathBuf> {
    if let Some(dir) = find_binaries() {
        return Ok(dir);
    }
    if !is_root() {
        bail!(
            "PostgreSQL's initdb and pg_ctl are not installed (neither on PATH nor in \
             /usr/lib/postgresql/*/bin); install Debian's `postgresql` package"
        );
    }
    eprintln!("postgres: installing Debian's `postgresql` package");
    run_quiet(Command::new("apt-get").args(["update", "-q"]))?;
    run_quiet(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "postgresql"]),
    )?;
    find_binaries().context("`apt-get install postgresql` did not provide initdb and pg_ctl")
}

fn find_binaries() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file());
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The unprivileged user owning the cluster when we are root (`None`: ourselves).
fn owner() -> Result<Option<String>> {
    if !is_root() {
        return Ok(None);
    }
    for user in ["postgres", FALLBACK_USER] {
        if user_exists(user) {
            return Ok(Some(user.to_owned()));
        }
    }
    run_quiet(Command::new("useradd").args([
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        FALLBACK_USER,
    ]))?;
    Ok(Some(FALLBACK_USER.to_owned()))
}

fn user_exists(user: &str) -> bool {
    Command::new("id")
        .arg(user)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A new empty directory under the system's temporary directory, owned by `owner`.
fn fresh_dir(owner: Option<&str>) -> Result<PathBuf> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let dir = base.join(format!("dsfiles-pg-{}-{attempt}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                if let Some(owner) = owner {
                    run_quiet(Command::new("chown").arg(owner).arg(&dir))?;
                }
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("no free directory name under {}", base.display())
}

/// A command run as `owner` (through `runuser`) or as ourselves.
fn as_owner(owner: Option<&str>, program: &Path) -> Command {
    match owner {
        Some(owner) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", owner, "--"]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

fn initdb(bin: &Path, data: &Path, owner: Option<&str>) -> Result<()> {
    let mut cmd = as_owner(owner, &bin.join("initdb"));
    cmd.arg("-D")
        .arg(data)
        .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-locale"]);
    run_quiet(&mut cmd)
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn start(bin: &Path, data: &Path, port: u16, owner: Option<&str>) -> Result<()> {
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=200",
        data.display()
    );
    let mut cmd = as_owner(owner, &bin.join("pg_ctl"));
    cmd.arg("start")
        .arg("-w")
        .arg("-D")
        .arg(data)
        .arg("-l")
        .arg(data.join("server.log"))
        .args(["-o", &options]);
    run_quiet(&mut cmd).with_context(|| {
        format!(
            "starting PostgreSQL; see {}",
            data.join("server.log").display()
        )
    })
}

/// Runs `cmd`; on failure the error carries its output.
fn run_quiet(cmd: &mut Command) -> Result<()> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !output.status.success() {
        bail!(
            "{cmd:?} failed with {}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
