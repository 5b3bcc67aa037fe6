use super::*;

/// `dest` parses to the canonical spelling `expected`, or is refused with a reason holding
/// `expected` (after `!`).
fn check(dest: &str, expected: &str) {
    let actual = match Destination::parse(dest) {
        Ok(parsed) => {
            let canonical = parsed.canonical();
            assert_eq!(
                Destination::parse(&canonical).as_ref(),
                Ok(&parsed),
                "`{dest}`: the canonical form `{canonical}` does not parse back to itself"
            );
            canonical
        }
        Err(err) => format!("!{err}"),
    };
    match expected.strip_prefix('!') {
        Some(why) => assert!(
            actual.starts_with('!') && actual.contains(why),
            "`{dest}`: expected a refusal containing `{why}`, got `{actual}`"
        ),
        None => assert_eq!(actual, expected, "`{dest}`"),
    }
}

#[test]
fn one_local_directory_has_one_spelling() {
    check("/srv/a/x", "/srv/a/x");
    check("/srv/a/x/", "/srv/a/x");
    check("  /srv//a///x  ", "/srv/a/x");
    check("file:///srv/a/x", "/srv/a/x");
    check("FILE:///srv/a/x/", "/srv/a/x");
    check("file:///srv/a%20b/x", "/srv/a b/x");
    check("file:///srv/%C3%A9t%C3%A9", "/srv/été");
    check("/srv/a b/été", "/srv/a b/été");
    // Plain paths are literal: a `%` that decodes to nothing dangerous stays as it is.
    check("/srv/100%", "/srv/100%");
    check("/srv/a%20b", "/srv/a%20b");
    check("/", "/");
}

#[test]
fn dot_segments_are_refused_however_spelled() {
    let dot = "!`.` or `..` segment";
    check("file:///srv/archive/%2e%2e/etc", dot);
    check("file:///srv/archive/%2E%2e", dot);
    check("file:///srv/archive/.%2e/etc", dot);
    check("file:///srv/archive/./x", dot);
    check("file:///srv/archive/../etc", dot);
    check("/srv/archive/./x", dot);
    check("/srv/archive/../etc", dot);
    check("/srv/archive/x/..", dot);
    check("/srv/archive/%2e%2e/etc", dot);
    check("s3://bucket/team/%2E%2e/x", dot);
    check("s3://bucket/team/../x", dot);
    check("gs://bucket/./x", dot);
}

#[test]
fn encoded_separators_and_bad_escapes_are_refused() {
    let separator = "!encoded `/`";
    check("file:///srv/archive%2Fetc", separator);
    check("file:///srv/archive/a%2fb", separator);
    check("/srv/archive%2F..%2Fetc", separator);
    check("s3://bucket/a%2Fb", separator);
    check("s3://bucket/a%5Cb", separator);
    check(
        "/srv/a\\b",
        "!`/srv/a\\\\b` is invalid: it contains a backslash",
    );
    check("file:///srv/%00x", "!encoded control character");
    check("file:///srv/a%zz", "!malformed or non-UTF-8");
    check("file:///srv/a%+1", "!malformed or non-UTF-8");
    check("file:///srv/a%ff", "!malformed or non-UTF-8");
    check("file:///srv/a%2", "!malformed or non-UTF-8");
}

#[test]
fn bucket_urls_are_decoded_then_encoded_once() {
    check("s3://bucket/team", "s3://bucket/team");
    check("S3://bucket//team/d1/", "s3://bucket/team/d1");
    check("s3a://bucket/team", "s3://bucket/team");
    check("azure://container/p", "az://container/p");
    check("s3://bucket/a b", "s3://bucket/a%20b");
    check("s3://bucket/a%20b", "s3://bucket/a%20b");
    check("s3://bucket/a%2520b", "s3://bucket/a%2520b");
    check("gs://bucket/été", "gs://bucket/%C3%A9t%C3%A9");
    check("memory://", "memory://");
    check("s3://bucket", "s3://bucket");
}

#[test]
fn malformed_destinations_name_the_problem() {
    check("", "!it is empty");
    check("   ", "!it is empty");
    check("srv/archive", "!must be an absolute path");
    check("file://srv/archive", "!`file:///absolute/path`");
    check("file://localhost/srv", "!`file:///absolute/path`");
    check("/srv/\0x", "!control characters");
    check("ftp://bucket/team", "!its scheme is not one of");
    check("s3://", "!it names no bucket");
    check("s3:///team", "!it names no bucket");
    check("s3://bucket/x?versionId=1", "!a query or a fragment");
    check("file:///srv/x#frag", "!a query or a fragment");
    check("s3://b%41/x", "!percent-encoded");
    check(
        "s3://user:hunter2@bucket/team",
        "!`s3://…@bucket/team` is invalid: it has credentials",
    );
}

fn pattern() -> regex::Regex {
    regex::Regex::new(&Destination::pattern()).expect("the pattern compiles")
}

#[test]
fn the_pattern_matches_the_usual_destinations_and_refuses_the_broken_ones() {
    let pattern = pattern();
    let cases = [
        ("/srv/archive", true),
        ("/srv/archive/", true),
        ("/srv/démarches/2024 dossiers/.cache", true),
        ("file:///srv/archive", true),
        ("s3://bucket", true),
        ("s3a://bucket/prefix/x", true),
        ("gs://bucket/a", true),
        ("az://container/a", true),
        ("abfss://container/a", true),
        ("", false),
        ("srv/archive", false),
        ("/srv/../etc", false),
        ("/srv/./x", false),
        ("/srv//x/", true),
        ("S3://bucket//x", true),
        ("/srv/ x", false),
        ("/srv/100%", false),
        ("/srv/a\u{0}b", false),
        ("file://host/srv", false),
        ("s3://", false),
        ("s3://user:pw@bucket/x", false),
        ("s3://bucket/x?versionId=1", false),
        ("http://bucket/x", false),
        ("memory://", false),
    ];
    for (dest, matches) in cases {
        assert_eq!(pattern.is_match(dest), matches, "`{dest}`");
    }
}

/// Strings made of the spellings' pieces, in random order: whatever the pattern matches
/// parses.
#[test]
fn whatever_the_pattern_matches_parses() {
    let pattern = pattern();
    let pieces = [
        "/",
        "//",
        ".",
        "..",
        "a",
        "é",
        " ",
        "%2e",
        "%",
        "@",
        "?",
        "#",
        "\\",
        "\u{0}",
        "\u{85}",
        "file://",
        "s3://",
        "gs://",
        "az://",
        "azure://",
        "abfss://",
        "memory://",
        "http://",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut matched = 0;
    for _ in 0..200_000 {
        let len = 1 + next() % 7;
        let dest: String = (0..len)
            .map(|_| pieces[(next() % pieces.len() as u64) as usize])
            .collect();
        if pattern.is_match(&dest) {
            matched += 1;
            assert!(Destination::parse(&dest).is_ok(), "`{dest}`");
        }
    }
    assert!(matched > 500, "only {matched} matched");
}
