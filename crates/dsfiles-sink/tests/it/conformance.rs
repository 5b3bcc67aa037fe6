//! The sink conformance suite (in the spirit of object_store's `src/integration.rs`): every
//! backend must pass all of it. Each check names itself in its error.

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use dsfiles_sink::{Error, ListEntry, ObjectMeta, Precondition, Sink};
use futures::TryStreamExt;

/// What a backend can do beyond the common contract.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// Content type and `dsfiles-*` metadata come back from `stat`.
    pub attributes: bool,
    /// The store checks a conditional write's precondition and applies the write as one
    /// atomic step (false: it checks, then writes, and concurrent creators can both win).
    pub atomic_conditional: bool,
}

/// The part size every conformance sink is opened with (`part_size=5MiB`).
pub const PART: usize = 5 * 1024 * 1024;

/// Runs every check against `sink`, which must be empty (a fresh prefix).
pub async fn run(sink: &dyn Sink, caps: Caps) -> Result<()> {
    write_commit_then_visible(sink, caps)
        .await
        .context("write_commit_then_visible")?;
    empty_object(sink).await.context("empty_object")?;
    abort_leaves_nothing(sink)
        .await
        .context("abort_leaves_nothing")?;
    drop_publishes_nothing(sink)
        .await
        .context("drop_publishes_nothing")?;
    multipart_round_trip(sink)
        .await
        .context("multipart_round_trip")?;
    multipart_abort(sink).await.context("multipart_abort")?;
    overwrite(sink).await.context("overwrite")?;
    small_files(sink).await.context("small_files")?;
    missing_objects(sink).await.context("missing_objects")?;
    stat_many(sink).await.context("stat_many")?;
    ranges(sink).await.context("ranges")?;
    listing(sink).await.context("listing")?;
    delete(sink).await.context("delete")?;
    invalid_keys(sink).await.context("invalid_keys")?;
    state_dir_keys(sink).await.context("state_dir_keys")?;
    create_if_absent(sink).await.context("create_if_absent")?;
    compare_and_swap(sink).await.context("compare_and_swap")?;
    delete_if_version(sink).await.context("delete_if_version")?;
    if caps.atomic_conditional {
        concurrent_creators(sink)
            .await
            .context("concurrent_creators")?;
    } else {
        skip_notice(
            "concurrent_creators",
            &sink.describe(),
            "this store checks a precondition and then writes, not atomically (see docs/storage.md)",
        );
    }
    Ok(())
}

pub use dsfiles_sink::testing::pseudo_random as data;

#[expect(clippy::print_stderr, reason = "the skip notice is the point")]
fn skip_notice(check: &str, dest: &str, why: &str) {
    eprintln!("{check} skipped on {dest}: {why}");
}

/// Writes `bytes` as chunks of `chunk` bytes and returns the open upload.
async fn upload(
    sink: &dyn Sink,
    key: &str,
    meta: &ObjectMeta,
    bytes: &[u8],
    chunk: usize,
) -> Result<Box<dyn dsfiles_sink::Upload>> {
    let mut up = sink.create(key, meta).await?;
    for piece in bytes.chunks(chunk) {
        up.write(Bytes::copy_from_slice(piece)).await?;
    }
    Ok(up)
}

pub async fn read_all(sink: &dyn Sink, key: &str) -> Result<Vec<u8>> {
    let chunks: Vec<Bytes> = sink.get(key).await?.try_collect().await?;
    Ok(chunks.concat())
}

pub async fn list(sink: &dyn Sink, prefix: &str) -> Result<Vec<ListEntry>> {
    let mut entries: Vec<ListEntry> = sink.list(prefix).try_collect().await?;
    entries.sort();
    Ok(entries)
}

fn keys(entries: &[ListEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.key.as_str()).collect()
}

