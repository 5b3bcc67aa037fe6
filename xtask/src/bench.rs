//! `cargo xtask bench [--quick] [--rounds N] [--no-object-store] [--perf] [--out FILE]`: dsfiles against
//! curl, curl + md5sum and aria2c on a corpus served by nginx on loopback, with a DS simulator
//! listing the same files; results and the exact commands go to `docs/benchmarks.md`.
//! `--scale` measures one large démarche instead ([`scale`]), into its own block of the same
//! file.
//!
//! Every server it starts (nginx, the simulators) is stopped when it returns, on failure too:
//! nginx by PID from its guard's `Drop`, the simulators with their runtime.

mod corpus;
mod ds;
mod measure;
mod nginx;
mod report;
mod s3;
mod scale;
mod tools;

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};

use corpus::{Corpus, Spec};
use measure::{Sample, timed};
use report::{Case, Report, Row, Target};
use tools::Inputs;

const USAGE: &str =
    "usage: cargo xtask bench [--quick] [--rounds N] [--no-object-store] [--perf] [--out FILE]
       cargo xtask bench [--quick] --serve
       cargo xtask bench --scale [--dossiers N] [--s3-dossiers N | --no-object-store] [--out FILE]";

/// Progress lines on stderr (the binary's only output besides the report file).
pub(crate) fn say(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "bench: {line}");
}

#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    rounds: usize,
    object_store: bool,
    /// Also profile one dsfiles run per corpus with `perf record` (flat profile in `target/bench/perf/`).
    perf: bool,
    /// Start nginx and the simulators, write `target/bench/serve.env`, and wait (for profiling by hand).
    serve: bool,
    /// The scale runs instead (`scale`), on this many dossiers.
    scale: Option<usize>,
    /// Dossiers of the scale runs' S3 démarche (`scale::DEFAULT_S3_DOSSIERS` if not given).
    s3_dossiers: Option<usize>,
    out: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> anyhow::Result<Options> {
    let mut opts = Options {
        quick: false,
        rounds: 0,
        object_store: true,
        perf: false,
        serve: false,
        scale: None,
        s3_dossiers: None,
        out: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--no-object-store" => opts.object_store = false,
            "--perf" => opts.perf = true,
            "--serve" => opts.serve = true,
            "--scale" => {
                opts.scale.get_or_insert(scale::DEFAULT_DOSSIERS);
            }
            "--dossiers" => {
                let n = it.next().context(USAGE)?;
                let n = n.parse().ok().filter(|&n| n > 0);
                opts.scale =
                    Some(n.with_context(|| format!("`--dossiers`: a positive number\n{USAGE}"))?);
            }
            "--s3-dossiers" => {
                let n = it.next().context(USAGE)?;
                let n = n.parse().ok().filter(|&n| n > 0);
                opts.s3_dossiers = Some(
                    n.with_context(|| format!("`--s3-dossiers`: a positive number\n{USAGE}"))?,
                );
            }
            "--rounds" => {
                let n = it.next().context(USAGE)?;
                opts.rounds = n
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .with_context(|| format!("`--rounds {n}`: a positive number\n{USAGE}"))?;
            }
            "--out" => opts.out = Some(PathBuf::from(it.next().context(USAGE)?)),
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if opts.rounds == 0 {
        opts.rounds = if opts.quick { 1 } else { 5 };
    }
    if opts.s3_dossiers.is_some() && (opts.scale.is_none() || !opts.object_store) {
        bail!("`--s3-dossiers` sizes the S3 runs of `--scale`\n{USAGE}");
    }
    Ok(opts)
}

/// The corpora: about 2 GB (2,000 files of up to 8 MiB plus three of 200 MiB) and 10,000 × 4 KiB;
/// `--quick` scales them down to about 100 MB.
fn specs(quick: bool) -> (Spec, Spec) {
    const MIB: u64 = 1 << 20;
    if quick {
        (
            Spec {
                name: "quick-main",
                files: 150,
                min_size: 256,
                max_size: 2 * MIB,
                big: vec![24 * MIB; 2],
                per_dossier: 10,
                seed: 1,
            },
            Spec {
                name: "quick-small",
                files: 1000,
                min_size: 4096,
                max_size: 4096,
                big: vec![],
                per_dossier: 10,
                seed: 2,
            },
        )
    } else {
        (
            Spec {
                name: "main",
                files: 2000,
                min_size: 256,
                max_size: 8 * MIB,
                big: vec![200 * MIB; 3],
                per_dossier: 10,
                seed: 1,
            },
            Spec {
                name: "small",
                files: 10_000,
                min_size: 4096,
                max_size: 4096,
                big: vec![],
                per_dossier: 10,
                seed: 2,
            },
        )
    }
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or(manifest.clone(), Path::to_path_buf)
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Runs a command to completion, returning its stdout; fails with its stderr.
pub(crate) fn run_quiet(cmd: &mut Command) -> anyhow::Result<String> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !output.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn find_in_path(binary: &str) -> Option<PathBuf> {
    if binary.contains('/') {
        return Path::new(binary).is_file().then(|| PathBuf::from(binary));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
}

/// The path of `binary`, installing Debian's `package` with apt-get when it is missing.
pub(crate) fn ensure_tool(binary: &str, package: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = find_in_path(binary) {
        return Ok(path);
    }
    say(format!(
        "`{binary}` is missing: apt-get install -y {package}"
    ));
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    if !install().is_ok_and(|s| s.success()) {
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
        let status =
            install().with_context(|| format!("cannot run apt-get to install `{package}`"))?;
        if !status.success() {
            bail!("apt-get install {package} failed ({status}); install it and run again");
        }
    }
    find_in_path(binary)
        .with_context(|| format!("`{binary}` still missing after installing `{package}`"))
}

fn first_line(cmd: &mut Command) -> String {
    match cmd.stdin(Stdio::null()).output() {
        Ok(o) => {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        }
        Err(e) => format!("unavailable ({e})"),
    }
}

fn machine(root: &Path, dsfiles: &Path) -> Vec<(String, String)> {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<u64>().ok())
                    .unwrap_or(0)
            })
        })
        .map_or("unknown".to_owned(), |kib| {
            format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0))
        });
    let disk = first_line(Command::new("sh").arg("-c").arg(format!(
        "df -hT {} | tail -1 | awk '{{print $1\" (\"$2\"), \"$3\" total, \"$5\" free\"}}'",
        root.display()
    )));
    let flags = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let sha_ni = flags
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| l.split_whitespace().any(|f| f == "sha_ni"));
    vec![
        (
            "CPU".into(),
            format!(
                "{} × {cpu}{}",
                first_line(&mut Command::new("nproc")),
                if sha_ni { " (SHA-NI)" } else { " (no SHA-NI)" }
            ),
        ),
        ("Memory".into(), mem),
        ("Disk".into(), disk),
        (
            "Kernel".into(),
            first_line(Command::new("uname").args(["-sr"])),
        ),
        (
            "dsfiles".into(),
            first_line(Command::new(dsfiles).arg("--version")),
        ),
        (
            "rustc".into(),
            first_line(Command::new("rustc").arg("--version")),
        ),
        ("nginx".into(), first_line(Command::new("nginx").arg("-v"))),
        (
            "curl".into(),
            first_line(Command::new("curl").arg("--version")),
        ),
        (
            "aria2c".into(),
            first_line(Command::new("aria2c").arg("--version")),
        ),
        (
            "md5sum".into(),
            first_line(Command::new("md5sum").arg("--version")),
        ),
    ]
}

