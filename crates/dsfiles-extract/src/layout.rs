//! Path templates (`--layout`) and the sanitized relative keys they render.
//!
//! A template is split on `/` into components; each component mixes literal text and
//! placeholders ([`PLACEHOLDERS`]). Rendering substitutes the placeholders, then sanitizes the
//! whole component with [`sanitize_component`], so a value can never add a level (`a/b`
//! becomes `a_b`) or climb out (`..` becomes `_`).
//!
//! Placeholder values:
//! - `{demarche}`, `{dossier}`: numbers; `{state}`: `en_construction`, ...; `{source}`:
//!   `champ`, `annotation`, ...; `{champ_id}`, `{label}`, `{filename}`: as in the record.
//! - `{row}`: the 0-based repetition row, as in the record; empty outside repetitions.
//! - `{stem}`, `{ext}`: the filename split at its last dot (`archive.tar` and `gz` for
//!   `archive.tar.gz`; `ext` is empty for `README` or `.htaccess`, and `{stem}.{ext}` then
//!   renders `README`, the trailing dot being dropped).
//! - `{checksum}`: DS's base64 MD5 is not path-safe (`/`, `+`), so it renders as the lowercase
//!   hex of the decoded bytes (32 characters for an MD5); a checksum that is not valid base64
//!   renders as URL-safe base64 (`+`→`-`, `/`→`_`, no `=`). Empty for pdf/geojson.
//! - `{sha256}`: the lowercase hex SHA-256 given to [`Layout::render`] (computed while
//!   downloading; see [`Layout::needs_sha256`]); empty when not given.
//!
//! A component that renders to nothing at all (only empty placeholders, e.g. `{row}` outside a
//! repetition) is dropped, so `{dossier}/{row}/{filename}` gives `12/0/a.pdf` inside a row and
//! `12/a.pdf` outside; the last component is never dropped (it becomes [`FALLBACK_NAME`](crate::FALLBACK_NAME)). A
//! file and a directory that end up with the same name are told apart by the
//! [`crate::KeyAllocator`]. A first component equal to `.dsfiles` (the destination's state
//! directory, any case) is renamed `_dsfiles`.
//!
//! The name `ds-export` is not a template: it selects DS's own export names, whose rules live
//! in [`ds_export`].

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::naming::{DOSSIER_PLACEHOLDERS, DossierPlaceholder, LabelRef};
use crate::sanitize::{self, sanitize_component};
use crate::{DossierContext, Error, FileRecord};

mod ds_export;
mod pattern;

/// The destination's state directory (`dsfiles_sink::STATE_DIR`): no rendered key enters it.
const STATE_DIR: &str = ".dsfiles";