async fn write_commit_then_visible(sink: &dyn Sink, caps: Caps) -> Result<()> {
    let key = "visible/1/champ/Pièce jointe (1).pdf";
    let bytes = data(100_000, 1);
    let meta = ObjectMeta {
        content_type: Some("application/pdf".into()),
        md5_base64: Some("1B2M2Y8AsgTpgAmY7PhCfg==".into()),
        sha256_hex: Some("ab".repeat(32)),
    };
    let up = upload(sink, key, &meta, &bytes, 16 * 1024).await?;
    ensure!(sink.head(key).await?.is_none(), "visible before commit");
    ensure!(
        list(sink, "visible").await?.is_empty(),
        "listed before commit"
    );
    up.commit().await?;
    ensure!(
        sink.head(key).await? == Some(bytes.len() as u64),
        "head after commit"
    );
    ensure!(read_all(sink, key).await? == bytes, "bytes differ");
    let listed = list(sink, "visible").await?;
    ensure!(
        listed
            == vec![ListEntry {
                key: key.into(),
                size: bytes.len() as u64
            }],
        "listing after commit: {listed:?}"
    );
    let info = sink.stat(key).await?.context("stat after commit")?;
    ensure!(info.size == bytes.len() as u64);
    if caps.attributes {
        ensure!(info.meta == meta, "attributes not kept: {:?}", info.meta);
    } else {
        ensure!(
            info.meta == ObjectMeta::default(),
            "unexpected attributes {:?}",
            info.meta
        );
    }
    Ok(())
}

async fn empty_object(sink: &dyn Sink) -> Result<()> {
    let key = "empty/zero.txt";
    sink.create(key, &ObjectMeta::default())
        .await?
        .commit()
        .await?;
    ensure!(sink.head(key).await? == Some(0));
    ensure!(read_all(sink, key).await?.is_empty());
    Ok(())
}

async fn abort_leaves_nothing(sink: &dyn Sink) -> Result<()> {
    let key = "aborted/a.bin";
    let up = upload(sink, key, &ObjectMeta::default(), &data(10_000, 2), 4096).await?;
    up.abort().await?;
    ensure!(sink.head(key).await?.is_none(), "object after abort");
    ensure!(
        list(sink, "aborted").await?.is_empty(),
        "listed after abort"
    );
    ensure!(
        list(sink, "")
            .await?
            .iter()
            .all(|e| !e.key.starts_with("aborted"))
    );
    Ok(())
}

async fn drop_publishes_nothing(sink: &dyn Sink) -> Result<()> {
    let key = "dropped/d.bin";
    drop(upload(sink, key, &ObjectMeta::default(), &data(10_000, 3), 4096).await?);
    ensure!(sink.head(key).await?.is_none(), "object after drop");
    // Dropped in the middle of a multipart upload too.
    let big = "dropped/big.bin";
    drop(
        upload(
            sink,
            big,
            &ObjectMeta::default(),
            &data(PART * 2 + 10, 4),
            1 << 20,
        )
        .await?,
    );
    ensure!(
        sink.head(big).await?.is_none(),
        "multipart object after drop"
    );
    ensure!(list(sink, "dropped").await?.is_empty(), "listed after drop");
    Ok(())
}

async fn multipart_round_trip(sink: &dyn Sink) -> Result<()> {
    let key = "multipart/20MiB.bin";
    let bytes = data(20 * 1024 * 1024 + 12_345, 5);
    let meta = ObjectMeta {
        content_type: Some("application/octet-stream".into()),
        ..ObjectMeta::default()
    };
    // Uneven chunks, so parts never line up with writes.
    let up = upload(sink, key, &meta, &bytes, 1024 * 1024 + 7).await?;
    ensure!(
        sink.head(key).await?.is_none(),
        "multipart object visible before commit"
    );
    up.commit().await?;
    ensure!(sink.head(key).await? == Some(bytes.len() as u64));
    ensure!(
        read_all(sink, key).await? == bytes,
        "multipart bytes differ"
    );
    let start = PART as u64 - 10;
    let range = sink.get_range(key, start..start + 20).await?;
    ensure!(
        range.as_ref() == &bytes[PART - 10..PART + 10],
        "range across a part boundary"
    );
    Ok(())
}

