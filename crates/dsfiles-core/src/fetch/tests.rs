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

#[tokio::test]
async fn a_slot_lends_its_permit_only_while_a_small_upload_commits() {
    let permits = Arc::new(Semaphore::new(1));
    let cancel = CancellationToken::new();
    let mut slot = Slot::new(Arc::clone(&permits));
    assert!(slot.hold(&cancel).await);
    assert_eq!(permits.available_permits(), 0);
    // Held: holding again takes nothing more.
    assert!(slot.hold(&cancel).await);
    // A large body keeps its permit through its commit.
    slot.lend_for_commit(LEND_UP_TO + 1);
    assert_eq!(permits.available_permits(), 0);
    // A small one gives it back: the next file's download may start meanwhile.
    slot.lend_for_commit(LEND_UP_TO);
    assert_eq!(permits.available_permits(), 1);
    let mut next = Slot::new(Arc::clone(&permits));
    assert!(next.hold(&cancel).await);
    // A retry after a failed commit waits for a permit again…
    let waited = tokio::time::timeout(Duration::from_millis(50), slot.hold(&cancel)).await;
    assert!(waited.is_err(), "took a permit that another download holds");
    // …gets the next one given back…
    drop(next);
    assert!(slot.hold(&cancel).await);
    assert_eq!(permits.available_permits(), 0);
    // …and gives up when the run is cancelled first.
    slot.lend_for_commit(0);
    let _taken = Arc::clone(&permits).acquire_owned().await.expect("permit");
    cancel.cancel();
    assert!(!slot.hold(&cancel).await);
}
