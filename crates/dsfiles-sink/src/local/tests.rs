use std::collections::HashSet;

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

fn open(dir: &Path, fsync: bool) -> LocalSink {
    LocalSink::open(
        dir,
        SinkOptions {
            fsync,
            ..SinkOptions::default()
        },
    )
    .expect("open")
}

fn dirty(sink: &LocalSink) -> Vec<String> {
    let mut dirs: Vec<String> = sink
        .shared
        .dirty
        .lock()
        .expect("dirty set")
        .iter()
        .map(|d| match d.strip_prefix(sink.root()) {
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => d.display().to_string(),
        })
        .collect();
    dirs.sort();
    dirs
}

async fn commit(sink: &LocalSink, key: &str, bytes: &'static [u8]) {
    let mut upload = sink
        .create(key, &ObjectMeta::default())
        .await
        .expect("create");
    upload
        .write(Bytes::from_static(bytes))
        .await
        .expect("write");
    upload.commit().await.expect("commit");
}

#[tokio::test]
async fn temp_files_are_spread_over_shard_directories_and_cleaned_in_all_of_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = open(dir.path(), true);
    let tmp = dir.path().join(".dsfiles/tmp");
    let shards = std::fs::read_dir(&tmp).expect("tmp").count();
    assert_eq!(shards, TMP_SHARDS, "shard directories created at open");

    let mut uploads = Vec::new();
    for i in 0..TMP_SHARDS {
        let mut upload = sink
            .create(&format!("{i}.bin"), &ObjectMeta::default())
            .await
            .expect("create");
        // A full buffer: only then does an upload create its temp file.
        let full = Bytes::from(vec![b'x'; WRITE_BUFFER]);
        upload.write(full).await.expect("write");
        uploads.push(upload);
    }
    let temps = sink.temp_files().expect("temp files");
    let parents: HashSet<_> = temps.iter().filter_map(|t| t.parent()).collect();
    assert_eq!(temps.len(), TMP_SHARDS);
    assert_eq!(
        parents.len(),
        TMP_SHARDS,
        "one temp file per shard: {temps:?}"
    );
    assert!(
        temps
            .iter()
            .all(|t| t.starts_with(&tmp) && t.extension().is_some_and(|e| e == "part"))
    );

    // With a leftover of an older version, directly under tmp/.
    std::fs::write(tmp.join("old.part"), b"partial").expect("write");
    assert_eq!(sink.cleanup_temp().expect("cleanup"), TMP_SHARDS + 1);
    assert_eq!(
        sink.temp_files().expect("temp files"),
        Vec::<PathBuf>::new()
    );
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), TMP_SHARDS);
    for upload in uploads {
        // Their temp files are gone: abort still succeeds.
        upload.abort().await.expect("abort");
    }
    // A shard removed under the sink is recreated when its turn comes again.
    std::fs::remove_dir(tmp.join("00")).expect("empty shard");
    for i in 0..TMP_SHARDS {
        commit(&sink, &format!("again/{i}"), b"y").await;
    }
    assert!(tmp.join("00").is_dir());
    assert!(sink.temp_files().expect("temp files").is_empty());
}

#[tokio::test]
async fn commits_leave_directory_fsyncs_to_the_next_put_small() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = open(dir.path(), true);
    commit(&sink, "1/champ/a.pdf", b"a").await;
    commit(&sink, "1/champ/b.pdf", b"b").await;
    commit(&sink, "1/annotation/c.pdf", b"c").await;
    commit(&sink, "top.txt", b"t").await;
    // Each file's directory, and the parent of each directory created.
    assert_eq!(
        dirty(&sink),
        ["/", "/1", "/1/annotation", "/1/champ"],
        "directories waiting for an fsync"
    );
    sink.put_small(".dsfiles/dossiers/1.json", Bytes::from_static(b"{}"))
        .await
        .expect("put_small");
    assert_eq!(
        dirty(&sink),
        Vec::<String>::new(),
        "put_small syncs them all"
    );
    // put_small syncs its own directories before returning.
    sink.put_small(".dsfiles/other/2.json", Bytes::from_static(b"{}"))
        .await
        .expect("put_small");
    assert_eq!(dirty(&sink), Vec::<String>::new());
    for (key, bytes) in [
        ("1/champ/a.pdf", &b"a"[..]),
        (".dsfiles/dossiers/1.json", b"{}"),
    ] {
        assert_eq!(
            sink.get_small(key).await.expect("read").as_deref(),
            Some(bytes)
        );
    }
    // Without fsync nothing is tracked.
    let other = tempfile::tempdir().expect("tempdir");
    let unsynced = open(other.path(), false);
    commit(&unsynced, "1/champ/a.pdf", b"a").await;
    assert_eq!(dirty(&unsynced), Vec::<String>::new());
}

