//! The contenders' command lines and input files, all derived from `dsfiles list` so that every
//! tool downloads the same URLs to the same relative paths.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;

use super::measure::Cmd;

/// One file as `dsfiles list --format jsonl` prints it (the fields the other tools need).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub url: String,
    /// `{dossier}/{source}/{label}/{filename}`: dsfiles' default layout, which the corpus'
    /// plain names leave unchanged.
    pub rel: String,
    pub size: u64,
    pub md5_hex: String,
}

fn base64_to_hex(b64: &str) -> anyhow::Result<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .with_context(|| format!("checksum `{b64}` is not base64"))?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Parses the JSON Lines of `dsfiles list`.
pub fn parse_listing(jsonl: &str) -> anyhow::Result<Vec<Listed>> {
    let mut out = Vec::new();
    for (i, line) in jsonl
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("`dsfiles list` line {}: not JSON", i + 1))?;
        let field = |name: &str| -> anyhow::Result<String> {
            match &v[name] {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                other => bail!("`dsfiles list` line {}: field `{name}` is `{other}`", i + 1),
            }
        };
        let filename = field("filename")?;
        let label = field("label")?;
        for part in [&filename, &label] {
            if part.is_empty() || part.contains(['/', '\\', '\n', '"']) || part.starts_with('.') {
                bail!(
                    "`dsfiles list` line {}: `{part}` is not a plain path component",
                    i + 1
                );
            }
        }
        out.push(Listed {
            url: field("url")?,
            rel: format!(
                "{}/{}/{label}/{filename}",
                field("dossier")?,
                field("source")?
            ),
            size: field("byte_size")?
                .parse()
                .with_context(|| format!("`dsfiles list` line {}: byte_size", i + 1))?,
            md5_hex: base64_to_hex(&field("checksum")?)?,
        });
    }
    Ok(out)
}

/// A curl config file (`-K`): one `url` and `output` pair per file.
pub fn curl_config(files: &[Listed]) -> String {
    let mut out = String::new();
    for f in files {
        let _ = writeln!(out, "url = \"{}\"\noutput = \"{}\"", f.url, f.rel);
    }
    out
}

/// An aria2c input file (`-i`): each URL with its output path and MD5.
pub fn aria2_input(files: &[Listed]) -> String {
    let mut out = String::new();
    for f in files {
        let _ = writeln!(
            out,
            "{}\n  out={}\n  checksum=md5={}",
            f.url, f.rel, f.md5_hex
        );
    }
    out
}

/// An `md5sum -c` list.
pub fn md5_list(files: &[Listed]) -> String {
    let mut out = String::new();
    for f in files {
        let _ = writeln!(out, "{}  {}", f.md5_hex, f.rel);
    }
    out
}

/// The input files of one démarche, written once under `dir`.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub curl: PathBuf,
    pub aria2: PathBuf,
    pub md5: PathBuf,
    pub files: usize,
    pub bytes: u64,
}

pub fn write_inputs(dir: &Path, files: &[Listed]) -> anyhow::Result<Inputs> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let write = |name: &str, text: String| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        fs::write(&path, text).with_context(|| format!("cannot write `{}`", path.display()))?;
        Ok(path)
    };
    Ok(Inputs {
        curl: write("urls.curl", curl_config(files))?,
        aria2: write("urls.aria2", aria2_input(files))?,
        md5: write("files.md5", md5_list(files))?,
        files: files.len(),
        bytes: files.iter().map(|f| f.size).sum(),
    })
}

pub const JOBS: &str = "16";

pub fn dsfiles(
    bin: &Path,
    demarche: u64,
    dest: &str,
    summary: &Path,
    env: Vec<(String, String)>,
    extra: &[&str],
) -> Cmd {
    let mut cmd = Cmd::new(
        bin.display().to_string(),
        &["--quiet", "sync", "--demarche"],
    );
    cmd.args.push(demarche.to_string());
    cmd.args.extend([
        "--dest".to_owned(),
        dest.to_owned(),
        "--jobs".to_owned(),
        JOBS.to_owned(),
        // Like for like: the other tools write the files only, not dossier.json.
        "--no-data".to_owned(),
        "--summary-json".to_owned(),
    ]);
    cmd.args.push(summary.display().to_string());
    cmd.args.extend(extra.iter().map(|s| (*s).to_owned()));
    cmd.env = env;
    cmd
}

