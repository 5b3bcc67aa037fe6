use super::*;

fn check(allow: &[&str], dest: &str, expected: Result<&str, &str>) {
    let list = AllowList::new(allow.iter().copied()).expect("valid allow-list");
    let actual = list
        .check(dest)
        .map(|d| d.canonical())
        .map_err(|e| match e {
            DestError::Invalid { .. } => "invalid",
            DestError::NotAllowed { .. } => "not_allowed",
        });
    assert_eq!(
        actual.as_deref().map_err(|e| *e),
        expected,
        "allow {allow:?}, dest `{dest}`"
    );
}

#[test]
fn local_prefixes_match_on_component_boundaries() {
    let allow = ["/srv/archive"];
    check(&allow, "/srv/archive", Ok("/srv/archive"));
    check(&allow, "/srv/archive/", Ok("/srv/archive"));
    check(&allow, "/srv/archive/d1", Ok("/srv/archive/d1"));
    check(&allow, "/srv/archive/./d1", Err("invalid"));
    check(&allow, "file:///srv/archive/%2e%2e/etc", Err("invalid"));
    check(&allow, "file:///srv/archive/d1/", Ok("/srv/archive/d1"));
    check(&allow, "file:///srv/archive/d1", Ok("/srv/archive/d1"));
    check(&allow, "/srv/archive2", Err("not_allowed"));
    check(&allow, "/srv/arch", Err("not_allowed"));
    check(&allow, "/srv", Err("not_allowed"));
    check(&allow, "/srv/archive/../etc", Err("invalid"));
    check(&allow, "/srv/archive/d1/..", Err("invalid"));
    check(&allow, "srv/archive", Err("invalid"));
    check(&allow, "archive", Err("invalid"));
    check(&allow, "/srv/archive/\0x", Err("invalid"));
    check(&allow, "", Err("invalid"));
}

#[test]
fn bucket_prefixes_match_on_segment_boundaries() {
    let allow = ["s3://bucket/team", "gs://other"];
    check(&allow, "s3://bucket/team", Ok("s3://bucket/team"));
    check(&allow, "s3://bucket/team/d1/", Ok("s3://bucket/team/d1"));
    check(&allow, "S3://bucket//team/d1", Ok("s3://bucket/team/d1"));
    check(&allow, "gs://other/anything", Ok("gs://other/anything"));
    check(&allow, "s3://bucket/teammate", Err("not_allowed"));
    check(&allow, "s3://bucket", Err("not_allowed"));
    check(&allow, "s3://bucket2/team", Err("not_allowed"));
    check(&allow, "gs://bucket/team", Err("not_allowed"));
    check(&allow, "s3://bucket/team/../x", Err("invalid"));
    check(&allow, "s3://bucket/team/%2E%2e/x", Err("invalid"));
    check(&allow, "s3://bucket/team/x?versionId=1", Err("invalid"));
    check(&allow, "s3://user:pw@bucket/team", Err("invalid"));
    check(&allow, "ftp://bucket/team", Err("invalid"));
    check(&allow, "/srv/team", Err("not_allowed"));
}

#[test]
fn an_empty_allow_list_allows_nothing() {
    check(&[], "/srv/archive", Err("not_allowed"));
    check(&[], "s3://bucket/x", Err("not_allowed"));
}

#[test]
fn secrets_do_not_print_and_compare_by_value() {
    let secret = Secret::new("whsec_topsecret");
    assert_eq!(
        format!("{secret:?} {secret}"),
        "Secret(<redacted>) <redacted>"
    );
    assert!(secret.matches(b"whsec_topsecret"));
    assert!(!secret.matches(b"whsec_topsecreT"));
    assert!(!secret.matches(b"whsec_topsecret "));
    assert!(!secret.matches(b""));
}

