use super::*;

#[test]
fn relative_keys_use_forward_slashes() {
    let root = Path::new("/dest");
    assert_eq!(
        relative_key(root, Path::new("/dest/a/b/c.pdf")).as_deref(),
        Some("a/b/c.pdf")
    );
    assert_eq!(relative_key(root, Path::new("/elsewhere/x")), None);
}

#[test]
fn liveness_of_this_process() {
    assert!(process_alive(std::process::id()));
}

#[test]
fn missing_parents_count_as_absent() {
    for kind in [
        std::io::ErrorKind::NotFound,
        std::io::ErrorKind::NotADirectory,
    ] {
        assert!(absent(&std::io::Error::from(kind)));
    }
    assert!(!absent(&std::io::Error::from(
        std::io::ErrorKind::PermissionDenied
    )));
}
