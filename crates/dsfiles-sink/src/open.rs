//! Destination strings → sinks: parsing, configuration from env and options, credential checks.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use url::Url;

use crate::key::validate_prefix;
use crate::{Error, LocalSink, ObjectStoreSink, Sink, SinkOptions};

/// Set to `instance` to let S3, GCS or Azure take credentials from the cloud instance itself
/// (EC2 instance profile, GCE metadata server, Azure managed identity) when no other source is
/// configured. Same as `--dest-option credentials=instance`.
pub const DSFILES_CREDENTIALS_ENV: &str = "DSFILES_CREDENTIALS";

/// Opens the destination `dest` with configuration from the process environment (the
/// standard `AWS_*`, `GOOGLE_*`, `AZURE_*` variables) and `options` (`--dest-option`).
/// See [`open_with_env`].
pub fn open(dest: &str, options: &[(String, String)]) -> Result<Arc<dyn Sink>, Error> {
    open_with_env(dest, options, std::env::vars())
}

/// Opens the destination `dest`, taking configuration from `env` (instead of the process
/// environment) and `options`; options win over env.
///
/// `dest` is a plain path, `file:///abs/path`, `s3://bucket/prefix` (also `s3a://`),
/// `gs://bucket/prefix`, `az://container/prefix` (also `azure://`, `adl://`,
/// `abfs[s]://container/prefix` and `abfs[s]://container@account.dfs.core.windows.net/prefix`)
/// or `memory://` (a fresh in-memory store, for tests).
///
/// Options understood by dsfiles itself: `part_size` (bytes, or with a `KiB`/`MiB`/`GiB`
/// suffix), `parts_in_flight`, `upload_memory` (a size: memory shared by all the uploads of an
/// object store), `fsync` and `direct_io` (`true`/`false`, local disk) and `credentials=instance`.
/// Every other option is an object_store config key for the backend (`region`, `endpoint`,
/// `allow_http`, `virtual_hosted_style_request`, `access_key_id`, `account_name`, ...);
/// an unknown key is an error.
///
/// Credentials are checked up front so that a forgotten variable gives a clear error rather
/// than minutes of retries against a cloud metadata address: see `docs/storage.md`.
pub fn open_with_env(
    dest: &str,
    options: &[(String, String)],
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Arc<dyn Sink>, Error> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let Options {
        sink,
        upload_memory,
        instance_credentials,
        passthrough,
    } = Options::parse(options, &env)?;
    // `None`: the sink's default, which follows the part size.
    let with_budget = |store: ObjectStoreSink| match upload_memory {
        Some(bytes) => store.with_upload_memory(bytes),
        None => Ok(store),
    };

    if !dest.contains("://") {
        return open_local(dest, PathBuf::from(dest), sink, &passthrough);
    }
    let url = Url::parse(dest).map_err(|e| Error::InvalidDestination {
        dest: redact(dest),
        reason: e.to_string(),
    })?;
    let shown = redact(dest);
    let scheme = url.scheme().to_ascii_lowercase();
    match scheme.as_str() {
        "file" => {
            if url
                .host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(Error::InvalidDestination {
                    dest: shown,
                    reason: "file:// URLs name a local path: write `file:///absolute/path`".into(),
                });
            }
            let path = url.to_file_path().map_err(|()| Error::InvalidDestination {
                dest: shown.clone(),
                reason: "not a usable local path".into(),
            })?;
            open_local(&shown, path, sink, &passthrough)
        }
        "memory" => {
            reject_passthrough("memory://", &passthrough)?;
            Ok(Arc::new(with_budget(
                ObjectStoreSink::memory().with_options(sink)?,
            )?))
        }
        "s3" | "s3a" | "gs" | "az" | "azure" | "adl" | "abfs" | "abfss" => {
            let ctx = Backend {
                env: &env,
                passthrough: &passthrough,
                instance_credentials,
            };
            let (store, prefix, description) = ctx.cloud(&url, &scheme, &shown)?;
            Ok(Arc::new(with_budget(ObjectStoreSink::new(
                store,
                &prefix,
                description,
                sink,
            )?)?))
        }
        "http" | "https" => Err(Error::UnsupportedScheme {
            dest: shown,
            scheme: format!(
                "{scheme} (for an S3-compatible service write `s3://BUCKET/prefix` and set AWS_ENDPOINT)"
            ),
        }),
        _ => Err(Error::UnsupportedScheme {
            dest: shown,
            scheme,
        }),
    }
}

