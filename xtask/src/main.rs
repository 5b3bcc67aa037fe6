//! Developer tasks: `cargo xtask <task>`. Never needed at run time.
//!
//! - `emulators up|down|status`: the local S3/Azure/GCS emulators (see `emulators.rs`);
//! - `postgres up|down|status`: a throwaway PostgreSQL for the job-store tests (`postgres.rs`);
//! - `test`: `xmllint` present (the SEDA tests validate manifests with it) and hadolint
//!   installed (see `tools.rs`) → emulators and PostgreSQL up → every test of the workspace
//!   with their endpoints → both down (also when something failed).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool: progress on stderr, status on stdout"
)]

mod bench;
mod emulators;
mod postgres;
mod tools;

use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

fn main() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => bench::run(&args[1..]).map(|()| ExitCode::SUCCESS),
        Some("emulators") => emulators::run(&args[1..]).map(|()| ExitCode::SUCCESS),
        Some("postgres") => postgres::run(&args[1..]).map(|()| ExitCode::SUCCESS),
        Some("test") => test(),
        _ => bail!(
            "usage: cargo xtask <emulators up|down|status | postgres up|down|status | test | bench>"
        ),
    }
}

/// `cargo xtask test`: the README's test command (also what `.ci/run` runs).
fn test() -> Result<ExitCode> {
    ensure_xmllint()?;
    let result = emulators::up()
        .and_then(|()| postgres::up())
        .and_then(|database| run_tests(&database));
    // Stop everything whatever happened, then report the first error.
    let stopped = (emulators::down(), postgres::down());
    let code = result?;
    stopped.0?;
    stopped.1?;
    Ok(code)
}

/// `xmllint` (Debian's `libxml2-utils`) validates the SEDA manifests in the tests: installed
/// with apt-get when missing (`bench::ensure_tool`); still missing is an error under `CI=true`
/// (the tests would fail), a warning otherwise (they skip the schema check).
fn ensure_xmllint() -> Result<()> {
    match bench::ensure_tool("xmllint", "libxml2-utils") {
        Ok(_) => Ok(()),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            Err(e.context("xmllint is missing (Debian's libxml2-utils): the SEDA tests need it"))
        }
        Err(e) => {
            eprintln!("warning: {e:#}: the SEDA tests will skip the schema validation");
            Ok(())
        }
    }
}

/// Every test with the emulators' variables and `database` (`DSFILES_TEST_DATABASE_URL=…`).
fn run_tests(database: &str) -> Result<ExitCode> {
    let mut env = emulators::read_env_file()?;
    if let Some((key, value)) = database.split_once('=') {
        env.push((key.to_owned(), value.to_owned()));
    }
    env.push(tools::install().context("installing hadolint")?);
    let root = emulators::repo_root();
    let nextest = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut tests = Command::new("cargo");
    if nextest {
        tests.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        eprintln!("cargo-nextest not found: falling back to cargo test");
        tests.args(["test", "--workspace", "--no-fail-fast"]);
    }
    let status = tests
        .current_dir(&root)
        .envs(env.iter().cloned())
        .status()
        .context("running the tests")?;
    let doc = Command::new("cargo")
        .args(["test", "--workspace", "--doc"])
        .current_dir(&root)
        .envs(env)
        .status()
        .context("running the doc tests")?;
    let code =
        |s: std::process::ExitStatus| s.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1);
    Ok(match (status.success(), doc.success()) {
        (true, true) => ExitCode::SUCCESS,
        (false, _) => ExitCode::from(code(status)),
        (true, false) => ExitCode::from(code(doc)),
    })
}
