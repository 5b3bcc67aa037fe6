//! Destinations as clients and the config file spell them, reduced to one canonical form.
//!
//! **Rule:** one storage location has one spelling, and a spelling that some later parser
//! could read as another location is refused. Every destination — `POST /v1/syncs`,
//! `[webhooks.destinations]`, `--webhook-dest`, the allow-list itself — goes through
//! [`Destination::parse`], and jobs are identified by [`Destination::canonical`], so
//! `/srv/a/x/`, `/srv/a/x` and `file:///srv/a/x` are one destination (a second sync of it is a
//! 409), whoever started the first.
//!
//! - Percent-encoding is decoded per segment where the sink will decode it (`file://` and
//!   bucket URLs), then the segment is checked: `.` and `..` (also `%2e%2e`, `.%2E`), a
//!   decoded `/` or `\` (`%2F` inside a segment), control characters and malformed or
//!   non-UTF-8 escapes are refused. `Url::parse` would otherwise resolve
//!   `file:///srv/archive/%2e%2e/etc` to `/srv/etc` after the allow-list said yes.
//! - Plain paths are taken literally (the sink does), but a component that would decode to a
//!   dot segment or a separator is refused too: it is never what was meant.
//! - Empty segments vanish (`//`, a trailing `/`); `.` is refused rather than dropped, so the
//!   check needs no notion of a current directory.
//! - The canonical form of a local destination is its absolute path; of a bucket,
//!   `scheme://bucket/segment/…` with each segment percent-encoded again (the sink decodes it
//!   back to the same key prefix), `s3a` spelled `s3` and `azure` spelled `az`.
//!
//! [`Destination::pattern`] describes the spellings to clients (the OpenAPI document's
//! `pattern`): every string it matches parses, and [`AllowList::check`] (every destination of
//! a request, and of the config's webhook destinations) refuses what it does not match, so the
//! document states exactly what is served. It leaves out what parses but needs care (`%`, `@`,
//! `?`, `#`, `:`, whitespace around a segment).

use std::path::PathBuf;
use std::sync::LazyLock;

use regex::Regex;

#[cfg(test)]
mod tests;

/// A destination, normalized: a local directory or an object-store prefix, its segments
/// decoded and checked (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    Local(PathBuf),
    Bucket {
        scheme: String,
        bucket: String,
        path: Vec<String>,
    },
}

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestError {
    #[error("destination `{dest}` is invalid: {why}")]
    Invalid { dest: String, why: &'static str },
    #[error("destination `{dest}` is outside the allowed prefixes")]
    NotAllowed { dest: String },
}

/// How a segment is written in the spelling being parsed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spelling {
    /// A local path: literal, the sink never decodes it.
    Path,
    /// A URL path: percent-encoded, the sink decodes it.
    Url,
}

impl Destination {
    /// Parses and normalizes `dest`; relative local paths, dot segments (also
    /// percent-encoded), encoded separators, queries and credentials are refused.
    pub fn parse(dest: &str) -> Result<Destination, DestError> {
        let dest = dest.trim();
        let invalid = |why| DestError::Invalid {
            dest: dest.escape_debug().to_string(),
            why,
        };
        if dest.is_empty() {
            return Err(invalid("it is empty"));
        }
        if dest.chars().any(char::is_control) {
            return Err(invalid("it contains control characters"));
        }
        if dest.contains('\\') {
            return Err(invalid("it contains a backslash"));
        }
        let Some((scheme, rest)) = dest.split_once("://") else {
            let path = dest.strip_prefix('/').ok_or_else(|| {
                invalid("a local destination must be an absolute path (or `file:///path`)")
            })?;
            return local(path, Spelling::Path).map_err(invalid);
        };
        if let Some((_, host)) = rest.rsplit_once('@') {
            // Not echoed: what precedes `@` may be a password.
            return Err(DestError::Invalid {
                dest: format!("{scheme}://…@{}", host.escape_debug()),
                why: "it has credentials",
            });
        }
        if rest.contains(['?', '#']) {
            return Err(invalid("it has a query or a fragment"));
        }
        let scheme = scheme.to_ascii_lowercase();
        let scheme = match scheme.as_str() {
            "file" => {
                let path = rest
                    .strip_prefix('/')
                    .ok_or_else(|| invalid("a file URL must be `file:///absolute/path`"))?;
                return local(path, Spelling::Url).map_err(invalid);
            }
            "s3" | "s3a" => "s3",
            "az" | "azure" => "az",
            "gs" | "abfs" | "abfss" | "memory" => scheme.as_str(),
            _ => return Err(invalid("its scheme is not one of file, s3, gs, az, memory")),
        };
        let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() && scheme != "memory" {
            return Err(invalid("it names no bucket"));
        }
        if bucket.contains('%') {
            return Err(invalid("its bucket name is percent-encoded"));
        }
        Ok(Destination::Bucket {
            scheme: scheme.to_owned(),
            bucket: bucket.to_owned(),
            path: segments(path, Spelling::Url).map_err(invalid)?,
        })
    }

