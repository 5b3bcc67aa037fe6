//! Local disk specifics: temp files, the lock file, layout on disk.

use anyhow::{Result, ensure};
use bytes::Bytes;
use dsfiles_sink::{LocalSink, ObjectMeta, Sink, SinkOptions};

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
    up.write(Bytes::from_static(b"abc")).await?;
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
    ensure!(std::fs::read(dir.path().join("12/champ/a.pdf"))? == b"abc");
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
    up.write(Bytes::from_static(b"in flight")).await?;
    let second = LocalSink::open(dir.path(), SinkOptions::default())?;
    ensure!(
        temp_files(dir.path())?.len() == 1,
        "the second open removed an in-flight temp file"
    );
    up.commit().await?;
    ensure!(second.get_small("a.bin").await?.as_deref() == Some(&b"in flight"[..]));
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