/// Every placeholder a template may use, without braces.
pub const PLACEHOLDERS: [&str; 12] = [
    "demarche", "dossier", "state", "source", "champ_id", "label", "row", "filename", "stem",
    "ext", "checksum", "sha256",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placeholder {
    Demarche,
    Dossier,
    State,
    Source,
    ChampId,
    Label,
    Row,
    Filename,
    Stem,
    Ext,
    Checksum,
    Sha256,
}

impl Placeholder {
    fn name(self) -> &'static str {
        match self {
            Placeholder::Demarche => "demarche",
            Placeholder::Dossier => "dossier",
            Placeholder::State => "state",
            Placeholder::Source => "source",
            Placeholder::ChampId => "champ_id",
            Placeholder::Label => "label",
            Placeholder::Row => "row",
            Placeholder::Filename => "filename",
            Placeholder::Stem => "stem",
            Placeholder::Ext => "ext",
            Placeholder::Checksum => "checksum",
            Placeholder::Sha256 => "sha256",
        }
    }

    fn from_name(name: &str) -> Option<Placeholder> {
        Some(match name {
            "demarche" => Placeholder::Demarche,
            "dossier" => Placeholder::Dossier,
            "state" => Placeholder::State,
            "source" => Placeholder::Source,
            "champ_id" => Placeholder::ChampId,
            "label" => Placeholder::Label,
            "row" => Placeholder::Row,
            "filename" => Placeholder::Filename,
            "stem" => Placeholder::Stem,
            "ext" => Placeholder::Ext,
            "checksum" => Placeholder::Checksum,
            "sha256" => Placeholder::Sha256,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Value(Placeholder),
    /// A value of the dossier's ([`crate::naming`]).
    Dossier(DossierPlaceholder),
}

/// A parsed path template such as [`Layout::DEFAULT`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    template: String,
    components: Vec<Vec<Part>>,
    /// `ds-export`: [`ds_export::render`] names the files, `components` is empty.
    ds_export: bool,
}

impl Layout {
    pub const DEFAULT: &str = "{dossier}/{source}/{label}/{filename}";

    /// Parses `template`, or selects DS's own names for `ds-export`. Errors name the unknown placeholder, the unbalanced brace and its
    /// byte position, or an empty component (leading, trailing or doubled `/`).
    pub fn parse(template: &str) -> Result<Layout, Error> {
        let invalid = |reason: &str| Error::InvalidLayout {
            template: template.to_owned(),
            reason: reason.to_owned(),
        };
        if template.is_empty() {
            return Err(invalid("the template is empty"));
        }
        if template == ds_export::NAME {
            return Ok(Layout {
                template: template.to_owned(),
                components: Vec::new(),
                ds_export: true,
            });
        }
        let mut components = Vec::new();
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = template.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' => {
                    let rest = &template[i + 1..];
                    let close = match rest.find(['{', '}']) {
                        Some(j) if rest[j..].starts_with('}') => j,
                        _ => {
                            return Err(Error::UnbalancedBrace {
                                template: template.to_owned(),
                                brace: '{',
                                position: i,
                            });
                        }
                    };
                    let name = &rest[..close];
                    let part = placeholder(template, name)?;
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                    // Skip the name and the closing brace (all ASCII-delimited).
                    for _ in rest[..=close].chars() {
                        chars.next();
                    }
                }
                '}' => {
                    return Err(Error::UnbalancedBrace {
                        template: template.to_owned(),
                        brace: '}',
                        position: i,
                    });
                }
                '/' => {
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    if parts.is_empty() {
                        return Err(invalid(
                            "empty path component (leading, trailing or doubled `/`)",
                        ));
                    }
                    components.push(std::mem::take(&mut parts));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if parts.is_empty() {
            return Err(invalid(
                "empty path component (leading, trailing or doubled `/`)",
            ));
        }
        components.push(parts);
        Ok(Layout {
            template: template.to_owned(),
            components,
            ds_export: false,
        })
    }

    /// The template as given to [`Layout::parse`].
    pub fn template(&self) -> &str {
        &self.template
    }

    /// Whether `{sha256}` is used: the key is then known only after the download.
    pub fn needs_sha256(&self) -> bool {
        self.components
            .iter()
            .flatten()
            .any(|part| *part == Part::Value(Placeholder::Sha256))
    }

    /// The sanitized relative key (`a/b/c.pdf`) of `record`; see the module docs.
    /// `sha256_hex` feeds `{sha256}`. Dossier placeholders render their fallback: use
    /// [`Layout::render_in`] to give them the dossier.
    pub fn render(&self, record: &FileRecord, sha256_hex: Option<&str>) -> RelKey {
        self.render_in(record, sha256_hex, None)
    }

    /// [`Layout::render`] with the dossier's `context` for the dossier placeholders.
    pub fn render_in(
        &self,
        record: &FileRecord,
        sha256_hex: Option<&str>,
        context: Option<&DossierContext>,
    ) -> RelKey {
        if self.ds_export {
            return ds_export::render(record);
        }
        self.render_with(context, |text, p| push_value(text, p, record, sha256_hex))
    }

    /// The champ and annotation labels the template names (`{champ:LABEL}`, …), to check
    /// against the démarche's revision.
    pub fn labels(&self) -> Vec<LabelRef<'_>> {
        let parts = self.components.iter().flatten();
        parts
            .filter_map(|part| match part {
                Part::Dossier(p) => p.label(),
                _ => None,
            })
            .collect()
    }

    /// The names of the dossier placeholders the template uses, without argument
    /// (`groupe`, `deposited`, `champ`, …: [`DOSSIER_PLACEHOLDERS`] up to the `:`), in
    /// template order; none for `ds-export`, which names files from the records alone.
    pub fn dossier_placeholders(&self) -> Vec<&'static str> {
        let parts = self.components.iter().flatten();
        parts
            .filter_map(|part| match part {
                Part::Dossier(p) => Some(p.name()),
                _ => None,
            })
            .collect()
    }

    /// Whether the template uses a dossier placeholder (it then needs the dossier's context).
    pub fn needs_context(&self) -> bool {
        self.components
            .iter()
            .flatten()
            .any(|part| matches!(part, Part::Dossier(_)))
    }

    /// The directory that holds every key this layout renders for one dossier and no key of
    /// any other dossier's, as a [`DossierDir`]; `None` when keys of two dossiers may meet.
    /// See [`DossierDir`] for the rule.
    pub fn dossier_dir(&self, demarche: u64) -> Option<DossierDir> {
        if self.ds_export {
            // Every key of `ds_export::render` starts `dossier-<n>/`.
            return Some(DossierDir {
                parents: Vec::new(),
                before: "dossier-".to_owned(),
                after: String::new(),
            });
        }
        let holder = (self.components.iter())
            .position(|parts| parts.contains(&Part::Value(Placeholder::Dossier)))?;
        let (parents, holder) = (self.components.get(..holder)?, self.components.get(holder)?);
        let parents = parents
            .iter()
            .enumerate()
            .map(|(i, parts)| constant_component(i, parts, demarche))
            .collect::<Option<Vec<String>>>()?;
        let (before, after) = dossier_component(holder)?;
        Some(DossierDir {
            parents,
            before,
            after,
        })
    }

    /// Renders the template, `push` writing each file placeholder's value.
    fn render_with(
        &self,
        context: Option<&DossierContext>,
        push: impl Fn(&mut String, Placeholder),
    ) -> RelKey {
        let mut out: Vec<String> = Vec::with_capacity(self.components.len());
        let last = self.components.len() - 1;
        for (i, parts) in self.components.iter().enumerate() {
            let mut text = String::new();
            for part in parts {
                match part {
                    Part::Literal(s) => text.push_str(s),
                    Part::Value(p) => push(&mut text, *p),
                    Part::Dossier(p) => text.push_str(&p.render(context)),
                }
            }
            if text.is_empty() && i != last {
                continue;
            }
            let mut component = sanitize_component(&text);
            if out.is_empty() && component.eq_ignore_ascii_case(STATE_DIR) {
                component.replace_range(..1, "_");
            }
            out.push(component);
        }
        RelKey(out.join("/"))
    }
}

