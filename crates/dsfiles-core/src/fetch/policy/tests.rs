use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use url::Url;

use super::*;

fn policy(allowed: &[&str]) -> HostPolicy {
    let allowed: Vec<AllowedHost> = allowed.iter().map(|a| a.parse().unwrap()).collect();
    HostPolicy::new(
        &allowed,
        Some(&Url::parse("https://ds.example:8443/api/v2/graphql").unwrap()),
    )
}

#[test]
fn addresses_are_classified() {
    fn check(ip: &str, expected: Option<&str>) {
        let parsed: IpAddr = ip.parse().unwrap();
        assert_eq!(blocked_reason(parsed), expected, "{ip}");
    }
    check("127.0.0.1", Some("loopback"));
    check("127.0.0.2", Some("loopback"));
    check("0.0.0.0", Some("unspecified"));
    check("10.1.2.3", Some("private"));
    check("172.16.0.1", Some("private"));
    check("172.31.255.255", Some("private"));
    check("172.32.0.1", None);
    check("192.168.1.1", Some("private"));
    check("100.64.0.1", Some("shared (CGNAT)"));
    check("100.127.255.255", Some("shared (CGNAT)"));
    check("100.128.0.1", None);
    check("169.254.169.254", Some("link-local"));
    check("192.0.2.1", Some("reserved"));
    check("198.18.0.1", Some("reserved"));
    check("224.0.0.1", Some("multicast"));
    check("240.0.0.1", Some("reserved"));
    check("255.255.255.255", Some("broadcast"));
    check("8.8.8.8", None);
    check("93.184.216.34", None);
    check("::", Some("unspecified"));
    check("::1", Some("loopback"));
    check("::ffff:127.0.0.1", Some("loopback"));
    check("::ffff:169.254.169.254", Some("link-local"));
    check("::ffff:8.8.8.8", None);
    check("::10.0.0.1", Some("private"));
    check("64:ff9b::a9fe:a9fe", Some("link-local"));
    check("64:ff9b::808:808", None);
    check("64:ff9b:1::1", Some("private"));
    check("2002:7f00:1::", Some("loopback"));
    check("2002:808:808::1", None);
    check("fc00::1", Some("unique-local"));
    check("fd12:3456::1", Some("unique-local"));
    check("fe80::1", Some("link-local"));
    check("fec0::1", Some("site-local"));
    check("ff02::1", Some("multicast"));
    check("2001:db8::1", Some("reserved"));
    check("2606:4700::1111", None);
}

#[test]
fn allow_list_entries_parse_or_name_the_problem() {
    fn check(entry: &str, expected: Result<&str, &str>) {
        let got = entry.parse::<AllowedHost>().map(|a| a.to_string());
        match (got, expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{entry}"),
            (Err(got), Err(want)) => {
                assert!(got.contains(&format!("`{entry}`")), "{got}");
                assert!(got.contains(want), "{entry}: {got}");
            }
            (got, want) => panic!("{entry}: got {got:?}, want {want:?}"),
        }
    }
    check("files.example", Ok("files.example"));
    check("Files.Example:9000", Ok("files.example:9000"));
    check("127.0.0.1:8080", Ok("127.0.0.1:8080"));
    check("[::1]:8080", Ok("[::1]:8080"));
    check("[::1]", Ok("::1"));
    check("fd00::1", Ok("fd00::1"));
    check("", Err("no host"));
    check(":80", Err("no host"));
    check("h:0", Err("`0` is not a port"));
    check("h:99999", Err("is not a port"));
    check("h:x", Err("is not a port"));
    check("http://h/", Err("not a URL"));
    check("*.example", Err("not a URL or a pattern"));
    check("[::1", Err("unbalanced"));
    check("[zz]:1", Err("invalid IPv6"));
}

#[test]
fn urls_are_checked_before_any_connection() {
    fn check(allowed: &[&str], url: &str, expected: Result<(), &str>) {
        let url = Url::parse(url).unwrap();
        let got = policy(allowed).check_url(&url).map_err(|e| e.0);
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(got), Err(want)) => {
                assert!(got.starts_with("blocked_address: "), "{got}");
                assert!(got.contains(want), "{url}: {got}");
                assert!(!got.contains("sig="), "{got}");
            }
            (got, want) => panic!("{url}: got {got:?}, want {want:?}"),
        }
    }
    let none: &[&str] = &[];
    check(none, "https://files.example/f?sig=1", Ok(()));
    check(none, "https://8.8.8.8/f", Ok(()));
    check(
        none,
        "http://127.0.0.1:9/f?sig=1",
        Err("`127.0.0.1` is a loopback"),
    );
    check(
        none,
        "http://2130706433/f",
        Err("`127.0.0.1` is a loopback"),
    );
    check(none, "http://0x7f.1/f", Err("loopback"));
    check(
        none,
        "http://169.254.169.254/latest/meta-data/",
        Err("link-local"),
    );
    check(none, "http://[::ffff:7f00:1]/f", Err("loopback"));
    check(none, "http://[fe80::1]/f", Err("link-local"));
    check(none, "http://[::]/f", Err("unspecified"));
    // The API endpoint's own host and port only.
    check(none, "https://ds.example:8443/rails/f", Ok(()));
    check(&["127.0.0.1:8080"], "http://127.0.0.1:8080/f", Ok(()));
    check(
        &["127.0.0.1:8080"],
        "http://127.0.0.1:8081/f",
        Err("loopback"),
    );
    check(&["127.0.0.1"], "http://127.0.0.1:8081/f", Ok(()));
    check(&["[::1]:80"], "http://[::1]/f", Ok(()));
    // A name is judged by its addresses, unless it is allowed on other ports only.
    check(none, "http://localhost/f", Ok(()));
    check(&["minio.local:9000"], "http://minio.local:9000/f", Ok(()));
    check(
        &["minio.local:9000"],
        "http://minio.local:22/f",
        Err("other ports only, not on `22`"),
    );
    check(none, "https://ds.example/f", Err("other ports only"));
}

