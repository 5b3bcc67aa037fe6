//! The `dsfiles-sim` program: the ready line, a query with its token, SIGTERM, usage errors.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use crate::support::http;

const BIN: &str = env!("CARGO_BIN_EXE_dsfiles-sim");

/// Generous: the line comes once the démarche is generated, in well under a second here.
const WAIT: Duration = Duration::from_secs(30);

/// Starts the program and reads its ready line.
async fn start(args: &[&str]) -> Result<(Child, BufReader<ChildStdout>, Value)> {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("spawn dsfiles-sim")?;
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    tokio::time::timeout(WAIT, stdout.read_line(&mut line))
        .await
        .context("no ready line in time")??;
    let ready = serde_json::from_str(&line).with_context(|| format!("ready line `{line}`"))?;
    Ok((child, stdout, ready))
}

async fn graphql(ready: &Value, token: &str, query: &str) -> Result<(u16, Value)> {
    let endpoint = ready["endpoint"].as_str().context("endpoint")?;
    let response = http()
        .post(endpoint)
        .bearer_auth(token)
        .json(&json!({"query": query}))
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// Sends SIGTERM and checks the program stops by itself, exit 0, nothing more on stdout.
async fn terminate(mut child: Child, mut stdout: BufReader<ChildStdout>) -> Result<()> {
    let pid = child.id().context("the program is still running")?;
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    ensure!(kill.success(), "kill -TERM {pid}: {kill}");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .context("no exit after SIGTERM")??;
    ensure!(status.code() == Some(0), "exit after SIGTERM: {status}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await?;
    ensure!(rest.is_empty(), "stdout after the ready line: `{rest}`");
    Ok(())
}

#[tokio::test]
async fn prints_where_it_listens_serves_with_its_token_and_stops_on_sigterm() -> Result<()> {
    let args = [
        "--dossiers",
        "7",
        "--files-per-dossier",
        "2..3",
        "--seed",
        "9",
    ];
    let (child, stdout, ready) = start(&args).await?;
    let keys: Vec<&str> = ready
        .as_object()
        .context("object")?
        .keys()
        .map(String::as_str)
        .collect();
    let want = [
        "bytes",
        "demarche",
        "dossiers",
        "endpoint",
        "file_host",
        "files",
        "token",
    ];
    ensure!(keys == want, "ready line keys {keys:?}");
    ensure!(
        ready["dossiers"] == json!(7) && ready["demarche"] == json!(1234),
        "{ready}"
    );
    let token = ready["token"].as_str().context("token")?;
    let endpoint = ready["endpoint"].as_str().context("endpoint")?;
    ensure!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    ensure!(endpoint.ends_with("/api/v2/graphql"), "{endpoint}");

    let query = "{ demarche(number: 1234) { dossiers { nodes { number } } } }";
    let (status, body) = graphql(&ready, token, query).await?;
    ensure!(status == 200, "HTTP {status}: {body}");
    let nodes = body["data"]["demarche"]["dossiers"]["nodes"]
        .as_array()
        .context("nodes")?;
    ensure!(nodes.len() == 7, "{body}");
    let (status, _) = graphql(&ready, "not-the-token", query).await?;
    ensure!(
        status == 401 || status == 403,
        "another token gave HTTP {status}"
    );

    terminate(child, stdout).await
}

#[tokio::test]
async fn any_token_and_a_fault_plan_from_a_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let faults = dir.path().join("faults.json");
    let plan = json!({"rules": [{"fault": {"kind": "service_unavailable"}, "times": 1}]});
    std::fs::write(&faults, plan.to_string())?;
    let faults = faults.to_str().context("utf-8 temp path")?;
    let (child, stdout, ready) = start(&["--any-token", "--faults", faults]).await?;
    let query = "{ demarche(number: 1234) { number } }";
    let (first, _) = graphql(&ready, "whatever", query).await?;
    ensure!(first == 503, "the planned fault gave HTTP {first}");
    let (second, body) = graphql(&ready, "whatever", query).await?;
    ensure!(
        second == 200 && body["data"]["demarche"]["number"] == json!(1234),
        "{body}"
    );
    terminate(child, stdout).await
}

/// The program refuses `args` with exit 2 and a message naming `flag`.
#[track_caller]
fn check_usage(args: &[&str], flag: &str) {
    let output = std::process::Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("dsfiles-sim runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(flag),
        "{args:?} must name `{flag}`: {stderr}"
    );
    assert!(output.stdout.is_empty(), "{args:?} printed on stdout");
}

#[test]
fn bad_arguments_exit_2_naming_the_flag() {
    let not_a_plan = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    check_usage(&["--dossiers", "lots"], "--dossiers");
    check_usage(&["--files-per-dossier", "12..8"], "--files-per-dossier");
    check_usage(&["--files-per-dossier", "8..x"], "--files-per-dossier");
    check_usage(&["--max-file-size", "0"], "--max-file-size");
    check_usage(&["--pending-scans", "101"], "--pending-scans");
    check_usage(&["--demarche", "999999999999"], "--demarche");
    check_usage(&["--url-ttl", "5x"], "--url-ttl");
    check_usage(&["--url-ttl", "0"], "--url-ttl");
    check_usage(&["--token", "a b"], "--token");
    check_usage(&["--token", "t", "--any-token"], "--any-token");
    check_usage(&["--faults", "/nonexistent/faults.json"], "--faults");
    check_usage(&["--faults", not_a_plan], "--faults");
    check_usage(&["--listen", "0.0.0.0:0"], "--listen");
    check_usage(&["--listen", "192.0.2.1:0"], "--allow-non-loopback");
    check_usage(&["--file-host-listen", "192.0.2.1:0"], "--file-host-listen");
    check_usage(&["--no-such-flag"], "--no-such-flag");
}