/// Where one dossier's keys live, for layouts that keep dossiers apart
/// ([`Layout::dossier_dir`]): under `parents/{before}{n}{after}` for dossier `n`.
///
/// Rule: a template keeps dossiers apart when a component holds `{dossier}` with at most
/// short literal text around it made of `[A-Za-z0-9_-]` (the text before ending with `-` or
/// `_`, so no Windows device name like `COM1` appears), and every component before it is
/// constant within a démarche (literal text and `{demarche}`). Then sanitizing changes none of
/// these components, none of them is ever dropped as empty, and two dossiers' keys differ at
/// the same component whatever the rest renders (case folding cannot merge them: only the
/// digits differ). So no key, file or directory, of one dossier can be taken by another's,
/// and collision-free naming needs to know only the dossier's own keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DossierDir {
    /// The constant components before the dossier's, as rendered.
    pub parents: Vec<String>,
    /// The literal text before the dossier number in its component.
    pub before: String,
    /// The literal text after it.
    pub after: String,
}

/// Literal text allowed around `{dossier}` in [`DossierDir`]'s rule.
const MAX_DOSSIER_AFFIX: usize = 32;

/// The rendered component `i` when it is the same for every dossier of `demarche`.
fn constant_component(i: usize, parts: &[Part], demarche: u64) -> Option<String> {
    let mut text = String::new();
    for part in parts {
        match part {
            Part::Literal(s) => text.push_str(s),
            Part::Value(Placeholder::Demarche) => text.push_str(&demarche.to_string()),
            _ => return None,
        }
    }
    let mut component = sanitize_component(&text);
    if i == 0 && component.eq_ignore_ascii_case(STATE_DIR) {
        component.replace_range(..1, "_");
    }
    Some(component)
}

/// The literal text around `{dossier}` in `parts`, when [`DossierDir`]'s rule allows it.
fn dossier_component(parts: &[Part]) -> Option<(String, String)> {
    let affix = |part: Option<&Part>| match part {
        None => Some(String::new()),
        Some(Part::Literal(s))
            if s.len() <= MAX_DOSSIER_AFFIX
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Some(s.clone())
        }
        Some(_) => None,
    };
    let (before, after) = match parts {
        [Part::Value(Placeholder::Dossier)] => (None, None),
        [b, Part::Value(Placeholder::Dossier)] => (Some(b), None),
        [Part::Value(Placeholder::Dossier), a] => (None, Some(a)),
        [b, Part::Value(Placeholder::Dossier), a] => (Some(b), Some(a)),
        _ => return None,
    };
    let (before, after) = (affix(before)?, affix(after)?);
    let separated = before.is_empty() || before.ends_with(['-', '_']);
    separated.then_some((before, after))
}