fn open_local(
    shown: &str,
    path: PathBuf,
    options: SinkOptions,
    passthrough: &[(String, String)],
) -> Result<Arc<dyn Sink>, Error> {
    reject_passthrough(shown, passthrough)?;
    if path.as_os_str().is_empty() {
        return Err(Error::InvalidDestination {
            dest: shown.to_owned(),
            reason: "the path is empty".into(),
        });
    }
    Ok(Arc::new(LocalSink::open(path, options)?))
}

fn reject_passthrough(dest: &str, passthrough: &[(String, String)]) -> Result<(), Error> {
    match passthrough.first() {
        Some((key, _)) => Err(Error::InvalidOption {
            key: key.clone(),
            reason: format!(
                "`{dest}` is not an object store: only part_size, parts_in_flight, upload_memory, fsync and direct_io apply"
            ),
        }),
        None => Ok(()),
    }
}

/// `dest` as it may appear in messages: without password and query string.
fn redact(dest: &str) -> String {
    match Url::parse(dest) {
        Ok(mut url) => {
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => match dest.split_once(['?', '#']) {
            Some((head, _)) => head.to_owned(),
            None => dest.to_owned(),
        },
    }
}

fn truthy(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("y") || parse_bool(value) == Some(true)
}

struct Options {
    sink: SinkOptions,
    upload_memory: Option<usize>,
    instance_credentials: bool,
    passthrough: Vec<(String, String)>,
}

impl Options {
    fn parse(options: &[(String, String)], env: &[(String, String)]) -> Result<Options, Error> {
        let mut sink = SinkOptions::default();
        let mut upload_memory = None;
        let mut instance_credentials = false;
        if let Some((_, v)) = env.iter().find(|(k, _)| k == DSFILES_CREDENTIALS_ENV) {
            instance_credentials = parse_credentials(DSFILES_CREDENTIALS_ENV, v)?;
        }
        let mut passthrough = Vec::new();
        for (key, value) in options {
            let invalid = |reason: String| Error::InvalidOption {
                key: key.clone(),
                reason,
            };
            let not_bool = || invalid(format!("`{value}` is not true or false"));
            match key.to_ascii_lowercase().as_str() {
                "part_size" => {
                    sink.part_size = parse_size(value).ok_or_else(|| {
                        invalid(format!("`{value}` is not a size such as `16MiB`"))
                    })?;
                }
                "upload_memory" => {
                    upload_memory = Some(parse_size(value).ok_or_else(|| {
                        invalid(format!("`{value}` is not a size such as `64MiB`"))
                    })?);
                }
                "parts_in_flight" => {
                    sink.parts_in_flight = value
                        .trim()
                        .parse()
                        .map_err(|_| invalid(format!("`{value}` is not a number")))?;
                }
                "fsync" => sink.fsync = parse_bool(value).ok_or_else(not_bool)?,
                "direct_io" => sink.direct_io = parse_bool(value).ok_or_else(not_bool)?,
                "credentials" => instance_credentials = parse_credentials(key, value)?,
                _ => passthrough.push((key.clone(), value.clone())),
            }
        }
        sink.validate()?;
        Ok(Options {
            sink,
            upload_memory,
            instance_credentials,
            passthrough,
        })
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_credentials(key: &str, value: &str) -> Result<bool, Error> {
    match value.trim() {
        "instance" => Ok(true),
        "" | "explicit" => Ok(false),
        other => Err(Error::InvalidOption {
            key: key.to_owned(),
            reason: format!("`{other}` is not `instance` or `explicit`"),
        }),
    }
}

/// `16777216`, `16MiB`, `16M`, `512KiB`, `1GiB` (binary units).
fn parse_size(value: &str) -> Option<usize> {
    let value = value.trim();
    let digits = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits);
    let number: usize = number.parse().ok()?;
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

/// Shared inputs of the three cloud builders.
struct Backend<'a> {
    env: &'a [(String, String)],
    passthrough: &'a [(String, String)],
    instance_credentials: bool,
}

impl Backend<'_> {
    /// The object store a cloud URL names, its key prefix and its description (no secret).
    fn cloud(
        &self,
        url: &Url,
        scheme: &str,
        shown: &str,
    ) -> Result<(Arc<dyn object_store::ObjectStore>, String, String), Error> {
        let invalid = |reason: String| Error::InvalidDestination {
            dest: shown.to_owned(),
            reason,
        };
        let bucket = url.host_str().unwrap_or_default();
        if bucket.is_empty() {
            return Err(Error::MissingBucket {
                dest: shown.to_owned(),
                scheme: scheme.to_owned(),
            });
        }
        let prefix = object_store::path::Path::from_url_path(url.path())
            .map_err(|e| invalid(format!("bad prefix: {e}")))?
            .to_string();
        validate_prefix(&prefix).map_err(|e| invalid(e.to_string()))?;
        let container = if url.username().is_empty() {
            bucket.to_owned()
        } else {
            format!("{}@{bucket}", url.username())
        };
        let description = if prefix.is_empty() {
            format!("{scheme}://{container}")
        } else {
            format!("{scheme}://{container}/{prefix}")
        };
        // The builder only needs scheme, host and user: never pass a password or query.
        let builder_url = format!("{scheme}://{container}");
        // The object stores build their HTTPS clients while being opened.
        crate::install_crypto_provider();
        let store: Arc<dyn object_store::ObjectStore> = match scheme {
            "s3" | "s3a" => self.s3(&builder_url, shown)?,
            "gs" => self.gcs(&builder_url, shown)?,
            _ => self.azure(&builder_url, shown, !url.username().is_empty())?,
        };
        Ok((store, prefix, description))
    }

    /// Env entries with `prefix` whose lowercased name is a config key, then every option
    /// (which must be a config key).
    fn config<K: FromStr>(&self, prefix: &str, backend: &str) -> Result<Vec<(K, String)>, Error> {
        let mut out = Vec::new();
        for (name, value) in self.env {
            if name.starts_with(prefix)
                && let Ok(key) = name.to_ascii_lowercase().parse::<K>()
            {
                out.push((key, value.clone()));
            }
        }
        for (name, value) in self.passthrough {
            let key = name
                .to_ascii_lowercase()
                .parse::<K>()
                .map_err(|_| Error::InvalidOption {
                    key: name.clone(),
                    reason: format!("not a {backend} option (see docs/storage.md)"),
                })?;
            out.push((key, value.clone()));
        }
        Ok(out)
    }

    fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn s3(&self, url: &str, shown: &str) -> Result<Arc<dyn object_store::ObjectStore>, Error> {
        let mut b = AmazonS3Builder::new();
        for (key, value) in self.config::<AmazonS3ConfigKey>("AWS_", "S3")? {
            b = b.with_config(key, value);
        }
        b = b.with_url(url);
        let set = |k| b.get_config_value(&k).filter(|v| !v.is_empty());
        let key_id = set(AmazonS3ConfigKey::AccessKeyId).is_some();
        let secret = set(AmazonS3ConfigKey::SecretAccessKey).is_some();
        const HINT: &str = "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or --dest-option access_key_id=… secret_access_key=…), \
            or AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, or run where AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is set; \
            on EC2 with an instance profile set DSFILES_CREDENTIALS=instance.";
        let missing = |variable| Error::MissingCredentials {
            backend: "S3",
            variable,
            hint: HINT,
        };
        match (key_id, secret) {
            (true, true) => {}
            (true, false) => return Err(missing("AWS_SECRET_ACCESS_KEY")),
            (false, true) => return Err(missing("AWS_ACCESS_KEY_ID")),
            (false, false) => {
                let web_identity = set(AmazonS3ConfigKey::WebIdentityTokenFile).is_some();
                if web_identity && set(AmazonS3ConfigKey::RoleArn).is_none() {
                    return Err(missing("AWS_ROLE_ARN"));
                }
                let other = web_identity
                    || set(AmazonS3ConfigKey::ContainerCredentialsRelativeUri).is_some()
                    || set(AmazonS3ConfigKey::ContainerCredentialsFullUri).is_some()
                    || set(AmazonS3ConfigKey::SkipSignature).is_some_and(|v| truthy(&v))
                    || self.instance_credentials;
                if !other {
                    return Err(missing("AWS_ACCESS_KEY_ID"));
                }
            }
        }
        let store = b.build().map_err(|e| Error::InvalidDestination {
            dest: shown.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Arc::new(store))
    }

    fn gcs(&self, url: &str, shown: &str) -> Result<Arc<dyn object_store::ObjectStore>, Error> {
        let mut b = GoogleCloudStorageBuilder::new();
        for (key, value) in self.config::<GoogleConfigKey>("GOOGLE_", "GCS")? {
            b = b.with_config(key, value);
        }
        b = b.with_url(url);
        let set = |k| b.get_config_value(&k).filter(|v| !v.is_empty());
        // object_store itself reads `$HOME/.config/gcloud/application_default_credentials.json`
        // (what `gcloud auth application-default login` writes).
        let gcloud_file = self.env_var("HOME").is_some_and(|home| {
            PathBuf::from(home)
                .join(".config/gcloud/application_default_credentials.json")
                .is_file()
        });
        let configured = set(GoogleConfigKey::ServiceAccount).is_some()
            || set(GoogleConfigKey::ServiceAccountKey).is_some()
            || set(GoogleConfigKey::ApplicationCredentials).is_some()
            || set(GoogleConfigKey::BearerToken).is_some()
            || set(GoogleConfigKey::SkipSignature).is_some_and(|v| truthy(&v))
            || gcloud_file
            || self.instance_credentials;
        if !configured {
            return Err(Error::MissingCredentials {
                backend: "GCS",
                variable: "GOOGLE_APPLICATION_CREDENTIALS",
                hint: "Set GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT to a service-account JSON file \
                    (or GOOGLE_SERVICE_ACCOUNT_KEY to its content), or run `gcloud auth application-default login`; \
                    on GCE/GKE with an attached service account set DSFILES_CREDENTIALS=instance.",
            });
        }
        let store = b.build().map_err(|e| Error::InvalidDestination {
            dest: shown.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Arc::new(store))
    }

    fn azure(
        &self,
        url: &str,
        shown: &str,
        account_in_url: bool,
    ) -> Result<Arc<dyn object_store::ObjectStore>, Error> {
        let mut b = MicrosoftAzureBuilder::new();
        for (key, value) in self.config::<AzureConfigKey>("AZURE_", "Azure")? {
            b = b.with_config(key, value);
        }
        for name in ["MSI_ENDPOINT", "IDENTITY_ENDPOINT"] {
            if let Some(endpoint) = self.env_var(name)
                && b.get_config_value(&AzureConfigKey::MsiEndpoint).is_none()
            {
                b = b.with_msi_endpoint(endpoint);
            }
        }
        b = b.with_url(url);
        let set = |k| b.get_config_value(&k).filter(|v| !v.is_empty());
        let flag = |k| set(k).is_some_and(|v| truthy(&v));
        let emulator = flag(AzureConfigKey::UseEmulator);
        let missing = |variable, hint| Error::MissingCredentials {
            backend: "Azure",
            variable,
            hint,
        };
        if !emulator && !account_in_url && set(AzureConfigKey::AccountName).is_none() {
            return Err(missing(
                "AZURE_STORAGE_ACCOUNT_NAME",
                "Set it to the storage account name (or --dest-option account_name=…).",
            ));
        }
        let secret = set(AzureConfigKey::ClientSecret).is_some();
        let federated = set(AzureConfigKey::FederatedTokenFile).is_some();
        if secret || federated {
            if set(AzureConfigKey::ClientId).is_none() {
                return Err(missing(
                    "AZURE_CLIENT_ID",
                    "A service principal needs its client id and tenant id.",
                ));
            }
            if set(AzureConfigKey::AuthorityId).is_none() {
                return Err(missing(
                    "AZURE_TENANT_ID",
                    "A service principal needs its client id and tenant id.",
                ));
            }
        }
        let configured = emulator
            || secret
            || federated
            || set(AzureConfigKey::AccessKey).is_some()
            || set(AzureConfigKey::SasKey).is_some()
            || set(AzureConfigKey::Token).is_some()
            || set(AzureConfigKey::MsiEndpoint).is_some()
            || set(AzureConfigKey::FabricTokenServiceUrl).is_some()
            || flag(AzureConfigKey::UseAzureCli)
            || flag(AzureConfigKey::SkipSignature)
            || self.instance_credentials;
        if !configured {
            return Err(missing(
                "AZURE_STORAGE_ACCOUNT_KEY",
                "Set AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN, or a service principal \
                 (AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID), or AZURE_USE_AZURE_CLI=true; \
                 with a managed identity set DSFILES_CREDENTIALS=instance.",
            ));
        }
        let store = b.build().map_err(|e| Error::InvalidDestination {
            dest: shown.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Arc::new(store))
    }
}

#[cfg(test)]
mod tests;
