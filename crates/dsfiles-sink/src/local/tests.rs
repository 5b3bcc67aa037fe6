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

/// `delete` prunes directories it empties; a commit into the same directory running at the
/// same moment must still publish (it recreates the directory) rather than fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_survives_concurrent_delete_in_same_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = std::sync::Arc::new(
        LocalSink::open(
            dir.path(),
            SinkOptions {
                fsync: false,
                ..SinkOptions::default()
            },
        )
        .expect("open"),
    );
    for round in 0..200 {
        let deleter = {
            let sink = sink.clone();
            tokio::spawn(async move {
                sink.put_small(&format!("d/old-{round}"), Bytes::from_static(b"x"))
                    .await?;
                sink.delete(&format!("d/old-{round}")).await
            })
        };
        let key = format!("d/new-{round}");
        let mut upload = sink
            .create(&key, &ObjectMeta::default())
            .await
            .expect("create");
        upload
            .write(Bytes::from_static(b"payload"))
            .await
            .expect("write");
        upload
            .commit()
            .await
            .expect("commit despite a concurrent delete");
        deleter.await.expect("join").expect("delete");
        assert_eq!(
            sink.get_small(&key).await.expect("read").as_deref(),
            Some(&b"payload"[..])
        );
        sink.delete(&key).await.expect("cleanup");
    }
}
