//! s3s-fs with a listing that behaves like S3's at a million objects: `ListObjectsV2` without a
//! delimiter answered page by page, each object with its entity tag. Everything else is
//! s3s-fs's own.
//!
//! s3s-fs 0.14.1 answers each page by walking its whole bucket, sorting every key and dropping
//! those before the resume point — listing n objects costs n²/1000 — and lists no `ETag`, so a
//! client that trusts a cached copy only against the tag a listing shows (the manifest's
//! segments, `crates/dsfiles-sink/src/object.rs`) has to read every object. S3, MinIO, GCS and
//! Azure list tags; a test or bench on s3s-fs then measured the emulator, not dsfiles.
//!
//! **Invariant:** a page holds the same keys, in the same order, that s3s-fs's own listing would
//! give (bytewise order of keys, strictly after `max(start-after, continuation token)`, starting
//! with the prefix), and costs the directories on the way to the resume point plus the page.
//! It holds because a bucket is a directory tree whose keys are paths: every key below directory
//! `d` starts with `d/`, and no other entry beside `d` can start with `d/` (a name holds no
//! `/`), so sorting a directory's entries by `name` (file) or `name/` (directory) and descending
//! in that order yields keys in bytewise order; a directory whose `d/` sorts before the resume
//! point and is not a prefix of it holds only keys before it and is skipped unread.
//!
//! The tag is the one s3s-fs stored at `PUT` or multipart completion in its internal-info file
//! (the hex MD5 of the content, or of the parts for a multipart upload); an object without one
//! is listed without a tag, as before.

use std::cmp::Ordering;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use s3s::dto::{ETag, ListObjectsV2Input, ListObjectsV2Output, Object, ObjectKey, Timestamp};
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

/// The keys per page when the request names no `max-keys` (S3's default).
const DEFAULT_MAX_KEYS: i32 = 1000;

/// s3s-fs over `root`, with [`list_objects_v2`](Listing::list_objects_v2) replaced.
#[derive(Debug)]
pub struct Listing {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
}

impl Listing {
    /// s3s-fs serving `root` (each directory a bucket).
    pub fn new(root: &Path) -> io::Result<Listing> {
        let root = root.canonicalize()?;
        let fs = s3s_fs::FileSystem::new(&root)
            .map_err(|e| io::Error::other(format!("s3s-fs on `{}`: {e:?}", root.display())))?;
        Ok(Listing { fs, root })
    }
}

/// What a page asks for.
#[derive(Debug)]
struct Query {
    prefix: String,
    /// Keys at or before this one are not listed.
    after: Option<String>,
    /// Stop once this many keys are found (a page's size plus one: is it truncated?).
    want: usize,
}

/// One object found: its key and the file holding it.
#[derive(Debug)]
struct Found {
    key: String,
    path: PathBuf,
}

/// Up to `query.want` keys below `dir` (whose keys start with `base`), in S3's order.
fn walk(dir: &Path, base: &str, query: &Query, out: &mut Vec<Found>) -> io::Result<()> {
    for (name, is_dir) in sorted_entries(dir)? {
        if out.len() >= query.want {
            return Ok(());
        }
        if is_dir {
            let below = format!("{base}{name}/");
            let reaches_prefix =
                below.starts_with(&query.prefix) || query.prefix.starts_with(&below);
            let past = query
                .after
                .as_deref()
                .is_none_or(|after| below.as_str() > after || after.starts_with(&below));
            if reaches_prefix && past {
                walk(&dir.join(&name), &below, query, out)?;
            }
        } else {
            let key = format!("{base}{name}");
            let past = query
                .after
                .as_deref()
                .is_none_or(|after| key.as_str() > after);
            if key.starts_with(&query.prefix) && past {
                out.push(Found {
                    path: dir.join(&name),
                    key,
                });
            }
        }
    }
    Ok(())
}

/// A directory's entries with UTF-8 names, ordered as their keys are: a directory as `name/`.
fn sorted_entries(dir: &Path) -> io::Result<Vec<(String, bool)>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue; // s3s-fs lists no key that is not UTF-8 either
        };
        entries.push((name, entry.file_type()?.is_dir()));
    }
    entries.sort_by(|(a, a_dir), (b, b_dir)| key_order(a, *a_dir, b, *b_dir));
    Ok(entries)
}

