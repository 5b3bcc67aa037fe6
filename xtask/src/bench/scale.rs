//! `cargo xtask bench --scale [--dossiers N] [--s3-dossiers N | --no-object-store]`: dsfiles
//! on one large démarche of the simulator (the shipped `dsfiles-sim` binary,
//! [`ds::SimProcess`]): `N` dossiers (default 100,000) of 8–12 files of at most 512 bytes,
//! about 1M files, 3% of them pending a virus scan, numbered sparsely as DS's are
//! ([`NUMBER_GAP`]). Into local disk: the first sync, a no-op
//! `--since auto` run, a no-op `--full` run and `verify`; the first sync of a layout whose
//! dossiers meet (`--layout {label}/{filename}`: one key allocator for the whole run, into a
//! directory of its own); then `list`. Then the same four runs
//! into an S3 endpoint (s3s-fs in this process), on a démarche of the same shape with
//! `--s3-dossiers` dossiers (default [`DEFAULT_S3_DOSSIERS`]), s3s-fs's listing replaced by one
//! that pages like S3's and shows entity tags (`dsfiles_sink::testing`). Each run is timed
//! by GNU time like the other cases; the API calls and state objects read come from the run's
//! own summary. Results go to `docs/benchmarks.md` between [`BEGIN`] and [`END`], which the
//! other bench leaves alone.
//!
//! Rule: a run that fails, or a sync that leaves a file failed, fails the bench (a number that
//! measures an error is no number).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use super::measure::{Cmd, Sample, timed};
use super::{ds, report, s3, say, summary, tools};

pub const BEGIN: &str = "<!-- bench:scale:begin -->";
pub const END: &str = "<!-- bench:scale:end -->";

/// What `--scale` measures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleOptions {
    pub dossiers: usize,
    /// Dossiers of the S3 démarche (same shape, its own simulator); `None`: no S3 runs.
    pub object_store: Option<usize>,
}

/// The mean step between the scale démarche's dossier numbers: DS numbers dossiers across the
/// platform, and a démarche of 100,000 dossiers in a year of 4 million has sparse numbers.
const NUMBER_GAP: u64 = 40;

/// The flags of `dsfiles-sim` for the démarche of the scale runs: `dossiers` dossiers of 8–12
/// files of at most 512 bytes, 3% of them pending a virus scan, numbered [`NUMBER_GAP`] apart
/// on average, no hostile filenames (they are the hostile-input tests' job, not the scale
/// runs').
fn sim_args(dossiers: usize) -> Vec<String> {
    let dossiers = dossiers.to_string();
    [
        "--quiet",
        "--demarche",
        "4242",
        "--dossiers",
        &dossiers,
        "--files-per-dossier",
        "8..12",
        "--max-file-size",
        "512",
        "--pending-scans",
        "3",
        "--number-gap",
        &NUMBER_GAP.to_string(),
        "--no-hostile-filenames",
        "--listen",
        "127.0.0.1:0",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// One measured run.
#[derive(Debug)]
struct Row {
    dest: &'static str,
    run: &'static str,
    command: String,
    sample: Sample,
    /// Files the run went through (stored, or looked at).
    files: u64,
    /// What the run's summary says of its API calls and dossiers, if it has one.
    calls: Option<Calls>,
}

/// API calls of a sync, by purpose, and the dossiers it looked at (one manifest shard read
/// each).
#[derive(Debug, PartialEq, Eq)]
struct Calls {
    listing: u64,
    recheck: u64,
    refresh: u64,
    deleted: u64,
    dossiers: u64,
    /// Manifest objects read: shards, and segments (each the copy of up to 1,000 shards).
    shards_read: u64,
    segments_read: u64,
}

/// Runs every case and writes the report; `dsfiles` and `sim` are the shipped binaries.
pub fn run(
    opts: &ScaleOptions,
    (root, dir): (&Path, &Path),
    (dsfiles, sim): (&Path, &Path),
    out: &Path,
) -> anyhow::Result<()> {
    let dir = dir.join("scale");
    fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("cannot create `{}`", dir.display()))?;
    // The in-process servers (s3s-fs) run here; the simulators are processes of their own.
    let sims = ds::Ds::new()?;
    let bench = Runner {
        dir: &dir,
        dsfiles,
        sim,
    };
    let result = bench.measure_all(opts, &sims);
    sims.shutdown();
    let (mut rows, demarches) = result?;
    // Commands as run from the workspace root, with paths relative to it.
    let prefix = format!("{}/", root.display());
    for row in &mut rows {
        row.command = row.command.replace(&prefix, "");
    }
    let block = render(opts, &demarches, &rows);
    let existing = fs::read_to_string(out).unwrap_or_default();
    fs::write(out, report::splice_between(&existing, (BEGIN, END), &block))
        .with_context(|| format!("cannot write `{}`", out.display()))?;
    say(format!("scale report written to `{}`", out.display()));
    Ok(())
}

/// Where one sync writes, and its name in the table and the logs.
struct Target<'a> {
    label: &'static str,
    log: String,
    dest: &'a str,
    env: &'a [(String, String)],
}

