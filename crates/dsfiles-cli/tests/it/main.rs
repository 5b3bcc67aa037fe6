//! Integration tests of the real `dsfiles` binary: its command line, and runs against the DS
//! simulator started in this process on port 0.

mod cancel;
mod generate;
mod healthcheck;
mod help;
mod index;
mod lease;
mod list;
mod replicas;
mod seda;
mod sim;
mod sync;
mod usage;

use std::process::Command;

/// The `dsfiles` binary with a clean environment: no token, endpoint, log filter or terminal
/// width inherited from the machine running the tests.
pub fn dsfiles() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dsfiles"));
    for var in [
        "DS_API_TOKEN",
        "DS_API_URL",
        "RUST_LOG",
        "COLUMNS",
        "LINES",
        "NO_COLOR",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "DSFILES_CREDENTIALS",
        "DSFILES_LISTEN",
        "DSFILES_API_TOKENS",
        "DSFILES_WEBHOOK_SECRET",
        "DSFILES_WEBHOOK_SECRET_PREVIOUS",
        "DSFILES_ALLOW_DEST",
        "DSFILES_STATE_DIR",
        "DSFILES_DATABASE_URL",
        "DSFILES_REPLICA_ID",
        "DSFILES_ALLOW_FILE_HOSTS",
        "DSFILES_DOWNLOAD_DEADLINE_BASE",
        "DSFILES_DOWNLOAD_MIN_RATE",
    ] {
        command.env_remove(var);
    }
    command
}

/// stderr of a finished command, as text.
pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
