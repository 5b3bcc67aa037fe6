//! `--layout ds-export`: the folder and file names of DS's own ZIP export, so that scripts
//! written against DS's archives keep working on a dsfiles destination.
//!
//! DS names files in two places, read at `demarche-numerique/demarche.numerique.gouv.fr`
//! (and the older `demarches-simplifiees/demarches-simplifiees.fr`):
//! - the export template (`app/models/export_template.rb`, `app/models/export_item.rb`): the
//!   default template names the dossier folder `dossier-<n>`, the PDF `export-<n>.pdf`, the
//!   attestation `attestation-<n>.<ext>`, and each champ's files
//!   `<libelle_as_filename>-<n>[-<row>]-<index>.<ext>` (`ExportItem.default_pj`, `#suffix`:
//!   row and index counted from 1 and padded to 2 digits, the row only inside a repetition);
//! - the archive without a template (`app/lib/active_storage/downloadable_file.rb`,
//!   `timestamped_filename` and `folder`, called from
//!   `app/services/pieces_justificatives_service.rb`): `dossier-<n>/<folder><basename>-<%d-%m-%Y-%H-%M>-<id><ext>`
//!   with `messagerie/` for messages, `avis/` for avis, `dossier/` for the motivation and
//!   `pieces_justificatives/` for everything else (attestation, API Entreprise attestations).
//!
//! The template names a source when it has an item for it; the other sources (which the
//! template does not export) keep the archive's name. [`render`] therefore gives:
//!
//! | source | key |
//! |---|---|
//! | champ, annotation | `dossier-<n>/<label>-<n>[-<row+1>]-<index+1><ext>` |
//! | pdf | `dossier-<n>/export-<n>.pdf` |
//! | attestation | `dossier-<n>/attestation-<n><ext>` |
//! | message | `dossier-<n>/messagerie/<stem>-<date>-<id><ext>` |
//! | avis | `dossier-<n>/avis/<stem>-<date>-<id><ext>` |
//! | motivation | `dossier-<n>/dossier/<stem>-<date><ext>` |
//! | entreprise | `dossier-<n>/pieces_justificatives/<stem>-<date><ext>` |
//! | geojson | `dossier-<n>/<filename>` (DS's export has none; kept by its name) |
//!
//! - `<label>` is `TypeDeChamp#libelle_as_filename` ([`libelle_as_filename`]): runs of
//!   whitespace become one space, the label is cut to 30 characters at the last space at or
//!   before the 30th (Rails' `truncate(30, omission: '', separator: ' ')`), then
//!   `parameterize`d: transliterated to ASCII with I18n's table (`É`→`E`, `œ`→`oe`, any other
//!   non-ASCII character → `?`), every run of characters outside `[a-z0-9_-]` becomes `-`,
//!   runs of `-` collapse, a leading or trailing `-` goes, and the result is lowercased.
//! - `<date>` is the file's `createdAt` as `dd-mm-YYYY-HH-MM` in the offset DS wrote it in
//!   (DS formats the attachment's `created_at` in Paris time, and the API writes Paris
//!   times); it is left out, with its `-`, when DS gave no date or an unreadable one.
//! - `<ext>` and `<stem>` split the filename at its last dot as `{ext}` does (Ruby's
//!   `File.extname`; an "extension" longer than 32 bytes is not one here).
//!
//! Where our names differ from DS's, and why:
//! - DS's archive ends names with `attachment.id % 10000`, the row id of the attachment,
//!   which the API does not expose. Messages and avis use the id the API gives instead (the
//!   `Commentaire-123`/`Avis-45` that their base64 GraphQL id decodes to, here `123`/`45`,
//!   the raw id when it does not decode): same shape, another number. The motivation and
//!   API Entreprise attestations have no id in the API and end with the date.
//! - Every component then goes through [`sanitize_component`]: DS writes a filename into
//!   its ZIP as the user gave it, so `../x`, `a/b`, control characters or a 300-byte name
//!   would escape the dossier folder, add a level or fail on a filesystem; here they become
//!   `_` and are cut as everywhere else in dsfiles. The parameterized label never needs it.
//!   A timestamped name over 255 bytes is cut in its stem first, so that the date and id
//!   (what tells two versions apart) and the extension stay.
//! - DS leaves collisions to the ZIP (two champs whose labels agree in their first 30
//!   characters give the same name; the later entry shadows the earlier on extraction). The
//!   key allocator ([`crate::KeyAllocator`]) numbers the later one (`name (2).pdf`) instead:
//!   no file is lost.

