//! The templates [`Layout::parse`] and [`DataLayout::parse`] accept, as regular expressions for
//! documents that describe them to other programs (the `pattern` of the HTTP API's OpenAPI
//! document, which clients and fuzzers generate requests from).
//!
//! **Rule: every string a pattern matches parses.** The converse need not hold: a pattern may
//! leave out what parses but is rarely meant (a date placeholder's `:FORMAT` beyond the common
//! `strftime` fields, a literal `%`), so that a request built from the document is never
//! refused for its template. Each pattern is built from the same placeholder lists the parsers
//! use, and is written in the syntax that ECMA-262 (JSON Schema's), Python's `re` and Rust's
//! `regex` read alike: classes, groups, alternation, `*`, `+`, `?`, no lookaround.
//!
//! Grammar (as the parsers read it): components separated by `/`, none empty; a component is
//! literal characters other than `{`, `}` and `/`, and placeholders `{name}`; `{champ:LABEL}`
//! and `{annotation:LABEL}` need a label that is not blank; a data template uses only
//! [`DataLayout::PLACEHOLDERS`] and holds `{dossier}`. `ds-export` is a file layout of its own.

use super::{DataLayout, Layout, PLACEHOLDERS};
use crate::naming::DOSSIER_PLACEHOLDERS;

/// A literal character of a component.
const LITERAL: &str = "[^{}/]";
/// The dossier dates, which take an optional `:FORMAT`.
const DATES: [&str; 3] = ["deposited", "updated", "processed"];
/// A `strftime` format the pattern vouches for: common fields and plain characters.
const DATE_FORMAT: &str = "(%[YmdHMSyjeBbAa]|[-_. A-Za-z0-9])+";
/// A label: anything but braces, not blank to Rust's `trim` (which, unlike ECMA-262's `\s`,
/// also removes U+0085).
const LABEL: &str = "[^{}]*[^{}\\s\\u0085][^{}]*";

impl Layout {
    /// `^…$` matching file templates, every one of which [`Layout::parse`] accepts (see
    /// [`pattern`](self)).
    pub fn pattern() -> String {
        let plain = PLACEHOLDERS
            .iter()
            .copied()
            .chain(
                DOSSIER_PLACEHOLDERS
                    .iter()
                    .copied()
                    .filter(|p| !p.contains(':') && !DATES.contains(p)),
            )
            .collect::<Vec<_>>()
            .join("|");
        let dates = DATES.join("|");
        let placeholder =
            format!("\\{{({plain}|({dates})(:{DATE_FORMAT})?|(champ|annotation):{LABEL})\\}}");
        let component = format!("({LITERAL}|{placeholder})+");
        format!("^({}|{component}(/{component})*)$", super::ds_export::NAME)
    }
}

impl DataLayout {
    /// `^…$` matching data templates, every one of which [`DataLayout::parse`] accepts (see
    /// [`pattern`](self)).
    pub fn pattern() -> String {
        let names = DataLayout::PLACEHOLDERS.join("|");
        let part = format!("({LITERAL}|\\{{({names})\\}})");
        let component = format!("{part}+");
        let holder = format!("{part}*\\{{dossier\\}}{part}*");
        format!("^({component}/)*{holder}(/{component})*$")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(pattern: &str) -> regex::Regex {
        regex::Regex::new(pattern).expect("the pattern compiles")
    }

    #[test]
    fn the_patterns_match_the_usual_templates_and_refuse_the_broken_ones() {
        let layout = matcher(&Layout::pattern());
        let data = matcher(&DataLayout::pattern());
        // (template, layout pattern matches, data pattern matches)
        let cases = [
            (Layout::DEFAULT, true, false),
            ("ds-export", true, false),
            (
                "{demarche}/{dossier}/{champ:Pièce d'identité}/{filename}",
                true,
                false,
            ),
            (
                "{deposited:%Y-%m}/{groupe}/{dossier}-{stem}.{ext}",
                true,
                false,
            ),
            ("{processed}/{annotation: avis }/{sha256}", true, false),
            (DataLayout::FALLBACK, true, true),
            ("{demarche}/{state}/{dossier}.json", true, true),
            ("dossiers/{dossier}/dossier.json", true, true),
            ("", false, false),
            ("/{dossier}", false, false),
            ("{dossier}/", false, false),
            ("{dossier}//{filename}", false, false),
            ("{dossier", false, false),
            ("dossier}", false, false),
            ("{nope}", false, false),
            ("{champ:}", false, false),
            ("{champ:  }", false, false),
            ("{deposited:}", false, false),
            ("{state}/data.json", true, false),
            ("{dossier}/{filename}.json", true, false),
            ("ds-export/{dossier}", true, true),
        ];
        for (template, in_layout, in_data) in cases {
            assert_eq!(layout.is_match(template), in_layout, "layout `{template}`");
            assert_eq!(data.is_match(template), in_data, "data `{template}`");
        }
    }

    /// Strings made of the grammar's pieces, in random order: whatever a pattern matches, its
    /// parser accepts.
    #[test]
    fn whatever_a_pattern_matches_parses() {
        let layout = matcher(&Layout::pattern());
        let data = matcher(&DataLayout::pattern());
        let pieces = [
            "{",
            "}",
            "/",
            ":",
            " ",
            "a",
            ".",
            "%",
            "%Y",
            "é",
            "\u{0}",
            "{dossier}",
            "{state}",
            "{demarche}",
            "{filename}",
            "{champ:",
            "{annotation:",
            "{deposited",
            "{deposited:",
            "{groupe}",
            "{nope}",
            "ds-export",
            "dossier",
            "champ:x}",
            "\u{85}",
            "\u{a0}",
        ];
        let mut next = crate::random::xorshift(0x9e37_79b9_7f4a_7c15);
        let (mut layouts, mut datas) = (0, 0);
        for _ in 0..200_000 {
            let template = crate::random::joined(&pieces, 9, &mut next);
            if layout.is_match(&template) {
                layouts += 1;
                assert!(Layout::parse(&template).is_ok(), "layout `{template}`");
            }
            if data.is_match(&template) {
                datas += 1;
                assert!(DataLayout::parse(&template).is_ok(), "data `{template}`");
            }
        }
        // The random strings reach both patterns often enough to mean something.
        assert!(
            layouts > 10_000 && datas > 1_000,
            "{layouts} layouts, {datas} data"
        );
    }
}