pub fn curl(config: &Path, dest: &Path) -> Cmd {
    let mut cmd = Cmd::new(
        "curl",
        &[
            "-Z",
            "--parallel-max",
            JOBS,
            "--fail",
            "--silent",
            "--show-error",
            "--create-dirs",
            "--output-dir",
        ],
    );
    cmd.args.push(dest.display().to_string());
    cmd.args
        .extend(["-K".to_owned(), config.display().to_string()]);
    cmd
}

pub fn md5sum(list: &Path, dest: &Path) -> Cmd {
    let mut cmd = Cmd::new("md5sum", &["--quiet", "--check"]);
    cmd.args.push(list.display().to_string());
    cmd.cwd = Some(dest.to_path_buf());
    cmd
}

pub fn aria2c(input: &Path, dest: &Path) -> Cmd {
    let mut cmd = Cmd::new(
        "aria2c",
        &[
            "-j16",
            "--quiet=true",
            "--file-allocation=none",
            "--auto-file-renaming=false",
            "--allow-overwrite=true",
            "--console-log-level=error",
            "--dir",
        ],
    );
    cmd.args.push(dest.display().to_string());
    cmd.args
        .extend(["--input-file".to_owned(), input.display().to_string()]);
    cmd
}

/// Counts the files and bytes under `dir`, outside dsfiles' `.dsfiles/` state directory.
pub fn tally(dir: &Path) -> anyhow::Result<(usize, u64)> {
    let mut stack = vec![dir.to_path_buf()];
    let (mut files, mut bytes) = (0, 0);
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("cannot read `{}`", d.display()))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if entry.file_name() != ".dsfiles" {
                    stack.push(entry.path());
                }
            } else if kind.is_file() {
                files += 1;
                bytes += entry.metadata()?.len();
            }
        }
    }
    Ok((files, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"demarche":1,"dossier":1000001,"state":"en_construction","source":"champ","champ_id":"Q2hhbXAtMQ==","label":"Annexes","row":null,"index":0,"filename":"f000001.pdf","content_type":"application/pdf","byte_size":"4096","checksum":"1B2M2Y8AsgTpgAmY7PhCfg==","url":"http://127.0.0.1:81/main/d00000/f000001.pdf","virus_scan":"safe","created_at":null}"#;

    #[test]
    fn listing_becomes_every_tool_input() {
        let files = parse_listing(&format!("{LINE}\n\n")).expect("parse");
        assert_eq!(
            files,
            vec![Listed {
                url: "http://127.0.0.1:81/main/d00000/f000001.pdf".into(),
                rel: "1000001/champ/Annexes/f000001.pdf".into(),
                size: 4096,
                md5_hex: "d41d8cd98f00b204e9800998ecf8427e".into(),
            }]
        );
        assert_eq!(
            curl_config(&files),
            "url = \"http://127.0.0.1:81/main/d00000/f000001.pdf\"\noutput = \"1000001/champ/Annexes/f000001.pdf\"\n"
        );
        assert_eq!(
            aria2_input(&files),
            "http://127.0.0.1:81/main/d00000/f000001.pdf\n  out=1000001/champ/Annexes/f000001.pdf\n  checksum=md5=d41d8cd98f00b204e9800998ecf8427e\n"
        );
        assert_eq!(
            md5_list(&files),
            "d41d8cd98f00b204e9800998ecf8427e  1000001/champ/Annexes/f000001.pdf\n"
        );
    }

    #[test]
    fn names_that_dsfiles_would_rewrite_are_refused() {
        let hostile = LINE.replace("f000001.pdf\",\"content", "../x.pdf\",\"content");
        assert!(parse_listing(&hostile).is_err());
        assert!(parse_listing("not json").is_err());
    }

    #[test]
    fn tally_skips_the_state_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::create_dir_all(dir.path().join(".dsfiles/tmp")).unwrap();
        fs::write(dir.path().join("a/b/x"), b"12345").unwrap();
        fs::write(dir.path().join("a/y"), b"1").unwrap();
        fs::write(dir.path().join(".dsfiles/manifest"), b"state").unwrap();
        assert_eq!(tally(dir.path()).unwrap(), (2, 6));
    }
}