/// The part written `{name}` in `template`: a file placeholder or a dossier one.
fn placeholder(template: &str, name: &str) -> Result<Part, Error> {
    if let Some(p) = Placeholder::from_name(name) {
        return Ok(Part::Value(p));
    }
    match DossierPlaceholder::parse(name) {
        Ok(Some(p)) => Ok(Part::Dossier(p)),
        Ok(None) => Err(Error::UnknownPlaceholder {
            template: template.to_owned(),
            name: name.to_owned(),
            known: PLACEHOLDERS
                .iter()
                .chain(&DOSSIER_PLACEHOLDERS)
                .map(|p| format!("{{{p}}}"))
                .collect::<Vec<_>>()
                .join(" "),
        }),
        Err(reason) => Err(Error::InvalidLayout {
            template: template.to_owned(),
            reason,
        }),
    }
}

fn push_value(text: &mut String, p: Placeholder, record: &FileRecord, sha256_hex: Option<&str>) {
    use std::fmt::Write as _;
    // Writing into a String cannot fail.
    let _ = match p {
        Placeholder::Demarche => write!(text, "{}", record.demarche),
        Placeholder::Dossier => write!(text, "{}", record.dossier),
        Placeholder::State => write!(text, "{}", record.state),
        Placeholder::Source => write!(text, "{}", record.source),
        Placeholder::ChampId => write!(text, "{}", record.champ_id.as_deref().unwrap_or("")),
        Placeholder::Label => write!(text, "{}", record.label),
        Placeholder::Row => match record.row {
            Some(row) => write!(text, "{row}"),
            None => Ok(()),
        },
        Placeholder::Filename => write!(text, "{}", record.filename),
        Placeholder::Stem => write!(text, "{}", sanitize::split_ext(&record.filename).0),
        Placeholder::Ext => {
            let ext = sanitize::split_ext(&record.filename).1;
            write!(text, "{}", ext.strip_prefix('.').unwrap_or(ext))
        }
        Placeholder::Checksum => write!(text, "{}", path_safe_checksum(&record.checksum)),
        Placeholder::Sha256 => write!(text, "{}", sha256_hex.unwrap_or("")),
    };
}

/// Hex of the decoded base64 checksum; URL-safe base64 when it is not valid base64.
fn path_safe_checksum(checksum: &str) -> String {
    match base64::engine::general_purpose::STANDARD.decode(checksum) {
        Ok(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => checksum
            .chars()
            .filter(|c| *c != '=')
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect(),
    }
}

/// Where a dossier's `dossier.json` goes (`--data-layout`): a template like [`Layout`]'s
/// that must contain `{dossier}` (so two dossiers never share one) and may use only the
/// dossier's placeholders `{demarche}`, `{dossier}` and `{state}`.
///
/// The default follows the file layout ([`DataLayout::for_layout`]): the directory of the
/// layout that holds `{dossier}`, plus `/dossier.json` — `{dossier}/dossier.json` for
/// [`Layout::DEFAULT`], `{demarche}/{dossier}/dossier.json` for
/// `{demarche}/{dossier}/{filename}`. When no directory holds `{dossier}` (it is only in the
/// file name, or absent), or one before it uses a file's placeholder, it is
/// `{dossier}/dossier.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataLayout(Layout);

impl DataLayout {
    pub const FALLBACK: &str = "{dossier}/dossier.json";
    /// The placeholders a data template may use.
    pub const PLACEHOLDERS: [&str; 3] = ["demarche", "dossier", "state"];

    /// Parses `template` (errors as [`Layout::parse`]'s, plus a missing `{dossier}` and a
    /// placeholder of a file's, named).
    pub fn parse(template: &str) -> Result<DataLayout, Error> {
        let layout = Layout::parse(template)?;
        let parts = || layout.components.iter().flatten();
        if let Some(part) = parts().find(|part| !is_dossier_part(part)) {
            let name = match part {
                Part::Value(p) => p.name(),
                Part::Dossier(p) => p.name(),
                Part::Literal(_) => "",
            };
            return Err(Error::InvalidLayout {
                template: template.to_owned(),
                reason: format!(
                    "`{{{name}}}` names a file's or a dossier's value; a dossier.json template may use only {}",
                    DataLayout::PLACEHOLDERS
                        .map(|p| format!("`{{{p}}}`"))
                        .join(", ")
                ),
            });
        }
        if !parts().any(|part| *part == Part::Value(Placeholder::Dossier)) {
            return Err(Error::InvalidLayout {
                template: template.to_owned(),
                reason: "it must contain `{dossier}`, or every dossier would share one file"
                    .to_owned(),
            });
        }
        Ok(DataLayout(layout))
    }

    /// The default for file layout `layout` (see the type docs).
    pub fn for_layout(layout: &Layout) -> DataLayout {
        let components: Vec<&str> = layout.template.split('/').collect();
        let holder = layout
            .components
            .iter()
            .position(|parts| parts.contains(&Part::Value(Placeholder::Dossier)));
        let derived = match holder {
            Some(i) if i + 1 < layout.components.len() => {
                let dirs = components.get(..=i).unwrap_or_default();
                DataLayout::parse(&format!("{}/dossier.json", dirs.join("/"))).ok()
            }
            _ => None,
        };
        derived.unwrap_or_else(|| {
            // Invariant: FALLBACK is a valid data template (tested).
            DataLayout::parse(DataLayout::FALLBACK).expect("DataLayout::FALLBACK parses")
        })
    }

    pub fn template(&self) -> &str {
        self.0.template()
    }

    /// As [`Layout::dossier_dir`].
    pub fn dossier_dir(&self, demarche: u64) -> Option<DossierDir> {
        self.0.dossier_dir(demarche)
    }

    /// The sanitized key of the `dossier.json` of dossier `dossier` of `demarche` in `state`.
    pub fn render(&self, demarche: u64, dossier: u64, state: &str) -> RelKey {
        self.0.render_with(None, |text, p| match p {
            Placeholder::Demarche => text.push_str(&demarche.to_string()),
            Placeholder::Dossier => text.push_str(&dossier.to_string()),
            Placeholder::State => text.push_str(state),
            // Refused by `parse`.
            _ => {}
        })
    }
}

fn is_dossier_part(part: &Part) -> bool {
    matches!(
        part,
        Part::Literal(_)
            | Part::Value(Placeholder::Demarche | Placeholder::Dossier | Placeholder::State)
    )
}

impl fmt::Display for DataLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.template())
    }
}