/// A layout whose dossiers meet: every file of every dossier under its champ's label.
const SHARED_KEYS_LAYOUT: &str = "{label}/{filename}";
const SHARED_KEYS_LABEL: &str = "local, `--layout {label}/{filename}`";

struct Runner<'a> {
    dir: &'a Path,
    dsfiles: &'a Path,
    /// The shipped `dsfiles-sim`.
    sim: &'a Path,
}

/// The démarches measured: the main one, and the S3 one if any.
type Demarches = (ds::Demarche, Option<ds::Demarche>);

impl Runner<'_> {
    /// Local disk's runs and `list` on the main démarche, then S3's on its own.
    fn measure_all(
        &self,
        opts: &ScaleOptions,
        sims: &ds::Ds,
    ) -> anyhow::Result<(Vec<Row>, Demarches)> {
        let local = self.dir.join("local");
        let shared_keys = self.dir.join("local-shared-keys");
        let mut removed = None;
        for dir in [&local, &shared_keys] {
            if dir.exists() {
                fs::remove_dir_all(dir)
                    .with_context(|| format!("cannot empty `{}`", dir.display()))?;
                removed = Some(std::time::Instant::now());
            }
        }
        let (simulator, main) = self.simulator("main", opts.dossiers)?;
        // The last run's million files were just deleted: see `AFTER_REMOVAL`.
        super::settle_after(removed);
        let mut rows = self.destination("local", &local.display().to_string(), &main, &[])?;
        rows.push(self.shared_keys(&shared_keys, &main)?);
        rows.push(self.list(&main)?);
        drop(simulator);
        let Some(dossiers) = opts.object_store else {
            return Ok((rows, (main, None)));
        };
        let (simulator, small) = self.simulator("s3", dossiers)?;
        let s3 = s3::start_s3s_fs(sims.runtime(), &self.dir.join("s3s-fs"))?;
        let dest = format!("s3://{}/scale", s3.bucket);
        rows.extend(self.destination("S3 (s3s-fs)", &dest, &small, &s3.env)?);
        drop(simulator);
        Ok((rows, (main, Some(small))))
    }

    /// A simulator serving `dossiers` dossiers, until dropped.
    fn simulator(
        &self,
        name: &str,
        dossiers: usize,
    ) -> anyhow::Result<(ds::SimProcess, ds::Demarche)> {
        let started = std::time::Instant::now();
        let log = self.log(&format!("dsfiles-sim-{name}"));
        let (simulator, demarche) = ds::SimProcess::spawn(self.sim, &sim_args(dossiers), &log)?;
        say(format!(
            "scale: {dossiers} dossiers, {} files, {:.0} MB generated in {:.1} s",
            demarche.files,
            demarche.bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        ));
        Ok((simulator, demarche))
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// First sync, no-op auto and full re-runs, and verify, into `dest`.
    fn destination(
        &self,
        label: &'static str,
        dest: &str,
        demarche: &ds::Demarche,
        dest_env: &[(String, String)],
    ) -> anyhow::Result<Vec<Row>> {
        let name = if dest.starts_with("s3://") {
            "s3"
        } else {
            "local"
        };
        let runs = [
            ("first sync", "first", "auto"),
            ("no-op --since auto", "auto", "auto"),
            ("no-op --full", "full", "full"),
        ];
        let mut rows = Vec::new();
        for (run, short, since) in runs {
            let target = Target {
                label,
                log: format!("{name}-{short}"),
                dest,
                env: dest_env,
            };
            rows.push(self.sync(&target, (run, since), demarche, &[])?);
        }
        rows.push(self.verify(label, name, dest, dest_env)?);
        Ok(rows)
    }

    /// The first sync of a layout whose dossiers meet ([`SHARED_KEYS_LAYOUT`]): one key
    /// allocator for the whole run, its keys in SQLite (dsfiles-core's `keystore.rs`).
    fn shared_keys(&self, dest: &Path, demarche: &ds::Demarche) -> anyhow::Result<Row> {
        let target = Target {
            label: SHARED_KEYS_LABEL,
            log: "local-shared-keys-first".to_owned(),
            dest: &dest.display().to_string(),
            env: &[],
        };
        let layout = ["--layout", SHARED_KEYS_LAYOUT];
        self.sync(&target, ("first sync", "auto"), demarche, &layout)
    }

    /// One `dsfiles sync` of `demarche` into `target`, `--since since`.
    fn sync(
        &self,
        target: &Target<'_>,
        (run, since): (&'static str, &str),
        demarche: &ds::Demarche,
        args: &[&str],
    ) -> anyhow::Result<Row> {
        let summary_path = self
            .log(&format!("{}.summary", target.log))
            .with_extension("json");
        let mut env = demarche.env();
        env.extend(target.env.iter().cloned());
        let mut extra = vec!["--since", since, "--requests-per-minute", "0"];
        extra.extend(args);
        let cmd = tools::dsfiles(
            self.dsfiles,
            demarche.number,
            target.dest,
            &summary_path,
            env,
            &extra,
        );
        let sample = timed(&cmd, &self.log(&target.log))?;
        let calls = sync_calls(&summary(&summary_path)?, &summary_path)?;
        say(format!(
            "scale {}, {run}: {:.1} s, {} MiB",
            target.label,
            sample.wall_secs,
            sample.peak_rss_kib / 1024
        ));
        Ok(Row {
            dest: target.label,
            run,
            command: cmd.display(),
            sample,
            files: demarche.files as u64,
            calls: Some(calls),
        })
    }

    /// `dsfiles verify` of `dest`, which must find every file intact.
    fn verify(
        &self,
        label: &'static str,
        name: &str,
        dest: &str,
        dest_env: &[(String, String)],
    ) -> anyhow::Result<Row> {
        let summary_path = self
            .log(&format!("{name}-verify.summary"))
            .with_extension("json");
        let mut cmd = Cmd::new(
            self.dsfiles.display().to_string(),
            &["--quiet", "verify", "--dest", dest, "--summary-json"],
        );
        cmd.args.push(summary_path.display().to_string());
        cmd.env = dest_env.to_vec();
        let sample = timed(&cmd, &self.log(&format!("{name}-verify")))?;
        let checked = summary(&summary_path)?;
        let ok = checked
            .get("ok")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        say(format!(
            "scale {label}, verify: {:.1} s, {ok} files ok",
            sample.wall_secs
        ));
        if ok == 0 {
            bail!(
                "verify of `{dest}` checked no file: `{}`",
                summary_path.display()
            );
        }
        Ok(Row {
            dest: label,
            run: "verify",
            command: cmd.display(),
            sample,
            files: ok,
            calls: None,
        })
    }

    /// `dsfiles list` of the démarche (from DS, JSON Lines counted, not kept).
    fn list(&self, demarche: &ds::Demarche) -> anyhow::Result<Row> {
        let count = self.log("list.count");
        let script = format!("set -o pipefail; \"$@\" | wc -l > '{}'", count.display());
        let mut cmd = Cmd::new("bash", &["-c", &script, "bash"]);
        cmd.args.extend([
            self.dsfiles.display().to_string(),
            "--quiet".into(),
            "list".into(),
            "--demarche".into(),
            demarche.number.to_string(),
            "--requests-per-minute".into(),
            "0".into(),
        ]);
        cmd.env = demarche.env();
        let sample = timed(&cmd, &self.log("list"))?;
        let text = fs::read_to_string(&count)
            .with_context(|| format!("cannot read `{}`", count.display()))?;
        let files: u64 = text
            .trim()
            .parse()
            .with_context(|| format!("`{}`: not a count", count.display()))?;
        if files == 0 {
            bail!("dsfiles list printed no file");
        }
        say(format!(
            "scale list: {:.1} s, {files} files",
            sample.wall_secs
        ));
        Ok(Row {
            dest: "DS",
            run: "list",
            command: cmd.display(),
            sample,
            files,
            calls: None,
        })
    }
}

/// The API calls and dossiers of a sync's `--summary-json`; `Err` when a file failed.
fn sync_calls(summary: &serde_json::Value, path: &Path) -> anyhow::Result<Calls> {
    let failed = summary
        .get("failed")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len);
    if failed > 0 {
        bail!("the sync left {failed} files failed: `{}`", path.display());
    }
    let number = |pointer: &str| summary.pointer(pointer).and_then(serde_json::Value::as_u64);
    let calls = (|| {
        Some(Calls {
            listing: number("/api_calls/listing")?,
            recheck: number("/api_calls/recheck")?,
            refresh: number("/api_calls/refresh")?,
            deleted: number("/api_calls/deleted")?,
            dossiers: number("/dossiers")?,
            shards_read: number("/state_objects/shards_read")?,
            segments_read: number("/state_objects/segments_read")?,
        })
    })();
    calls.with_context(|| {
        format!(
            "`{}` has no `api_calls`, `dossiers` or `state_objects`",
            path.display()
        )
    })
}