/// Paths and shared state of one bench run.
struct Bench {
    dir: PathBuf,
    dsfiles: PathBuf,
    rounds: usize,
    /// When the bench last deleted files ([`Bench::remove`]), for [`Bench::settle`].
    last_removal: std::cell::Cell<Option<Instant>>,
}

/// How long no measured run starts after the bench deleted files. ext4 without a journal (the
/// bench machine's disk) skips inodes freed in the last 60 seconds one by one when it allocates
/// new ones (`recently_deleted` in the kernel's `fs/ext4/ialloc.c`; 300 s more while the inode
/// table is not written back, hence the `sync` first): a run started right after another run's
/// 10,000 files were deleted spent most of its system time there (from 0.7 s to 9.9 s for
/// curl's 10,000 files in one bench), measuring the deletion instead of the tool.
const AFTER_REMOVAL: std::time::Duration = std::time::Duration::from_secs(65);

/// [`Bench::settle`] for a deletion made at `removed` (if any).
pub(crate) fn settle_after(removed: Option<Instant>) {
    let _ = Command::new("sync").status();
    let Some(at) = removed else {
        return;
    };
    let wait = AFTER_REMOVAL.saturating_sub(at.elapsed());
    if !wait.is_zero() {
        say(format!(
            "waiting {} s: files were deleted, and this disk pays for it in the next run",
            wait.as_secs()
        ));
        std::thread::sleep(wait);
    }
}

/// Drops every file under `dir` from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`;
/// the pages are clean, since [`settle_after`] ran `sync`), so that each run starts with the
/// same memory: what earlier runs wrote goes back to the free lists, which the next run's
/// page-cache writes take first.
///
/// Measured on the bench machine (a virtual machine): curl wrote the 2.2 GB case with 2.3 s of
/// system time when the kept runs' pages had just been freed, and with 5.5 to 8.0 s in the runs
/// after, as the cache of kept runs grew into memory the machine had not touched before (53% of
/// its samples in `copy_folio_from_iter_atomic`, the copy into new page-cache pages); the tools
/// that write through the page cache (curl, aria2c, dsfiles with `fsync=false`) paid it in the
/// later rounds only, dsfiles' `O_DIRECT` writes never. Freed this way before every run, curl's
/// system time stayed at 2.1 to 2.8 s.
fn evict_page_cache(dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list `{}`", dir.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .with_context(|| format!("cannot read the type of `{}`", path.display()))?;
        if kind.is_dir() {
            evict_page_cache(&path)?;
        } else if kind.is_file() {
            let file = fs::File::open(&path)
                .with_context(|| format!("cannot open `{}`", path.display()))?;
            rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).with_context(
                || format!("cannot evict `{}` from the page cache", path.display()),
            )?;
        }
    }
    Ok(())
}

impl Bench {
    fn new(dir: PathBuf, dsfiles: PathBuf, rounds: usize) -> Bench {
        Bench {
            dir,
            dsfiles,
            rounds,
            last_removal: std::cell::Cell::new(None),
        }
    }