impl FromStr for DataLayout {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        DataLayout::parse(s)
    }
}

impl Default for Layout {
    fn default() -> Self {
        // Invariant: DEFAULT is a valid template (tested).
        Layout::parse(Layout::DEFAULT).expect("Layout::DEFAULT parses")
    }
}

impl FromStr for Layout {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Layout::parse(s)
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template)
    }
}

/// A validated relative key: `/`-separated, non-empty components each equal to its own
/// [`sanitize_component`], never starting with `.dsfiles`. Built by [`Layout::render`],
/// [`RelKey::with_suffix`] or [`RelKey::parse`] (keys read back from a manifest).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RelKey(String);

impl RelKey {
    /// Validates `key` (see the type docs); the error says which component is wrong.
    pub fn parse(key: &str) -> Result<RelKey, Error> {
        let invalid = |reason: String| Error::InvalidKey {
            key: key.to_owned(),
            reason,
        };
        if key.is_empty() {
            return Err(invalid("empty key".to_owned()));
        }
        for (i, component) in key.split('/').enumerate() {
            if component.is_empty() {
                return Err(invalid(
                    "empty component (leading, trailing or doubled `/`)".to_owned(),
                ));
            }
            let sanitized = sanitize_component(component);
            if sanitized != component {
                return Err(invalid(format!(
                    "component `{}` is not sanitized (would be `{sanitized}`)",
                    component.escape_debug()
                )));
            }
            if i == 0 && component.eq_ignore_ascii_case(STATE_DIR) {
                return Err(invalid(format!("`{STATE_DIR}` is the state directory")));
            }
        }
        Ok(RelKey(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The `/`-separated components.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The same key with its last component renamed `name (n).ext`, still at most 255 bytes
    /// (the stem is cut, never the suffix or the extension).
    pub fn with_suffix(&self, n: u32) -> RelKey {
        let (parent, name) = match self.0.rfind('/') {
            Some(i) => (&self.0[..=i], &self.0[i + 1..]),
            None => ("", self.0.as_str()),
        };
        RelKey(format!(
            "{parent}{}",
            sanitize::suffix_component(name, n, true)
        ))
    }

    /// A key that was a [`RelKey`] before (allocator internals: what a key store returns).
    pub(crate) fn trusted(key: String) -> RelKey {
        RelKey(key)
    }

    /// Builds a key from components that are already sanitized (allocator internals).
    pub(crate) fn from_sanitized_components(components: &[String]) -> RelKey {
        RelKey(components.join("/"))
    }
}

impl fmt::Display for RelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RelKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RelKey {
    type Error = Error;
    fn try_from(key: String) -> Result<Self, Error> {
        RelKey::parse(&key)
    }
}

impl From<RelKey> for String {
    fn from(key: RelKey) -> String {
        key.0
    }
}

impl FromStr for RelKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        RelKey::parse(s)
    }
}

#[cfg(test)]
mod tests;