/// The block of `docs/benchmarks.md` between [`BEGIN`] and [`END`].
fn render(opts: &ScaleOptions, (demarche, s3): &Demarches, rows: &[Row]) -> String {
    let mut out = format!("{BEGIN}\n## Scale (`cargo xtask bench --scale");
    if opts.dossiers != DEFAULT_DOSSIERS {
        let _ = write!(out, " --dossiers {}", opts.dossiers);
    }
    match opts.object_store {
        None => out.push_str(" --no-object-store"),
        Some(n) if n != DEFAULT_S3_DOSSIERS => {
            let _ = write!(out, " --s3-dossiers {n}");
        }
        Some(_) => {}
    }
    let _ = writeln!(
        out,
        "`)\n\n{} dossiers, {} files ({:.0} MB), 3% pending a virus scan, dossier numbers {} \
         apart on average (`--number-gap`: DS numbers dossiers across the platform), served by \
         the shipped `dsfiles-sim` (built as `dsfiles` is, a process of its own on the same two \
         cores); \
         `--jobs {}`, `--requests-per-minute 0`, `--no-data`. Files/s counts the \
         files the run went through (stored, or found unchanged); CPU is user + system time of \
         the dsfiles process; API calls are the run's own count (listing + recheck + URL refresh + \
         deleted dossiers); state objects are the manifest reads the run asked of the destination \
         (shards, found or not + segments, each segment the copy of about 1,000 shards). The \
         `--layout {{label}}/{{filename}}` row syncs into a directory of its own with a layout whose \
         dossiers meet, so that one key allocator holds every key of the run (in SQLite: \
         docs/architecture.md, \"What a run holds\").\n",
        opts.dossiers,
        demarche.files,
        demarche.bytes as f64 / 1e6,
        NUMBER_GAP,
        tools::JOBS
    );
    match s3 {
        None => out.push_str("Local disk only (`--no-object-store`).\n\n"),
        Some(s3) => {
            let _ = writeln!(
                out,
                "The S3 rows sync a démarche of the same shape, {} dossiers, {} files, into \
                 s3s-fs 0.14.1 in the bench process (`--s3-dossiers N` sets the size), whose \
                 ListObjectsV2 is replaced by one that answers a page in time proportional to the \
                 page and lists entity tags, as S3 does (s3s-fs's own walks the whole bucket per \
                 page and lists no tags, so every shard would be read: \
                 crates/dsfiles-sink/src/testing/s3s_listing.rs). s3s-fs writes three files per \
                 object (content, attributes, entity tag) on the same disk and cores.\n",
                opts.object_store.unwrap_or_default(),
                s3.files
            );
        }
    }
    out.push_str("| destination | run | wall s | files/s | peak RSS MiB | CPU s | API calls | dossiers looked at | state objects read |\n|---|---|---|---|---|---|---|---|---|\n");
    for row in rows {
        out.push_str(&row_line(row));
    }
    out.push_str("\nCommands:\n\n```\n");
    for row in rows {
        let _ = writeln!(out, "{}", row.command);
    }
    let _ = writeln!(out, "```\n{END}");
    out
}