use unicode_normalization::UnicodeNormalization;

use crate::sanitize::{self, sanitize_component};
use crate::{FileRecord, MAX_COMPONENT_BYTES, Source};

use super::RelKey;

/// The name `--layout` accepts for this layout.
pub(crate) const NAME: &str = "ds-export";

/// How many characters of a label DS keeps (`libelle_as_filename`).
const LABEL_CHARS: usize = 30;

/// The relative key DS's export gives `record`; see the module docs.
pub(crate) fn render(record: &FileRecord) -> RelKey {
    let n = record.dossier;
    let (stem, ext) = sanitize::split_ext(&record.filename);
    let (folder, name) = match record.source {
        Source::Champ | Source::Annotation => (None, champ_name(record, ext)),
        Source::Pdf => (None, format!("export-{n}.pdf")),
        Source::Attestation => (None, format!("attestation-{n}{ext}")),
        Source::Message => (Some("messagerie"), timestamped(record, stem, ext, true)),
        Source::Avis => (Some("avis"), timestamped(record, stem, ext, true)),
        Source::Motivation => (Some("dossier"), timestamped(record, stem, ext, false)),
        Source::Entreprise => (
            Some("pieces_justificatives"),
            timestamped(record, stem, ext, false),
        ),
        Source::Geojson => (None, record.filename.clone()),
    };
    let mut components = vec![format!("dossier-{n}")];
    components.extend(folder.map(str::to_owned));
    components.push(name);
    let sanitized: Vec<String> = components.iter().map(|c| sanitize_component(c)).collect();
    RelKey::from_sanitized_components(&sanitized)
}

/// `<label>-<n>[-<row+1>]-<index+1><ext>` (`ExportItem#path` with `#suffix`).
fn champ_name(record: &FileRecord, ext: &str) -> String {
    let mut name = format!("{}-{}", libelle_as_filename(&record.label), record.dossier);
    if let Some(row) = record.row {
        name.push_str(&format!("-{}", pad(row)));
    }
    name.push_str(&format!("-{}{ext}", pad(record.index)));
    name
}

/// `number + 1` on at least two digits (`ExportItem#add_one_and_pad`).
fn pad(number: u32) -> String {
    format!("{:02}", u64::from(number) + 1)
}

/// `<stem>-<date>[-<id>]<ext>` (`DownloadableFile.timestamped_filename`). A long stem is cut
/// here, not by the sanitizer, so that the date and id, which tell versions apart, survive.
fn timestamped(record: &FileRecord, stem: &str, ext: &str, with_id: bool) -> String {
    let mut suffix = String::new();
    if let Some(date) = record.created_at.as_deref().and_then(ds_timestamp) {
        suffix.push('-');
        suffix.push_str(&date);
    }
    if with_id && let Some(id) = record.champ_id.as_deref() {
        suffix.push('-');
        suffix.push_str(&record_id(id));
    }
    suffix.push_str(ext);
    let budget = MAX_COMPONENT_BYTES.saturating_sub(suffix.len());
    let mut end = stem.len().min(budget);
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &stem[..end])
}

/// `2024-01-08T10:05:00+01:00` → `08-01-2024-10-05` (`strftime("%d-%m-%Y-%H-%M")`), the
/// wall-clock time as written; `None` when the text does not start with a date and time.
fn ds_timestamp(iso: &str) -> Option<String> {
    let b = iso.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range.clone())
            .filter(|s| s.iter().all(u8::is_ascii_digit))
            .map(|_| &iso[range])
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':')];
    if !separators.iter().all(|&(i, c)| b.get(i) == Some(&c))
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    Some(format!(
        "{}-{}-{}-{}-{}",
        digits(8..10)?,
        digits(5..7)?,
        digits(0..4)?,
        digits(11..13)?,
        digits(14..16)?
    ))
}

/// The database id inside a GraphQL id: `Q29tbWVudGFpcmUtMTIz` (`Commentaire-123`) → `123`;
/// the id unchanged when it is not base64 of `<Type>-<id>`.
fn record_id(graphql_id: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(graphql_id)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let (kind, id) = text.split_once('-')?;
            let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
            (plain(kind) && id.split('-').all(plain)).then(|| id.to_owned())
        })
        .unwrap_or_else(|| graphql_id.to_owned())
}