/// `a` against `b` as `a` (or `a/` for a directory) against `b` (or `b/`).
fn key_order(a: &str, a_dir: bool, b: &str, b_dir: bool) -> Ordering {
    let slash = |dir: bool| if dir { &b"/"[..] } else { &b""[..] };
    a.as_bytes()
        .iter()
        .chain(slash(a_dir))
        .cmp(b.as_bytes().iter().chain(slash(b_dir)))
}

/// The tag s3s-fs stored for `bucket`/`key` in its internal-info file under `root`, if any.
fn e_tag(root: &Path, bucket: &str, key: &str) -> Option<ETag> {
    let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let info = root.join(format!(
        ".bucket-{}.object-{}.internal.json",
        encode(bucket),
        encode(key)
    ));
    let info: serde_json::Value = serde_json::from_slice(&fs::read(info).ok()?).ok()?;
    Some(ETag::Strong(info.get("e_tag")?.as_str()?.to_owned()))
}

/// The listing entry of an object found, or `None` if it was deleted since (not listed, as S3
/// would not).
fn object(root: &Path, bucket: &str, found: Found) -> io::Result<Option<Object>> {
    let meta = match fs::metadata(&found.path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(Object {
        e_tag: e_tag(root, bucket, &found.key),
        last_modified: Some(Timestamp::from(meta.modified()?)),
        size: Some(i64::try_from(meta.len()).map_err(io::Error::other)?),
        key: Some(ObjectKey::from(found.key)),
        ..Object::default()
    }))
}

/// One page of the keys of bucket `input.bucket` under `root`, without a delimiter.
fn page(root: &Path, input: &ListObjectsV2Input) -> io::Result<ListObjectsV2Output> {
    let max_keys = input.max_keys.unwrap_or(DEFAULT_MAX_KEYS).max(0);
    let page_size = usize::try_from(max_keys).map_err(io::Error::other)?;
    let after = match (&input.continuation_token, &input.start_after) {
        (Some(token), Some(start)) => Some(token.max(start).clone()),
        (token, start) => token.clone().or_else(|| start.clone()),
    };
    let query = Query {
        prefix: input.prefix.clone().unwrap_or_default(),
        after,
        want: page_size + 1,
    };
    let mut found = Vec::new();
    walk(&root.join(&input.bucket), "", &query, &mut found)?;
    let truncated = found.len() > page_size;
    found.truncate(page_size);
    let next_continuation_token = truncated
        .then(|| found.last().map(|f| f.key.clone()))
        .flatten();
    let contents = found
        .into_iter()
        .filter_map(|f| object(root, &input.bucket, f).transpose())
        .collect::<io::Result<Vec<_>>>()?;
    Ok(ListObjectsV2Output {
        key_count: Some(i32::try_from(contents.len()).map_err(io::Error::other)?),
        max_keys: Some(max_keys),
        is_truncated: Some(truncated),
        contents: (!contents.is_empty()).then_some(contents),
        continuation_token: input.continuation_token.clone(),
        next_continuation_token,
        encoding_type: input.encoding_type.clone(),
        name: Some(input.bucket.clone()),
        prefix: input.prefix.clone(),
        start_after: input.start_after.clone(),
        ..ListObjectsV2Output::default()
    })
}

/// The methods s3s-fs implements, handed to it as they are.
macro_rules! delegate {
    ($($method:ident: $input:ident -> $output:ident;)*) => {
        $(
            fn $method<'life0, 'async_trait>(
                &'life0 self,
                req: S3Request<s3s::dto::$input>,
            ) -> std::pin::Pin<
                Box<
                    dyn std::future::Future<Output = S3Result<S3Response<s3s::dto::$output>>>
                        + Send
                        + 'async_trait,
                >,
            >
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                self.fs.$method(req)
            }
        )*
    };
}

