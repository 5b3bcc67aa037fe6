//! The S3 endpoint of the object-store case: the emulator of `cargo xtask emulators up` when
//! `.emulators/env` names one, else s3s-fs served from this process (stopped on drop).

use std::fs;
use std::path::Path;

use anyhow::Context as _;

/// Where dsfiles uploads, and the standard variables that reach it.
#[derive(Debug)]
pub struct S3 {
    pub describe: String,
    pub bucket: String,
    pub env: Vec<(String, String)>,
    /// The in-process server (the sink's test-support s3s-fs), stopped on drop.
    server: Option<dsfiles_sink::testing::S3sFs>,
}

impl S3 {
    /// Whether this is the s3s-fs server of this process (as opposed to an external emulator).
    pub fn in_process(&self) -> bool {
        self.server.is_some()
    }
}

/// `KEY=VALUE` lines (an `export ` prefix and quotes allowed; `#` comments).
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_owned(),
                v.trim().trim_matches(['"', '\'']).to_owned(),
            )
        })
        .collect()
}

/// The standard variables for an S3-compatible endpoint on loopback with dummy credentials.
pub fn aws_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// The emulator named in `.emulators/env` (`DSFILES_TEST_S3_ENDPOINT`, `DSFILES_TEST_S3_BUCKET`).
pub fn from_env_file(root: &Path) -> Option<S3> {
    let vars = parse_env_file(&fs::read_to_string(root.join(".emulators/env")).ok()?);
    let get = |key: &str| {
        vars.iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let endpoint = get("DSFILES_TEST_S3_ENDPOINT")?;
    let bucket = get("DSFILES_TEST_S3_BUCKET").unwrap_or_else(|| "dsfiles-test".to_owned());
    Some(S3 {
        describe: format!("S3 emulator of `cargo xtask emulators up` at {endpoint}"),
        bucket,
        env: aws_env(&endpoint),
        server: None,
    })
}

/// s3s-fs 0.14.1 on `127.0.0.1:0`, storing under `dir`, on `runtime`.
pub fn start_s3s_fs(runtime: &tokio::runtime::Runtime, dir: &Path) -> anyhow::Result<S3> {
    let bucket = "bench".to_owned();
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot empty `{}`", dir.display()))?;
    }
    fs::create_dir_all(dir.join(&bucket))
        .with_context(|| format!("cannot create `{}`", dir.display()))?;
    let server = runtime
        .block_on(dsfiles_sink::testing::S3sFs::start(dir))
        .with_context(|| format!("cannot start s3s-fs on `{}`", dir.display()))?;
    let endpoint = server.endpoint().to_owned();
    Ok(S3 {
        describe: format!(
            "s3s-fs 0.14.1 in the bench process at {endpoint}, storing under `target/bench/s3s-fs/`"
        ),
        bucket,
        env: aws_env(&endpoint),
        server: Some(server),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_are_read_like_a_shell_would() {
        let text = "# emulators\nexport DSFILES_TEST_S3_ENDPOINT=http://127.0.0.1:9000\nDSFILES_TEST_S3_BUCKET=\"b\"\n\nX='y'\n";
        assert_eq!(
            parse_env_file(text),
            vec![
                (
                    "DSFILES_TEST_S3_ENDPOINT".to_owned(),
                    "http://127.0.0.1:9000".to_owned()
                ),
                ("DSFILES_TEST_S3_BUCKET".to_owned(), "b".to_owned()),
                ("X".to_owned(), "y".to_owned()),
            ]
        );
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(from_env_file(dir.path()).is_none());
        fs::create_dir(dir.path().join(".emulators")).expect("mkdir");
        fs::write(dir.path().join(".emulators/env"), text).expect("write");
        let s3 = from_env_file(dir.path()).expect("configured");
        assert_eq!(s3.bucket, "b");
        assert!(s3.env.contains(&(
            "AWS_ENDPOINT".to_owned(),
            "http://127.0.0.1:9000".to_owned()
        )));
    }
}
