//! The flag parsers, as tables; the whole command line through clap's own checks.

use std::time::Duration;

use clap::CommandFactory as _;

use super::{Args, parse_duration, parse_files_per_dossier};

#[test]
fn the_command_line_is_well_formed() {
    Args::command().debug_assert();
}

#[track_caller]
fn check<T: PartialEq + std::fmt::Debug>(
    parse: fn(&str) -> Result<T, String>,
    text: &str,
    expected: Result<T, &str>,
) {
    match (parse(text), expected) {
        (Ok(got), Ok(want)) => assert_eq!(got, want, "`{text}`"),
        (Err(got), Err(part)) => assert!(got.contains(part), "`{text}`: `{got}` lacks `{part}`"),
        (got, want) => panic!("`{text}`: got {got:?}, want {want:?}"),
    }
}

#[test]
fn files_per_dossier_is_a_range_or_a_count() {
    let parse = parse_files_per_dossier;
    check(parse, "8..12", Ok(8..=12));
    check(parse, "8..=12", Ok(8..=12));
    check(parse, "3", Ok(3..=3));
    check(parse, "0..0", Ok(0..=0));
    check(parse, "12..8", Err("reversed"));
    check(parse, "8..", Err("not a file count"));
    check(parse, "-1", Err("not a file count"));
    check(parse, "1..20000", Err("10000"));
}

#[test]
fn url_ttl_is_seconds_or_a_unit() {
    check(parse_duration, "90", Ok(Duration::from_secs(90)));
    check(parse_duration, "90s", Ok(Duration::from_secs(90)));
    check(parse_duration, "10m", Ok(Duration::from_secs(600)));
    check(parse_duration, "1h", Ok(Duration::from_secs(3600)));
    check(parse_duration, "0", Err("between 1s and a year"));
    check(parse_duration, "9999h", Err("between 1s and a year"));
    check(
        parse_duration,
        "99999999999999999999h",
        Err("between 1s and a year"),
    );
    check(parse_duration, "1d", Err("followed by s, m or h"));
    check(parse_duration, "h", Err("between 1s and a year"));
}

#[test]
fn number_gap_keeps_every_number_a_graphql_int() {
    let resolve = |gap: &str, dossiers: &str| {
        let argv = ["dsfiles-sim", "--number-gap", gap, "--dossiers", dossiers];
        <Args as clap::Parser>::try_parse_from(argv).and_then(Args::resolve)
    };
    let settings = resolve("40", "100000").expect("4 million numbers fit");
    assert_eq!(settings.config.number_gap, 40);
    let refused = resolve("10000", "5000000").expect_err("past i32::MAX");
    assert!(
        refused.to_string().contains("largest GraphQL `Int`"),
        "{refused}"
    );
    assert_eq!(refused.exit_code(), 2);
    assert!(resolve("0", "10").is_err());
}
