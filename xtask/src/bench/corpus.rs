//! Deterministic benchmark corpora on disk, with the MD5 of every file computed while writing.
//!
//! A corpus is a directory of files under `target/bench/corpus/<name>/` plus a catalogue
//! (`<name>.tsv`: one line per file, written last) that records the spec it was made from: a
//! later run reuses the corpus when the catalogue matches the spec and every file has its size.

use std::fs;
use std::io::{BufRead as _, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use md5::{Digest as _, Md5};

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Directory name under the corpus root, and the URL prefix nginx serves it under.
    pub name: &'static str,
    /// Number of ordinary files.
    pub files: usize,
    /// Sizes of ordinary files, drawn log-uniformly in `min_size..=max_size` (equal bounds: fixed).
    pub min_size: u64,
    pub max_size: u64,
    /// Extra large files, after the ordinary ones.
    pub big: Vec<u64>,
    /// Files per dossier in the simulated démarche.
    pub per_dossier: usize,
    pub seed: u64,
}

impl Spec {
    /// One line that identifies the spec (first line of the catalogue).
    fn fingerprint(&self) -> String {
        format!(
            "# dsfiles bench corpus v1 name={} files={} sizes={}..={} big={:?} per_dossier={} seed={}",
            self.name,
            self.files,
            self.min_size,
            self.max_size,
            self.big,
            self.per_dossier,
            self.seed
        )
    }

    /// The size of every file, in order: deterministic from the seed.
    pub fn sizes(&self) -> Vec<u64> {
        let mut rng = SplitMix(self.seed ^ 0x00C0_FFEE);
        let (lo, hi) = (
            self.min_size.max(1) as f64,
            self.max_size.max(self.min_size.max(1)) as f64,
        );
        let mut sizes: Vec<u64> = (0..self.files)
            .map(|_| {
                // 53 random bits → [0, 1).
                let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
                (lo * (hi / lo).powf(u)).round() as u64
            })
            .collect();
        sizes.extend(&self.big);
        sizes
    }
}

/// One generated file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorpusFile {
    /// Path relative to the corpus root, `/`-separated (`main/d0001/f000001.pdf`): also the URL path.
    pub rel: String,
    pub dossier: usize,
    pub filename: String,
    pub size: u64,
    pub md5_base64: String,
    pub content_type: String,
}

/// A generated corpus.
#[derive(Clone, Debug)]
pub struct Corpus {
    pub spec: Spec,
    pub files: Vec<CorpusFile>,
    /// Whether this run generated it (false: reused from disk).
    pub generated: bool,
}

impl Corpus {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    pub fn dossiers(&self) -> usize {
        self.files
            .iter()
            .map(|f| f.dossier)
            .max()
            .map_or(0, |d| d + 1)
    }
}

const KINDS: [(&str, &str); 4] = [
    ("pdf", "application/pdf"),
    ("jpg", "image/jpeg"),
    ("png", "image/png"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
];

/// SplitMix64: fast, deterministic, good enough to make incompressible bytes.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The names and metadata of every file of a spec, before any byte is written.
fn layout(spec: &Spec) -> Vec<(CorpusFile, u64)> {
    let per = spec.per_dossier.max(1);
    spec.sizes()
        .into_iter()
        .enumerate()
        .map(|(i, size)| {
            let big = i >= spec.files;
            let (ext, content_type) = if big {
                ("zip", "application/zip")
            } else {
                KINDS[i % KINDS.len()]
            };
            let dossier = i / per;
            let filename = format!("f{i:06}.{ext}");
            let file = CorpusFile {
                rel: format!("{}/d{dossier:05}/{filename}", spec.name),
                dossier,
                filename,
                size,
                md5_base64: String::new(),
                content_type: content_type.to_owned(),
            };
            (
                file,
                spec.seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
            )
        })
        .collect()
}

/// Writes `size` pseudo-random bytes from `key` to `path`, returning their base64 MD5.
fn write_file(path: &Path, size: u64, key: u64) -> anyhow::Result<String> {
    const BUF: usize = 1 << 20;
    let mut out = BufWriter::with_capacity(
        BUF,
        fs::File::create(path).with_context(|| format!("cannot create `{}`", path.display()))?,
    );
    let mut rng = SplitMix(key);
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; BUF];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(BUF as u64)).unwrap_or(BUF);
        for word in buf[..n].chunks_mut(8) {
            let bytes = rng.next().to_le_bytes();
            word.copy_from_slice(&bytes[..word.len()]);
        }
        md5.update(&buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        left -= n as u64;
    }
    out.flush()
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(md5.finalize()))
}

fn catalogue_path(root: &Path, spec: &Spec) -> PathBuf {
    root.join(format!("{}.tsv", spec.name))
}