    /// `^…$` matching destinations that parse (see the module doc): an absolute path,
    /// `file:///path`, or `s3|s3a|gs|az|azure|abfs|abfss://bucket/path` (schemes in any case),
    /// with segments of characters other than controls, whitespace (inner spaces aside) and `\`
    /// `/` `%` `@` `?` `#` `:` (a local path holding `://` would read as a URL), never `.` or
    /// `..`. Written in the syntax ECMA-262, Python's `re` and Rust's `regex` read alike.
    pub fn pattern() -> String {
        // No whitespace but inner spaces: `parse` trims the whole spelling.
        let char = "[^\\u0000-\\u001f\\u007f-\\u009f\\s\\\\/%@?#:]";
        let not_dot = "[^\\u0000-\\u001f\\u007f-\\u009f\\s\\\\/%@?#:.]";
        let rest = format!("( *{char})*");
        let segment = format!("({not_dot}{rest}|\\.{not_dot}{rest}|\\.\\.{char}{rest})");
        // Empty segments vanish, schemes are read in any case, as `parse` does.
        let path = format!("({segment}|/)*");
        let scheme = "([sS]3[aA]?|[gG][sS]|[aA][zZ]|[aA][zZ][uU][rR][eE]|[aA][bB][fF][sS][sS]?)";
        format!("^(/{path}|[fF][iI][lL][eE]:///{path}|{scheme}://{segment}{path})$")
    }

    /// Whether `self` is `prefix` or lies below it (whole segments only: `/srv/a` is not
    /// below `/srv/ab`).
    pub fn is_within(&self, prefix: &Destination) -> bool {
        match (self, prefix) {
            (Destination::Local(path), Destination::Local(prefix)) => path.starts_with(prefix),
            (
                Destination::Bucket {
                    scheme,
                    bucket,
                    path,
                },
                Destination::Bucket {
                    scheme: p_scheme,
                    bucket: p_bucket,
                    path: p_path,
                },
            ) => scheme == p_scheme && bucket == p_bucket && path.starts_with(p_path),
            _ => false,
        }
    }

    /// The canonical spelling: the destination of a job and part of its identity, and what
    /// the sink opens.
    pub fn canonical(&self) -> String {
        match self {
            Destination::Local(path) => path.display().to_string(),
            Destination::Bucket {
                scheme,
                bucket,
                path,
            } => {
                let mut s = format!("{scheme}://{bucket}");
                for part in path {
                    s.push('/');
                    encode_into(&mut s, part);
                }
                s
            }
        }
    }
}

/// A local destination from the part of its spelling after the root `/`.
fn local(path: &str, spelling: Spelling) -> Result<Destination, &'static str> {
    let mut normalized = PathBuf::from("/");
    normalized.extend(segments(path, spelling)?);
    Ok(Destination::Local(normalized))
}

/// The non-empty `/`-separated segments of `path`, decoded when `spelling` is a URL, each
/// checked.
fn segments(path: &str, spelling: Spelling) -> Result<Vec<String>, &'static str> {
    path.split('/')
        .filter(|raw| !raw.is_empty())
        .map(|raw| segment(raw, spelling))
        .collect()
}

fn segment(raw: &str, spelling: Spelling) -> Result<String, &'static str> {
    let decoded = match (decode(raw), spelling) {
        (Some(decoded), _) => decoded,
        (None, Spelling::Url) => return Err("it has a malformed or non-UTF-8 `%` escape"),
        // A literal name such as `100%`: nothing for a URL parser to misread.
        (None, Spelling::Path) => raw.to_owned(),
    };
    if decoded == "." || decoded == ".." {
        return Err("it has a `.` or `..` segment (also percent-encoded)");
    }
    if decoded.contains(['/', '\\']) {
        return Err("a segment holds an encoded `/` or `\\` (`%2F`, `%5C`)");
    }
    if decoded.chars().any(char::is_control) {
        return Err("a segment holds an encoded control character");
    }
    Ok(match spelling {
        Spelling::Url => decoded,
        Spelling::Path => raw.to_owned(),
    })
}

/// Percent-decodes `raw`; `None` for a malformed escape or bytes that are not UTF-8.
fn decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Appends `segment` percent-encoded: everything but unreserved characters and the
/// sub-delimiters a path segment may hold as they are.
fn encode_into(out: &mut String, segment: &str) {
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// The destination prefixes syncs may write to. Empty: nothing is allowed.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    prefixes: Vec<Destination>,
}

impl AllowList {
    /// Parses each prefix like a destination; blank entries are skipped.
    pub fn new<'a>(prefixes: impl IntoIterator<Item = &'a str>) -> Result<AllowList, DestError> {
        let prefixes = prefixes
            .into_iter()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Destination::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AllowList { prefixes })
    }

    /// The normalized destination when `dest` is valid and inside an allowed prefix.
    /// A spelling that parses but lies outside [`Destination::pattern`] is refused too: the
    /// API documents that pattern, and serves what it documents (see the module doc).
    pub fn check(&self, dest: &str) -> Result<Destination, DestError> {
        static PATTERN: LazyLock<Option<Regex>> =
            LazyLock::new(|| Regex::new(&Destination::pattern()).ok());
        let parsed = Destination::parse(dest)?;
        if !PATTERN.as_ref().is_some_and(|p| p.is_match(dest)) {
            return Err(DestError::Invalid {
                dest: dest.escape_debug().to_string(),
                why: "it is outside the spellings the API documents: segments hold no `%`, `@`, `?`, `#`, `:`, and no whitespace but inner spaces",
            });
        }
        if self.prefixes.iter().any(|prefix| parsed.is_within(prefix)) {
            Ok(parsed)
        } else {
            Err(DestError::NotAllowed {
                dest: parsed.canonical(),
            })
        }
    }

    /// Whether no prefix is allowed.
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }
}