#[async_trait::async_trait]
impl S3 for Listing {
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        if req.input.delimiter.is_some() {
            return self.fs.list_objects_v2(req).await;
        }
        if !self.root.join(&req.input.bucket).is_dir() {
            return Err(s3_error!(NoSuchBucket));
        }
        let (root, input) = (self.root.clone(), req.input);
        let bucket = input.bucket.clone();
        match tokio::task::spawn_blocking(move || page(&root, &input)).await {
            Ok(Ok(page)) => Ok(S3Response::new(page)),
            Ok(Err(e)) => Err(s3_error!(InternalError, "listing `{bucket}`: {e}")),
            Err(e) => Err(s3_error!(InternalError, "listing `{bucket}`: {e}")),
        }
    }

    delegate! {
        abort_multipart_upload: AbortMultipartUploadInput -> AbortMultipartUploadOutput;
        complete_multipart_upload: CompleteMultipartUploadInput -> CompleteMultipartUploadOutput;
        copy_object: CopyObjectInput -> CopyObjectOutput;
        create_bucket: CreateBucketInput -> CreateBucketOutput;
        create_multipart_upload: CreateMultipartUploadInput -> CreateMultipartUploadOutput;
        delete_bucket: DeleteBucketInput -> DeleteBucketOutput;
        delete_object: DeleteObjectInput -> DeleteObjectOutput;
        delete_objects: DeleteObjectsInput -> DeleteObjectsOutput;
        get_bucket_location: GetBucketLocationInput -> GetBucketLocationOutput;
        get_object: GetObjectInput -> GetObjectOutput;
        head_bucket: HeadBucketInput -> HeadBucketOutput;
        head_object: HeadObjectInput -> HeadObjectOutput;
        list_buckets: ListBucketsInput -> ListBucketsOutput;
        list_objects: ListObjectsInput -> ListObjectsOutput;
        list_parts: ListPartsInput -> ListPartsOutput;
        put_object: PutObjectInput -> PutObjectOutput;
        upload_part: UploadPartInput -> UploadPartOutput;
        upload_part_copy: UploadPartCopyInput -> UploadPartCopyOutput;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of `keys` written as a file below `root`, then listed by `walk` in pages.
    fn pages(keys: &[&str], prefix: &str, start: Option<&str>, page: usize) -> Vec<String> {
        let dir = tempfile::tempdir().expect("tempdir");
        for key in keys {
            let path = dir.path().join(key);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, b"x").expect("write");
        }
        let mut listed = Vec::new();
        let mut after = start.map(str::to_owned);
        loop {
            let query = Query {
                prefix: prefix.to_owned(),
                after: after.clone(),
                want: page,
            };
            let mut found = Vec::new();
            walk(dir.path(), "", &query, &mut found).expect("walk");
            let Some(last) = found.last() else {
                return listed;
            };
            after = Some(last.key.clone());
            listed.extend(found.into_iter().map(|f| f.key));
        }
    }

    /// What S3 answers: the keys in bytewise order, after `start`, with the prefix.
    fn expected(keys: &[&str], prefix: &str, start: Option<&str>) -> Vec<String> {
        let mut want: Vec<String> = keys
            .iter()
            .filter(|k| k.starts_with(prefix) && start.is_none_or(|s| **k > s))
            .map(|k| (*k).to_owned())
            .collect();
        want.sort();
        want
    }

    #[test]
    fn pages_list_keys_in_bytewise_order_whatever_the_page_size() {
        // `a-b` < `a/…` < `a0` bytewise ('-' < '/' < '0'): a directory sorts as `name/`.
        let keys = [
            "a-b", "a/x", "a/y/z", "a/y-", "a0", "b/c/d/e", "b/c/d.f", "b/c-", "b/c0/1", "é/1", "z",
        ];
        for page in [1, 2, 3, 5, 100] {
            for prefix in ["", "a", "a/", "b/c", "b/c/", "q"] {
                for start in [
                    None,
                    Some("a"),
                    Some("a/x"),
                    Some("a/y"),
                    Some("b/c/d"),
                    Some("z"),
                ] {
                    assert_eq!(
                        pages(&keys, prefix, start, page),
                        expected(&keys, prefix, start),
                        "page {page}, prefix {prefix:?}, start after {start:?}"
                    );
                }
            }
        }
    }
}