    /// A fresh, empty directory for one run, on the same disk as the corpus.
    fn fresh_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.dir.join("runs").join(name);
        self.remove(&dir)?;
        fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
        Ok(dir)
    }

    /// Deletes `dir` if it exists, and remembers when ([`AFTER_REMOVAL`]).
    fn remove(&self, dir: &Path) -> anyhow::Result<()> {
        if dir.exists() {
            fs::remove_dir_all(dir)
                .with_context(|| format!("cannot remove `{}`", dir.display()))?;
            self.last_removal.set(Some(Instant::now()));
        }
        Ok(())
    }

    /// Before a measured run: writes back what earlier runs left in the page cache, waits
    /// until [`AFTER_REMOVAL`] has passed since the last deletion, and drops the earlier runs'
    /// files from the page cache ([`evict_page_cache`]).
    fn settle(&self) -> anyhow::Result<()> {
        settle_after(self.last_removal.get());
        evict_page_cache(&self.dir.join("runs"))
    }

    /// Deletes the directories of `kept` when the disk has less than `need` bytes free, so that
    /// a case keeps its runs' directories (deleting them between runs would make every run wait
    /// [`AFTER_REMOVAL`]) as long as it has room.
    fn make_room(&self, kept: &mut Vec<PathBuf>, need: u64) -> anyhow::Result<()> {
        if free_bytes(&self.dir)? >= need {
            return Ok(());
        }
        for dir in kept.drain(..) {
            self.remove(&dir)?;
        }
        Ok(())
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// `dsfiles list` of a démarche, turned into the other tools' inputs.
    fn inputs(&self, demarche: &ds::Demarche, name: &str) -> anyhow::Result<Inputs> {
        let listing = run_quiet(
            Command::new(&self.dsfiles)
                .args([
                    "--quiet",
                    "list",
                    "--demarche",
                    &demarche.number.to_string(),
                    "--format",
                    "jsonl",
                ])
                .envs(demarche.env()),
        )
        .with_context(|| format!("`dsfiles list` of démarche `{}`", demarche.number))?;
        let files = tools::parse_listing(&listing)?;
        if files.len() != demarche.files
            || files.iter().map(|f| f.size).sum::<u64>() != demarche.bytes
        {
            bail!(
                "`dsfiles list` of démarche `{}` gave {} files, expected {} ({} bytes)",
                demarche.number,
                files.len(),
                demarche.files,
                demarche.bytes
            );
        }
        tools::write_inputs(&self.dir.join("inputs").join(name), &files)
    }
}

/// Bytes free on the file system of `dir` (`df`, as GNU coreutils prints it).
fn free_bytes(dir: &Path) -> anyhow::Result<u64> {
    let out = run_quiet(Command::new("df").args(["--output=avail", "-B1"]).arg(dir))?;
    out.lines()
        .nth(1)
        .and_then(|line| line.trim().parse().ok())
        .with_context(|| {
            format!(
                "cannot read the free space of `{}` from df: `{out}`",
                dir.display()
            )
        })
}

fn check_tree(dir: &Path, files: usize, bytes: u64, tool: &str) -> anyhow::Result<()> {
    let (n, b) = tools::tally(dir)?;
    if (n, b) != (files, bytes) {
        bail!(
            "{tool} left {n} files ({b} bytes) in `{}`, expected {files} ({bytes} bytes)",
            dir.display()
        );
    }
    Ok(())
}

fn summary(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("`{}` is not JSON", path.display()))
}

fn counter(summary: &serde_json::Value, key: &str) -> u64 {
    summary
        .get(key)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(u64::MAX)
}

/// Checks a `--summary-json`: `stored` files stored, nothing failed.
fn check_summary(path: &Path, stored: usize, bytes: u64) -> anyhow::Result<serde_json::Value> {
    let s = summary(path)?;
    let failed = s
        .get("failed")
        .and_then(serde_json::Value::as_array)
        .map_or(usize::MAX, Vec::len);
    if counter(&s, "stored") != stored as u64
        || counter(&s, "bytes_downloaded") != bytes
        || failed != 0
    {
        bail!(
            "dsfiles summary `{}`: stored {}, bytes {}, failed {failed}; expected {stored} files, {bytes} bytes",
            path.display(),
            counter(&s, "stored"),
            counter(&s, "bytes_downloaded")
        );
    }
    Ok(s)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Dsfiles,
    DsfilesNoFsync,
    /// curl, then md5sum over what it downloaded: one download gives both rows.
    Curl,
    Aria2,
}

/// One démarche measured with several tools over alternating rounds.
fn compare(
    bench: &Bench,
    name: &str,
    demarche: &ds::Demarche,
    inputs: &Inputs,
    tools: &[Tool],
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Rows::default();
    let mut kept = Vec::new();
    // Room for one more run, and 2 GB to spare.
    let need = demarche.bytes + demarche.bytes / 10 + (2 << 30);
    for round in 0..bench.rounds {
        for tool in round_order(tools, round) {
            let label = format!("{name}-{tool:?}-r{round}").to_lowercase();
            bench.make_room(&mut kept, need)?;
            let dest = bench.fresh_dir(&label)?;
            bench.settle()?;
            match tool {
                Tool::Dsfiles | Tool::DsfilesNoFsync => {
                    measure_dsfiles(bench, demarche, inputs, tool, (&label, &dest), &mut rows)?
                }
                Tool::Curl => measure_curl(bench, inputs, tools, (&label, &dest), &mut rows)?,
                Tool::Aria2 => measure_aria2(bench, inputs, (&label, &dest), &mut rows)?,
            }
            // The last dsfiles destination stays for the no-op re-runs; the others are deleted
            // when the case ends, or earlier if the disk runs out of room.
            if !(tool == Tool::Dsfiles && round + 1 == bench.rounds) {
                kept.push(dest);
            }
        }
    }
    for dir in &kept {
        bench.remove(dir)?;
    }
    Ok(rows.0)
}

/// The tools in the order of `round`: forward on even rounds, backward on odd ones.
fn round_order(tools: &[Tool], round: usize) -> Vec<Tool> {
    if round.is_multiple_of(2) {
        tools.to_vec()
    } else {
        tools.iter().rev().copied().collect()
    }
}

/// The rows of one comparison, one per tool name, in the order tools first report.
#[derive(Default)]
struct Rows(Vec<Row>);

impl Rows {
    /// Adds `sample` to `tool`'s row; the first sample creates the row with its commands.
    fn push(&mut self, tool: &str, commands: Vec<String>, sample: Sample, bytes: u64) {
        match self.0.iter_mut().find(|r| r.tool == tool) {
            Some(row) => row.samples.push(sample),
            None => self.0.push(Row {
                tool: tool.to_owned(),
                commands,
                samples: vec![sample],
                bytes,
            }),
        }
    }
}