#[tokio::test]
async fn directories_created_by_a_failed_commit_still_get_synced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = open(dir.path(), true);
    let mut upload = sink
        .create("m/new/f.pdf", &ObjectMeta::default())
        .await
        .expect("create");
    let full = Bytes::from(vec![b'1'; WRITE_BUFFER]);
    upload.write(full).await.expect("write");
    // The temp file disappears: the commit creates `m/new/`, then its rename fails.
    for temp in sink.temp_files().expect("temp files") {
        std::fs::remove_file(temp).expect("remove temp");
    }
    let err = upload.commit().await.expect_err("no temp file to rename");
    assert!(
        matches!(
            err,
            Error::Io {
                op: "rename into place",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(dir.path().join("m/new").is_dir());
    // A later commit into `m/new/` finds it there and would not know it is new: the entries
    // of `m/` and `m/new/` in their parents are already waiting for an fsync.
    assert_eq!(dirty(&sink), ["/", "/m"]);
    commit(&sink, "m/new/g.pdf", b"g").await;
    assert_eq!(dirty(&sink), ["/", "/m", "/m/new"]);
}

/// Small uploads committed together share rounds of the group commit, and each gets its own
/// result: one whose parent is a file fails alone, the others are published whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_uploads_share_group_commit_rounds_and_fail_alone() {
    for fsync in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = std::sync::Arc::new(open(dir.path(), fsync));
        commit(&sink, "blocker", b"a file, not a directory").await;
        let rounds_before = sink.shared.group.rounds();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..64_u32 {
            let sink = std::sync::Arc::clone(&sink);
            tasks.spawn(async move {
                let key = if i == 17 {
                    "blocker/17.bin".to_owned()
                } else {
                    format!("d{}/{i}.bin", i % 4)
                };
                let mut upload = sink.create(&key, &ObjectMeta::default()).await?;
                upload.write(Bytes::from(format!("file {i}"))).await?;
                upload.commit().await.map(|()| i)
            });
        }
        let mut published = Vec::new();
        let mut failed = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined.expect("task") {
                Ok(i) => published.push(i),
                Err(e) => failed.push(e),
            }
        }
        assert_eq!(published.len(), 63, "fsync {fsync}: {failed:?}");
        assert!(
            matches!(
                &failed[..],
                // The error names the file in the way of the key's directory.
                [Error::Io { path, .. }] if path.ends_with("blocker")
            ),
            "{failed:?}"
        );
        for i in published {
            let key = format!("d{}/{i}.bin", i % 4);
            let stored = sink.get_small(&key).await.expect("read");
            assert_eq!(stored, Some(Bytes::from(format!("file {i}"))), "{key}");
        }
        let rounds = sink.shared.group.rounds() - rounds_before;
        assert!(
            (1..64).contains(&rounds),
            "64 concurrent commits took {rounds} rounds"
        );
        assert!(sink.temp_files().expect("temp files").is_empty());
        if fsync {
            assert!(
                !dirty(&sink).is_empty(),
                "directory fsyncs left to put_small"
            );
        }
    }
}