/// Loads the corpus if its catalogue matches `spec` and every file is present with its size.
fn load(root: &Path, spec: &Spec) -> Option<Vec<CorpusFile>> {
    let text = fs::File::open(catalogue_path(root, spec)).ok()?;
    let mut lines = BufReader::new(text).lines();
    if lines.next()?.ok()? != spec.fingerprint() {
        return None;
    }
    let mut files = Vec::new();
    for line in lines {
        let line = line.ok()?;
        let mut cols = line.split('\t');
        let (rel, dossier, size, md5, content_type) = (
            cols.next()?,
            cols.next()?,
            cols.next()?,
            cols.next()?,
            cols.next()?,
        );
        let file = CorpusFile {
            rel: rel.to_owned(),
            dossier: dossier.parse().ok()?,
            filename: rel.rsplit('/').next()?.to_owned(),
            size: size.parse().ok()?,
            md5_base64: md5.to_owned(),
            content_type: content_type.to_owned(),
        };
        if fs::metadata(root.join(&file.rel)).ok()?.len() != file.size {
            return None;
        }
        files.push(file);
    }
    (files.len() == spec.files + spec.big.len()).then_some(files)
}

/// Reuses or (re)generates the corpus of `spec` under `root`, on `threads` threads.
pub fn ensure(root: &Path, spec: &Spec, threads: usize) -> anyhow::Result<Corpus> {
    if let Some(files) = load(root, spec) {
        return Ok(Corpus {
            spec: spec.clone(),
            files,
            generated: false,
        });
    }
    let dir = root.join(spec.name);
    if dir.exists() {
        fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove the stale corpus `{}`", dir.display()))?;
    }
    let mut planned = layout(spec);
    for dossier in 0..planned.last().map_or(0, |(f, _)| f.dossier + 1) {
        let d = dir.join(format!("d{dossier:05}"));
        fs::create_dir_all(&d).with_context(|| format!("cannot create `{}`", d.display()))?;
    }
    // Round-robin over the threads: big files spread, each thread owns every `threads`-th file.
    let threads = threads.max(1);
    let results: Vec<anyhow::Result<Vec<(usize, String)>>> = std::thread::scope(|scope| {
        let planned = &planned;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    planned
                        .iter()
                        .enumerate()
                        .skip(t)
                        .step_by(threads)
                        .map(|(i, (file, key))| {
                            Ok((i, write_file(&root.join(&file.rel), file.size, *key)?))
                        })
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a corpus writer thread panicked")))
            })
            .collect()
    });
    for result in results {
        for (i, md5) in result? {
            planned[i].0.md5_base64 = md5;
        }
    }
    let files: Vec<CorpusFile> = planned.into_iter().map(|(f, _)| f).collect();
    if files.iter().any(|f| f.md5_base64.is_empty()) {
        bail!("corpus `{}`: some files were not written", spec.name);
    }
    let mut catalogue = spec.fingerprint();
    catalogue.push('\n');
    for f in &files {
        catalogue.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            f.rel, f.dossier, f.size, f.md5_base64, f.content_type
        ));
    }
    let path = catalogue_path(root, spec);
    fs::write(&path, catalogue).with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(Corpus {
        spec: spec.clone(),
        files,
        generated: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            name: "t",
            files: 7,
            min_size: 1,
            max_size: 70_000,
            big: vec![200_001],
            per_dossier: 3,
            seed: 9,
        }
    }

    #[test]
    fn sizes_are_deterministic_and_in_bounds() {
        let s = spec();
        let sizes = s.sizes();
        assert_eq!(sizes, s.sizes());
        assert_eq!(sizes.len(), 8);
        assert!(
            sizes[..7].iter().all(|&n| (1..=70_000).contains(&n)),
            "{sizes:?}"
        );
        assert_eq!(sizes[7], 200_001);
        let fixed = Spec {
            min_size: 4096,
            max_size: 4096,
            ..spec()
        };
        assert!(fixed.sizes()[..7].iter().all(|&n| n == 4096));
    }

    #[test]
    fn generated_files_match_their_catalogue_and_are_reused() {
        let root = tempfile::tempdir().expect("tempdir");
        let first = ensure(root.path(), &spec(), 2).expect("generate");
        assert!(first.generated);
        assert_eq!(first.files.len(), 8);
        assert_eq!(first.dossiers(), 3);
        for f in &first.files {
            let bytes = fs::read(root.path().join(&f.rel)).expect("file");
            assert_eq!(bytes.len() as u64, f.size);
            let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&bytes));
            assert_eq!(md5, f.md5_base64, "{}", f.rel);
        }
        let again = ensure(root.path(), &spec(), 1).expect("reuse");
        assert!(!again.generated);
        assert_eq!(again.files, first.files);

        // A truncated file makes the corpus stale: it is generated again, identically.
        fs::write(root.path().join(&first.files[2].rel), b"short").expect("truncate");
        let regenerated = ensure(root.path(), &spec(), 2).expect("regenerate");
        assert!(regenerated.generated);
        assert_eq!(regenerated.files, first.files);
    }
}
