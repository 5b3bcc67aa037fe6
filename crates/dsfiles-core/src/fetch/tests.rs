use std::time::Duration;

use super::*;

#[test]
fn content_range() {
    for (header, start) in [
        ("bytes 100-199/200", Some(100)),
        ("bytes 0-0/1", Some(0)),
        (" bytes  7-9/*", Some(7)),
        ("bytes */200", None),
        ("items 1-2/3", None),
    ] {
        assert_eq!(content_range_start(header), start, "{header}");
    }
}

#[test]
fn queries_are_stripped() {
    for (url, stripped) in [
        ("https://h/p/f.pdf?sig=secret&exp=1", "https://h/p/f.pdf"),
        ("https://h/p#frag", "https://h/p"),
        ("https://h/p", "https://h/p"),
    ] {
        assert_eq!(strip_query(url), stripped);
    }
}

#[test]
fn backoff_doubles_with_jitter_and_is_capped() {
    let opts = FetchOptions {
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        ..FetchOptions::default()
    };
    for (n, full) in [
        (1, 100),
        (2, 200),
        (3, 400),
        (4, 800),
        (5, 1000),
        (40, 1000),
    ] {
        let d = backoff(&opts, n);
        let full = Duration::from_millis(full);
        assert!(
            d >= full / 2 && d <= full,
            "attempt {n}: {d:?} not in [{:?}, {full:?}]",
            full / 2
        );
    }
}

#[test]
fn attempt_errors_are_classified_once() {
    let status = |s: u16| AttemptError::Status {
        status: StatusCode::from_u16(s).unwrap(),
        url: "https://h/f".into(),
        retry_after: None,
    };
    assert!(status(500).is_transient());
    assert!(status(503).is_transient());
    assert!(status(429).is_transient());
    assert!(!status(400).is_transient());
    assert!(
        AttemptError::Truncated {
            got: 1,
            expected: 2
        }
        .is_transient()
    );
    assert!(
        !AttemptError::Expired {
            status: StatusCode::UNAUTHORIZED,
            url: "u".into()
        }
        .is_transient()
    );
    assert_eq!(
        AttemptError::Truncated {
            got: 10,
            expected: 20
        }
        .to_string(),
        "the body ended after 10 of 20 bytes"
    );
}