#[test]
fn the_config_file_parses_and_rejects_unknown_keys() {
    let file = ConfigFile::from_toml(
        r#"
        listen = "127.0.0.1:9000"
        allow_dest = ["/srv/a", "s3://b/p"]
        api_tokens = ["t1", "t2"]
        max_concurrent_syncs = 3
        jobs = 4
        download_read_timeout_secs = 90
        [dest_options]
        region = "eu-west-3"
        aws_secret_access_key = "s3-secret"
        [ds]
        endpoint = "http://127.0.0.1:1/api/v2/graphql"
        token = "ds-token"
        connect_timeout_secs = 5
        read_timeout_secs = 300
        requests_per_minute = 200
        max_attempts = 4
        page_size = 50
        [ds.tokens]
        "42" = "other-token"
        [webhooks]
        secret = "whsec_a"
        previous_secret = "whsec_b"
        [webhooks.destinations]
        "42" = "/srv/a/42"
        "#,
    )
    .expect("valid file");
    assert_eq!(file.listen.as_deref(), Some("127.0.0.1:9000"));
    assert_eq!(file.api_tokens.len(), 2);
    assert_eq!(
        file.ds.tokens.get("42").map(Secret::expose),
        Some("other-token")
    );
    assert_eq!(
        file.webhooks.destinations.get("42").map(String::as_str),
        Some("/srv/a/42")
    );
    assert_eq!(
        (file.jobs, file.download_read_timeout_secs),
        (Some(4), Some(90))
    );
    assert_eq!(
        file.dest_options.get("region").map(Secret::expose),
        Some("eu-west-3")
    );
    assert_eq!(
        (
            file.ds.connect_timeout_secs,
            file.ds.read_timeout_secs,
            file.ds.requests_per_minute,
            file.ds.max_attempts,
            file.ds.page_size
        ),
        (Some(5), Some(300), Some(200), Some(4), Some(50))
    );
    let debug = format!("{file:?}");
    for secret in ["ds-token", "whsec_a", "t1", "s3-secret"] {
        assert!(!debug.contains(secret), "`{secret}` in {debug}");
    }

    let err = ConfigFile::from_toml("alow_dest = []").expect_err("typo");
    assert!(err.to_string().contains("alow_dest"), "{err}");
    let err = ConfigFile::from_toml("[ds]\nconect_timeout_secs = 3").expect_err("typo");
    assert!(err.to_string().contains("conect_timeout_secs"), "{err}");
}

#[test]
fn validation_names_the_problem() {
    let mut config = ServerConfig::defaults();
    assert!(
        config
            .validate()
            .expect_err("no token")
            .to_string()
            .contains("API token")
    );
    config.api_tokens = vec![Secret::new("t")];
    config.allow_dest = AllowList::new(["/srv/a"]).expect("valid");
    config.validate().expect("valid");
    config.webhook_destinations.insert(7, "/srv/b".into());
    let err = config.validate().expect_err("outside");
    assert!(err.to_string().contains("`7`"), "{err}");
    config
        .webhook_destinations
        .insert(7, "file:///srv/a/%2e%2e/b".into());
    let err = config.validate().expect_err("dot segment");
    assert!(err.to_string().contains("`..`"), "{err}");
    config
        .webhook_destinations
        .insert(7, "file:///srv/a/w7/".into());
    assert_eq!(
        config.canonical_webhook_destinations().expect("valid"),
        BTreeMap::from([(7, "/srv/a/w7".to_owned())])
    );

    config.limits.max_queued_syncs = 0;
    let err = config.validate().expect_err("no queue");
    assert!(
        err.to_string().contains("`limits.max_queued_syncs`"),
        "{err}"
    );
    config.limits = Limits::default();
    config.limits.idle_timeout = config.request_timeout;
    let err = config.validate().expect_err("idle timeout too short");
    assert!(err.to_string().contains("`limits.idle_timeout`"), "{err}");
}

#[test]
fn the_limits_section_overrides_the_defaults_it_names() {
    let file = ConfigFile::from_toml(
        "[limits]\nmax_connections = 64\nheader_read_timeout_secs = 5\nmax_queued_syncs = 7",
    )
    .expect("valid file");
    let limits = file.limits.resolve();
    assert_eq!(
        limits,
        Limits {
            max_connections: 64,
            header_read_timeout: Duration::from_secs(5),
            max_queued_syncs: 7,
            ..Limits::default()
        }
    );
    let err = ConfigFile::from_toml("[limits]\nmax_conections = 3").expect_err("typo");
    assert!(err.to_string().contains("max_conections"), "{err}");
}

#[test]
fn the_database_url_comes_from_the_file_and_never_prints() {
    let file = ConfigFile::from_toml(
        r#"
        database_url = "postgres://app:pg-secret@db:5432/jobs"
        replica_id = "web-1"
        "#,
    )
    .expect("parses");
    let config = file.server_config().expect("server config");
    let database = config.database.as_ref().expect("a database");
    assert_eq!(
        database.url.expose(),
        "postgres://app:pg-secret@db:5432/jobs"
    );
    assert_eq!(database.replica_id, "web-1");
    assert_eq!(database.lease, crate::jobdb::LEASE);
    let printed = format!("{config:?}");
    assert!(!printed.contains("pg-secret"), "{printed}");

    let without = ConfigFile::from_toml("state_dir = \"/srv/state\"").expect("parses");
    assert!(without.server_config().expect("config").database.is_none());
    // Without a URL, a replica id alone is not a database.
    let id_only = ConfigFile::from_toml("replica_id = \"x\"").expect("parses");
    assert!(id_only.server_config().expect("config").database.is_none());
}