#[test]
fn redirect_hops_are_bounded_and_never_downgrade() {
    fn check(chain: &[&str], next: &str, expected: Result<(), &str>) {
        let previous: Vec<Url> = chain.iter().map(|u| Url::parse(u).unwrap()).collect();
        let next = Url::parse(next).unwrap();
        let got = policy(&["127.0.0.1"])
            .check_hop(&previous, &next)
            .map_err(|e| e.to_string());
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(got), Err(want)) => assert!(got.contains(want), "{next}: {got}"),
            (got, want) => panic!("{next}: got {got:?}, want {want:?}"),
        }
    }
    check(&["https://a/"], "https://b/", Ok(()));
    check(&["http://a/"], "http://b/", Ok(()));
    check(&["http://a/"], "https://b/", Ok(()));
    check(
        &["https://a/"],
        "http://b/f?sig=secret",
        Err("from https to http (`http://b/f`)"),
    );
    check(
        &["https://a/", "https://b/"],
        "http://c/",
        Err("https to http"),
    );
    check(&["https://a/"], "https://10.0.0.1/", Err("private"));
    check(&["http://a/"], "http://127.0.0.1:1/", Ok(()));
    let five = ["https://a/"; 5];
    check(&five, "https://b/", Ok(()));
    let six = ["https://a/"; 6];
    check(&six, "https://b/", Err("more than 5 redirects"));
}

#[test]
fn resolved_addresses_are_filtered() {
    fn check(allowed: &[&str], name: &str, addrs: &[&str], expected: Result<&[&str], &str>) {
        let addrs: Vec<SocketAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
        let got = policy(allowed).filter_resolved(name, addrs);
        match (got, expected) {
            (Ok(got), Ok(want)) => {
                let got: Vec<String> = got.iter().map(ToString::to_string).collect();
                assert_eq!(got, want, "{name}");
            }
            (Err(got), Err(want)) => assert!(got.0.contains(want), "{name}: {}", got.0),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
    let none: &[&str] = &[];
    check(none, "pub.example", &["8.8.8.8:0"], Ok(&["8.8.8.8:0"]));
    check(
        none,
        "localhost",
        &["127.0.0.1:0", "[::1]:0"],
        Err("`localhost` (`127.0.0.1`) is a loopback address"),
    );
    check(
        none,
        "rebind.example",
        &["169.254.169.254:0", "8.8.8.8:0"],
        Ok(&["8.8.8.8:0"]),
    );
    check(
        &["localhost"],
        "localhost",
        &["127.0.0.1:0"],
        Ok(&["127.0.0.1:0"]),
    );
    check(
        &["LOCALHOST:9000"],
        "localhost",
        &["[::1]:0"],
        Ok(&["[::1]:0"]),
    );
    check(none, "ds.example", &["10.0.0.5:0"], Ok(&["10.0.0.5:0"]));
    check(none, "empty.example", &[], Ok(&[]));
}

#[test]
fn bodies_and_deadlines_are_bounded_by_the_announced_size() {
    let opts = FetchOptions {
        deadline_base: Duration::from_secs(30),
        min_rate: 64 * 1024,
        max_unannounced_size: 1000,
        ..FetchOptions::default()
    };
    for (announced, limit) in [
        (Some(0), 1),
        (Some(1), 2),
        (Some(u64::MAX), u64::MAX),
        (None, 1001),
    ] {
        assert_eq!(body_limit(announced, &opts), limit, "{announced:?}");
    }
    for (size, deadline) in [
        (0, Some(Duration::from_secs(30))),
        (64 * 1024, Some(Duration::from_secs(31))),
        (32 * 1024, Some(Duration::from_millis(30_500))),
        (640 * 1024 * 1024, Some(Duration::from_secs(30 + 10_240))),
    ] {
        assert_eq!(attempt_deadline(size, &opts), deadline, "{size}");
    }
    // Saturating, never a panic.
    let huge = attempt_deadline(
        u64::MAX,
        &FetchOptions {
            min_rate: 1,
            ..opts.clone()
        },
    );
    assert!(huge.is_some_and(|d| d >= Duration::from_secs(u64::MAX / 2)));
    let no_deadline = FetchOptions {
        min_rate: 0,
        ..opts
    };
    assert_eq!(attempt_deadline(123, &no_deadline), None);
}