/// The `dsfiles sync` of run `label` into `dest`, and where its summary goes.
fn dsfiles_sync(
    bench: &Bench,
    demarche: &ds::Demarche,
    (label, dest): (&str, &Path),
    extra: &[&str],
) -> (measure::Cmd, PathBuf) {
    let summary_path = bench.dir.join("logs").join(format!("{label}.summary.json"));
    let cmd = tools::dsfiles(
        &bench.dsfiles,
        demarche.number,
        &dest.display().to_string(),
        &summary_path,
        demarche.env(),
        extra,
    );
    (cmd, summary_path)
}

/// One timed `dsfiles sync` (with or without fsync) into `dest`, its summary and tree checked.
fn measure_dsfiles(
    bench: &Bench,
    demarche: &ds::Demarche,
    inputs: &Inputs,
    tool: Tool,
    (label, dest): (&str, &Path),
    rows: &mut Rows,
) -> anyhow::Result<()> {
    let extra: &[&str] = if tool == Tool::DsfilesNoFsync {
        &["--dest-option", "fsync=false"]
    } else {
        &[]
    };
    let (cmd, summary_path) = dsfiles_sync(bench, demarche, (label, dest), extra);
    let sample = timed(&cmd, &bench.log(label))?;
    check_summary(&summary_path, inputs.files, inputs.bytes)?;
    check_tree(dest, inputs.files, inputs.bytes, "dsfiles")?;
    let tool_name = if tool == Tool::Dsfiles {
        "dsfiles sync"
    } else {
        "dsfiles sync (fsync=false)"
    };
    say(format!(
        "{label}: {:.2} s, {} MiB",
        sample.wall_secs,
        sample.peak_rss_kib / 1024
    ));
    rows.push(tool_name, vec![cmd.display()], sample, inputs.bytes);
    Ok(())
}

/// One timed curl into `dest`, then md5sum over it; the sum row only when aria2c is compared.
fn measure_curl(
    bench: &Bench,
    inputs: &Inputs,
    tools: &[Tool],
    (label, dest): (&str, &Path),
    rows: &mut Rows,
) -> anyhow::Result<()> {
    let cmd = tools::curl(&inputs.curl, dest);
    let sample = timed(&cmd, &bench.log(label))?;
    check_tree(dest, inputs.files, inputs.bytes, "curl")?;
    let md5 = tools::md5sum(&inputs.md5, dest);
    let hashed = timed(&md5, &bench.log(&format!("{label}-md5sum")))?;
    say(format!(
        "{label}: curl {:.2} s + md5sum {:.2} s",
        sample.wall_secs, hashed.wall_secs
    ));
    rows.push("curl", vec![cmd.display()], sample.clone(), inputs.bytes);
    if tools.contains(&Tool::Aria2) {
        rows.push(
            "curl + md5sum",
            vec![cmd.display(), md5.display()],
            sample.then(&hashed),
            inputs.bytes,
        );
    }
    Ok(())
}

/// One timed aria2c into `dest`, its tree checked.
fn measure_aria2(
    bench: &Bench,
    inputs: &Inputs,
    (label, dest): (&str, &Path),
    rows: &mut Rows,
) -> anyhow::Result<()> {
    let cmd = tools::aria2c(&inputs.aria2, dest);
    let sample = timed(&cmd, &bench.log(label))?;
    check_tree(dest, inputs.files, inputs.bytes, "aria2c")?;
    say(format!(
        "{label}: {:.2} s, {} MiB",
        sample.wall_secs,
        sample.peak_rss_kib / 1024
    ));
    rows.push("aria2c", vec![cmd.display()], sample, inputs.bytes);
    Ok(())
}

/// Re-runs dsfiles over a destination that already holds every file: 0 bytes may move.
fn noop_reruns(
    bench: &Bench,
    name: &str,
    demarche: &ds::Demarche,
    files: usize,
    bytes: u64,
) -> anyhow::Result<Vec<Row>> {
    let dest = bench
        .dir
        .join("runs")
        .join(format!("{name}-dsfiles-r{}", bench.rounds - 1));
    let mut rows = Vec::new();
    for (tool, extra) in [
        ("dsfiles sync (no-op, --since auto)", &[][..]),
        ("dsfiles sync (no-op, --full)", &["--full"][..]),
    ] {
        let mut row = Row {
            tool: tool.to_owned(),
            commands: Vec::new(),
            samples: Vec::new(),
            bytes: 0,
        };
        for round in 0..bench.rounds {
            let label = format!(
                "{name}-noop{}-r{round}",
                if extra.is_empty() { "" } else { "-full" }
            );
            let (cmd, summary_path) = dsfiles_sync(bench, demarche, (&label, &dest), extra);
            bench.settle()?;
            let sample = timed(&cmd, &bench.log(&label))?;
            let s = check_summary(&summary_path, 0, 0)?;
            let skipped = counter(&s, "skipped_unchanged");
            if !extra.is_empty() && skipped != files as u64 {
                bail!("no-op re-run with --full skipped {skipped} files, expected {files}");
            }
            say(format!(
                "{label}: {:.2} s, {} MiB, 0 bytes moved, {skipped} checked",
                sample.wall_secs,
                sample.peak_rss_kib / 1024
            ));
            row.commands = vec![cmd.display()];
            row.samples.push(sample);
        }
        rows.push(row);
    }
    check_tree(&dest, files, bytes, "dsfiles (after the no-op re-runs)")?;
    bench.remove(&dest)?;
    Ok(rows)
}

/// dsfiles into S3: the 200 MB files, peak RSS while they stream through multipart uploads.
fn object_store(
    bench: &Bench,
    s3: &s3::S3,
    demarche: &ds::Demarche,
    files: usize,
    bytes: u64,
) -> anyhow::Result<Row> {
    let mut row = Row {
        tool: "dsfiles sync → S3".to_owned(),
        commands: Vec::new(),
        samples: Vec::new(),
        bytes,
    };
    let run_id = std::process::id();
    for round in 0..bench.rounds {
        let label = format!("s3-r{round}");
        let dest = format!("s3://{}/bench-{run_id}-r{round}", s3.bucket);
        let summary_path = bench.dir.join("logs").join(format!("{label}.summary.json"));
        let mut env = demarche.env();
        env.extend(s3.env.iter().cloned());
        let cmd = tools::dsfiles(
            &bench.dsfiles,
            demarche.number,
            &dest,
            &summary_path,
            env,
            &[],
        );
        let sample = timed(&cmd, &bench.log(&label))?;
        check_summary(&summary_path, files, bytes)?;
        say(format!(
            "{label}: {:.2} s, {} MiB",
            sample.wall_secs,
            sample.peak_rss_kib / 1024
        ));
        row.commands = vec![cmd.display()];
        row.samples.push(sample);
    }
    Ok(row)
}