async fn multipart_abort(sink: &dyn Sink) -> Result<()> {
    let key = "multipart-aborted/x.bin";
    let up = upload(
        sink,
        key,
        &ObjectMeta::default(),
        &data(PART * 2 + 1, 6),
        1 << 20,
    )
    .await?;
    up.abort().await?;
    ensure!(sink.head(key).await?.is_none());
    ensure!(list(sink, "multipart-aborted").await?.is_empty());
    Ok(())
}

async fn overwrite(sink: &dyn Sink) -> Result<()> {
    let key = "over/write.txt";
    upload(sink, key, &ObjectMeta::default(), b"first version", 5)
        .await?
        .commit()
        .await?;
    let up = upload(sink, key, &ObjectMeta::default(), b"second", 5).await?;
    ensure!(
        read_all(sink, key).await? == b"first version",
        "replaced before commit"
    );
    up.commit().await?;
    ensure!(read_all(sink, key).await? == b"second");
    Ok(())
}

async fn small_files(sink: &dyn Sink) -> Result<()> {
    let key = ".dsfiles/manifest.json";
    ensure!(sink.get_small(key).await?.is_none());
    sink.put_small(key, Bytes::from_static(b"{\"v\":1}"))
        .await?;
    ensure!(sink.get_small(key).await?.as_deref() == Some(&b"{\"v\":1}"[..]));
    sink.put_small(key, Bytes::from_static(b"{\"v\":2}"))
        .await?;
    ensure!(sink.get_small(key).await?.as_deref() == Some(&b"{\"v\":2}"[..]));
    ensure!(sink.head(key).await? == Some(7));
    Ok(())
}

async fn missing_objects(sink: &dyn Sink) -> Result<()> {
    let key = "missing/none.bin";
    ensure!(sink.head(key).await?.is_none());
    ensure!(sink.stat(key).await?.is_none());
    ensure!(sink.get_small(key).await?.is_none());
    match sink.get(key).await {
        Err(Error::NotFound { key: k }) => ensure!(k == key),
        Err(e) => bail!("get: expected NotFound, got {e:?}"),
        Ok(_) => bail!("get of a missing key succeeded"),
    }
    match sink.get_range(key, 0..1).await {
        Err(Error::NotFound { .. }) => {}
        other => bail!("get_range: expected NotFound, got {other:?}"),
    }
    Ok(())
}

/// `stat_many` answers what `stat` answers for each key, in order, an invalid key failing
/// alone.
async fn stat_many(sink: &dyn Sink) -> Result<()> {
    sink.put_small("many/a.bin", Bytes::from_static(b"abc"))
        .await?;
    sink.put_small("many/sub/b.bin", Bytes::from_static(b"hello"))
        .await?;
    let keys = ["many/sub/b.bin", "many/none.bin", "../out", "many/a.bin"];
    let found = sink.stat_many(&keys).await;
    ensure!(found.len() == keys.len(), "{} answers", found.len());
    let sizes: Vec<_> = found
        .iter()
        .map(|f| f.as_ref().map(|info| info.as_ref().map(|i| i.size)))
        .collect();
    ensure!(matches!(sizes[0], Ok(Some(5))), "b.bin: {:?}", sizes[0]);
    ensure!(matches!(sizes[1], Ok(None)), "none.bin: {:?}", sizes[1]);
    ensure!(
        matches!(found[2], Err(Error::InvalidKey { .. })),
        "../out: {:?}",
        found[2]
    );
    ensure!(matches!(sizes[3], Ok(Some(3))), "a.bin: {:?}", sizes[3]);
    ensure!(sink.stat_many(&[]).await.is_empty(), "no keys");
    Ok(())
}

