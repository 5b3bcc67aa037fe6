//! Emulator discovery and sinks configured for the emulators. `cargo xtask emulators up`
//! starts them and writes their endpoints to `.emulators/env`; `cargo xtask test` exports that
//! file. A test whose emulator is not configured prints a notice and passes, except under
//! `CI=true`, where it fails.

use std::sync::Arc;

use crate::{Error, Sink};

pub const S3_ENDPOINT: &str = "DSFILES_TEST_S3_ENDPOINT";
pub const S3_BUCKET: &str = "DSFILES_TEST_S3_BUCKET";
pub const AZURE_ENDPOINT: &str = "DSFILES_TEST_AZURE_ENDPOINT";
pub const AZURE_CONTAINER: &str = "DSFILES_TEST_AZURE_CONTAINER";
pub const GCS_ENDPOINT: &str = "DSFILES_TEST_GCS_ENDPOINT";
pub const GCS_BUCKET: &str = "DSFILES_TEST_GCS_BUCKET";

/// Azurite's well-known development account (public, documented by Microsoft).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The value of `var`, or `None` after a skip notice; panics under `CI=true`.
#[expect(clippy::print_stderr, reason = "the skip notice is the point")]
pub fn emulator(var: &str) -> Option<String> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match decide(var, std::env::var(var).ok(), ci) {
        Ok(value) => value,
        Err(message) if ci => panic!("{message}"),
        Err(message) => {
            eprintln!("SKIPPED: {message}");
            None
        }
    }
}

/// `Ok(Some(endpoint))` to run, `Err(message)` when the emulator is missing (a skip notice, or
/// a failure under CI).
fn decide(var: &str, value: Option<String>, ci: bool) -> Result<Option<String>, String> {
    match value.filter(|v| !v.is_empty()) {
        Some(value) => Ok(Some(value)),
        None if ci => Err(format!(
            "{var} is not set but CI=true: emulators must run in CI (cargo xtask test)"
        )),
        None => Err(format!(
            "{var} is not set; run `cargo xtask emulators up` and export .emulators/env, or `cargo xtask test`"
        )),
    }
}

/// The value of `var`, or `default` when unset or empty.
pub fn var_or(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("t-{}", uuid::Uuid::new_v4().simple())
}

pub fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// An S3 sink on an S3-compatible endpoint (moto, s3s-fs), configured through the standard
/// env variables (passed explicitly, never read from the process), plus `options`.
pub fn s3_sink(
    endpoint: &str,
    bucket: &str,
    prefix: &str,
    options: &[(String, String)],
) -> Result<Arc<dyn Sink>, Error> {
    let env = pairs(&[
        ("AWS_ENDPOINT", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
    ]);
    crate::open_with_env(&format!("s3://{bucket}/{prefix}"), options, env)
}

/// The fake service-account key: `disable_oauth` gives a static empty token, so nothing ever
/// contacts a token endpoint or the metadata address 169.254.169.254.
pub fn gcs_key(base_url: &str) -> String {
    format!(
        r#"{{"private_key":"","private_key_id":"","client_email":"","disable_oauth":true,"gcs_base_url":"{base_url}"}}"#
    )
}

/// A GCS sink on `base_url` ([`super::FakeGcs`] or fake-gcs-server).
pub fn gcs_sink(
    base_url: &str,
    bucket: &str,
    prefix: &str,
    options: &[(String, String)],
) -> Result<Arc<dyn Sink>, Error> {
    let env = pairs(&[("GOOGLE_SERVICE_ACCOUNT_KEY", &gcs_key(base_url))]);
    crate::open_with_env(&format!("gs://{bucket}/{prefix}"), options, env)
}

/// An Azure sink on Azurite's development account.
pub fn azure_sink(
    endpoint: &str,
    container: &str,
    prefix: &str,
    options: &[(String, String)],
) -> Result<Arc<dyn Sink>, Error> {
    let endpoint = format!("{}/{AZURITE_ACCOUNT}", endpoint.trim_end_matches('/'));
    let env = pairs(&[
        ("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT),
        ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY),
        ("AZURE_STORAGE_ENDPOINT", &endpoint),
        ("AZURE_ALLOW_HTTP", "true"),
    ]);
    crate::open_with_env(&format!("az://{container}/{prefix}"), options, env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_emulator_fails_under_ci() {
        let var = S3_ENDPOINT;
        assert_eq!(
            decide(var, Some("http://x".into()), true),
            Ok(Some("http://x".into()))
        );
        assert!(decide(var, None, true).is_err_and(|m| m.contains("CI=true")));
        assert!(decide(var, Some(String::new()), true).is_err());
        assert!(decide(var, None, false).is_err_and(|m| m.contains("cargo xtask emulators up")));
    }
}