/// One dsfiles run under `perf record`; the flat profile (by DSO and symbol) goes next to it.
fn profile(
    bench: &Bench,
    name: &str,
    demarche: &ds::Demarche,
    inputs: &Inputs,
) -> anyhow::Result<PathBuf> {
    let perf = ensure_tool("perf", "linux-perf")?;
    let dir = bench.dir.join("perf");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let dest = bench.fresh_dir(&format!("{name}-perf"))?;
    let data = dir.join(format!("{name}.data"));
    let summary_path = dir.join(format!("{name}.summary.json"));
    let sync = tools::dsfiles(
        &bench.dsfiles,
        demarche.number,
        &dest.display().to_string(),
        &summary_path,
        demarche.env(),
        &[],
    );
    let mut cmd = measure::Cmd::new(perf.display().to_string(), &["record", "-F", "999", "-o"]);
    cmd.args.push(data.display().to_string());
    cmd.args.push("--".to_owned());
    cmd.args.push(sync.program.clone());
    cmd.args.extend(sync.args.iter().cloned());
    cmd.env = sync.env.clone();
    bench.settle()?;
    timed(&cmd, &bench.log(&format!("{name}-perf")))?;
    check_summary(&summary_path, inputs.files, inputs.bytes)?;
    bench.remove(&dest)?;
    let text = run_quiet(
        Command::new(&perf)
            .arg("report")
            .arg("-i")
            .arg(&data)
            .args([
                "--stdio",
                "--no-children",
                "--sort",
                "comm,dso,sym",
                "--percent-limit",
                "0.5",
            ]),
    )?;
    let out = dir.join(format!("{name}.txt"));
    fs::write(&out, text).with_context(|| format!("cannot write `{}`", out.display()))?;
    say(format!("profile of dsfiles on `{name}`: {}", out.display()));
    Ok(out)
}

/// Single-core throughput of the digests, from `cargo bench -p dsfiles-core --bench hash`
/// (lines `NAME<TAB>MB/s`).
fn hash_throughput(cargo: &str, root: &Path) -> anyhow::Result<Vec<(String, f64)>> {
    say("digests, one core: cargo bench -p dsfiles-core --bench hash");
    let out = run_quiet(
        Command::new(cargo)
            .args(["bench", "-q", "-p", "dsfiles-core", "--bench", "hash"])
            .current_dir(root),
    )?;
    parse_hash_throughput(&out)
}

fn parse_hash_throughput(out: &str) -> anyhow::Result<Vec<(String, f64)>> {
    let rows: Vec<(String, f64)> = out
        .lines()
        .filter_map(|line| {
            let (name, mbps) = line.split_once('\t')?;
            Some((name.trim().to_owned(), mbps.trim().parse().ok()?))
        })
        .collect();
    if rows.is_empty() {
        bail!(
            "the hash bench printed no `NAME<TAB>MB/s` line: `{}`",
            out.trim()
        );
    }
    Ok(rows)
}

/// `--serve`: writes how to reach each démarche to `target/bench/serve.env` and waits for a
/// line (or the end) on standard input, so that runs can be timed or profiled by hand.
fn serve(dir: &Path, dsfiles: &Path, demarches: &[&ds::Demarche]) -> anyhow::Result<()> {
    let mut text = String::from("# written by `cargo xtask bench --serve`; valid while it runs\n");
    for d in demarches {
        let env: Vec<String> = d.env().iter().map(|(k, v)| format!("{k}={v}")).collect();
        text.push_str(&format!(
            "# démarche {}: {} files, {} bytes\n# env {} {} sync --demarche {} --dest DIR\n",
            d.number,
            d.files,
            d.bytes,
            env.join(" "),
            dsfiles.display(),
            d.number
        ));
    }
    let path = dir.join("serve.env");
    fs::write(&path, &text).with_context(|| format!("cannot write `{}`", path.display()))?;
    say(format!(
        "serving; how to reach each démarche: `{}`. Press Enter (or close stdin) to stop.",
        path.display()
    ));
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    Ok(())
}

fn ratio_target(what: &str, limit: f64, num: Option<f64>, den: Option<f64>) -> Target {
    let measured = num.zip(den).filter(|(_, d)| *d > 0.0).map(|(n, d)| n / d);
    Target {
        what: what.to_owned(),
        limit: format!("≤ {limit:.2}×"),
        measured: measured.map_or("–".to_owned(), |r| {
            format!(
                "{r:.2}× ({:.2} s / {:.2} s)",
                num.unwrap_or(0.0),
                den.unwrap_or(0.0)
            )
        }),
        pass: measured.map(|r| r <= limit),
    }
}

