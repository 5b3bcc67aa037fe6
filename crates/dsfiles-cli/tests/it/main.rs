//! Integration tests of the real `dsfiles` binary: its command line, and runs against the DS
//! simulator started in this process on port 0.

mod help;
mod list;
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
    ] {
        command.env_remove(var);
    }
    command
}

/// stderr of a finished command, as text.
pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