/// An upload that never fills its buffer leaves nothing on disk until it commits, and
/// nothing after an abort or a drop.
#[tokio::test]
async fn small_uploads_touch_the_disk_only_at_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = open(dir.path(), true);
    let mut aborted = sink
        .create("a.bin", &ObjectMeta::default())
        .await
        .expect("create");
    aborted
        .write(Bytes::from_static(b"a"))
        .await
        .expect("write");
    let mut dropped = sink
        .create("b.bin", &ObjectMeta::default())
        .await
        .expect("create");
    dropped
        .write(Bytes::from_static(b"b"))
        .await
        .expect("write");
    assert!(sink.temp_files().expect("temp files").is_empty());
    aborted.abort().await.expect("abort");
    drop(dropped);
    assert_eq!(sink.head("a.bin").await.expect("head"), None);
    assert_eq!(sink.head("b.bin").await.expect("head"), None);
    // Past the buffer the temp file exists, and an abort removes it.
    let mut large = sink
        .create("c.bin", &ObjectMeta::default())
        .await
        .expect("create");
    large
        .write(Bytes::from(vec![0; WRITE_BUFFER + 1]))
        .await
        .expect("write");
    assert_eq!(sink.temp_files().expect("temp files").len(), 1);
    large.abort().await.expect("abort");
    assert!(sink.temp_files().expect("temp files").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_and_put_smalls_leave_nothing_unsynced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = std::sync::Arc::new(open(dir.path(), true));
    let mut tasks = tokio::task::JoinSet::new();
    for dossier in 0..16 {
        let sink = std::sync::Arc::clone(&sink);
        tasks.spawn(async move {
            for file in 0..8 {
                let key = format!("{dossier}/champ {}/{file}.bin", file % 3);
                let mut upload = sink.create(&key, &ObjectMeta::default()).await?;
                upload.write(Bytes::from(key.clone().into_bytes())).await?;
                upload.commit().await?;
            }
            let shard = format!(".dsfiles/dossiers/{dossier}.json");
            sink.put_small(&shard, Bytes::from_static(b"{}")).await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("join").expect("commit and put_small");
    }
    assert_eq!(dirty(&sink), Vec::<String>::new());
    assert!(sink.temp_files().expect("temp files").is_empty());
    let mut listed = 0;
    let mut entries = sink.list("");
    while let Some(entry) = entries.next().await {
        let entry = entry.expect("list");
        if !entry.key.starts_with(".dsfiles/") {
            let bytes = sink.get_small(&entry.key).await.expect("read");
            assert_eq!(bytes.as_deref(), Some(entry.key.as_bytes()));
            listed += 1;
        }
    }
    assert_eq!(listed, 16 * 8);
}

/// Whether the file system of `dir` takes `O_DIRECT`.
fn direct_supported(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let direct = TempFile::create(&probe, true)
        .expect("create probe")
        .is_direct();
    std::fs::remove_file(probe).expect("remove probe");
    direct
}

#[tokio::test]
async fn direct_io_only_with_fsync_and_never_changes_the_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let supported = cfg!(target_os = "linux") && direct_supported(dir.path());
    let content: Vec<u8> = (0..3 * WRITE_BUFFER + 4321)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    for (fsync, direct_io, expected) in [
        (true, true, supported),
        (true, false, false),
        (false, true, false),
    ] {
        let root = dir.path().join(format!("{fsync}-{direct_io}"));
        let sink = LocalSink::open(
            &root,
            SinkOptions {
                fsync,
                direct_io,
                ..SinkOptions::default()
            },
        )
        .expect("open");
        assert_eq!(
            sink.direct_io(),
            expected,
            "fsync {fsync}, direct_io {direct_io}"
        );
        let mut upload = sink
            .create("a/file.bin", &ObjectMeta::default())
            .await
            .expect("create");
        // Irregular network-like chunks, one of them larger than the write buffer.
        for piece in content.chunks(WRITE_BUFFER + 999).flat_map(|c| {
            let (a, b) = c.split_at(c.len().min(16_000));
            [a, b]
        }) {
            upload
                .write(Bytes::copy_from_slice(piece))
                .await
                .expect("write");
        }
        upload.commit().await.expect("commit");
        let stored = sink.get_small("a/file.bin").await.expect("read");
        assert!(stored.as_deref() == Some(&content[..]), "content differs");
        sink.put_small("state.json", Bytes::from_static(b"{}"))
            .await
            .expect("put_small");
        assert_eq!(
            sink.get_small("state.json").await.expect("read").as_deref(),
            Some(&b"{}"[..])
        );
        assert!(sink.temp_files().expect("temp files").is_empty());
    }
}

/// A directory for symlinks to point at, and a destination root.
fn outside_and_destination() -> (tempfile::TempDir, tempfile::TempDir) {
    let dir = || tempfile::tempdir().expect("tempdir");
    (dir(), dir())
}

/// A blocking call (a group-commit round, a `stat_many`) checks a directory for symlinks once
/// and trusts it for its other keys; a directory it has not found real, and every key's last
/// component, are checked each time; only a call that creates nothing trusts an absence.
#[cfg(unix)]
#[test]
fn a_call_trusts_only_what_it_found() {
    let (outside, dir) = outside_and_destination();
    let root = dir.path();
    std::fs::create_dir_all(root.join("real/sub")).expect("mkdir");
    std::fs::write(root.join("real/sub/a.pdf"), b"a").expect("write");
    std::os::unix::fs::symlink(outside.path(), root.join("linked")).expect("symlink");
    std::os::unix::fs::symlink(outside.path(), root.join("real/file.pdf")).expect("symlink");
    let refused = |key: &str, seen: &mut Seen| match refuse_symlinks_seen(root, key, seen) {
        Err(Error::Symlink { component, .. }) => Some(component),
        _ => None,
    };
    let mut seen = Seen::default();
    let found = refuse_symlinks_seen(root, "real/sub/a.pdf", &mut seen).expect("no symlink");
    assert_eq!(
        found.map(|m| m.len()),
        Some(1),
        "the last component's metadata"
    );
    let expected = HashSet::from([root.join("real"), root.join("real/sub")]);
    assert_eq!(seen.dirs, expected, "the directories found real");
    assert_eq!(
        refused("linked/a.pdf", &mut seen).as_deref(),
        Some("linked")
    );
    assert_eq!(
        refused("real/file.pdf", &mut seen).as_deref(),
        Some("real/file.pdf"),
        "the last component is never trusted"
    );
    assert!(
        !seen.dirs.contains(&root.join("linked")),
        "a symlink is never seen"
    );
    // A commit's call does not trust absences: a symlink made since is refused.
    let absent = refuse_symlinks_seen(root, "new/dir/a.pdf", &mut seen).expect("absent");
    assert!(absent.is_none());
    std::os::unix::fs::symlink(outside.path(), root.join("new")).expect("symlink");
    assert_eq!(refused("new/b.pdf", &mut seen).as_deref(), Some("new"));
    // A reading call trusts them: what it answers is "absent", as it was when it looked.
    let mut reading = Seen::reading();
    let absent = refuse_symlinks_seen(root, "gone/a.pdf", &mut reading).expect("absent");
    assert!(absent.is_none());
    std::os::unix::fs::symlink(outside.path(), root.join("gone")).expect("symlink");
    let trusted = refuse_symlinks_seen(root, "gone/b.pdf", &mut reading).expect("trusted");
    assert!(trusted.is_none());
    // A directory swapped for a symlink: a new call (a new `Seen`) refuses it.
    std::fs::remove_dir_all(root.join("real")).expect("rm");
    std::os::unix::fs::symlink(outside.path(), root.join("real")).expect("symlink");
    assert_eq!(
        refused("real/sub/a.pdf", &mut Seen::default()).as_deref(),
        Some("real")
    );
}

/// A commit finds the first missing directory of its key, then creates it and those below with
/// one `mkdir` each, recording the parent of each in `changed` and each in `seen`; a directory
/// a concurrent commit made in between is accepted, a symlink made in between is refused.
#[cfg(unix)]
#[test]
fn a_commit_creates_the_missing_directories_top_down() {
    let (outside, dir) = outside_and_destination();
    let root = dir.path();
    std::fs::create_dir(root.join("a")).expect("mkdir");
    let key = "a/b/c/file.pdf";
    let mut seen = Seen::default();
    let missing = first_missing_dir(root, key, &mut seen).expect("no symlink");
    assert_eq!(missing, Some("a/b".len()));
    assert_eq!(seen.dirs, HashSet::from([root.join("a")]));
    // A concurrent commit creates `a/b` after the look.
    std::fs::create_dir(root.join("a/b")).expect("mkdir");
    let mut changed = Vec::new();
    let created = create_dirs_from(root, key, "a/b".len(), &mut changed, &mut seen);
    assert!(created.is_ok());
    assert_eq!(
        changed,
        vec![root.join("a/b")],
        "only `a/b/c` was created here"
    );
    assert!(root.join("a/b/c").is_dir());
    assert!(seen.dirs.contains(&root.join("a/b/c")));
    assert_eq!(first_missing_dir(root, key, &mut seen).expect("ok"), None);
    assert_eq!(
        first_missing_dir(root, "top.pdf", &mut seen).expect("ok"),
        None
    );

    // A symlink where a missing directory was: refused by name, nothing made through it.
    std::os::unix::fs::symlink(outside.path(), root.join("x")).expect("symlink");
    let made = create_dirs_from(root, "x/y/f.pdf", 1, &mut Vec::new(), &mut Seen::default());
    match made {
        Err(Error::Symlink { component, .. }) => assert_eq!(component, "x"),
        other => panic!("expected a symlink error, got {other:?}"),
    }
    assert!(
        !outside.path().join("y").exists(),
        "nothing created outside"
    );
    let found = first_missing_dir(root, "x/y/f.pdf", &mut Seen::default());
    assert!(matches!(found, Err(Error::Symlink { .. })), "{found:?}");
}

/// The move into place: a new key, an existing file replaced, a symlink at the key refused
/// (and left as it was).
#[cfg(unix)]
#[test]
fn the_move_into_place_replaces_files_and_refuses_symlinks() {
    let (outside, dir) = outside_and_destination();
    let root = dir.path();
    let temp = |bytes: &[u8]| {
        let path = root.join(format!("t{}", bytes.len()));
        std::fs::write(&path, bytes).expect("write");
        path
    };
    let target = root.join("k.pdf");
    assert!(move_into_place(&temp(b"1"), &target, "k.pdf").is_ok());
    assert!(move_into_place(&temp(b"22"), &target, "k.pdf").is_ok());
    assert_eq!(std::fs::read(&target).expect("read"), b"22");
    std::fs::write(outside.path().join("s"), b"outside").expect("write");
    let link = root.join("l.pdf");
    std::os::unix::fs::symlink(outside.path().join("s"), &link).expect("symlink");
    let refused = move_into_place(&temp(b"333"), &link, "l.pdf");
    assert!(matches!(&refused, Err(Error::Symlink { component, .. }) if component == "l.pdf"));
    assert!(link.is_symlink());
    assert_eq!(
        std::fs::read(outside.path().join("s")).expect("read"),
        b"outside"
    );
}

/// A file where a key needs a directory fails the commit at once, naming the path: it is not
/// an absent directory to create again.
#[cfg(unix)]
#[test]
fn a_file_in_the_way_of_a_directory_fails_without_retrying() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(root.join("a"), b"file").expect("write");
    let looked = first_missing_dir(root, "a/b/f.pdf", &mut Seen::default());
    match looked {
        Err(Error::Io { path, source, .. }) => {
            assert_eq!(path, root.join("a"));
            assert!(source.to_string().contains("in the way"), "{source}");
        }
        other => panic!("expected an I/O error naming `a`, got {other:?}"),
    }
    let made = create_dirs_from(root, "a/b/f.pdf", 1, &mut Vec::new(), &mut Seen::default());
    assert!(matches!(made, Err(Error::Io { .. })), "{made:?}");
}