fn rss_target(what: &str, row: Option<&Row>) -> Target {
    let mib = row.and_then(Row::max_rss_mib);
    Target {
        what: what.to_owned(),
        limit: "≤ 64 MiB".to_owned(),
        measured: mib.map_or("–".to_owned(), |m| {
            format!("{m:.1} MiB (max over rounds)")
        }),
        pass: mib.map(|m| m <= 64.0),
    }
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let opts = parse_args(args)?;
    let started = Instant::now();
    let started_at = first_line(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]));
    let root = workspace_root();
    let dir = target_dir(&root).join("bench");
    if let Some(dossiers) = opts.scale {
        return run_scale(&opts, dossiers, &root, &dir);
    }
    prepare(&dir)?;
    let (cargo, dsfiles) = build_dist(&root, &[])?;
    let hashing = if opts.serve {
        Vec::new()
    } else {
        hash_throughput(&cargo, &root)?
    };

    let corpus_root = dir.join("corpus");
    let corpora = ensure_corpora(&corpus_root, opts.quick)?;
    let (main, small) = (&corpora[0], &corpora[1]);

    let nginx = nginx::Nginx::start(&dir.join("nginx"), &corpus_root)?;
    let mut sims = ds::Ds::new()?;
    let base = nginx.base_url();
    let main_demarche = sims.start(1001, &base, &main.files.iter().collect::<Vec<_>>())?;
    let small_demarche = sims.start(1002, &base, &small.files.iter().collect::<Vec<_>>())?;
    let big_files: Vec<&corpus::CorpusFile> = main.files[main.spec.files..].iter().collect();
    let big_demarche = sims.start(1003, &base, &big_files)?;

    if opts.serve {
        let result = serve(
            &dir,
            &dsfiles,
            &[&main_demarche, &small_demarche, &big_demarche],
        );
        sims.shutdown();
        drop(nginx);
        return result;
    }

    let result = (|| -> anyhow::Result<Report> {
        let bench = Bench::new(dir.clone(), dsfiles.clone(), opts.rounds);
        let cases = measure_cases(
            &bench,
            &opts,
            &root,
            &sims,
            (main, small),
            [&main_demarche, &small_demarche, &big_demarche],
            &big_files,
        )?;
        let targets = targets(&cases, main, small, &big_files);
        Ok(Report {
            hashing,
            title: report_title(opts.quick),
            started: started_at.clone(),
            duration_secs: 0.0,
            machine: machine(&root, &dsfiles),
            setup: setup(nginx.addr, opts.rounds),
            cases,
            targets,
        })
    })();

    // Stop every server, whatever happened.
    sims.shutdown();
    drop(nginx);
    let mut report = result?;
    report.duration_secs = started.elapsed().as_secs_f64();
    write_report(&mut report, &opts, &root, &dir)
}

/// `--scale`: the shipped binary on one large démarche ([`scale`]).
fn run_scale(opts: &Options, dossiers: usize, root: &Path, dir: &Path) -> anyhow::Result<()> {
    ensure_tool("/usr/bin/time", "time")?;
    let (_, dsfiles) = build_dist(root, &[("dsfiles-sim", "dsfiles-sim")])?;
    let sim = dsfiles.with_file_name("dsfiles-sim");
    let scale = scale::ScaleOptions {
        dossiers,
        object_store: opts
            .object_store
            .then(|| opts.s3_dossiers.unwrap_or(scale::DEFAULT_S3_DOSSIERS)),
    };
    let out = (opts.out.clone()).unwrap_or_else(|| root.join("docs/benchmarks.md"));
    scale::run(&scale, (root, dir), (&dsfiles, &sim), &out)
}

/// Measures the main case, the small case and (if asked) the object-store case, then profiles
/// one dsfiles run per corpus with `--perf`.
fn measure_cases(
    bench: &Bench,
    opts: &Options,
    root: &Path,
    sims: &ds::Ds,
    (main, small): (&Corpus, &Corpus),
    [main_demarche, small_demarche, big_demarche]: [&ds::Demarche; 3],
    big_files: &[&corpus::CorpusFile],
) -> anyhow::Result<Vec<Case>> {
    let main_inputs = bench.inputs(main_demarche, main.spec.name)?;
    let small_inputs = bench.inputs(small_demarche, small.spec.name)?;
    let mut cases = vec![main_case(bench, main, main_demarche, &main_inputs)?];
    cases.push(small_case(bench, small, small_demarche, &small_inputs)?);
    if opts.object_store {
        cases.push(object_store_case(
            bench,
            root,
            sims,
            big_files,
            big_demarche,
        )?);
    }

    if opts.perf {
        profile(bench, main.spec.name, main_demarche, &main_inputs)?;
        profile(bench, small.spec.name, small_demarche, &small_inputs)?;
    }
    Ok(cases)
}

/// The report's title, naming the command that produced it.
fn report_title(quick: bool) -> String {
    if quick {
        "Quick run (`cargo xtask bench --quick`)".to_owned()
    } else {
        "Full run (`cargo xtask bench`)".to_owned()
    }
}

/// Creates `target/bench/{logs,runs,inputs,corpus}` and checks that the compared tools are installed.
fn prepare(dir: &Path) -> anyhow::Result<()> {
    for sub in ["logs", "runs", "inputs", "corpus"] {
        fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("cannot create `{}`", dir.join(sub).display()))?;
    }
    for (binary, package) in [
        ("curl", "curl"),
        ("md5sum", "coreutils"),
        ("/usr/bin/time", "time"),
        ("aria2c", "aria2"),
        ("nginx", "nginx"),
    ] {
        ensure_tool(binary, package)?;
    }
    Ok(())
}

