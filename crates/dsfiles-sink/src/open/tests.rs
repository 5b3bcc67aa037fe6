use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    env(pairs)
}

/// Opens `dest` and returns `describe()` or the error message.
fn check(dest: &str, options: &[(&str, &str)], vars: &[(&str, &str)]) -> String {
    match open_with_env(dest, &opts(options), env(vars)) {
        Ok(sink) => sink.describe(),
        Err(e) => format!("error: {e}"),
    }
}

const S3_KEYS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
    ("AWS_SECRET_ACCESS_KEY", "very-secret-value"),
];

#[test]
fn s3_with_keys_describes_without_secrets() {
    let d = check("s3://bucket/some/prefix", &[], S3_KEYS);
    assert_eq!(d, "s3://bucket/some/prefix");
    let d = check("s3a://bucket", &[("region", "eu-west-3")], S3_KEYS);
    assert_eq!(d, "s3a://bucket");
}

#[test]
fn s3_missing_credentials_names_the_variable() {
    let e = check("s3://bucket/p", &[], &[]);
    assert!(
        e.starts_with("error: S3 needs credentials: `AWS_ACCESS_KEY_ID` is not set."),
        "{e}"
    );
    let e = check("s3://bucket/p", &[], &[("AWS_ACCESS_KEY_ID", "x")]);
    assert!(e.contains("`AWS_SECRET_ACCESS_KEY` is not set"), "{e}");
    let e = check(
        "s3://bucket/p",
        &[],
        &[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")],
    );
    assert!(e.contains("`AWS_ROLE_ARN` is not set"), "{e}");
    // Options provide credentials too, and they are never echoed.
    let d = check(
        "s3://bucket/p",
        &[("access_key_id", "AK"), ("secret_access_key", "SECRET")],
        &[],
    );
    assert_eq!(d, "s3://bucket/p");
}

#[test]
fn s3_instance_credentials_are_opt_in() {
    assert_eq!(
        check("s3://b", &[("credentials", "instance")], &[]),
        "s3://b"
    );
    assert_eq!(
        check("s3://b", &[], &[("DSFILES_CREDENTIALS", "instance")]),
        "s3://b"
    );
    assert_eq!(
        check(
            "s3://b",
            &[],
            &[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds")]
        ),
        "s3://b"
    );
    let e = check("s3://b", &[("credentials", "imds")], &[]);
    assert!(
        e.contains("invalid destination option `credentials`"),
        "{e}"
    );
}

#[test]
fn gcs_and_azure_credentials() {
    let e = check("gs://bucket/x", &[], &[]);
    assert!(
        e.contains("GCS needs credentials: `GOOGLE_APPLICATION_CREDENTIALS` is not set"),
        "{e}"
    );
    let key = r#"{"private_key":"","private_key_id":"","client_email":"","disable_oauth":true}"#;
    assert_eq!(
        check("gs://bucket/x", &[], &[("GOOGLE_SERVICE_ACCOUNT_KEY", key)]),
        "gs://bucket/x"
    );

    let e = check("az://container/x", &[], &[]);
    assert!(e.contains("`AZURE_STORAGE_ACCOUNT_NAME` is not set"), "{e}");
    let e = check(
        "az://container/x",
        &[],
        &[("AZURE_STORAGE_ACCOUNT_NAME", "acct")],
    );
    assert!(e.contains("`AZURE_STORAGE_ACCOUNT_KEY` is not set"), "{e}");
    let e = check(
        "azure://container/x",
        &[],
        &[
            ("AZURE_STORAGE_ACCOUNT_NAME", "acct"),
            ("AZURE_CLIENT_SECRET", "s"),
        ],
    );
    assert!(e.contains("`AZURE_CLIENT_ID` is not set"), "{e}");
    let d = check(
        "az://container/x",
        &[],
        &[
            ("AZURE_STORAGE_ACCOUNT_NAME", "acct"),
            ("AZURE_STORAGE_ACCOUNT_KEY", "a2V5"),
        ],
    );
    assert_eq!(d, "az://container/x");
    assert_eq!(
        check("az://c", &[], &[("AZURE_STORAGE_USE_EMULATOR", "true")]),
        "az://c"
    );
}

#[test]
fn bad_destinations() {
    let e = check("ftp://host/x", &[], &[]);
    assert!(
        e.starts_with("error: unsupported destination scheme `ftp`"),
        "{e}"
    );
    let e = check("https://example.com/x", &[], &[]);
    assert!(e.contains("AWS_ENDPOINT"), "{e}");
    let e = check("s3:///prefix", &[], S3_KEYS);
    assert!(e.contains("names no bucket"), "{e}");
    let e = check("s3://bucket/a//b", &[], S3_KEYS);
    assert!(e.starts_with("error: invalid destination"), "{e}");
    let e = check("file://host/x", &[], &[]);
    assert!(e.contains("file:///absolute/path"), "{e}");
}

#[test]
fn passwords_and_queries_never_appear() {
    let e = check("ftp://user:hunter2@host/x?sig=SECRETSIG", &[], &[]);
    assert!(!e.contains("hunter2") && !e.contains("SECRETSIG"), "{e}");
    let d = check("s3://bucket/p?X-Amz-Signature=SECRETSIG", &[], S3_KEYS);
    assert_eq!(d, "s3://bucket/p");
}

#[test]
fn options_are_checked() {
    let e = check("s3://b", &[("no_such_key", "1")], S3_KEYS);
    assert!(
        e.contains("invalid destination option `no_such_key`: not a S3 option"),
        "{e}"
    );
    let e = check("s3://b", &[("part_size", "1MiB")], S3_KEYS);
    assert!(e.contains("`part_size`"), "{e}");
    let e = check("s3://b", &[("part_size", "lots")], S3_KEYS);
    assert!(e.contains("is not a size"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let e = check(path, &[("region", "x")], &[]);
    assert!(e.contains("is not an object store"), "{e}");
    assert_eq!(
        check(path, &[("fsync", "false"), ("part_size", "16MiB")], &[]),
        path
    );
}

#[test]
fn sizes() {
    assert_eq!(parse_size("16MiB"), Some(16 << 20));
    assert_eq!(parse_size("8m"), Some(8 << 20));
    assert_eq!(parse_size("5242880"), Some(5 << 20));
    assert_eq!(parse_size("1GiB"), Some(1 << 30));
    assert_eq!(parse_size("MiB"), None);
    assert_eq!(parse_size("3 parsecs"), None);
}

#[test]
fn local_paths_and_file_urls() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let plain = root.join("plain");
    let sink = open_with_env(plain.to_str().unwrap(), &[], env(&[])).unwrap();
    assert_eq!(sink.describe(), plain.display().to_string());
    assert!(plain.join(".dsfiles/tmp").is_dir());
    let url = format!("file://{}", root.join("viaurl").display());
    let sink = open_with_env(&url, &[], env(&[])).unwrap();
    assert_eq!(sink.describe(), root.join("viaurl").display().to_string());
    std::fs::write(root.join("afile"), b"x").unwrap();
    let e = check(root.join("afile").to_str().unwrap(), &[], &[]);
    assert!(e.contains("is not a directory"), "{e}");
}

#[test]
fn local_disk_switches() {
    let opts = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Options::parse(&pairs, &[]).map(|o| o.sink)
    };
    let default = opts(&[]).unwrap();
    assert!(default.fsync && default.direct_io);
    let off = opts(&[("fsync", "no"), ("DIRECT_IO", "Off")]).unwrap();
    assert!(!off.fsync && !off.direct_io);
    assert!(opts(&[("direct_io", "1")]).unwrap().direct_io);
    for (key, value) in [("direct_io", "maybe"), ("fsync", "")] {
        let e = opts(&[(key, value)]).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains("is not true or false"), "{e}");
    }
}