/// DS's `TypeDeChamp#libelle_as_filename`: whitespace collapsed, cut to 30 characters at a
/// space, then `parameterize`d (see the module docs).
pub(crate) fn libelle_as_filename(label: &str) -> String {
    let mut collapsed = String::with_capacity(label.len());
    for c in label.chars() {
        if c.is_whitespace() {
            if !collapsed.ends_with(' ') {
                collapsed.push(' ');
            }
        } else {
            collapsed.push(c);
        }
    }
    parameterize(&truncate(&collapsed, LABEL_CHARS))
}

/// Rails' `truncate(max, omission: '', separator: ' ')`, counting characters: a longer text
/// is cut before its last space at or before character `max`, or at `max` without one.
fn truncate(text: &str, max: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= max {
        return text.to_owned();
    }
    let stop = chars[..=max].iter().rposition(|&c| c == ' ').unwrap_or(max);
    chars[..stop].iter().collect()
}

/// ActiveSupport's `parameterize` (separator `-`, lowercased), with I18n's transliteration.
fn parameterize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // ActiveSupport normalizes to NFC first, so a decomposed `É` is one letter too.
    for c in text.nfc() {
        let ascii = transliterate(c);
        for a in ascii.chars() {
            if a.is_ascii_alphanumeric() || a == '-' || a == '_' {
                out.push(a.to_ascii_lowercase());
            } else if !out.ends_with('-') {
                out.push('-');
            }
        }
    }
    // Runs of `-` that were in the text itself collapse too (`gsub(/-{2,}/, '-')`).
    let mut collapsed = String::with_capacity(out.len());
    for c in out.chars() {
        if !(c == '-' && collapsed.ends_with('-')) {
            collapsed.push(c);
        }
    }
    let trimmed = collapsed.strip_prefix('-').unwrap_or(&collapsed);
    trimmed.strip_suffix('-').unwrap_or(trimmed).to_owned()
}

/// I18n's `HashTransliterator::DEFAULT_APPROXIMATIONS`; `?` for any other non-ASCII char.
fn transliterate(c: char) -> std::borrow::Cow<'static, str> {
    if c.is_ascii() {
        return c.to_string().into();
    }
    let mapped = match c {
        'À'..='Å' | 'Ā' | 'Ă' | 'Ą' => "A",
        'à'..='å' | 'ā' | 'ă' | 'ą' => "a",
        'Æ' => "AE",
        'æ' => "ae",
        'Ç' | 'Ć' | 'Ĉ' | 'Ċ' | 'Č' => "C",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'Ð' | 'Ď' | 'Đ' => "D",
        'ð' | 'ď' | 'đ' => "d",
        'È'..='Ë' | 'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => "E",
        'è'..='ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => "G",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'Ĥ' | 'Ħ' => "H",
        'ĥ' | 'ħ' => "h",
        'Ì'..='Ï' | 'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' => "I",
        'ì'..='ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'Ĵ' => "J",
        'ĵ' => "j",
        'Ķ' => "K",
        'ķ' | 'ĸ' => "k",
        'Ĺ' | 'Ļ' | 'Ľ' | 'Ŀ' | 'Ł' => "L",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'Ñ' | 'Ń' | 'Ņ' | 'Ň' => "N",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'ŉ' => "'n",
        'Ŋ' => "NG",
        'ŋ' => "ng",
        'Ò'..='Ö' | 'Ø' | 'Ō' | 'Ŏ' | 'Ő' => "O",
        'ò'..='ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'Œ' => "OE",
        'œ' => "oe",
        'Ŕ' | 'Ŗ' | 'Ř' => "R",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'Ś' | 'Ŝ' | 'Ş' | 'Š' => "S",
        'ś' | 'ŝ' | 'ş' | 'š' => "s",
        'ß' => "ss",
        'ẞ' => "SS",
        'Ţ' | 'Ť' | 'Ŧ' => "T",
        'ţ' | 'ť' | 'ŧ' => "t",
        'Þ' => "Th",
        'þ' => "th",
        'Ù'..='Ü' | 'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' => "U",
        'ù'..='ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'Ŵ' => "W",
        'ŵ' => "w",
        '×' => "x",
        'Ý' | 'Ŷ' | 'Ÿ' => "Y",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'ź' | 'ż' | 'ž' => "z",
        _ => "?",
    };
    mapped.into()
}

#[cfg(test)]
mod tests;