/// Builds the shipped `dsfiles` binary; returns the cargo command and the binary's path.
fn build_dist(root: &Path, also: &[(&str, &str)]) -> anyhow::Result<(String, PathBuf)> {
    // The shipped build (`dist`: fat LTO, one codegen unit), not the quick `release` profile
    // of `cargo run --release`: the bench measures what users run. `also`: more
    // `(package, binary)` pairs built the same way, into the same directory.
    let mut args: Vec<&str> = vec![
        "build",
        "--profile",
        "dist",
        "-p",
        "dsfiles-cli",
        "--bin",
        "dsfiles",
    ];
    for (package, bin) in also {
        args.extend(["-p", package, "--bin", bin]);
    }
    say(format!(
        "building the shipped binaries: cargo {}",
        args.join(" ")
    ));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .args(&args)
        .current_dir(root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    let dsfiles = target_dir(root).join("dist/dsfiles");
    Ok((cargo, dsfiles))
}

/// Generates (or reuses) the main and the small corpus, in that order.
fn ensure_corpora(corpus_root: &Path, quick: bool) -> anyhow::Result<Vec<Corpus>> {
    let (main_spec, small_spec) = specs(quick);
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let mut corpora: Vec<Corpus> = Vec::new();
    for spec in [&main_spec, &small_spec] {
        let t = Instant::now();
        let c = corpus::ensure(corpus_root, spec, threads)?;
        say(format!(
            "corpus `{}`: {} files, {:.0} MB, {} in {:.1} s",
            spec.name,
            c.files.len(),
            c.total_bytes() as f64 / 1e6,
            if c.generated { "generated" } else { "reused" },
            t.elapsed().as_secs_f64()
        ));
        corpora.push(c);
    }
    Ok(corpora)
}

/// The main case: every tool on the main corpus, each run into a fresh empty directory.
fn main_case(
    bench: &Bench,
    main: &Corpus,
    main_demarche: &ds::Demarche,
    main_inputs: &Inputs,
) -> anyhow::Result<Case> {
    let all = [Tool::Dsfiles, Tool::Curl, Tool::Aria2, Tool::DsfilesNoFsync];
    let rows = compare(bench, main.spec.name, main_demarche, main_inputs, &all)?;
    bench.remove(&bench.dir.join("runs").join(format!(
        "{}-dsfiles-r{}",
        main.spec.name,
        bench.rounds - 1
    )))?;
    Ok(Case {
        title: format!(
            "{} files, {:.2} GB",
            main.files.len(),
            main.total_bytes() as f64 / 1e9
        ),
        description: format!(
            "{} files of {}–{} bytes (log-uniform) plus {} of {} MiB, in {} dossiers; each run into a fresh empty directory.",
            main.spec.files,
            main.spec.min_size,
            main.spec.max_size,
            main.spec.big.len(),
            main.spec.big.first().copied().unwrap_or(0) >> 20,
            main.dossiers()
        ),
        rows,
    })
}

/// The small case: dsfiles and curl on 4 KiB files, then dsfiles' no-op re-runs.
fn small_case(
    bench: &Bench,
    small: &Corpus,
    small_demarche: &ds::Demarche,
    small_inputs: &Inputs,
) -> anyhow::Result<Case> {
    let mut rows = compare(
        bench,
        small.spec.name,
        small_demarche,
        small_inputs,
        &[Tool::Dsfiles, Tool::Curl],
    )?;
    let noop = noop_reruns(
        bench,
        small.spec.name,
        small_demarche,
        small.files.len(),
        small.total_bytes(),
    )?;
    rows.extend(noop);
    Ok(Case {
        title: format!("{} files of 4 KiB, and a no-op re-run", small.files.len()),
        description: format!(
            "{} files of {} bytes in {} dossiers. The no-op rows re-run dsfiles over the last destination, which holds every file: 0 bytes moved (checked in the summary).",
            small.files.len(),
            small.spec.min_size,
            small.dossiers()
        ),
        rows,
    })
}

/// The object-store case: the large files into S3 (the emulator of `.emulators/env`, or s3s-fs).
fn object_store_case(
    bench: &Bench,
    root: &Path,
    sims: &ds::Ds,
    big_files: &[&corpus::CorpusFile],
    big_demarche: &ds::Demarche,
) -> anyhow::Result<Case> {
    let s3 = match s3::from_env_file(root) {
        Some(s3) => s3,
        None => s3::start_s3s_fs(sims.runtime(), &bench.dir.join("s3s-fs"))?,
    };
    say(format!("object-store case: {}", s3.describe));
    let bytes = big_files.iter().map(|f| f.size).sum();
    let row = object_store(bench, &s3, big_demarche, big_files.len(), bytes);
    let description = format!(
        "The large files only, streamed through MD5/SHA-256 into multipart uploads (dsfiles' default part size). Endpoint: {}.",
        s3.describe
    );
    // The in-process store holds every round's objects on disk: stop it and free them.
    if s3.in_process() {
        drop(s3);
        let _ = fs::remove_dir_all(bench.dir.join("s3s-fs"));
    }
    Ok(Case {
        title: format!(
            "Object store: {} files of {} MiB into S3",
            big_files.len(),
            big_files.first().map_or(0, |f| f.size >> 20)
        ),
        description,
        rows: vec![row?],
    })
}

/// The targets the report checks, from the measured cases (main first, small second).
fn targets(
    cases: &[Case],
    main: &Corpus,
    small: &Corpus,
    big_files: &[&corpus::CorpusFile],
) -> Vec<Target> {
    let main_case = &cases[0];
    let wall = |c: &Case, tool: &str| c.row(tool).and_then(Row::median_wall);
    let cpu = |c: &Case, tool: &str| c.row(tool).and_then(Row::median_cpu);
    let (gb, big_mib) = (
        main.total_bytes() as f64 / 1e9,
        big_files.first().map_or(0, |f| f.size >> 20),
    );
    let mut targets = vec![
        ratio_target(
            &format!("dsfiles wall time vs curl ({gb:.2} GB)"),
            // Issue 13's target: no slower than a plain download.
            1.0,
            wall(main_case, "dsfiles sync"),
            wall(main_case, "curl"),
        ),
        ratio_target(
            &format!("dsfiles wall time vs curl + md5sum ({gb:.2} GB)"),
            0.9,
            wall(main_case, "dsfiles sync"),
            wall(main_case, "curl + md5sum"),
        ),
        ratio_target(
            &format!("dsfiles CPU time vs curl ({gb:.2} GB)"),
            1.5,
            cpu(main_case, "dsfiles sync"),
            cpu(main_case, "curl"),
        ),
        rss_target(
            &format!("dsfiles peak RSS ({gb:.2} GB, {big_mib} MiB files in flight)"),
            main_case.row("dsfiles sync"),
        ),
    ];
    let s3_row = cases
        .iter()
        .find(|c| c.title.starts_with("Object store"))
        .and_then(|c| c.rows.first());
    targets.push(rss_target(
        &format!("dsfiles peak RSS into S3 ({big_mib} MiB files)"),
        s3_row,
    ));
    let small_case = &cases[1];
    targets.push(ratio_target(
        &format!(
            "dsfiles wall time vs curl ({} × 4 KiB, informative)",
            small.files.len()
        ),
        1.25,
        wall(small_case, "dsfiles sync"),
        wall(small_case, "curl"),
    ));
    targets.push(ratio_target(
        &format!("dsfiles CPU time vs curl ({} × 4 KiB)", small.files.len()),
        1.3,
        cpu(small_case, "dsfiles sync"),
        cpu(small_case, "curl"),
    ));
    targets
}

/// The report's description of the setup.
fn setup(nginx_addr: std::net::SocketAddr, rounds: usize) -> Vec<String> {
    vec![
        format!("Files served by nginx ({} worker processes, `sendfile on`, HTTP/1.1 keep-alive) on http://{}/ from `target/bench/corpus/`; config generated in `target/bench/nginx/nginx.conf`.", 2, nginx_addr),
        "The DS API is `dsfiles-sim` in the bench process (optimised even in this dev build: `[profile.dev.package.dsfiles-sim]` in Cargo.toml): démarches whose file URLs point straight at nginx, with the corpus' sizes and MD5 checksums. The URL list of curl and aria2c comes from `dsfiles list --format jsonl` of the same démarche.".to_owned(),
        format!("{} round(s); the order of the tools alternates (forward, then backward); median, min and max per tool. Every run writes into a fresh empty directory under `target/bench/runs/` (same disk as the corpus); `sync` is called before each run so that one run's writeback does not land in the next. Run directories are kept until their case ends (or the disk runs short) and no run starts within 65 s of a deletion: ext4 without a journal makes the next 60 s of inode allocations skip the freed inodes one by one. Right before each run, the kept runs' files are dropped from the page cache (`posix_fadvise(DONTNEED)`), so that every run's page-cache writes land on memory just freed rather than on memory the machine has not touched yet, which cost curl up to 3.5× its system time in later rounds.", rounds),
        "Wall time, peak RSS and CPU time from GNU time (`/usr/bin/time -f '%e %M %U %S'`, peak RSS = the process' VmHWM, CPU = user + system time of the process, not of nginx). `curl + md5sum` is curl's run followed by `md5sum --check` of its files (times added, peak RSS the larger of the two).".to_owned(),
        "dsfiles checks MD5 against DS's checksum and computes SHA-256 of every byte, writes each file under `.dsfiles/tmp/` with `O_DIRECT` (straight to the disk), fsyncs it and renames it into place (the default); the `fsync=false` row writes through the page cache without fsync, as curl does. curl verifies nothing; aria2c verifies MD5 after each download.".to_owned(),
    ]
}

/// Shows commands relative to the workspace root, writes the report and prints each target.
fn write_report(
    report: &mut Report,
    opts: &Options,
    root: &Path,
    dir: &Path,
) -> anyhow::Result<()> {
    // Commands as executed, with paths shown relative to the workspace root (where they were run from).
    let prefix = format!("{}/", root.display());
    for row in report.cases.iter_mut().flat_map(|c| c.rows.iter_mut()) {
        for command in &mut row.commands {
            *command = command.replace(&prefix, "");
        }
    }

    let out = opts.out.clone().unwrap_or_else(|| {
        if opts.quick {
            dir.join("benchmarks-quick.md")
        } else {
            root.join("docs/benchmarks.md")
        }
    });
    let existing = fs::read_to_string(&out).unwrap_or_default();
    fs::write(&out, report::splice(&existing, &report::render(report)))
        .with_context(|| format!("cannot write `{}`", out.display()))?;
    for t in &report.targets {
        say(format!(
            "{}: {} (limit {}) {}",
            t.what,
            t.measured,
            t.limit,
            match t.pass {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "not measured",
            }
        ));
    }
    say(format!(
        "report written to `{}` ({:.0} s)",
        out.display(),
        report.duration_secs
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_flags_size_both_demarches_and_s3_dossiers_needs_s3_runs() {
        let parse = |line: &str| {
            let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
            parse_args(&args).map(|o| (o.scale, o.object_store, o.s3_dossiers))
        };
        // (scale, object_store, s3_dossiers) of each line; `None`: refused.
        type Parsed = (Option<usize>, bool, Option<usize>);
        let table: [(&str, Option<Parsed>); 7] = [
            ("--scale", Some((Some(100_000), true, None))),
            ("--dossiers 500", Some((Some(500), true, None))),
            (
                "--scale --s3-dossiers 50",
                Some((Some(100_000), true, Some(50))),
            ),
            (
                "--scale --no-object-store",
                Some((Some(100_000), false, None)),
            ),
            ("--scale --s3-dossiers 50 --no-object-store", None),
            ("--s3-dossiers 50", None),
            ("--scale --s3-dossiers 0", None),
        ];
        for (line, expected) in table {
            assert_eq!(parse(line).ok(), expected, "{line}");
        }
    }

    #[test]
    fn hash_bench_lines_are_parsed_and_noise_is_skipped() {
        let rows = parse_hash_throughput(
            "md5 (dsfiles_core::hash::Md5)\t701\nwarning: something\nsha256 (sha2 crate)\t1595\n",
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![
                ("md5 (dsfiles_core::hash::Md5)".to_owned(), 701.0),
                ("sha256 (sha2 crate)".to_owned(), 1595.0)
            ]
        );
        assert!(parse_hash_throughput("").is_err());
        assert!(parse_hash_throughput("md5\tfast\n").is_err());
    }
}
