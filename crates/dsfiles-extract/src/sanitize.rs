//! One path component, made safe for every destination (Linux, macOS, Windows, object stores).
//!
//! Rules, applied in this order by [`sanitize_component`]:
//! 1. `/`, `\`, NUL and every other control character (C0, DEL, C1), the characters Windows
//!    forbids in names (`<>:"|?*`) and the bidirectional overrides (U+202A–U+202E,
//!    U+2066–U+2069, which can disguise `cod.exe` as `exe.doc`) become `_`.
//! 2. Unicode is normalized to NFC (macOS gives NFD names; two spellings must be one key).
//! 3. Trailing dots and spaces are removed (Windows drops them silently), so `.` and `..`
//!    become empty.
//! 4. A name longer than [`MAX_COMPONENT_BYTES`] bytes is cut on a char boundary, keeping its
//!    extension (at most 32 bytes after the last dot), then trailing dots and spaces go again.
//! 5. An empty name becomes [`FALLBACK_NAME`].
//! 6. A Windows reserved device name (`CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`, `LPT0`–`LPT9`,
//!    `COM¹²³`, `LPT¹²³`, `CONIN$`, `CONOUT$`, any case, also with an extension such as
//!    `CON.txt` or `nul.tar.gz`) is prefixed with `_`.
//!
//! The function is idempotent: a sanitized component sanitizes to itself, which is how
//! [`crate::RelKey::parse`] validates keys read back from a manifest.

use unicode_normalization::UnicodeNormalization;

/// The longest component most filesystems accept (ext4, APFS, NTFS count 255 bytes/units).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// What an empty (or all-dots) name becomes.
pub const FALLBACK_NAME: &str = "_";

/// An extension longer than this is not treated as one (it is cut like the rest of the name).
const MAX_EXT_BYTES: usize = 32;

/// A single path component that is safe everywhere; see the module docs for the rules.
pub fn sanitize_component(s: &str) -> String {
    let replaced: String = s
        .chars()
        .map(|c| if is_forbidden(c) { '_' } else { c })
        .collect();
    let normalized: String = replaced.nfc().collect();
    let mut name = trim_trailing(&normalized).to_owned();
    if name.len() > MAX_COMPONENT_BYTES {
        name = truncate_keep_ext(&name, MAX_COMPONENT_BYTES);
        name.truncate(trim_trailing(&name).len());
    }
    if name.is_empty() {
        return FALLBACK_NAME.to_owned();
    }
    if is_reserved(&name) {
        name = truncate_keep_ext(&format!("_{name}"), MAX_COMPONENT_BYTES);
        // Cutting may expose a trailing dot or space; the leading `_` keeps it non-empty.
        name.truncate(trim_trailing(&name).len());
    }
    name
}

fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '/' | '\\' | '<' | '>' | ':' | '"' | '|' | '?' | '*' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

fn trim_trailing(s: &str) -> &str {
    s.trim_end_matches(['.', ' '])
}

/// Windows device names, reserved whatever the extension (`CON.txt`) and the case.
fn is_reserved(name: &str) -> bool {
    let base = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    let upper = base.to_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" => true,
        _ => {
            let Some(rest) = upper
                .strip_prefix("COM")
                .or_else(|| upper.strip_prefix("LPT"))
            else {
                return false;
            };
            let mut chars = rest.chars();
            matches!(
                (chars.next(), chars.next()),
                (Some('0'..='9' | '¹' | '²' | '³'), None)
            )
        }
    }
}

/// `("report", ".pdf")` for `report.pdf`; `(".htaccess", "")` and `("README", "")`: the
/// extension is what follows the last dot, not at the start, at most 32 bytes.
pub(crate) fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 && i + 1 < name.len() && name.len() - i - 1 <= MAX_EXT_BYTES => {
            (&name[..i], &name[i..])
        }
        _ => (name, ""),
    }
}

/// `name` cut to at most `max` bytes on a char boundary, its extension kept.
pub(crate) fn truncate_keep_ext(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let (stem, ext) = split_ext(name);
    let budget = max.saturating_sub(ext.len());
    format!("{}{ext}", floor_char_boundary(stem, budget))
}

/// The longest prefix of `s` of at most `max` bytes ending on a char boundary.
fn floor_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `name (n).ext` (or `name (n)` without `keep_ext`), within [`MAX_COMPONENT_BYTES`]: the
/// stem is cut, never the suffix or the extension. The result is still sanitized.
pub(crate) fn suffix_component(name: &str, n: u32, keep_ext: bool) -> String {
    let (stem, ext) = if keep_ext {
        split_ext(name)
    } else {
        (name, "")
    };
    let suffix = format!(" ({n})");
    let budget = MAX_COMPONENT_BYTES.saturating_sub(suffix.len() + ext.len());
    format!("{}{suffix}{ext}", floor_char_boundary(stem, budget))
}

/// The `n` of a component produced by [`suffix_component`], if it looks like one.
pub(crate) fn suffix_number(component: &str, keep_ext: bool) -> Option<u32> {
    let stem = if keep_ext {
        split_ext(component).0
    } else {
        component
    };
    let open = stem.strip_suffix(')')?.rfind(" (")?;
    let digits = &stem[open + 2..stem.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests;