/// The default `--s3-dossiers`: as many as the main démarche (about 1M objects).
pub const DEFAULT_S3_DOSSIERS: usize = 100_000;

/// The default `--dossiers`.
pub const DEFAULT_DOSSIERS: usize = 100_000;

fn row_line(row: &Row) -> String {
    let s = &row.sample;
    let (calls, dossiers, state) = match &row.calls {
        Some(c) => (
            format!(
                "{} ({} + {} + {} + {})",
                c.listing + c.recheck + c.refresh + c.deleted,
                c.listing,
                c.recheck,
                c.refresh,
                c.deleted
            ),
            c.dossiers.to_string(),
            format!(
                "{} ({} + {})",
                c.shards_read + c.segments_read,
                c.shards_read,
                c.segments_read
            ),
        ),
        None => ("—".to_owned(), "—".to_owned(), "—".to_owned()),
    };
    format!(
        "| {} | {} | {:.1} | {:.0} | {} | {:.1} | {calls} | {dossiers} | {state} |\n",
        row.dest,
        row.run,
        s.wall_secs,
        row.files as f64 / s.wall_secs.max(0.001),
        s.peak_rss_kib / 1024,
        s.cpu_secs
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_summary_gives_its_calls_and_a_failed_file_fails_the_bench() {
        let path = Path::new("s.json");
        let ok = serde_json::json!({
            "dossiers": 17, "failed": [],
            "api_calls": {"listing": 3, "recheck": 2, "refresh": 1, "deleted": 1},
            "state_objects": {"shards_read": 5, "segments_read": 2, "blocks_listed": 2}
        });
        let calls = sync_calls(&ok, path).expect("calls");
        assert_eq!(
            calls,
            Calls {
                listing: 3,
                recheck: 2,
                refresh: 1,
                deleted: 1,
                dossiers: 17,
                shards_read: 5,
                segments_read: 2,
            }
        );
        let failed = serde_json::json!({"dossiers": 1, "failed": [{}], "api_calls": {}});
        let err = sync_calls(&failed, path).expect_err("a failed file");
        assert!(err.to_string().contains("1 files failed"), "{err}");
        let old = serde_json::json!({"dossiers": 1, "failed": []});
        assert!(sync_calls(&old, path).is_err());
    }

    #[test]
    fn rows_show_calls_by_purpose() {
        let row = Row {
            dest: "local",
            run: "no-op --full",
            command: String::new(),
            sample: Sample {
                wall_secs: 2.0,
                peak_rss_kib: 40 * 1024,
                cpu_secs: 1.5,
            },
            files: 1000,
            calls: Some(Calls {
                listing: 10,
                recheck: 0,
                refresh: 0,
                deleted: 1,
                dossiers: 100,
                shards_read: 3,
                segments_read: 1,
            }),
        };
        assert_eq!(
            row_line(&row),
            "| local | no-op --full | 2.0 | 500 | 40 | 1.5 | 11 (10 + 0 + 0 + 1) | 100 | 4 (3 + 1) |\n"
        );
    }
}