async fn ranges(sink: &dyn Sink) -> Result<()> {
    let key = "ranges/r.bin";
    let bytes = data(1000, 7);
    sink.put_small(key, Bytes::from(bytes.clone())).await?;
    ensure!(sink.get_range(key, 10..20).await?.as_ref() == &bytes[10..20]);
    ensure!(
        sink.get_range(key, 990..2000).await?.as_ref() == &bytes[990..],
        "end clamped"
    );
    ensure!(sink.get_range(key, 1000..1000).await?.is_empty());
    match sink.get_range(key, 1001..1002).await {
        Err(Error::InvalidRange { size: 1000, .. }) => {}
        other => bail!("expected InvalidRange, got {other:?}"),
    }
    Ok(())
}

async fn listing(sink: &dyn Sink) -> Result<()> {
    for key in ["l/a/1", "l/a/2", "l/a/b/3", "l/ab/4"] {
        sink.put_small(key, Bytes::from(key.as_bytes().to_vec()))
            .await?;
    }
    ensure!(keys(&list(sink, "l/a").await?) == ["l/a/1", "l/a/2", "l/a/b/3"]);
    ensure!(keys(&list(sink, "l/a/").await?) == ["l/a/1", "l/a/2", "l/a/b/3"]);
    let all = list(sink, "l").await?;
    ensure!(
        keys(&all) == ["l/a/1", "l/a/2", "l/a/b/3", "l/ab/4"],
        "{all:?}"
    );
    ensure!(
        all.iter().all(|e| e.size == e.key.len() as u64),
        "sizes {all:?}"
    );
    ensure!(list(sink, "l/nothing").await?.is_empty());
    ensure!(
        list(sink, "l/a/1").await?.is_empty(),
        "a key is not a prefix of itself"
    );
    let everything = list(sink, "").await?;
    ensure!(everything.iter().any(|e| e.key == "l/ab/4"));
    ensure!(
        everything
            .iter()
            .all(|e| !e.key.starts_with(".dsfiles/tmp") && e.key != ".dsfiles/lock"),
        "internal files listed: {everything:?}"
    );
    Ok(())
}

async fn delete(sink: &dyn Sink) -> Result<()> {
    let key = "del/x/y.txt";
    sink.put_small(key, Bytes::from_static(b"y")).await?;
    sink.delete(key).await?;
    ensure!(sink.head(key).await?.is_none());
    ensure!(list(sink, "del").await?.is_empty());
    sink.delete(key)
        .await
        .context("deleting an absent key succeeds")?;
    Ok(())
}

async fn invalid_keys(sink: &dyn Sink) -> Result<()> {
    for key in [
        "",
        "/abs",
        "../up",
        "a/../../b",
        "a//b",
        "a\\b",
        "a\0b",
        ".dsfiles/tmp/x.part",
    ] {
        let expect = |what: &str, result: Result<(), Error>| -> Result<()> {
            match result {
                Err(Error::InvalidKey { .. }) => Ok(()),
                other => bail!("{what} {key:?}: expected InvalidKey, got {other:?}"),
            }
        };
        expect(
            "create",
            sink.create(key, &ObjectMeta::default()).await.map(drop),
        )?;
        expect("put_small", sink.put_small(key, Bytes::new()).await)?;
        expect("get_small", sink.get_small(key).await.map(drop))?;
        expect("get", sink.get(key).await.map(drop))?;
        expect("head", sink.head(key).await.map(drop))?;
        expect("delete", sink.delete(key).await)?;
        if !key.is_empty() {
            let listed: Result<Vec<ListEntry>, Error> = sink.list(key).try_collect().await;
            expect("list", listed.map(drop))?;
        }
    }
    Ok(())
}

async fn state_dir_keys(sink: &dyn Sink) -> Result<()> {
    sink.put_small(".dsfiles/sync-point.json", Bytes::from_static(b"{}"))
        .await?;
    let state = list(sink, ".dsfiles").await?;
    ensure!(
        keys(&state).contains(&".dsfiles/sync-point.json"),
        "state files are listed: {state:?}"
    );
    Ok(())
}

