use chrono::{TimeZone as _, Utc};
use clap::Parser as _;

use super::*;

/// A parser holding only the shared settings, to test them without a subcommand.
#[derive(Debug, clap::Parser)]
struct Harness {
    #[command(flatten)]
    ds: DsArgs,
    #[command(flatten)]
    filters: Filters,
}

fn parse(args: &[&str]) -> Result<Harness, clap::Error> {
    Harness::try_parse_from(std::iter::once("dsfiles").chain(args.iter().copied()))
}

#[test]
fn dates_accept_rfc3339_and_plain_days() {
    let check = |input: &str, expected: Option<chrono::DateTime<Utc>>| {
        assert_eq!(parse_date(input).ok(), expected, "{input}");
    };
    check(
        "2024-03-01",
        Some(Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap()),
    );
    check(
        "2024-03-01T08:30:00Z",
        Some(Utc.with_ymd_and_hms(2024, 3, 1, 8, 30, 0).unwrap()),
    );
    check(
        "2024-03-01T08:30:00+01:00",
        Some(Utc.with_ymd_and_hms(2024, 3, 1, 7, 30, 0).unwrap()),
    );
    check("01/03/2024", None);
    check("2024-02-30", None);
    check("", None);
}

#[test]
fn clap_defaults_are_the_clients_defaults() {
    let args = parse(&[]).unwrap();
    let token = ds::Token::new("t").unwrap();
    let client = ClientConfig::new(args.ds.endpoint.clone(), token);
    assert_eq!(args.ds.endpoint.as_str(), ds::DEFAULT_ENDPOINT);
    assert_eq!(args.ds.requests_per_minute, client.requests_per_minute);
    assert_eq!(args.ds.max_attempts, client.max_attempts);
    assert_eq!(args.ds.page_size, client.page_size);
    assert_eq!(
        Duration::from_secs(args.ds.connect_timeout),
        client.connect_timeout
    );
    assert_eq!(
        Duration::from_secs(args.ds.read_timeout),
        client.read_timeout
    );
}

#[test]
fn filters_map_to_the_ds_filter() {
    let args = parse(&[
        "--state",
        "en_instruction",
        "--archived",
        "false",
        "--created-since",
        "2024-01-02",
        "--groupe-instructeur",
        "7",
        "--dossier",
        "10",
        "--dossier",
        "11",
        "--include",
        "pdf,entreprise",
    ])
    .unwrap();
    let since = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
    let filter = args.filters.dossier_filter(Some(since));
    assert_eq!(filter.updated_since, Some(since));
    assert_eq!(
        filter.created_since,
        Some(Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap())
    );
    assert!(matches!(filter.state, Some(DossierState::EnInstruction)));
    assert_eq!(filter.archived, Some(false));
    assert_eq!(filter.groupe_instructeur, Some(7));
    assert_eq!(filter.dossiers, [10, 11]);
    assert!(filter.include_generated && filter.include_entreprise);
    let include = args.filters.include();
    assert!(include.generated && include.entreprise);
}

#[test]
fn no_filter_means_everything() {
    let args = parse(&[]).unwrap();
    let filter = args.filters.dossier_filter(None);
    assert!(filter.updated_since.is_none() && filter.created_since.is_none());
    assert!(
        filter.state.is_none() && filter.archived.is_none() && filter.groupe_instructeur.is_none()
    );
    assert!(filter.dossiers.is_empty() && !filter.include_generated && !filter.include_entreprise);
}

#[test]
fn bad_values_are_rejected_by_clap() {
    for args in [
        &["--state", "accepted"][..],
        &["--include", "pdf,photos"],
        &["--page-size", "101"],
        &["--page-size", "0"],
        &["--max-attempts", "0"],
        &["--endpoint", "not a url"],
        &["--created-since", "yesterday"],
    ] {
        assert!(parse(args).is_err(), "{args:?} should be rejected");
    }
}

#[test]
fn token_file_is_read_trimmed_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "s3cr3t-token\n").unwrap();
    let token = resolve_token(Some(path.as_path())).unwrap();
    assert_eq!(token.expose(), "s3cr3t-token");
    assert!(!format!("{token:?}").contains("s3cr3t"));

    std::fs::write(&path, "\n").unwrap();
    let err = resolve_token(Some(path.as_path())).unwrap_err();
    assert!(err.is::<UsageError>(), "{err:#}");

    let missing = dir.path().join("absent");
    let err = resolve_token(Some(missing.as_path())).unwrap_err();
    assert!(err.is::<UsageError>());
    assert!(format!("{err}").contains("absent"), "{err}");
}
