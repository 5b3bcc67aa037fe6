use super::*;

#[test]
fn attributes_round_trip() {
    let meta = ObjectMeta {
        content_type: Some("application/pdf".into()),
        md5_base64: Some("1B2M2Y8AsgTpgAmY7PhCfg==".into()),
        sha256_hex: Some("e3b0".into()),
    };
    assert_eq!(meta_from_attributes(&attributes(&meta)), meta);
    assert_eq!(
        meta_from_attributes(&attributes(&ObjectMeta::default())),
        ObjectMeta::default()
    );
}

#[test]
fn keys_map_under_the_prefix_and_back() {
    let sink = ObjectStoreSink::new(
        Arc::new(object_store::memory::InMemory::new()),
        "archive/2024",
        "memory://archive/2024",
        SinkOptions::default(),
    )
    .unwrap();
    let path = sink.path("12/champ/a b.pdf").unwrap();
    assert_eq!(path.as_ref(), "archive/2024/12/champ/a b.pdf");
    assert_eq!(
        sink.relative_key(&path).as_deref(),
        Some("12/champ/a b.pdf")
    );
    assert_eq!(sink.relative_key(&Path::from("archive/2025/x")), None);
    assert!(matches!(sink.path("../x"), Err(Error::InvalidKey { .. })));
}

#[test]
fn debug_shows_no_store_internals() {
    let sink = ObjectStoreSink::memory();
    assert_eq!(sink.describe(), "memory://");
    let debug = format!("{sink:?}");
    assert!(
        debug.starts_with("ObjectStoreSink { dest: \"memory://\""),
        "{debug}"
    );
}

#[test]
fn options_are_validated() {
    let small = SinkOptions {
        part_size: 1024,
        ..SinkOptions::default()
    };
    assert!(matches!(
        ObjectStoreSink::memory().with_options(small),
        Err(Error::InvalidOption { .. })
    ));
    let none_in_flight = SinkOptions {
        parts_in_flight: 0,
        ..SinkOptions::default()
    };
    assert!(
        ObjectStoreSink::memory()
            .with_options(none_in_flight)
            .is_err()
    );
}
