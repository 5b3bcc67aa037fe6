//! What a `dsfiles.toml` says, interpreted: the file is read and parsed ([`ConfigFile::read`]),
//! its values laid over [`ServerConfig::defaults`] ([`ConfigFile::server_config`]), its
//! démarche-keyed tables given their démarche numbers. The front end then lays its flags and
//! environment over the result and calls [`ServerConfig::validate`] once, so that a value gets
//! the same checks whichever layer it came from.
//!
//! Nothing here validates: a file may leave out what a flag gives (the API tokens, the
//! allow-list), so "at least one token" is only decidable once every layer is in.
//!
//! Errors name the file, the key and the offending value, never a secret's value.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::{AllowList, ConfigFile, DatabaseSettings, Secret, ServerConfig, WebhookSecrets};
use crate::Error;

impl ConfigFile {
    /// Reads and parses the `dsfiles.toml` at `path`.
    pub fn read(path: &Path) -> Result<ConfigFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!("cannot read config file `{}`: {e}", path.display()))
        })?;
        ConfigFile::from_toml(&text)
            .map_err(|e| Error::Config(format!("config file `{}`: {e}", path.display())))
    }

    /// The service settings this file gives, over the defaults, without the API tokens (see
    /// [`ConfigFile::api_tokens`]) and not validated yet.
    pub fn server_config(&self) -> Result<ServerConfig, Error> {
        let defaults = ServerConfig::defaults();
        let count = |v: Option<u64>, default: usize| {
            v.map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        Ok(ServerConfig {
            api_tokens: Vec::new(),
            webhook_secrets: WebhookSecrets {
                current: self.webhooks.secret.clone(),
                previous: self.webhooks.previous_secret.clone(),
            },
            allow_dest: AllowList::new(self.allow_dest.iter().map(String::as_str))
                .map_err(|e| Error::Config(format!("invalid allowed destination: {e}")))?,
            webhook_destinations: self.webhook_destinations()?,
            max_concurrent_syncs: count(self.max_concurrent_syncs, defaults.max_concurrent_syncs),
            sync_jobs: count(self.jobs, defaults.sync_jobs),
            body_limit: count(self.body_limit_bytes, defaults.body_limit),
            request_timeout: self
                .request_timeout_secs
                .map_or(defaults.request_timeout, Duration::from_secs),
            state_dir: self.state_dir.clone().unwrap_or(defaults.state_dir),
            history_limit: defaults.history_limit,
            limits: self.limits.resolve(),
            database: self
                .database_url
                .clone()
                .map(|url| DatabaseSettings::new(url, self.replica_id.clone())),
            schedules: self.schedules.clone(),
        })
    }

    /// The service API tokens the file gives: those of `api_tokens_file` if set, else
    /// `api_tokens`. Read only when no flag or environment variable gives them.
    pub fn api_tokens(&self) -> Result<Vec<Secret>, Error> {
        match &self.api_tokens_file {
            Some(path) => read_secret_lines(path),
            None => Ok(self.api_tokens.clone()),
        }
    }

    /// `[ds.tokens]` by démarche number.
    pub fn demarche_tokens(&self) -> Result<BTreeMap<u64, &Secret>, Error> {
        self.ds
            .tokens
            .iter()
            .map(|(demarche, token)| Ok((demarche_number("ds.tokens", demarche)?, token)))
            .collect()
    }

    /// `[webhooks.destinations]` by démarche number.
    fn webhook_destinations(&self) -> Result<BTreeMap<u64, String>, Error> {
        self.webhooks
            .destinations
            .iter()
            .map(|(demarche, dest)| {
                Ok((
                    demarche_number("webhooks.destinations", demarche)?,
                    dest.clone(),
                ))
            })
            .collect()
    }
}

/// A table key that must be a démarche number.
fn demarche_number(table: &str, key: &str) -> Result<u64, Error> {
    key.trim()
        .parse()
        .map_err(|_| Error::Config(format!("`[{table}]`: `{key}` is not a démarche number")))
}

/// The non-empty lines of a secrets file, `#` comments left out. Errors name the file, never
/// its content.
pub fn read_secret_lines(path: &Path) -> Result<Vec<Secret>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "cannot read secrets file `{}`: {e}",
            path.display()
        ))
    })?;
    let secrets: Vec<Secret> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(Secret::new)
        .collect();
    if secrets.is_empty() {
        return Err(Error::Config(format!(
            "secrets file `{}` is empty",
            path.display()
        )));
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(toml: &str) -> ConfigFile {
        ConfigFile::from_toml(toml).expect("valid TOML")
    }

    #[test]
    fn the_file_is_laid_over_the_defaults() {
        let config = file(
            r#"
            max_concurrent_syncs = 3
            jobs = 4
            allow_dest = ["/srv/archive"]
            [webhooks.destinations]
            "12" = "/srv/archive/12"
            [limits]
            max_queued_syncs = 7
            "#,
        )
        .server_config()
        .expect("interpreted");
        let defaults = ServerConfig::defaults();
        assert_eq!(config.max_concurrent_syncs, 3);
        assert_eq!(config.sync_jobs, 4);
        assert_eq!(config.body_limit, defaults.body_limit);
        assert_eq!(config.limits.max_queued_syncs, 7);
        assert_eq!(
            config.webhook_destinations.get(&12).map(String::as_str),
            Some("/srv/archive/12")
        );
        assert!(config.api_tokens.is_empty(), "tokens are read apart");
    }

    #[test]
    fn demarche_keyed_tables_name_a_bad_key() {
        let cases = [
            (
                "[ds.tokens]\n\"abc\" = \"t\"",
                "`[ds.tokens]`: `abc` is not a démarche number",
            ),
            (
                "[webhooks.destinations]\n\"-1\" = \"/x\"",
                "`[webhooks.destinations]`: `-1` is not a démarche number",
            ),
        ];
        for (toml, expected) in cases {
            let file = file(toml);
            let err = file
                .demarche_tokens()
                .map(drop)
                .and_then(|()| file.server_config().map(drop))
                .expect_err(toml);
            assert!(err.to_string().contains(expected), "{toml}: {err}");
        }
    }

    #[test]
    fn secrets_files_skip_comments_and_blank_lines_and_refuse_empty_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# tokens\n\n  t1 \nt2\n").expect("write");
        let lines = read_secret_lines(&path).expect("read");
        let exposed: Vec<&str> = lines.iter().map(Secret::expose).collect();
        assert_eq!(exposed, ["t1", "t2"]);

        std::fs::write(&path, "# nothing\n").expect("write");
        let err = read_secret_lines(&path).expect_err("empty");
        assert!(err.to_string().contains("is empty"), "{err}");
        assert!(
            !err.to_string().contains("nothing"),
            "no content in errors: {err}"
        );
    }
}
