//! Local disk specifics: temp files, the lock file, layout on disk.

use anyhow::{Result, ensure};
use bytes::Bytes;
use dsfiles_sink::{LocalSink, ObjectMeta, Sink, SinkOptions};
use futures::{StreamExt as _, TryStreamExt as _};

/// Every temp file under `.dsfiles/tmp/` of `root`, without opening a sink there.
fn temp_files(root: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    Ok(LocalSink::temp_files_under(root)?)
}

#[tokio::test]
async fn files_land_at_their_key_and_temp_files_live_under_state_dir() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let sink = LocalSink::open(dir.path(), SinkOptions::default())?;
    let mut up = sink
        .create("12/champ/a.pdf", &ObjectMeta::default())
        .await?;
    // Past the write buffer (256 KiB), so that the upload has a temp file before it commits.
    let content: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
    up.write(Bytes::from(content.clone())).await?;
    let temps = temp_files(dir.path())?;
    ensure!(
        temps.len() == 1 && temps[0].extension().is_some_and(|e| e == "part"),
        "{temps:?}"
    );
    ensure!(
        !dir.path().join("12").exists(),
        "parent created before commit"
    );
    up.commit().await?;
    ensure!(std::fs::read(dir.path().join("12/champ/a.pdf"))? == content);
    ensure!(temp_files(dir.path())?.is_empty());
    // Deleting the last file removes the directories it leaves empty, never the root.
    sink.delete("12/champ/a.pdf").await?;
    ensure!(!dir.path().join("12").exists());
    ensure!(dir.path().join(".dsfiles").is_dir());
    Ok(())
}

#[tokio::test]
async fn open_removes_temp_files_of_a_killed_run_and_records_the_pid() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join(".dsfiles/tmp"))?;
    std::fs::write(dir.path().join(".dsfiles/tmp/0123.part"), b"partial")?;
    // A lock left by a process that no longer exists.
    std::fs::write(
        dir.path().join(".dsfiles/lock"),
        format!("{}\n", u32::MAX - 1),
    )?;
    let sink = LocalSink::open(dir.path(), SinkOptions::default())?;
    ensure!(temp_files(dir.path())?.is_empty(), "stale temp file kept");
    let lock = std::fs::read_to_string(dir.path().join(".dsfiles/lock"))?;
    ensure!(
        lock.trim() == std::process::id().to_string(),
        "lock holds {lock:?}"
    );
    drop(sink);
    ensure!(
        !dir.path().join(".dsfiles/lock").exists(),
        "lock not released"
    );
    Ok(())
}

#[tokio::test]
async fn a_live_writer_keeps_its_temp_files() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join(".dsfiles/tmp"))?;
    std::fs::write(dir.path().join(".dsfiles/tmp/live.part"), b"in progress")?;
    // pid 1 always exists: another live process holds the destination.
    std::fs::write(dir.path().join(".dsfiles/lock"), "1\n")?;
    let sink = LocalSink::open(dir.path(), SinkOptions::default())?;
    ensure!(
        temp_files(dir.path())?.len() == 1,
        "a live writer's temp file was removed"
    );
    ensure!(std::fs::read_to_string(dir.path().join(".dsfiles/lock"))? == "1\n");
    // A second sink of this process does not clean either, while the first one is open.
    drop(sink);
    Ok(())
}

#[tokio::test]
async fn two_sinks_of_one_process_share_the_destination() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let first = LocalSink::open(dir.path(), SinkOptions::default())?;
    let mut up = first.create("a.bin", &ObjectMeta::default()).await?;
    // Past the write buffer: the upload has a temp file in flight.
    let content = vec![7_u8; 300 * 1024];
    up.write(Bytes::from(content.clone())).await?;
    let second = LocalSink::open(dir.path(), SinkOptions::default())?;
    ensure!(
        temp_files(dir.path())?.len() == 1,
        "the second open removed an in-flight temp file"
    );
    up.commit().await?;
    ensure!(second.get_small("a.bin").await?.as_deref() == Some(&content[..]));
    drop(first);
    ensure!(
        dir.path().join(".dsfiles/lock").exists(),
        "lock released while a sink is open"
    );
    drop(second);
    ensure!(!dir.path().join(".dsfiles/lock").exists());
    Ok(())
}

#[tokio::test]
async fn cleanup_temp_counts_removed_files() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let sink = LocalSink::open(dir.path(), SinkOptions::default())?;
    std::fs::write(dir.path().join(".dsfiles/tmp/a.part"), b"1")?;
    std::fs::write(dir.path().join(".dsfiles/tmp/b.part"), b"2")?;
    ensure!(sink.cleanup_temp()? == 2);
    ensure!(temp_files(dir.path())?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_file_in_the_way_of_a_directory_is_an_io_error_naming_the_path() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let sink = LocalSink::open(dir.path(), SinkOptions::default())?;
    sink.put_small("a", Bytes::from_static(b"file")).await?;
    let err = sink.put_small("a/b", Bytes::from_static(b"x")).await.err();
    let err = err.ok_or_else(|| anyhow::anyhow!("writing under a file succeeded"))?;
    ensure!(matches!(err, dsfiles_sink::Error::Io { .. }), "{err:?}");
    ensure!(!err.is_transient());
    ensure!(
        temp_files(dir.path())?.is_empty(),
        "temp file left after a failed commit"
    );
    Ok(())
}