fn precondition_failed<T: std::fmt::Debug>(what: &str, result: Result<T, Error>) -> Result<()> {
    match result {
        Err(Error::PreconditionFailed { .. }) => Ok(()),
        other => bail!("{what}: expected PreconditionFailed, got {other:?}"),
    }
}

async fn create_if_absent(sink: &dyn Sink) -> Result<()> {
    let key = ".dsfiles/demarches/1/lease";
    ensure!(sink.get_versioned(key).await?.is_none());
    let v1 = sink
        .put_if(key, Bytes::from_static(b"first"), Precondition::Absent)
        .await?;
    let second = sink
        .put_if(key, Bytes::from_static(b"second"), Precondition::Absent)
        .await;
    precondition_failed("second create", second)?;
    let (bytes, version) = sink.get_versioned(key).await?.context("after create")?;
    ensure!(
        bytes.as_ref() == b"first",
        "the second create changed the object"
    );
    ensure!(version == v1, "read version {version:?} != written {v1:?}");
    Ok(())
}

async fn compare_and_swap(sink: &dyn Sink) -> Result<()> {
    let key = "cas/lease";
    let v1 = sink
        .put_if(key, Bytes::from_static(b"one"), Precondition::Absent)
        .await?;
    let v2 = sink
        .put_if(
            key,
            Bytes::from_static(b"two"),
            Precondition::Matches(v1.clone()),
        )
        .await?;
    ensure!(v2 != v1, "the version did not change");
    let stale = sink
        .put_if(key, Bytes::from_static(b"three"), Precondition::Matches(v1))
        .await;
    precondition_failed("update with a stale version", stale)?;
    // An unconditional write also makes a read version stale.
    sink.put_small(key, Bytes::from_static(b"other")).await?;
    let stale = sink
        .put_if(key, Bytes::from_static(b"four"), Precondition::Matches(v2))
        .await;
    precondition_failed("update after an overwrite", stale)?;
    ensure!(read_all(sink, key).await? == b"other");
    // Matches on an absent object fails too.
    let (_, v) = sink.get_versioned(key).await?.context("cas object")?;
    sink.delete(key).await?;
    let gone = sink
        .put_if(key, Bytes::from_static(b"five"), Precondition::Matches(v))
        .await;
    precondition_failed("update of a deleted object", gone)?;
    ensure!(sink.head(key).await?.is_none());
    Ok(())
}

async fn delete_if_version(sink: &dyn Sink) -> Result<()> {
    let key = "delif/lease";
    let v1 = sink
        .put_if(key, Bytes::from_static(b"one"), Precondition::Absent)
        .await?;
    let v2 = sink
        .put_if(
            key,
            Bytes::from_static(b"two"),
            Precondition::Matches(v1.clone()),
        )
        .await?;
    precondition_failed(
        "delete with a stale version",
        sink.delete_if(key, &v1).await,
    )?;
    ensure!(read_all(sink, key).await? == b"two");
    sink.delete_if(key, &v2).await?;
    ensure!(sink.head(key).await?.is_none());
    precondition_failed("delete of an absent object", sink.delete_if(key, &v2).await)?;
    Ok(())
}

async fn concurrent_creators(sink: &dyn Sink) -> Result<()> {
    const CREATORS: usize = 8;
    for round in 0..3 {
        let key = format!("race/{round}/lease");
        let attempts = (0..CREATORS).map(|i| {
            let bytes = Bytes::from(format!("creator {i}"));
            sink.put_if(&key, bytes, Precondition::Absent)
        });
        let results = futures::future::join_all(attempts).await;
        let mut winners = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(_) => winners.push(i),
                Err(Error::PreconditionFailed { .. }) => {}
                Err(e) => bail!("creator {i}: {e:?}"),
            }
        }
        ensure!(winners.len() == 1, "round {round}: winners {winners:?}");
        let stored = read_all(sink, &key).await?;
        ensure!(
            stored == format!("creator {}", winners[0]).as_bytes(),
            "round {round}: the object is not the winner's"
        );
    }
    Ok(())
}