/// Every file under `dir` with its bytes, sorted (symlinks not followed).
fn snapshot(dir: &std::path::Path) -> Result<Vec<(std::path::PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                files.push((entry.path(), std::fs::read(entry.path())?));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// An operation through a symlink fails with `Error::Symlink` naming `component`.
fn check<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, dsfiles_sink::Error>,
    component: &str,
) -> Result<()> {
    match result {
        Err(dsfiles_sink::Error::Symlink { component: c, .. }) if c == component => Ok(()),
        other => anyhow::bail!("{what}: expected a symlink error on `{component}`, got {other:?}"),
    }
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_inside_the_destination_are_refused() -> Result<()> {
    let outside = tempfile::tempdir()?;
    std::fs::write(outside.path().join("secret.txt"), b"outside")?;
    let before = snapshot(outside.path())?;
    let dir = tempfile::tempdir()?;
    let sink = LocalSink::open(dir.path(), SinkOptions::default())?;
    std::os::unix::fs::symlink(outside.path(), dir.path().join("linked"))?;
    std::fs::create_dir(dir.path().join("real"))?;
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        dir.path().join("real/file.txt"),
    )?;

    for (key, component) in [
        ("linked/secret.txt", "linked"),
        ("linked/new/a.pdf", "linked"),
        ("real/file.txt", "real/file.txt"),
    ] {
        check("get", sink.get(key).await.map(|_| ()), component)?;
        check("get_small", sink.get_small(key).await, component)?;
        check("get_range", sink.get_range(key, 0..3).await, component)?;
        check("stat", sink.stat(key).await, component)?;
        check("head", sink.head(key).await, component)?;
        check("delete", sink.delete(key).await, component)?;
        let bytes = Bytes::from_static(b"overwritten");
        check("put_small", sink.put_small(key, bytes).await, component)?;
        // An upload writes only under `.dsfiles/tmp/` until its commit, which checks.
        let mut upload = sink.create(key, &ObjectMeta::default()).await?;
        upload.write(Bytes::from_static(b"overwritten")).await?;
        check("commit", upload.commit().await, component)?;
        let mut large = sink.create(key, &ObjectMeta::default()).await?;
        large.write(Bytes::from(vec![7u8; 600 * 1024])).await?;
        check("commit (large)", large.commit().await, component)?;
    }
    let listed = sink.list("linked/").collect::<Vec<_>>().await;
    ensure!(
        matches!(
            listed.as_slice(),
            [Err(dsfiles_sink::Error::Symlink { .. })]
        ),
        "{listed:?}"
    );
    let all: Vec<String> = sink
        .list("")
        .map(|e| e.map(|e| e.key))
        .try_collect()
        .await?;
    ensure!(all.is_empty(), "symlinks listed: {all:?}");

    // A directory swapped for a symlink between `create` and `commit`.
    let mut up = sink.create("swap/a.pdf", &ObjectMeta::default()).await?;
    up.write(Bytes::from_static(b"late")).await?;
    std::os::unix::fs::symlink(outside.path(), dir.path().join("swap"))?;
    check("commit", up.commit().await, "swap")?;

    ensure!(
        snapshot(outside.path())? == before,
        "something outside changed"
    );
    ensure!(temp_files(dir.path())?.is_empty(), "temp file left behind");
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlinked_state_directory_is_refused_at_open() -> Result<()> {
    let outside = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    std::os::unix::fs::symlink(outside.path(), dir.path().join(".dsfiles"))?;
    let opened = LocalSink::open(dir.path(), SinkOptions::default()).map(|_| ());
    check("open", opened, ".dsfiles")?;
    ensure!(snapshot(outside.path())?.is_empty());
    ensure!(std::fs::read_dir(outside.path())?.next().is_none());
    Ok(())
}

/// Compare-and-swap from two sinks of one destination (as two processes would open it) on the
/// blocking pool's threads: of the writers that read the same version, exactly one wins,
/// because each checks and renames under the `flock` on `.dsfiles/cas.lock`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_compare_and_swap_has_one_winner() -> Result<()> {
    use dsfiles_sink::{Error, Precondition};
    let dir = tempfile::tempdir()?;
    let a = LocalSink::open(dir.path(), SinkOptions::default())?;
    let b = LocalSink::open(dir.path(), SinkOptions::default())?;
    let key = ".dsfiles/demarches/7/lease";
    a.put_if(key, Bytes::from_static(b"start"), Precondition::Absent)
        .await?;
    for round in 0..5 {
        let (_, version) = a
            .get_versioned(key)
            .await?
            .ok_or_else(|| anyhow::anyhow!("gone"))?;
        let writers = (0..8).map(|i| {
            let sink: &dyn Sink = if i % 2 == 0 { &a } else { &b };
            let bytes = Bytes::from(format!("round {round} writer {i}"));
            sink.put_if(key, bytes, Precondition::Matches(version.clone()))
        });
        let results = futures::future::join_all(writers).await;
        let winners: Vec<usize> = (0..results.len()).filter(|&i| results[i].is_ok()).collect();
        ensure!(winners.len() == 1, "round {round}: winners {winners:?}");
        for result in &results {
            ensure!(
                matches!(result, Ok(_) | Err(Error::PreconditionFailed { .. })),
                "{result:?}"
            );
        }
        let stored = std::fs::read(dir.path().join(key))?;
        ensure!(stored == format!("round {round} writer {}", winners[0]).as_bytes());
    }
    ensure!(temp_files(dir.path())?.is_empty(), "staged files left");
    ensure!(
        !a.list(".dsfiles")
            .try_collect::<Vec<_>>()
            .await?
            .iter()
            .any(|e| e.key.ends_with("cas.lock")),
        "the CAS lock file is listed"
    );
    Ok(())
}
